/* smalt.conf: defaults, every value type, syntax errors with their exact
 * "file:line: reason" text, $name expansion, -o overrides, conf_print
 * round trips, file loading, and the address and domain lookups. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/conf.h"
#include "tests/unit/check.h"

static char err[CONF_ERRLEN];

static struct smalt_conf *
parse(const char *text)
{
	return conf_parse_buffer("t.conf", text, strlen(text), NULL, 0, err,
				 sizeof(err));
}

static struct smalt_conf *
parse_o(const char *text, char *const *o, size_t n)
{
	return conf_parse_buffer("t.conf", text, strlen(text), o, n, err,
				 sizeof(err));
}

/* The text must be refused with exactly this message. */
#define CHECK_FAILS(text, msg)                                                 \
	do {                                                                   \
		struct smalt_conf *c_ = parse(text);                           \
		CHECK(c_ == NULL);                                             \
		conf_free(c_);                                                 \
		CHECK_STR(err, msg);                                           \
	} while (0)

static char *
print_to_string(const struct smalt_conf *c)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	conf_print(c, f);
	fclose(f);
	return buf;
}

static void
test_defaults(void)
{
	struct smalt_conf *c = parse("");
	CHECK(c != NULL);
	if (c == NULL)
		return;
	CHECK(c->hostname[0] != '\0');
	CHECK(c->local_domains.n == 2);
	CHECK_STR(c->local_domains.v[0], c->hostname);
	CHECK_STR(c->local_domains.v[1], "localhost");
	CHECK(c->listen.n == 2);
	CHECK_STR(c->listen.v[0].host, "127.0.0.1");
	CHECK(c->listen.v[0].port == 25);
	CHECK(c->listen.v[0].is_literal == 0);
	CHECK_STR(c->listen.v[1].host, "::1");
	CHECK(c->listen.v[1].port == 25);
	CHECK(c->listen.v[1].is_literal == 1);
	CHECK(c->submission_listen.n == 0);
	CHECK(c->smtps_listen.n == 0);
	CHECK(c->relay_networks.n == 2);
	CHECK(c->relay_networks.v[0].family == AF_INET);
	CHECK(c->relay_networks.v[0].prefix == 8);
	CHECK(c->relay_networks.v[0].addr[0] == 127);
	CHECK(c->relay_networks.v[1].family == AF_INET6);
	CHECK(c->relay_networks.v[1].prefix == 128);
	CHECK(c->relay_networks.v[1].addr[15] == 1);
	CHECK_STR(c->spool_dir, "/var/spool/smalt");
	CHECK_STR(c->user, "smalt");
	CHECK_STR(c->mail_spool_directory, "/var/mail");
	CHECK_STR(c->home_mailbox, "");
	CHECK_STR(c->aliases, "/etc/aliases");
	CHECK_STR(c->virtual_mailboxes, "");
	CHECK_STR(c->routes, "");
	CHECK_STR(c->relayhost.host, "");
	CHECK(c->relayhost.port == 25);
	CHECK(c->relayhost.is_literal == 0);
	CHECK_STR(c->relayhost_auth_file, "");
	CHECK(c->relayhost_tls == TLS_RELAY_ENCRYPT);
	CHECK(c->smtp_port == 25);
	CHECK(c->smtp_tls == TLS_SMTP_MAY);
	CHECK_STR(c->tls_cert, "");
	CHECK_STR(c->tls_key, "");
	CHECK_STR(c->tls_ca_file, "/etc/ssl/certs/ca-certificates.crt");
	CHECK_STR(c->auth_users, "");
	CHECK(c->resolver.n == 0);
	CHECK(c->spf == SPF_TAG);
	CHECK(c->max_message_size == 35u * 1024 * 1024);
	CHECK(c->max_recipients == 1000);
	CHECK(c->max_connections == 500);
	CHECK(c->max_connections_per_ip == 20);
	CHECK(c->smtpd_timeout == 300);
	CHECK(c->bare_newline == BARE_NEWLINE_NORMALIZE);
	CHECK(c->retry_min == 300);
	CHECK(c->retry_max == 3600);
	CHECK(c->host_retry_min == 60);
	CHECK(c->host_retry_max == 1800);
	CHECK(c->queue_lifetime == 5 * 86400);
	CHECK(c->delay_warning == 4 * 3600);
	CHECK(c->delivery_concurrency == 20);
	CHECK(c->destination_concurrency == 4);
	CHECK(c->log == CONF_LOG_SYSLOG);
	CHECK_STR(c->source, "t.conf");
	conf_free(c);

	/* No name: built-in defaults, no source. */
	c = conf_parse_buffer(NULL, NULL, 0, NULL, 0, err, sizeof(err));
	CHECK(c != NULL && c->source == NULL);
	conf_free(c);
}

