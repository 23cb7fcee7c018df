/* Message preparation for sendmail(1): see inject.h for the contract.
 *
 * The input is read once, line by line, never past len. Header fields
 * are gathered whole (first line and continuation lines) before they
 * are written out, because a Bcc: is dropped with its continuations and
 * a -t address list may be folded over several lines. */
#include "cli/inject.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "common/strbuf.h"
#include "common/util.h"

/* RFC 5322 2.1.1: a line holds at most 998 octets before its CRLF. */
#define LINE_MAX_OCTETS 998

static int
is_wsp(unsigned char c)
{
	return c == ' ' || c == '\t';
}

/* Folding white space as a caller may pass it: a value that was not
 * unfolded still holds its CRLFs. */
static int
is_fws(unsigned char c)
{
	return is_wsp(c) || c == '\r' || c == '\n';
}

static int
is_ctl(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

/* ------------------------------------------------------------------ */
/* Address lists (RFC 5322 3.4 with the obsolete forms of 4.4)          */
/* ------------------------------------------------------------------ */

enum tok_kind { TOK_END, TOK_ATOM, TOK_QUOTED, TOK_LITERAL, TOK_SPECIAL };

struct tok {
	enum tok_kind kind;
	const char *s;
	size_t len;
};

struct lexer {
	const char *p, *end;
	const char *why; /* the reason, once lexing failed */
};

/* RFC 5322 specials; '(' '"' and '[' start comments, quoted strings and
 * domain literals, the others are tokens of their own. */
static int
is_special(unsigned char c)
{
	return c != '\0' && strchr("()<>[]:;@\\,.\"", c) != NULL;
}

static int
lex_fail(struct lexer *lx, const char *why)
{
	lx->why = why;
	return -1;
}

/* At '(': skips a comment, which may nest and hold quoted-pairs. */
static int
skip_comment(struct lexer *lx)
{
	int depth = 0;
	while (lx->p < lx->end) {
		char c = *lx->p++;
		if (c == '\\') {
			if (lx->p < lx->end)
				lx->p++;
		} else if (c == '(') {
			depth++;
		} else if (c == ')' && --depth == 0) {
			return 0;
		}
	}
	return lex_fail(lx, "unterminated comment");
}

static int
skip_cfws(struct lexer *lx)
{
	while (lx->p < lx->end) {
		if (is_fws((unsigned char)*lx->p))
			lx->p++;
		else if (*lx->p == '(') {
			if (skip_comment(lx) != 0)
				return -1;
		} else
			break;
	}
	return 0;
}

/* At the opening '"' or '[': the length up to and with the closing
 * delimiter, quoted-pairs skipped over; 0 when it is missing. */
static size_t
delimited_len(const char *p, const char *end, char close)
{
	const char *q = p + 1;
	while (q < end && *q != close) {
		if (*q == '\\' && q + 1 < end)
			q++;
		q++;
	}
	return q < end ? (size_t)(q + 1 - p) : 0;
}

/* The length of an RFC 2047 encoded word "=?charset?E?text?=" at p, or
 * 0. Sloppy encoders leave specials such as ',' in the text; taking the
 * encoded word as one atom keeps such a display name from being split
 * into bogus addresses. */
static size_t
encoded_word_len(const char *p, const char *end)
{
	if (end - p < 2 || p[0] != '=' || p[1] != '?')
		return 0;
	const char *q = p + 2;
	for (int part = 0; part < 3; part++) {
		const char *start = q;
		while (q < end && *q != '?' && !is_fws((unsigned char)*q))
			q++;
		if (q == end || *q != '?' || (q == start && part < 2))
			return 0;
		q++;
	}
	return q < end && *q == '=' ? (size_t)(q + 1 - p) : 0;
}

static int
lex_next(struct lexer *lx, struct tok *t)
{
	if (skip_cfws(lx) != 0)
		return -1;
	t->s = lx->p;
	t->len = 1;
	if (lx->p == lx->end) {
		t->kind = TOK_END;
		t->len = 0;
		return 0;
	}
	unsigned char c = (unsigned char)*lx->p;
	if (c == '"' || c == '[') {
		t->kind = c == '"' ? TOK_QUOTED : TOK_LITERAL;
		t->len = delimited_len(lx->p, lx->end, c == '"' ? '"' : ']');
		if (t->len == 0)
			return lex_fail(lx, c == '"'
						? "unterminated quoted string"
						: "unterminated domain "
						  "literal");
	} else if (c == ')') {
		return lex_fail(lx, "')' without '('");
	} else if (c == ']') {
		return lex_fail(lx, "']' without '['");
	} else if (c == '\\') {
		return lex_fail(lx, "'\\' outside a quoted string");
	} else if (is_special(c)) {
		t->kind = TOK_SPECIAL;
	} else {
		t->kind = TOK_ATOM;
		t->len = encoded_word_len(lx->p, lx->end);
		if (t->len == 0) {
			const char *q = lx->p;
			while (q < lx->end && !is_fws((unsigned char)*q) &&
			       !is_special((unsigned char)*q))
				q++;
			t->len = (size_t)(q - lx->p);
		}
	}
	lx->p += t->len;
	return 0;
}

static int
is_sym(const struct tok *t, char c)
{
	return t->kind == TOK_SPECIAL && *t->s == c;
}

/* Where one parse appends its addresses: *v[n0..*n) are its own, so a
 * failed parse can take them back. */
struct alist {
	char ***v;
	size_t *n;
	size_t n0;
};

static void
alist_add(struct alist *al, char *a)
{
	for (size_t i = 0; i < *al->n; i++) {
		if (ascii_strcasecmp((*al->v)[i], a) == 0) {
			free(a);
			return;
		}
	}
	*al->v = xrealloc(*al->v, (*al->n + 1) * sizeof(**al->v));
	(*al->v)[(*al->n)++] = a;
}

static void
alist_rollback(struct alist *al)
{
	while (*al->n > al->n0)
		free((*al->v)[--*al->n]);
}

/* Adds a token of an addr-spec as it is written: CFWS between tokens
 * goes, and so do the CRLFs of a quoted string folded over lines. */
static void
add_token(struct strbuf *b, const struct tok *t)
{
	if (t->kind != TOK_QUOTED) {
		strbuf_add(b, t->s, t->len);
		return;
	}
	for (size_t i = 0; i < t->len; i++)
		if (t->s[i] != '\r' && t->s[i] != '\n')
			strbuf_add(b, t->s + i, 1);
}

/* [s, e) holds one addr-spec: local-part ["@" domain], the "@ domain"
 * optional since the caller qualifies a bare local part. Dots are taken
 * leniently (obs-local-part, and addresses such as "a..b.@x" that some
 * providers hand out), but two words in a row mean a missing comma or
 * angle brackets, so that "John Doe" never becomes "JohnDoe". On
 * success *addr is the address, or NULL when [s, e) held no tokens. */
static const char *
build_addr_spec(const char *s, const char *e, char **addr)
{
	struct lexer lx = {s, e, NULL};
	struct strbuf b = {NULL, 0, 0};
	struct tok t;
	int at = 0, prev_word = 0, local_words = 0, domain_words = 0;
	const char *why = NULL;
	*addr = NULL;
	for (;;) {
		if (lex_next(&lx, &t) != 0) {
			why = lx.why;
			break;
		}
		if (t.kind == TOK_END)
			break;
		if (t.kind == TOK_SPECIAL && *t.s == '.') {
			prev_word = 0;
		} else if (t.kind == TOK_SPECIAL && *t.s == '@') {
			if (at)
				why = "more than one '@' in an address";
			else if (local_words == 0)
				why = "empty local part before '@'";
			at = 1;
			prev_word = 0;
		} else if (t.kind == TOK_SPECIAL) {
			why = "unexpected special character in an address";
		} else if (prev_word) {
			why = "two words in a row (missing ',' or '<>'?)";
		} else if (t.kind == TOK_QUOTED && at) {
			why = "quoted string in a domain";
		} else if (t.kind == TOK_LITERAL && !at) {
			why = "domain literal in a local part";
		} else {
			prev_word = 1;
			if (at)
				domain_words++;
			else
				local_words++;
		}
		if (why != NULL)
			break;
		add_token(&b, &t);
	}
	if (why == NULL && b.len > 0 && local_words == 0)
		why = "no local part in an address";
	if (why == NULL && at && domain_words == 0)
		why = "empty domain after '@'";
	for (size_t i = 0; why == NULL && i < b.len; i++)
		if (is_ctl((unsigned char)b.s[i]))
			why = "control character in an address";
	if (why != NULL || b.len == 0) {
		free(b.s);
		return why;
	}
	*addr = b.s;
	return NULL;
}

static const char *
add_addr_spec(struct alist *al, const char *s, const char *e)
{
	char *a;
	const char *why = build_addr_spec(s, e, &a);
	if (a != NULL)
		alist_add(al, a);
	return why;
}

/* The state of one mailbox or group member while its tokens go by. */
struct member {
	const char *start;  /* of its text, after the last separator */
	int angle;	    /* 0 no '<' yet, 1 inside <>, 2 after '>' */
	const char *astart; /* inside <>: after '<', or after a route */
	const char *aend;
	int route; /* inside <>: an obs-route "@a,@b:" is going by */
	int atoks; /* tokens inside <> so far */
};

static void
member_reset(struct member *m, const char *start)
{
	memset(m, 0, sizeof(*m));
	m->start = start;
}

/* A token inside angle brackets. */
static const char *
in_angle(struct member *m, const struct tok *t)
{
	if (t->kind == TOK_END)
		return "'<' without '>'";
	if (is_sym(t, '>')) {
		m->aend = t->s;
		m->angle = 2;
	} else if (is_sym(t, '<')) {
		return "'<' inside '<>'";
	} else if (is_sym(t, ':') && m->route) {
		/* The source route goes, as RFC 5321 C says it may. */
		m->astart = t->s + 1;
		m->route = 0;
	} else if (is_sym(t, ',') && !m->route) {
		return "',' inside '<>'";
	} else if (is_sym(t, ';') || is_sym(t, ':')) {
		return "unexpected ';' or ':' inside '<>'";
	} else if (m->atoks == 0 && is_sym(t, '@')) {
		m->route = 1;
	}
	m->atoks++;
	return NULL;
}

/* The end of a member: a ',' or ';' or the end of the value at end. */
static const char *
member_end(struct alist *al, struct member *m, const char *end)
{
	if (m->angle == 2)
		return add_addr_spec(al, m->astart, m->aend);
	return add_addr_spec(al, m->start, end);
}

static const char *
parse_list(struct alist *al, const char *value, size_t len)
{
	struct lexer lx = {value, value + len, NULL};
	struct member m;
	struct tok t;
	int in_group = 0;
	const char *why;
	member_reset(&m, value);
	for (;;) {
		if (lex_next(&lx, &t) != 0)
			return lx.why;
		if (m.angle == 1) {
			if ((why = in_angle(&m, &t)) != NULL)
				return why;
			continue;
		}
		if (t.kind == TOK_END || is_sym(&t, ',') || is_sym(&t, ';')) {
			if ((why = member_end(al, &m, t.s)) != NULL)
				return why;
			if (t.kind == TOK_END)
				return NULL;
			/* A ';' outside a group separates like ',', as
			 * Outlook users write lists. */
			if (is_sym(&t, ';'))
				in_group = 0;
			member_reset(&m, t.s + 1);
		} else if (m.angle == 2) {
			return "text after '>'";
		} else if (is_sym(&t, ':')) {
			/* What came before is the group's display name. */
			if (in_group)
				return "group inside a group";
			in_group = 1;
			member_reset(&m, t.s + 1);
		} else if (is_sym(&t, '<')) {
			m.angle = 1;
			m.astart = t.s + 1;
		} else if (is_sym(&t, '>')) {
			return "'>' without '<'";
		}
	}
}

int
inject_parse_address_list(const char *value, size_t len, char ***v, size_t *n,
			  char *err, size_t errlen)
{
	struct alist al = {v, n, *n};
	const char *why = parse_list(&al, value, len);
	if (why == NULL)
		return 0;
	alist_rollback(&al);
	set_err(err, errlen, "%s", why);
	return -1;
}

/* ------------------------------------------------------------------ */
/* Lines                                                              */
/* ------------------------------------------------------------------ */

struct lines {
	const char *p, *end;
	int dot_ends;
};

/* The next line without its LF or CRLF; 0 at the end of the input or
 * at a lone "." when that ends it. A CR as the input's very last octet
 * is taken as a CRLF cut short rather than kept as a lone CR: the line
 * gets its CRLF anyway. */
static int
next_line(struct lines *it, const char **s, size_t *n)
{
	if (it->p >= it->end)
		return 0;
	const char *lf = memchr(it->p, '\n', (size_t)(it->end - it->p));
	const char *e = lf != NULL ? lf : it->end;
	*s = it->p;
	*n = (size_t)(e - it->p);
	if (*n > 0 && (*s)[*n - 1] == '\r')
		(*n)--;
	it->p = lf != NULL ? lf + 1 : it->end;
	if (it->dot_ends && *n == 1 && **s == '.') {
		it->p = it->end;
		return 0;
	}
	return 1;
}

/* The length of the field name when the line starts a header field
 * ("Name:" or the obsolete "Name :"), else 0. */
static size_t
field_name_len(const char *s, size_t n)
{
	size_t i = 0;
	while (i < n && (unsigned char)s[i] > ' ' &&
	       (unsigned char)s[i] < 0x7f && s[i] != ':')
		i++;
	size_t j = i;
	while (j < n && is_wsp((unsigned char)s[j]))
		j++;
	return i > 0 && j < n && s[j] == ':' ? i : 0;
}

static int
name_is(const char *s, size_t n, const char *name)
{
	return strlen(name) == n && ascii_strncasecmp(s, name, n) == 0;
}

/* Where a header line of n octets may be folded: a white space octet
 * at minp or after, with something other than white space after it
 * (a line of white space only would read as obsolete syntax at best).
 * The last such place within the limit, else the first one beyond it,
 * else 0: a line with nowhere to fold is kept whole. */
static size_t
fold_point(const char *s, size_t n, size_t minp)
{
	size_t last = n;
	while (last > 0 && is_wsp((unsigned char)s[last - 1]))
		last--;
	if (last == 0)
		return 0;
	last--; /* the last octet that is not white space */
	size_t p = last < LINE_MAX_OCTETS + 1 ? last : LINE_MAX_OCTETS + 1;
	while (p-- > minp)
		if (is_wsp((unsigned char)s[p]))
			return p;
	for (p = LINE_MAX_OCTETS + 1; p < last; p++)
		if (p >= minp && is_wsp((unsigned char)s[p]))
			return p;
	return 0;
}

/* The first place a fold may go: past the first octet of the line (or
 * of the field's value) that is not white space. */
static size_t
fold_min(const char *s, size_t n)
{
	size_t i = 0;
	while (i < n && is_wsp((unsigned char)s[i]))
		i++;
	return i + 1;
}

/* Writes one header line with CRLF, folded when longer than the limit.
 * minp: the first place a fold may go, past the first word of the value
 * or of the continuation line, so that every line keeps some text. */
static void
emit_header_line(struct strbuf *b, const char *s, size_t n, size_t minp)
{
	size_t p;
	while (n > LINE_MAX_OCTETS && (p = fold_point(s, n, minp)) > 0) {
		strbuf_add(b, s, p);
		strbuf_add(b, "\r\n", 2);
		s += p;
		n -= p;
		minp = fold_min(s, n);
	}
	strbuf_add(b, s, n);
	strbuf_add(b, "\r\n", 2);
}

/* ------------------------------------------------------------------ */
/* Added header fields                                                */
/* ------------------------------------------------------------------ */

/* Copies s with control characters (CR and LF above all) turned into
 * spaces: -F and -f values must not start header fields of their own. */
static void
add_no_ctl(struct strbuf *b, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		strbuf_add(b, is_ctl((unsigned char)s[i]) ? " " : s + i, 1);
}

/* RFC 5322 atext, with 8-bit octets taken as text (RFC 6532). */
static int
is_atext(unsigned char c)
{
	return c >= 0x80 || (c > ' ' && c < 0x7f && !is_special(c));
}

/* A display name as a phrase: as it is when it is atoms and spaces,
 * else a quoted string with '"' and '\' escaped. */
static void
add_phrase(struct strbuf *b, const char *s, size_t n)
{
	int quote = 0;
	for (size_t i = 0; i < n; i++)
		if (s[i] != ' ' && !is_atext((unsigned char)s[i]))
			quote = 1;
	if (!quote) {
		strbuf_add(b, s, n);
		return;
	}
	strbuf_add(b, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '"' || s[i] == '\\')
			strbuf_add(b, "\\", 1);
		strbuf_add(b, s + i, 1);
	}
	strbuf_add(b, "\"", 1);
}

