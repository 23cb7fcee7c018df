/* sendmail's message preparation (cli/inject.h): address lists, line
 * ends, the dot, the header section, Bcc removal, the added fields,
 * folding, and properties over generated inputs. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/inject.h"
#include "common/strbuf.h"
#include "common/util.h"
#include "tests/unit/check.h"

#define NOW ((time_t)1700000000)

static struct inject_opts
opts(int dot_ends, int extract)
{
	struct inject_opts o = {dot_ends,	    extract,
				"user@example.org", NULL,
				"host.example.org", NOW};
	return o;
}

/* Runs inject_prepare on an exact-size copy of in (n bytes), so that
 * ASan catches a read past len. */
static int
prep_n(const char *in, size_t n, const struct inject_opts *o,
       struct inject_out *out, char *err, size_t errlen)
{
	char *copy = malloc(n ? n : 1);
	memcpy(copy, in, n);
	err[0] = '\0';
	int rc = inject_prepare(copy, n, o, out, err, errlen);
	free(copy);
	return rc;
}

static int
prep(const char *in, const struct inject_opts *o, struct inject_out *out,
     char *err, size_t errlen)
{
	return prep_n(in, strlen(in), o, out, err, errlen);
}

/* The output as a C string (the tests' messages hold no NUL). */
static char *
data_str(const struct inject_out *out)
{
	return xstrndup(out->data, out->len);
}

static char *
join(char **v, size_t n)
{
	struct strbuf b = {NULL, 0, 0};
	strbuf_adds(&b, "");
	for (size_t i = 0; i < n; i++)
		strbuf_addf(&b, "%s%s", i ? "," : "", v[i]);
	return b.s;
}

/* The addresses of one list joined with ',', or "ERR: reason". */
static char *
parse(const char *value)
{
	char **v = NULL;
	size_t n = 0;
	char err[256];
	size_t len = strlen(value);
	char *copy = malloc(len ? len : 1);
	memcpy(copy, value, len);
	int rc = inject_parse_address_list(copy, len, &v, &n, err, sizeof(err));
	free(copy);
	char *r = rc == 0 ? join(v, n) : xasprintf("ERR: %s", err);
	if (rc != 0 && n != 0)
		r[0] = '!'; /* a failed parse must leave nothing behind */
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
	return r;
}

static void
check_parse(const char *value, const char *want, int line)
{
	char *got = parse(value);
	if (strcmp(got, want) != 0)
		fprintf(stderr, "line %d: input \"%s\"\n", line, value);
	CHECK_STR(got, want);
	free(got);
}

static void
check_parse_err(const char *value, const char *why, int line)
{
	char *got = parse(value);
	if (strncmp(got, "ERR: ", 5) != 0 || strstr(got, why) == NULL)
		fprintf(stderr, "line %d: input \"%s\"\n", line, value);
	CHECK(strncmp(got, "ERR: ", 5) == 0);
	CHECK_CONTAINS(got, why);
	free(got);
}

#define OKP(in, want) check_parse(in, want, __LINE__)
#define BADP(in, why) check_parse_err(in, why, __LINE__)

