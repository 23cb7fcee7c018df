/* smalt.conf in three passes: read "key = value" lines into raw texts
 * (last one wins), expand $name references once every key is known (so
 * the order of lines does not matter), then convert each text by its
 * key's type and check the keys that constrain each other. Nothing here
 * exits or logs: every problem comes back as "file:line: reason". */
#include "conf/conf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/strbuf.h"
#include "common/util.h"

/* Longest physical line, and longest value after joining continuation
 * lines or expanding $name: far beyond any sane setting, small enough
 * that a hostile file cannot make us build huge strings. */
#define CONF_LINE_MAX  65536
#define CONF_VALUE_MAX 65536
#define CONF_FILE_MAX  (4 * 1024 * 1024)
/* Durations and counts stay below INT_MAX so that callers may add them to
 * a time_t or store them in an int without overflow. */
#define CONF_NUM_MAX INT_MAX

enum conf_type {
	CT_STRING,
	CT_LIST,
	CT_DURATION,
	CT_SIZE,
	CT_UINT,
	CT_PORT,
	CT_ENUM,
	CT_HOSTPORTS,
	CT_RELAYHOST,
	CT_RESOLVER,
	CT_CIDRS
};

/* Checks on a string value, beyond its type. */
#define KF_REQUIRED 0x01 /* must not be empty */
#define KF_ABSOLUTE 0x02 /* a path that must start with "/" when set */
#define KF_RELATIVE 0x04 /* a path under the user's home */
#define KF_HOSTNAME 0x08 /* letters, digits, "-", "_", "." */
#define KF_WORD	    0x10 /* no white space or control characters */

struct conf_key {
	const char *name;
	enum conf_type type;
	/* Built-in default as config text; NULL for hostname, which comes
	 * from the system. */
	const char *def;
	size_t offset;
	int flags;
	unsigned min;		  /* lower bound for numbers */
	uint16_t port;		  /* default port for host:port values */
	const char *const *names; /* CT_ENUM: index = enum value */
};

static const char *const relay_tls_names[] = {"encrypt", "smtps", "may", "none",
					      NULL};
static const char *const smtp_tls_names[] = {"may", "encrypt", "none", NULL};
static const char *const spf_names[] = {"off", "tag", "reject", NULL};
static const char *const bare_newline_names[] = {"normalize", "reject", NULL};
static const char *const log_names[] = {"syslog", "stderr", NULL};

#define F(field)	    offsetof(struct smalt_conf, field)
#define KEY(n, t, d, field) .name = n, .type = t, .def = d, .offset = F(field)

/* In the order of SPEC §3's table: conf_print follows it. */
static const struct conf_key keys[] = {
    {KEY("hostname", CT_STRING, NULL, hostname),
     .flags = KF_REQUIRED | KF_HOSTNAME},
    {KEY("local_domains", CT_LIST, "$hostname, localhost", local_domains)},
    {KEY("listen", CT_HOSTPORTS, "127.0.0.1:25, [::1]:25", listen), .port = 25},
    {KEY("submission_listen", CT_HOSTPORTS, "", submission_listen),
     .port = 587},
    {KEY("smtps_listen", CT_HOSTPORTS, "", smtps_listen), .port = 465},
    {KEY("relay_networks", CT_CIDRS, "127.0.0.0/8, ::1/128", relay_networks)},
    {KEY("spool_dir", CT_STRING, "/var/spool/smalt", spool_dir),
     .flags = KF_REQUIRED | KF_ABSOLUTE},
    {KEY("user", CT_STRING, "smalt", user), .flags = KF_REQUIRED | KF_WORD},
    {KEY("mail_spool_directory", CT_STRING, "/var/mail", mail_spool_directory),
     .flags = KF_REQUIRED | KF_ABSOLUTE},
    {KEY("home_mailbox", CT_STRING, "", home_mailbox), .flags = KF_RELATIVE},
    {KEY("aliases", CT_STRING, "/etc/aliases", aliases), .flags = KF_ABSOLUTE},
    {KEY("virtual_mailboxes", CT_STRING, "", virtual_mailboxes),
     .flags = KF_ABSOLUTE},
    {KEY("routes", CT_STRING, "", routes), .flags = KF_ABSOLUTE},
    {KEY("relayhost", CT_RELAYHOST, "", relayhost), .port = 25},
    {KEY("relayhost_auth_file", CT_STRING, "", relayhost_auth_file),
     .flags = KF_ABSOLUTE},
    {KEY("relayhost_tls", CT_ENUM, "encrypt", relayhost_tls),
     .names = relay_tls_names},
    {KEY("smtp_port", CT_PORT, "25", smtp_port)},
    {KEY("smtp_tls", CT_ENUM, "may", smtp_tls), .names = smtp_tls_names},
    {KEY("tls_cert", CT_STRING, "", tls_cert), .flags = KF_ABSOLUTE},
    {KEY("tls_key", CT_STRING, "", tls_key), .flags = KF_ABSOLUTE},
    {KEY("tls_ca_file", CT_STRING, "/etc/ssl/certs/ca-certificates.crt",
	 tls_ca_file),
     .flags = KF_ABSOLUTE},
    {KEY("auth_users", CT_STRING, "", auth_users), .flags = KF_ABSOLUTE},
    {KEY("resolver", CT_RESOLVER, "", resolver), .port = 53},
    {KEY("spf", CT_ENUM, "tag", spf), .names = spf_names},
    {KEY("max_message_size", CT_SIZE, "35m", max_message_size), .min = 1},
    {KEY("max_recipients", CT_UINT, "1000", max_recipients), .min = 1},
    {KEY("max_connections", CT_UINT, "500", max_connections), .min = 1},
    {KEY("max_connections_per_ip", CT_UINT, "20", max_connections_per_ip),
     .min = 1},
    {KEY("smtpd_timeout", CT_DURATION, "300s", smtpd_timeout), .min = 1},
    {KEY("bare_newline", CT_ENUM, "normalize", bare_newline),
     .names = bare_newline_names},
    /* A zero backoff would retry in a busy loop. */
    {KEY("retry_min", CT_DURATION, "5m", retry_min), .min = 1},
    {KEY("retry_max", CT_DURATION, "1h", retry_max), .min = 1},
    {KEY("host_retry_min", CT_DURATION, "1m", host_retry_min), .min = 1},
    {KEY("host_retry_max", CT_DURATION, "30m", host_retry_max), .min = 1},
    {KEY("queue_lifetime", CT_DURATION, "5d", queue_lifetime)},
    {KEY("delay_warning", CT_DURATION, "4h", delay_warning)},
    /* 0 holds all mail in the queue (an extension, for maintenance). */
    {KEY("delivery_concurrency", CT_UINT, "20", delivery_concurrency)},
    {KEY("destination_concurrency", CT_UINT, "4", destination_concurrency),
     .min = 1},
    {KEY("log", CT_ENUM, "syslog", log), .names = log_names},
    /* Extensions beyond SPEC §3, after its keys: limits SPEC names
     * without giving them a key. */
    {KEY("smtpd_error_limit", CT_UINT, "10", smtpd_error_limit), .min = 1},
    {KEY("smtpd_greet_pause", CT_DURATION, "1s", smtpd_greet_pause)},
};

