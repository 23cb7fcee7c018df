/* RFC 5321 path parsing: a table of valid and invalid paths, then the
 * length limits, inputs that are not NUL-terminated, and formatting. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/addr.h"
#include "tests/unit/check.h"

#define N  ADDR_ALLOW_NULL
#define PM ADDR_ALLOW_POSTMASTER
#define U8 ADDR_ALLOW_UTF8
#define NB ADDR_ALLOW_NOBRACKETS

/* ENDP_ALL: the whole input is the path. */
#define ENDP_ALL ((size_t)-1)

struct path_case {
	const char *in;
	int flags;
	/* Valid when err is NULL: then local, domain and endp are checked.
	 * Invalid otherwise: err is the expected reason, or "" for any. */
	const char *local;
	const char *domain;
	size_t endp;
	const char *err;
};

#define OK(in, flags, local, domain, endp)                                     \
	{                                                                      \
		in, flags, local, domain, endp, NULL                           \
	}
#define BAD(in, flags, err)                                                    \
	{                                                                      \
		in, flags, NULL, NULL, 0, err                                  \
	}

static const struct path_case path_cases[] = {
    /* Plain paths. */
    OK("<user@example.com>", 0, "user", "example.com", ENDP_ALL),
    OK("<User.Name+tag@Example.COM>", 0, "User.Name+tag", "Example.COM",
       ENDP_ALL),
    OK("<a@b>", 0, "a", "b", ENDP_ALL),
    OK("<!#$%&'*+-/=?^_`{|}~@example.org>", 0, "!#$%&'*+-/=?^_`{|}~",
       "example.org", ENDP_ALL),
    OK("<a-b@x-y.example>", 0, "a-b", "x-y.example", ENDP_ALL),
    OK("<1@123.45>", 0, "1", "123.45", ENDP_ALL),
    OK("<u@xn--bcher-kva.example>", 0, "u", "xn--bcher-kva.example", ENDP_ALL),
    /* Null path and Postmaster. */
    OK("<>", N, "", "", ENDP_ALL),
    BAD("<>", 0, "null path not allowed"),
    OK("<> SIZE=10", N, "", "", 2),
    BAD("<>x", N, "bad character after >"),
    OK("<Postmaster>", PM, "Postmaster", "", ENDP_ALL),
    OK("<postMASTER>", PM, "postMASTER", "", ENDP_ALL),
    BAD("<Postmaster>", 0, "missing domain"),
    BAD("<Postmaster>", N, "missing domain"),
    BAD("<\"Postmaster\">", PM, "missing domain"),
    BAD("<Postmasters>", PM, "missing domain"),
    OK("<Postmaster@example.com>", 0, "Postmaster", "example.com", ENDP_ALL),
    BAD("<@a:Postmaster>", PM, "missing domain"),
    BAD("<user>", 0, "missing domain"),
    BAD("<user@>", 0, "missing domain"),
    /* Source routes are accepted and dropped. */
    OK("<@relay.example:user@example.com>", 0, "user", "example.com", ENDP_ALL),
    OK("<@a.example,@b.example,@c.example:u@d.example>", 0, "u", "d.example",
       ENDP_ALL),
    OK("<@[192.0.2.1],@[IPv6:::1]:u@d.example>", 0, "u", "d.example", ENDP_ALL),
    BAD("<@a.example>", 0, "bad source route"),
    BAD("<@a.example u@d>", 0, "bad source route"),
    BAD("<@a.example,b.example:u@d>", 0, "bad source route"),
    BAD("<@a.example,:u@d>", 0, "bad source route"),
    BAD("<@:u@d>", 0, "missing domain"),
    BAD("<@a..b:u@d>", 0, "empty label in domain"),
    BAD("<@a:>", N, "empty local part"),
    BAD("<@a:", 0, "empty local part"),
    /* Quoted local parts. */
    OK("<\"john doe\"@example.com>", 0, "\"john doe\"", "example.com",
       ENDP_ALL),
    OK("<\"a\\\"b\"@example.com>", 0, "\"a\\\"b\"", "example.com", ENDP_ALL),
    OK("<\"a\\\\b\"@example.com>", 0, "\"a\\\\b\"", "example.com", ENDP_ALL),
    OK("<\"a@b>c\"@example.com> X=1", 0, "\"a@b>c\"", "example.com", 21),
    OK("<\"\"@example.com>", 0, "\"\"", "example.com", ENDP_ALL),
    OK("<\".a..b.\"@example.com>", 0, "\".a..b.\"", "example.com", ENDP_ALL),
    BAD("<\"abc@example.com>", 0, "unterminated quoted string"),
    BAD("<\"abc\\", 0, "unterminated quoted string"),
    BAD("<\"a\"b@example.com>", 0, "bad character in local part"),
    BAD("<\"a\tb\"@example.com>", 0, "control character in address"),
    BAD("<\"a\\\tb\"@example.com>", 0, "control character in address"),
    BAD("<a\"b\"@example.com>", 0, "bad character in local part"),
    /* Dots in a dot-string. */
    OK("<a.b.c@example.com>", 0, "a.b.c", "example.com", ENDP_ALL),
    BAD("<.a@example.com>", 0, "bad dot in local part"),
    BAD("<a.@example.com>", 0, "bad dot in local part"),
    BAD("<a..b@example.com>", 0, "bad dot in local part"),
    BAD("<@example.com>", 0, "bad source route"),
    BAD("<a b@example.com>", 0, "space in address"),
    BAD("<a(b)@example.com>", 0, "bad character in local part"),
    /* Domains. */
    BAD("<a@example.com.>", 0, "trailing dot in domain"),
    BAD("<a@.example.com>", 0, "empty label in domain"),
    BAD("<a@example..com>", 0, "empty label in domain"),
    BAD("<a@-example.com>", 0, "bad hyphen in domain"),
    BAD("<a@example-.com>", 0, "bad hyphen in domain"),
    BAD("<a@ex_ample.com>", 0, "bad character in domain"),
    BAD("<a@exa mple.com>", 0, "missing >"),
    BAD("<a@b@c>", 0, "bad character in domain"),
    /* Address literals. */
    OK("<a@[192.0.2.1]>", 0, "a", "[192.0.2.1]", ENDP_ALL),
    OK("<a@[255.255.255.255]>", 0, "a", "[255.255.255.255]", ENDP_ALL),
    OK("<a@[IPv6:2001:db8::1]>", 0, "a", "[IPv6:2001:db8::1]", ENDP_ALL),
    OK("<a@[ipv6:::ffff:192.0.2.1]>", 0, "a", "[ipv6:::ffff:192.0.2.1]",
       ENDP_ALL),
    OK("<a@[x-tag:any>thing]>", 0, "a", "[x-tag:any>thing]", ENDP_ALL),
    BAD("<a@[1.2.3]>", 0, "bad IPv4 address literal"),
    BAD("<a@[1.2.3.4.5]>", 0, "bad IPv4 address literal"),
    BAD("<a@[256.1.1.1]>", 0, "bad IPv4 address literal"),
    BAD("<a@[1.2.3.0004]>", 0, "bad IPv4 address literal"),
    BAD("<a@[]>", 0, "bad IPv4 address literal"),
    BAD("<a@[IPv6:zz]>", 0, "bad IPv6 address literal"),
    BAD("<a@[IPv6:1:2:3:4:5:6:7:8:9]>", 0, "bad IPv6 address literal"),
    BAD("<a@[IPv6:fe80::1%eth0]>", 0, "bad IPv6 address literal"),
    BAD("<a@[-tag:x]>", 0, "bad address literal"),
    BAD("<a@[tag:]>", 0, "bad address literal"),
    BAD("<a@[tag:a b]>", 0, "unterminated address literal"),
    BAD("<a@[tag:a[b]>", 0, "bad address literal"),
    BAD("<a@[", 0, "unterminated address literal"),
    BAD("<a@[192.0.2.1", 0, "unterminated address literal"),
    BAD("<a@[192.0.2.1>", 0, "unterminated address literal"),
    BAD("<a@[192.0.2.1]x>", 0, "bad address literal"),
    BAD("<a@x[192.0.2.1]>", 0, "bad character in domain"),
    /* 8-bit: only with SMTPUTF8, and only as UTF-8. */
    BAD("<j\xc3\xb6rg@example.com>", 0, "8-bit character without SMTPUTF8"),
    OK("<j\xc3\xb6rg@example.com>", U8, "j\xc3\xb6rg", "example.com", ENDP_ALL),
    OK("<u@b\xc3\xbc"
       "cher.example>",
       U8, "u",
       "b\xc3\xbc"
       "cher.example",
       ENDP_ALL),
    BAD("<u@b\xc3\xbc"
	"cher.example>",
	0, "8-bit character without SMTPUTF8"),
    OK("<\"\xe2\x82\xac 1\"@example.com>", U8, "\"\xe2\x82\xac 1\"",
       "example.com", ENDP_ALL),
    OK("<\xf0\x9f\x93\xa7@example.com>", U8, "\xf0\x9f\x93\xa7", "example.com",
       ENDP_ALL),
    BAD("<\xff@example.com>", U8, "invalid UTF-8"),
    BAD("<\xc3@example.com>", U8, "invalid UTF-8"),
    BAD("<\xc0\xaf@example.com>", U8, "invalid UTF-8"),
    BAD("<\xed\xa0\x80@example.com>", U8, "invalid UTF-8"),
    BAD("<\xf4\x90\x80\x80@example.com>", U8, "invalid UTF-8"),
    BAD("<u@\xe2\x82>", U8, "invalid UTF-8"),
    BAD("<\"\\\xc3\xb6\"@example.com>", U8, "bad character in quoted string"),
    /* Control characters, never. */
    BAD("<a\rb@example.com>", 0, "control character in address"),
    BAD("<a@exa\nmple.com>", 0, "control character in address"),
    BAD("<a\t@example.com>", 0, "control character in address"),
    BAD("<a\x7f@example.com>", 0, "control character in address"),
    BAD("<a@example.com\r\n>", 0, "control character in address"),
    /* What follows the path. */
    OK("<a@b> SIZE=10", 0, "a", "b", 5),
    OK("<a@b> ", 0, "a", "b", 5),
    BAD("<a@b>x", 0, "bad character after >"),
    BAD("<a@b>>", 0, "bad character after >"),
    BAD("<a@b>\t", 0, "bad character after >"),
    BAD("<a@b>\r\n", 0, "bad character after >"),
    BAD("<a@b", 0, "missing >"),
    BAD("<a@b SIZE=10", 0, "missing >"),
    BAD("<<a@b>>", 0, "empty local part"),
    BAD("<", 0, "empty local part"),
    BAD("", 0, "missing <"),
    BAD("a@b", 0, "missing <"),
    BAD(" <a@b>", 0, "missing <"),
    /* Without brackets, as some clients send. */
    OK("user@example.com", NB, "user", "example.com", ENDP_ALL),
    OK("user@example.com SIZE=10", NB, "user", "example.com", 16),
    OK("\"a b\"@example.com", NB, "\"a b\"", "example.com", ENDP_ALL),
    OK("<user@example.com>", NB, "user", "example.com", ENDP_ALL),
    OK("a@[192.0.2.1] X", NB, "a", "[192.0.2.1]", 13),
    OK("Postmaster", NB | PM, "Postmaster", "", ENDP_ALL),
    BAD("user@example.com>", NB, "bad character in domain"),
    BAD("", NB | N, "empty local part"),
    BAD("@a:u@b", NB, "empty local part"),
};

