#include "smtpd/smtp_data.h"

#include <string.h>

void
smtp_data_init(struct smtp_data *d, uint64_t max_size, smtp_data_sink sink,
	       void *sink_arg)
{
	memset(d, 0, sizeof(*d));
	d->sink = sink;
	d->sink_arg = sink_arg;
	d->max_size = max_size;
	d->prev_crlf = 1; /* DATA's own CR LF precedes the first line */
}

int
smtp_data_flush(struct smtp_data *d)
{
	if (d->outlen > 0 && !d->too_big && !d->sink_failed &&
	    d->sink(d->sink_arg, d->out, d->outlen) != 0)
		d->sink_failed = 1;
	d->outlen = 0;
	return d->sink_failed ? -1 : 0;
}

static void
emit(struct smtp_data *d, const char *s, size_t n)
{
	if (d->too_big || d->sink_failed)
		return;
	if (d->max_size && d->size + n > d->max_size) {
		/* Nothing more is kept; the rest is only read. */
		d->too_big = 1;
		d->outlen = 0;
		return;
	}
	d->size += n;
	while (n > 0) {
		if (d->outlen == sizeof(d->out) && smtp_data_flush(d) != 0)
			return;
		size_t room = sizeof(d->out) - d->outlen;
		size_t k = n < room ? n : room;
		memcpy(d->out + d->outlen, s, k);
		d->outlen += k;
		s += k;
		n -= k;
	}
}

/* A line ended, with a real CR LF (crlf) or a bare CR or LF. Returns 1
 * when it was the end-of-data mark. */
static int
end_line(struct smtp_data *d, int crlf)
{
	if (d->dot_first) {
		d->dot_first = 0;
		if (crlf && d->prev_crlf)
			return 1;
		/* A lone "." not framed by CR LF on both sides is text. */
		emit(d, ".", 1);
	}
	if (!crlf)
		d->bare_nl = 1;
	/* The limit counts the line as sent, with its two-octet ending. */
	if (d->line_len + 2 > SMTP_TEXT_LINE_MAX)
		d->long_line = 1;
	emit(d, "\r\n", 2);
	d->prev_crlf = crlf;
	d->line_len = 0;
	d->lines++;
	return 0;
}

size_t
smtp_data_feed(struct smtp_data *d, const char *buf, size_t len)
{
	size_t i = 0;
	while (i < len && !d->done) {
		char c = buf[i++];
		if (d->pending_cr) {
			d->pending_cr = 0;
			if (c == '\n') {
				d->done = end_line(d, 1);
				continue;
			}
			end_line(d, 0); /* bare CR */
		}
		if (c == '\r') {
			d->pending_cr = 1;
			continue;
		}
		if (c == '\n') {
			end_line(d, 0); /* bare LF */
			continue;
		}
		d->line_len++;
		if (d->line_len == 1 && c == '.') {
			/* Stuffed, or the end mark: the next octet tells. */
			d->dot_first = 1;
			continue;
		}
		/* A leading dot followed by text is dropped (unstuffing). */
		d->dot_first = 0;
		/* Copy the run of plain octets in one go. */
		size_t start = i - 1;
		while (i < len && buf[i] != '\r' && buf[i] != '\n')
			i++;
		d->line_len += i - start - 1;
		emit(d, buf + start, i - start);
	}
	if (d->done)
		smtp_data_flush(d);
	return i;
}
