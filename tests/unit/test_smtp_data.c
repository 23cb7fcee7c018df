/* The DATA state machine: unstuffing, line endings, the only end mark,
 * limits, and that splitting the input anywhere changes nothing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "smtpd/smtp_data.h"
#include "tests/unit/check.h"

struct sinkbuf {
	char buf[1 << 20];
	size_t len;
	int fail_after; /* -1: never */
};

static int
sink(void *arg, const char *p, size_t n)
{
	struct sinkbuf *s = arg;
	if (s->fail_after >= 0 && s->len + n > (size_t)s->fail_after)
		return -1;
	memcpy(s->buf + s->len, p, n);
	s->len += n;
	return 0;
}

struct result {
	char out[4096];
	size_t consumed;
	int done, bare, long_line, too_big;
};

/* Feeds input in pieces of chunk bytes (0 = all at once). */
static struct result
run(const char *in, size_t len, size_t chunk, uint64_t max)
{
	static struct sinkbuf sb;
	struct smtp_data d;
	struct result r = {0};
	sb.len = 0;
	sb.fail_after = -1;
	smtp_data_init(&d, max, sink, &sb);
	size_t off = 0;
	while (off < len && !d.done) {
		size_t n = chunk ? chunk : len;
		if (n > len - off)
			n = len - off;
		off += smtp_data_feed(&d, in + off, n);
	}
	smtp_data_flush(&d);
	memcpy(r.out, sb.buf, sb.len < sizeof(r.out) - 1 ? sb.len : 0);
	r.out[sb.len < sizeof(r.out) - 1 ? sb.len : 0] = '\0';
	r.consumed = off;
	r.done = d.done;
	r.bare = d.bare_nl;
	r.long_line = d.long_line;
	r.too_big = d.too_big;
	return r;
}

struct kase {
	const char *in;
	const char *out; /* stored text when done */
	int done;
	const char *rest; /* what is left after the end mark */
	int bare;
};

static const struct kase cases[] = {
    {".\r\n", "", 1, "", 0},
    {"a\r\n.\r\n", "a\r\n", 1, "", 0},
    {"a\r\n.\r\nQUIT\r\n", "a\r\n", 1, "QUIT\r\n", 0},
    {"..x\r\n.\r\n", ".x\r\n", 1, "", 0},
    {"...\r\n.\r\n", "..\r\n", 1, "", 0},
    {"x.\r\n.\r\n", "x.\r\n", 1, "", 0},
    {"a\r\n..\r\n.\r\n", "a\r\n.\r\n", 1, "", 0},
    /* smuggling attempts: none of these ends DATA */
    {"a\n.\nb\r\n.\r\n", "a\r\n.\r\nb\r\n", 1, "", 1},
    {"a\r.\rb\r\n.\r\n", "a\r\n.\r\nb\r\n", 1, "", 1},
    {"a\n.\r\nb\r\n.\r\n", "a\r\n.\r\nb\r\n", 1, "", 1},
    {"a\r\n.\nb\r\n.\r\n", "a\r\n.\r\nb\r\n", 1, "", 1},
    {"a\r\n.\rb\r\n.\r\n", "a\r\n.\r\nb\r\n", 1, "", 1},
    {"a\r\n. \r\n.\r\n", "a\r\n \r\n", 1, "", 0},
    /* not finished */
    {"a\r\n.\r", "a\r\n", 0, "", 0},
    {"a\r\n.", "a\r\n", 0, "", 0},
    {"a\r\n", "a\r\n", 0, "", 0},
    /* bare LF lines are normalised */
    {"a\nb\n\r\n.\r\n", "a\r\nb\r\n\r\n", 1, "", 1},
    /* NUL and 8-bit pass through */
    {"\x00\xff\r\n.\r\n", "\x00\xff\r\n", 1, "", 0},
};

static void
test_cases(void)
{
	static const size_t chunks[] = {0, 1, 2, 3, 7};
	for (size_t i = 0; i < SMALT_NELEM(cases); i++) {
		const struct kase *k = &cases[i];
		size_t len = strlen(k->in);
		if (i == SMALT_NELEM(cases) - 1)
			len = 8; /* the NUL case */
		for (size_t c = 0; c < SMALT_NELEM(chunks); c++) {
			struct result r = run(k->in, len, chunks[c], 0);
			int ok = r.done == k->done && r.bare == k->bare &&
				 strcmp(r.out, k->out) == 0 &&
				 (!k->done ||
				  strcmp(k->in + r.consumed, k->rest) == 0);
			if (i == SMALT_NELEM(cases) - 1)
				ok = r.done &&
				     memcmp(r.out, "\0\xff\r\n", 4) == 0;
			if (!ok)
				fprintf(stderr, "case %zu chunk %zu: out=%s\n",
					i, chunks[c], r.out);
			CHECK(ok);
		}
	}
}

static void
test_limits(void)
{
	char line[1200];
	/* 998 octets + CR LF = 1000: allowed */
	memset(line, 'x', 998);
	strcpy(line + 998, "\r\n.\r\n");
	struct result r = run(line, strlen(line), 0, 0);
	CHECK(r.done && !r.long_line);
	/* 999 + CR LF: too long, yet read to its end */
	memset(line, 'x', 999);
	strcpy(line + 999, "\r\n.\r\n");
	r = run(line, strlen(line), 5, 0);
	CHECK(r.done && r.long_line);
	/* size limit counts stored octets */
	r = run("12345678\r\n.\r\n", 13, 0, 10);
	CHECK(r.done && !r.too_big);
	r = run("123456789\r\n.\r\n", 14, 3, 10);
	CHECK(r.done && r.too_big);

	/* a sink failure is remembered, the rest is still read */
	static struct sinkbuf sb;
	sb.len = 0;
	sb.fail_after = 0;
	struct smtp_data d;
	smtp_data_init(&d, 0, sink, &sb);
	static char big[20000];
	memset(big, 'y', sizeof(big));
	for (size_t i = 100; i < sizeof(big); i += 100)
		big[i - 2] = '\r', big[i - 1] = '\n';
	CHECK(smtp_data_feed(&d, big, sizeof(big)) == sizeof(big));
	CHECK(smtp_data_feed(&d, "\r\n.\r\n", 5) == 5);
	CHECK(d.done && d.sink_failed);
}

int
main(void)
{
	test_cases();
	test_limits();
	return check_done();
}
