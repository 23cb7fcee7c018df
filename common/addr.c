/* RFC 5321 section 4.1.2 paths, with the RFC 6531 (SMTPUTF8) extension of
 * atext, qtextSMTP and sub-domain labels to UTF-8. The input is a length
 * delimited slice of a command line, so every read is checked against the
 * length: the caller's buffer need not be NUL-terminated. */
#include "common/addr.h"

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "common/util.h"

#define DOMAIN_LABEL_MAX 63 /* RFC 1035 2.3.4 */
#define IPV6_TEXT_MAX	 45 /* INET6_ADDRSTRLEN - 1 */

/* A read position in the caller's (s, len) slice. */
struct cursor {
	const unsigned char *s;
	size_t len;
	size_t pos;
};

static bool
at_end(const struct cursor *c)
{
	return c->pos >= c->len;
}

/* The byte under the cursor, or -1 at the end so that no caller can mistake
 * "nothing left" for a NUL byte in the input. */
static int
peek(const struct cursor *c)
{
	return at_end(c) ? -1 : c->s[c->pos];
}

static bool
is_alpha(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool
is_digit(int c)
{
	return c >= '0' && c <= '9';
}

static bool
is_let_dig(int c)
{
	return is_alpha(c) || is_digit(c);
}

static bool
is_control(int c)
{
	return (c >= 0 && c < 0x20) || c == 0x7f;
}

/* RFC 5322 atext, as RFC 5321 uses it in Atom. */
static bool
is_atext(int c)
{
	return is_let_dig(c) || (c > 0 && strchr("!#$%&'*+-/=?^_`{|}~", c));
}

/* RFC 5321 qtextSMTP: printable ASCII and space, except " and \. */
static bool
is_qtext(int c)
{
	return c == 32 || c == 33 || (c >= 35 && c <= 91) ||
	       (c >= 93 && c <= 126);
}

/* RFC 5321 dcontent: printable ASCII except [ \ ]. */
static bool
is_dcontent(int c)
{
	return (c >= 33 && c <= 90) || (c >= 94 && c <= 126);
}

static bool
in_range(unsigned char c, unsigned char lo, unsigned char hi)
{
	return c >= lo && c <= hi;
}

/* Length of the well-formed UTF-8 sequence for a non-ASCII character at p
 * (RFC 3629 section 4, which excludes overlong forms, surrogates and code
 * points past U+10FFFF), or 0 when it is not one. */
static size_t
utf8_sequence_len(const unsigned char *p, size_t avail)
{
	unsigned char b0 = p[0];
	size_t n;
	unsigned char lo = 0x80, hi = 0xbf; /* range of the second byte */

	if (in_range(b0, 0xc2, 0xdf)) {
		n = 2;
	} else if (in_range(b0, 0xe0, 0xef)) {
		n = 3;
		if (b0 == 0xe0)
			lo = 0xa0;
		else if (b0 == 0xed)
			hi = 0x9f;
	} else if (in_range(b0, 0xf0, 0xf4)) {
		n = 4;
		if (b0 == 0xf0)
			lo = 0x90;
		else if (b0 == 0xf4)
			hi = 0x8f;
	} else {
		return 0;
	}
	if (avail < n || !in_range(p[1], lo, hi))
		return 0;
	for (size_t i = 2; i < n; i++)
		if (!in_range(p[i], 0x80, 0xbf))
			return 0;
	return n;
}

/* Steps over one 8-bit character at the cursor: allowed only under
 * SMTPUTF8, and only as well-formed UTF-8. */
static int
skip_8bit(struct cursor *c, int flags, const char **errstr)
{
	if (!(flags & ADDR_ALLOW_UTF8)) {
		*errstr = "8-bit character without SMTPUTF8";
		return -1;
	}
	size_t n = utf8_sequence_len(c->s + c->pos, c->len - c->pos);
	if (n == 0) {
		*errstr = "invalid UTF-8";
		return -1;
	}
	c->pos += n;
	return 0;
}

/* The reason for a byte that cannot appear where it was found; the
 * specific cases first so that a 501 names the usual mistakes. */
static const char *
bad_char_reason(int ch, const char *fallback)
{
	if (is_control(ch))
		return "control character in address";
	if (ch == ' ')
		return "space in address";
	return fallback;
}

/* Snum "." Snum "." Snum "." Snum, each Snum 1-3 digits up to 255. */
static bool
is_ipv4_literal(const char *p, size_t len)
{
	size_t i = 0;
	for (int part = 0; part < 4; part++) {
		if (part > 0) {
			if (i >= len || p[i] != '.')
				return false;
			i++;
		}
		unsigned value = 0;
		size_t digits = 0;
		while (i < len && is_digit(p[i]) && digits < 3) {
			value = value * 10 + (unsigned)(p[i] - '0');
			i++;
			digits++;
		}
		if (digits == 0 || value > 255)
			return false;
	}
	return i == len;
}

static bool
is_ipv6_literal(const char *p, size_t len)
{
	char text[IPV6_TEXT_MAX + 1];
	struct in6_addr addr;

	if (len == 0 || len > IPV6_TEXT_MAX)
		return false;
	memcpy(text, p, len);
	text[len] = '\0';
	return inet_pton(AF_INET6, text, &addr) == 1;
}

/* Let-dig [Ldh-str]: the Standardized-tag of a General-address-literal. */
static bool
is_ldh_tag(const char *p, size_t len)
{
	if (len == 0 || !is_let_dig(p[0]) || !is_let_dig(p[len - 1]))
		return false;
	for (size_t i = 1; i < len; i++)
		if (!is_let_dig(p[i]) && p[i] != '-')
			return false;
	return true;
}

/* The inside of "[...]": an IPv4 literal, "IPv6:" and an IPv6 address,
 * or "tag:" and dcontent. */
static int
check_address_literal(const char *d, size_t len, const char **errstr)
{
	if (len < 2 || d[len - 1] != ']') {
		*errstr = "unterminated address literal";
		return -1;
	}
	const char *in = d + 1;
	size_t inlen = len - 2;
	for (size_t i = 0; i < inlen; i++) {
		if (!is_dcontent((unsigned char)in[i])) {
			*errstr = bad_char_reason((unsigned char)in[i],
						  "bad address literal");
			return -1;
		}
	}
	if (inlen >= 5 && ascii_strncasecmp(in, "IPv6:", 5) == 0) {
		if (!is_ipv6_literal(in + 5, inlen - 5)) {
			*errstr = "bad IPv6 address literal";
			return -1;
		}
		return 0;
	}
	const char *colon = memchr(in, ':', inlen);
	if (colon == NULL) {
		if (!is_ipv4_literal(in, inlen)) {
			*errstr = "bad IPv4 address literal";
			return -1;
		}
		return 0;
	}
	size_t taglen = (size_t)(colon - in);
	if (!is_ldh_tag(in, taglen) || taglen + 1 == inlen) {
		*errstr = "bad address literal";
		return -1;
	}
	return 0;
}

/* One sub-domain: Let-dig [Ldh-str], with UTF-8 counting as letters under
 * SMTPUTF8 (U-labels). Advances c past the label. */
static int
check_label(struct cursor *c, int flags, const char **errstr)
{
	size_t start = c->pos;
	while (!at_end(c) && peek(c) != '.') {
		int ch = peek(c);
		if (ch >= 0x80) {
			if (skip_8bit(c, flags, errstr) != 0)
				return -1;
			continue;
		}
		if (!is_let_dig(ch) && ch != '-') {
			*errstr =
			    bad_char_reason(ch, "bad character in domain");
			return -1;
		}
		c->pos++;
	}
	size_t n = c->pos - start;
	if (n == 0) {
		*errstr = "empty label in domain";
		return -1;
	}
	if (n > DOMAIN_LABEL_MAX) {
		*errstr = "domain label too long";
		return -1;
	}
	if (c->s[start] == '-' || c->s[c->pos - 1] == '-') {
		*errstr = "bad hyphen in domain";
		return -1;
	}
	return 0;
}

int
addr_check_domain(const char *d, size_t len, int flags, const char **errstr)
{
	if (len == 0) {
		*errstr = "missing domain";
		return -1;
	}
	if (len > ADDR_DOMAIN_MAX) {
		*errstr = "domain too long";
		return -1;
	}
	if (d[0] == '[')
		return check_address_literal(d, len, errstr);

	struct cursor c = {(const unsigned char *)d, len, 0};
	for (;;) {
		if (check_label(&c, flags, errstr) != 0)
			return -1;
		if (at_end(&c))
			return 0;
		c.pos++; /* the dot */
		if (at_end(&c)) {
			/* "example.com." is a DNS spelling, not an SMTP one. */
			*errstr = "trailing dot in domain";
			return -1;
		}
	}
}

/* Quoted-string = DQUOTE *QcontentSMTP DQUOTE. The cursor is on the
 * opening quote; on success it is just past the closing one. */
static int
scan_quoted_string(struct cursor *c, int flags, const char **errstr)
{
	c->pos++;
	for (;;) {
		int ch = peek(c);
		if (ch < 0)
			break;
		if (ch == '"') {
			c->pos++;
			return 0;
		}
		if (ch == '\\') {
			c->pos++;
			int next = peek(c);
			if (next < 0)
				break;
			/* quoted-pairSMTP = "\" %d32-126; RFC 6531 does not
			 * widen it to UTF-8. */
			if (next < 32 || next > 126) {
				*errstr = bad_char_reason(
				    next, "bad character in quoted string");
				return -1;
			}
			c->pos++;
		} else if (ch >= 0x80) {
			if (skip_8bit(c, flags, errstr) != 0)
				return -1;
		} else if (is_qtext(ch)) {
			c->pos++;
		} else {
			*errstr = bad_char_reason(
			    ch, "bad character in quoted string");
			return -1;
		}
	}
	*errstr = "unterminated quoted string";
	return -1;
}

/* Dot-string = Atom *("." Atom). Stops at the first byte that is neither
 * atext, a dot nor UTF-8; the caller judges that byte. */
static int
scan_dot_string(struct cursor *c, int flags, const char **errstr)
{
	size_t start = c->pos;
	int prev = '.'; /* so that a leading dot counts as a double one */
	for (;;) {
		int ch = peek(c);
		if (ch >= 0x80) {
			if (skip_8bit(c, flags, errstr) != 0)
				return -1;
			prev = 'a';
			continue;
		}
		if (ch == '.') {
			if (prev == '.') {
				*errstr = "bad dot in local part";
				return -1;
			}
		} else if (ch < 0 || !is_atext(ch)) {
			break;
		}
		prev = ch;
		c->pos++;
	}
	if (c->pos == start) {
		*errstr = bad_char_reason(peek(c), "empty local part");
		return -1;
	}
	if (prev == '.') {
		*errstr = "bad dot in local part";
		return -1;
	}
	return 0;
}

static int
scan_local_part(struct cursor *c, int flags, const char **errstr)
{
	size_t start = c->pos;
	int rc = peek(c) == '"' ? scan_quoted_string(c, flags, errstr)
				: scan_dot_string(c, flags, errstr);
	if (rc != 0)
		return -1;
	if (c->pos - start > ADDR_LOCAL_MAX) {
		*errstr = "local part too long";
		return -1;
	}
	return 0;
}

/* Does ch end a domain? Inside <> that is '>', as well as the space and
 * end of input that end a bare address; a source-route domain also ends
 * at ',' and ':'. */
static bool
ends_domain(int ch, bool bracketed, bool in_route)
{
	if (ch < 0 || ch == ' ')
		return true;
	if (bracketed && ch == '>')
		return true;
	return in_route && (ch == ',' || ch == ':');
}

/* Does ch end a whole address? Within <> only '>' does (or the end of
 * input, which the caller reports as a missing '>'). */
static bool
ends_address(int ch, bool bracketed)
{
	return ch < 0 || ch == (bracketed ? '>' : ' ');
}

/* Finds the extent of a domain or address literal at the cursor and
 * validates it. An address literal may contain ':' and '>', so it runs to
 * its ']'. */
static int
scan_domain(struct cursor *c, int flags, bool bracketed, bool in_route,
	    const char **errstr)
{
	size_t start = c->pos;
	if (peek(c) == '[') {
		c->pos++;
		while (is_dcontent(peek(c)))
			c->pos++;
		if (peek(c) != ']') {
			int ch = peek(c);
			*errstr =
			    ch < 0 || ch == ' '
				? "unterminated address literal"
				: bad_char_reason(ch, "bad address literal");
			return -1;
		}
		c->pos++;
		if (!ends_domain(peek(c), bracketed, in_route)) {
			*errstr = "bad address literal";
			return -1;
		}
	} else {
		while (!ends_domain(peek(c), bracketed, in_route))
			c->pos++;
	}
	return addr_check_domain((const char *)c->s + start, c->pos - start,
				 flags, errstr);
}

/* A-d-l ":" where A-d-l = At-domain *( "," At-domain ). RFC 5321 4.1.1.3
 * says to accept and ignore it, which is what we do. */
static int
skip_source_route(struct cursor *c, int flags, const char **errstr)
{
	for (;;) {
		if (peek(c) != '@') {
			*errstr = "bad source route";
			return -1;
		}
		c->pos++;
		if (scan_domain(c, flags, true, true, errstr) != 0)
			return -1;
		int ch = peek(c);
		if (ch == ':') {
			c->pos++;
			return 0;
		}
		if (ch != ',') {
			*errstr = "bad source route";
			return -1;
		}
		c->pos++;
	}
}

static bool
is_postmaster(const unsigned char *p, size_t len)
{
	return len == 10 &&
	       ascii_strncasecmp((const char *)p, "postmaster", 10) == 0;
}

static void
copy_span(char *dst, const struct cursor *c, size_t start, size_t end)
{
	memcpy(dst, c->s + start, end - start);
	dst[end - start] = '\0';
}

/* Mailbox = Local-part "@" ( Domain / address-literal ), or a bare
 * "Postmaster" when the flags allow it. */
static int
scan_mailbox(struct cursor *c, int flags, bool bracketed, bool routed,
	     struct mailaddr *out, const char **errstr)
{
	size_t local_start = c->pos;
	if (scan_local_part(c, flags, errstr) != 0)
		return -1;
	size_t local_end = c->pos;
	int ch = peek(c);

	if (ch != '@') {
		if (!ends_address(ch, bracketed)) {
			*errstr = bad_char_reason(ch, "bad character in "
						      "local part");
			return -1;
		}
		if (!(flags & ADDR_ALLOW_POSTMASTER) || routed ||
		    !is_postmaster(c->s + local_start,
				   local_end - local_start)) {
			*errstr = "missing domain";
			return -1;
		}
		copy_span(out->local, c, local_start, local_end);
		out->domain[0] = '\0';
		return 0;
	}
	c->pos++;
	size_t domain_start = c->pos;
	if (scan_domain(c, flags, bracketed, false, errstr) != 0)
		return -1;
	copy_span(out->local, c, local_start, local_end);
	copy_span(out->domain, c, domain_start, c->pos);
	return 0;
}

/* Only ESMTP parameters may follow, and the space before them. */
static int
check_after_path(const struct cursor *c, const char **errstr)
{
	int after = peek(c);
	if (after >= 0 && after != ' ') {
		*errstr = "bad character after >";
		return -1;
	}
	return 0;
}

static int
parse_bracketed(struct cursor *c, int flags, struct mailaddr *out,
		const char **errstr)
{
	c->pos++; /* '<' */
	if (peek(c) == '>') {
		if (!(flags & ADDR_ALLOW_NULL)) {
			*errstr = "null path not allowed";
			return -1;
		}
		c->pos++;
		out->local[0] = '\0';
		out->domain[0] = '\0';
		return check_after_path(c, errstr);
	}
	bool routed = peek(c) == '@';
	if (routed && skip_source_route(c, flags, errstr) != 0)
		return -1;
	if (scan_mailbox(c, flags, true, routed, out, errstr) != 0)
		return -1;
	if (peek(c) != '>') {
		*errstr = "missing >";
		return -1;
	}
	c->pos++;
	return check_after_path(c, errstr);
}

int
addr_parse_path(const char *s, size_t len, int flags, struct mailaddr *out,
		size_t *endp, const char **errstr)
{
	struct cursor c = {(const unsigned char *)s, len, 0};
	struct mailaddr a;
	bool bracketed = peek(&c) == '<';
	int rc;

	if (bracketed) {
		rc = parse_bracketed(&c, flags, &a, errstr);
	} else if (flags & ADDR_ALLOW_NOBRACKETS) {
		rc = scan_mailbox(&c, flags, false, false, &a, errstr);
	} else {
		*errstr = "missing <";
		return -1;
	}
	if (rc != 0)
		return -1;
	/* A bare address counts as if it had its brackets, so that every
	 * address we accept can be sent on as "<...>". */
	size_t path_len = bracketed ? c.pos : c.pos + 2;
	if (path_len > ADDR_PATH_MAX) {
		*errstr = "path too long";
		return -1;
	}
	*out = a;
	*endp = c.pos;
	return 0;
}

int
addr_parse_mailbox(const char *s, int flags, struct mailaddr *out,
		   const char **errstr)
{
	size_t len = strlen(s);
	if (len == 0 && (flags & ADDR_ALLOW_NULL)) {
		out->local[0] = '\0';
		out->domain[0] = '\0';
		return 0;
	}
	if (len > 0 && s[0] == '<') {
		*errstr = "bad character in local part";
		return -1;
	}
	struct mailaddr a;
	size_t end;
	if (addr_parse_path(s, len, flags | ADDR_ALLOW_NOBRACKETS, &a, &end,
			    errstr) != 0)
		return -1;
	if (end != len) {
		*errstr = bad_char_reason((unsigned char)s[end],
					  "bad character after address");
		return -1;
	}
	*out = a;
	return 0;
}

char *
addr_format(const struct mailaddr *a, char *buf, size_t buflen)
{
	if (buflen == 0)
		return buf;
	if (a->domain[0] == '\0')
		smalt_strlcpy(buf, a->local, buflen);
	else
		snprintf(buf, buflen, "%s@%s", a->local, a->domain);
	return buf;
}

int
addr_is_null(const struct mailaddr *a)
{
	return a->local[0] == '\0' && a->domain[0] == '\0';
}

char *
addr_local_unquoted(const struct mailaddr *a, char *buf, size_t buflen)
{
	const char *s = a->local;
	size_t n = 0;
	if (buflen == 0)
		return buf;
	if (*s != '"') {
		smalt_strlcpy(buf, s, buflen);
		return buf;
	}
	/* A quoted string: drop the quotes, keep what each backslash
	 * escapes. */
	for (s++; *s != '\0' && *s != '"' && n + 1 < buflen; s++) {
		if (*s == '\\' && s[1] != '\0')
			s++;
		buf[n++] = *s;
	}
	buf[n] = '\0';
	return buf;
}
