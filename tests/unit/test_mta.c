/* The smtp and relay channels' next hops and host cache keys
 * (deliver/mta.c), and the "wake" request smtpd hands the qmgr through
 * maildrop/ (queue/maildrop.c). The channels themselves run end to end in
 * tests/integration/test_relay.py. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common/util.h"
#include "conf/conf.h"
#include "deliver/mta.h"
#include "deliver/routes.h"
#include "queue/maildrop.h"

static struct smalt_conf *
conf_with(const char *text)
{
	char err[CONF_ERRLEN];
	struct smalt_conf *c = conf_parse_buffer("t.conf", text, strlen(text),
						 NULL, 0, err, sizeof(err));
	if (c == NULL)
		fprintf(stderr, "%s\n", err);
	return c;
}

/* The next hop of a recipient at domain under routes text (may be ""). */
static int
hop_of(const struct smalt_conf *conf, const char *routes, const char *domain,
       struct mta_nexthop *hop, const char **why)
{
	char err[CONF_ERRLEN];
	struct routes *r = routes_parse_buffer("routes", routes, strlen(routes),
					       err, sizeof(err));
	if (r == NULL) {
		fprintf(stderr, "%s\n", err);
		return -2;
	}
	const struct route *rt = routes_lookup(r, conf, domain);
	int rc = mta_nexthop(conf, rt, domain, hop, why);
	routes_free(r);
	return rc;
}

static void
test_nexthops(void)
{
	struct smalt_conf *c =
	    conf_with("hostname = h.example\nsmtp_port = 2525\n");
	struct mta_nexthop h;
	const char *why = NULL;
	/* smtp by default: MX of the recipient's domain, smtp_port, the
	 * domain as key in lower case. */
	CHECK(hop_of(c, "", "Example.ORG", &h, &why) == 0);
	CHECK(h.channel == CHANNEL_SMTP && h.mx && h.port == 2525);
	CHECK_STR(h.host, "example.org");
	CHECK_STR(h.name, "Example.ORG");
	/* smtp:NEXTHOP: MX of the next hop; a literal: no MX, its port or
	 * smtp_port. */
	CHECK(hop_of(c, "a.example smtp:Other.example\n", "a.example", &h,
		     &why) == 0);
	CHECK(h.mx && h.port == 2525);
	CHECK_STR(h.host, "other.example");
	CHECK(hop_of(c, "a.example smtp:[192.0.2.7]\n", "a.example", &h,
		     &why) == 0);
	CHECK(!h.mx && h.port == 2525);
	CHECK_STR(h.host, "[192.0.2.7]:2525");
	CHECK_STR(h.name, "192.0.2.7");
	CHECK(hop_of(c, "a.example smtp:[192.0.2.7]:26\n", "a.example", &h,
		     &why) == 0);
	CHECK_STR(h.host, "[192.0.2.7]:26");
	/* relay without a relayhost: a configuration error, with a reason. */
	CHECK(hop_of(c, "a.example relay\n", "a.example", &h, &why) == -1);
	CHECK(why != NULL && strstr(why, "relayhost") != NULL);
	/* relay:NEXTHOP: A/AAAA only, port 25 unless given. */
	CHECK(hop_of(c, "a.example relay:Smart.example\n", "a.example", &h,
		     &why) == 0);
	CHECK(h.channel == CHANNEL_RELAY && !h.mx && h.port == 25);
	CHECK_STR(h.host, "smart.example:25");
	CHECK(hop_of(c, "a.example relay:[2001:db8::1]:587\n", "a.example", &h,
		     &why) == 0);
	CHECK_STR(h.host, "[2001:db8::1]:587");
	CHECK_STR(h.name, "2001:db8::1");
	conf_free(c);

	/* relayhost set: every non-local domain goes to it. */
	c = conf_with(
	    "hostname = h.example\nrelayhost = [Smart.example]:587\n");
	CHECK(hop_of(c, "", "x.example", &h, &why) == 0);
	CHECK(h.channel == CHANNEL_RELAY && !h.mx && h.port == 587);
	CHECK_STR(h.host, "[smart.example]:587");
	CHECK_STR(h.name, "Smart.example");
	/* The AUTH credentials are relayhost's: its own next hop has them,
	 * whether by default or named again in a route; another relay next
	 * hop does not. */
	CHECK(h.is_relayhost);
	CHECK(hop_of(c, "p.example relay:[smart.EXAMPLE]:587\n", "p.example",
		     &h, &why) == 0 &&
	      h.is_relayhost);
	CHECK(hop_of(c, "p.example relay:[partner.example]:587\n", "p.example",
		     &h, &why) == 0 &&
	      !h.is_relayhost);
	CHECK(hop_of(c, "p.example relay:[smart.example]:25\n", "p.example", &h,
		     &why) == 0 &&
	      !h.is_relayhost);
	/* A domain too long for a key is refused, not cut. */
	char longdom[400];
	memset(longdom, 'a', sizeof(longdom) - 1);
	longdom[sizeof(longdom) - 1] = '\0';
	CHECK(hop_of(c, "* smtp\n", longdom, &h, &why) == -1);
	conf_free(c);
}

