#include "deliver/routes.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/addr.h"
#include "common/strbuf.h"
#include "common/util.h"
#include "conf/table.h"

#define ROUTE_ARGV_MAX 64

static const char *const channel_names[] = {
    [CHANNEL_LOCAL] = "local", [CHANNEL_SMTP] = "smtp",
    [CHANNEL_RELAY] = "relay", [CHANNEL_PIPE] = "pipe",
    [CHANNEL_ERROR] = "error",
};

const char *
channel_name(enum channel_kind c)
{
	return (unsigned)c < SMALT_NELEM(channel_names) ? channel_names[c]
							: "?";
}

void
route_argv_free(char **argv)
{
	if (argv == NULL)
		return;
	for (char **a = argv; *a != NULL; a++)
		free(*a);
	free(argv);
}

static void
route_clear(struct route *r)
{
	free(r->pattern);
	free(r->nexthop.host);
	route_argv_free(r->argv);
	free(r->text);
}

void
routes_free(struct routes *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->n; i++)
		route_clear(&r->v[i]);
	free(r->v);
	free(r->name);
	free(r);
}

/* SPEC §9: the rest of the line, split on white space, with double
 * quotes around an argument that holds spaces. */
static char **
split_command(const char *s, const char **why)
{
	char **argv = xcalloc(ROUTE_ARGV_MAX + 1, sizeof(*argv));
	size_t n = 0;
	for (;;) {
		while (*s == ' ' || *s == '\t')
			s++;
		if (*s == '\0')
			break;
		if (n == ROUTE_ARGV_MAX) {
			*why = "too many arguments";
			goto fail;
		}
		struct strbuf arg = {0};
		strbuf_add(&arg, "", 0);
		while (*s != '\0' && *s != ' ' && *s != '\t') {
			if (*s != '"') {
				strbuf_add(&arg, s++, 1);
				continue;
			}
			const char *end = strchr(s + 1, '"');
			if (end == NULL) {
				free(arg.s);
				*why = "unterminated quote in the command";
				goto fail;
			}
			strbuf_add(&arg, s + 1, (size_t)(end - s - 1));
			s = end + 1;
		}
		argv[n++] = arg.s;
	}
	if (n == 0) {
		*why = "pipe: needs a command";
		goto fail;
	}
	if (argv[0][0] != '/') {
		*why = "pipe: the command needs an absolute path";
		goto fail;
	}
	return argv;
fail:
	route_argv_free(argv);
	return NULL;
}

static int
check_pattern(const char *p, const char **why)
{
	if (strcmp(p, "*") == 0)
		return 0;
	const char *d = p[0] == '.' ? p + 1 : p;
	if (*d == '\0' || addr_check_domain(d, strlen(d), 0, why) != 0) {
		*why = "bad pattern: a domain, .domain or *";
		return -1;
	}
	return 0;
}

/* "smtp", "smtp:NEXTHOP", "relay:[host]:port", "local", "pipe:CMD",
 * "error:TEXT". */
static int
parse_channel(struct route *r, const char *v, char *err, size_t errlen)
{
	const char *colon = strchr(v, ':');
	size_t nlen = colon ? (size_t)(colon - v) : strlen(v);
	const char *rest = colon ? colon + 1 : NULL;
	const char *why = NULL;
	char herr[200];

	if (nlen == 5 && strncmp(v, "local", 5) == 0 && rest == NULL) {
		r->channel = CHANNEL_LOCAL;
	} else if ((nlen == 4 && strncmp(v, "smtp", 4) == 0) ||
		   (nlen == 5 && strncmp(v, "relay", 5) == 0)) {
		r->channel = nlen == 4 ? CHANNEL_SMTP : CHANNEL_RELAY;
		/* Port 0: not given; the channel picks (smtp_port for smtp,
		 * 25 for relay). */
		if (rest != NULL &&
		    conf_parse_hostport(rest, 0, &r->nexthop, herr,
					sizeof(herr)) != 0) {
			snprintf(err, errlen, "%.*s: %s", (int)nlen, v, herr);
			return -1;
		}
	} else if (nlen == 4 && strncmp(v, "pipe", 4) == 0 && rest != NULL) {
		r->channel = CHANNEL_PIPE;
		if ((r->argv = split_command(rest, &why)) == NULL) {
			snprintf(err, errlen, "%s", why);
			return -1;
		}
	} else if (nlen == 5 && strncmp(v, "error", 5) == 0 && rest != NULL &&
		   *rest != '\0') {
		r->channel = CHANNEL_ERROR;
		r->text = xstrdup(rest);
	} else {
		snprintf(err, errlen,
			 "unknown channel \"%.*s\" (local, smtp[:nexthop], "
			 "relay[:nexthop], pipe:COMMAND, error:TEXT)",
			 (int)(nlen > 40 ? 40 : nlen), v);
		return -1;
	}
	if (r->nexthop.host == NULL)
		r->nexthop.host = xstrdup("");
	return 0;
}

