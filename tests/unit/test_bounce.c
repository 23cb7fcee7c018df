/* Delivery status notifications: composed into files, then read back by
 * Python's email package (bounce_check.py) the way a mail client would,
 * so the checks are about what the recipient sees, not our own parser. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/strbuf.h"
#include "common/util.h"
#include "deliver/bounce.h"
#include "queue/queue.h"
#include "tests/lib/testutil.h"
#include "tests/unit/check.h"

static char *tmpdir;
static int seq;

/* What bounce_check.py printed: key=value lines. */
struct facts {
	char *text;
	size_t len;
};

static const char *
fact(const struct facts *f, const char *key)
{
	static char value[8192];
	size_t klen = strlen(key);
	for (const char *line = f->text; line != NULL && *line != '\0';) {
		const char *nl = strchr(line, '\n');
		size_t n = nl ? (size_t)(nl - line) : strlen(line);
		if (n > klen && strncmp(line, key, klen) == 0 &&
		    line[klen] == '=') {
			size_t vlen = n - klen - 1;
			if (vlen >= sizeof(value))
				vlen = sizeof(value) - 1;
			memcpy(value, line + klen + 1, vlen);
			value[vlen] = '\0';
			return value;
		}
		line = nl ? nl + 1 : NULL;
	}
	return NULL;
}

static long
fact_num(const struct facts *f, const char *key)
{
	const char *v = fact(f, key);
	return v ? strtol(v, NULL, 10) : -1;
}

static int
fact_has(const struct facts *f, const char *key, const char *needle)
{
	const char *v = fact(f, key);
	return v != NULL && strstr(v, needle) != NULL;
}

/* bounce_check.py sits next to this file. */
static struct facts
parse_with_python(const char *path)
{
	struct facts f = {0};
	const char *slash = strrchr(__FILE__, '/');
	int dirlen = slash ? (int)(slash - __FILE__) : 1;
	char *cmd = xasprintf("python3 '%.*s/bounce_check.py' '%s'", dirlen,
			      slash ? __FILE__ : ".", path);
	FILE *p = popen(cmd, "r");
	CHECK(p != NULL);
	if (p != NULL) {
		struct strbuf b = {0};
		char buf[4096];
		size_t n;
		while ((n = fread(buf, 1, sizeof(buf), p)) > 0)
			strbuf_add(&b, buf, n);
		CHECK(pclose(p) == 0);
		f.text = b.s;
		f.len = b.len;
	}
	free(cmd);
	return f;
}

static int
file_write_fn(void *arg, const void *buf, size_t len)
{
	return write_all(*(int *)arg, buf, len);
}

static char *
write_original(const char *text, size_t len)
{
	char *path = xasprintf("%s/orig%d", tmpdir, seq++);
	CHECK(test_write_file(path, text, len) == 0);
	return path;
}

/* A message as smtpd stores it: our Received first, CRLF throughout. */
static char *
small_original(void)
{
	const char *msg =
	    "Received: from client.example.org (client [192.0.2.1])\r\n"
	    "\tby mx.example.com (smalt) with ESMTP id 0123456789ABCDEF; "
	    "Sun, 29 Nov 2026 05:41:54 +0000\r\n"
	    "From: Alice <alice@example.com>\r\n"
	    "To: bob@example.net\r\n"
	    "Subject: quarterly figures\r\n"
	    "\r\n"
	    "Hello Bob,\r\n"
	    "the figures are attached.\r\n";
	return write_original(msg, strlen(msg));
}

static void
make_env(struct envelope *env, const char *sender, int nrcpt)
{
	envelope_init(env);
	smalt_strlcpy(env->id, "0123456789ABCDEF", sizeof(env->id));
	env->arrival = 1700000000;
	envelope_set(&env->sender, sender);
	for (int i = 0; i < nrcpt; i++) {
		char rcpt[64];
		snprintf(rcpt, sizeof(rcpt), "r%d@example.net", i);
		envelope_add_rcpt(env, rcpt);
	}
}

/* Composes a DSN about the message file orig into a new file and returns
 * that file's path (malloc'd), or NULL when bounce_write failed. */
