/* The routes file: patterns, channels, next hops, the default routing of
 * SPEC §5, pipe argv splitting and substitution, and malformed lines. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "deliver/routes.h"
#include "tests/unit/check.h"

static struct smalt_conf *
make_conf(const char *extra)
{
	char err[512];
	char *text = xasprintf("hostname = mx.example.org\n%s", extra);
	struct smalt_conf *c = conf_parse_buffer("t.conf", text, strlen(text),
						 NULL, 0, err, sizeof(err));
	if (c == NULL)
		fprintf(stderr, "%s\n", err);
	free(text);
	return c;
}

static struct routes *
parse(const char *text, char *err, size_t errlen)
{
	return routes_parse_buffer("routes", text, strlen(text), err, errlen);
}

static void
test_defaults(void)
{
	struct smalt_conf *c = make_conf("");
	CHECK(routes_lookup(NULL, c, "localhost")->channel == CHANNEL_LOCAL);
	CHECK(routes_lookup(NULL, c, "MX.Example.ORG.")->channel ==
	      CHANNEL_LOCAL);
	CHECK(routes_lookup(NULL, c, "example.net")->channel == CHANNEL_SMTP);
	CHECK(routes_lookup(NULL, c, "")->channel == CHANNEL_LOCAL);
	conf_free(c);
	c = make_conf("relayhost = [smtp.example.net]:587\n");
	CHECK(routes_lookup(NULL, c, "example.net")->channel == CHANNEL_RELAY);
	CHECK(routes_lookup(NULL, c, "localhost")->channel == CHANNEL_LOCAL);
	conf_free(c);
}

static void
test_matching(void)
{
	char err[512];
	struct smalt_conf *c = make_conf("");
	struct routes *r =
	    parse("# channel table\n"
		  "Example.COM   relay:[10.0.0.1]:2525\n"
		  ".example.com  smtp:[mx.inner.example]\n"
		  "lists.example.org  pipe:/usr/bin/list \"arg with space\" "
		  "%r %s 100%%\n"
		  "bad.example   error:no such domain here\n"
		  "localhost     smtp\n"
		  "*             relay\n"
		  "example.com   local\n",
		  err, sizeof(err));
	CHECK(r != NULL);
	if (r == NULL) {
		fprintf(stderr, "%s\n", err);
		conf_free(c);
		return;
	}
	CHECK(r->n == 7);
	const struct route *x = routes_lookup(r, c, "EXAMPLE.com");
	CHECK(x->channel == CHANNEL_RELAY && x->line == 2);
	CHECK_STR(x->nexthop.host, "10.0.0.1");
	CHECK(x->nexthop.port == 2525 && x->nexthop.is_literal);
	/* .domain: subdomains only; the first match wins over "*" */
	x = routes_lookup(r, c, "a.b.example.com");
	CHECK(x->channel == CHANNEL_SMTP && x->line == 3);
	CHECK_STR(x->nexthop.host, "mx.inner.example");
	x = routes_lookup(r, c, "lists.example.org");
	CHECK(x->channel == CHANNEL_PIPE);
	CHECK_STR(x->argv[0], "/usr/bin/list");
	CHECK_STR(x->argv[1], "arg with space");
	CHECK(x->argv[5] == NULL);
	char **argv = route_pipe_argv(x, "alice@example.net", "list@lists");
	CHECK_STR(argv[2], "list@lists");
	CHECK_STR(argv[3], "alice@example.net");
	CHECK_STR(argv[4], "100%");
	route_argv_free(argv);
	x = routes_lookup(r, c, "bad.example");
	CHECK(x->channel == CHANNEL_ERROR);
	CHECK_STR(x->text, "no such domain here");
	/* a route overrides the local_domains default */
	CHECK(routes_lookup(r, c, "localhost")->channel == CHANNEL_SMTP);
	x = routes_lookup(r, c, "anything.example.net");
	CHECK(x->channel == CHANNEL_RELAY && x->line == 7);
	CHECK_STR(x->nexthop.host, "");
	CHECK_STR(channel_name(CHANNEL_PIPE), "pipe");
	routes_free(r);
	conf_free(c);
}

static void
test_errors(void)
{
	static const struct {
		const char *text, *want;
	} bad[] = {
	    {"example.com\n", "routes:1: "},
	    {"example.com nosuch\n", "routes:1: unknown channel"},
	    {"ok.example local\nbad..example local\n", "routes:2: bad pattern"},
	    {"-x.example local\n", "routes:1: bad pattern"},
	    {"example.com local:host\n", "routes:1: unknown channel"},
	    {"example.com pipe:\n", "routes:1: pipe: needs a command"},
	    {"example.com pipe:relative/cmd\n", "routes:1: pipe: the command"},
	    {"example.com pipe:/bin/x \"open\n", "routes:1: unterminated"},
	    {"example.com error:\n", "routes:1: unknown channel"},
	    {"example.com relay:[::1\n", "routes:1: relay: "},
	    {"example.com smtp:host:99999\n", "routes:1: smtp: "},
	    {"example.com local\x00x\n", "routes:1: "},
	};
	for (size_t i = 0; i < SMALT_NELEM(bad); i++) {
		char err[512] = "";
		size_t len = strlen(bad[i].text);
		if (i == SMALT_NELEM(bad) - 1)
			len = 20;
		struct routes *r = routes_parse_buffer("routes", bad[i].text,
						       len, err, sizeof(err));
		int ok = r == NULL &&
			 strncmp(err, bad[i].want, strlen(bad[i].want)) == 0;
		if (!ok)
			fprintf(stderr, "case %zu: %s\n", i, err);
		CHECK(ok);
		routes_free(r);
	}
	char err[512];
	CHECK(routes_open("/nonexistent/routes", err, sizeof(err)) == NULL);
	CHECK(strstr(err, "/nonexistent/routes") != NULL);
}

int
main(void)
{
	test_defaults();
	test_matching();
	test_errors();
	return check_done();
}