#define NKEYS SMALT_NELEM(keys)

/* Enum fields are written and read as int through memcpy. */
_Static_assert(sizeof(enum conf_tls_relay) == sizeof(int), "enum size");
_Static_assert(sizeof(enum conf_tls_smtp) == sizeof(int), "enum size");
_Static_assert(sizeof(enum conf_spf) == sizeof(int), "enum size");
_Static_assert(sizeof(enum conf_bare_newline) == sizeof(int), "enum size");
_Static_assert(sizeof(enum conf_log) == sizeof(int), "enum size");

/* ---- small string helpers ---- */

static const char *
sbuf_str(const struct strbuf *b)
{
	return b->s ? b->s : "";
}

static int
is_name_char(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '_';
}

static int
find_key(const char *name, size_t len)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (strlen(keys[i].name) == len &&
		    memcmp(keys[i].name, name, len) == 0)
			return (int)i;
	return -1;
}

/* ---- value parsers ---- */

enum digits { DIGITS_OK, DIGITS_NONE, DIGITS_TOO_LARGE };

/* Digits only, no sign or space, stopping at the first non-digit. */
static enum digits
parse_digits(const char **sp, uint64_t max, uint64_t *out)
{
	const char *s = *sp;
	uint64_t v = 0;
	*out = 0;
	if (*s < '0' || *s > '9')
		return DIGITS_NONE;
	for (; *s >= '0' && *s <= '9'; s++) {
		unsigned d = (unsigned)(*s - '0');
		if (v > (max - d) / 10)
			return DIGITS_TOO_LARGE;
		v = v * 10 + d;
	}
	*sp = s;
	*out = v;
	return DIGITS_OK;
}

/* Multiplies by a unit, failing beyond max. */
static int
scale(uint64_t *v, uint64_t unit, uint64_t max)
{
	if (*v > max / unit)
		return -1;
	*v *= unit;
	return 0;
}

int
conf_parse_duration(const char *s, unsigned *out, char *err, size_t errlen)
{
	const char *p = s;
	uint64_t v;
	enum digits d = parse_digits(&p, UINT64_MAX, &v);
	if (d == DIGITS_TOO_LARGE)
		goto too_large;
	if (d == DIGITS_NONE)
		goto bad;
	uint64_t unit = 1;
	switch (*p) {
	case '\0':
		break;
	case 's':
	case 'S':
		p++;
		break;
	case 'm':
	case 'M':
		unit = 60, p++;
		break;
	case 'h':
	case 'H':
		unit = 3600, p++;
		break;
	case 'd':
	case 'D':
		unit = 86400, p++;
		break;
	default:
		goto bad;
	}
	if (*p != '\0')
		goto bad;
	if (scale(&v, unit, CONF_NUM_MAX) != 0)
		goto too_large;
	*out = (unsigned)v;
	return 0;
bad:
	set_err(err, errlen, "bad duration \"%.100s\"", s);
	return -1;
too_large:
	set_err(err, errlen, "duration \"%.100s\" is too large", s);
	return -1;
}

int
conf_parse_size(const char *s, uint64_t *out, char *err, size_t errlen)
{
	const char *p = s;
	uint64_t v;
	enum digits d = parse_digits(&p, INT64_MAX, &v);
	if (d == DIGITS_TOO_LARGE)
		goto too_large;
	if (d == DIGITS_NONE)
		goto bad;
	uint64_t unit = 1;
	switch (*p) {
	case '\0':
		break;
	case 'k':
	case 'K':
		unit = 1024, p++;
		break;
	case 'm':
	case 'M':
		unit = 1024 * 1024, p++;
		break;
	case 'g':
	case 'G':
		unit = 1024 * 1024 * 1024, p++;
		break;
	default:
		goto bad;
	}
	if (*p != '\0')
		goto bad;
	/* INT64_MAX keeps sizes comparable with off_t. */
	if (scale(&v, unit, INT64_MAX) != 0)
		goto too_large;
	*out = v;
	return 0;
bad:
	set_err(err, errlen, "bad size \"%.100s\"", s);
	return -1;
too_large:
	set_err(err, errlen, "size \"%.100s\" is too large", s);
	return -1;
}

static int
parse_uint(const char *s, unsigned *out, char *err, size_t errlen)
{
	const char *p = s;
	uint64_t v;
	enum digits d = parse_digits(&p, CONF_NUM_MAX, &v);
	if (d == DIGITS_TOO_LARGE) {
		set_err(err, errlen, "number \"%.100s\" is too large", s);
		return -1;
	}
	if (d == DIGITS_NONE || *p != '\0') {
		set_err(err, errlen, "bad number \"%.100s\"", s);
		return -1;
	}
	*out = (unsigned)v;
	return 0;
}

/* 1..65535, digits only. */
static int
parse_port(const char *s, size_t len, uint16_t *out)
{
	uint64_t v = 0;
	if (len == 0 || len > 5)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v < 1 || v > 65535)
		return -1;
	*out = (uint16_t)v;
	return 0;
}

/* Host names and address literals only: nothing that could smuggle
 * separators, quotes or shell characters into later use. ":" and "%"
 * (IPv6 and its zone) only inside brackets or in a bare IPv6 address. */
static int
valid_host(const char *s, size_t len, int literal)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '-' ||
		    c == '_' || c == '*')
			continue;
		if (literal && (c == ':' || c == '%'))
			continue;
		return 0;
	}
	return 1;
}

