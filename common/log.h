/* Logging in Postfix's line shapes (SPEC §7), to syslog facility mail or
 * to stderr with a syslog-style prefix so the same tools read both. */
#ifndef SMALT_LOG_H
#define SMALT_LOG_H

#include <stdarg.h>

/* LOG_DEST_NONE drops every line: for fuzz targets, whose stderr is
 * libFuzzer's report channel. */
enum log_dest { LOG_DEST_SYSLOG, LOG_DEST_STDERR, LOG_DEST_NONE };

/* Sets where lines go and the host name shown in stderr lines. May be
 * called again (after a reload or in a child). */
void log_init(enum log_dest dest, const char *hostname);
/* The part that speaks: "smtpd", "qmgr", "local", ...; the tag becomes
 * smalt/<part>[pid]. Call after fork() so the pid is right. */
void log_set_part(const char *part);
/* While a daemon starts from a terminal, its warnings and errors go to
 * syslog and to stderr, so whoever started it sees why it stopped. */
void log_set_echo_stderr(int on);
/* 1 shows log_debug lines. */
void log_set_verbose(int verbose);

void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* One info line under another part's tag (smalt/PART), e.g. the qmgr
 * speaking for a channel it handles itself. */
void log_info_as(const char *part, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Prefixed "warning: " as Postfix does, so admins can grep for it. */
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prefixed "error: ". */
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "fatal: ", then exit(1). Only for states the program cannot go on from:
 * a programmer error or a start-up failure. */
void fatal(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

void log_vline(int priority, const char *prefix, const char *fmt, va_list ap);

#endif
