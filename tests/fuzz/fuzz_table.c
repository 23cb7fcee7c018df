/* Table reader: any input parses or fails with a message, with both
 * separators, with and without case folding and continuation lines; in
 * every parsed table each key is found, and found at its first
 * occurrence. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "conf/table.h"

static void
check_lookups(const struct table *t)
{
	for (size_t i = 0; i < t->n; i++) {
		const struct table_entry *e = table_lookup(t, t->v[i].key);
		if (e == NULL || e > &t->v[i] ||
		    strcmp(e->key, t->v[i].key) != 0 || e->value == NULL) {
			fprintf(stderr, "lookup of entry %zu failed\n", i);
			abort();
		}
		if (t->flags & TABLE_FOLD_CASE) {
			char *upper = xstrdup(t->v[i].key);
			for (char *p = upper; *p; p++)
				if (*p >= 'a' && *p <= 'z')
					*p = (char)(*p - 'a' + 'A');
			if (table_lookup(t, upper) != e) {
				fprintf(stderr, "folded lookup failed\n");
				abort();
			}
			free(upper);
		}
	}
	table_lookup(t, "");
	table_lookup(t, "postmaster");
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct {
		enum table_sep sep;
		int flags;
	} modes[] = {
	    {TABLE_SEP_SPACE, 0},
	    {TABLE_SEP_SPACE, TABLE_FOLD_CASE},
	    {TABLE_SEP_COLON, 0},
	    {TABLE_SEP_COLON, TABLE_FOLD_CASE},
	    {TABLE_SEP_SPACE, TABLE_NO_CONT | TABLE_FOLD_CASE},
	};
	char err[512];
	for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
		struct table *t = table_parse_buffer(
		    "fuzz.tab", (const char *)data, size, modes[m].sep,
		    modes[m].flags, err, sizeof(err));
		if (t != NULL) {
			check_lookups(t);
		} else if (err[0] == '\0') {
			fprintf(stderr, "failure without a message\n");
			abort();
		}
		table_free(t);
	}
	return 0;
}
