#include "deliver/result.h"

#include <stdarg.h>
#include <stdio.h>

#include "common/util.h"

void
deliver_result_set(struct deliver_result *r, enum deliver_status status,
		   const char *dsn, const char *fmt, ...)
{
	va_list ap;
	r->status = status;
	smalt_strlcpy(r->dsn, dsn, sizeof(r->dsn));
	va_start(ap, fmt);
	vsnprintf(r->reason, sizeof(r->reason), fmt, ap);
	va_end(ap);
}