static int
is_ipv6_text(const char *s, size_t len)
{
	char buf[INET6_ADDRSTRLEN + 1];
	struct in6_addr a;
	if (len >= sizeof(buf))
		return 0;
	memcpy(buf, s, len);
	buf[len] = '\0';
	return inet_pton(AF_INET6, buf, &a) == 1;
}

int
conf_parse_hostport(const char *s, uint16_t default_port,
		    struct conf_hostport *out, char *err, size_t errlen)
{
	const char *host = s, *port = NULL;
	size_t hlen;
	int literal = 0;
	out->host = NULL;
	out->port = default_port;
	out->is_literal = 0;
	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (close == NULL) {
			set_err(err, errlen, "missing \"]\" in \"%.100s\"", s);
			return -1;
		}
		host = s + 1;
		hlen = (size_t)(close - host);
		literal = 1;
		if (close[1] == ':')
			port = close + 2;
		else if (close[1] != '\0')
			goto bad;
	} else {
		const char *colon = strchr(s, ':');
		hlen = strlen(s);
		if (colon != NULL && strchr(colon + 1, ':') != NULL) {
			/* A bare IPv6 address: a port needs brackets. It is
			 * an address literal all the same (no MX lookup). */
			if (!is_ipv6_text(s, hlen))
				goto bad;
			literal = 1;
		} else if (colon != NULL) {
			hlen = (size_t)(colon - s);
			port = colon + 1;
		}
	}
	if (hlen == 0) {
		set_err(err, errlen, "missing host in \"%.100s\"", s);
		return -1;
	}
	if (!valid_host(host, hlen, literal))
		goto bad;
	if (port != NULL && parse_port(port, strlen(port), &out->port) != 0) {
		set_err(err, errlen, "bad port in \"%.100s\"", s);
		return -1;
	}
	out->host = xstrndup(host, hlen);
	out->is_literal = literal;
	return 0;
bad:
	set_err(err, errlen, "bad host:port \"%.100s\"", s);
	return -1;
}

/* Clears the bits past the prefix so that matching is a plain compare
 * and printing shows the network. */
static void
mask_host_bits(uint8_t *addr, unsigned prefix, unsigned bits)
{
	for (unsigned i = 0; i < bits / 8; i++) {
		unsigned start = i * 8;
		if (prefix >= start + 8)
			continue;
		if (prefix <= start)
			addr[i] = 0;
		else
			addr[i] &= (uint8_t)(0xff << (8 - (prefix - start)));
	}
}

int
conf_parse_cidr(const char *s, struct conf_cidr *out, char *err, size_t errlen)
{
	char addr[INET6_ADDRSTRLEN + 1];
	const char *a = s, *slash;
	size_t alen;
	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (close == NULL || (close[1] != '\0' && close[1] != '/'))
			goto bad;
		a = s + 1;
		alen = (size_t)(close - a);
		slash = close[1] == '/' ? close + 1 : NULL;
	} else {
		slash = strchr(s, '/');
		alen = slash ? (size_t)(slash - s) : strlen(s);
	}
	if (alen == 0 || alen >= sizeof(addr))
		goto bad;
	memcpy(addr, a, alen);
	addr[alen] = '\0';
	memset(out, 0, sizeof(*out));
	unsigned bits;
	if (inet_pton(AF_INET, addr, out->addr) == 1) {
		out->family = AF_INET;
		bits = 32;
	} else if (inet_pton(AF_INET6, addr, out->addr) == 1) {
		out->family = AF_INET6;
		bits = 128;
	} else {
		goto bad;
	}
	out->prefix = bits;
	if (slash != NULL) {
		const char *p = slash + 1;
		uint64_t v;
		if (parse_digits(&p, 1000, &v) != DIGITS_OK || *p != '\0' ||
		    v > bits) {
			set_err(err, errlen, "bad prefix length in \"%.100s\"",
				s);
			return -1;
		}
		out->prefix = (unsigned)v;
	}
	mask_host_bits(out->addr, out->prefix, bits);
	return 0;
bad:
	set_err(err, errlen, "bad network \"%.100s\"", s);
	return -1;
}

/* ---- lists ---- */

static int
is_list_sep(int c)
{
	return c == ',' || text_is_blank(c);
}

/* Calls fn for each item of a comma- or space-separated list; stops at
 * the first failure. */
static int
for_each_item(const char *s, int (*fn)(const char *item, void *arg), void *arg)
{
	while (*s != '\0') {
		while (*s != '\0' && is_list_sep((unsigned char)*s))
			s++;
		const char *start = s;
		while (*s != '\0' && !is_list_sep((unsigned char)*s))
			s++;
		if (s == start)
			break;
		char *item = xstrndup(start, (size_t)(s - start));
		int rc = fn(item, arg);
		free(item);
		if (rc != 0)
			return rc;
	}
	return 0;
}

static int
add_list_item(const char *item, void *arg)
{
	struct conf_list *l = arg;
	l->v = xrealloc(l->v, (l->n + 1) * sizeof(*l->v));
	l->v[l->n++] = xstrdup(item);
	return 0;
}

struct hostports_ctx {
	struct conf_hostports *hp;
	uint16_t port;
	int numeric; /* resolver: IP addresses only */
	char *why;
	size_t whylen;
};

static int
is_ip_text(const char *s)
{
	uint8_t a[16];
	return inet_pton(AF_INET, s, a) == 1 || inet_pton(AF_INET6, s, a) == 1;
}

static int
add_hostport_item(const char *item, void *arg)
{
	struct hostports_ctx *ctx = arg;
	struct conf_hostport h;
	if (conf_parse_hostport(item, ctx->port, &h, ctx->why, ctx->whylen) !=
	    0)
		return -1;
	if (ctx->numeric && !is_ip_text(h.host)) {
		set_err(ctx->why, ctx->whylen,
			"\"%.100s\" is not a numeric IP address", item);
		free(h.host);
		return -1;
	}
	struct conf_hostports *hp = ctx->hp;
	hp->v = xrealloc(hp->v, (hp->n + 1) * sizeof(*hp->v));
	hp->v[hp->n++] = h;
	return 0;
}

struct cidrs_ctx {
	struct conf_cidrs *c;
	char *why;
	size_t whylen;
};