static char *
compose(const struct bounce_params *base, const char *orig)
{
	struct bounce_params p = *base;
	char *out = xasprintf("%s/dsn%d", tmpdir, seq++);
	p.msg_fd = open(orig, O_RDONLY | O_CLOEXEC);
	int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	CHECK(p.msg_fd >= 0 && fd >= 0);
	int rc = bounce_write(&p, file_write_fn, &fd);
	CHECK(rc == 0);
	close(fd);
	close(p.msg_fd);
	if (rc != 0) {
		free(out);
		return NULL;
	}
	return out;
}

static void
check_common(const struct facts *f, const char *to, const char *subject)
{
	CHECK_STR(fact(f, "content_type"), "multipart/report");
	CHECK_STR(fact(f, "report_type"), "delivery-status");
	CHECK_STR(fact(f, "from"),
		  "MAILER-DAEMON@mx.example.com (Mail Delivery System)");
	CHECK_STR(fact(f, "to"), to);
	CHECK_STR(fact(f, "subject"), subject);
	CHECK_STR(fact(f, "auto-submitted"), "auto-replied");
	CHECK_STR(fact(f, "mime-version"), "1.0");
	CHECK(fact_has(f, "message-id", "@mx.example.com>"));
	CHECK(fact_num(f, "date_ok") == 1);
	CHECK(fact_num(f, "defects") == 0);
	CHECK(fact_num(f, "nparts") == 3);
	CHECK_STR(fact(f, "part1_type"), "text/plain");
	CHECK_STR(fact(f, "part2_type"), "message/delivery-status");
	CHECK_STR(fact(f, "reporting_mta"), "dns; mx.example.com");
	CHECK_STR(fact(f, "queue_id"), "0123456789ABCDEF");
	CHECK(fact_num(f, "arrival_date_ok") == 1);
	CHECK(fact_num(f, "all_crlf") == 1);
	long max = fact_num(f, "max_line_12");
	CHECK(max > 0 && max <= 998);
	CHECK(fact_num(f, "closed") == 1);
}

static const char *reasons[] = {
    "550 5.1.1 <r0@example.net>: Recipient address rejected: User unknown",
    "552 5.2.2 mailbox full",
    "cannot append to mailbox /var/mail/r2: Permission denied",
};
static const char *codes[] = {"5.1.1", "5.2.2", "5.2.0"};

static void
check_recipients(const struct facts *f, size_t n, const char *action)
{
	CHECK(fact_num(f, "status_blocks") == (long)n + 1);
	for (size_t i = 0; i < n; i++) {
		char key[64], want[256];
		snprintf(key, sizeof(key), "rcpt%zu_final", i);
		snprintf(want, sizeof(want), "rfc822; r%zu@example.net", i);
		CHECK_STR(fact(f, key), want);
		snprintf(key, sizeof(key), "rcpt%zu_action", i);
		CHECK_STR(fact(f, key), action);
		snprintf(key, sizeof(key), "rcpt%zu_status", i);
		CHECK_STR(fact(f, key), codes[i]);
		snprintf(key, sizeof(key), "rcpt%zu_diag", i);
		snprintf(want, sizeof(want), "%s; %s",
			 i == 2 ? "x-unix" : "smtp", reasons[i]);
		CHECK_STR(fact(f, key), want);
		/* Part 1 names each recipient with its reason. */
		snprintf(want, sizeof(want), "<r%zu@example.net>: %s", i,
			 reasons[i]);
		CHECK(fact_has(f, "text", want));
	}
}

