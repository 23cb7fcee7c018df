/* aliases(5): the table reader gives the entries; this file splits each
 * value into targets once, at open time, so that syntax errors surface in
 * newaliases and expansion only walks parsed items. Expansion keeps two
 * small search trees (tsearch) per call: the names and :include: files
 * met so far, and the targets already added. */
#include "conf/aliases.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <pwd.h>
#include <search.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/addr.h"
#include "common/strbuf.h"
#include "common/util.h"
#include "conf/table.h"

#define ALIAS_FILE_MAX (64 * 1024 * 1024) /* as the table reader's */
#define NOBODY_ID      65534		  /* when the system has no "nobody" */

enum item_kind {
	ITEM_COMMAND,
	ITEM_FILE,
	ITEM_INCLUDE,
	ITEM_NAME,   /* a local name: looked up again */
	ITEM_USER,   /* \name: a local user, never looked up */
	ITEM_ADDRESS /* local@domain: local or remote, decided at expansion */
};

struct item {
	enum item_kind kind;
	char *value;  /* command, path, lower-case name, or local@domain */
	char *name;   /* ITEM_ADDRESS: lower-case local part, unquoted */
	char *domain; /* ITEM_ADDRESS: lower case */
};

struct item_list {
	size_t n, cap;
	struct item *v;
};

struct alias_db {
	struct table *t;
	struct item_list *lists; /* lists[i] holds t->v[i]'s targets */
	uid_t owner;		 /* may also own :include: files */
	uid_t uid;		 /* run-as of this file's commands and files */
	gid_t gid;
};

/* ---- parsing one target ---------------------------------------------- */

static void
item_free(struct item *it)
{
	free(it->value);
	free(it->name);
	free(it->domain);
	memset(it, 0, sizeof(*it));
}

