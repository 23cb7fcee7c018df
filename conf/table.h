/* One reader for every table file smalt uses: aliases, virtual_mailboxes,
 * routes, auth_users and relayhost_auth_file. The file is read whole,
 * comments dropped, continuation lines joined; each entry keeps its line
 * number so callers can report "file:line: reason" about values. */
#ifndef SMALT_TABLE_H
#define SMALT_TABLE_H

#include <stddef.h>

enum table_sep {
	TABLE_SEP_SPACE, /* key, white space, value (virtual, routes, auth) */
	TABLE_SEP_COLON	 /* key ':' value (aliases, auth_users) */
};

#define TABLE_FOLD_CASE 0x1 /* keys compared case-insensitively (ASCII) */
#define TABLE_NO_CONT	0x2 /* white-space-led lines are errors, not joins */

struct table_entry {
	char *key;   /* trimmed; folded to lower case with TABLE_FOLD_CASE */
	char *value; /* trimmed; continuation lines joined with one space */
	unsigned line;
};

struct table {
	char *name; /* file name for messages */
	size_t n;
	struct table_entry *v; /* in file order (routes: first match wins) */
	/* Private: indexes into v sorted by key for table_lookup. */
	size_t *sorted;
	int flags;
};

/* Reads and parses a file. NULL with err "file:line: reason" (or
 * "file: reason" for open/read errors). */
struct table *table_open(const char *path, enum table_sep sep, int flags,
			 char *err, size_t errlen);
struct table *table_parse_buffer(const char *name, const char *text, size_t len,
				 enum table_sep sep, int flags, char *err,
				 size_t errlen);
void table_free(struct table *t);

/* First entry with this key (the file's first occurrence), or NULL. */
const struct table_entry *table_lookup(const struct table *t, const char *key);

#endif
