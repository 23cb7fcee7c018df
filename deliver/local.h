/* The `local` channel (SPEC §5, §8, §9): one recipient of one message,
 * run in a child of the delivery agent. Finds what the recipient means
 * (aliases, virtual_mailboxes, a system user), delivers to every target
 * with the right credentials, logs one line per target under
 * smalt/local, and sums the outcome up for the envelope.
 *
 * Who writes what:
 *   a system user's mbox or Maildir   that user's uid/gid (root's own
 *                                     mailbox as root: it is root's file)
 *   a virtual mailbox                 the daemon's user
 *   |command and /file from aliases   the aliases (or :include:) file's
 *                                     owner, nobody when that is root
 *   an alias member on another host   forwarded as a new queued message
 *                                     (written as the daemon's user) with
 *                                     Delivered-To: added, as Postfix does
 * When the agent is not root, everything runs as whoever it is.
 *
 * The summary for the envelope: DEFER when any target deferred (all
 * targets are tried again later: at least once, as Postfix), else BOUNCE
 * when any bounced (the reason names that target), else OK. */
#ifndef SMALT_LOCAL_H
#define SMALT_LOCAL_H

#include <sys/types.h>

#include "conf/aliases.h"
#include "conf/conf.h"
#include "conf/table.h"
#include "deliver/agent.h"
#include "deliver/result.h"
#include "queue/queue.h"

/* Longest run of a |command from the aliases file (Postfix's
 * command_time_limit). */
#define LOCAL_COMMAND_TIMEOUT 1000

struct local_ctx {
	const struct smalt_conf *conf;
	const struct alias_db *aliases; /* NULL: none */
	const struct table *virtuals;	/* NULL: none */
	struct queue *queue;		/* for forwarded copies */
	uid_t user_uid; /* the daemon's user, -1 when not root */
	gid_t user_gid;
};

void local_deliver(const struct local_ctx *ctx, const struct agent_request *req,
		   int msg_fd, struct deliver_result *res);

#endif