static int
add_cidr_item(const char *item, void *arg)
{
	struct cidrs_ctx *ctx = arg;
	struct conf_cidr c;
	if (conf_parse_cidr(item, &c, ctx->why, ctx->whylen) != 0)
		return -1;
	ctx->c->v = xrealloc(ctx->c->v, (ctx->c->n + 1) * sizeof(c));
	ctx->c->v[ctx->c->n++] = c;
	return 0;
}

static int
count_item(const char *item, void *arg)
{
	(void)item;
	(*(size_t *)arg)++;
	return 0;
}

/* ---- the parser state ---- */

enum expand_state { EXP_TODO, EXP_BUSY, EXP_DONE };

struct raw_value {
	char *text; /* as written; NULL until set or defaulted */
	char *expanded;
	enum expand_state state;
	unsigned line;	      /* 0: not from the file */
	const char *override; /* the -o argument that set it */
	unsigned seq;	      /* order of setting, for picking a culprit */
};

struct parser {
	const char *name; /* NULL: no file */
	struct raw_value v[NKEYS];
	unsigned seq;
	char *err;
	size_t errlen;
};

static const char *
parser_name(const struct parser *p)
{
	return p->name ? p->name : "(config)";
}

/* Where key i got its value, as a message prefix. */
static void
format_origin(const struct parser *p, size_t i, char *buf, size_t len)
{
	const struct raw_value *rv = &p->v[i];
	if (rv->override != NULL)
		snprintf(buf, len, "-o %.200s: ", rv->override);
	else if (rv->line > 0)
		snprintf(buf, len, "%s:%u: ", parser_name(p), rv->line);
	else if (p->name != NULL)
		snprintf(buf, len, "%s: ", p->name);
	else
		buf[0] = '\0';
}

static void
vreport(struct parser *p, size_t i, int with_key, const char *fmt, va_list ap)
{
	char origin[300], reason[CONF_ERRLEN];
	vsnprintf(reason, sizeof(reason), fmt, ap);
	format_origin(p, i, origin, sizeof(origin));
	/* An -o argument already shows the key. */
	if (with_key && p->v[i].override == NULL)
		set_err(p->err, p->errlen, "%s%s: %s", origin, keys[i].name,
			reason);
	else
		set_err(p->err, p->errlen, "%s%s", origin, reason);
}