static void
list_free(struct item_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		item_free(&l->v[i]);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

static int
has_control(const char *s)
{
	for (; *s; s++)
		if (((unsigned char)*s < 0x20 && *s != '\t') || *s == 0x7f)
			return 1;
	return 0;
}

static int
starts_include(const char *s)
{
	return ascii_strncasecmp(s, ":include:", 9) == 0;
}

/* Commands, files and :include: paths: the text after the quotes, if
 * the whole target was quoted. */
static int
parse_special(const char *s, struct item *it, char *why, size_t whylen)
{
	const char *what = "command";
	if (*s == '|') {
		it->kind = ITEM_COMMAND;
		s++;
		while (text_is_blank((unsigned char)*s))
			s++;
		if (*s == '\0') {
			set_err(why, whylen, "empty command after \"|\"");
			return -1;
		}
	} else {
		it->kind = *s == '/' ? ITEM_FILE : ITEM_INCLUDE;
		what = *s == '/' ? "file name" : ":include: path";
		if (it->kind == ITEM_INCLUDE) {
			s += 9;
			while (text_is_blank((unsigned char)*s))
				s++;
			if (*s != '/') {
				set_err(why, whylen,
					":include: needs an absolute path");
				return -1;
			}
		}
		if (s[strlen(s) - 1] == '/') {
			set_err(why, whylen, "%s \"%s\" names a directory",
				what, s);
			return -1;
		}
	}
	if (has_control(s)) {
		set_err(why, whylen, "control character in %s", what);
		return -1;
	}
	it->value = xstrdup(s);
	return 0;
}

/* Is there white space or an '@' outside double quotes? */
static int
has_unquoted(const char *s, int (*pred)(int))
{
	int q = 0;
	for (; *s; s++) {
		if (q && *s == '\\' && s[1] != '\0')
			s++;
		else if (*s == '"')
			q = !q;
		else if (!q && pred((unsigned char)*s))
			return 1;
	}
	return 0;
}

static int
is_at(int c)
{
	return c == '@';
}

static char *
lower_local(const struct mailaddr *a)
{
	char buf[ADDR_LOCAL_MAX + 1];
	addr_local_unquoted(a, buf, sizeof(buf));
	ascii_lower(buf);
	return xstrdup(buf);
}

/* A bare local part is parsed as local@localhost, which checks it with
 * the same rules as a full address. */
static int
parse_local_name(const char *s, struct mailaddr *a, const char **reason)
{
	if (addr_parse_mailbox(s, ADDR_ALLOW_POSTMASTER, a, reason) == 0 &&
	    a->domain[0] == '\0')
		return 0;
	char *tmp = xasprintf("%s@localhost", s);
	int rc = addr_parse_mailbox(tmp, 0, a, reason);
	free(tmp);
	return rc;
}

static int
parse_address(const char *s, struct item *it, char *why, size_t whylen)
{
	struct mailaddr a;
	const char *reason = NULL;
	int user = *s == '\\';
	if (user)
		s++;
	if (has_unquoted(s, text_is_blank)) {
		set_err(why, whylen,
			"white space in target \"%s\" (missing comma?)", s);
		return -1;
	}
	if ((s[0] == '.' || s[0] == '~') && s[1] == '/') {
		set_err(why, whylen,
			"file target \"%s\" is not an absolute path", s);
		return -1;
	}
	int rc;
	if (user || !has_unquoted(s, is_at))
		rc = parse_local_name(s, &a, &reason);
	else
		rc = addr_parse_mailbox(s, 0, &a, &reason);
	if (rc != 0) {
		set_err(why, whylen, "bad address \"%s\": %s", s, reason);
		return -1;
	}
	char *name = lower_local(&a);
	if (*name == '\0') {
		free(name);
		set_err(why, whylen, "empty local part in \"%s\"", s);
		return -1;
	}
	if (user || !has_unquoted(s, is_at)) {
		it->kind = user ? ITEM_USER : ITEM_NAME;
		it->value = name;
		return 0;
	}
	it->kind = ITEM_ADDRESS;
	it->name = name;
	it->domain = xstrdup(a.domain);
	ascii_lower(it->domain);
	it->value = xasprintf("%s@%s", a.local, it->domain);
	return 0;
}

/* The closing quote of a string that starts at s[0] == '"', or NULL. */
static const char *
closing_quote(const char *s)
{
	for (s++; *s; s++) {
		if (*s == '\\' && s[1] != '\0')
			s++;
		else if (*s == '"')
			return s;
	}
	return NULL;
}

static char *
unquote(const char *s, const char *e)
{
	struct strbuf b = {0};
	for (; s < e; s++) {
		if (*s == '\\' && s + 1 < e)
			s++;
		strbuf_add(&b, s, 1);
	}
	return b.s ? b.s : xstrdup("");
}

static int
is_special(const char *s)
{
	return *s == '|' || *s == '/' || starts_include(s);
}

/* One target, [s, e) trimmed and not empty. A target wholly in double
 * quotes is unquoted when it is a command, file or :include: (that is
 * how a command holds a comma); otherwise the quotes belong to an
 * address's local part ("john doe"@example.org). */
static int
parse_item(const char *s, const char *e, struct item *it, char *why,
	   size_t whylen)
{
	memset(it, 0, sizeof(*it));
	size_t n = (size_t)(e - s);
	char *text = xstrndup(s, n), *inner = NULL;
	if (text[0] == '"' && closing_quote(text) == text + n - 1)
		inner = unquote(text + 1, text + n - 1);
	int rc;
	if (inner != NULL && is_special(inner))
		rc = parse_special(inner, it, why, whylen);
	else if (is_special(text))
		rc = parse_special(text, it, why, whylen);
	else
		rc = parse_address(text, it, why, whylen);
	free(inner);
	free(text);
	if (rc != 0)
		item_free(it);
	return rc;
}

/* The next target in [*p, e): up to a comma outside double quotes.
 * Returns 1 when a comma ended it (another target follows), 0 at the
 * end, -1 on an unterminated quote. */
static int
next_item(const char **p, const char *e, const char **is, const char **ie)
{
	const char *c = *p;
	int q = 0;
	for (; c < e; c++) {
		if (q && *c == '\\' && c + 1 < e)
			c++;
		else if (*c == '"')
			q = !q;
		else if (*c == ',' && !q)
			break;
	}
	if (q)
		return -1;
	*is = *p;
	*ie = c;
	text_trim(is, ie);
	*p = c < e ? c + 1 : e;
	return c < e;
}

static void
list_add(struct item_list *l, const struct item *it)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 4;
		l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
	}
	l->v[l->n++] = *it;
}

/* Splits a comma-separated list into l. An empty target is an error in
 * the aliases file; :include: files skip them (allow_empty), since one
 * name per line with trailing commas is common there. */
