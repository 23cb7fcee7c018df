/* The SMTP server: accepts on the listeners, enforces the connection
 * limits, runs one session per client on the caller's event loop, and
 * commits messages through a commit thread (SPEC §6). */
#ifndef SMALT_SMTPD_H
#define SMALT_SMTPD_H

#include <event2/event.h>

#include "conf/conf.h"
#include "queue/queue.h"
#include "smtpd/listener.h"

struct smtpd;

struct smtpd_stats {
	unsigned long connections, received, rejected;
};

/* Starts serving on every listener. conf is borrowed until the next
 * smtpd_set_conf or smtpd_free. NULL with err on failure. */
struct smtpd *smtpd_new(struct event_base *base, struct smalt_conf *conf,
			struct queue *queue, struct listeners *listeners,
			char *err, size_t errlen);
/* Applies new settings (SIGHUP): new sessions and new transactions use
 * them; the recipient tables are read again. 0, or -1 with err when a
 * table does not read (then the old settings stay). */
int smtpd_set_conf(struct smtpd *sd, struct smalt_conf *conf, char *err,
		   size_t errlen);
/* Stops accepting and calls done(arg) once no commit is under way (at
 * most 5 s later), so that every client whose message was committed
 * has been told. */
void smtpd_drain(struct smtpd *sd, void (*done)(void *), void *arg);
/* Stops accepting, waits for commits under way, closes every session. */
void smtpd_free(struct smtpd *sd);
const struct smtpd_stats *smtpd_stats(const struct smtpd *sd);

/* sendmail -bs runs this same server on a socket of its own, with a
 * private queue whose commits it hands on to maildrop/. */
/* Serves one session on fd (a connected stream socket) as if a plain
 * listener had accepted it from sa. */
void smtpd_serve_fd(struct smtpd *sd, int fd, const struct sockaddr *sa,
		    socklen_t salen);
/* Runs fn(id, arg) on the loop after each successful commit, before the
 * client is told; non-zero (errno set) turns the commit into a failure
 * (451/452 to the client). */
typedef int (*smtpd_commit_hook)(const char *id, void *arg);
void smtpd_set_commit_hook(struct smtpd *sd, smtpd_commit_hook fn, void *arg);

#endif