/* An error about the value of key i: "file:line: key: reason". */
static void key_error(struct parser *p, size_t i, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
key_error(struct parser *p, size_t i, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vreport(p, i, 1, fmt, ap);
	va_end(ap);
}

/* An error between two keys, reported where the later one was set; the
 * reason names both keys. */
static void pair_error(struct parser *p, size_t i, size_t j, const char *fmt,
		       ...) __attribute__((format(printf, 4, 5)));

static void
pair_error(struct parser *p, size_t i, size_t j, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vreport(p, p->v[j].seq > p->v[i].seq ? j : i, 0, fmt, ap);
	va_end(ap);
}

static void
set_raw(struct parser *p, size_t i, const char *s, size_t len, unsigned line,
	const char *override)
{
	struct raw_value *rv = &p->v[i];
	free(rv->text);
	rv->text = xstrndup(s, len);
	rv->line = line;
	rv->override = override;
	rv->seq = ++p->seq;
}

static void
parser_free(struct parser *p)
{
	for (size_t i = 0; i < NKEYS; i++) {
		free(p->v[i].text);
		free(p->v[i].expanded);
	}
}

/* ---- pass 1: lines ---- */

/* One logical line, continuation lines already joined. */
static int
take_setting(struct parser *p, const char *s, size_t len, unsigned line)
{
	const char *end = s + len;
	const char *eq = memchr(s, '=', len);
	if (eq == NULL) {
		set_err(p->err, p->errlen,
			"%s:%u: missing \"=\" (expected \"key = value\")",
			parser_name(p), line);
		return -1;
	}
	const char *ks = s, *ke = eq, *vs = eq + 1, *ve = end;
	text_trim(&ks, &ke);
	text_trim(&vs, &ve);
	if (ks == ke) {
		set_err(p->err, p->errlen, "%s:%u: missing key before \"=\"",
			parser_name(p), line);
		return -1;
	}
	int i = find_key(ks, (size_t)(ke - ks));
	if (i < 0) {
		int n = ke - ks > 100 ? 100 : (int)(ke - ks);
		set_err(p->err, p->errlen, "%s:%u: unknown key \"%.*s\"",
			parser_name(p), line, n, ks);
		return -1;
	}
	if (ve - vs > CONF_VALUE_MAX) {
		set_err(p->err, p->errlen,
			"%s:%u: %s: value longer than 65536 bytes",
			parser_name(p), line, keys[i].name);
		return -1;
	}
	set_raw(p, (size_t)i, vs, (size_t)(ve - vs), line, NULL);
	return 0;
}

static int
line_error(struct parser *p, unsigned line, const char *reason)
{
	set_err(p->err, p->errlen, "%s:%u: %s", parser_name(p), line, reason);
	return -1;
}

static int
parse_text(struct parser *p, const char *text, size_t len)
{
	struct strbuf logical = {0};
	unsigned line = 0, start = 0;
	int have = 0, rc = 0;
	const char *s = text, *end = text + len;
	while (rc == 0 && s < end) {
		const char *nl = memchr(s, '\n', (size_t)(end - s));
		const char *e = nl ? nl : end;
		const char *next = nl ? nl + 1 : end;
		line++;
		if (memchr(s, '\0', (size_t)(e - s)) != NULL) {
			rc = line_error(p, line, "NUL byte in line");
			break;
		}
		if (e - s > CONF_LINE_MAX) {
			rc =
			    line_error(p, line, "line longer than 65536 bytes");
			break;
		}
		const char *ts = s, *te = e;
		text_trim(&ts, &te);
		if (ts == te || *ts == '#') {
			/* Blank and comment lines do not end a value:
			 * continuation lines may follow them. */
		} else if (ts != s) {
			if (!have) {
				rc = line_error(p, line,
						"continuation line (starts "
						"with white space) without a "
						"\"key = value\" line before");
				break;
			}
			strbuf_add(&logical, " ", 1);
			strbuf_add(&logical, ts, (size_t)(te - ts));
			if (logical.len > CONF_VALUE_MAX + CONF_LINE_MAX) {
				rc = line_error(p, start,
						"value longer than 65536 "
						"bytes");
				break;
			}
		} else {
			if (have)
				rc = take_setting(p, logical.s, logical.len,
						  start);
			logical.len = 0;
			strbuf_add(&logical, ts, (size_t)(te - ts));
			start = line;
			have = 1;
		}
		s = next;
	}
	if (rc == 0 && have)
		rc = take_setting(p, logical.s, logical.len, start);
	free(logical.s);
	return rc;
}

static int
apply_override(struct parser *p, const char *arg)
{
	const char *eq = strchr(arg, '=');
	if (eq == NULL) {
		set_err(p->err, p->errlen, "-o %.200s: expected key=value",
			arg);
		return -1;
	}
	if (strpbrk(arg, "\n") != NULL) {
		set_err(p->err, p->errlen, "-o %.200s: line break in value",
			arg);
		return -1;
	}
	const char *ks = arg, *ke = eq, *vs = eq + 1, *ve = eq + strlen(eq);
	text_trim(&ks, &ke);
	text_trim(&vs, &ve);
	int i = find_key(ks, (size_t)(ke - ks));
	if (i < 0) {
		int n = ke - ks > 100 ? 100 : (int)(ke - ks);
		set_err(p->err, p->errlen, "-o %.200s: unknown key \"%.*s\"",
			arg, n, ks);
		return -1;
	}
	if (ve - vs > CONF_VALUE_MAX) {
		set_err(p->err, p->errlen,
			"-o %.200s: value longer than 65536 bytes", arg);
		return -1;
	}
	set_raw(p, (size_t)i, vs, (size_t)(ve - vs), 0, arg);
	return 0;
}

/* ---- the system's host name ---- */

/* Asked once per process: the resolver may be slow, and the name does
 * not change under a running daemon. */
static char *
system_hostname(void)
{
	static char *cached;
	if (cached != NULL)
		return cached;
	char name[256];
	if (gethostname(name, sizeof(name)) != 0 || name[0] == '\0')
		smalt_strlcpy(name, "localhost", sizeof(name));
	name[sizeof(name) - 1] = '\0';
	cached = xstrdup(name);
	if (strchr(name, '.') == NULL) {
		struct addrinfo hints = {.ai_flags = AI_CANONNAME};
		struct addrinfo *res = NULL;
		if (getaddrinfo(name, NULL, &hints, &res) == 0 && res != NULL &&
		    res->ai_canonname != NULL &&
		    strchr(res->ai_canonname, '.') != NULL) {
			free(cached);
			cached = xstrdup(res->ai_canonname);
		}
		if (res != NULL)
			freeaddrinfo(res);
	}
	return cached;
}

/* "$" in a value is a reference, so a literal one is written "$$". */
static void
add_escaped(struct strbuf *b, const char *s)
{
	for (const char *d; (d = strchr(s, '$')) != NULL; s = d + 1) {
		strbuf_add(b, s, (size_t)(d - s));
		strbuf_add(b, "$$", 2);
	}
	strbuf_adds(b, s);
}

static void
fill_defaults(struct parser *p)
{
	for (size_t i = 0; i < NKEYS; i++) {
		struct raw_value *rv = &p->v[i];
		if (rv->text != NULL)
			continue;
		if (keys[i].def != NULL) {
			rv->text = xstrdup(keys[i].def);
		} else {
			struct strbuf b = {0};
			add_escaped(&b, system_hostname());
			rv->text = b.s ? b.s : xstrdup("");
		}
	}
}

/* ---- pass 2: $name expansion ---- */

static int expand_key(struct parser *p, size_t i, size_t top);

/* Reads the name after "$" at *sp: $name, ${name} or $(name). */
static int
ref_name(const char **sp, const char **name, size_t *len)
{
	const char *s = *sp;
	char close = 0;
	if (*s == '{')
		close = '}';
	else if (*s == '(')
		close = ')';
	if (close)
		s++;
	const char *start = s;
	while (is_name_char((unsigned char)*s))
		s++;
	if (s == start || (close && *s != close))
		return -1;
	*name = start;
	*len = (size_t)(s - start);
	*sp = close ? s + 1 : s;
	return 0;
}

/* Errors go to the key that holds the bad text; a built-in default never
 * does, so then the top-level key the user set is the one to blame. */
static size_t
culprit(const struct parser *p, size_t i, size_t top)
{
	const struct raw_value *rv = &p->v[i];
	return rv->line > 0 || rv->override != NULL ? i : top;
}

static int
expand_text(struct parser *p, size_t i, size_t top, struct strbuf *out)
{
	const char *s = p->v[i].text;
	while (*s != '\0') {
		const char *d = strchr(s, '$');
		if (d == NULL) {
			strbuf_adds(out, s);
			break;
		}
		strbuf_add(out, s, (size_t)(d - s));
		s = d + 1;
		if (*s == '$') {
			strbuf_add(out, "$", 1);
			s++;
			continue;
		}
		const char *name;
		size_t len;
		if (ref_name(&s, &name, &len) != 0) {
			key_error(p, culprit(p, i, top),
				  "bad \"$\" reference (write \"$$\" for a "
				  "literal \"$\")");
			return -1;
		}
		int ref = find_key(name, len);
		if (ref < 0) {
			key_error(p, culprit(p, i, top),
				  "reference to unknown key \"$%.*s\"",
				  len > 100 ? 100 : (int)len, name);
			return -1;
		}
		if (p->v[ref].state == EXP_BUSY) {
			key_error(p, culprit(p, i, top),
				  "recursive reference \"$%s\"",
				  keys[ref].name);
			return -1;
		}
		if (expand_key(p, (size_t)ref, top) != 0)
			return -1;
		strbuf_adds(out, p->v[ref].expanded);
		if (out->len > CONF_VALUE_MAX) {
			key_error(p, culprit(p, i, top),
				  "value longer than 65536 bytes after \"$\" "
				  "expansion");
			return -1;
		}
	}
	return 0;
}

/* Each key is expanded once and remembered, so a chain of references
 * costs linear time; a key met again while busy is a cycle. The cycle
 * check bounds the depth by the number of keys. */
static int
expand_key(struct parser *p, size_t i, size_t top)
{
	struct raw_value *rv = &p->v[i];
	if (rv->state == EXP_DONE)
		return 0;
	rv->state = EXP_BUSY;
	struct strbuf out = {0};
	if (expand_text(p, i, top, &out) != 0) {
		free(out.s);
		return -1;
	}
	/* "$empty x" must mean "x", as the value reads after a print. */
	const char *vs = sbuf_str(&out), *ve = vs + out.len;
	text_trim(&vs, &ve);
	rv->expanded = xstrndup(vs, (size_t)(ve - vs));
	free(out.s);
	rv->state = EXP_DONE;
	return 0;
}

/* Keys in the order they were set, then the defaults, so that of several
 * bad lines the first one in the file is reported (a default can only be
 * wrong through a key it refers to). */
static void
order_by_setting(const struct parser *p, size_t *order)
{
	for (size_t i = 0; i < NKEYS; i++) {
		unsigned rank = p->v[i].seq ? p->v[i].seq : UINT_MAX;
		size_t j = i;
		for (; j > 0; j--) {
			unsigned prev = p->v[order[j - 1]].seq;
			if ((prev ? prev : UINT_MAX) <= rank)
				break;
			order[j] = order[j - 1];
		}
		order[j] = i;
	}
}

/* ---- pass 3: typed values ---- */

static void *
field(struct smalt_conf *c, size_t i)
{
	return (char *)c + keys[i].offset;
}

static const void *
cfield(const struct smalt_conf *c, size_t i)
{
	return (const char *)c + keys[i].offset;
}

static int
valid_hostname(const char *s)
{
	size_t len = strlen(s);
	if (len == 0 || len > 253 || s[0] == '.' || s[0] == '-' ||
	    strstr(s, "..") != NULL)
		return 0;
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		if (!is_name_char(c) && c != '-' && c != '.')
			return 0;
	}
	return 1;
}