static void
add_from(struct strbuf *b, const struct inject_opts *o)
{
	/* The null sender has no address to show; Postfix writes this. */
	const char *addr = o->from_addr != NULL && o->from_addr[0] != '\0'
			       ? o->from_addr
			       : "MAILER-DAEMON";
	struct strbuf name = {NULL, 0, 0}, line = {NULL, 0, 0};
	if (o->full_name != NULL)
		add_no_ctl(&name, o->full_name, strlen(o->full_name));
	/* No name: nothing to trim (and NULL + 0 is undefined in C). */
	const char *s = name.s, *e = name.s ? name.s + name.len : NULL;
	if (s != NULL)
		text_trim(&s, &e);
	strbuf_adds(&line, "From: ");
	if (s != NULL && s < e) {
		add_phrase(&line, s, (size_t)(e - s));
		strbuf_adds(&line, " <");
		add_no_ctl(&line, addr, strlen(addr));
		strbuf_adds(&line, ">");
	} else {
		add_no_ctl(&line, addr, strlen(addr));
	}
	emit_header_line(b, line.s, line.len, 7);
	free(name.s);
	free(line.s);
}

static uint64_t
random64(void)
{
	uint64_t r;
	if (getrandom(&r, sizeof(r), GRND_NONBLOCK) == (ssize_t)sizeof(r))
		return r;
	/* No entropy yet (early boot): the clock and the stack's address
	 * still differ between calls and processes. */
	uint64_t x = now_usec() ^ (uint64_t)(uintptr_t)&r;
	x ^= x >> 33;
	x *= UINT64_C(0xff51afd7ed558ccd);
	return x ^ (x >> 33);
}

