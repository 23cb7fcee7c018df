/* aliases(5): every target kind, continuation lines and comments, case,
 * nesting through local domains, self-reference and loops, :include:
 * files and their safety checks, owner- lists, deduplication, the uid a
 * command or file runs as, the limits, and "file:line: reason" for each
 * kind of bad entry. Files are made in a temporary folder; as root they
 * are chowned to test uids so that the ownership rules are exercised. */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/strbuf.h"
#include "common/util.h"
#include "conf/aliases.h"
#include "tests/lib/testutil.h"
#include "tests/unit/check.h"

#define TEST_UID  12345 /* as root: the aliases file's owner */
#define TEST_GID  23456
#define OTHER_UID 54321 /* as root: someone else */
#define BUF_OWNER 1000	/* alias_parse_buffer's pretend owner */
#define BUF_GROUP 1001

static char err[1024];
static char *dir;
static int as_root;
static uid_t nobody_uid = 65534;
static gid_t nobody_gid = 65534;

#define CHECK_PREFIX(s, prefix)                                                \
	do {                                                                   \
		const char *s_ = (s), *p_ = (prefix);                          \
		if (strncmp(s_, p_, strlen(p_)) == 0) {                        \
			check_passed++;                                        \
		} else {                                                       \
			check_failed++;                                        \
			fprintf(stderr,                                        \
				"%s:%d: CHECK_PREFIX failed: \"%s\" does not " \
				"start with \"%s\"\n",                         \
				__FILE__, __LINE__, s_, p_);                   \
		}                                                              \
	} while (0)

static struct alias_db *
parse(const char *text)
{
	struct alias_db *db =
	    alias_parse_buffer("t.aliases", text, strlen(text), BUF_OWNER,
			       BUF_GROUP, err, sizeof(err));
	if (db == NULL)
		fprintf(stderr, "parse: %s\n", err);
	return db;
}

/* localhost and example.net are delivered here. */
static int
is_local(const char *domain, void *arg)
{
	int *calls = arg;
	if (calls != NULL)
		(*calls)++;
	return strcmp(domain, "localhost") == 0 ||
	       strcmp(domain, "example.net") == 0;
}

/* The expansion in one line: "L:alice R:bob@x C:cmd F:/f", "!" after a
 * loop target. Empty for "not an alias", "error: ..." on errors. */
static char shown[8192];

static const char *
show(const struct alias_db *db, const char *name)
{
	struct alias_expansion e;
	int rc = alias_expand(db, name, is_local, NULL, &e, err, sizeof(err));
	struct strbuf b = {0};
	if (rc < 0)
		strbuf_addf(&b, "error: %s", err);
	for (size_t i = 0; i < e.n; i++) {
		static const char kinds[] = "LRCF";
		strbuf_addf(&b, "%s%c:%s%s", i ? " " : "", kinds[e.v[i].kind],
			    e.v[i].value, e.v[i].loop ? "!" : "");
	}
	if (rc == 1 && e.n == 0)
		strbuf_adds(&b, "(empty)");
	smalt_strlcpy(shown, b.s ? b.s : "", sizeof(shown));
	free(b.s);
	alias_expansion_free(&e);
	return shown;
}

static const struct alias_target *
find(const struct alias_expansion *e, enum alias_kind kind, const char *value)
{
	for (size_t i = 0; i < e->n; i++)
		if (e->v[i].kind == kind && strcmp(e->v[i].value, value) == 0)
			return &e->v[i];
	return NULL;
}

