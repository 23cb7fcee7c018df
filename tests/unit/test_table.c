/* Table files: both separators, case folding, continuation lines, quoted
 * keys, errors with their line numbers, first-duplicate lookups, and a
 * large table checked against a linear search. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/table.h"
#include "tests/unit/check.h"

static char err[512];

static struct table *
parse(const char *text, enum table_sep sep, int flags)
{
	return table_parse_buffer("t.tab", text, strlen(text), sep, flags, err,
				  sizeof(err));
}

#define CHECK_FAILS(text, sep, flags, msg)                                     \
	do {                                                                   \
		struct table *t_ = parse(text, sep, flags);                    \
		CHECK(t_ == NULL);                                             \
		table_free(t_);                                                \
		CHECK_STR(err, msg);                                           \
	} while (0)

static const char *
value_of(const struct table *t, const char *key)
{
	const struct table_entry *e = table_lookup(t, key);
	return e ? e->value : "(none)";
}

static void
test_colon(void)
{
	struct table *t = parse("# aliases\n"
				"postmaster: root\n"
				"  # indented comment\n"
				"\n"
				"root:   alice,\n"
				"        bob\n"
				"\n"
				"\tcarol\n"
				"list:\n"
				"  a@example.org,\n"
				"  |/usr/bin/prog\n"
				"Mixed.Case : /var/mail/x\r\n"
				"\"two words\": alice\n"
				"\"with:colon\" : bob\n"
				"\"q\\\"uote\": carol\n"
				"empty:\n",
				TABLE_SEP_COLON, TABLE_FOLD_CASE);
	CHECK(t != NULL);
	if (t == NULL) {
		fprintf(stderr, "%s\n", err);
		return;
	}
	CHECK(t->n == 8);
	CHECK_STR(t->name, "t.tab");
	CHECK_STR(value_of(t, "postmaster"), "root");
	CHECK_STR(value_of(t, "root"), "alice, bob carol");
	CHECK_STR(value_of(t, "list"), "a@example.org, |/usr/bin/prog");
	CHECK_STR(value_of(t, "mixed.case"), "/var/mail/x");
	CHECK_STR(value_of(t, "MIXED.CASE"), "/var/mail/x");
	CHECK_STR(value_of(t, "Two Words"), "alice");
	CHECK_STR(value_of(t, "with:colon"), "bob");
	CHECK_STR(value_of(t, "q\"uote"), "carol");
	CHECK_STR(value_of(t, "empty"), "");
	CHECK(table_lookup(t, "nobody") == NULL);
	CHECK(table_lookup(t, "") == NULL);
	CHECK(table_lookup(t, NULL) == NULL);
	/* Keys are folded, entries keep file order and first lines. */
	CHECK_STR(t->v[3].key, "mixed.case");
	CHECK(t->v[0].line == 2);
	CHECK(t->v[1].line == 5);
	CHECK(t->v[2].line == 9);
	CHECK(t->v[3].line == 12);
	table_free(t);

	/* auth_users style: the value holds colons of its own. */
	t = parse("alice:$6$salt$hash:extra\n", TABLE_SEP_COLON, 0);
	CHECK(t != NULL);
	CHECK_STR(value_of(t, "alice"), "$6$salt$hash:extra");
	table_free(t);
}