/* <time.pid.counter.random@host>: the counter sets apart calls in one
 * process, the pid processes within one second, and the random part
 * hosts and pids that were reused. */
static void
add_message_id(struct strbuf *b, const struct inject_opts *o)
{
	static unsigned long counter;
	const char *host = o->hostname != NULL && o->hostname[0] != '\0'
			       ? o->hostname
			       : "localhost";
	struct tm tm;
	char stamp[32];
	if (gmtime_r(&o->now, &tm) == NULL ||
	    strftime(stamp, sizeof(stamp), "%Y%m%d%H%M%S", &tm) == 0)
		snprintf(stamp, sizeof(stamp), "%lld", (long long)o->now);
	struct strbuf line = {NULL, 0, 0};
	strbuf_addf(&line, "Message-ID: <%s.%ld.%lu.%016" PRIx64 "@", stamp,
		    (long)getpid(), ++counter, random64());
	add_no_ctl(&line, host, strlen(host));
	strbuf_adds(&line, ">");
	emit_header_line(b, line.s, line.len, 13);
	free(line.s);
}

/* ------------------------------------------------------------------ */
/* The message                                                        */
/* ------------------------------------------------------------------ */

struct span {
	const char *s;
	size_t n;
};

/* The recipients of one kind of field (To/Cc/Bcc, or Resent-*). Which
 * kind counts is known only at the end of the header section, so an
 * error is kept until then: a bad To: does not matter when Resent-To:
 * is there. */