static int
has_blank_or_control(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s <= ' ' || *s == 0x7f)
			return 1;
	return 0;
}

static int
check_string(struct parser *p, size_t i, const char *v)
{
	int flags = keys[i].flags;
	if ((flags & KF_REQUIRED) && v[0] == '\0') {
		key_error(p, i, "must not be empty");
		return -1;
	}
	if ((flags & KF_ABSOLUTE) && v[0] != '\0' && v[0] != '/') {
		key_error(p, i, "must be an absolute path, not \"%.100s\"", v);
		return -1;
	}
	if ((flags & KF_RELATIVE) && v[0] == '/') {
		key_error(p, i,
			  "must be a path relative to the home directory, not "
			  "\"%.100s\"",
			  v);
		return -1;
	}
	if ((flags & KF_HOSTNAME) && !valid_hostname(v)) {
		int from_system = keys[i].def == NULL && p->v[i].line == 0 &&
				  p->v[i].override == NULL;
		key_error(p, i, "bad host name \"%.100s\"%s", v,
			  from_system ? " (the system's name: set hostname)"
				      : "");
		return -1;
	}
	if ((flags & KF_WORD) && has_blank_or_control(v)) {
		key_error(p, i, "bad value \"%.100s\"", v);
		return -1;
	}
	return 0;
}

static int
convert_enum(struct parser *p, size_t i, const char *v, int *out)
{
	const char *const *names = keys[i].names;
	for (int n = 0; names[n] != NULL; n++) {
		if (ascii_strcasecmp(names[n], v) == 0) {
			*out = n;
			return 0;
		}
	}
	struct strbuf want = {0};
	for (int n = 0; names[n] != NULL; n++) {
		if (n > 0)
			strbuf_adds(&want, names[n + 1] ? ", " : " or ");
		strbuf_adds(&want, names[n]);
	}
	key_error(p, i, "bad value \"%.100s\" (expected %s)", v,
		  sbuf_str(&want));
	free(want.s);
	return -1;
}

static int
convert_relayhost(struct parser *p, size_t i, const char *v,
		  struct conf_hostport *out, char *why, size_t whylen)
{
	size_t n = 0;
	for_each_item(v, count_item, &n);
	if (n == 0) {
		out->host = xstrdup("");
		out->port = keys[i].port;
		out->is_literal = 0;
		return 0;
	}
	if (n > 1) {
		key_error(p, i, "takes one host, not a list: \"%.100s\"", v);
		return -1;
	}
	const char *s = v, *e = v + strlen(v);
	/* One item: trim the separators around it. */
	while (s < e && is_list_sep((unsigned char)*s))
		s++;
	while (e > s && is_list_sep((unsigned char)e[-1]))
		e--;
	char *item = xstrndup(s, (size_t)(e - s));
	int rc = conf_parse_hostport(item, keys[i].port, out, why, whylen);
	free(item);
	if (rc != 0) {
		key_error(p, i, "%s", why);
		return -1;
	}
	return 0;
}

static int
convert_key(struct parser *p, size_t i, struct smalt_conf *c)
{
	const char *v = p->v[i].expanded;
	void *f = field(c, i);
	char why[CONF_ERRLEN];
	switch (keys[i].type) {
	case CT_STRING:
		*(char **)f = xstrdup(v);
		return check_string(p, i, v);
	case CT_LIST:
		return for_each_item(v, add_list_item, f);
	case CT_DURATION:
	case CT_UINT: {
		unsigned n;
		int rc = keys[i].type == CT_DURATION
			     ? conf_parse_duration(v, &n, why, sizeof(why))
			     : parse_uint(v, &n, why, sizeof(why));
		if (rc != 0)
			break;
		if (n < keys[i].min) {
			key_error(p, i, "must not be 0");
			return -1;
		}
		*(unsigned *)f = n;
		return 0;
	}
	case CT_SIZE: {
		uint64_t n;
		if (conf_parse_size(v, &n, why, sizeof(why)) != 0)
			break;
		if (n < keys[i].min) {
			key_error(p, i, "must not be 0");
			return -1;
		}
		*(uint64_t *)f = n;
		return 0;
	}
	case CT_PORT:
		if (parse_port(v, strlen(v), (uint16_t *)f) != 0) {
			snprintf(why, sizeof(why), "bad port \"%.100s\"", v);
			break;
		}
		return 0;
	case CT_ENUM: {
		int n;
		if (convert_enum(p, i, v, &n) != 0)
			return -1;
		memcpy(f, &n, sizeof(n));
		return 0;
	}
	case CT_HOSTPORTS:
	case CT_RESOLVER: {
		struct hostports_ctx ctx = {f, keys[i].port,
					    keys[i].type == CT_RESOLVER, why,
					    sizeof(why)};
		if (for_each_item(v, add_hostport_item, &ctx) != 0)
			break;
		return 0;
	}
	case CT_RELAYHOST:
		return convert_relayhost(p, i, v, f, why, sizeof(why));
	case CT_CIDRS: {
		struct cidrs_ctx ctx = {f, why, sizeof(why)};
		if (for_each_item(v, add_cidr_item, &ctx) != 0)
			break;
		return 0;
	}
	}
	key_error(p, i, "%s", why);
	return -1;
}