static void
test_path_table(void)
{
	for (size_t i = 0; i < sizeof(path_cases) / sizeof(path_cases[0]);
	     i++) {
		const struct path_case *t = &path_cases[i];
		size_t len = strlen(t->in);
		struct mailaddr a;
		memset(&a, 0x55, sizeof(a));
		size_t endp = 12345;
		const char *err = NULL;
		int rc = addr_parse_path(t->in, len, t->flags, &a, &endp, &err);
		if (t->err == NULL) {
			if (rc != 0)
				fprintf(stderr, "case %zu \"%s\": %s\n", i,
					t->in, err ? err : "?");
			CHECK(rc == 0);
			if (rc != 0)
				continue;
			CHECK_STR(a.local, t->local);
			CHECK_STR(a.domain, t->domain);
			CHECK(endp == (t->endp == ENDP_ALL ? len : t->endp));
			CHECK(addr_is_null(&a) == (t->local[0] == '\0'));
		} else {
			if (rc != -1)
				fprintf(stderr, "case %zu \"%s\" parsed\n", i,
					t->in);
			CHECK(rc == -1);
			CHECK(err != NULL);
			if (t->err[0] != '\0' && err != NULL &&
			    strcmp(err, t->err) != 0)
				fprintf(stderr, "case %zu \"%s\"\n", i, t->in);
			if (t->err[0] != '\0')
				CHECK_STR(err, t->err);
			/* A failed parse leaves *endp alone. */
			CHECK(endp == 12345);
		}
	}
}