struct rcpt_set {
	char **v;
	size_t n;
	char err[256];
	int bad;
};

struct prep {
	const struct inject_opts *o;
	struct strbuf out;
	struct span *field; /* the lines of the field being gathered */
	size_t nfield, capfield;
	struct strbuf value; /* an address list field, unfolded */
	struct rcpt_set to, resent;
	int has_from, has_date, has_message_id, has_resent;
};

static void
rcpt_set_free(struct rcpt_set *r)
{
	for (size_t i = 0; i < r->n; i++)
		free(r->v[i]);
	free(r->v);
	r->v = NULL;
	r->n = 0;
}

static void
field_add_line(struct prep *st, const char *s, size_t n)
{
	if (st->nfield == st->capfield) {
		st->capfield = st->capfield ? 2 * st->capfield : 8;
		st->field =
		    xrealloc(st->field, st->capfield * sizeof(*st->field));
	}
	st->field[st->nfield++] = (struct span){s, n};
}

/* Parses the gathered field's value into r, unfolded: continuation
 * lines start with white space, so joining the lines is unfolding. */
static void
field_rcpts(struct prep *st, struct rcpt_set *r, size_t namelen, size_t colon)
{
	if (r->bad)
		return;
	st->value.len = 0;
	strbuf_add(&st->value, st->field[0].s + colon + 1,
		   st->field[0].n - colon - 1);
	for (size_t i = 1; i < st->nfield; i++)
		strbuf_add(&st->value, st->field[i].s, st->field[i].n);
	char why[200];
	if (inject_parse_address_list(st->value.s, st->value.len, &r->v, &r->n,
				      why, sizeof(why)) != 0) {
		r->bad = 1;
		set_err(r->err, sizeof(r->err), "%.*s field: %s",
			(int)(namelen < 64 ? namelen : 64), st->field[0].s,
			why);
	}
}

