#include "deliver/result.h"

#include <stdarg.h>
#include <stdio.h>

#include "common/util.h"

void
deliver_result_vset(struct deliver_result *r, enum deliver_status status,
		    const char *dsn, const char *fmt, va_list ap)
{
	r->status = status;
	smalt_strlcpy(r->dsn, dsn, sizeof(r->dsn));
	vsnprintf(r->reason, sizeof(r->reason), fmt, ap);
}

void
deliver_result_set(struct deliver_result *r, enum deliver_status status,
		   const char *dsn, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	deliver_result_vset(r, status, dsn, fmt, ap);
	va_end(ap);
}