static void
test_failure(size_t n)
{
	struct envelope env;
	make_env(&env, "alice@example.com", (int)n);
	struct bounce_rcpt rcpts[3];
	for (size_t i = 0; i < n; i++)
		rcpts[i] = (struct bounce_rcpt){env.rcpt[i].address, codes[i],
						reasons[i]};
	struct bounce_params p = {.kind = DSN_FAILURE,
				  .hostname = "mx.example.com",
				  .to = bounce_recipient(&env, "postmaster"),
				  .env = &env,
				  .rcpts = rcpts,
				  .nrcpt = n,
				  .now = 1700003600};
	char *orig = small_original();
	char *out = compose(&p, orig);
	struct facts f = parse_with_python(out ? out : "/nonexistent");
	check_common(&f, "<alice@example.com>",
		     "Undelivered Mail Returned to Sender");
	check_recipients(&f, n, "failed");
	CHECK(fact_has(&f, "text", "could not | be delivered"));
	CHECK(fact_num(&f, "rcpt0_retry_ok") == 0);
	CHECK_STR(fact(&f, "part3_type"), "message/rfc822");
	CHECK_STR(fact(&f, "orig_subject"), "quarterly figures");

	/* Part 3 carries the original's bytes unchanged. */
	size_t olen, dlen;
	char *o = test_read_file(orig, &olen), *d = NULL;
	if (out != NULL)
		d = test_read_file(out, &dlen);
	CHECK(o != NULL && d != NULL && memmem(d, dlen, o, olen) != NULL);
	free(o);
	free(d);
	free(f.text);
	free(out);
	free(orig);
	envelope_free(&env);
}

static void
test_delay(size_t n)
{
	struct envelope env;
	make_env(&env, "alice@example.com", (int)n);
	struct bounce_rcpt rcpts[3];
	const char *dsn[] = {"4.4.1", "4.2.2", "4.3.0"};
	const char *why[] = {
	    "connect to mx.example.net[198.51.100.7]:25: Connection refused",
	    "452 4.2.2 mailbox full, try later", ""};
	for (size_t i = 0; i < n; i++)
		rcpts[i] =
		    (struct bounce_rcpt){env.rcpt[i].address, dsn[i], why[i]};
	struct bounce_params p = {.kind = DSN_DELAY,
				  .hostname = "mx.example.com",
				  .to = "alice@example.com",
				  .env = &env,
				  .rcpts = rcpts,
				  .nrcpt = n,
				  .now = 1700000000 + 4 * 3600 + 60,
				  .retry_until = 1700000000 + 5 * 86400};
	char *orig = small_original();
	char *out = compose(&p, orig);
	struct facts f = parse_with_python(out ? out : "/nonexistent");
	check_common(&f, "<alice@example.com>",
		     "Delayed Mail (still being retried)");
	CHECK(fact_num(&f, "status_blocks") == (long)n + 1);
	CHECK_STR(fact(&f, "rcpt0_action"), "delayed");
	CHECK_STR(fact(&f, "rcpt0_status"), "4.4.1");
	CHECK_STR(fact(&f, "rcpt0_diag"),
		  "x-unix; connect to mx.example.net[198.51.100.7]:25: "
		  "Connection refused");
	CHECK(fact_num(&f, "rcpt0_last_attempt_ok") == 1);
	CHECK(fact_num(&f, "rcpt0_retry_ok") == 1);
	CHECK(fact_has(&f, "text", "THIS IS A WARNING ONLY"));
	CHECK(fact_has(&f, "text", "for more than 4 hour(s)"));
	CHECK(fact_has(&f, "text", "It will be retried until "));
	CHECK(fact_has(&f, "text",
		       "<r0@example.net>: connect to mx.example.net"));
	if (n == 3) {
		CHECK_STR(fact(&f, "rcpt1_diag"),
			  "smtp; 452 4.2.2 mailbox full, try later");
		CHECK_STR(fact(&f, "rcpt2_action"), "delayed");
		/* No reason: no Diagnostic-Code, and words in part 1. */
		CHECK_STR(fact(&f, "rcpt2_diag"), "");
		CHECK(fact_has(&f, "text",
			       "<r2@example.net>: delivery temporarily "
			       "deferred"));
		CHECK(fact_num(&f, "rcpt2_retry_ok") == 1);
	}
	CHECK_STR(fact(&f, "part3_type"), "message/rfc822");
	CHECK_STR(fact(&f, "orig_subject"), "quarterly figures");
	free(f.text);
	free(out);
	free(orig);
	envelope_free(&env);
}