/* Writes out (or drops) the gathered field and notes what it is. */
static void
field_flush(struct prep *st)
{
	if (st->nfield == 0)
		return;
	const char *s = st->field[0].s;
	size_t n = st->field[0].n;
	size_t namelen = field_name_len(s, n);
	size_t colon = namelen;
	while (s[colon] != ':')
		colon++;
	int resent = namelen >= 7 && ascii_strncasecmp(s, "Resent-", 7) == 0;
	int bcc =
	    name_is(s, namelen, "Bcc") || name_is(s, namelen, "Resent-Bcc");
	st->has_resent |= resent;
	st->has_from |= name_is(s, namelen, "From");
	st->has_date |= name_is(s, namelen, "Date");
	st->has_message_id |= name_is(s, namelen, "Message-ID");
	if (st->o->extract_rcpts) {
		if (name_is(s, namelen, "To") || name_is(s, namelen, "Cc") ||
		    name_is(s, namelen, "Bcc"))
			field_rcpts(st, &st->to, namelen, colon);
		else if (name_is(s, namelen, "Resent-To") ||
			 name_is(s, namelen, "Resent-Cc") ||
			 name_is(s, namelen, "Resent-Bcc"))
			field_rcpts(st, &st->resent, namelen, colon);
	}
	if (!bcc) {
		emit_header_line(&st->out, s, n,
				 colon + 1 +
				     fold_min(s + colon + 1, n - colon - 1));
		for (size_t i = 1; i < st->nfield; i++)
			emit_header_line(
			    &st->out, st->field[i].s, st->field[i].n,
			    fold_min(st->field[i].s, st->field[i].n));
	}
	st->nfield = 0;
}

