/* What every delivery channel shares (mailbox, pipe, and later smtp):
 * the outcome of one delivery to one recipient, and the conversion of a
 * queue message file's CRLF line endings to the LF that local deliveries
 * write (SPEC §9). */
#ifndef SMALT_RESULT_H
#define SMALT_RESULT_H

#include <stdarg.h>
#include <stddef.h>

enum deliver_status {
	DELIVER_OK,
	DELIVER_DEFER, /* 4.x.x: try again later */
	DELIVER_BOUNCE /* 5.x.x: give up on this recipient */
};

struct deliver_result {
	enum deliver_status status;
	char dsn[16];	  /* "2.0.0", "4.2.2", "5.2.0", ... */
	char reason[256]; /* for the log's status=... (REASON) and bounces */
};

/* Fills r; the reason is printf-formatted and cut to fit. (Defined in
 * result.c.) */
void deliver_result_set(struct deliver_result *r, enum deliver_status status,
			const char *dsn, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void deliver_result_vset(struct deliver_result *r, enum deliver_status status,
			 const char *dsn, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

/* Copies n octets of raw message text from in to out with every CRLF
 * turned into LF, also when the pair is split between two calls: a CR at
 * the end of in is held back in *held_cr (start with 0) and written by
 * the next call, or dropped when that call starts with LF. A lone CR is
 * kept. out must have room for n + 1 octets; returns how many were
 * written. At the end of the text, a CR still held is the caller's to
 * write. (Defined in mailbox.c.) */
size_t crlf_to_lf(int *held_cr, const char *in, size_t n, char *out);

#endif