static void
test_space(void)
{
	struct table *t = parse("example.org     local\n"
				".example.org\tsmtp:[mx.example.org]:25\n"
				"*  relay\n"
				"Alice@Example.ORG /home/alice/Maildir/\n"
				"pipe.example pipe:/usr/bin/x  %s  %r\n"
				"  --more\n",
				TABLE_SEP_SPACE, 0);
	CHECK(t != NULL);
	if (t == NULL) {
		fprintf(stderr, "%s\n", err);
		return;
	}
	CHECK(t->n == 5);
	CHECK_STR(t->v[0].key, "example.org");
	CHECK_STR(t->v[1].key, ".example.org");
	CHECK_STR(t->v[2].key, "*");
	CHECK_STR(value_of(t, "example.org"), "local");
	CHECK_STR(value_of(t, ".example.org"), "smtp:[mx.example.org]:25");
	CHECK_STR(value_of(t, "*"), "relay");
	/* Without folding, case matters. */
	CHECK_STR(value_of(t, "Alice@Example.ORG"), "/home/alice/Maildir/");
	CHECK(table_lookup(t, "alice@example.org") == NULL);
	CHECK_STR(value_of(t, "pipe.example"),
		  "pipe:/usr/bin/x  %s  %r --more");
	table_free(t);

	t = parse("Alice@Example.ORG /home/alice/Maildir/\n"
		  "\"john doe\"  /home/jd/mbox\n"
		  "\"Jane Roe\"@Example.org /home/jr/Maildir/\n"
		  "\"a\\\"b\"c@d e\n",
		  TABLE_SEP_SPACE, TABLE_FOLD_CASE);
	CHECK(t != NULL);
	CHECK_STR(value_of(t, "alice@example.org"), "/home/alice/Maildir/");
	CHECK_STR(value_of(t, "ALICE@EXAMPLE.ORG"), "/home/alice/Maildir/");
	CHECK_STR(value_of(t, "John Doe"), "/home/jd/mbox");
	CHECK_STR(value_of(t, "jane roe@example.org"), "/home/jr/Maildir/");
	CHECK_STR(value_of(t, "a\"bc@d"), "e");
	table_free(t);

	/* Empty input and input of comments only make empty tables. */
	t = parse("", TABLE_SEP_SPACE, 0);
	CHECK(t != NULL && t->n == 0 && table_lookup(t, "x") == NULL);
	table_free(t);
	t = parse("# only\n\n   \n", TABLE_SEP_COLON, TABLE_FOLD_CASE);
	CHECK(t != NULL && t->n == 0);
	table_free(t);
	t = table_parse_buffer(NULL, NULL, 0, TABLE_SEP_SPACE, 0, err,
			       sizeof(err));
	CHECK(t != NULL && t->n == 0);
	table_free(t);
	/* No newline at the end. */
	t = parse("a b", TABLE_SEP_SPACE, 0);
	CHECK(t != NULL && t->n == 1);
	CHECK_STR(value_of(t, "a"), "b");
	table_free(t);
}

static void
test_errors(void)
{
	CHECK_FAILS("a: b\nno colon here\n", TABLE_SEP_COLON, 0,
		    "t.tab:2: missing \":\" (expected \"key: value\")");
	CHECK_FAILS("a: b\n\n: value\n", TABLE_SEP_COLON, 0,
		    "t.tab:3: empty key");
	CHECK_FAILS("a b: c\n", TABLE_SEP_COLON, 0,
		    "t.tab:1: white space in key (put the key in double "
		    "quotes)");
	CHECK_FAILS("\"a b: c\n", TABLE_SEP_COLON, 0,
		    "t.tab:1: unterminated quoted key");
	CHECK_FAILS("\"a b\" c\n", TABLE_SEP_COLON, 0,
		    "t.tab:1: missing \":\" (expected \"key: value\")");
	CHECK_FAILS("\"a b\"x y: c\n", TABLE_SEP_COLON, 0,
		    "t.tab:1: white space in key (put the key in double "
		    "quotes)");
	CHECK_FAILS("\"\": c\n", TABLE_SEP_COLON, 0, "t.tab:1: empty key");
	CHECK_FAILS("# c\n  continued\na: b\n", TABLE_SEP_COLON, 0,
		    "t.tab:2: continuation line (starts with white space) "
		    "before the first entry");
	CHECK_FAILS("a b\nc\n", TABLE_SEP_SPACE, 0,
		    "t.tab:2: missing value "
		    "(expected \"key "
		    "value\")");
	CHECK_FAILS("a b\nc d\n  e\n", TABLE_SEP_SPACE, TABLE_NO_CONT,
		    "t.tab:3: line starts with white space (no continuation "
		    "lines in this file)");
	CHECK_FAILS("\"a\"\n", TABLE_SEP_SPACE, 0,
		    "t.tab:1: missing value (expected \"key value\")");
	CHECK_FAILS("\"a b\n", TABLE_SEP_SPACE, 0,
		    "t.tab:1: unterminated quoted key");

	static const char nul[] = "a b\nc d\ne \0f\n";
	struct table *t =
	    table_parse_buffer("t.tab", nul, sizeof(nul) - 1, TABLE_SEP_SPACE,
			       0, err, sizeof(err));
	CHECK(t == NULL);
	CHECK_STR(err, "t.tab:3: NUL byte in line");

	/* TABLE_NO_CONT still allows indented comments and blank lines. */
	t = parse("a b\n   # note\n \t \nc d\n", TABLE_SEP_SPACE,
		  TABLE_NO_CONT);
	CHECK(t != NULL && t->n == 2);
	table_free(t);
}

