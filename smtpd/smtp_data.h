/* The DATA phase as a byte-stream state machine: dot-unstuffing, line
 * endings, the end-of-data mark, and the limits. It holds no message in
 * memory: unstuffed text goes to the sink in pieces as it arrives.
 *
 * Only CR LF "." CR LF ends DATA (with the start of DATA counting as
 * after a CR LF). "\n.\n", "\r.\r", "\n.\r\n" and "\r\n.\n" never do: a
 * lone "." line they make is kept as message text, so a second message
 * cannot be smuggled inside the first. Bare CR and bare LF become CR LF
 * in the stored text and are reported, so `bare_newline = reject` can
 * refuse the message once it has been read to its end. */
#ifndef SMALT_SMTP_DATA_H
#define SMALT_SMTP_DATA_H

#include <stddef.h>
#include <stdint.h>

#define SMTP_TEXT_LINE_MAX 1000 /* octets with CR LF, RFC 5321 4.5.3.1.6 */

/* Receives unstuffed message text. Returns 0, or -1 to report a write
 * error (remembered in sink_failed; the rest of DATA is still read). */
typedef int (*smtp_data_sink)(void *arg, const char *buf, size_t len);

struct smtp_data {
	smtp_data_sink sink;
	void *sink_arg;
	uint64_t max_size; /* 0: no limit */

	uint64_t size;	     /* octets of message text produced */
	int too_big;	     /* size would exceed max_size: output stopped */
	int long_line;	     /* a line over SMTP_TEXT_LINE_MAX */
	int bare_nl;	     /* a bare CR or LF was seen */
	int sink_failed;     /* the sink returned -1: output stopped */
	int done;	     /* the end-of-data mark was read */
	unsigned long lines; /* text lines read so far */

	/* parser state */
	int prev_crlf;	 /* the last line ended with a real CR LF */
	int pending_cr;	 /* a CR waits for its LF */
	int dot_first;	 /* the line so far is a single leading "." */
	size_t line_len; /* wire octets of the current line so far */
	size_t outlen;
	char out[8192];
};

void smtp_data_init(struct smtp_data *d, uint64_t max_size, smtp_data_sink sink,
		    void *sink_arg);
/* Feeds wire bytes. Returns how many were consumed: all of len, or fewer
 * when the end-of-data mark was found (d->done is then set and the bytes
 * after the mark belong to the next command). */
size_t smtp_data_feed(struct smtp_data *d, const char *buf, size_t len);
/* Writes out what is still staged (called at the end). 0 or -1. */
int smtp_data_flush(struct smtp_data *d);

#endif