/* Over 64 KiB only the header section goes back, streamed. */
static void
test_large(void)
{
	struct strbuf b = {0};
	strbuf_adds(&b, "Received: by mx.example.com (smalt) id X\r\n"
			"Subject: big attachment\r\n"
			"X-Long: ");
	for (int i = 0; i < 30; i++)
		strbuf_adds(&b, "word ");
	strbuf_adds(&b, "\r\n\r\nBODYMARKER\r\n");
	while (b.len < BOUNCE_FULL_LIMIT + 1000)
		strbuf_adds(&b, "0123456789012345678901234567890123456789012345"
				"678901234567890123456789\r\n");
	char *orig = write_original(b.s, b.len);

	struct envelope env;
	make_env(&env, "alice@example.com", 1);
	struct bounce_rcpt r = {env.rcpt[0].address, "5.3.4",
				"552 5.3.4 message too big"};
	struct bounce_params p = {.kind = DSN_FAILURE,
				  .hostname = "mx.example.com",
				  .to = "alice@example.com",
				  .env = &env,
				  .rcpts = &r,
				  .nrcpt = 1,
				  .now = 1700003600};
	char *out = compose(&p, orig);
	struct facts f = parse_with_python(out ? out : "/nonexistent");
	check_common(&f, "<alice@example.com>",
		     "Undelivered Mail Returned to Sender");
	CHECK_STR(fact(&f, "part3_type"), "text/rfc822-headers");
	CHECK_STR(fact(&f, "orig_subject"), "big attachment");
	CHECK(fact_num(&f, "orig_has_body") == 0);
	size_t dlen = 0;
	char *d = out ? test_read_file(out, &dlen) : NULL;
	CHECK(d != NULL && memmem(d, dlen, "BODYMARKER", 10) == NULL);
	CHECK(d != NULL && dlen < 8192);

	/* Just under the limit: the whole message. */
	b.len = BOUNCE_FULL_LIMIT - 1;
	b.s[b.len - 2] = '\r';
	b.s[b.len - 1] = '\n';
	char *orig2 = write_original(b.s, b.len);
	char *out2 = compose(&p, orig2);
	struct facts f2 = parse_with_python(out2 ? out2 : "/nonexistent");
	CHECK_STR(fact(&f2, "part3_type"), "message/rfc822");
	CHECK(fact_num(&f2, "defects") == 0);

	free(f.text);
	free(f2.text);
	free(d);
	free(out);
	free(out2);
	free(orig);
	free(orig2);
	free(b.s);
	envelope_free(&env);
}

/* The original holding our boundary, its closing form, and a prefix of
 * it at the start of lines: a new boundary is chosen. */
static void
test_boundary_in_original(void)
{
	struct envelope env;
	make_env(&env, "alice@example.com", 1);
	struct bounce_rcpt r = {env.rcpt[0].address, "5.1.1",
				"550 5.1.1 unknown"};
	struct bounce_params p = {.kind = DSN_FAILURE,
				  .hostname = "mx.example.com",
				  .to = "alice@example.com",
				  .env = &env,
				  .rcpts = &r,
				  .nrcpt = 1,
				  .now = 1700003600};
	char *orig = small_original();
	char *out = compose(&p, orig);
	struct facts f = parse_with_python(out ? out : "/nonexistent");
	char first[128] = "";
	if (fact(&f, "boundary") != NULL)
		smalt_strlcpy(first, fact(&f, "boundary"), sizeof(first));
	CHECK(strlen(first) > 20 && strlen(first) <= 70);

	/* Also the next two candidates, one split over a chunk border. */
	struct strbuf b = {0};
	strbuf_addf(&b,
		    "Subject: tricky\r\n"
		    "Content-Type: multipart/mixed; boundary=\"%s\"\r\n\r\n"
		    "--%s\r\n\r\nfirst\r\n--%s--\r\n",
		    first, first, first);
	char next[128];
	smalt_strlcpy(next, first, sizeof(next));
	char *dot = strstr(next, ".1700003600.0/");
	CHECK(dot != NULL);
	if (dot != NULL) {
		dot[12] = '1';
		strbuf_addf(&b, "--%s\r\n", next);
		while (b.len < 8192 - 10)
			strbuf_adds(&b, "x");
		dot[12] = '2';
		strbuf_addf(&b, "\r\n--%s\r\n", next);
	}
	strbuf_adds(&b, "end\r\n");
	char *orig2 = write_original(b.s, b.len);
	char *out2 = compose(&p, orig2);
	struct facts f2 = parse_with_python(out2 ? out2 : "/nonexistent");
	const char *second = fact(&f2, "boundary");
	CHECK(second != NULL && strcmp(second, first) != 0);
	CHECK(second != NULL && strstr(b.s, second) == NULL);
	CHECK(fact_num(&f2, "nparts") == 3);
	CHECK(fact_num(&f2, "defects") == 0);
	CHECK_STR(fact(&f2, "part3_type"), "message/rfc822");
	CHECK_STR(fact(&f2, "orig_subject"), "tricky");
	CHECK_STR(fact(&f2, "rcpt0_status"), "5.1.1");
	size_t dlen = 0;
	char *d = out2 ? test_read_file(out2, &dlen) : NULL;
	CHECK(d != NULL && memmem(d, dlen, b.s, b.len) != NULL);

	free(d);
	free(f.text);
	free(f2.text);
	free(out);
	free(out2);
	free(orig);
	free(orig2);
	free(b.s);
	envelope_free(&env);
}

