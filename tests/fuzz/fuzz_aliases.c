/* aliases(5): any input parses or fails with a message; in every parsed
 * database each name expands (with localhost as the local domain) to at
 * most ALIAS_MAX_TARGETS well-formed targets, or fails with a message.
 * :include: paths in the input name real files: the reader opens only
 * regular files and reads at most their size, so this cannot hang. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "conf/aliases.h"

/* Enough names to reach every kind of entry without making one input
 * cost more than a few milliseconds. */
#define FUZZ_MAX_NAMES 32

static int
is_local(const char *domain, void *arg)
{
	(void)arg;
	return strcmp(domain, "localhost") == 0;
}

static void
fail(const char *why)
{
	fprintf(stderr, "%s\n", why);
	abort();
}

static void
check_expansion(const struct alias_expansion *e)
{
	if (e->n > ALIAS_MAX_TARGETS)
		fail("too many targets");
	for (size_t i = 0; i < e->n; i++) {
		const struct alias_target *t = &e->v[i];
		if (t->value == NULL || t->alias == NULL)
			fail("target without a value");
		if (t->kind != ALIAS_LOCAL && t->kind != ALIAS_REMOTE &&
		    t->kind != ALIAS_COMMAND && t->kind != ALIAS_FILE)
			fail("bad kind");
		if ((t->kind == ALIAS_COMMAND || t->kind == ALIAS_FILE) &&
		    (t->uid == 0 || t->gid == 0))
			fail("target runs as root");
		if (t->kind == ALIAS_FILE && t->value[0] != '/')
			fail("relative file target");
		if (t->kind == ALIAS_REMOTE && strchr(t->value, '@') == NULL)
			fail("remote target without a domain");
	}
}

static void
expand(const struct alias_db *db, const char *name, int must_be_alias)
{
	char err[512];
	struct alias_expansion e;
	int rc = alias_expand(db, name, is_local, NULL, &e, err, sizeof(err));
	if (rc < 0 && err[0] == '\0')
		fail("expansion failed without a message");
	if (rc == 0 && must_be_alias)
		fail("a name in the file is not an alias");
	if (rc <= 0 && (e.n != 0 || e.v != NULL))
		fail("output left after failure");
	check_expansion(&e);
	alias_expansion_free(&e);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512];
	/* The owner is not root, so commands run as that uid; root would
	 * map to nobody. Alternate to cover both. */
	uid_t owner = size % 2 ? 1000 : 0;
	struct alias_db *db =
	    alias_parse_buffer("fuzz.aliases", (const char *)data, size, owner,
			       owner, err, sizeof(err));
	if (db == NULL) {
		if (err[0] == '\0')
			fail("failure without a message");
		return 0;
	}
	size_t n = alias_count(db);
	for (size_t i = 0; i < n && i < FUZZ_MAX_NAMES; i++) {
		const char *name = alias_name_at(db, i);
		expand(db, name, 1);
		if (i == 0) {
			char *upper = xstrdup(name);
			for (char *p = upper; *p; p++)
				if (*p >= 'a' && *p <= 'z')
					*p = (char)(*p - 'a' + 'A');
			expand(db, upper, 1);
			free(upper);
		}
	}
	expand(db, "postmaster", 0);
	alias_free(db);
	return 0;
}