static void
test_syntax(void)
{
	struct smalt_conf *c = parse("# comment\n"
				     "   # indented comment\n"
				     "\t# tab comment\n"
				     "\n"
				     "   \n"
				     "hostname = mx.example.org\n"
				     "local_domains = a.example,\n"
				     "    b.example\n"
				     "# a comment between continuation lines\n"
				     "\tc.example   d.example\n"
				     "user=mail\r\n"
				     "spool_dir    =     /srv/spool   \n"
				     "max_recipients = 10\n"
				     "max_recipients = 20\n"
				     "log = stderr");
	CHECK(c != NULL);
	if (c != NULL) {
		CHECK_STR(c->hostname, "mx.example.org");
		CHECK(c->local_domains.n == 4);
		if (c->local_domains.n == 4) {
			CHECK_STR(c->local_domains.v[0], "a.example");
			CHECK_STR(c->local_domains.v[1], "b.example");
			CHECK_STR(c->local_domains.v[2], "c.example");
			CHECK_STR(c->local_domains.v[3], "d.example");
		}
		CHECK_STR(c->user, "mail");
		CHECK_STR(c->spool_dir, "/srv/spool");
		/* Duplicate key: the last one wins. */
		CHECK(c->max_recipients == 20);
		CHECK(c->log == CONF_LOG_STDERR);
	}
	conf_free(c);

	/* A continuation of a string value joins with one space. */
	c = parse("home_mailbox = Mail\n  box/\n");
	CHECK(c != NULL && strcmp(c->home_mailbox, "Mail box/") == 0);
	conf_free(c);

	/* "=" may come on a continuation line, as in Postfix. */
	c = parse("user\n  = bob\n");
	CHECK(c != NULL && strcmp(c->user, "bob") == 0);
	conf_free(c);

	CHECK_FAILS("user = a\nmax_recipient = 5\n",
		    "t.conf:2: unknown key \"max_recipient\"");
	CHECK_FAILS("\n\nthis has no equals sign\n",
		    "t.conf:3: missing \"=\" (expected \"key = value\")");
	CHECK_FAILS("# x\n = value\n",
		    "t.conf:2: continuation line (starts with white space) "
		    "without a \"key = value\" line before");
	CHECK_FAILS("= value\n", "t.conf:1: missing key before \"=\"");
	CHECK_FAILS("Hostname = x\n", "t.conf:1: unknown key \"Hostname\"");

	/* A NUL byte, on line 2. */
	static const char nul[] = "user = a\nhost\0name = b\n";
	c = conf_parse_buffer("t.conf", nul, sizeof(nul) - 1, NULL, 0, err,
			      sizeof(err));
	CHECK(c == NULL);
	CHECK_STR(err, "t.conf:2: NUL byte in line");

	/* A physical line over 64 KiB. */
	size_t big = 70000;
	char *text = malloc(2 * big + 32);
	strcpy(text, "user = a\nhome_mailbox = ");
	size_t off = strlen(text);
	memset(text + off, 'x', big);
	text[off + big] = '\0';
	c = parse(text);
	CHECK(c == NULL);
	CHECK_STR(err, "t.conf:2: line longer than 65536 bytes");
	/* Many continuation lines, each short, past the value limit. */
	size_t pos = strlen("home_mailbox = x\n");
	memcpy(text, "home_mailbox = x\n", pos);
	while (pos + 10 < 2 * big) {
		memcpy(text + pos, "  xxxxxxx\n", 10);
		pos += 10;
	}
	text[pos] = '\0';
	c = parse(text);
	CHECK(c == NULL);
	CHECK(strstr(err, "t.conf:1: ") == err);
	CHECK(strstr(err, "longer than 65536 bytes") != NULL);
	free(text);
}

static void
test_durations(void)
{
	unsigned d;
	char why[200];
	CHECK(conf_parse_duration("0", &d, why, sizeof(why)) == 0 && d == 0);
	CHECK(conf_parse_duration("45", &d, why, sizeof(why)) == 0 && d == 45);
	CHECK(conf_parse_duration("45s", &d, why, sizeof(why)) == 0 && d == 45);
	CHECK(conf_parse_duration("5m", &d, why, sizeof(why)) == 0 && d == 300);
	CHECK(conf_parse_duration("2h", &d, why, sizeof(why)) == 0 &&
	      d == 7200);
	CHECK(conf_parse_duration("3d", &d, why, sizeof(why)) == 0 &&
	      d == 3 * 86400);
	CHECK(conf_parse_duration("-5", &d, why, sizeof(why)) == -1);
	CHECK_STR(why, "bad duration \"-5\"");
	CHECK(conf_parse_duration("", &d, why, sizeof(why)) == -1);
	CHECK(conf_parse_duration("5x", &d, why, sizeof(why)) == -1);
	CHECK(conf_parse_duration("5 m", &d, why, sizeof(why)) == -1);
	CHECK(conf_parse_duration("m", &d, why, sizeof(why)) == -1);
	CHECK(conf_parse_duration("5ms", &d, why, sizeof(why)) == -1);
	CHECK(conf_parse_duration("+5", &d, why, sizeof(why)) == -1);
	CHECK(conf_parse_duration("99999999999999999999999", &d, why,
				  sizeof(why)) == -1);
	CHECK_STR(why, "duration \"99999999999999999999999\" is too large");
	CHECK(conf_parse_duration("30000000d", &d, why, sizeof(why)) == -1);
	CHECK(conf_parse_duration("2147483647", &d, why, sizeof(why)) == 0);
	CHECK(conf_parse_duration("2147483648", &d, why, sizeof(why)) == -1);

	CHECK_FAILS("\n\nsmtpd_timeout = 5x\n",
		    "t.conf:3: smtpd_timeout: bad duration \"5x\"");
	CHECK_FAILS("smtpd_timeout = 0\n", "t.conf:1: smtpd_timeout: must not "
					   "be 0");
	struct smalt_conf *c = parse("delay_warning = 0\nqueue_lifetime = 0\n"
				     "smtpd_timeout = 90\n");
	CHECK(c != NULL && c->delay_warning == 0 && c->queue_lifetime == 0 &&
	      c->smtpd_timeout == 90);
	conf_free(c);
}