static void
end_headers(struct prep *st)
{
	field_flush(st);
	if (!st->has_from)
		add_from(&st->out, st->o);
	if (!st->has_date) {
		char date[64];
		rfc5322_date(st->o->now, date, sizeof(date));
		strbuf_addf(&st->out, "Date: %s\r\n", date);
	}
	if (!st->has_message_id)
		add_message_id(&st->out, st->o);
	strbuf_add(&st->out, "\r\n", 2);
}

/* One line of the header section; 0 when it ended that section. */
static int
header_line(struct prep *st, const char *s, size_t n)
{
	if (n == 0) {
		end_headers(st);
		return 0;
	}
	if (is_wsp((unsigned char)s[0]) && st->nfield > 0) {
		field_add_line(st, s, n);
		return 1;
	}
	if (field_name_len(s, n) > 0) {
		field_flush(st);
		field_add_line(st, s, n);
		return 1;
	}
	/* Not a header field: the body starts here, after the empty line
	 * that was missing. */
	end_headers(st);
	strbuf_add(&st->out, s, n);
	strbuf_add(&st->out, "\r\n", 2);
	return 0;
}

static int
is_mbox_from_line(const char *s, size_t n)
{
	if (n < 5 || memcmp(s, "From ", 5) != 0)
		return 0;
	size_t i = 5;
	while (i < n && (s[i] == ' ' || s[i] == '\t'))
		i++;
	return i == n || s[i] != ':';
}

