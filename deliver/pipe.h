/* The executor of the `pipe:COMMAND` channel and of `|command` alias
 * targets (SPEC §5, §9): runs one command with the message on its
 * standard input and turns its exit status into a delivery result.
 *
 * The command runs in a child in its own session and process group,
 * with no supplementary groups and, when we are root, with req->uid and
 * req->gid (never uid or gid 0: that request is refused). When we are not
 * root (tests, a non-root install) it runs as ourselves and uid/gid are
 * ignored. Its working folder is the home of the user it runs as, or "/"
 * when that cannot be entered. It gets
 *   stdin    the headers (a final LF added when missing), then the
 *            message file with every CRLF turned into LF (SPEC §9);
 *   stdout,  one pipe that we read: its first PIPE_OUTPUT_KEEP octets
 *   stderr   become the reason of a failure, the rest is read and dropped
 *            so that a chatty command cannot block;
 *   no other descriptor, default signal dispositions, an empty signal
 *   mask, and only this environment: PATH=/usr/bin:/bin, SHELL=/bin/sh,
 *   HOME, USER and LOGNAME of the user it runs as (when the password file
 *   knows it), SENDER (empty for the null sender) and RECIPIENT.
 *
 * A command that exits without reading all of its input is not an error
 * in itself: its exit status decides, as in Postfix and sendmail.
 *
 * Outcome (sysexits codes as in Postfix's sys_exits table):
 *   exit 0                        DELIVER_OK 2.0.0 "delivered via command"
 *   exit 75 EX_TEMPFAIL, 71 EX_OSERR
 *                                 DELIVER_DEFER 4.3.0
 *   exit 64..78 otherwise         DELIVER_BOUNCE with Postfix's code:
 *                                 65 5.6.0, 67 5.1.1, 68 5.1.2, 73 5.2.0,
 *                                 76 5.5.0, 77 5.7.0, 78 5.3.5, else 5.3.0
 *   any other exit status         DELIVER_BOUNCE 5.3.0
 *   killed by a signal            DELIVER_DEFER 4.3.0
 *   still running after timeout   its process group is killed with
 *                                 SIGKILL; DELIVER_DEFER 4.3.0
 *   exec: no such file            DELIVER_BOUNCE 5.3.0 "command not found"
 *   exec: other refusals          DELIVER_BOUNCE 5.3.0 (EACCES, ENOEXEC..)
 *   exec or set-up: resources     DELIVER_DEFER 4.3.0 (ENOMEM, EAGAIN..)
 *   uid or gid 0 as root, a relative argv[0], the message file
 *   unreadable, pipe/fork failures
 *                                 DELIVER_DEFER 4.3.0: a configuration or
 *                                 system problem, not the recipient's
 * A failed command's reason is "command exited with status N: OUTPUT"
 * (or "... status N (sysexits text)" when it printed nothing), where
 * OUTPUT is its output with control characters and runs of white space
 * made one space, octets outside ASCII made '?', trimmed and cut to
 * PIPE_REASON_MAX octets.
 *
 * pipe_deliver waits for the child itself (waitpid on its pid): a caller
 * with a SIGCHLD handler must not reap children it did not start. While
 * it writes, SIGPIPE is ignored in the whole process and then restored. */
#ifndef SMALT_PIPE_H
#define SMALT_PIPE_H

#include <sys/types.h>

#include "deliver/result.h"

/* How much of the command's output is kept for the reason. */
#define PIPE_OUTPUT_KEEP 1024
/* How much of it the reason shows. */
#define PIPE_REASON_MAX 200

struct pipe_request {
	/* Exactly one of these two. argv: a NULL-terminated argv whose
	 * argv[0] is an absolute path, run without a shell (routes
	 * pipe:COMMAND, see route_pipe_argv). shell_command: run as
	 * /bin/sh -c COMMAND (aliases |command, as sendmail does). */
	char *const *argv;
	const char *shell_command;
	int msg_fd;	     /* queue message file, CRLF lines; read with
				pread from offset 0, never moved */
	const char *headers; /* LF lines written first, e.g. "Return-Path:
				<s>\nDelivered-To: r\n"; NULL or "" for none */
	uid_t uid;	     /* run as these when we are root */
	gid_t gid;
	unsigned timeout;      /* seconds the command may run; 0: no limit */
	const char *sender;    /* SENDER; NULL or "" for the null sender */
	const char *recipient; /* RECIPIENT */
};

void pipe_deliver(const struct pipe_request *req, struct deliver_result *res);

#endif