static struct routes *
routes_from_table(const struct table *t, char *err, size_t errlen)
{
	struct routes *r = xcalloc(1, sizeof(*r));
	r->name = xstrdup(t->name);
	r->v = xcalloc(t->n ? t->n : 1, sizeof(*r->v));
	for (size_t i = 0; i < t->n; i++) {
		const struct table_entry *e = &t->v[i];
		struct route *rt = &r->v[r->n];
		const char *why;
		char reason[300];
		memset(rt, 0, sizeof(*rt));
		rt->line = e->line;
		if (check_pattern(e->key, &why) != 0) {
			snprintf(err, errlen, "%s:%u: %s", t->name, e->line,
				 why);
			routes_free(r);
			return NULL;
		}
		if (parse_channel(rt, e->value, reason, sizeof(reason)) != 0) {
			route_clear(rt);
			snprintf(err, errlen, "%s:%u: %s", t->name, e->line,
				 reason);
			routes_free(r);
			return NULL;
		}
		rt->pattern = xstrdup(e->key);
		r->n++;
	}
	return r;
}

struct routes *
routes_parse_buffer(const char *name, const char *text, size_t len, char *err,
		    size_t errlen)
{
	struct table *t = table_parse_buffer(name, text, len, TABLE_SEP_SPACE,
					     TABLE_FOLD_CASE, err, errlen);
	if (t == NULL)
		return NULL;
	struct routes *r = routes_from_table(t, err, errlen);
	table_free(t);
	return r;
}

struct routes *
routes_open(const char *path, char *err, size_t errlen)
{
	struct table *t =
	    table_open(path, TABLE_SEP_SPACE, TABLE_FOLD_CASE, err, errlen);
	if (t == NULL)
		return NULL;
	struct routes *r = routes_from_table(t, err, errlen);
	table_free(t);
	if (r == NULL)
		errno = EINVAL;
	return r;
}

/* Does pattern match the (lower-case, dot-less) domain? */
static int
pattern_matches(const char *pattern, const char *domain, size_t dlen)
{
	if (strcmp(pattern, "*") == 0)
		return 1;
	size_t plen = strlen(pattern);
	if (pattern[0] == '.')
		/* ".example.com": subdomains only, as in Postfix. */
		return dlen > plen &&
		       memcmp(domain + dlen - plen, pattern, plen) == 0;
	return dlen == plen && memcmp(domain, pattern, plen) == 0;
}

const struct route *
routes_lookup(const struct routes *r, const struct smalt_conf *conf,
	      const char *domain)
{
	static struct route def_local = {.channel = CHANNEL_LOCAL,
					 .nexthop = {.host = (char *)""}};
	static struct route def_smtp = {.channel = CHANNEL_SMTP,
					.nexthop = {.host = (char *)""}};
	static struct route def_relay = {.channel = CHANNEL_RELAY,
					 .nexthop = {.host = (char *)""}};
	char d[ADDR_DOMAIN_MAX + 1];
	smalt_strlcpy(d, domain, sizeof(d));
	ascii_lower(d);
	size_t dlen = strlen(d);
	if (dlen > 0 && d[dlen - 1] == '.')
		d[--dlen] = '\0';
	for (size_t i = 0; r != NULL && i < r->n; i++)
		if (pattern_matches(r->v[i].pattern, d, dlen))
			return &r->v[i];
	if (dlen == 0 || conf_is_local_domain(conf, d))
		return &def_local;
	return conf->relayhost.host[0] != '\0' ? &def_relay : &def_smtp;
}

char **
route_pipe_argv(const struct route *r, const char *sender, const char *rcpt)
{
	size_t n = 0;
	while (r->argv[n] != NULL)
		n++;
	char **argv = xcalloc(n + 1, sizeof(*argv));
	for (size_t i = 0; i < n; i++) {
		struct strbuf b = {0};
		strbuf_add(&b, "", 0);
		for (const char *p = r->argv[i]; *p; p++) {
			if (p[0] == '%' && p[1] == 's') {
				strbuf_adds(&b, sender), p++;
			} else if (p[0] == '%' && p[1] == 'r') {
				strbuf_adds(&b, rcpt), p++;
			} else if (p[0] == '%' && p[1] == '%') {
				strbuf_add(&b, "%", 1), p++;
			} else {
				strbuf_add(&b, p, 1);
			}
		}
		argv[i] = b.s;
	}
	return argv;
}