static char *
repeat(char ch, size_t n)
{
	char *s = malloc(n + 1);
	memset(s, ch, n);
	s[n] = '\0';
	return s;
}

/* A domain of exactly n octets: 63-octet labels joined by dots. */
static char *
domain_of_len(size_t n)
{
	char *s = repeat('a', n);
	for (size_t i = 63; i < n - 1; i += 64)
		s[i] = '.';
	return s;
}

static int
parse(const char *in, int flags, struct mailaddr *a, const char **err)
{
	size_t endp;
	*err = NULL;
	int rc = addr_parse_path(in, strlen(in), flags, a, &endp, err);
	if (rc == 0 && endp != strlen(in))
		return -2;
	return rc;
}

static void
test_local_part_limit(void)
{
	char in[256];
	struct mailaddr a;
	const char *err;
	char *l64 = repeat('l', 64), *l65 = repeat('l', 65);

	snprintf(in, sizeof(in), "<%s@example.com>", l64);
	CHECK(parse(in, 0, &a, &err) == 0);
	CHECK_STR(a.local, l64);
	snprintf(in, sizeof(in), "<%s@example.com>", l65);
	CHECK(parse(in, 0, &a, &err) == -1);
	CHECK_STR(err, "local part too long");

	/* The quotes count: they are sent on the wire. */
	snprintf(in, sizeof(in), "<\"%.62s\"@example.com>", l64);
	CHECK(parse(in, 0, &a, &err) == 0);
	snprintf(in, sizeof(in), "<\"%.63s\"@example.com>", l64);
	CHECK(parse(in, 0, &a, &err) == -1);
	CHECK_STR(err, "local part too long");
	free(l64);
	free(l65);
}

