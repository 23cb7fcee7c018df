/* The queue manager (SPEC §5): the scheduler of the delivery side. It
 * runs unprivileged on its own event loop, learns of new mail from the
 * queue itself (inotify on incoming/), takes messages up in arrival
 * order, resolves each recipient's channel and next hop at that moment
 * (never stored: a fixed routes file applies to queued mail), runs
 * deliveries within delivery_concurrency and destination_concurrency
 * through the delivery agent, records every result in the envelope
 * (write-new + fsync + rename), sends bounces and one delay warning,
 * and removes a message when every recipient is done.
 *
 * Retries: a message that still has deferred recipients waits in
 * deferred/ for retry_min, doubling after each round up to retry_max;
 * once queue_lifetime has passed since arrival its remaining recipients
 * bounce. A message whose delivery was under way at a crash is still in
 * incoming/ or deferred/ with its old envelope and is tried again after
 * the restart: at least once, never lost.
 *
 * delivery_concurrency = 0 is an extension: it holds all mail in the
 * queue (nothing is delivered) until a reload raises it. */
#ifndef SMALT_QMGR_H
#define SMALT_QMGR_H

#include "conf/conf.h"
#include "queue/queue.h"

/* Messages held in memory at once; the rest wait as bare ids. */
#define QMGR_ACTIVE_LIMIT 1000
/* A maildrop file that could not be queued (disk full) is tried again
 * after this many seconds; maildrop/ is swept every QMGR_MAILDROP_SWEEP
 * seconds, and sendmail's temporary files older than
 * QMGR_MAILDROP_STALE seconds (a sendmail killed half-way) removed. */
#define QMGR_MAILDROP_RETRY 30
#define QMGR_MAILDROP_SWEEP 300
#define QMGR_MAILDROP_STALE 3600
/* Seconds between writes of state/qmgr, the delivery counters that
 * smaltctl show stats reads (only when they changed). */
#define QMGR_STATS_INTERVAL 5

struct qmgr_params {
	int agent_sock; /* SOCK_SEQPACKET to the delivery agent */
	struct smalt_conf *conf;
	struct queue *queue;
	struct smalt_conf *(*load_conf)(char *err, size_t errlen);
};

/* Runs until SIGTERM or until the agent goes away. Returns an exit
 * code. */
int qmgr_main(struct qmgr_params *p);

#endif
