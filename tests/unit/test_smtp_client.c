/* The SMTP client engine's pieces that need no server: DSNs from replies,
 * dot-stuffing across chunk boundaries, and the engine's start, cancel and
 * connection-refused paths on a real loop. The conversations themselves
 * are tests/integration/test_smtp_client.py's. */
#include <arpa/inet.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "deliver/smtp_client.h"
#include "tests/unit/check.h"

static void
test_dsn(void)
{
	char d[16];
	smtp_reply_dsn(550, "5.1.1 <x@y>: User unknown", d, sizeof(d));
	CHECK_STR(d, "5.1.1");
	smtp_reply_dsn(451, "4.3.0 Try again", d, sizeof(d));
	CHECK_STR(d, "4.3.0");
	smtp_reply_dsn(450, "try later", d, sizeof(d));
	CHECK_STR(d, "4.0.0");
	smtp_reply_dsn(554, "", d, sizeof(d));
	CHECK_STR(d, "5.0.0");
	/* an enhanced code of another class is not believed */
	smtp_reply_dsn(550, "4.1.1 odd", d, sizeof(d));
	CHECK_STR(d, "5.0.0");
	smtp_reply_dsn(250, "2.0.0 Ok: queued", d, sizeof(d));
	CHECK_STR(d, "2.0.0");
	smtp_reply_dsn(550, "5.7.1", d, sizeof(d));
	CHECK_STR(d, "5.7.1");
	smtp_reply_dsn(550, "5.1234.1 too long", d, sizeof(d));
	CHECK_STR(d, "5.0.0");
	smtp_reply_dsn(550, "5.1.1x no space", d, sizeof(d));
	CHECK_STR(d, "5.0.0");
	smtp_reply_dsn(421, "4.4.2 ", d, sizeof(d));
	CHECK_STR(d, "4.4.2");
	smtp_reply_dsn(550, "5.100.100 big", d, sizeof(d));
	CHECK_STR(d, "5.100.100");
}

static void
stuff_all(const char *in, size_t chunk, char *out)
{
	int bol = 1;
	size_t o = 0, n = strlen(in);
	char buf[512];
	for (size_t i = 0; i < n; i += chunk) {
		size_t k = n - i < chunk ? n - i : chunk;
		size_t m = smtp_dot_stuff(&bol, in + i, k, buf);
		memcpy(out + o, buf, m);
		o += m;
	}
	out[o] = '\0';
}

static void
test_dot_stuff(void)
{
	const char *in = ".a\r\nb.\r\n..c\r\n.\r\nd\r\n.";
	const char *want = "..a\r\nb.\r\n...c\r\n..\r\nd\r\n..";
	char out[512];
	for (size_t chunk = 1; chunk <= strlen(in); chunk++) {
		stuff_all(in, chunk, out);
		CHECK_STR(out, want);
	}
	stuff_all("no dots\r\n", 4, out);
	CHECK_STR(out, "no dots\r\n");
	stuff_all("", 4, out);
	CHECK_STR(out, "");
}

struct result {
	int calls;
	struct smtp_outcome o;
	struct deliver_result r[2];
};

static void
on_done(void *arg, const struct smtp_outcome *o)
{
	struct result *res = arg;
	res->calls++;
	res->o = *o;
	memcpy(res->r, o->rcpt, sizeof(res->r));
	res->o.rcpt = res->r;
}

static void
loopback_target(struct dns_target *t, unsigned port)
{
	memset(t, 0, sizeof(*t));
	strcpy(t->host, "mx.test");
	struct sockaddr_in *s = (struct sockaddr_in *)&t->addr;
	s->sin_family = AF_INET;
	s->sin_port = htons((uint16_t)port);
	s->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	t->family = AF_INET;
	t->addrlen = sizeof(*s);
}

/* A port nothing listens on: bound, never listening. */
static int
closed_port(unsigned *port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in s = {.sin_family = AF_INET,
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(s);
	if (fd < 0 || bind(fd, (struct sockaddr *)&s, sizeof(s)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&s, &len) < 0)
		return -1;
	*port = ntohs(s.sin_port);
	return fd;
}

static void
test_engine(void)
{
	struct event_base *base = event_base_new();
	const char *rcpts[] = {"a@x.test", "b@x.test"};
	int msg = dup(0);
	struct smtp_tx tx = {.sender = "",
			     .rcpts = rcpts,
			     .nrcpt = 2,
			     .msg_fd = msg,
			     .msg_size = 10};
	struct smtp_client_params p = {.helo_name = "me.test",
				       .connect_timeout = 2,
				       .command_timeout = 2,
				       .data_timeout = 2};
	unsigned port = 0;
	int hold = closed_port(&port);
	CHECK(hold >= 0);
	struct dns_target t[2];
	loopback_target(&t[0], port);
	loopback_target(&t[1], port);

	/* refused twice: both deferred, host failure, tried two */
	struct result res = {0};
	struct smtp_client *c =
	    smtp_client_start(base, &p, t, 2, &tx, on_done, &res);
	CHECK(c != NULL);
	CHECK(res.calls == 0); /* never from inside start */
	event_base_dispatch(base);
	CHECK(res.calls == 1);
	CHECK(res.o.host_failed == 1);
	CHECK(res.o.tried_addrs == 2);
	CHECK_STR(res.o.relay, "none");
	CHECK(res.r[0].status == DELIVER_DEFER);
	CHECK(res.r[1].status == DELIVER_DEFER);
	CHECK_STR(res.r[0].dsn, "4.4.1");
	CHECK_CONTAINS(res.r[1].reason, "connect to mx.test[127.0.0.1]:");
	CHECK_CONTAINS(res.o.host_reason, "Connection refused");

	/* cancelled before it ran: no callback, nothing left on the loop */
	memset(&res, 0, sizeof(res));
	c = smtp_client_start(base, &p, t, 2, &tx, on_done, &res);
	smtp_client_cancel(c);
	event_base_dispatch(base);
	CHECK(res.calls == 0);

	close(hold);
	close(msg);
	event_base_free(base);
}

int
main(void)
{
	test_dsn();
	test_dot_stuff();
	test_engine();
	return check_done();
}