static void
test_sizes(void)
{
	uint64_t n;
	char why[200];
	CHECK(conf_parse_size("0", &n, why, sizeof(why)) == 0 && n == 0);
	CHECK(conf_parse_size("100", &n, why, sizeof(why)) == 0 && n == 100);
	CHECK(conf_parse_size("10k", &n, why, sizeof(why)) == 0 && n == 10240);
	CHECK(conf_parse_size("10K", &n, why, sizeof(why)) == 0 && n == 10240);
	CHECK(conf_parse_size("35m", &n, why, sizeof(why)) == 0 &&
	      n == 35ull << 20);
	CHECK(conf_parse_size("2G", &n, why, sizeof(why)) == 0 &&
	      n == 2ull << 30);
	CHECK(conf_parse_size("1.5m", &n, why, sizeof(why)) == -1);
	CHECK_STR(why, "bad size \"1.5m\"");
	CHECK(conf_parse_size("-1", &n, why, sizeof(why)) == -1);
	CHECK(conf_parse_size("10kb", &n, why, sizeof(why)) == -1);
	CHECK(conf_parse_size("10t", &n, why, sizeof(why)) == -1);
	CHECK(conf_parse_size("99999999999g", &n, why, sizeof(why)) == -1);
	CHECK_STR(why, "size \"99999999999g\" is too large");
	CHECK(conf_parse_size("99999999999999999999999", &n, why,
			      sizeof(why)) == -1);

	CHECK_FAILS("max_message_size = 10 m\n",
		    "t.conf:1: max_message_size: bad size \"10 m\"");
	CHECK_FAILS("max_message_size = 0\n",
		    "t.conf:1: max_message_size: must not be 0");
	struct smalt_conf *c = parse("max_message_size = 1g");
	CHECK(c != NULL && c->max_message_size == 1ull << 30);
	conf_free(c);
}

static void
test_numbers_and_enums(void)
{
	struct smalt_conf *c =
	    parse("max_recipients = 7\nmax_connections = 8\n"
		  "max_connections_per_ip = 9\ndelivery_concurrency = 10\n"
		  "destination_concurrency = 11\nsmtp_port = 2525\n"
		  "relayhost_tls = smtps\nsmtp_tls = ENCRYPT\nspf = reject\n"
		  "bare_newline = reject\nlog = stderr\n");
	CHECK(c != NULL);
	if (c != NULL) {
		CHECK(c->max_recipients == 7);
		CHECK(c->max_connections == 8);
		CHECK(c->max_connections_per_ip == 9);
		CHECK(c->delivery_concurrency == 10);
		CHECK(c->destination_concurrency == 11);
		CHECK(c->smtp_port == 2525);
		CHECK(c->relayhost_tls == TLS_RELAY_SMTPS);
		CHECK(c->smtp_tls == TLS_SMTP_ENCRYPT);
		CHECK(c->spf == SPF_REJECT);
		CHECK(c->bare_newline == BARE_NEWLINE_REJECT);
		CHECK(c->log == CONF_LOG_STDERR);
	}
	conf_free(c);
	c = parse("relayhost_tls = none\nsmtp_tls = none\nspf = off\n");
	CHECK(c != NULL && c->relayhost_tls == TLS_RELAY_NONE &&
	      c->smtp_tls == TLS_SMTP_NONE && c->spf == SPF_OFF);
	conf_free(c);
	c = parse("relayhost_tls = may\n");
	CHECK(c != NULL && c->relayhost_tls == TLS_RELAY_MAY);
	conf_free(c);

	CHECK_FAILS("max_recipients = 0\n",
		    "t.conf:1: max_recipients: must not be 0");
	CHECK_FAILS("max_connections = -1\n",
		    "t.conf:1: max_connections: bad number \"-1\"");
	CHECK_FAILS("max_connections = 12abc\n",
		    "t.conf:1: max_connections: bad number \"12abc\"");
	CHECK_FAILS("max_connections = 99999999999\n",
		    "t.conf:1: max_connections: number \"99999999999\" is too "
		    "large");
	CHECK_FAILS("destination_concurrency = 0\n",
		    "t.conf:1: destination_concurrency: must not be 0");
	CHECK_FAILS("smtp_port = 0\n", "t.conf:1: smtp_port: bad port \"0\"");
	CHECK_FAILS("smtp_port = 65536\n",
		    "t.conf:1: smtp_port: bad port \"65536\"");
	CHECK_FAILS("smtp_port = http\n",
		    "t.conf:1: smtp_port: bad port \"http\"");
	CHECK_FAILS("relayhost_tls = required\n",
		    "t.conf:1: relayhost_tls: bad value \"required\" (expected "
		    "encrypt, smtps, may or none)");
	CHECK_FAILS("smtp_tls = smtps\n",
		    "t.conf:1: smtp_tls: bad value \"smtps\" (expected may, "
		    "encrypt or none)");
	CHECK_FAILS("spf = on\n", "t.conf:1: spf: bad value \"on\" (expected "
				  "off, tag or reject)");
	CHECK_FAILS("bare_newline = keep\n",
		    "t.conf:1: bare_newline: bad value \"keep\" (expected "
		    "normalize or reject)");
	CHECK_FAILS("log = file\n", "t.conf:1: log: bad value \"file\" "
				    "(expected syslog or stderr)");
}