static size_t
key_index(const char *name)
{
	int i = find_key(name, strlen(name));
	return (size_t)i;
}

static void format_duration(struct strbuf *b, unsigned v);

static int
check_order(struct parser *p, const struct smalt_conf *c, const char *lo,
	    const char *hi)
{
	size_t i = key_index(lo), j = key_index(hi);
	unsigned a = *(const unsigned *)cfield(c, i);
	unsigned b = *(const unsigned *)cfield(c, j);
	if (a <= b)
		return 0;
	struct strbuf ta = {0}, tb = {0};
	format_duration(&ta, a);
	format_duration(&tb, b);
	pair_error(p, i, j, "%s (%s) must not be greater than %s (%s)", lo,
		   ta.s, hi, tb.s);
	free(ta.s);
	free(tb.s);
	return -1;
}

static int
validate(struct parser *p, const struct smalt_conf *c)
{
	if (check_order(p, c, "retry_min", "retry_max") != 0 ||
	    check_order(p, c, "host_retry_min", "host_retry_max") != 0)
		return -1;
	/* SPEC §9: the greeting is held back at most 1 s. */
	if (c->smtpd_greet_pause > 1) {
		key_error(p, key_index("smtpd_greet_pause"),
			  "at most 1s (the greeting may be held back 1 s)");
		return -1;
	}
	size_t cert = key_index("tls_cert"), key = key_index("tls_key");
	if ((c->tls_cert[0] == '\0') != (c->tls_key[0] == '\0')) {
		pair_error(p, cert, key,
			   "tls_cert and tls_key must be set together");
		return -1;
	}
	/* Implicit TLS cannot start without a certificate. */
	if (c->smtps_listen.n > 0 && c->tls_cert[0] == '\0') {
		pair_error(p, key_index("smtps_listen"), cert,
			   "smtps_listen needs tls_cert and tls_key");
		return -1;
	}
	return 0;
}

/* ---- public entry points ---- */

struct smalt_conf *
conf_parse_buffer(const char *name, const char *text, size_t len,
		  char *const *overrides, size_t n_overrides, char *err,
		  size_t errlen)
{
	struct parser p = {.name = name, .err = err, .errlen = errlen};
	struct smalt_conf *c = NULL;
	set_err(err, errlen, "%s", "");
	if (text == NULL) {
		text = "";
		len = 0;
	}
	int rc = parse_text(&p, text, len);
	for (size_t i = 0; rc == 0 && i < n_overrides; i++)
		if (overrides[i] != NULL)
			rc = apply_override(&p, overrides[i]);
	if (rc == 0) {
		size_t order[NKEYS];
		fill_defaults(&p);
		order_by_setting(&p, order);
		c = xcalloc(1, sizeof(*c));
		for (size_t n = 0; rc == 0 && n < NKEYS; n++) {
			rc = expand_key(&p, order[n], order[n]);
			if (rc == 0)
				rc = convert_key(&p, order[n], c);
		}
		if (rc == 0)
			rc = validate(&p, c);
		if (rc != 0) {
			conf_free(c);
			c = NULL;
		} else if (name != NULL) {
			c->source = xstrdup(name);
		}
	}
	parser_free(&p);
	return c;
}

struct smalt_conf *
conf_load(const char *path, char *const *overrides, size_t n_overrides,
	  char *err, size_t errlen)
{
	const char *file = path ? path : CONF_DEFAULT_FILE;
	char *buf = NULL;
	size_t len = 0;
	int rc = read_whole_file(file, CONF_FILE_MAX, &buf, &len);
	if (rc == ENOENT && path == NULL)
		return conf_parse_buffer(NULL, "", 0, overrides, n_overrides,
					 err, errlen);
	if (rc == EFBIG) {
		set_err(err, errlen, "%s: file too large (more than %d bytes)",
			file, CONF_FILE_MAX);
		return NULL;
	}
	if (rc != 0) {
		set_err(err, errlen, "%s: %s", file, strerror(rc));
		return NULL;
	}
	struct smalt_conf *c = conf_parse_buffer(file, buf, len, overrides,
						 n_overrides, err, errlen);
	free(buf);
	return c;
}

static void
free_hostports(struct conf_hostports *hp)
{
	for (size_t j = 0; j < hp->n; j++)
		free(hp->v[j].host);
	free(hp->v);
}

void
conf_free(struct smalt_conf *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < NKEYS; i++) {
		void *f = field(c, i);
		switch (keys[i].type) {
		case CT_STRING:
			free(*(char **)f);
			break;
		case CT_LIST: {
			struct conf_list *l = f;
			for (size_t j = 0; j < l->n; j++)
				free(l->v[j]);
			free(l->v);
			break;
		}
		case CT_HOSTPORTS:
		case CT_RESOLVER:
			free_hostports(f);
			break;
		case CT_RELAYHOST:
			free(((struct conf_hostport *)f)->host);
			break;
		case CT_CIDRS:
			free(((struct conf_cidrs *)f)->v);
			break;
		default:
			break;
		}
	}
	free(c->source);
	free(c);
}

/* ---- printing ---- */

/* The largest unit that divides exactly, so "300s" prints as "5m". */
static void
format_duration(struct strbuf *b, unsigned v)
{
	static const struct {
		unsigned secs;
		char suffix;
	} units[] = {{86400, 'd'}, {3600, 'h'}, {60, 'm'}};
	if (v == 0) {
		strbuf_adds(b, "0");
		return;
	}
	for (size_t i = 0; i < SMALT_NELEM(units); i++) {
		if (v % units[i].secs == 0) {
			strbuf_addf(b, "%u%c", v / units[i].secs,
				    units[i].suffix);
			return;
		}
	}
	strbuf_addf(b, "%us", v);
}