static void
test_domain_limit(void)
{
	char in[512];
	struct mailaddr a;
	const char *err = NULL;
	char *d255 = domain_of_len(255), *d256 = domain_of_len(256);

	CHECK(strlen(d255) == 255 && d255[254] != '.');
	CHECK(addr_check_domain(d255, 255, 0, &err) == 0);
	CHECK(addr_check_domain(d256, 256, 0, &err) == -1);
	CHECK_STR(err, "domain too long");

	/* A 255-octet domain is legal, but no path can carry it. */
	snprintf(in, sizeof(in), "<a@%s>", d255);
	CHECK(parse(in, 0, &a, &err) == -1);
	CHECK_STR(err, "path too long");
	snprintf(in, sizeof(in), "<a@%s>", d256);
	CHECK(parse(in, 0, &a, &err) == -1);
	CHECK_STR(err, "domain too long");

	char *l63 = repeat('x', 63), *l64 = repeat('x', 64);
	snprintf(in, sizeof(in), "<a@%s.example>", l63);
	CHECK(parse(in, 0, &a, &err) == 0);
	snprintf(in, sizeof(in), "<a@%s.example>", l64);
	CHECK(parse(in, 0, &a, &err) == -1);
	CHECK_STR(err, "domain label too long");
	CHECK(addr_check_domain(l63, 63, 0, &err) == 0);
	CHECK(addr_check_domain(l64, 64, 0, &err) == -1);
	free(l63);
	free(l64);
	free(d255);
	free(d256);
}