static void
test_strings(void)
{
	struct smalt_conf *c = parse(
	    "spool_dir = /tmp/q\nuser = nobody\nmail_spool_directory = /m\n"
	    "home_mailbox = Maildir/\naliases = /etc/mail/aliases\n"
	    "virtual_mailboxes = /etc/smalt/virtual\nroutes = /etc/smalt/r\n"
	    "relayhost_auth_file = /etc/smalt/auth\n"
	    "tls_cert = /c.pem\ntls_key = /k.pem\ntls_ca_file =\n"
	    "auth_users = /etc/smalt/users\naliases = \n");
	CHECK(c != NULL);
	if (c != NULL) {
		CHECK_STR(c->spool_dir, "/tmp/q");
		CHECK_STR(c->user, "nobody");
		CHECK_STR(c->mail_spool_directory, "/m");
		CHECK_STR(c->home_mailbox, "Maildir/");
		CHECK_STR(c->aliases, "");
		CHECK_STR(c->virtual_mailboxes, "/etc/smalt/virtual");
		CHECK_STR(c->routes, "/etc/smalt/r");
		CHECK_STR(c->relayhost_auth_file, "/etc/smalt/auth");
		CHECK_STR(c->tls_cert, "/c.pem");
		CHECK_STR(c->tls_key, "/k.pem");
		CHECK_STR(c->tls_ca_file, "");
		CHECK_STR(c->auth_users, "/etc/smalt/users");
	}
	conf_free(c);
	CHECK_FAILS("spool_dir = spool\n", "t.conf:1: spool_dir: must be an "
					   "absolute path, not \"spool\"");
	CHECK_FAILS("spool_dir =\n", "t.conf:1: spool_dir: must not be empty");
	CHECK_FAILS("routes = routes.txt\n",
		    "t.conf:1: routes: must be an absolute path, not "
		    "\"routes.txt\"");
	CHECK_FAILS("home_mailbox = /var/mail/x\n",
		    "t.conf:1: home_mailbox: must be a path relative to the "
		    "home directory, not \"/var/mail/x\"");
	CHECK_FAILS("user = a b\n", "t.conf:1: user: bad value \"a b\"");
	CHECK_FAILS("user =\n", "t.conf:1: user: must not be empty");
	CHECK_FAILS("hostname = bad host\n",
		    "t.conf:1: hostname: bad host name \"bad host\"");
	CHECK_FAILS("hostname = a..b\n",
		    "t.conf:1: hostname: bad host name \"a..b\"");
	CHECK_FAILS("hostname =\n", "t.conf:1: hostname: must not be empty");
	/* Of several bad lines, the first in the file is reported. */
	CHECK_FAILS("smtpd_timeout = x\nlisten = [\nuser = $x\n",
		    "t.conf:1: smtpd_timeout: bad duration \"x\"");
	CHECK_FAILS("routes = $x\nhostname = $y\n",
		    "t.conf:1: routes: reference to unknown key \"$x\"");
}

static void
test_hostports(void)
{
	struct conf_hostport h;
	char why[200];
	CHECK(conf_parse_hostport("mail.example.com:2525", 25, &h, why,
				  sizeof(why)) == 0);
	CHECK_STR(h.host, "mail.example.com");
	CHECK(h.port == 2525 && h.is_literal == 0);
	free(h.host);
	CHECK(conf_parse_hostport("[mail.example.com]", 25, &h, why,
				  sizeof(why)) == 0);
	CHECK_STR(h.host, "mail.example.com");
	CHECK(h.port == 25 && h.is_literal == 1);
	free(h.host);
	CHECK(conf_parse_hostport("[2001:db8::1]:587", 25, &h, why,
				  sizeof(why)) == 0);
	CHECK_STR(h.host, "2001:db8::1");
	CHECK(h.port == 587 && h.is_literal == 1);
	free(h.host);
	CHECK(conf_parse_hostport("2001:db8::53", 53, &h, why, sizeof(why)) ==
	      0);
	CHECK_STR(h.host, "2001:db8::53");
	CHECK(h.port == 53 && h.is_literal == 1);
	free(h.host);
	CHECK(conf_parse_hostport("host", 465, &h, why, sizeof(why)) == 0);
	CHECK_STR(h.host, "host");
	CHECK(h.port == 465);
	free(h.host);

	static const char *const bad[] = {
	    "",	      "host:",	  ":25",	 "[::1",   "[::1]x",
	    "[]:25",  "host:0",	  "host:65536",	 "host:x", "a b:25",
	    "h;x:25", "1:2:3:zz", "[::1]:25:26", "host:+5"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		h.host = (char *)"sentinel";
		int rc = conf_parse_hostport(bad[i], 25, &h, why, sizeof(why));
		CHECK(rc == -1);
		CHECK(h.host == NULL);
		if (rc == 0)
			free(h.host);
	}
	CHECK(conf_parse_hostport("host:0", 25, &h, why, sizeof(why)) == -1);
	CHECK_STR(why, "bad port in \"host:0\"");

	struct smalt_conf *c =
	    parse("listen = 0.0.0.0, [::]:2525 mx.example:26\n"
		  "submission_listen = 127.0.0.1\n"
		  "smtps_listen = [::1]\ntls_cert = /c\ntls_key = /k\n"
		  "relayhost = [smart.example]:587\n"
		  "resolver = 127.0.0.53, [2001:4860:4860::8888]:5353 ::1\n");
	CHECK(c != NULL);
	if (c != NULL) {
		CHECK(c->listen.n == 3);
		CHECK_STR(c->listen.v[0].host, "0.0.0.0");
		CHECK(c->listen.v[0].port == 25);
		CHECK_STR(c->listen.v[1].host, "::");
		CHECK(c->listen.v[1].port == 2525);
		CHECK_STR(c->listen.v[2].host, "mx.example");
		CHECK(c->listen.v[2].port == 26);
		CHECK(c->submission_listen.n == 1 &&
		      c->submission_listen.v[0].port == 587);
		CHECK(c->smtps_listen.n == 1 &&
		      c->smtps_listen.v[0].port == 465);
		CHECK_STR(c->relayhost.host, "smart.example");
		CHECK(c->relayhost.port == 587 && c->relayhost.is_literal);
		CHECK(c->resolver.n == 3);
		CHECK_STR(c->resolver.v[0].host, "127.0.0.53");
		CHECK(c->resolver.v[0].port == 53);
		CHECK_STR(c->resolver.v[1].host, "2001:4860:4860::8888");
		CHECK(c->resolver.v[1].port == 5353);
		CHECK_STR(c->resolver.v[2].host, "::1");
		CHECK(c->resolver.v[2].port == 53);
	}
	conf_free(c);

	c = parse("relayhost = smart.example\n");
	CHECK(c != NULL && strcmp(c->relayhost.host, "smart.example") == 0 &&
	      c->relayhost.port == 25 && !c->relayhost.is_literal);
	conf_free(c);
	c = parse("relayhost = smart.example:2525\n");
	CHECK(c != NULL && c->relayhost.port == 2525 &&
	      !c->relayhost.is_literal);
	conf_free(c);
	c = parse("relayhost = [192.0.2.1]\n");
	CHECK(c != NULL && strcmp(c->relayhost.host, "192.0.2.1") == 0 &&
	      c->relayhost.port == 25 && c->relayhost.is_literal);
	conf_free(c);

	CHECK_FAILS("listen = 127.0.0.1:99999\n",
		    "t.conf:1: listen: bad port in \"127.0.0.1:99999\"");
	CHECK_FAILS("listen = [::1\n",
		    "t.conf:1: listen: missing \"]\" in \"[::1\"");
	CHECK_FAILS("submission_listen = :587\n",
		    "t.conf:1: submission_listen: missing host in \":587\"");
	CHECK_FAILS("relayhost = a.example b.example\n",
		    "t.conf:1: relayhost: takes one host, not a list: "
		    "\"a.example b.example\"");
	CHECK_FAILS("relayhost = [a.example]:x\n",
		    "t.conf:1: relayhost: bad port in \"[a.example]:x\"");
	CHECK_FAILS("resolver = ns.example.com\n",
		    "t.conf:1: resolver: \"ns.example.com\" is not a numeric "
		    "IP address");
	CHECK_FAILS("resolver = 10.0.0.1:0\n",
		    "t.conf:1: resolver: bad port in \"10.0.0.1:0\"");
	CHECK_FAILS("smtps_listen = 0.0.0.0\n",
		    "t.conf:1: smtps_listen needs tls_cert and tls_key");
}