/* Long reasons fold within 998 octets; hostile ones stay on their line;
 * bare LFs in the original become CRLF; bad status codes get defaults. */
static void
test_lines(void)
{
	struct strbuf spaced = {0}, word = {0};
	strbuf_adds(&spaced, "550 5.7.1");
	for (int i = 0; i < 300; i++)
		strbuf_addf(&spaced, " reason%d", i);
	strbuf_adds(&word, "local error ");
	for (int i = 0; i < 1500; i++)
		strbuf_adds(&word, "w");
	struct envelope env;
	make_env(&env, "alice@example.com", 3);
	struct bounce_rcpt rcpts[3] = {
	    {env.rcpt[0].address, "5.7.1", spaced.s},
	    {env.rcpt[1].address, "9.9", word.s},
	    {env.rcpt[2].address, "",
	     "550 evil\r\nX-Injected: yes\r\n\r\n--x\tend\x80"},
	};
	struct bounce_params p = {.kind = DSN_FAILURE,
				  .hostname = "mx.example.com",
				  .to = "alice@example.com",
				  .env = &env,
				  .rcpts = rcpts,
				  .nrcpt = 3,
				  .now = 1700003600};
	const char *bare = "Subject: unix\nFrom: a@example.com\n\nbody\nmore\n";
	char *orig = write_original(bare, strlen(bare));
	char *out = compose(&p, orig);
	struct facts f = parse_with_python(out ? out : "/nonexistent");
	check_common(&f, "<alice@example.com>",
		     "Undelivered Mail Returned to Sender");
	char *want = xasprintf("smtp; %s", spaced.s);
	CHECK_STR(fact(&f, "rcpt0_diag"), want);
	free(want);
	CHECK_STR(fact(&f, "rcpt1_status"), "5.0.0");
	CHECK(fact_has(&f, "rcpt1_diag", "x-unix; local error www"));
	CHECK_STR(fact(&f, "rcpt2_status"), "5.0.0");
	CHECK_STR(fact(&f, "rcpt2_diag"),
		  "smtp; 550 evil X-Injected: yes --x end?");
	CHECK(fact_num(&f, "status_blocks") == 4);
	CHECK_STR(fact(&f, "orig_subject"), "unix");
	CHECK(fact_num(&f, "orig_body_len") ==
	      (long)strlen("body\r\nmore\r\n"));
	free(f.text);
	free(out);
	free(orig);
	free(spaced.s);
	free(word.s);
	envelope_free(&env);
}

/* Remote replies in Postfix's wording keep only the reply as the
 * Diagnostic-Code; part 1 keeps the whole sentence. */
