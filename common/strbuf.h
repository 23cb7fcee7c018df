/* A growing, always NUL-terminated string: for text built piece by piece
 * (printed settings, table values with continuation lines, envelopes). */
#ifndef SMALT_STRBUF_H
#define SMALT_STRBUF_H

#include <stddef.h>

struct strbuf {
	char *s; /* NULL until something is added */
	size_t len, cap;
};

void strbuf_add(struct strbuf *b, const char *s, size_t n);
void strbuf_adds(struct strbuf *b, const char *s);
void strbuf_addf(struct strbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