static void
test_path_limit(void)
{
	char in[512];
	struct mailaddr a;
	const char *err;
	/* "<" + 64 + "@" + 189 + ">" = 256 octets. */
	char *l64 = repeat('l', 64);
	char *d189 = domain_of_len(189), *d190 = domain_of_len(190);

	snprintf(in, sizeof(in), "<%s@%s>", l64, d189);
	CHECK(strlen(in) == 256);
	CHECK(parse(in, 0, &a, &err) == 0);
	CHECK_STR(a.domain, d189);
	snprintf(in, sizeof(in), "<%s@%s>", l64, d190);
	CHECK(strlen(in) == 257);
	CHECK(parse(in, 0, &a, &err) == -1);
	CHECK_STR(err, "path too long");

	/* Without brackets the limit is the same, counted as if they were
	 * there, so the address can always be sent on as "<...>". */
	snprintf(in, sizeof(in), "%s@%s", l64, d189);
	CHECK(parse(in, NB, &a, &err) == 0);
	CHECK(addr_parse_mailbox(in, 0, &a, &err) == 0);
	snprintf(in, sizeof(in), "%s@%s", l64, d190);
	CHECK(parse(in, NB, &a, &err) == -1);
	CHECK_STR(err, "path too long");
	CHECK(addr_parse_mailbox(in, 0, &a, &err) == -1);

	/* A source route counts: it is part of the path as written. */
	snprintf(in, sizeof(in), "<@r:%.61s@%s>", l64, d189);
	CHECK(strlen(in) == 256);
	CHECK(parse(in, 0, &a, &err) == 0);
	snprintf(in, sizeof(in), "<@r:%.62s@%s>", l64, d189);
	CHECK(parse(in, 0, &a, &err) == -1);
	CHECK_STR(err, "path too long");
	free(l64);
	free(d189);
	free(d190);
}

/* Every read stays inside len: what lies past it must not change the
 * outcome. */
static void
test_not_nul_terminated(void)
{
	struct mailaddr a;
	size_t endp;
	const char *err = NULL;
	const char buf[] = "<a@b>";

	CHECK(addr_parse_path(buf, 4, 0, &a, &endp, &err) == -1);
	CHECK_STR(err, "missing >");
	CHECK(addr_parse_path(buf, 0, 0, &a, &endp, &err) == -1);
	CHECK_STR(err, "missing <");
	CHECK(addr_parse_path(buf, 5, 0, &a, &endp, &err) == 0);
	CHECK(endp == 5);

	/* The closing quote and bracket lie past len. */
	const char quoted[] = "<\"ab\"@c>";
	CHECK(addr_parse_path(quoted, 4, 0, &a, &endp, &err) == -1);
	CHECK_STR(err, "unterminated quoted string");
	const char literal[] = "<a@[1.2.3.4]>";
	CHECK(addr_parse_path(literal, 11, 0, &a, &endp, &err) == -1);
	CHECK_STR(err, "unterminated address literal");
	const char nullpath[] = "<>";
	CHECK(addr_parse_path(nullpath, 1, N, &a, &endp, &err) == -1);
	const char utf8[] = "<a@\xc3\xb6>";
	CHECK(addr_parse_path(utf8, 4, U8, &a, &endp, &err) == -1);
	CHECK_STR(err, "invalid UTF-8");

	/* Bare: the address ends at len, whatever follows. */
	const char bare[] = "user@example.comXYZ";
	CHECK(addr_parse_path(bare, 16, NB, &a, &endp, &err) == 0);
	CHECK_STR(a.domain, "example.com");
	CHECK(endp == 16);

	/* A NUL inside len is a bad byte, not an end. */
	const char nul[] = "<a@b\0c>";
	CHECK(addr_parse_path(nul, sizeof(nul) - 1, 0, &a, &endp, &err) == -1);
	CHECK_STR(err, "control character in address");
	const char nul2[] = "<a\0@b>";
	CHECK(addr_parse_path(nul2, sizeof(nul2) - 1, 0, &a, &endp, &err) ==
	      -1);
	CHECK_STR(err, "control character in address");
}

static void
test_mailbox(void)
{
	struct mailaddr a;
	const char *err = NULL;

	CHECK(addr_parse_mailbox("user@example.com", 0, &a, &err) == 0);
	CHECK_STR(a.local, "user");
	CHECK_STR(a.domain, "example.com");
	CHECK(addr_parse_mailbox("\"a b\"@[192.0.2.1]", 0, &a, &err) == 0);
	CHECK_STR(a.local, "\"a b\"");
	CHECK(addr_parse_mailbox("<user@example.com>", 0, &a, &err) == -1);
	CHECK(addr_parse_mailbox("user@example.com ", 0, &a, &err) == -1);
	CHECK_STR(err, "space in address");
	CHECK(addr_parse_mailbox("user@example.com x", 0, &a, &err) == -1);
	CHECK(addr_parse_mailbox("user", 0, &a, &err) == -1);
	CHECK_STR(err, "missing domain");
	CHECK(addr_parse_mailbox("postmaster", PM, &a, &err) == 0);
	CHECK_STR(a.local, "postmaster");
	CHECK(addr_parse_mailbox("", 0, &a, &err) == -1);
	CHECK(addr_parse_mailbox("", N, &a, &err) == 0);
	CHECK(addr_is_null(&a));
	CHECK(addr_parse_mailbox("@r:user@example.com", 0, &a, &err) == -1);
	CHECK(addr_parse_mailbox("j\xc3\xb6rg@example.com", 0, &a, &err) == -1);
	CHECK(addr_parse_mailbox("j\xc3\xb6rg@example.com", U8, &a, &err) == 0);
}