static void
test_duplicates(void)
{
	struct table *t = parse("a: 1\nb: 2\nA: 3\na: 4\nb: 5\n",
				TABLE_SEP_COLON, TABLE_FOLD_CASE);
	CHECK(t != NULL);
	if (t == NULL)
		return;
	CHECK(t->n == 5);
	CHECK_STR(value_of(t, "a"), "1");
	CHECK_STR(value_of(t, "A"), "1");
	CHECK_STR(value_of(t, "b"), "2");
	CHECK(table_lookup(t, "a")->line == 1);
	table_free(t);

	t = parse("a 1\nA 2\na 3\n", TABLE_SEP_SPACE, 0);
	CHECK(t != NULL);
	CHECK_STR(value_of(t, "a"), "1");
	CHECK_STR(value_of(t, "A"), "2");
	table_free(t);
}

static void
test_large(void)
{
	enum { N = 20000 };
	size_t cap = (size_t)N * 48, len = 0;
	char *text = malloc(cap);
	static size_t first[N];
	/* Keys in a scrambled order (7919 is prime to N, so every key comes
	 * once), a quarter of them repeated later. */
	for (unsigned i = 0; i < N; i++) {
		unsigned k = (i * 7919u) % N;
		first[k] = i;
		len += (size_t)snprintf(text + len, cap - len,
					"User%u@Example.com: v%u\n", k, i);
	}
	for (unsigned i = 0; i < N / 4; i++)
		len += (size_t)snprintf(text + len, cap - len,
					"user%u@example.com: dup%u\n", i, i);
	struct table *t = table_parse_buffer("big", text, len, TABLE_SEP_COLON,
					     TABLE_FOLD_CASE, err, sizeof(err));
	free(text);
	CHECK(t != NULL);
	if (t == NULL)
		return;
	CHECK(t->n == N + N / 4);
	int bad = 0;
	for (unsigned k = 0; k < N; k++) {
		char key[64];
		snprintf(key, sizeof(key), "USER%u@example.COM", k);
		const struct table_entry *e = table_lookup(t, key);
		if (e == NULL || e != &t->v[first[k]])
			bad++;
	}
	CHECK(bad == 0);
	CHECK(table_lookup(t, "user20000@example.com") == NULL);
	CHECK(table_lookup(t, "user1@example.co") == NULL);
	CHECK(table_lookup(t, "") == NULL);
	CHECK(table_lookup(t, "zzz") == NULL);
	table_free(t);
}

static void
test_open(void)
{
	const char *base = getenv("SMALT_TEST_TMP");
	char tmpl[4096];
	if (base != NULL && base[0] != '\0') {
		mkdir(base, 0700);
		snprintf(tmpl, sizeof(tmpl), "%s/table.XXXXXX", base);
	} else {
		snprintf(tmpl, sizeof(tmpl), "/tmp/smalt-table.XXXXXX");
	}
	char *dir = mkdtemp(tmpl);
	CHECK(dir != NULL);
	if (dir == NULL)
		return;
	char path[4200], want[4400];
	snprintf(path, sizeof(path), "%s/missing", dir);
	struct table *t =
	    table_open(path, TABLE_SEP_SPACE, 0, err, sizeof(err));
	CHECK(t == NULL && errno == ENOENT);
	snprintf(want, sizeof(want), "%s: No such file or directory", path);
	CHECK_STR(err, want);

	snprintf(path, sizeof(path), "%s/routes", dir);
	FILE *f = fopen(path, "w");
	fputs("example.org local\n*  smtp\nbroken\n", f);
	fclose(f);
	errno = ENOENT;
	t = table_open(path, TABLE_SEP_SPACE, 0, err, sizeof(err));
	CHECK(t == NULL && errno == EINVAL);
	snprintf(want, sizeof(want),
		 "%s:3: missing value (expected \"key value\")", path);
	CHECK_STR(err, want);

	f = fopen(path, "w");
	fputs("example.org local\n*  smtp\n", f);
	fclose(f);
	t = table_open(path, TABLE_SEP_SPACE, 0, err, sizeof(err));
	CHECK(t != NULL);
	if (t != NULL) {
		CHECK_STR(t->name, path);
		CHECK(t->n == 2);
		CHECK_STR(value_of(t, "*"), "smtp");
	}
	table_free(t);
	unlink(path);
	rmdir(dir);
}

int
main(void)
{
	test_colon();
	test_space();
	test_errors();
	test_duplicates();
	test_large();
	test_open();
	return check_done();
}