int
inject_prepare(const char *in, size_t len, const struct inject_opts *o,
	       struct inject_out *out, char *err, size_t errlen)
{
	struct prep st;
	memset(&st, 0, sizeof(st));
	memset(out, 0, sizeof(*out));
	st.o = o;
	struct lines it = {in, in + len, o->dot_ends};
	const char *s;
	size_t n;
	int in_headers = 1, first = 1;
	while (next_line(&it, &s, &n)) {
		/* An mbox "From " envelope line in front (git format-patch,
		 * a saved message) is not a header: drop it, as Postfix's
		 * sendmail does, so the real headers are read. "From :"
		 * is the obsolete form of a From: field, kept. */
		if (first && is_mbox_from_line(s, n)) {
			first = 0;
			continue;
		}
		first = 0;
		if (in_headers) {
			in_headers = header_line(&st, s, n);
		} else {
			strbuf_add(&st.out, s, n);
			strbuf_add(&st.out, "\r\n", 2);
		}
	}
	if (in_headers)
		end_headers(&st);
	free(st.field);
	free(st.value.s);

	out->data = st.out.s;
	out->len = st.out.len;
	out->has_from = st.has_from;
	out->has_date = st.has_date;
	out->has_message_id = st.has_message_id;
	struct rcpt_set *use = st.has_resent ? &st.resent : &st.to;
	int rc = 0;
	if (use->bad) {
		set_err(err, errlen, "%s", use->err);
		rc = -1;
	} else {
		out->rcpts = use->v;
		out->nrcpt = use->n;
		use->v = NULL;
		use->n = 0;
	}
	rcpt_set_free(&st.to);
	rcpt_set_free(&st.resent);
	return rc;
}

void
inject_out_free(struct inject_out *out)
{
	free(out->data);
	for (size_t i = 0; i < out->nrcpt; i++)
		free(out->rcpts[i]);
	free(out->rcpts);
	memset(out, 0, sizeof(*out));
}
