/* pickup: takes a maildrop file into the queue (SPEC §4, §9). Runs in
 * the daemon as its unprivileged user, on files written by anyone in
 * group smaltdrop, so nothing in them is believed: the identity is the
 * file's owner; a sender set by someone who is not root or the daemon's
 * user (sendmail -f) is kept, as scripts rely on it, but the message
 * gets an X-Authentication-Warning: header and the log names the uid;
 * whatever does not parse goes to corrupt/ with a log line. */
#ifndef SMALT_PICKUP_H
#define SMALT_PICKUP_H

#include "conf/conf.h"
#include "queue/queue.h"

enum pickup_result {
	PICKUP_QUEUED,	/* committed into incoming/, maildrop file removed */
	PICKUP_REQUEST, /* a request (flush, hold...): *req filled, removed */
	PICKUP_GONE,	/* no such file (taken already) */
	PICKUP_BAD,	/* moved to corrupt/ */
	PICKUP_RETRY	/* could not queue it now (disk full...): left */
};

struct pickup_request {
	char word[16]; /* "flush", "hold", "release", "remove", "wake" */
	char arg[256]; /* "" or a queue id or host */
	int trusted;   /* from root or the daemon's user */
};

enum pickup_result pickup_file(struct queue *q, const struct smalt_conf *conf,
			       const char *name, struct pickup_request *req);

/* Removes what is not a maildrop file name (sendmail's temporary "t.*"
 * files) and is older than max_age seconds: what a sendmail killed
 * half-way left. Logs each with its owner's uid. */
void pickup_sweep(struct queue *q, unsigned max_age);

#endif
