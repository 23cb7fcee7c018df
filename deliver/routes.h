/* The routes file, MMDF's channel table (SPEC §5): which channel and
 * next hop take mail for a recipient domain. It is read when needed and
 * consulted at delivery time, never stored in envelopes, so a fixed file
 * applies to mail already queued. */
#ifndef SMALT_ROUTES_H
#define SMALT_ROUTES_H

#include <stddef.h>

#include "conf/conf.h"

enum channel_kind {
	CHANNEL_LOCAL,
	CHANNEL_SMTP,  /* MX lookup, then A/AAAA; or the given next hop */
	CHANNEL_RELAY, /* the smarthost, or the given [host]:port; no MX */
	CHANNEL_PIPE,  /* a command, message on stdin */
	CHANNEL_ERROR  /* bounce with the given text */
};

struct route {
	char *pattern; /* "example.com", ".example.com" or "*"; lower case */
	enum channel_kind channel;
	/* smtp and relay: the next hop when given (host empty otherwise);
	 * is_literal when written in brackets (no MX lookup); port 0 when
	 * the line gives none. */
	struct conf_hostport nexthop;
	char **argv;   /* pipe: the command, NULL-terminated */
	char *text;    /* error: the bounce text */
	unsigned line; /* in the routes file; 0 for a default route */
};

struct routes {
	char *name;
	size_t n;
	struct route *v; /* file order: the first match wins */
};

/* Parses a routes file. NULL with err "file:line: reason" (errno ENOENT
 * for a missing file). */
struct routes *routes_open(const char *path, char *err, size_t errlen);
struct routes *routes_parse_buffer(const char *name, const char *text,
				   size_t len, char *err, size_t errlen);
void routes_free(struct routes *r);

/* The route for a recipient domain (any case, trailing dot ignored): the
 * first matching line of r (which may be NULL), else the default of SPEC
 * §5: local_domains go to local, everything else to relay when relayhost
 * is set, else to smtp. The result lives as long as r. */
const struct route *routes_lookup(const struct routes *r,
				  const struct smalt_conf *conf,
				  const char *domain);

const char *channel_name(enum channel_kind c);

/* A pipe route's argv for one delivery: "%s" becomes the sender, "%r"
 * the recipient, "%%" a percent sign. NULL-terminated, malloc'd; free
 * with route_argv_free. */
char **route_pipe_argv(const struct route *r, const char *sender,
		       const char *rcpt);
void route_argv_free(char **argv);

#endif