/* maildrop_parse on a copy; md then owns the copy (as maildrop_read
 * leaves it), so maildrop_file_free frees everything. */
static int
parse(const char *text, struct maildrop_file *md)
{
	const char *errstr;
	memset(md, 0, sizeof(*md));
	char *data = xstrdup(text);
	int rc = maildrop_parse(data, strlen(data), md, &errstr);
	md->data = data;
	return rc;
}

static void
test_wake_request(void)
{
	struct maildrop_file md;
	CHECK(parse("smalt-maildrop\t1\nrequest\twake\t192.0.2.1\n", &md) == 0);
	CHECK_STR(md.request, "wake");
	CHECK_STR(md.request_arg, "192.0.2.1");
	maildrop_file_free(&md);
	CHECK(parse("smalt-maildrop\t1\nrequest\twake\t2001:DB8::1\n", &md) ==
	      0);
	maildrop_file_free(&md);
	/* An address, nothing else. */
	static const char *const bad[] = {
	    "smalt-maildrop\t1\nrequest\twake\n",
	    "smalt-maildrop\t1\nrequest\twake\t\n",
	    "smalt-maildrop\t1\nrequest\twake\tmx.example\n",
	    "smalt-maildrop\t1\nrequest\twake\t192.0.2.1 x\n",
	    /* 48 digits: longer than any address. */
	    ("smalt-maildrop\t1\nrequest\twake\t111111111111111111111111"
	     "111111111111111111111111\n"),
	};
	for (size_t i = 0; i < SMALT_NELEM(bad); i++) {
		CHECK(parse(bad[i], &md) == -1);
		maildrop_file_free(&md);
	}
}

/* relayhost_auth_file's text. */
static void
test_auth_parse(void)
{
	char *u, *p;
	const char *t =
	    "# provider\n\n  me@example.org   s3cret pass \r\nx y\n";
	CHECK(mta_auth_parse(t, strlen(t), &u, &p) == 0);
	CHECK_STR(u, "me@example.org");
	CHECK_STR(p, "s3cret pass");
	free(u);
	free(p);
	/* No newline at the end; a tab between. */
	CHECK(mta_auth_parse("a\tb", 3, &u, &p) == 0);
	CHECK_STR(u, "a");
	CHECK_STR(p, "b");
	free(u);
	free(p);
	/* Malformed: nothing back. */
	static const char *const bad[] = {"", "\n\n", "# only\n", "user\n",
					  "user   \r\n"};
	for (size_t i = 0; i < SMALT_NELEM(bad); i++) {
		CHECK(mta_auth_parse(bad[i], strlen(bad[i]), &u, &p) == -1);
		CHECK(u == NULL && p == NULL);
	}
	CHECK(mta_auth_parse("u p\0q\n", 6, &u, &p) == -1);
}

int
main(void)
{
	test_nexthops();
	test_auth_parse();
	test_wake_request();
	return check_done();
}
