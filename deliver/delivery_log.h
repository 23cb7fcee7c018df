/* The one line per recipient and attempt that SPEC §7 fixes, in
 * Postfix's shape so pflogsumm counts it:
 *   ID: to=<R>, [orig_to=<O>, ]relay=RELAY, delay=S, delays=A/B/C/D,
 *       dsn=X.Y.Z, status=sent|deferred|bounced (REASON) */
#ifndef SMALT_DELIVERY_LOG_H
#define SMALT_DELIVERY_LOG_H

#include <stdint.h>

#include "deliver/result.h"

/* Microsecond clock readings along one delivery. delays= splits
 * end - arrival into: queue wait (arrival..active), scheduling
 * (active..sent), set-up (sent..start) and transmission (start..end). */
struct delivery_times {
	uint64_t arrival_us, active_us, sent_us, start_us, end_us;
};

/* part: the tag's part ("local", "pipe", "smtp", "error", ...); orig_to
 * NULL or equal to to leaves orig_to= out. */
void delivery_log(const char *part, const char *id, const char *to,
		  const char *orig_to, const char *relay,
		  const struct delivery_times *t,
		  const struct deliver_result *r);

/* "0.12", "3.4", "57": Postfix's way of writing seconds in delays=. */
char *delivery_seconds(uint64_t from_us, uint64_t to_us, char *buf, size_t len);

#endif