static void
test_kinds(void)
{
	struct alias_db *db = parse(
	    "all: alice, bob@remote.example, \"|/usr/bin/prog a,b\",\n"
	    "     |/bin/cat -u, /var/mail/archive, \"/var/mail/with space\",\n"
	    "     \\root, postmaster, \"john doe\"@remote.example,\n"
	    "     \":include:/nonexistent/never/read\"\n");
	CHECK(db != NULL);
	if (db == NULL)
		return;
	/* The :include: is read only when expanded: drop it for this. */
	alias_free(db);
	db = parse("all: alice, bob@remote.example, \"|/usr/bin/prog a,b\",\n"
		   "     |/bin/cat -u, /var/mail/archive, "
		   "\"/var/mail/with space\",\n"
		   "     \\root, postmaster, \"john doe\"@Remote.EXAMPLE, "
		   "\"|/bin/echo \\\"q\\\"\"\n"
		   "root: nobody-here\n");
	CHECK(db != NULL);
	if (db == NULL)
		return;
	CHECK_STR(show(db, "all"), "L:alice R:bob@remote.example "
				   "C:/usr/bin/prog a,b C:/bin/cat -u "
				   "F:/var/mail/archive F:/var/mail/with space "
				   "L:root L:postmaster "
				   "R:\"john doe\"@remote.example "
				   "C:/bin/echo \"q\"");
	struct alias_expansion e;
	CHECK(alias_expand(db, "all", is_local, NULL, &e, err, sizeof(err)) ==
	      1);
	for (size_t i = 0; i < e.n; i++) {
		const struct alias_target *t = &e.v[i];
		int runs = t->kind == ALIAS_COMMAND || t->kind == ALIAS_FILE;
		CHECK(t->uid == (runs ? (uid_t)BUF_OWNER : (uid_t)-1));
		CHECK(t->gid == (runs ? (gid_t)BUF_GROUP : (gid_t)-1));
		CHECK(t->errors_to == NULL);
		CHECK_STR(t->alias, "all");
		CHECK(t->loop == 0);
	}
	alias_expansion_free(&e);
	CHECK(e.n == 0 && e.v == NULL);
	alias_expansion_free(&e);
	alias_expansion_free(NULL);

	/* Not an alias: 0 and nothing, postmaster included. */
	CHECK(alias_expand(db, "alice", is_local, NULL, &e, err, sizeof(err)) ==
	      0);
	CHECK(e.n == 0 && e.v == NULL);
	CHECK(alias_expand(db, "postmaster", is_local, NULL, &e, err,
			   sizeof(err)) == 0);
	CHECK(alias_expand(db, "", is_local, NULL, &e, err, sizeof(err)) == 0);
	CHECK(alias_expand(NULL, "all", is_local, NULL, &e, err, sizeof(err)) ==
	      0);
	CHECK(alias_exists(db, "ALL") && alias_exists(db, "root"));
	CHECK(!alias_exists(db, "alice") && !alias_exists(db, NULL));
	CHECK(alias_count(db) == 2);
	CHECK_STR(alias_name_at(db, 1), "root");
	CHECK(alias_name_at(db, 2) == NULL);
	alias_free(db);
	alias_free(NULL);
}

static void
test_syntax(void)
{
	struct alias_db *db = parse("# a comment\n"
				    "  # an indented comment before any entry\n"
				    "staff: alice,\n"
				    "       # a comment inside the list\n"
				    "\n"
				    "\tbob ,carol\n"
				    "  , dave\r\n"
				    "Mixed.Case: Eve\n"
				    "\"john doe\": john\n"
				    "quoted: \"john doe\"\n"
				    "dup: first\n"
				    "DUP: second\n"
				    "hash: a#b, \"|/bin/x # not a comment\"\n");
	CHECK(db != NULL);
	if (db == NULL)
		return;
	CHECK_STR(show(db, "staff"), "L:alice L:bob L:carol L:dave");
	CHECK_STR(show(db, "STAFF"), "L:alice L:bob L:carol L:dave");
	CHECK_STR(show(db, "mixed.case"), "L:eve");
	CHECK_STR(show(db, "MIXED.Case"), "L:eve");
	CHECK_STR(show(db, "John Doe"), "L:john");
	CHECK_STR(show(db, "quoted"), "L:john");
	CHECK_STR(show(db, "dup"), "L:first");
	CHECK_STR(show(db, "hash"), "L:a#b C:/bin/x # not a comment");
	alias_free(db);
}

