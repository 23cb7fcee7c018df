/* Small helpers every part uses: allocation that cannot return NULL,
 * bounded string copies, and fatal() for programmer errors only. */
#ifndef SMALT_UTIL_H
#define SMALT_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define SMALT_NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* Out of memory is not recoverable for us: log and exit 75 (EX_TEMPFAIL)
 * so that the client or the caller of sendmail tries again later. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* Formatted xstrdup. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Copies at most size-1 bytes and always terminates; returns strlen(src)
 * so truncation is detectable as in OpenBSD's strlcpy. */
size_t smalt_strlcpy(char *dst, const char *src, size_t size);

/* ASCII-only case folding: domains and local parts are compared this way,
 * never through the locale. */
int ascii_strcasecmp(const char *a, const char *b);
int ascii_strncasecmp(const char *a, const char *b, size_t n);
void ascii_lower(char *s);

/* White space as config and table files have it: CR counts, so files
 * with CRLF line ends read the same. */
int text_is_blank(int c);
/* Moves *s forward and *e back past such white space. */
void text_trim(const char **s, const char **e);
/* snprintf into a caller's error buffer, which may be NULL or empty. */
void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Writes all of buf, retrying on EINTR and short writes. 0 or -1/errno. */
int write_all(int fd, const void *buf, size_t len);
/* Unblocks SIGTERM, SIGINT and SIGHUP, which smaltd's children keep
 * blocked from the fork until their handlers are in place. */
void smalt_unblock_stop_signals(void);
/* how: SIG_BLOCK or SIG_UNBLOCK for those three. */
void smalt_block_stop_signals(int how);

/* Reads a whole file into a malloc'd buffer (not NUL-terminated).
 * Returns 0, or an errno value: EFBIG when it is longer than max. */
int read_whole_file(const char *path, size_t max, char **bufp, size_t *lenp);

/* fsync a directory by path: the step that makes a rename durable. */
int fsync_dir(const char *path);

/* An RFC 5322 date-time in local time with its numeric zone, e.g.
 * "Sun, 29 Nov 2026 05:41:54 +0000". buf should hold 40 bytes. */
char *rfc5322_date(time_t t, char *buf, size_t len);

/* The strict decimal of the spool's own file formats: digits only, no
 * sign, no leading zeros, at most max. 0, or -1. */
int parse_decimal(const char *s, uint64_t max, uint64_t *out);

/* Wall clock in microseconds since the epoch. */
uint64_t now_usec(void);

#endif