static void
test_cidrs(void)
{
	struct conf_cidr c;
	char why[200];
	CHECK(conf_parse_cidr("10.1.2.3/8", &c, why, sizeof(why)) == 0);
	CHECK(c.family == AF_INET && c.prefix == 8 && c.addr[0] == 10 &&
	      c.addr[1] == 0 && c.addr[3] == 0);
	CHECK(conf_parse_cidr("192.168.1.130/25", &c, why, sizeof(why)) == 0);
	CHECK(c.addr[3] == 128 && c.prefix == 25);
	CHECK(conf_parse_cidr("192.0.2.7", &c, why, sizeof(why)) == 0);
	CHECK(c.prefix == 32 && c.addr[3] == 7);
	CHECK(conf_parse_cidr("2001:db8::ff/32", &c, why, sizeof(why)) == 0);
	CHECK(c.family == AF_INET6 && c.prefix == 32 && c.addr[15] == 0 &&
	      c.addr[1] == 0x01);
	CHECK(conf_parse_cidr("[2001:db8::]/48", &c, why, sizeof(why)) == 0);
	CHECK(c.family == AF_INET6 && c.prefix == 48);
	CHECK(conf_parse_cidr("[::1]", &c, why, sizeof(why)) == 0);
	CHECK(c.prefix == 128);
	CHECK(conf_parse_cidr("0.0.0.0/0", &c, why, sizeof(why)) == 0);
	CHECK(conf_parse_cidr("10.0.0.0/33", &c, why, sizeof(why)) == -1);
	CHECK_STR(why, "bad prefix length in \"10.0.0.0/33\"");
	CHECK(conf_parse_cidr("::/129", &c, why, sizeof(why)) == -1);
	CHECK(conf_parse_cidr("10.0.0.0/", &c, why, sizeof(why)) == -1);
	CHECK(conf_parse_cidr("10.0.0.0/-1", &c, why, sizeof(why)) == -1);
	CHECK(conf_parse_cidr("10.0.0.0/8x", &c, why, sizeof(why)) == -1);
	CHECK(conf_parse_cidr("10.0.0/8", &c, why, sizeof(why)) == -1);
	CHECK_STR(why, "bad network \"10.0.0/8\"");
	CHECK(conf_parse_cidr("example.com", &c, why, sizeof(why)) == -1);
	CHECK(conf_parse_cidr("[::1]x", &c, why, sizeof(why)) == -1);
	CHECK(conf_parse_cidr("/8", &c, why, sizeof(why)) == -1);

	CHECK_FAILS("relay_networks = 10.0.0.0/8, 300.0.0.0/8\n",
		    "t.conf:1: relay_networks: bad network \"300.0.0.0/8\"");

	struct smalt_conf *conf =
	    parse("relay_networks = 10.0.0.0/8 192.168.1.0/24, "
		  "2001:db8::/32 [fe80::]/10 203.0.113.5\n");
	CHECK(conf != NULL);
	if (conf == NULL)
		return;
	struct sockaddr_in in = {.sin_family = AF_INET};
	struct sockaddr_in6 in6 = {.sin6_family = AF_INET6};
#define MATCH4(text)                                                           \
	(inet_pton(AF_INET, text, &in.sin_addr) == 1 &&                        \
	 conf_cidrs_match(&conf->relay_networks, (struct sockaddr *)&in))
#define MATCH6(text)                                                           \
	(inet_pton(AF_INET6, text, &in6.sin6_addr) == 1 &&                     \
	 conf_cidrs_match(&conf->relay_networks, (struct sockaddr *)&in6))
	CHECK(MATCH4("10.255.0.1"));
	CHECK(MATCH4("192.168.1.77"));
	CHECK(!MATCH4("192.168.2.1"));
	CHECK(MATCH4("203.0.113.5"));
	CHECK(!MATCH4("203.0.113.6"));
	CHECK(!MATCH4("11.0.0.1"));
	CHECK(MATCH6("2001:db8:1::1"));
	CHECK(!MATCH6("2001:db9::1"));
	CHECK(MATCH6("fe80::1234"));
	CHECK(MATCH6("febf::1"));
	CHECK(!MATCH6("fec0::1"));
	/* IPv4-mapped addresses match IPv4 prefixes, never IPv6 ones. */
	CHECK(MATCH6("::ffff:10.1.2.3"));
	CHECK(!MATCH6("::ffff:11.1.2.3"));
	CHECK(!MATCH6("::1"));
	CHECK(!conf_cidrs_match(&conf->relay_networks, NULL));
	conf_free(conf);

	conf = parse("relay_networks = ::/0\n");
	CHECK(conf != NULL);
	if (conf != NULL) {
		CHECK(MATCH6("2001:db8::1"));
		CHECK(!MATCH6("::ffff:10.1.2.3"));
		CHECK(!MATCH4("10.1.2.3"));
	}
	conf_free(conf);
	conf = parse("relay_networks =\n");
	CHECK(conf != NULL && conf->relay_networks.n == 0);
	if (conf != NULL)
		CHECK(!MATCH4("127.0.0.1"));
	conf_free(conf);
}