static void
test_nesting(void)
{
	struct alias_db *db = parse("top: a@localhost, b@Example.NET, "
				    "c@remote.example, d\n"
				    "a: alice\n"
				    "b: bob, b2\n"
				    "b2: bob2@localhost\n"
				    "c: never\n"
				    "d: e\n"
				    "e: f\n"
				    "f: frank\n");
	CHECK(db != NULL);
	if (db == NULL)
		return;
	CHECK_STR(show(db, "top"),
		  "L:alice L:bob L:bob2 R:c@remote.example L:frank");
	/* Remote addresses are final, and without is_local nothing is
	 * local. */
	struct alias_expansion e;
	int calls = 0;
	CHECK(alias_expand(db, "top", NULL, NULL, &e, err, sizeof(err)) == 1);
	CHECK(e.n == 4);
	CHECK(find(&e, ALIAS_REMOTE, "a@localhost") != NULL);
	CHECK(find(&e, ALIAS_REMOTE, "b@example.net") != NULL);
	CHECK(find(&e, ALIAS_LOCAL, "frank") != NULL);
	alias_expansion_free(&e);
	CHECK(alias_expand(db, "b", is_local, &calls, &e, err, sizeof(err)) ==
	      1);
	CHECK(calls == 1);
	CHECK(find(&e, ALIAS_LOCAL, "bob2") != NULL);
	CHECK_STR(find(&e, ALIAS_LOCAL, "bob2")->alias, "b2");
	alias_expansion_free(&e);
	alias_free(db);

	/* A chain deeper than ALIAS_MAX_NESTING is an error. */
	struct strbuf b = {0};
	for (int i = 0; i < ALIAS_MAX_NESTING + 5; i++)
		strbuf_addf(&b, "n%d: n%d\n", i, i + 1);
	db = parse(b.s);
	free(b.s);
	CHECK(db != NULL);
	CHECK_STR(show(db, "n0"), "error: aliases nested more than 20 deep "
				  "(at \"n20\")");
	CHECK_STR(show(db, "n6"), "L:n25");
	alias_free(db);
}

static void
test_loops(void)
{
	struct alias_db *db = parse("bob: bob, bob@elsewhere.example\n"
				    "Self: SELF@localhost\n"
				    "a: b\n"
				    "b: a\n"
				    "x: y, x1\n"
				    "y: z\n"
				    "z: x, y, zed\n"
				    "list: p, q, p\n"
				    "p: pat\n"
				    "q: p, quinn\n"
				    "team: bob, list\n");
	CHECK(db != NULL);
	if (db == NULL)
		return;
	/* sendmail's rule: a name that lists itself is its own mailbox. */
	CHECK_STR(show(db, "bob"), "L:bob R:bob@elsewhere.example");
	CHECK_STR(show(db, "self"), "L:self");
	/* A real loop ends where it closes, marked as a loop. */
	CHECK_STR(show(db, "a"), "L:a!");
	CHECK_STR(show(db, "b"), "L:b!");
	CHECK_STR(show(db, "x"), "L:x! L:y! L:zed L:x1");
	/* A second reference to an alias already expanded adds nothing. */
	CHECK_STR(show(db, "list"), "L:pat L:quinn");
	CHECK_STR(show(db, "team"),
		  "L:bob R:bob@elsewhere.example L:pat L:quinn");
	alias_free(db);
}

