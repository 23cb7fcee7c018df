/* Delivery status notifications (SPEC §5, §9): RFC 3464 bounces and
 * delay warnings, composed as a complete RFC 5322 message that the caller
 * queues with the null sender like any other mail.
 *
 * The report is multipart/report; report-type=delivery-status:
 *   1. text/plain: a human explanation in Postfix's words, one paragraph
 *      per recipient with its reason;
 *   2. message/delivery-status: Reporting-MTA, Arrival-Date, and per
 *      recipient Final-Recipient, Action, Status, Diagnostic-Code (plus
 *      Last-Attempt-Date and Will-Retry-Until for delays);
 *   3. the original: message/rfc822 when it is under BOUNCE_FULL_LIMIT
 *      octets, otherwise only its header section as text/rfc822-headers.
 * Every line ends in CRLF; lines in parts 1 and 2 are folded to at most 78
 * columns where white space allows and never exceed 998 octets. Part 3 is
 * streamed from the message file in chunks, never held whole in memory; a
 * bare LF in it becomes CRLF, nothing else is changed. */
#ifndef SMALT_BOUNCE_H
#define SMALT_BOUNCE_H

#include <stddef.h>
#include <time.h>

#include "queue/envelope.h"

/* Originals smaller than this are returned whole; larger ones only with
 * their headers. */
#define BOUNCE_FULL_LIMIT (64 * 1024)

enum dsn_kind {
	DSN_FAILURE, /* "Undelivered Mail Returned to Sender", Action: failed */
	DSN_DELAY    /* "Delayed Mail (still being retried)", Action: delayed */
};

/* One recipient to report. */
struct bounce_rcpt {
	const char *address;
	/* Enhanced status "x.y.z"; NULL, "" or malformed means 5.0.0 for a
	 * failure and 4.0.0 for a delay. */
	const char *dsn;
	/* The last attempt's reason, e.g. "550 5.1.1 <b@x>: User unknown",
	 * "host mx.x[192.0.2.1] said: 550 5.1.1 ... (in reply to RCPT TO
	 * command)" or "cannot open mailbox: Permission denied"; may be
	 * NULL. Part 1 shows it whole. The Diagnostic-Code is "smtp; " and
	 * the remote reply when it starts with, or has after "said: ", a
	 * three-digit reply code (without the "(in reply to ...)"), else
	 * "x-unix; " and the reason. Control characters and runs of white
	 * space become one space, non-ASCII octets become '?'. */
	const char *reason;
};

struct bounce_params {
	enum dsn_kind kind;
	const char *hostname; /* ours: From, Message-ID, Reporting-MTA */
	const char *to;	      /* the To: header, i.e. bounce_recipient() */
	const struct envelope *env;	 /* the message that failed or waits */
	const struct bounce_rcpt *rcpts; /* those to report, in this order */
	size_t nrcpt;
	int msg_fd; /* its message file, e.g. queue_msg_open(); only pread */
	time_t now; /* Date:, Last-Attempt-Date: */
	/* Delays: when the message will be given up (Will-Retry-Until and the
	 * text say so); 0 leaves it out. Ignored for failures. */
	time_t retry_until;
};

/* Writes the whole report through write_fn, which returns 0 or non-zero
 * with errno set (bounce_queue_write adapts queue_msg_write). A caller
 * that wants a trace header (Received:) writes it before calling.
 * Returns 0, or -1 with errno: the write_fn's, pread's, EINVAL for bad
 * params, EEXIST when no boundary absent from the original was found. */
typedef int (*bounce_write_fn)(void *arg, const void *buf, size_t len);
int bounce_write(const struct bounce_params *p, bounce_write_fn write_fn,
		 void *arg);

/* A bounce_write_fn for arg = struct queue_msg *. */
int bounce_queue_write(void *msg, const void *buf, size_t len);

/* Whom to send a DSN about env to (SPEC §5: never to the null sender):
 *   - a normal sender: the sender;
 *   - the null sender (the failed mail was itself a bounce or another
 *     notification): postmaster_address, a "double bounce";
 *   - the null sender and every recipient is postmaster_address (it was
 *     a double bounce, or mail for the postmaster that the postmaster
 *     cannot get): "", do not send; anything else would loop.
 * postmaster_address NULL or "" means "postmaster". The result is never
 * the null address: it is "" (do not send) or an address. It points into
 * env or at postmaster_address. */
const char *bounce_recipient(const struct envelope *env,
			     const char *postmaster_address);

#endif