static void
test_address_lists(void)
{
	OKP("a@x", "a@x");
	OKP("a@x, b@y", "a@x,b@y");
	OKP("  a@x  ,b@y  ", "a@x,b@y");
	OKP("John Doe <j@x>", "j@x");
	OKP("John Q. Public <jqp@x>", "jqp@x");
	OKP("<j@x>", "j@x");
	/* Quoted display names with commas and angle brackets. */
	OKP("\"Doe, John\" <j@x>, k@y", "j@x,k@y");
	OKP("\"a <b@c>\" <d@e>", "d@e");
	OKP("\"say \\\"hi\\\", ok\" <q@x>", "q@x");
	/* Quoted local parts keep their quotes and escapes. */
	OKP("\"john doe\"@example.org", "\"john doe\"@example.org");
	OKP("Jd <\"john doe\"@example.org>", "\"john doe\"@example.org");
	OKP("\"a\\\"b\"@x", "\"a\\\"b\"@x");
	/* Encoded words in display names are left alone, even sloppy ones
	 * with specials inside. */
	OKP("=?UTF-8?B?SsO2cmcgTcO8bGxlcg==?= <x@y>", "x@y");
	OKP("=?UTF-8?Q?Doe,_John?= <x@y>, z@y", "x@y,z@y");
	OKP("=?ISO-8859-1?Q?Andr=E9?= Pirard <PIRARD@vm1.ulg.ac.be>",
	    "PIRARD@vm1.ulg.ac.be");
	/* Groups. */
	OKP("undisclosed-recipients:;", "");
	OKP("undisclosed-recipients: ;", "");
	OKP("list: a@x, b@y;", "a@x,b@y");
	OKP("list: a@x, b@y;, c@z", "a@x,b@y,c@z");
	OKP("a@w, list: Ann <a@x>, b@y; c@z", "a@w,a@x,b@y,c@z");
	OKP("\"the, list\": a@x;", "a@x");
	OKP("list: a@x, b@y", "a@x,b@y"); /* the field's end closes it */
	/* Comments, nested, with quoted-pairs. */
	OKP("a@x (comment)", "a@x");
	OKP("(lead) a@x (trail)", "a@x");
	OKP("a@x (one (two) three)", "a@x");
	OKP("a@x (paren \\) and \\( inside)", "a@x");
	OKP("a@x (nested (with \\) escape) here), b@y", "a@x,b@y");
	OKP("Name (c) <a (in) @ (angle) x>", "a@x");
	OKP("a@x (a, comment <with> \"specials\")", "a@x");
	/* Folded, unfolded or not. */
	OKP("a@x,\r\n b@y", "a@x,b@y");
	OKP("a@x,\n\tb@y,\r\n\r\n c@z", "a@x,b@y,c@z");
	OKP("\"folded\r\n quoted\"@x", "\"folded quoted\"@x");
	/* CFWS inside an addr-spec goes. */
	OKP("john . doe @ example . org", "john.doe@example.org");
	OKP("a@[192.0.2.1]", "a@[192.0.2.1]");
	OKP("a..b.@docomo.example", "a..b.@docomo.example");
	/* Without a domain: as they are. */
	OKP("root", "root");
	OKP("root, bob (Bob)", "root,bob");
	OKP("Bob <bob>", "bob");
	/* Duplicates once, ASCII case-insensitively, first spelling. */
	OKP("a@x, A@X, b@y, a@x", "a@x,b@y");
	OKP("list: a@x; a@x, Ann <A@x>", "a@x");
	/* Empty members, source routes, Outlook's ';'. */
	OKP("", "");
	OKP("   ", "");
	OKP(" , ,a@x,,", "a@x");
	OKP("<>", "");
	OKP("<@r1.example,@r2.example:u@d>", "u@d");
	OKP("a@x; b@y", "a@x,b@y");
	/* 8-bit (RFC 6532) addresses pass. */
	OKP("J\xc3\xb6rg <j\xc3\xb6rg@b\xc3\xbc"
	    "cher.example>",
	    "j\xc3\xb6rg@b\xc3\xbc"
	    "cher.example");

	BADP("\"Doe, John <j@x>", "unterminated quoted string");
	BADP("a@x, \"open", "unterminated quoted string");
	BADP("\"a\\\"@x", "unterminated quoted string");
	BADP("John <j@x", "'<' without '>'");
	BADP("John <j@x, k@y", "',' inside '<>'");
	BADP("<a@x <b@y>>", "'<' inside '<>'");
	BADP("j@x>", "'>' without '<'");
	BADP("a@x (comment", "unterminated comment");
	BADP("a@x (one (two)", "unterminated comment");
	BADP("a@x (esc \\)", "unterminated comment");
	BADP("a@x)", "')' without '('");
	BADP("a@x]", "']' without '['");
	BADP("a@[1.2.3", "unterminated domain literal");
	BADP("a\\b@x", "'\\' outside a quoted string");
	BADP("John Doe", "two words in a row");
	BADP("a@x b@y", "two words in a row");
	BADP("a@b@c", "more than one '@'");
	BADP("@x", "empty local part");
	BADP("a@", "empty domain");
	BADP(".@x", "empty local part");
	BADP("<a@x> junk", "text after '>'");
	BADP("<a@x> <b@y>", "text after '>'");
	BADP("g1: g2: a@x;;", "group inside a group");
	BADP("\"q\"@\"d\"", "quoted string in a domain");
	BADP("[1.2.3.4]@x", "domain literal in a local part");
	BADP("a\001b@x", "control character");
	BADP("\"a\tb\"@x", "control character");

	/* A failed parse takes back what it added but keeps what was
	 * there; a good one does not add what was there already. */
	char **v = NULL;
	size_t n = 0;
	char err[128];
	CHECK(inject_parse_address_list("a@x", 3, &v, &n, err, sizeof(err)) ==
	      0);
	CHECK(n == 1);
	CHECK(inject_parse_address_list("b@y, c@z, \"x", 12, &v, &n, err,
					sizeof(err)) == -1);
	CHECK(n == 1);
	CHECK_CONTAINS(err, "quoted");
	CHECK(inject_parse_address_list("A@X, b@y", 8, &v, &n, err,
					sizeof(err)) == 0);
	CHECK(n == 2);
	CHECK_STR(v[0], "a@x");
	CHECK_STR(v[1], "b@y");
	/* len bounds the value: what follows is not looked at. */
	CHECK(inject_parse_address_list("c@z, \"x", 3, &v, &n, err,
					sizeof(err)) == 0);
	CHECK(n == 3);
	CHECK_STR(v[2], "c@z");
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* The Date: value this test run should produce. */
static char *
want_date_line(void)
{
	char d[64];
	return xasprintf("Date: %s\r\n", rfc5322_date(NOW, d, sizeof(d)));
}

static void
test_added_headers(void)
{
	struct inject_out out;
	char err[256];
	struct inject_opts o = opts(1, 0);
	char *date = want_date_line();

	CHECK(prep("Subject: hi\n\nbody\n", &o, &out, err, sizeof(err)) == 0);
	char *d = data_str(&out);
	CHECK(strncmp(d, "Subject: hi\r\nFrom: user@example.org\r\n", 37) == 0);
	CHECK_CONTAINS(d, date);
	CHECK_CONTAINS(d, "\r\nMessage-ID: <");
	CHECK_CONTAINS(d, "@host.example.org>\r\n\r\nbody\r\n");
	/* Added in this order, at the end of the header section. */
	char *f = strstr(d, "From:"), *dt = strstr(d, "Date:"),
	     *m = strstr(d, "Message-ID:");
	CHECK(f != NULL && dt != NULL && m != NULL && f < dt && dt < m);
	CHECK(!out.has_from && !out.has_date && !out.has_message_id);
	CHECK(out.nrcpt == 0 && out.rcpts == NULL);
	/* RFC 5322 date-time, in the local zone (UTC here). */
	CHECK_CONTAINS(d, "\r\nDate: Tue, 14 Nov 2023 22:13:20 +0000\r\n");
	free(d);
	inject_out_free(&out);

	/* Message-ID: unique per call, one token, "<...@host>". */
	char *ids[3];
	for (int i = 0; i < 3; i++) {
		CHECK(prep("", &o, &out, err, sizeof(err)) == 0);
		d = data_str(&out);
		char *s = strstr(d, "Message-ID: <");
		char *e = s ? strstr(s, "\r\n") : NULL;
		ids[i] = s && e ? xstrndup(s, (size_t)(e - s)) : xstrdup("");
		CHECK(e != NULL && e[-1] == '>');
		CHECK(strchr(ids[i], '@') != NULL);
		CHECK(strchr(ids[i] + 12, ' ') == NULL);
		free(d);
		inject_out_free(&out);
	}
	CHECK(strcmp(ids[0], ids[1]) != 0 && strcmp(ids[1], ids[2]) != 0 &&
	      strcmp(ids[0], ids[2]) != 0);
	CHECK_CONTAINS(ids[0], "@host.example.org>");
	for (int i = 0; i < 3; i++)
		free(ids[i]);

	/* No hostname: still a valid id. */
	struct inject_opts nh = o;
	nh.hostname = NULL;
	CHECK(prep("", &nh, &out, err, sizeof(err)) == 0);
	d = data_str(&out);
	CHECK_CONTAINS(d, "@localhost>\r\n");
	free(d);
	inject_out_free(&out);

	/* Present ones are untouched, names case-insensitive. */
	const char *full = "FROM: Someone <s@x>\r\n"
			   "date: Mon, 1 Jan 2001 00:00:00 +0000\r\n"
			   "message-id: <keep@me>\r\n"
			   "\r\n"
			   "b\r\n";
	CHECK(prep(full, &o, &out, err, sizeof(err)) == 0);
	d = data_str(&out);
	CHECK_STR(d, full);
	CHECK(out.has_from && out.has_date && out.has_message_id);
	free(d);
	inject_out_free(&out);

	/* Resent-From, Resent-Date do not count as From, Date. */
	CHECK(prep("Resent-From: r@x\nResent-Date: x\nResent-Message-ID: <y>"
		   "\n\n",
		   &o, &out, err, sizeof(err)) == 0);
	d = data_str(&out);
	CHECK_CONTAINS(d, "\r\nFrom: user@example.org\r\n");
	CHECK(!out.has_from && !out.has_date && !out.has_message_id);
	free(d);
	inject_out_free(&out);

	/* Only the missing ones are added. */
	CHECK(prep("Date: today\n\n", &o, &out, err, sizeof(err)) == 0);
	d = data_str(&out);
	CHECK(strstr(d, date) == NULL);
	CHECK_CONTAINS(d, "Date: today\r\nFrom: user@example.org\r\n"
			  "Message-ID: <");
	CHECK(!out.has_from && out.has_date && !out.has_message_id);
	free(d);
	inject_out_free(&out);
	free(date);
}

static char *
from_line(const char *full_name, const char *from_addr)
{
	struct inject_opts o = opts(1, 0);
	o.full_name = full_name;
	o.from_addr = from_addr;
	struct inject_out out;
	char err[256];
	CHECK(prep("X: y\n\n", &o, &out, err, sizeof(err)) == 0);
	char *d = data_str(&out);
	char *s = strstr(d, "\r\nFrom: ");
	char *e = s ? strstr(s + 2, "\r\n") : NULL;
	char *r = e ? xstrndup(s + 2, (size_t)(e - s - 2)) : xstrdup("");
	free(d);
	inject_out_free(&out);
	return r;
}

#define CHECK_FROM(name, addr, want)                                           \
	do {                                                                   \
		char *got_ = from_line(name, addr);                            \
		CHECK_STR(got_, want);                                         \
		free(got_);                                                    \
	} while (0)

static void
test_from_full_name(void)
{
	CHECK_FROM(NULL, "u@x", "From: u@x");
	CHECK_FROM("", "u@x", "From: u@x");
	CHECK_FROM("   ", "u@x", "From: u@x");
	CHECK_FROM("Jane Doe", "u@x", "From: Jane Doe <u@x>");
	CHECK_FROM("  Jane Doe ", "u@x", "From: Jane Doe <u@x>");
	CHECK_FROM("Doe, Jane", "u@x", "From: \"Doe, Jane\" <u@x>");
	CHECK_FROM("J. R. Doe", "u@x", "From: \"J. R. Doe\" <u@x>");
	CHECK_FROM("Jane \"JD\" Doe", "u@x",
		   "From: \"Jane \\\"JD\\\" Doe\" <u@x>");
	CHECK_FROM("back\\slash", "u@x", "From: \"back\\\\slash\" <u@x>");
	CHECK_FROM("a <b@c>", "u@x", "From: \"a <b@c>\" <u@x>");
	CHECK_FROM("Cron Daemon", "root", "From: Cron Daemon <root>");
	CHECK_FROM("J\xc3\xb6rg", "u@x", "From: J\xc3\xb6rg <u@x>");
	CHECK_FROM("O'Brien-Smith", "u@x", "From: O'Brien-Smith <u@x>");
	/* -F and -f cannot smuggle in a field of their own. */
	CHECK_FROM("Eve\r\nBcc: victim@x", "u@x",
		   "From: \"Eve  Bcc: victim@x\" <u@x>");
	CHECK_FROM(NULL, "u@x\nBcc: v@x", "From: u@x Bcc: v@x");
	/* The null sender. */
	CHECK_FROM(NULL, "", "From: MAILER-DAEMON");
	CHECK_FROM(NULL, NULL, "From: MAILER-DAEMON");
	CHECK_FROM("Mail System", "", "From: Mail System <MAILER-DAEMON>");
}

/* One prepare with dot_ends/-t, compared with want, which holds "@D@"
 * where the added From/Date/Message-ID lines go: From is fixed, Date
 * and Message-ID are matched by prefix only. */
static void
check_msg(const char *in, size_t inlen, int dot_ends, const char *want,
	  int line)
{
	struct inject_opts o = opts(dot_ends, 0);
	struct inject_out out;
	char err[256];
	CHECK(prep_n(in, inlen, &o, &out, err, sizeof(err)) == 0);
	char *got = data_str(&out);
	/* Cut the Date and Message-ID lines out of got. */
	char *dl = strstr(got, "\r\nDate: ");
	if (dl == NULL && strncmp(got, "Date: ", 6) == 0)
		dl = got - 2;
	if (dl != NULL) {
		char *e = strstr(dl + 2, "\r\n");
		memmove(dl + 2, e + 2, strlen(e + 2) + 1);
	}
	char *ml = strstr(got, "Message-ID: <");
	if (ml != NULL) {
		char *e = strstr(ml, "\r\n");
		memmove(ml, e + 2, strlen(e + 2) + 1);
	}
	struct strbuf w = {NULL, 0, 0};
	const char *at = strstr(want, "@D@");
	if (at != NULL) {
		strbuf_add(&w, want, (size_t)(at - want));
		strbuf_adds(&w, "From: user@example.org\r\n");
		strbuf_adds(&w, at + 3);
	} else {
		strbuf_adds(&w, want);
	}
	if (strcmp(got, w.s) != 0)
		fprintf(stderr, "line %d: message differs\n", line);
	CHECK_STR(got, w.s);
	free(w.s);
	free(got);
	inject_out_free(&out);
}

#define MSG(in, dot, want) check_msg(in, strlen(in), dot, want, __LINE__)

static void
test_lines(void)
{
	/* LF, CRLF, and PHP's mix: CRLF headers and an LF body. */
	MSG("To: a@x\nSubject: s\n\nline1\nline2\n", 1,
	    "To: a@x\r\nSubject: s\r\n@D@\r\nline1\r\nline2\r\n");
	MSG("To: a@x\r\nSubject: s\r\n\r\nline1\r\nline2\r\n", 1,
	    "To: a@x\r\nSubject: s\r\n@D@\r\nline1\r\nline2\r\n");
	MSG("To: a@x\r\nSubject: s\r\n\nline1\nline2\n\nend", 1,
	    "To: a@x\r\nSubject: s\r\n@D@\r\nline1\r\nline2\r\n\r\nend\r\n");
	MSG("To: a@x\r\nX: y\n\r\nb1\r\nb2\nb3\r\n", 1,
	    "To: a@x\r\nX: y\r\n@D@\r\nb1\r\nb2\r\nb3\r\n");
	/* A lone CR stays; one as the input's last octet ends the line. */
	MSG("Subject: a\rb\n\nx\ry\n\r\n\r\r\n", 1,
	    "Subject: a\rb\r\n@D@\r\nx\ry\r\n\r\n\r\r\n");
	MSG("Subject: s\n\nlast\r", 1, "Subject: s\r\n@D@\r\nlast\r\n");
	/* No final line end. */
	MSG("Subject: s\n\nlast", 1, "Subject: s\r\n@D@\r\nlast\r\n");
	/* Blank lines at the end of the body are kept. */
	MSG("Subject: s\n\nb\n\n\n", 1, "Subject: s\r\n@D@\r\nb\r\n\r\n\r\n");

	/* The dot. */
	MSG("Subject: s\n\nline1\n.\nafter\n", 1,
	    "Subject: s\r\n@D@\r\nline1\r\n");
	MSG("Subject: s\n\nline1\n.\r\nafter\n", 1,
	    "Subject: s\r\n@D@\r\nline1\r\n");
	MSG("Subject: s\n\nline1\n.", 1, "Subject: s\r\n@D@\r\nline1\r\n");
	MSG("Subject: s\n\nline1\n.\nafter\n", 0,
	    "Subject: s\r\n@D@\r\nline1\r\n.\r\nafter\r\n");
	MSG("Subject: s\n\n..\n. \n.x\n .\n", 1,
	    "Subject: s\r\n@D@\r\n..\r\n. \r\n.x\r\n .\r\n");
	MSG("Subject: s\n.\nBody: x\n", 1, "Subject: s\r\n@D@\r\n");
	MSG(".\nSubject: s\n", 1, "@D@\r\n");
	MSG(".\nSubject: s\n", 0, "@D@\r\n.\r\nSubject: s\r\n");

	/* A line that is no header field ends the header section. */
	MSG("To: a@x\nThis is the body\nmore\n", 1,
	    "To: a@x\r\n@D@\r\nThis is the body\r\nmore\r\n");
	MSG("To: a@x\nNo colon here\n\nb\n", 1,
	    "To: a@x\r\n@D@\r\nNo colon here\r\n\r\nb\r\n");
	MSG("Hello,\nworld\n", 1, "@D@\r\nHello,\r\nworld\r\n");
	/* A leading mbox envelope line is dropped (git format-patch);
	 * one further down is text. */
	MSG("From someone Mon Jan  1 00:00:00 2001\nTo: a@x\n", 1,
	    "To: a@x\r\n@D@\r\n");
	MSG("To: a@x\nFrom someone Mon Jan  1 00:00:00 2001\n", 1,
	    "To: a@x\r\n@D@\r\nFrom someone Mon Jan  1 00:00:00 2001\r\n");
	/* "From :" in front is the obsolete form of the From: field, not
	 * an envelope line: kept, and no From: is added. A message whose
	 * envelope line is followed by one prepares to the same bytes
	 * again (found by fuzz_inject). */
	{
		struct inject_opts o = opts(1, 0);
		struct inject_out out, again;
		char err[256];
		CHECK(prep("From someone x\nFrom :a@x\n\nb\n", &o, &out, err,
			   sizeof(err)) == 0);
		char *d = data_str(&out);
		CHECK(strncmp(d, "From :a@x\r\nDate: ", 17) == 0);
		CHECK(out.has_from && strstr(d, "From: ") == NULL);
		CHECK(prep_n(out.data, out.len, &o, &again, err, sizeof(err)) ==
		      0);
		CHECK(again.len == out.len &&
		      memcmp(again.data, out.data, out.len) == 0);
		free(d);
		inject_out_free(&again);
		inject_out_free(&out);
	}
	MSG(" leading space\n", 1, "@D@\r\n leading space\r\n");
	MSG(":no name\n", 1, "@D@\r\n:no name\r\n");
	MSG("Bad\x80Name: x\n", 1, "@D@\r\nBad\x80Name: x\r\n");
	MSG("Subject: s\n\rX: y\n", 1, "Subject: s\r\n@D@\r\n\rX: y\r\n");
	/* Continuations and the obsolete "Name :". */
	MSG("Subject: a\n b\n\tc\nX-Y : z\n\nb\n", 1,
	    "Subject: a\r\n b\r\n\tc\r\nX-Y : z\r\n@D@\r\nb\r\n");

	/* Empty input; headers only, with and without a line end. */
	MSG("", 1, "@D@\r\n");
	MSG("", 0, "@D@\r\n");
	MSG("\n", 1, "@D@\r\n");
	MSG("\n\n", 1, "@D@\r\n\r\n");
	MSG("Subject: s", 1, "Subject: s\r\n@D@\r\n");
	MSG("Subject: s\n", 1, "Subject: s\r\n@D@\r\n");
	MSG("Subject: s\r\n", 1, "Subject: s\r\n@D@\r\n");
	MSG("Subject: s\n\n", 1, "Subject: s\r\n@D@\r\n");

	/* 8-bit octets and NULs pass untouched. */
	MSG("Subject: Gr\xc3\xbc\xc3\x9f"
	    "e\n\n\xff\xfe\x80 caf\xe9\n",
	    1,
	    "Subject: Gr\xc3\xbc\xc3\x9f"
	    "e\r\n@D@\r\n\xff\xfe\x80 caf\xe9\r\n");
	{
		static const char in[] = "X: a\n\nb\0c\n";
		struct inject_opts o = opts(1, 0);
		struct inject_out out;
		char err[64];
		CHECK(prep_n(in, sizeof(in) - 1, &o, &out, err, sizeof(err)) ==
		      0);
		CHECK(out.len > 7 &&
		      memcmp(out.data + out.len - 7, "\r\nb\0c\r\n", 7) == 0);
		inject_out_free(&out);
	}
}

static void
test_bcc(void)
{
	/* Removed with continuation lines, with or without -t. */
	for (int t = 0; t < 2; t++) {
		struct inject_opts o = opts(1, t);
		struct inject_out out;
		char err[256];
		CHECK(prep("To: a@x\n"
			   "Bcc: hidden@x,\n"
			   " hidden2@x\n"
			   "Subject: s\n"
			   "bcc: lower@x\n"
			   "Resent-Bcc: r1@x,\n"
			   "\tr2@x\n"
			   "BCC:\n"
			   "X-Bcc: stays@x\n"
			   "\n"
			   "Bcc: in the body stays\n",
			   &o, &out, err, sizeof(err)) == 0);
		char *d = data_str(&out);
		CHECK(strstr(d, "hidden") == NULL);
		CHECK(strstr(d, "lower") == NULL);
		CHECK(strstr(d, "r1@x") == NULL && strstr(d, "r2@x") == NULL);
		CHECK(strncmp(d, "To: a@x\r\nSubject: s\r\nX-Bcc: stays@x\r\n",
			      37) == 0);
		CHECK_CONTAINS(d, "\r\n\r\nBcc: in the body stays\r\n");
		free(d);
		if (t) {
			/* Resent-Bcc made it a resent message. */
			char *r = join(out.rcpts, out.nrcpt);
			CHECK_STR(r, "r1@x,r2@x");
			free(r);
		}
		inject_out_free(&out);
	}
}

static char *
rcpts_of(const char *in, int *rc, char *err, size_t errlen)
{
	struct inject_opts o = opts(1, 1);
	struct inject_out out;
	*rc = prep(in, &o, &out, err, errlen);
	char *r = join(out.rcpts, out.nrcpt);
	inject_out_free(&out);
	return r;
}

#define CHECK_RCPTS(in, want)                                                  \
	do {                                                                   \
		int rc_;                                                       \
		char err_[256];                                                \
		char *r_ = rcpts_of(in, &rc_, err_, sizeof(err_));             \
		CHECK(rc_ == 0);                                               \
		CHECK_STR(r_, want);                                           \
		free(r_);                                                      \
	} while (0)

#define CHECK_RCPTS_ERR(in, want_err)                                          \
	do {                                                                   \
		int rc_;                                                       \
		char err_[256];                                                \
		char *r_ = rcpts_of(in, &rc_, err_, sizeof(err_));             \
		CHECK(rc_ == -1);                                              \
		CHECK_CONTAINS(err_, want_err);                                \
		free(r_);                                                      \
	} while (0)

static void
test_extract(void)
{
	CHECK_RCPTS("To: a@x\nCc: b@y\nBcc: c@z\n\nTo: body@x\n",
		    "a@x,b@y,c@z");
	/* Field order, folded fields, duplicates once. */
	CHECK_RCPTS("Cc: c1@x,\n"
		    "  \"Doe, John\" <j@x>\n"
		    "Subject: s\n"
		    "To: t1@x, (comment) t2@x,\n"
		    "\tC1@X\n"
		    "tO: lower@x\n\n",
		    "c1@x,j@x,t1@x,t2@x,lower@x");
	CHECK_RCPTS("To: undisclosed-recipients:;\n\n", "");
	CHECK_RCPTS("To: list: a@x, b@y;\nCc: c@z\n\n", "a@x,b@y,c@z");
	CHECK_RCPTS("To: \"john doe\"@example.org, root\n\n",
		    "\"john doe\"@example.org,root");
	CHECK_RCPTS("To: =?UTF-8?B?SsO2cmc=?= <j@x>\n\n", "j@x");
	CHECK_RCPTS("Subject: none\n\n", "");
	CHECK_RCPTS("", "");
	/* Headers only; the section ended by a line that is no field. */
	CHECK_RCPTS("To: a@x", "a@x");
	CHECK_RCPTS("To: a@x\nbody text\nCc: b@y\n", "a@x");
	/* A dot ends the input before the fields after it. */
	CHECK_RCPTS("To: a@x\n.\nCc: b@y\n", "a@x");
	/* Resent-*: then only Resent-To/Cc/Bcc count, To may be bad. */
	CHECK_RCPTS("Resent-To: r1@x\n"
		    "Resent-Cc: r2@x\n"
		    "Resent-Bcc: r3@x\n"
		    "To: \"broken\n"
		    "Cc: c@x\n\n",
		    "r1@x,r2@x,r3@x");
	CHECK_RCPTS("To: t@x\nResent-Date: now\n\n", "");
	CHECK_RCPTS("To: t@x\nresent-from: f@x\nRESENT-TO: r@x\n\n", "r@x");
	/* A bad list fails and names the field as written. */
	CHECK_RCPTS_ERR("To: \"Doe, John <j@x>\n\n", "To field");
	CHECK_RCPTS_ERR("To: \"Doe, John <j@x>\n\n", "quoted string");
	CHECK_RCPTS_ERR("cc: John <j@x\n\n", "cc field: '<' without '>'");
	CHECK_RCPTS_ERR("Bcc: a@x (oops\n\n", "Bcc field: unterminated "
					      "comment");
	CHECK_RCPTS_ERR("To: a@x\nResent-To: r@x>\n\n", "Resent-To field");
	CHECK_RCPTS_ERR("To: John Doe\n\n", "To field");
	/* Without -t the lists are not looked at. */
	{
		struct inject_opts o = opts(1, 0);
		struct inject_out out;
		char err[256];
		CHECK(prep("To: \"broken\nCc: <x\n\n", &o, &out, err,
			   sizeof(err)) == 0);
		CHECK(out.nrcpt == 0 && out.rcpts == NULL);
		inject_out_free(&out);
	}
	/* On failure out is still safe to free, and freeing twice too. */
	{
		struct inject_opts o = opts(1, 1);
		struct inject_out out;
		char err[256];
		CHECK(prep("To: a@x, <b@y\n\n", &o, &out, err, sizeof(err)) ==
		      -1);
		CHECK(out.nrcpt == 0);
		inject_out_free(&out);
		inject_out_free(&out);
	}
}

/* The longest line of the header section. */
static size_t
longest_header_line(const char *d)
{
	size_t max = 0;
	const char *end = strstr(d, "\r\n\r\n");
	for (const char *p = d; end != NULL && p <= end;) {
		const char *e = strstr(p, "\r\n");
		if ((size_t)(e - p) > max)
			max = (size_t)(e - p);
		p = e + 2;
	}
	return max;
}

/* The header section with folds taken out. */
static char *
unfolded_headers(const char *d)
{
	const char *end = strstr(d, "\r\n\r\n");
	struct strbuf b = {NULL, 0, 0};
	for (const char *p = d; end != NULL && p < end + 2; p++) {
		if (p[0] == '\r' && p[1] == '\n' &&
		    (p[2] == ' ' || p[2] == '\t')) {
			p++;
			continue;
		}
		strbuf_add(&b, p, 1);
	}
	return b.s;
}

static void
test_long_lines(void)
{
	struct inject_opts o = opts(1, 0);
	struct inject_out out;
	char err[256];

	/* Body lines of any length are kept whole. */
	struct strbuf in = {NULL, 0, 0};
	strbuf_adds(&in, "Subject: s\n\n");
	for (int i = 0; i < 5000; i++)
		strbuf_add(&in, i % 7 ? "x" : " ", 1);
	strbuf_adds(&in, "\n");
	CHECK(prep(in.s, &o, &out, err, sizeof(err)) == 0);
	CHECK(out.len > 5002 &&
	      memcmp(out.data + out.len - 5002, in.s + 12, 5000) == 0);
	inject_out_free(&out);
	free(in.s);

	/* A long header line is folded at white space, and unfolding
	 * gives it back. */
	in = (struct strbuf){NULL, 0, 0};
	strbuf_adds(&in, "To: ");
	for (int i = 0; i < 400; i++)
		strbuf_addf(&in, "%suser%d@example.org", i ? ", " : "", i);
	strbuf_adds(&in, "\r\nSubject: ");
	for (int i = 0; i < 3000; i++)
		strbuf_add(&in, i % 10 == 9 ? " " : "w", 1);
	strbuf_adds(&in, "\r\n\r\nbody\r\n");
	CHECK(prep(in.s, &o, &out, err, sizeof(err)) == 0);
	char *d = data_str(&out);
	CHECK(longest_header_line(d) <= 998);
	CHECK(longest_header_line(d) > 900);
	char *u = unfolded_headers(d);
	CHECK(u != NULL && strncmp(u, in.s, strlen(in.s) - 8) == 0);
	free(u);
	free(d);
	inject_out_free(&out);

	/* -t reads the folded list whole. */
	struct inject_opts t = opts(1, 1);
	CHECK(prep(in.s, &t, &out, err, sizeof(err)) == 0);
	CHECK(out.nrcpt == 400);
	CHECK(out.nrcpt == 400 &&
	      strcmp(out.rcpts[399], "user399@example.org") == 0);
	inject_out_free(&out);
	free(in.s);

	/* No white space: kept whole. */
	in = (struct strbuf){NULL, 0, 0};
	strbuf_adds(&in, "X-Long: ");
	for (int i = 0; i < 2000; i++)
		strbuf_add(&in, "z", 1);
	strbuf_adds(&in, "\n\n");
	CHECK(prep(in.s, &o, &out, err, sizeof(err)) == 0);
	d = data_str(&out);
	CHECK(longest_header_line(d) == 2008);
	free(d);
	inject_out_free(&out);
	free(in.s);

	/* White space only past the limit: folded there, as soon as it
	 * can; trailing white space is no place to fold. */
	in = (struct strbuf){NULL, 0, 0};
	strbuf_adds(&in, "X-Long:");
	for (int i = 0; i < 1200; i++)
		strbuf_add(&in, "z", 1);
	strbuf_adds(&in, " tail   \n\n");
	CHECK(prep(in.s, &o, &out, err, sizeof(err)) == 0);
	d = data_str(&out);
	CHECK(longest_header_line(d) == 1207);
	CHECK_CONTAINS(d, "z\r\n tail   \r\n");
	free(d);
	inject_out_free(&out);
	free(in.s);

	/* A value of white space only has nowhere to fold. */
	in = (struct strbuf){NULL, 0, 0};
	strbuf_adds(&in, "X-Long:");
	for (int i = 0; i < 1200; i++)
		strbuf_add(&in, " ", 1);
	strbuf_adds(&in, "\n\n");
	CHECK(prep(in.s, &o, &out, err, sizeof(err)) == 0);
	d = data_str(&out);
	CHECK(longest_header_line(d) == 1207);
	free(d);
	inject_out_free(&out);
	free(in.s);

	/* A long continuation line is folded after its first word. */
	in = (struct strbuf){NULL, 0, 0};
	strbuf_adds(&in, "X-Long: a\n    ");
	for (int i = 0; i < 1500; i++)
		strbuf_add(&in, i == 1000 ? " " : "c", 1);
	strbuf_adds(&in, "\n\n");
	CHECK(prep(in.s, &o, &out, err, sizeof(err)) == 0);
	d = data_str(&out);
	CHECK(longest_header_line(d) == 1004);
	CHECK_CONTAINS(d, "X-Long: a\r\n    ccc");
	CHECK_CONTAINS(d, "cc\r\n cc");
	free(d);
	inject_out_free(&out);
	free(in.s);

	/* A long -F name is folded too. */
	struct inject_opts f = opts(1, 0);
	in = (struct strbuf){NULL, 0, 0};
	for (int i = 0; i < 300; i++)
		strbuf_adds(&in, "Name ");
	f.full_name = in.s;
	CHECK(prep("", &f, &out, err, sizeof(err)) == 0);
	d = data_str(&out);
	CHECK(longest_header_line(d) <= 998);
	CHECK_CONTAINS(d, "Name <user@example.org>\r\n");
	free(d);
	inject_out_free(&out);
	free(in.s);
}

/* ---- properties over generated inputs ---- */

static uint32_t rng = 12345;

static uint32_t
next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 17;
	rng ^= rng << 5;
	return rng;
}