static void
test_owner_lists(void)
{
	struct alias_db *db = parse("staff: alice, sub, |/bin/archive\n"
				    "owner-staff: alice\n"
				    "sub: bob, subsub\n"
				    "Owner-Sub: bob\n"
				    "subsub: carol\n"
				    "plain: sub, dave\n");
	CHECK(db != NULL);
	if (db == NULL)
		return;
	struct alias_expansion e;
	CHECK(alias_expand(db, "Staff", is_local, NULL, &e, err, sizeof(err)) ==
	      1);
	CHECK(e.n == 4);
	const struct alias_target *t = find(&e, ALIAS_LOCAL, "alice");
	CHECK(t != NULL && t->errors_to &&
	      !strcmp(t->errors_to, "owner-staff"));
	t = find(&e, ALIAS_COMMAND, "/bin/archive");
	CHECK(t != NULL && t->errors_to &&
	      !strcmp(t->errors_to, "owner-staff"));
	/* The innermost list with an owner wins. */
	t = find(&e, ALIAS_LOCAL, "bob");
	CHECK(t != NULL && t->errors_to && !strcmp(t->errors_to, "owner-sub"));
	t = find(&e, ALIAS_LOCAL, "carol");
	CHECK(t != NULL && t->errors_to && !strcmp(t->errors_to, "owner-sub"));
	CHECK(t != NULL && !strcmp(t->alias, "subsub"));
	alias_expansion_free(&e);

	CHECK(alias_expand(db, "plain", is_local, NULL, &e, err, sizeof(err)) ==
	      1);
	t = find(&e, ALIAS_LOCAL, "dave");
	CHECK(t != NULL && t->errors_to == NULL);
	t = find(&e, ALIAS_LOCAL, "carol");
	CHECK(t != NULL && t->errors_to && !strcmp(t->errors_to, "owner-sub"));
	alias_expansion_free(&e);

	/* The owner alias itself is an ordinary alias. */
	CHECK(alias_expand(db, "owner-staff", is_local, NULL, &e, err,
			   sizeof(err)) == 1);
	CHECK(e.n == 1 && e.v[0].errors_to == NULL);
	alias_expansion_free(&e);
	alias_free(db);
}

static void
test_dedup_and_limits(void)
{
	struct alias_db *db =
	    parse("d: alice, Alice, alice@localhost, \\alice, \"|cmd\", |cmd,"
		  " x, bob@Remote.example, bob@remote.EXAMPLE, /f, \"/f\"\n"
		  "x: alice, bob@remote.example\n");
	CHECK(db != NULL);
	if (db == NULL)
		return;
	CHECK_STR(show(db, "d"), "L:alice C:cmd R:bob@remote.example F:/f");
	alias_free(db);

	/* ALIAS_MAX_TARGETS distinct targets are fine, one more is not. */
	struct strbuf b = {0};
	strbuf_adds(&b, "big: u0");
	for (int i = 1; i < ALIAS_MAX_TARGETS; i++)
		strbuf_addf(&b, ", u%d", i);
	strbuf_adds(&b, "\nbigger: big, one-more\n");
	db = parse(b.s);
	free(b.s);
	CHECK(db != NULL);
	struct alias_expansion e;
	CHECK(alias_expand(db, "big", is_local, NULL, &e, err, sizeof(err)) ==
	      1);
	CHECK(e.n == ALIAS_MAX_TARGETS);
	alias_expansion_free(&e);
	CHECK(alias_expand(db, "bigger", is_local, NULL, &e, err,
			   sizeof(err)) == -1);
	CHECK(e.n == 0 && e.v == NULL);
	CHECK_STR(err, "alias expands to more than 1000 targets");
	alias_free(db);

	/* Work is bounded even when every item is a duplicate. */
	b = (struct strbuf){0};
	strbuf_adds(&b, "dups: u");
	for (int i = 0; i < ALIAS_MAX_ITEMS; i++)
		strbuf_adds(&b, ", u");
	strbuf_adds(&b, "\n");
	db = parse(b.s);
	free(b.s);
	CHECK(db != NULL);
	CHECK_STR(show(db, "dups"), "error: alias expansion too large (more "
				    "than 10000 targets visited)");
	alias_free(db);
}