static void
test_diagnostic(void)
{
	static const struct {
		const char *reason, *want;
	} cases[] = {
	    {"host mx.example.net[198.51.100.7] said: 550 5.1.1 <r0@x>: User "
	     "unknown (in reply to RCPT TO command)",
	     "smtp; 550 5.1.1 <r0@x>: User unknown"},
	    {"host h[192.0.2.9] said: 452-4.2.2 over quota (in reply to end "
	     "of DATA command)",
	     "smtp; 452-4.2.2 over quota"},
	    {"host h said: 550 x (in reply to y) then more",
	     "smtp; 550 x (in reply to y) then more"},
	    {"the postmaster said: hello",
	     "x-unix; the postmaster said: hello"},
	    {"5501 is not a reply code", "x-unix; 5501 is not a reply code"},
	};
	struct envelope env;
	make_env(&env, "alice@example.com", (int)SMALT_NELEM(cases));
	struct bounce_rcpt rcpts[SMALT_NELEM(cases)];
	for (size_t i = 0; i < SMALT_NELEM(cases); i++)
		rcpts[i] = (struct bounce_rcpt){env.rcpt[i].address, "5.0.0",
						cases[i].reason};
	struct bounce_params p = {.kind = DSN_FAILURE,
				  .hostname = "mx.example.com",
				  .to = "alice@example.com",
				  .env = &env,
				  .rcpts = rcpts,
				  .nrcpt = SMALT_NELEM(cases),
				  .now = 1700003600};
	char *orig = small_original();
	char *out = compose(&p, orig);
	struct facts f = parse_with_python(out ? out : "/nonexistent");
	CHECK(fact_num(&f, "defects") == 0);
	for (size_t i = 0; i < SMALT_NELEM(cases); i++) {
		char key[64];
		snprintf(key, sizeof(key), "rcpt%zu_diag", i);
		CHECK_STR(fact(&f, key), cases[i].want);
	}
	CHECK(fact_has(&f, "text",
		       "<r0@example.net>: host mx.example.net[198.51.100.7] "
		       "said: 550 5.1.1 <r0@x>: User unknown (in reply to "
		       "RCPT TO command)"));
	free(f.text);
	free(out);
	free(orig);
	envelope_free(&env);
}

static int
failing_write(void *arg, const void *buf, size_t len)
{
	int *budget = arg;
	(void)buf;
	if (len > (size_t)*budget) {
		errno = ENOSPC;
		return -1;
	}
	*budget -= (int)len;
	return 0;
}

static void
test_errors(void)
{
	struct envelope env;
	make_env(&env, "alice@example.com", 1);
	struct bounce_rcpt r = {env.rcpt[0].address, "5.1.1", "550 no"};
	char *orig = small_original();
	int fd = open(orig, O_RDONLY | O_CLOEXEC);
	struct bounce_params p = {.kind = DSN_FAILURE,
				  .hostname = "mx.example.com",
				  .to = "alice@example.com",
				  .env = &env,
				  .rcpts = &r,
				  .nrcpt = 1,
				  .msg_fd = fd,
				  .now = 1700003600};
	/* The report's size, then failures in each stage of writing it. */
	int budget = 1 << 20;
	CHECK(bounce_write(&p, failing_write, &budget) == 0);
	int total = (1 << 20) - budget;
	int budgets[] = {0, total - 400, total - 100, total - 1};
	for (size_t i = 0; i < SMALT_NELEM(budgets); i++) {
		budget = budgets[i];
		errno = 0;
		CHECK(bounce_write(&p, failing_write, &budget) == -1 &&
		      errno == ENOSPC);
	}
	budget = total + 16; /* the Message-ID's serial may grow a digit */
	CHECK(bounce_write(&p, failing_write, &budget) == 0 && budget <= 16);

	struct bounce_params bad = p;
	bad.to = "";
	CHECK(bounce_write(&bad, failing_write, &budget) == -1 &&
	      errno == EINVAL);
	bad = p;
	bad.nrcpt = 0;
	CHECK(bounce_write(&bad, failing_write, &budget) == -1 &&
	      errno == EINVAL);
	bad = p;
	bad.msg_fd = -1;
	CHECK(bounce_write(&bad, failing_write, &budget) == -1 &&
	      errno == EINVAL);
	close(fd);
	bad = p; /* closed: fstat fails */
	CHECK(bounce_write(&bad, failing_write, &budget) == -1 &&
	      errno == EBADF);
	free(orig);
	envelope_free(&env);
}