static void
test_expansion(void)
{
	struct smalt_conf *c = parse("local_domains = $hostname, ${hostname}2,"
				     " $(user).example\n"
				     "hostname = mx.example.org\n"
				     "user = mailer\n"
				     "home_mailbox = $$HOME/$user/\n");
	CHECK(c != NULL);
	if (c != NULL) {
		CHECK(c->local_domains.n == 3);
		if (c->local_domains.n == 3) {
			CHECK_STR(c->local_domains.v[0], "mx.example.org");
			CHECK_STR(c->local_domains.v[1], "mx.example.org2");
			CHECK_STR(c->local_domains.v[2], "mailer.example");
		}
		CHECK_STR(c->home_mailbox, "$HOME/mailer/");
	}
	conf_free(c);

	/* The default local_domains follows the configured hostname. */
	c = parse("hostname = a.example\n");
	CHECK(c != NULL && c->local_domains.n == 2 &&
	      strcmp(c->local_domains.v[0], "a.example") == 0);
	conf_free(c);

	/* White space around an empty expansion does not stay. */
	c = parse("home_mailbox = $submission_listen =to= $routes\n");
	CHECK(c != NULL && strcmp(c->home_mailbox, "=to=") == 0);
	conf_free(c);

	/* Any type may refer to another key. */
	c = parse("retry_max = $retry_min\nretry_min = 10m\n");
	CHECK(c != NULL && c->retry_max == 600);
	conf_free(c);

	CHECK_FAILS("\nrelayhost = $smarthost\n",
		    "t.conf:2: relayhost: reference to unknown key "
		    "\"$smarthost\"");
	CHECK_FAILS("hostname = $local_domains\n",
		    "t.conf:1: hostname: recursive reference \"$hostname\"");
	CHECK_FAILS("aliases = /x/$routes\nroutes = /y/$aliases\n",
		    "t.conf:2: routes: recursive reference \"$aliases\"");
	CHECK_FAILS("routes = $routes\n",
		    "t.conf:1: routes: recursive reference \"$routes\"");
	CHECK_FAILS("user = a$\n", "t.conf:1: user: bad \"$\" reference "
				   "(write \"$$\" for a literal \"$\")");
	CHECK_FAILS("user = ${user\n", "t.conf:1: user: bad \"$\" reference "
				       "(write \"$$\" for a literal \"$\")");
	CHECK_FAILS("user = $(x}\n", "t.conf:1: user: bad \"$\" reference "
				     "(write \"$$\" for a literal \"$\")");

	/* Doubling through a chain of keys stops at the value limit. */
	c = parse(
	    "aliases = /$routes$routes\n"
	    "routes = $tls_cert$tls_cert\n"
	    "tls_cert = $tls_key$tls_key\ntls_key = $auth_users$auth_users\n"
	    "auth_users = $home_mailbox$home_mailbox\n"
	    "home_mailbox = $user$user\n"
	    "user = "
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "\n");
	CHECK(c == NULL);
	CHECK(strstr(err, "longer than 65536 bytes after \"$\" expansion") !=
	      NULL);
	conf_free(c);
}

static void
test_overrides(void)
{
	char *o1[] = {"max_recipients=5", " user = bob ",
		      "local_domains=$hostname x.example",
		      "hostname=o.example"};
	struct smalt_conf *c = parse_o("max_recipients = 9\nuser = a\n", o1, 4);
	CHECK(c != NULL);
	if (c != NULL) {
		CHECK(c->max_recipients == 5);
		CHECK_STR(c->user, "bob");
		CHECK(c->local_domains.n == 2);
		CHECK_STR(c->local_domains.v[0], "o.example");
		CHECK_STR(c->local_domains.v[1], "x.example");
	}
	conf_free(c);

	/* An override may be emptied. */
	char *o2[] = {"aliases="};
	c = parse_o("", o2, 1);
	CHECK(c != NULL && c->aliases[0] == '\0');
	conf_free(c);

	char *bad1[] = {"max_recipients"};
	c = parse_o("", bad1, 1);
	CHECK(c == NULL);
	CHECK_STR(err, "-o max_recipients: expected key=value");
	char *bad2[] = {"max_recipient=4"};
	c = parse_o("", bad2, 1);
	CHECK(c == NULL);
	CHECK_STR(err, "-o max_recipient=4: unknown key \"max_recipient\"");
	char *bad3[] = {"smtpd_timeout=5x"};
	c = parse_o("", bad3, 1);
	CHECK(c == NULL);
	CHECK_STR(err, "-o smtpd_timeout=5x: bad duration \"5x\"");
	char *bad4[] = {"user=a\nhostname = b"};
	c = parse_o("", bad4, 1);
	CHECK(c == NULL);
	CHECK_STR(err, "-o user=a\nhostname = b: line break in value");
	char *bad5[] = {"retry_min=2h"};
	c = parse_o("retry_max = 1h\n", bad5, 1);
	CHECK(c == NULL);
	CHECK_STR(err, "-o retry_min=2h: retry_min (2h) must not be greater "
		       "than retry_max (1h)");
	char *bad6[] = {"routes=$nothing"};
	c = parse_o("", bad6, 1);
	CHECK(c == NULL);
	CHECK_STR(err, "-o routes=$nothing: reference to unknown key "
		       "\"$nothing\"");
	/* A bad file line is found before the overrides are looked at. */
	c = parse_o("bogus = 1\n", bad6, 1);
	CHECK(c == NULL);
	CHECK_STR(err, "t.conf:1: unknown key \"bogus\"");
}