static void
test_errors(void)
{
	static const struct {
		const char *text, *want;
	} cases[] = {
	    {"a: b\nno colon here\n",
	     "t.aliases:2: missing \":\" (expected \"key: value\")"},
	    {"a: b\nc: d,,e\n", "t.aliases:2: empty target"},
	    {"a: b,\n", "t.aliases:1: empty target"},
	    {", a: b\n", "t.aliases:1: white space in key (put the key in "
			 "double quotes)"},
	    {"a: b\n\nc:\n", "t.aliases:3: no targets"},
	    {"a: b\nc: d,\n  , e\n", "t.aliases:2: empty target"},
	    {"a: ./mbox\n",
	     "t.aliases:1: file target \"./mbox\" is not an absolute path"},
	    {"a: ~/mbox\n",
	     "t.aliases:1: file target \"~/mbox\" is not an absolute path"},
	    {"a: :include:lists/a\n",
	     "t.aliases:1: :include: needs an absolute path"},
	    {"a: :include:\n", "t.aliases:1: :include: needs an absolute path"},
	    {"a: /var/mail/\n",
	     "t.aliases:1: file name \"/var/mail/\" names a directory"},
	    {"a: |\n", "t.aliases:1: empty command after \"|\""},
	    {"a: \"|  \"\n", "t.aliases:1: empty command after \"|\""},
	    {"a: \"|/bin/x\x01\"\n",
	     "t.aliases:1: control character in command"},
	    {"a: bob@\n", "t.aliases:1: bad address \"bob@\": "},
	    {"a: b\n\nc: x@y@z\n", "t.aliases:3: bad address \"x@y@z\": "},
	    {"a: bad..dots\n", "t.aliases:1: bad address \"bad..dots\": "},
	    {"a: <bob@example.org>\n",
	     "t.aliases:1: bad address \"<bob@example.org>\": "},
	    {"a: \\bob@example.org\n",
	     "t.aliases:1: bad address \"bob@example.org\": "},
	    {"a: alice bob\n", "t.aliases:1: white space in target \"alice "
			       "bob\" (missing comma?)"},
	    {"a: b\nc: \"|/bin/x a,b\n", "t.aliases:2: unterminated quote"},
	    {"a: \"\"\n", "t.aliases:1: empty local part in \"\"\"\""},
	    {"  a: b\n", "t.aliases:1: continuation line (starts with white "
			 "space) before the first entry"},
	};
	for (size_t i = 0; i < SMALT_NELEM(cases); i++) {
		err[0] = '\0';
		struct alias_db *db = alias_parse_buffer(
		    "t.aliases", cases[i].text, strlen(cases[i].text), 1, 1,
		    err, sizeof(err));
		CHECK(db == NULL);
		alias_free(db);
		CHECK_PREFIX(err, cases[i].want);
	}
	static const char nul[] = "a: b\nc: d\0e\n";
	struct alias_db *db = alias_parse_buffer(
	    "t.aliases", nul, sizeof(nul) - 1, 1, 1, err, sizeof(err));
	CHECK(db == NULL);
	CHECK_STR(err, "t.aliases:2: NUL byte in line");
	/* An empty file is an empty database. */
	db = alias_parse_buffer("t.aliases", "", 0, 1, 1, err, sizeof(err));
	CHECK(db != NULL && alias_count(db) == 0);
	alias_free(db);
}

/* ---- files ------------------------------------------------------------ */

static char *
path_of(const char *name)
{
	return xasprintf("%s/%s", dir, name);
}

/* Writes dir/name with mode, owned (as root) by uid:gid. */
static char *
make_file(const char *name, const char *text, mode_t mode, uid_t uid, gid_t gid)
{
	char *p = path_of(name);
	unlink(p);
	if (test_write_file(p, text, strlen(text)) != 0 || chmod(p, mode) != 0)
		perror(p);
	if (as_root && chown(p, uid, gid) != 0)
		perror(p);
	return p;
}

static struct alias_db *
open_aliases(const char *text, mode_t mode, uid_t uid, gid_t gid)
{
	char *p = make_file("aliases", text, mode, uid, gid);
	struct alias_db *db = alias_open(p, err, sizeof(err));
	int saved = errno;
	free(p);
	errno = saved;
	return db;
}

