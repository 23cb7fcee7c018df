#include "deliver/delivery_log.h"

#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"

char *
delivery_seconds(uint64_t from_us, uint64_t to_us, char *buf, size_t len)
{
	double s = to_us > from_us ? (double)(to_us - from_us) / 1e6 : 0.0;
	if (s >= 10)
		snprintf(buf, len, "%.0f", s);
	else if (s >= 1)
		snprintf(buf, len, "%.1f", s);
	else
		snprintf(buf, len, "%.2f", s);
	/* Trailing zeros say nothing: 0.10 -> 0.1, 0.00 -> 0. */
	if (strchr(buf, '.') != NULL) {
		size_t n = strlen(buf);
		while (n > 0 && buf[n - 1] == '0')
			buf[--n] = '\0';
		if (n > 0 && buf[n - 1] == '.')
			buf[--n] = '\0';
	}
	return buf;
}

static const char *
status_word(enum deliver_status s)
{
	switch (s) {
	case DELIVER_OK:
		return "sent";
	case DELIVER_DEFER:
		return "deferred";
	case DELIVER_BOUNCE:
		return "bounced";
	}
	return "?";
}

void
delivery_log(const char *part, const char *id, const char *to,
	     const char *orig_to, const char *relay,
	     const struct delivery_times *t, const struct deliver_result *r)
{
	char total[16], a[16], b[16], c[16], d[16], orig[600] = "";
	/* A stage whose clock was not read counts as zero. */
	uint64_t active = t->active_us ? t->active_us : t->arrival_us;
	uint64_t sent = t->sent_us ? t->sent_us : active;
	uint64_t start = t->start_us ? t->start_us : sent;
	if (orig_to != NULL && strcmp(orig_to, to) != 0)
		snprintf(orig, sizeof(orig), "orig_to=<%s>, ", orig_to);
	log_info_as(
	    part,
	    "%s: to=<%s>, %srelay=%s, delay=%s, delays=%s/%s/%s/%s, "
	    "dsn=%s, status=%s (%s)",
	    id, to, orig, relay,
	    delivery_seconds(t->arrival_us, t->end_us, total, sizeof(total)),
	    delivery_seconds(t->arrival_us, active, a, sizeof(a)),
	    delivery_seconds(active, sent, b, sizeof(b)),
	    delivery_seconds(sent, start, c, sizeof(c)),
	    delivery_seconds(start, t->end_us, d, sizeof(d)), r->dsn,
	    status_word(r->status), r->reason);
}
