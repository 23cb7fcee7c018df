#include "common/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"

static enum log_dest log_dest = LOG_DEST_STDERR;
static char log_host[256] = "localhost";
static char log_tag[64] = "smalt";
static int log_verbose;
static int log_echo_stderr;

void
log_init(enum log_dest dest, const char *hostname)
{
	log_dest = dest;
	if (hostname != NULL && *hostname != '\0') {
		/* syslog shows the short name; so do we on stderr. */
		smalt_strlcpy(log_host, hostname, sizeof(log_host));
		char *dot = strchr(log_host, '.');
		if (dot != NULL)
			*dot = '\0';
	}
	if (dest == LOG_DEST_SYSLOG) {
		closelog();
		openlog(log_tag, LOG_PID | LOG_NDELAY, LOG_MAIL);
	}
}

void
log_set_part(const char *part)
{
	snprintf(log_tag, sizeof(log_tag), "smalt/%s", part);
	if (log_dest == LOG_DEST_SYSLOG) {
		closelog();
		openlog(log_tag, LOG_PID | LOG_NDELAY, LOG_MAIL);
	}
}

void
log_info_as(const char *part, const char *fmt, ...)
{
	char saved[sizeof(log_tag)];
	memcpy(saved, log_tag, sizeof(saved));
	if (strcmp(log_tag + strlen("smalt/"), part) != 0)
		log_set_part(part);
	va_list ap;
	va_start(ap, fmt);
	log_vline(LOG_INFO, "", fmt, ap);
	va_end(ap);
	if (strcmp(saved, log_tag) != 0)
		log_set_part(saved + strlen("smalt/"));
}

void
log_set_echo_stderr(int on)
{
	log_echo_stderr = on;
}

void
log_set_verbose(int verbose)
{
	log_verbose = verbose;
}

void
log_vline(int priority, const char *prefix, const char *fmt, va_list ap)
{
	if (log_dest == LOG_DEST_NONE)
		return;
	/* Callers log an error and then return -1 with errno still set. */
	int saved_errno = errno;
	char msg[2048];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	/* One event, one line: a CR or LF from a peer must not forge lines,
	 * and other control characters must not reach a terminal. */
	for (char *p = msg; *p; p++) {
		if (*p == '\n' || *p == '\r')
			*p = ' ';
		else if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	}
	if (log_dest == LOG_DEST_SYSLOG) {
		syslog(priority, "%s%s", prefix, msg);
		if (log_echo_stderr && priority <= LOG_WARNING)
			fprintf(stderr, "%s: %s%s\n", log_tag, prefix, msg);
		errno = saved_errno;
		return;
	}
	char stamp[32], line[2400];
	time_t now = time(NULL);
	struct tm tm;
	localtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%b %e %H:%M:%S", &tm);
	/* One write per line: several processes share this stderr and
	 * their lines must not interleave. */
	int n = snprintf(line, sizeof(line), "%s %s %s[%ld]: %s%s\n", stamp,
			 log_host, log_tag, (long)getpid(), prefix, msg);
	if (n > (int)sizeof(line) - 1) {
		n = (int)sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	if (write_all(2, line, (size_t)n) != 0) {
		/* Nowhere left to report it. */
	}
	errno = saved_errno;
}

#define LOG_FN(name, prio, prefix)                                             \
	void name(const char *fmt, ...)                                        \
	{                                                                      \
		va_list ap;                                                    \
		va_start(ap, fmt);                                             \
		log_vline(prio, prefix, fmt, ap);                              \
		va_end(ap);                                                    \
	}

LOG_FN(log_info, LOG_INFO, "")
LOG_FN(log_warn, LOG_WARNING, "warning: ")
LOG_FN(log_error, LOG_ERR, "error: ")

void
log_debug(const char *fmt, ...)
{
	if (!log_verbose)
		return;
	va_list ap;
	va_start(ap, fmt);
	log_vline(LOG_DEBUG, "", fmt, ap);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vline(LOG_CRIT, "fatal: ", fmt, ap);
	va_end(ap);
	exit(1);
}