static void
format_size(struct strbuf *b, uint64_t v)
{
	static const struct {
		uint64_t bytes;
		char suffix;
	} units[] = {
	    {1024 * 1024 * 1024, 'g'}, {1024 * 1024, 'm'}, {1024, 'k'}};
	for (size_t i = 0; v != 0 && i < SMALT_NELEM(units); i++) {
		if (v % units[i].bytes == 0) {
			strbuf_addf(b, "%llu%c",
				    (unsigned long long)(v / units[i].bytes),
				    units[i].suffix);
			return;
		}
	}
	strbuf_addf(b, "%llu", (unsigned long long)v);
}

static void
format_hostport(struct strbuf *b, const struct conf_hostport *h)
{
	if (h->host == NULL || h->host[0] == '\0')
		return;
	if (h->is_literal || strchr(h->host, ':') != NULL) {
		strbuf_adds(b, "[");
		strbuf_adds(b, h->host);
		strbuf_adds(b, "]");
	} else {
		strbuf_adds(b, h->host);
	}
	strbuf_addf(b, ":%u", (unsigned)h->port);
}

static void
format_cidr(struct strbuf *b, const struct conf_cidr *c)
{
	char text[INET6_ADDRSTRLEN];
	if (inet_ntop(c->family, c->addr, text, sizeof(text)) == NULL)
		smalt_strlcpy(text, "?", sizeof(text));
	strbuf_addf(b, "%s/%u", text, c->prefix);
}

static void
format_value(const struct smalt_conf *c, size_t i, struct strbuf *b)
{
	const void *f = cfield(c, i);
	switch (keys[i].type) {
	case CT_STRING: {
		const char *s = *(char *const *)f;
		add_escaped(b, s ? s : "");
		break;
	}
	case CT_LIST: {
		const struct conf_list *l = f;
		for (size_t j = 0; j < l->n; j++) {
			if (j > 0)
				strbuf_adds(b, ", ");
			add_escaped(b, l->v[j]);
		}
		break;
	}
	case CT_DURATION:
		format_duration(b, *(const unsigned *)f);
		break;
	case CT_UINT:
		strbuf_addf(b, "%u", *(const unsigned *)f);
		break;
	case CT_SIZE:
		format_size(b, *(const uint64_t *)f);
		break;
	case CT_PORT:
		strbuf_addf(b, "%u", (unsigned)*(const uint16_t *)f);
		break;
	case CT_ENUM: {
		int n;
		memcpy(&n, f, sizeof(n));
		size_t count = 0;
		while (keys[i].names[count] != NULL)
			count++;
		if (n >= 0 && (size_t)n < count)
			strbuf_adds(b, keys[i].names[n]);
		break;
	}
	case CT_HOSTPORTS:
	case CT_RESOLVER: {
		const struct conf_hostports *hp = f;
		for (size_t j = 0; j < hp->n; j++) {
			if (j > 0)
				strbuf_adds(b, ", ");
			format_hostport(b, &hp->v[j]);
		}
		break;
	}
	case CT_RELAYHOST:
		format_hostport(b, f);
		break;
	case CT_CIDRS: {
		const struct conf_cidrs *cs = f;
		for (size_t j = 0; j < cs->n; j++) {
			if (j > 0)
				strbuf_adds(b, ", ");
			format_cidr(b, &cs->v[j]);
		}
		break;
	}
	}
}

void
conf_print(const struct smalt_conf *c, FILE *out)
{
	for (size_t i = 0; i < NKEYS; i++) {
		struct strbuf b = {0};
		format_value(c, i, &b);
		if (b.len > 0)
			fprintf(out, "%s = %s\n", keys[i].name, b.s);
		else
			fprintf(out, "%s =\n", keys[i].name);
		free(b.s);
	}
}

/* ---- lookups ---- */

static int
prefix_match(const uint8_t *addr, const uint8_t *net, unsigned prefix)
{
	unsigned bytes = prefix / 8, bits = prefix % 8;
	if (memcmp(addr, net, bytes) != 0)
		return 0;
	if (bits == 0)
		return 1;
	uint8_t mask = (uint8_t)(0xff << (8 - bits));
	return (addr[bytes] & mask) == (net[bytes] & mask);
}

int
conf_cidrs_match(const struct conf_cidrs *cidrs, const struct sockaddr *sa)
{
	uint8_t v4[4], v6[16];
	int has4 = 0, has6 = 0;
	if (cidrs == NULL || sa == NULL)
		return 0;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;
		memcpy(v4, &in->sin_addr, 4);
		has4 = 1;
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)sa;
		/* A v4-mapped address is an IPv4 client on a dual-stack
		 * socket: it matches IPv4 prefixes only, as in Postfix, so
		 * "::/0" never opens the relay to all of IPv4. */
		if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
			memcpy(v4, in6->sin6_addr.s6_addr + 12, 4);
			has4 = 1;
		} else {
			memcpy(v6, in6->sin6_addr.s6_addr, 16);
			has6 = 1;
		}
	}
	for (size_t i = 0; i < cidrs->n; i++) {
		const struct conf_cidr *c = &cidrs->v[i];
		if (c->family == AF_INET && has4 &&
		    prefix_match(v4, c->addr, c->prefix))
			return 1;
		if (c->family == AF_INET6 && has6 &&
		    prefix_match(v6, c->addr, c->prefix))
			return 1;
	}
	return 0;
}

static size_t
len_without_dot(const char *s)
{
	size_t len = strlen(s);
	return len > 0 && s[len - 1] == '.' ? len - 1 : len;
}

int
conf_is_local_domain(const struct smalt_conf *conf, const char *domain)
{
	if (conf == NULL || domain == NULL)
		return 0;
	size_t len = len_without_dot(domain);
	if (len == 0)
		return 0;
	const struct conf_list *l = &conf->local_domains;
	for (size_t i = 0; i < l->n; i++)
		if (len_without_dot(l->v[i]) == len &&
		    ascii_strncasecmp(l->v[i], domain, len) == 0)
			return 1;
	return 0;
}
