#include "common/strbuf.h"

#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "common/util.h"

void
strbuf_add(struct strbuf *b, const char *s, size_t n)
{
	/* Doubling keeps a long run of small additions linear. */
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 64;
		while (cap < b->len + n + 1)
			cap *= 2;
		b->s = xrealloc(b->s, cap);
		b->cap = cap;
	}
	memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = '\0';
}

void
strbuf_adds(struct strbuf *b, const char *s)
{
	strbuf_add(b, s, strlen(s));
}

void
strbuf_addf(struct strbuf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *tmp = NULL;
	int n = vasprintf(&tmp, fmt, ap);
	va_end(ap);
	if (n < 0)
		xmalloc((size_t)-1 / 2); /* reports out of memory and exits */
	strbuf_add(b, tmp, (size_t)n);
	free(tmp);
}