static void
test_cross_checks(void)
{
	CHECK_FAILS("retry_min = 2h\n", "t.conf:1: retry_min (2h) must not be "
					"greater than retry_max (1h)");
	CHECK_FAILS("retry_min = 10m\nretry_max = 5m\n",
		    "t.conf:2: retry_min (10m) must not be greater than "
		    "retry_max (5m)");
	CHECK_FAILS("host_retry_max = 30s\n",
		    "t.conf:1: host_retry_min (1m) must not be greater than "
		    "host_retry_max (30s)");
	CHECK_FAILS("retry_min = 0\n", "t.conf:1: retry_min: must not be 0");
	CHECK_FAILS("tls_cert = /etc/c.pem\n",
		    "t.conf:1: tls_cert and tls_key must be set together");
	CHECK_FAILS("tls_cert = /etc/c.pem\n\ntls_key = k.pem\n",
		    "t.conf:3: tls_key: must be an absolute path, not "
		    "\"k.pem\"");
	struct smalt_conf *c = parse("retry_min = 1h\nretry_max = 1h\n");
	CHECK(c != NULL);
	conf_free(c);
}

static int
count_lines(const char *s)
{
	int n = 0;
	for (; *s; s++)
		n += *s == '\n';
	return n;
}

static void
test_print(void)
{
	struct smalt_conf *c = parse("hostname = mx.example.org\n");
	CHECK(c != NULL);
	if (c == NULL)
		return;
	char *out = print_to_string(c);
	CHECK(count_lines(out) == 41);
	CHECK(strncmp(out, "hostname = mx.example.org\n", 26) == 0);
	CHECK(strstr(out, "\nlocal_domains = mx.example.org, localhost\n") !=
	      NULL);
	CHECK(strstr(out, "\nlisten = 127.0.0.1:25, [::1]:25\n") != NULL);
	CHECK(strstr(out, "\nsubmission_listen =\n") != NULL);
	CHECK(strstr(out, "\nrelay_networks = 127.0.0.0/8, ::1/128\n") != NULL);
	CHECK(strstr(out, "\nrelayhost =\n") != NULL);
	CHECK(strstr(out, "\nrelayhost_tls = encrypt\n") != NULL);
	CHECK(strstr(out, "\ntls_cert =\ntls_key =\n") != NULL);
	CHECK(strstr(out, "\nresolver =\n") != NULL);
	CHECK(strstr(out, "\nmax_message_size = 35m\n") != NULL);
	CHECK(strstr(out, "\nsmtpd_timeout = 5m\n") != NULL);
	CHECK(strstr(out, "\nqueue_lifetime = 5d\n") != NULL);
	CHECK(strstr(out, "\ndelay_warning = 4h\n") != NULL);
	CHECK(strstr(out, "\nlog = syslog\n") != NULL);
	/* No trailing white space anywhere. */
	CHECK(strstr(out, " \n") == NULL);

	/* Each key once, in table order, and every printed key parses. */
	static const char *const order[] = {
	    "hostname",
	    "local_domains",
	    "listen",
	    "submission_listen",
	    "smtps_listen",
	    "relay_networks",
	    "spool_dir",
	    "user",
	    "mail_spool_directory",
	    "home_mailbox",
	    "aliases",
	    "virtual_mailboxes",
	    "routes",
	    "relayhost",
	    "relayhost_auth_file",
	    "relayhost_tls",
	    "smtp_port",
	    "smtp_tls",
	    "tls_cert",
	    "tls_key",
	    "tls_ca_file",
	    "auth_users",
	    "resolver",
	    "spf",
	    "max_message_size",
	    "max_recipients",
	    "max_connections",
	    "max_connections_per_ip",
	    "smtpd_timeout",
	    "bare_newline",
	    "retry_min",
	    "retry_max",
	    "host_retry_min",
	    "host_retry_max",
	    "queue_lifetime",
	    "delay_warning",
	    "delivery_concurrency",
	    "destination_concurrency",
	    "log",
	    "smtpd_error_limit",
	    "smtpd_greet_pause",
	};
	const char *line = out;
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		size_t n = strlen(order[i]);
		CHECK(strncmp(line, order[i], n) == 0 && line[n] == ' ');
		line = strchr(line, '\n') + 1;
	}
	CHECK(*line == '\0');
	conf_free(c);
	free(out);
}

