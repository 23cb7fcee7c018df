/* The table reader behind aliases, virtual_mailboxes, routes, auth_users
 * and relayhost_auth_file. Entries stay in file order (routes: first
 * match wins); a sorted index of them serves lookups by binary search, so
 * a big table costs no hash and no second copy of the keys. */
#include "conf/table.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/strbuf.h"
#include "common/util.h"

#define TABLE_FILE_MAX (64 * 1024 * 1024)

/* A key that starts with a double quote ("john doe": target, or
 * "john doe"@example.org /path) may hold white space and the separator
 * inside the quotes; backslash escapes the next character. The key keeps
 * the text without quotes and escapes, the form a local part has once
 * unquoted, which is what callers look up. Text after the closing quote
 * up to the separator is part of the key. */
static int
split_quoted(const char *s, const char *e, enum table_sep sep, char **key,
	     const char **value, const char **why)
{
	struct strbuf k = {0};
	const char *p = s + 1;
	for (; p < e && *p != '"'; p++) {
		if (*p == '\\' && p + 1 < e)
			p++;
		strbuf_add(&k, p, 1);
	}
	if (p == e) {
		*why = "unterminated quoted key";
		goto fail;
	}
	const char *tail = ++p;
	if (sep == TABLE_SEP_COLON) {
		while (p < e && *p != ':')
			p++;
		if (p == e) {
			*why = "missing \":\" (expected \"key: value\")";
			goto fail;
		}
		*value = p + 1;
	} else {
		while (p < e && !text_is_blank((unsigned char)*p))
			p++;
		if (p == e) {
			*why = "missing value (expected \"key value\")";
			goto fail;
		}
		*value = p;
	}
	const char *tail_end = p;
	text_trim(&tail, &tail_end);
	for (const char *q = tail; q < tail_end; q++) {
		if (text_is_blank((unsigned char)*q)) {
			*why = "white space in key (put the key in double "
			       "quotes)";
			goto fail;
		}
	}
	strbuf_add(&k, tail, (size_t)(tail_end - tail));
	*key = k.s ? k.s : xstrdup("");
	return 0;
fail:
	free(k.s);
	return -1;
}

/* Splits one entry line [s, e) (trimmed, not blank, not a comment) into
 * a new key and the start of its value. */
static int
split_entry(const char *s, const char *e, enum table_sep sep, char **key,
	    const char **value, const char **why)
{
	const char *p;
	*key = NULL;
	if (*s == '"') {
		if (split_quoted(s, e, sep, key, value, why) != 0)
			return -1;
	} else if (sep == TABLE_SEP_COLON) {
		p = memchr(s, ':', (size_t)(e - s));
		if (p == NULL) {
			*why = "missing \":\" (expected \"key: value\")";
			return -1;
		}
		const char *ks = s, *ke = p;
		text_trim(&ks, &ke);
		for (const char *q = ks; q < ke; q++) {
			if (text_is_blank((unsigned char)*q)) {
				*why = "white space in key (put the key in "
				       "double quotes)";
				return -1;
			}
		}
		*key = xstrndup(ks, (size_t)(ke - ks));
		*value = p + 1;
	} else {
		p = s;
		while (p < e && !text_is_blank((unsigned char)*p))
			p++;
		if (p == e) {
			*why = "missing value (expected \"key value\")";
			return -1;
		}
		*key = xstrndup(s, (size_t)(p - s));
		*value = p;
	}
	if ((*key)[0] == '\0') {
		*why = "empty key";
		free(*key);
		*key = NULL;
		return -1;
	}
	return 0;
}

static void
add_entry(struct table *t, size_t *cap, char *key, unsigned line)
{
	if (t->n == *cap) {
		*cap = *cap ? *cap * 2 : 16;
		t->v = xrealloc(t->v, *cap * sizeof(*t->v));
	}
	if (t->flags & TABLE_FOLD_CASE)
		ascii_lower(key);
	t->v[t->n].key = key;
	t->v[t->n].value = NULL;
	t->v[t->n].line = line;
	t->n++;
}

static void
finish_value(struct table *t, struct strbuf *b)
{
	if (t->n > 0 && t->v[t->n - 1].value == NULL)
		t->v[t->n - 1].value = b->s ? b->s : xstrdup("");
	else
		free(b->s);
	b->s = NULL;
	b->len = b->cap = 0;
}

static int
compare_index(const void *a, const void *b, void *arg)
{
	const struct table *t = arg;
	size_t i = *(const size_t *)a, j = *(const size_t *)b;
	int c = strcmp(t->v[i].key, t->v[j].key);
	if (c != 0)
		return c;
	/* Equal keys keep file order: the lookup finds the first. */
	return i < j ? -1 : i > j;
}

static void
build_index(struct table *t)
{
	t->sorted = xmalloc((t->n ? t->n : 1) * sizeof(*t->sorted));
	for (size_t i = 0; i < t->n; i++)
		t->sorted[i] = i;
	if (t->n > 1)
		qsort_r(t->sorted, t->n, sizeof(*t->sorted), compare_index, t);
}

