/* RFC 5321 paths: Reverse-path and Forward-path as they appear after
 * "MAIL FROM:" and "RCPT TO:", and plain mailbox addresses. */
#ifndef SMALT_ADDR_H
#define SMALT_ADDR_H

#include <stddef.h>

#define ADDR_LOCAL_MAX	64  /* RFC 5321 4.5.3.1.1 */
#define ADDR_DOMAIN_MAX 255 /* RFC 5321 4.5.3.1.2 */
#define ADDR_PATH_MAX	256 /* RFC 5321 4.5.3.1.3, with "<" and ">" */

/* Flags for addr_parse_path. */
#define ADDR_ALLOW_NULL	      0x01 /* "<>" is valid (MAIL FROM) */
#define ADDR_ALLOW_POSTMASTER 0x02 /* "<Postmaster>" without domain (RCPT) */
#define ADDR_ALLOW_UTF8	      0x04 /* SMTPUTF8: UTF-8 in local part/domain */
#define ADDR_ALLOW_NOBRACKETS                                                  \
	0x08 /* "user@dom" without <>, as many clients                         \
		send; Postfix accepts it too */

struct mailaddr {
	/* Local part as written on the wire: a dot-string, or a quoted
	 * string with its quotes and backslashes kept, so it can be sent on
	 * unchanged. Empty for the null path. */
	char local[ADDR_LOCAL_MAX + 1];
	/* Domain as written, or an address literal with its brackets
	 * ("[192.0.2.1]", "[IPv6:2001:db8::1]"). Empty for the null path
	 * and for bare Postmaster. */
	char domain[ADDR_DOMAIN_MAX + 1];
};

/* Parses a path at s (len bytes, need not be NUL-terminated): optional
 * source route "@a,@b:" is accepted and dropped. On success returns 0,
 * fills *out and sets *endp to the first byte after the path (where ESMTP
 * parameters may start). On failure returns -1 and sets *errstr to a
 * short reason fit for a 501 reply. */
int addr_parse_path(const char *s, size_t len, int flags, struct mailaddr *out,
		    size_t *endp, const char **errstr);

/* Parses a whole bare mailbox "local@domain" (no brackets), as used in
 * config and table files. */
int addr_parse_mailbox(const char *s, int flags, struct mailaddr *out,
		       const char **errstr);

/* "local@domain", "" for the null path, or "local" for bare Postmaster.
 * buf must hold ADDR_PATH_MAX + 1 bytes. Returns buf. */
char *addr_format(const struct mailaddr *a, char *buf, size_t buflen);

int addr_is_null(const struct mailaddr *a);

/* The local part as a name to look up: a quoted string without its
 * quotes and escapes ("john doe" -> john doe), a dot-string as is. */
char *addr_local_unquoted(const struct mailaddr *a, char *buf, size_t buflen);

/* Validates a domain name (dot-separated LDH labels, each 1-63) or an
 * address literal. 0 when valid. */
int addr_check_domain(const char *d, size_t len, int flags,
		      const char **errstr);

#endif