/* Print, parse the print, print again: both prints must be the same. */
static void
check_round_trip(const char *text)
{
	struct smalt_conf *c = parse(text);
	CHECK(c != NULL);
	if (c == NULL) {
		fprintf(stderr, "round trip: %s\n", err);
		return;
	}
	char *first = print_to_string(c);
	conf_free(c);
	c = conf_parse_buffer("printed", first, strlen(first), NULL, 0, err,
			      sizeof(err));
	CHECK(c != NULL);
	if (c != NULL) {
		char *second = print_to_string(c);
		CHECK_STR(second, first);
		free(second);
	}
	conf_free(c);
	free(first);
}

static void
test_round_trip(void)
{
	check_round_trip("");
	check_round_trip(
	    "hostname = mx.example.org\nlocal_domains = a b,c ,,d\n"
	    "listen = 0.0.0.0 [::]:2525 [10.0.0.1]:26\n"
	    "submission_listen = 127.0.0.1\nsmtps_listen = [::1]\n"
	    "tls_cert = /c\ntls_key = /k\n"
	    "relay_networks = 10.1.2.3/8 [2001:db8::1]/32 192.0.2.1\n"
	    "relayhost = [smart.example]:587\n"
	    "resolver = 1.1.1.1 2001:db8::53 [::1]:5353\n"
	    "home_mailbox = $$weird/Maildir/\nmax_message_size = 1000\n"
	    "smtpd_timeout = 90\nretry_min = 120\nretry_max = 2d\n"
	    "queue_lifetime = 0\nmax_connections = 1\nsmtp_tls = NONE\n");
	check_round_trip("relayhost = smart.example:2525\nspool_dir = /a b\n");
	check_round_trip("relayhost = 2001:db8::25\n");
}

static char *
make_tmpdir(void)
{
	const char *base = getenv("SMALT_TEST_TMP");
	char tmpl[4096];
	if (base != NULL && base[0] != '\0') {
		mkdir(base, 0700);
		snprintf(tmpl, sizeof(tmpl), "%s/conf.XXXXXX", base);
	} else {
		snprintf(tmpl, sizeof(tmpl), "/tmp/smalt-conf.XXXXXX");
	}
	char *dir = mkdtemp(tmpl);
	return dir ? strdup(dir) : NULL;
}

static void
test_load(void)
{
	char *dir = make_tmpdir();
	CHECK(dir != NULL);
	if (dir == NULL)
		return;
	char path[4200], want[4400];

	snprintf(path, sizeof(path), "%s/missing.conf", dir);
	struct smalt_conf *c = conf_load(path, NULL, 0, err, sizeof(err));
	CHECK(c == NULL);
	snprintf(want, sizeof(want), "%s: No such file or directory", path);
	CHECK_STR(err, want);

	c = conf_load(dir, NULL, 0, err, sizeof(err));
	CHECK(c == NULL);
	snprintf(want, sizeof(want), "%s: Is a directory", dir);
	CHECK_STR(err, want);

	snprintf(path, sizeof(path), "%s/smalt.conf", dir);
	FILE *f = fopen(path, "w");
	fputs("# test\nmax_recipients = 3\n\nbogus = 1\n", f);
	fclose(f);
	c = conf_load(path, NULL, 0, err, sizeof(err));
	CHECK(c == NULL);
	snprintf(want, sizeof(want), "%s:4: unknown key \"bogus\"", path);
	CHECK_STR(err, want);

	f = fopen(path, "w");
	fputs("max_recipients = 3\nhostname = h.example\n", f);
	fclose(f);
	char *o[] = {"max_connections=2"};
	c = conf_load(path, o, 1, err, sizeof(err));
	CHECK(c != NULL);
	if (c != NULL) {
		CHECK_STR(c->source, path);
		CHECK(c->max_recipients == 3 && c->max_connections == 2);
	}
	conf_free(c);
	unlink(path);
	rmdir(dir);
	free(dir);

	/* The default path: missing means built-in defaults. */
	if (access(CONF_DEFAULT_FILE, F_OK) != 0 && errno == ENOENT) {
		char *o2[] = {"max_recipients=4"};
		c = conf_load(NULL, o2, 1, err, sizeof(err));
		CHECK(c != NULL);
		CHECK(c != NULL && c->source == NULL && c->max_recipients == 4);
		conf_free(c);
		char *o3[] = {"max_recipients=x"};
		c = conf_load(NULL, o3, 1, err, sizeof(err));
		CHECK(c == NULL);
		CHECK_STR(err, "-o max_recipients=x: bad number \"x\"");
	}
}

static void
test_local_domains(void)
{
	struct smalt_conf *c =
	    parse("local_domains = Example.ORG, mail.example.net.\n");
	CHECK(c != NULL);
	if (c == NULL)
		return;
	CHECK(conf_is_local_domain(c, "example.org"));
	CHECK(conf_is_local_domain(c, "EXAMPLE.org."));
	CHECK(conf_is_local_domain(c, "mail.example.net"));
	CHECK(conf_is_local_domain(c, "MAIL.example.NET."));
	CHECK(!conf_is_local_domain(c, "example.net"));
	CHECK(!conf_is_local_domain(c, "sub.example.org"));
	CHECK(!conf_is_local_domain(c, "example.or"));
	CHECK(!conf_is_local_domain(c, ""));
	CHECK(!conf_is_local_domain(c, "."));
	CHECK(!conf_is_local_domain(c, NULL));
	conf_free(c);
	c = parse("local_domains =\n");
	CHECK(c != NULL && !conf_is_local_domain(c, "localhost"));
	conf_free(c);
}

int
main(void)
{
	test_defaults();
	test_syntax();
	test_durations();
	test_sizes();
	test_numbers_and_enums();
	test_strings();
	test_hostports();
	test_cidrs();
	test_expansion();
	test_overrides();
	test_cross_checks();
	test_print();
	test_round_trip();
	test_load();
	test_local_domains();
	return check_done();
}