/* The uid/gid a file owned by uid:gid gives its commands. */
static void
expect_run_as(uid_t uid, gid_t gid, uid_t *ru, gid_t *rg)
{
	if (!as_root) {
		uid = getuid();
		gid = getgid();
	}
	*ru = uid == 0 ? nobody_uid : uid;
	*rg = uid == 0 ? nobody_gid : gid == 0 ? nobody_gid : gid;
}

static void
check_run_as(const struct alias_db *db, const char *name, const char *cmd,
	     uid_t uid, gid_t gid)
{
	struct alias_expansion e;
	CHECK(alias_expand(db, name, is_local, NULL, &e, err, sizeof(err)) ==
	      1);
	const struct alias_target *t = find(&e, ALIAS_COMMAND, cmd);
	CHECK(t != NULL);
	if (t != NULL) {
		CHECK(t->uid == uid);
		CHECK(t->gid == gid);
		CHECK(t->uid != 0 && t->gid != 0);
	}
	alias_expansion_free(&e);
}

static void
test_open_and_owner(void)
{
	uid_t ru;
	gid_t rg;
	const char *text = "cmd: |/bin/cmd, /var/mail/file\n";
	struct alias_db *db = open_aliases(text, 0644, TEST_UID, TEST_GID);
	CHECK(db != NULL);
	expect_run_as(TEST_UID, TEST_GID, &ru, &rg);
	check_run_as(db, "cmd", "/bin/cmd", ru, rg);
	struct alias_expansion e;
	CHECK(alias_expand(db, "cmd", is_local, NULL, &e, err, sizeof(err)) ==
	      1);
	const struct alias_target *t = find(&e, ALIAS_FILE, "/var/mail/file");
	CHECK(t != NULL && t->uid == ru && t->gid == rg);
	alias_expansion_free(&e);
	alias_free(db);

	if (as_root) {
		/* Owned by root: nobody, never root. */
		db = open_aliases(text, 0644, 0, 0);
		CHECK(db != NULL);
		check_run_as(db, "cmd", "/bin/cmd", nobody_uid, nobody_gid);
		alias_free(db);
		/* A user's file in group 0 does not run as group 0. */
		db = open_aliases(text, 0644, TEST_UID, 0);
		CHECK(db != NULL);
		check_run_as(db, "cmd", "/bin/cmd", TEST_UID, nobody_gid);
		alias_free(db);
	}
	/* The same through alias_parse_buffer with root as the owner. */
	db =
	    alias_parse_buffer("t", text, strlen(text), 0, 0, err, sizeof(err));
	CHECK(db != NULL);
	check_run_as(db, "cmd", "/bin/cmd", nobody_uid, nobody_gid);
	alias_free(db);

	/* A missing file: ENOENT, so callers can treat it as empty. */
	char *p = path_of("missing");
	errno = 0;
	CHECK(alias_open(p, err, sizeof(err)) == NULL);
	CHECK(errno == ENOENT);
	char *want = xasprintf("%s: No such file or directory", p);
	CHECK_STR(err, want);
	free(want);
	free(p);

	/* A file anyone may write is refused. */
	db = open_aliases(text, 0666, TEST_UID, TEST_GID);
	CHECK(db == NULL && errno != ENOENT);
	CHECK(strstr(err, "writable by everyone") != NULL);
	/* Errors carry the path and line. */
	db = open_aliases("a: b\nc: ./x\n", 0644, TEST_UID, TEST_GID);
	CHECK(db == NULL && errno == EINVAL);
	p = path_of("aliases");
	want =
	    xasprintf("%s:2: file target \"./x\" is not an absolute path", p);
	CHECK_STR(err, want);
	free(want);
	free(p);
	/* A folder is not an aliases file. */
	CHECK(alias_open(dir, err, sizeof(err)) == NULL && errno != ENOENT);
	CHECK(strstr(err, "not a regular file") != NULL);
}

