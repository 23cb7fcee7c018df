/* The delivery agent: the one process of smalt that keeps root (when
 * started as root) so that it can deliver as each recipient. The
 * scheduler (qmgr, unprivileged) sends it one request per delivery over
 * a SOCK_SEQPACKET socket; the agent forks a child per request, the
 * child delivers (local: as the recipient; pipe: as the daemon's user),
 * logs the delivery line and sends one result back on the same socket.
 * qmail's qmail-lspawn is the model: the privileged part parses nothing
 * from the network, and a request names only a queue id, a sender and a
 * recipient that the unprivileged side could have queued anyway.
 *
 * Wire format, one datagram each, text, fields separated by tabs (no
 * field may hold a tab, CR or LF):
 *   request: "R1" JOB CHANNEL ID ARRIVAL_US ACTIVE_US SENT_US SENDER RCPT
 *            [ARG...]      CHANNEL "local" or "pipe"; ARGs: pipe argv
 *   result:  "A1" JOB STATUS DSN REASON    STATUS "ok", "defer", "bounce"
 */
#ifndef SMALT_AGENT_H
#define SMALT_AGENT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "conf/conf.h"
#include "deliver/result.h"
#include "deliver/routes.h"
#include "queue/queue.h"

#define AGENT_MSG_MAX  (64 * 1024) /* largest datagram either way */
#define AGENT_ARGV_MAX 64

struct agent_request {
	unsigned long job;
	enum channel_kind channel; /* CHANNEL_LOCAL or CHANNEL_PIPE */
	char id[QUEUE_ID_LEN + 1];
	uint64_t arrival_us; /* when the message was queued */
	uint64_t active_us;  /* when the scheduler took it up */
	uint64_t sent_us;    /* when this request was sent */
	const char *sender;  /* "" for <> */
	const char *rcpt;
	char *argv[AGENT_ARGV_MAX + 1]; /* pipe: NULL-terminated */
};

struct agent_result {
	unsigned long job;
	struct deliver_result r;
};

/* Encoders: the datagram's length, or -1 (EINVAL: a field holds a tab or
 * line break, or it does not fit in len). */
int agent_request_format(const struct agent_request *req, char *buf,
			 size_t len);
int agent_result_format(const struct agent_result *res, char *buf, size_t len);
/* Decoders work in place on buf (NUL-terminated, len octets); the
 * request's strings point into buf. 0, or -1 for anything malformed. */
int agent_request_parse(char *buf, size_t len, struct agent_request *req);
int agent_result_parse(char *buf, size_t len, struct agent_result *res);

/* What the agent process needs. load_conf re-reads the configuration
 * on SIGHUP (NULL with err when it is bad: the old one stays). */
struct agent_params {
	int sock;
	struct smalt_conf *conf;
	struct queue *queue;
	uid_t user_uid; /* the daemon's user when we are root, else -1 */
	gid_t user_gid;
	struct smalt_conf *(*load_conf)(char *err, size_t errlen);
};

/* Runs the agent until the qmgr closes the socket (SIGTERM and SIGINT
 * are ignored: the master stops the qmgr first); then waits (at most
 * AGENT_DRAIN_SECONDS) for deliveries under way. Returns an exit code. */
#define AGENT_DRAIN_SECONDS 10
int agent_main(struct agent_params *p);

#endif