static const char *const pieces[] = {
    "To: ",
    "Cc: ",
    "Bcc: ",
    "Resent-To: ",
    "Resent-Bcc: ",
    "From: ",
    "Date: x",
    "Message-ID: <m@x>",
    "Subject: ",
    "a@x",
    "B@Y",
    ", ",
    "\"q, <x>\" ",
    "<c@z>",
    "(c (d) \\))",
    "list: ",
    ";",
    "\"",
    "<",
    ">",
    "(",
    ")",
    "\n",
    "\r\n",
    "\r",
    "\n\n",
    "\n.\n",
    ".",
    " ",
    "\t",
    "\n ",
    "x",
    "\xff",
    "=?UTF-8?Q?a,b?=",
    "@",
    ":",
    "\\",
    "Resent-Date: now\n",
};

/* Header lines before the first empty line: fields and continuations. */
static int
headers_well_formed(const char *d, size_t len)
{
	const char *end = memmem(d, len, "\r\n\r\n", 4);
	if (end == NULL)
		return 0;
	for (const char *p = d; p < end + 2;) {
		const char *e = memmem(p, (size_t)(end + 2 - p), "\r\n", 2);
		size_t n = (size_t)(e - p), i = 0;
		if (n == 0)
			return 0;
		if (p[0] != ' ' && p[0] != '\t') {
			while (i < n && (unsigned char)p[i] > ' ' &&
			       (unsigned char)p[i] < 0x7f && p[i] != ':')
				i++;
			while (i < n && (p[i] == ' ' || p[i] == '\t'))
				i++;
			if (i == 0 || i == n || p[i] != ':')
				return 0;
		}
		p = e + 2;
	}
	return 1;
}