static void
test_include(void)
{
	uid_t ru, nu;
	gid_t rg, ng;
	expect_run_as(TEST_UID, TEST_GID, &ru, &rg);
	char *list = make_file("devs.list",
			       "# the developers\n"
			       "alice, bob\n"
			       "  # indented comment\n"
			       "\n"
			       "carol@remote.example,\n"
			       "\"|/bin/devs a,b\"\n"
			       "/var/mail/devs\n"
			       "lead\n",
			       0644, TEST_UID, TEST_GID);
	char *root_list =
	    make_file("root.list", "|/bin/rootlist\n", 0644, 0, 0);
	char *other =
	    make_file("other.list", "mallory\n", 0644, OTHER_UID, OTHER_UID);
	char *wide =
	    make_file("wide.list", "mallory\n", 0666, TEST_UID, TEST_GID);
	char *nested = make_file("nested.list", "", 0644, TEST_UID, TEST_GID);
	char *bad =
	    make_file("bad.list", "ok\nalice bob\n", 0644, TEST_UID, TEST_GID);
	char *empty =
	    make_file("empty.list", "# nobody yet\n", 0644, TEST_UID, TEST_GID);
	char *missing = path_of("missing.list");
	/* nested.list includes devs.list and itself. */
	char *text = xasprintf(":include:%s, :include:%s\nzed\n", list, nested);
	free(make_file("nested.list", text, 0644, TEST_UID, TEST_GID));
	free(text);
	char *lead_list =
	    make_file("lead.list", "the-lead\n", 0644, TEST_UID, TEST_GID);

	struct strbuf b = {0};
	strbuf_addf(&b,
		    "devs: :include:%s\n"
		    "Lead: :INCLUDE: %s\n"
		    "rootlist: :include:%s\n"
		    "other: :include:%s\n"
		    "wide: :include:%s\n"
		    "missing: someone, :include:%s\n"
		    "nested: :include:%s\n"
		    "bad: :include:%s\n"
		    "empty: :include:%s\n"
		    "folder: :include:%s\n"
		    "owner-devs: alice\n",
		    list, lead_list, root_list, other, wide, missing, nested,
		    bad, empty, dir);
	struct alias_db *db = open_aliases(b.s, 0644, TEST_UID, TEST_GID);
	free(b.s);
	CHECK(db != NULL);
	if (db == NULL)
		goto out;
	CHECK_STR(show(db, "devs"), "L:alice L:bob R:carol@remote.example "
				    "C:/bin/devs a,b F:/var/mail/devs "
				    "L:the-lead");
	struct alias_expansion e;
	CHECK(alias_expand(db, "devs", is_local, NULL, &e, err, sizeof(err)) ==
	      1);
	const struct alias_target *t = find(&e, ALIAS_COMMAND, "/bin/devs a,b");
	CHECK(t != NULL && t->uid == ru && t->gid == rg);
	CHECK(t != NULL && t->errors_to && !strcmp(t->errors_to, "owner-devs"));
	CHECK(t != NULL && !strcmp(t->alias, "devs"));
	t = find(&e, ALIAS_LOCAL, "the-lead");
	CHECK(t != NULL && t->errors_to && !strcmp(t->errors_to, "owner-devs"));
	CHECK(t != NULL && !strcmp(t->alias, "lead"));
	alias_expansion_free(&e);

	/* A root-owned list is allowed; its commands run as nobody. */
	expect_run_as(0, 0, &nu, &ng);
	if (as_root)
		check_run_as(db, "rootlist", "/bin/rootlist", nu, ng);

	/* Someone else's list is refused (as root the file is chowned;
	 * otherwise the database pretends to belong to someone else). */
	if (as_root) {
		text = xasprintf("error: :include:%s: owned by neither root "
				 "nor the aliases file's owner",
				 other);
		CHECK_STR(show(db, "other"), text);
		free(text);
	} else {
		char *t2 = xasprintf("other: :include:%s\n", other);
		struct alias_db *db2 =
		    alias_parse_buffer("t", t2, strlen(t2), getuid() + 1,
				       getgid(), err, sizeof(err));
		CHECK(db2 != NULL);
		text = xasprintf("error: :include:%s: owned by neither root "
				 "nor the aliases file's owner",
				 other);
		CHECK_STR(show(db2, "other"), text);
		free(text);
		free(t2);
		alias_free(db2);
	}
	text = xasprintf("error: :include:%s: writable by everyone", wide);
	CHECK_STR(show(db, "wide"), text);
	free(text);
	text =
	    xasprintf("error: :include:%s: No such file or directory", missing);
	CHECK_STR(show(db, "missing"), text);
	free(text);
	text = xasprintf("error: %s:2: white space in target \"alice bob\" "
			 "(missing comma?)",
			 bad);
	CHECK_STR(show(db, "bad"), text);
	free(text);
	text = xasprintf("error: :include:%s: not a regular file", dir);
	CHECK_STR(show(db, "folder"), text);
	free(text);
	/* Nested and self-including lists: each file is read once. */
	CHECK_STR(show(db, "nested"), "L:alice L:bob R:carol@remote.example "
				      "C:/bin/devs a,b F:/var/mail/devs "
				      "L:the-lead L:zed");
	CHECK_STR(show(db, "empty"), "(empty)");
	alias_free(db);

	/* A chain of lists deeper than ALIAS_MAX_INCLUDE_DEPTH. */
	char name[64];
	for (int i = 0; i <= ALIAS_MAX_INCLUDE_DEPTH + 1; i++) {
		snprintf(name, sizeof(name), "chain%d.list", i + 1);
		char *next = path_of(name);
		text = xasprintf("member%d, :include:%s\n", i, next);
		snprintf(name, sizeof(name), "chain%d.list", i);
		free(make_file(name, text, 0644, TEST_UID, TEST_GID));
		free(text);
		free(next);
	}
	snprintf(name, sizeof(name), "chain%d.list",
		 ALIAS_MAX_INCLUDE_DEPTH - 1);
	char *last = path_of(name);
	text = xasprintf("short: :include:%s\nlong: :include:%s/chain0.list\n",
			 last, dir);
	db = open_aliases(text, 0644, TEST_UID, TEST_GID);
	free(text);
	CHECK(db != NULL);
	/* The last file names one that does not exist: the error proves
	 * that the chain was followed to its end. */
	snprintf(name, sizeof(name), "chain%d.list", ALIAS_MAX_INCLUDE_DEPTH);
	char *p = path_of(name);
	text = xasprintf("error: :include:%s: :include: files nested more "
			 "than 10 deep",
			 p);
	CHECK_STR(show(db, "long"), text);
	free(text);
	free(p);
	free(last);
	/* chain9 -> chain10 -> chain11 -> chain12 (missing). */
	CHECK_PREFIX(show(db, "short"), "error: :include:");
	CHECK(strstr(shown, "chain12.list: No such file or directory") != NULL);
	alias_free(db);
out:
	free(list);
	free(root_list);
	free(other);
	free(wide);
	free(nested);
	free(bad);
	free(empty);
	free(missing);
	free(lead_list);
}

int
main(void)
{
	as_root = geteuid() == 0;
	struct passwd *pw = getpwnam("nobody");
	if (pw != NULL && pw->pw_uid != 0) {
		nobody_uid = pw->pw_uid;
		nobody_gid = pw->pw_gid != 0 ? pw->pw_gid : 65534;
	}
	dir = test_mkdtemp("aliases");
	test_kinds();
	test_syntax();
	test_nesting();
	test_loops();
	test_owner_lists();
	test_dedup_and_limits();
	test_errors();
	test_open_and_owner();
	test_include();
	test_rm_rf(dir);
	free(dir);
	return check_done();
}