static void
test_recipient(void)
{
	struct envelope env;
	make_env(&env, "alice@example.com", 2);
	CHECK_STR(bounce_recipient(&env, "postmaster@mx.example.com"),
		  "alice@example.com");
	envelope_free(&env);

	/* A bounce (from MAILER-DAEMON, null sender) to alice failed: a
	 * double bounce to the postmaster. */
	make_env(&env, "", 1);
	envelope_set(&env.rcpt[0].address, "alice@example.com");
	CHECK_STR(bounce_recipient(&env, "postmaster@mx.example.com"),
		  "postmaster@mx.example.com");
	CHECK_STR(bounce_recipient(&env, NULL), "postmaster");
	CHECK_STR(bounce_recipient(&env, ""), "postmaster");
	envelope_free(&env);

	/* That double bounce failed too: nobody is left to tell. */
	make_env(&env, "", 1);
	envelope_set(&env.rcpt[0].address, "Postmaster@mx.example.com");
	CHECK_STR(bounce_recipient(&env, "postmaster@mx.example.com"), "");
	CHECK_STR(bounce_recipient(&env, "postmaster"), "");
	CHECK_STR(bounce_recipient(&env, "admin@example.org"),
		  "admin@example.org");
	/* Null-sender mail for the postmaster and someone else. */
	envelope_add_rcpt(&env, "bob@example.net");
	CHECK_STR(bounce_recipient(&env, "postmaster@mx.example.com"),
		  "postmaster@mx.example.com");
	envelope_free(&env);

	make_env(&env, "", 0);
	CHECK_STR(bounce_recipient(&env, "postmaster"), "postmaster");
	envelope_free(&env);
}

/* The scheduler's path: a bounce queued as a new message with the null
 * sender, to whom bounce_recipient says; here a double bounce. */
static void
test_queued_double_bounce(void)
{
	char *spool = xasprintf("%s/spool", tmpdir);
	char err[256];
	struct queue *q =
	    queue_open(spool, (uid_t)-1, (gid_t)-1, err, sizeof(err));
	CHECK(q != NULL);
	if (q == NULL) {
		free(spool);
		return;
	}
	struct envelope failed;
	make_env(&failed, "", 1);
	struct bounce_rcpt r = {failed.rcpt[0].address, "5.1.1",
				"550 5.1.1 no such user"};
	char *orig = small_original();
	int fd = open(orig, O_RDONLY | O_CLOEXEC);
	const char *to = bounce_recipient(&failed, "postmaster@mx.example.com");
	struct bounce_params p = {.kind = DSN_FAILURE,
				  .hostname = "mx.example.com",
				  .to = to,
				  .env = &failed,
				  .rcpts = &r,
				  .nrcpt = 1,
				  .msg_fd = fd,
				  .now = 1700003600};
	struct queue_msg *m = queue_msg_create(q);
	CHECK(m != NULL);
	CHECK(bounce_write(&p, bounce_queue_write, m) == 0);
	struct envelope dsn;
	envelope_init(&dsn);
	envelope_set(&dsn.sender, "");
	envelope_add_rcpt(&dsn, to);
	CHECK(queue_msg_commit(m, &dsn) == 0);
	close(fd);

	char *path = xasprintf("%s/msg/%s", spool, dsn.id);
	struct facts f = parse_with_python(path);
	check_common(&f, "<postmaster@mx.example.com>",
		     "Undelivered Mail Returned to Sender");
	CHECK(fact_has(&f, "text", "null sender <>"));
	CHECK_STR(fact(&f, "rcpt0_final"), "rfc822; r0@example.net");
	/* And were it to fail in turn, it would be dropped. */
	CHECK_STR(bounce_recipient(&dsn, "postmaster@mx.example.com"), "");

	free(f.text);
	free(path);
	free(orig);
	envelope_free(&dsn);
	envelope_free(&failed);
	queue_close(q);
	free(spool);
}

int
main(void)
{
	tmpdir = test_mkdtemp("bounce");
	test_failure(1);
	test_failure(3);
	test_delay(1);
	test_delay(3);
	test_large();
	test_boundary_in_original();
	test_lines();
	test_diagnostic();
	test_errors();
	test_recipient();
	test_queued_double_bounce();
	test_rm_rf(tmpdir);
	free(tmpdir);
	return check_done();
}