static void
test_check_domain(void)
{
	const char *err = NULL;
	static const char *good[] = {
	    "example.com", "a",		  "EXAMPLE.com", "1.2.3.4",
	    "a-b--c.d",	   "[192.0.2.1]", "[IPv6:::1]",	 "[tag:x]",
	};
	static const char *bad[] = {
	    "",	   "example.com.", ".", "a..b",	     "-a",  "a-",
	    "a_b", "[1.2.3]",	   "[", "[IPv6:zz]", "a b",
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		CHECK(addr_check_domain(good[i], strlen(good[i]), 0, &err) ==
		      0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err = NULL;
		CHECK(addr_check_domain(bad[i], strlen(bad[i]), 0, &err) == -1);
		CHECK(err != NULL);
	}
	/* Only the len given is the domain. */
	CHECK(addr_check_domain("example.com.", 11, 0, &err) == 0);
	CHECK(addr_check_domain("b\xc3\xbc.de", 6, U8, &err) == 0);
	CHECK(addr_check_domain("b\xc3\xbc.de", 6, 0, &err) == -1);
}

/* format(parse(x)) inside <> parses to the same address again. */
static void
test_format_round_trip(void)
{
	static const struct {
		const char *in;
		int flags;
		const char *formatted;
	} cases[] = {
	    {"<user@example.com>", 0, "user@example.com"},
	    {"<>", N, ""},
	    {"<Postmaster>", PM, "Postmaster"},
	    {"<@relay:u@d.example>", 0, "u@d.example"},
	    {"<\"a b\\\"c\"@[IPv6:::1]>", 0, "\"a b\\\"c\"@[IPv6:::1]"},
	    {"<\xc3\xa9@\xc3\xa9.example>", U8, "\xc3\xa9@\xc3\xa9.example"},
	    {"u@Example.COM", NB, "u@Example.COM"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct mailaddr a, b;
		const char *err;
		char buf[ADDR_PATH_MAX + 1], again[ADDR_PATH_MAX + 3];

		CHECK(parse(cases[i].in, cases[i].flags, &a, &err) == 0);
		CHECK_STR(addr_format(&a, buf, sizeof(buf)),
			  cases[i].formatted);
		snprintf(again, sizeof(again), "<%s>", buf);
		CHECK(parse(again, cases[i].flags, &b, &err) == 0);
		CHECK_STR(b.local, a.local);
		CHECK_STR(b.domain, a.domain);
	}

	/* A short buffer truncates but stays terminated. */
	struct mailaddr a;
	const char *err;
	char small[5];
	CHECK(parse("<user@example.com>", 0, &a, &err) == 0);
	CHECK_STR(addr_format(&a, small, sizeof(small)), "user");
}

static void
test_local_unquoted(void)
{
	struct mailaddr a;
	const char *err;
	char buf[ADDR_LOCAL_MAX + 1];
	CHECK(parse("<\"john doe\"@example.com>", 0, &a, &err) == 0);
	CHECK_STR(addr_local_unquoted(&a, buf, sizeof(buf)), "john doe");
	CHECK(parse("<\"a\\\"b\\\\c\"@example.com>", 0, &a, &err) == 0);
	CHECK_STR(addr_local_unquoted(&a, buf, sizeof(buf)), "a\"b\\c");
	CHECK(parse("<plain.user@example.com>", 0, &a, &err) == 0);
	CHECK_STR(addr_local_unquoted(&a, buf, sizeof(buf)), "plain.user");
}

int
main(void)
{
	test_local_unquoted();
	test_path_table();
	test_local_part_limit();
	test_domain_limit();
	test_path_limit();
	test_not_nul_terminated();
	test_mailbox();
	test_check_domain();
	test_format_round_trip();
	printf("%zu table cases\n", sizeof(path_cases) / sizeof(path_cases[0]));
	return check_done();
}
