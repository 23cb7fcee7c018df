/* log.c in stderr mode: the syslog-shaped prefix that pflogsumm and
 * friends parse (SPEC section 7), the Postfix severity prefixes, one line
 * per event, and debug lines only when verbose. */
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "tests/lib/testutil.h"
#include "tests/unit/check.h"

static char *tmpdir;
static char capture_path[512];
static int saved_stderr = -1;

/* Points fd 2 at a fresh file, so that what log.c writes can be read
 * back exactly as an admin's log collector would see it. */
static void
capture_start(void)
{
	snprintf(capture_path, sizeof(capture_path), "%s/stderr", tmpdir);
	FILE *f = fopen(capture_path, "w");
	if (f == NULL) {
		perror(capture_path);
		exit(1);
	}
	fflush(stderr);
	saved_stderr = dup(STDERR_FILENO);
	dup2(fileno(f), STDERR_FILENO);
	fclose(f);
}

/* Restores fd 2 and returns what was written (malloc'd). */
static char *
capture_end(void)
{
	fflush(stderr);
	dup2(saved_stderr, STDERR_FILENO);
	close(saved_stderr);
	size_t len;
	char *text = test_read_file(capture_path, &len);
	if (text == NULL) {
		perror(capture_path);
		exit(1);
	}
	return text;
}

static int
count_lines(const char *text)
{
	int n = 0;
	for (; *text; text++)
		n += *text == '\n';
	return n;
}

/* The n-th line (0-based) without its newline, in a static buffer. */
static const char *
nth_line(const char *text, int n)
{
	static char line[4096];
	for (int i = 0; i < n && text != NULL; i++) {
		text = strchr(text, '\n');
		if (text != NULL)
			text++;
	}
	if (text == NULL)
		return "";
	size_t len = strcspn(text, "\n");
	if (len >= sizeof(line))
		len = sizeof(line) - 1;
	memcpy(line, text, len);
	line[len] = '\0';
	return line;
}

/* "Mmm dd hh:mm:ss mx smalt/smtpd[PID]: " + body, whole line. */
static int
line_matches(const char *line, const char *body)
{
	char pattern[1024];
	snprintf(pattern, sizeof(pattern),
		 "^(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
		 "[ 1-3][0-9] [0-2][0-9]:[0-5][0-9]:[0-6][0-9] "
		 "mx smalt/smtpd\\[%ld\\]: %s$",
		 (long)getpid(), body);
	regex_t re;
	if (regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB) != 0) {
		fprintf(stderr, "bad test regex: %s\n", pattern);
		return 0;
	}
	int ok = regexec(&re, line, 0, NULL, 0) == 0;
	regfree(&re);
	if (!ok)
		fprintf(stderr, "line \"%s\" does not match \"%s\"\n", line,
			pattern);
	return ok;
}

static void
test_shapes(void)
{
	capture_start();
	log_init(LOG_DEST_STDERR, "mx.example.com");
	log_set_part("smtpd");
	log_set_verbose(0);
	log_info("connect from client.example[192.0.2.1]");
	log_warn("hostname %s does not resolve", "nowhere.example");
	log_error("queue file %d unreadable", 42);
	log_info("%s", "");
	char *text = capture_end();

	CHECK(count_lines(text) == 4);
	CHECK(
	    line_matches(nth_line(text, 0),
			 "connect from client\\.example\\[192\\.0\\.2\\.1\\]"));
	CHECK(line_matches(nth_line(text, 1),
			   "warning: hostname nowhere\\.example does not "
			   "resolve"));
	CHECK(
	    line_matches(nth_line(text, 2), "error: queue file 42 unreadable"));
	CHECK(line_matches(nth_line(text, 3), ""));
	free(text);
}

/* A CR or LF from a peer, e.g. in a HELO name, must not start a forged
 * log line of its own. */
static void
test_one_event_one_line(void)
{
	capture_start();
	log_info("helo=<a\r\nJan  1 00:00:00 mx smalt/qmgr[1]: forged>");
	log_warn("x\ny\rz\n");
	char *text = capture_end();

	CHECK(count_lines(text) == 2);
	CHECK(strchr(text, '\r') == NULL);
	CHECK(line_matches(nth_line(text, 0),
			   "helo=<a  Jan  1 00:00:00 mx smalt/qmgr\\[1\\]: "
			   "forged>"));
	CHECK(line_matches(nth_line(text, 1), "warning: x y z "));
	free(text);
}

static void
test_debug_only_when_verbose(void)
{
	capture_start();
	log_set_verbose(0);
	log_debug("hidden %d", 1);
	log_set_verbose(1);
	log_debug("shown %d", 2);
	log_set_verbose(0);
	log_debug("hidden %d", 3);
	char *text = capture_end();

	CHECK(count_lines(text) == 1);
	CHECK(line_matches(nth_line(text, 0), "shown 2"));
	CHECK(strstr(text, "hidden") == NULL);
	free(text);
}

/* A long message is cut, never split into a second line. */
static void
test_long_message(void)
{
	char big[5000];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	capture_start();
	log_info("%s", big);
	char *text = capture_end();

	CHECK(count_lines(text) == 1);
	CHECK(line_matches(nth_line(text, 0), "x+"));
	free(text);
}

static void
test_part_and_host(void)
{
	capture_start();
	log_set_part("qmgr");
	log_info("ABC123: removed");
	log_init(LOG_DEST_STDERR, "mx.example.com");
	log_set_part("smtpd");
	log_info("back");
	char *text = capture_end();

	CHECK(count_lines(text) == 2);
	CHECK(strstr(nth_line(text, 0), " mx smalt/qmgr[") != NULL);
	CHECK(strstr(nth_line(text, 0), "]: ABC123: removed") != NULL);
	CHECK(line_matches(nth_line(text, 1), "back"));
	free(text);
}

int
main(void)
{
	tmpdir = test_mkdtemp("log");
	if (tmpdir == NULL) {
		perror("test_mkdtemp");
		return 1;
	}
	test_shapes();
	test_one_event_one_line();
	test_debug_only_when_verbose();
	test_long_message();
	test_part_and_host();
	test_rm_rf(tmpdir);
	free(tmpdir);
	return check_done();
}