/* A line that starts with white space continues the entry before it. */
static int
continue_entry(struct table *t, struct strbuf *value, const char *ts,
	       const char *te, const char **why)
{
	if (t->flags & TABLE_NO_CONT) {
		*why = "line starts with white space (no continuation lines "
		       "in this file)";
		return -1;
	}
	if (t->n == 0) {
		*why = "continuation line (starts with white space) before "
		       "the first entry";
		return -1;
	}
	if (value->len > 0)
		strbuf_add(value, " ", 1);
	strbuf_add(value, ts, (size_t)(te - ts));
	return 0;
}

static int
start_entry(struct table *t, size_t *cap, struct strbuf *value, const char *ts,
	    const char *te, enum table_sep sep, unsigned line, const char **why)
{
	char *key;
	const char *vs;
	if (split_entry(ts, te, sep, &key, &vs, why) != 0)
		return -1;
	finish_value(t, value);
	add_entry(t, cap, key, line);
	const char *ve = te;
	text_trim(&vs, &ve);
	strbuf_add(value, vs, (size_t)(ve - vs));
	return 0;
}

static int
parse_lines(struct table *t, const char *text, size_t len, enum table_sep sep,
	    char *err, size_t errlen)
{
	struct strbuf value = {0};
	size_t cap = 0;
	unsigned line = 0;
	const char *s = text, *end = text + len;
	const char *why = NULL;
	while (why == NULL && s < end) {
		const char *nl = memchr(s, '\n', (size_t)(end - s));
		const char *e = nl ? nl : end;
		const char *ts = s, *te = e;
		int indented = text_is_blank((unsigned char)*s);
		line++;
		s = nl ? nl + 1 : end;
		text_trim(&ts, &te);
		if (memchr(ts, '\0', (size_t)(e - ts)) != NULL) {
			why = "NUL byte in line";
			break;
		}
		/* Blank and comment lines do not end an entry. */
		if (ts == te || *ts == '#')
			continue;
		if (indented)
			continue_entry(t, &value, ts, te, &why);
		else
			start_entry(t, &cap, &value, ts, te, sep, line, &why);
	}
	finish_value(t, &value);
	if (why != NULL) {
		set_err(err, errlen, "%s:%u: %s", t->name, line, why);
		return -1;
	}
	return 0;
}

struct table *
table_parse_buffer(const char *name, const char *text, size_t len,
		   enum table_sep sep, int flags, char *err, size_t errlen)
{
	set_err(err, errlen, "%s", "");
	if (name == NULL)
		name = "(table)";
	if (text == NULL) {
		text = "";
		len = 0;
	}
	if (len > TABLE_FILE_MAX) {
		set_err(err, errlen, "%s: file too large (more than %d bytes)",
			name, TABLE_FILE_MAX);
		return NULL;
	}
	struct table *t = xcalloc(1, sizeof(*t));
	t->name = xstrdup(name);
	t->flags = flags;
	if (parse_lines(t, text, len, sep, err, errlen) != 0) {
		table_free(t);
		return NULL;
	}
	build_index(t);
	return t;
}

struct table *
table_open(const char *path, enum table_sep sep, int flags, char *err,
	   size_t errlen)
{
	char *buf = NULL;
	size_t len = 0;
	int rc = read_whole_file(path, TABLE_FILE_MAX, &buf, &len);
	if (rc == EFBIG) {
		set_err(err, errlen, "%s: file too large (more than %d bytes)",
			path, TABLE_FILE_MAX);
	} else if (rc != 0) {
		set_err(err, errlen, "%s: %s", path, strerror(rc));
	}
	if (rc != 0) {
		/* Callers tell a missing file (ENOENT) from a bad one. */
		errno = rc;
		return NULL;
	}
	struct table *t =
	    table_parse_buffer(path, buf, len, sep, flags, err, errlen);
	free(buf);
	if (t == NULL)
		errno = EINVAL;
	return t;
}

void
table_free(struct table *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->n; i++) {
		free(t->v[i].key);
		free(t->v[i].value);
	}
	free(t->v);
	free(t->sorted);
	free(t->name);
	free(t);
}

const struct table_entry *
table_lookup(const struct table *t, const char *key)
{
	if (t == NULL || key == NULL || t->sorted == NULL)
		return NULL;
	/* Folded keys are all lower case, so the strcmp order they were
	 * sorted in is also the order of a case-blind compare. */
	int (*cmp)(const char *, const char *) =
	    (t->flags & TABLE_FOLD_CASE) ? ascii_strcasecmp : strcmp;
	size_t lo = 0, hi = t->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (cmp(t->v[t->sorted[mid]].key, key) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < t->n && cmp(t->v[t->sorted[lo]].key, key) == 0)
		return &t->v[t->sorted[lo]];
	return NULL;
}