static int
parse_list(const char *s, size_t len, int allow_empty, struct item_list *l,
	   char *why, size_t whylen)
{
	const char *p = s, *e = s + len;
	int more;
	do {
		const char *is, *ie;
		more = next_item(&p, e, &is, &ie);
		if (more < 0) {
			set_err(why, whylen, "unterminated quote");
			return -1;
		}
		if (is == ie) {
			if (allow_empty)
				continue;
			set_err(why, whylen, "empty target");
			return -1;
		}
		struct item it;
		if (parse_item(is, ie, &it, why, whylen) != 0)
			return -1;
		list_add(l, &it);
	} while (more);
	return 0;
}

/* ---- files ------------------------------------------------------------ */

/* Reads at most the st_size that fstat saw: a file that grows while it
 * is read cannot keep this loop going, and a /proc file (size 0) reads
 * as empty instead of blocking. */
static int
read_fd(int fd, const struct stat *st, size_t max, char **bufp, size_t *lenp)
{
	if ((unsigned long long)st->st_size > max)
		return EFBIG;
	size_t want = (size_t)st->st_size, len = 0;
	char *buf = xmalloc(want ? want : 1);
	while (len < want) {
		ssize_t n = read(fd, buf + len, want - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int rc = errno;
			free(buf);
			return rc;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	*bufp = buf;
	*lenp = len;
	return 0;
}

/* Insists on a regular file, and checks before opening: opening a FIFO
 * would block and opening some devices has side effects. The fstat
 * after the open catches a file swapped in between. 0 with fd and st,
 * an errno value, or -1 when it is not a regular file. */
static int
open_regular(const char *path, int *fdp, struct stat *st)
{
	struct stat before;
	if (stat(path, &before) != 0)
		return errno;
	if (!S_ISREG(before.st_mode))
		return -1;
	int fd = open(path, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return errno;
	if (fstat(fd, st) != 0) {
		int rc = errno;
		close(fd);
		return rc;
	}
	if (!S_ISREG(st->st_mode) || st->st_dev != before.st_dev ||
	    st->st_ino != before.st_ino) {
		close(fd);
		return -1;
	}
	*fdp = fd;
	return 0;
}

static uid_t nobody_uid = NOBODY_ID;
static gid_t nobody_gid = NOBODY_ID;
static pthread_once_t nobody_once = PTHREAD_ONCE_INIT;

/* Once per process: the passwd lookup costs more than parsing a small
 * file, and nobody's ids do not change under a running daemon. */
static void
lookup_nobody(void)
{
	struct passwd pw, *res = NULL;
	char buf[1024];
	if (getpwnam_r("nobody", &pw, buf, sizeof(buf), &res) == 0 &&
	    res != NULL && res->pw_uid != 0) {
		nobody_uid = res->pw_uid;
		nobody_gid = res->pw_gid != 0 ? res->pw_gid : NOBODY_ID;
	}
}

/* SPEC §9: never as root. */
static void
run_as(uid_t owner, gid_t group, uid_t *uid, gid_t *gid)
{
	if (owner == 0 || group == 0)
		pthread_once(&nobody_once, lookup_nobody);
	*uid = owner == 0 ? nobody_uid : owner;
	*gid = owner == 0 || group == 0 ? nobody_gid : group;
}

/* ---- the database ----------------------------------------------------- */

static int
parse_entries(struct alias_db *db, char *err, size_t errlen)
{
	char why[512];
	const struct table *t = db->t;
	db->lists = xcalloc(t->n ? t->n : 1, sizeof(*db->lists));
	for (size_t i = 0; i < t->n; i++) {
		const char *v = t->v[i].value;
		if (*v == '\0') {
			set_err(err, errlen, "%s:%u: no targets", t->name,
				t->v[i].line);
			return -1;
		}
		if (parse_list(v, strlen(v), 0, &db->lists[i], why,
			       sizeof(why)) != 0) {
			set_err(err, errlen, "%s:%u: %s", t->name, t->v[i].line,
				why);
			return -1;
		}
	}
	return 0;
}

struct alias_db *
alias_parse_buffer(const char *name, const char *text, size_t len, uid_t owner,
		   gid_t group, char *err, size_t errlen)
{
	struct table *t = table_parse_buffer(name, text, len, TABLE_SEP_COLON,
					     TABLE_FOLD_CASE, err, errlen);
	if (t == NULL)
		return NULL;
	struct alias_db *db = xcalloc(1, sizeof(*db));
	db->t = t;
	db->owner = owner;
	run_as(owner, group, &db->uid, &db->gid);
	if (parse_entries(db, err, errlen) != 0) {
		alias_free(db);
		return NULL;
	}
	return db;
}

struct alias_db *
alias_open(const char *path, char *err, size_t errlen)
{
	int fd;
	struct stat st;
	/* "aliases = /dev/null" is the usual way to say "no aliases". */
	if (strcmp(path, "/dev/null") == 0)
		return alias_parse_buffer(path, "", 0, 0, 0, err, errlen);
	int rc = open_regular(path, &fd, &st);
	if (rc != 0) {
		set_err(err, errlen, "%s: %s", path,
			rc < 0 ? "not a regular file" : strerror(rc));
		errno = rc < 0 ? EINVAL : rc;
		return NULL;
	}
	if (st.st_mode & S_IWOTH) {
		close(fd);
		set_err(err, errlen,
			"%s: writable by everyone (anyone could run commands "
			"as its owner); refusing it",
			path);
		errno = EPERM;
		return NULL;
	}
	char *buf = NULL;
	size_t len = 0;
	rc = read_fd(fd, &st, ALIAS_FILE_MAX, &buf, &len);
	close(fd);
	if (rc != 0) {
		if (rc == EFBIG)
			set_err(err, errlen,
				"%s: file too large (more than %d bytes)", path,
				ALIAS_FILE_MAX);
		else
			set_err(err, errlen, "%s: %s", path, strerror(rc));
		errno = rc;
		return NULL;
	}
	struct alias_db *db = alias_parse_buffer(path, buf, len, st.st_uid,
						 st.st_gid, err, errlen);
	free(buf);
	if (db == NULL)
		errno = EINVAL;
	return db;
}

void
alias_free(struct alias_db *db)
{
	if (db == NULL)
		return;
	for (size_t i = 0; db->lists != NULL && i < db->t->n; i++)
		list_free(&db->lists[i]);
	free(db->lists);
	table_free(db->t);
	free(db);
}

int
alias_exists(const struct alias_db *db, const char *name)
{
	return db != NULL && name != NULL && table_lookup(db->t, name) != NULL;
}

size_t
alias_count(const struct alias_db *db)
{
	return db ? db->t->n : 0;
}

const char *
alias_name_at(const struct alias_db *db, size_t i)
{
	return db && i < db->t->n ? db->t->v[i].key : NULL;
}

/* ---- expansion -------------------------------------------------------- */

enum seen_state { SEEN_ACTIVE, SEEN_DONE };

/* A name or ":include:/path" met in this expansion. */
struct seen {
	char *key;
	enum seen_state state;
	char *owner; /* "owner-NAME" when that alias exists */
};

/* Where the items being expanded came from. */
struct frame {
	const char *self;      /* the alias they belong to */
	const char *errors_to; /* innermost owner- list, or NULL */
	uid_t uid;	       /* run-as for commands and files */
	gid_t gid;
};

struct expander {
	const struct alias_db *db;
	int (*is_local)(const char *, void *);
	void *arg;
	struct alias_expansion *out;
	void *seen;  /* tree of struct seen */
	void *added; /* tree of dedup keys (char *) */
	size_t items;
	unsigned nesting, includes;
	char *err;
	size_t errlen;
};

static int
seen_cmp(const void *a, const void *b)
{
	return strcmp(((const struct seen *)a)->key,
		      ((const struct seen *)b)->key);
}

static void
seen_free(void *p)
{
	struct seen *s = p;
	free(s->key);
	free(s->owner);
	free(s);
}

static struct seen *
seen_find(struct expander *x, const char *key)
{
	struct seen k = {.key = (char *)key};
	void *r = tfind(&k, &x->seen, seen_cmp);
	return r ? *(struct seen **)r : NULL;
}

static struct seen *
seen_add(struct expander *x, char *key)
{
	struct seen *s = xcalloc(1, sizeof(*s));
	s->key = key;
	s->state = SEEN_ACTIVE;
	if (tsearch(s, &x->seen, seen_cmp) == NULL) {
		fprintf(stderr, "smalt: out of memory\n");
		exit(75);
	}
	return s;
}

static int
str_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

static int
add_target(struct expander *x, enum alias_kind kind, const char *value,
	   const struct frame *f, int loop)
{
	int runs = kind == ALIAS_COMMAND || kind == ALIAS_FILE;
	uid_t uid = runs ? f->uid : (uid_t)-1;
	gid_t gid = runs ? f->gid : (gid_t)-1;
	/* The same command as two different users is two deliveries. */
	char *key =
	    xasprintf("%d %ld %s", (int)kind, runs ? (long)uid : -1L, value);
	if (tfind(key, &x->added, str_cmp) != NULL) {
		free(key);
		return 0;
	}
	struct alias_expansion *o = x->out;
	if (o->n >= ALIAS_MAX_TARGETS) {
		free(key);
		set_err(x->err, x->errlen,
			"alias expands to more than %d targets",
			ALIAS_MAX_TARGETS);
		return -1;
	}
	if (tsearch(key, &x->added, str_cmp) == NULL) {
		fprintf(stderr, "smalt: out of memory\n");
		exit(75);
	}
	if (o->n == o->cap) {
		o->cap = o->cap ? o->cap * 2 : 8;
		o->v = xrealloc(o->v, o->cap * sizeof(*o->v));
	}
	struct alias_target *t = &o->v[o->n++];
	t->kind = kind;
	t->value = xstrdup(value);
	t->uid = uid;
	t->gid = gid;
	t->errors_to = f->errors_to ? xstrdup(f->errors_to) : NULL;
	t->alias = xstrdup(f->self);
	t->loop = loop;
	return 0;
}

static int expand_list(struct expander *x, const struct item_list *l,
		       const struct frame *f);

static int
expand_alias(struct expander *x, const char *name, size_t idx,
	     const struct frame *parent)
{
	const struct alias_db *db = x->db;
	if (x->nesting >= ALIAS_MAX_NESTING) {
		set_err(x->err, x->errlen,
			"aliases nested more than %d deep (at \"%s\")",
			ALIAS_MAX_NESTING, name);
		return -1;
	}
	struct seen *s = seen_add(x, xstrdup(name));
	char *owner = xasprintf("owner-%s", name);
	if (table_lookup(db->t, owner) != NULL)
		s->owner = owner;
	else
		free(owner);
	struct frame f = {
	    .self = s->key,
	    .errors_to = s->owner ? s->owner : parent->errors_to,
	    .uid = db->uid,
	    .gid = db->gid,
	};
	x->nesting++;
	int rc = expand_list(x, &db->lists[idx], &f);
	x->nesting--;
	s->state = SEEN_DONE;
	return rc;
}

static int
expand_name(struct expander *x, const char *name, const struct frame *f)
{
	const struct table_entry *e = table_lookup(x->db->t, name);
	if (e == NULL)
		return add_target(x, ALIAS_LOCAL, name, f, 0);
	const struct seen *s = seen_find(x, name);
	if (s == NULL)
		return expand_alias(x, name, (size_t)(e - x->db->t->v), f);
	if (s->state == SEEN_DONE)
		return 0;
	/* Still being expanded: we are inside it. */
	return add_target(x, ALIAS_LOCAL, name, f, strcmp(name, f->self) != 0);
}

/* Reads an :include: file, refusing one that someone other than root or
 * the aliases file's owner could have written. */
static int
read_include(struct expander *x, const char *path, char **buf, size_t *len,
	     struct stat *st)
{
	int fd;
	int rc = open_regular(path, &fd, st);
	if (rc != 0) {
		set_err(x->err, x->errlen, ":include:%s: %s", path,
			rc < 0 ? "not a regular file" : strerror(rc));
		return -1;
	}
	const char *why = NULL;
	if (st->st_uid != 0 && st->st_uid != x->db->owner)
		why = "owned by neither root nor the aliases file's owner";
	else if (st->st_mode & S_IWOTH)
		why = "writable by everyone";
	else if ((rc = read_fd(fd, st, ALIAS_INCLUDE_MAX_SIZE, buf, len)) != 0)
		why = rc == EFBIG ? "file too large" : strerror(rc);
	close(fd);
	if (why != NULL) {
		set_err(x->err, x->errlen, ":include:%s: %s", path, why);
		return -1;
	}
	return 0;
}

/* The targets of an :include: file: one per line or comma-separated,
 * "#" comment lines. */
static int
parse_include(struct expander *x, const char *path, const char *text,
	      size_t len, struct item_list *l)
{
	const char *s = text, *end = text + len;
	char why[512];
	unsigned line = 0;
	while (s < end) {
		const char *nl = memchr(s, '\n', (size_t)(end - s));
		const char *e = nl ? nl : end, *ts = s, *te = e;
		line++;
		s = nl ? nl + 1 : end;
		if (memchr(ts, '\0', (size_t)(e - ts)) != NULL) {
			set_err(x->err, x->errlen, "%s:%u: NUL byte in line",
				path, line);
			return -1;
		}
		text_trim(&ts, &te);
		if (ts == te || *ts == '#')
			continue;
		if (parse_list(ts, (size_t)(te - ts), 1, l, why, sizeof(why)) !=
		    0) {
			set_err(x->err, x->errlen, "%s:%u: %s", path, line,
				why);
			return -1;
		}
	}
	return 0;
}

static int
expand_include(struct expander *x, const char *path, const struct frame *f)
{
	char *key = xasprintf(":include:%s", path);
	if (seen_find(x, key) != NULL) {
		free(key);
		return 0;
	}
	if (x->includes >= ALIAS_MAX_INCLUDE_DEPTH) {
		free(key);
		set_err(x->err, x->errlen,
			":include:%s: :include: files nested more than %d deep",
			path, ALIAS_MAX_INCLUDE_DEPTH);
		return -1;
	}
	struct seen *s = seen_add(x, key);
	char *buf = NULL;
	size_t len = 0;
	struct stat st;
	struct item_list l = {0};
	int rc = read_include(x, path, &buf, &len, &st);
	if (rc == 0)
		rc = parse_include(x, path, buf, len, &l);
	free(buf);
	if (rc == 0) {
		struct frame g = *f;
		run_as(st.st_uid, st.st_gid, &g.uid, &g.gid);
		x->includes++;
		rc = expand_list(x, &l, &g);
		x->includes--;
	}
	list_free(&l);
	s->state = SEEN_DONE;
	return rc;
}

static int
expand_item(struct expander *x, const struct item *it, const struct frame *f)
{
	switch (it->kind) {
	case ITEM_COMMAND:
		return add_target(x, ALIAS_COMMAND, it->value, f, 0);
	case ITEM_FILE:
		return add_target(x, ALIAS_FILE, it->value, f, 0);
	case ITEM_INCLUDE:
		return expand_include(x, it->value, f);
	case ITEM_USER:
		return add_target(x, ALIAS_LOCAL, it->value, f, 0);
	case ITEM_NAME:
		return expand_name(x, it->value, f);
	case ITEM_ADDRESS:
		if (x->is_local != NULL && x->is_local(it->domain, x->arg))
			return expand_name(x, it->name, f);
		return add_target(x, ALIAS_REMOTE, it->value, f, 0);
	}
	return 0;
}

static int
expand_list(struct expander *x, const struct item_list *l,
	    const struct frame *f)
{
	for (size_t i = 0; i < l->n; i++) {
		/* Deduplication keeps the output small; this bounds the
		 * work of lists that name the same things over and over. */
		if (++x->items > ALIAS_MAX_ITEMS) {
			set_err(x->err, x->errlen,
				"alias expansion too large (more than %d "
				"targets visited)",
				ALIAS_MAX_ITEMS);
			return -1;
		}
		if (expand_item(x, &l->v[i], f) != 0)
			return -1;
	}
	return 0;
}

int
alias_expand(const struct alias_db *db, const char *local_part,
	     int (*is_local)(const char *domain, void *arg), void *arg,
	     struct alias_expansion *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	set_err(err, errlen, "%s", "");
	if (db == NULL || local_part == NULL)
		return 0;
	const struct table_entry *e = table_lookup(db->t, local_part);
	if (e == NULL)
		return 0;
	struct expander x = {
	    .db = db,
	    .is_local = is_local,
	    .arg = arg,
	    .out = out,
	    .err = err,
	    .errlen = errlen,
	};
	struct frame top = {.self = e->key, .uid = db->uid, .gid = db->gid};
	int rc = expand_alias(&x, e->key, (size_t)(e - db->t->v), &top);
	tdestroy(x.seen, seen_free);
	tdestroy(x.added, free);
	if (rc != 0) {
		alias_expansion_free(out);
		return -1;
	}
	return 1;
}

void
alias_expansion_free(struct alias_expansion *e)
{
	if (e == NULL)
		return;
	for (size_t i = 0; i < e->n; i++) {
		free(e->v[i].value);
		free(e->v[i].errors_to);
		free(e->v[i].alias);
	}
	free(e->v);
	memset(e, 0, sizeof(*e));
}