static int
bare_lf(const char *d, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (d[i] == '\n' && (i == 0 || d[i - 1] != '\r'))
			return 1;
	return 0;
}

static void
test_properties(void)
{
	int bad_end = 0, bad_lf = 0, bad_hdr = 0, bad_rcpt = 0, bad_idem = 0,
	    bad_fail = 0, failed_t = 0;
	for (int iter = 0; iter < 3000; iter++) {
		struct strbuf in = {NULL, 0, 0};
		strbuf_adds(&in, "");
		int npieces = (int)(next_rand() % 40);
		for (int i = 0; i < npieces; i++)
			strbuf_adds(&in,
				    pieces[next_rand() % SMALT_NELEM(pieces)]);
		for (int set = 0; set < 4; set++) {
			struct inject_opts o = opts(set & 1, (set >> 1) & 1);
			struct inject_out out, again;
			char err[256];
			int rc =
			    prep_n(in.s, in.len, &o, &out, err, sizeof(err));
			if (rc != 0) {
				/* Only -t may fail, and says why. */
				bad_fail += !o.extract_rcpts || err[0] == '\0';
				failed_t++;
				inject_out_free(&out);
				continue;
			}
			bad_end += out.len < 4 ||
				   memcmp(out.data + out.len - 2, "\r\n", 2);
			bad_lf += bare_lf(out.data, out.len);
			bad_hdr += !headers_well_formed(out.data, out.len);
			for (size_t i = 0; i < out.nrcpt; i++)
				bad_rcpt += out.rcpts[i][0] == '\0';
			/* Prepared once is prepared: a second pass changes
			 * nothing. */
			o.extract_rcpts = 0;
			CHECK(prep_n(out.data, out.len, &o, &again, err,
				     sizeof(err)) == 0);
			bad_idem += again.len != out.len ||
				    memcmp(again.data, out.data, out.len) != 0;
			inject_out_free(&again);
			inject_out_free(&out);
		}
		free(in.s);
	}
	CHECK(bad_end == 0);
	CHECK(bad_lf == 0);
	CHECK(bad_hdr == 0);
	CHECK(bad_rcpt == 0);
	CHECK(bad_idem == 0);
	CHECK(bad_fail == 0);
	CHECK(failed_t > 0); /* the generator does reach the errors */
}

int
main(void)
{
	/* A fixed zone, so that the expected Date: is this run's too. */
	setenv("TZ", "UTC", 1);
	tzset();
	test_address_lists();
	test_added_headers();
	test_from_full_name();
	test_lines();
	test_bcc();
	test_extract();
	test_long_lines();
	test_properties();
	return check_done();
}
