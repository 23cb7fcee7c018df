/* The SMTP client engine's pieces that need no server: DSNs from replies,
 * dot-stuffing across chunk boundaries, and the engine's start, cancel and
 * connection-refused paths on a real loop; and connection reuse against a
 * tiny server on the same loop (kept outcomes, smtp_client_reuse, _close,
 * _cancel, a parked session the server closed). The conversations
 * themselves are tests/integration/test_smtp_client.py's. */
#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <signal.h>
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
	/* what cb does to a kept client: 0 nothing, 1 cancel, 2 close */
	int then;
	struct smtp_client *c;
};

static void
on_done(void *arg, const struct smtp_outcome *o)
{
	struct result *res = arg;
	res->calls++;
	res->o = *o;
	memcpy(res->r, o->rcpt, sizeof(res->r));
	res->o.rcpt = res->r;
	if (o->kept && res->then == 1)
		smtp_client_cancel(res->c);
	else if (o->kept && res->then == 2)
		smtp_client_close(res->c);
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

/* ---- a server on the loop, for reuse --------------------------------- */

struct srv {
	struct event_base *base;
	int lfd;
	unsigned port;
	struct event *lev;
	struct bufferevent *bev; /* the one connection */
	int conns, msgs, mails, rsets, quits;
	int in_data;
	int close_after_dot; /* hang up after each dot's reply */
	int drop_mail;	     /* hang up, unanswered, on that MAIL */
	const char *rcpt;    /* reply to RCPT */
};

static void
srv_drop(struct srv *s)
{
	if (s->bev != NULL)
		bufferevent_free(s->bev);
	s->bev = NULL;
	s->in_data = 0;
}

static void
srv_say(struct srv *s, const char *line)
{
	evbuffer_add_printf(bufferevent_get_output(s->bev), "%s\r\n", line);
}

static void
srv_drained(struct bufferevent *bev, void *arg)
{
	struct srv *s = arg;
	(void)bev;
	srv_drop(s);
}

static void
srv_read(struct bufferevent *bev, void *arg)
{
	struct srv *s = arg;
	char *l;
	while (s->bev == bev &&
	       (l = evbuffer_readln(bufferevent_get_input(bev), NULL,
				    EVBUFFER_EOL_CRLF)) != NULL) {
		int hangup = 0;
		if (s->in_data) {
			if (strcmp(l, ".") == 0) {
				s->in_data = 0;
				s->msgs++;
				srv_say(s, "250 2.0.0 Ok: queued");
				hangup = s->close_after_dot;
			}
		} else if (strncmp(l, "EHLO", 4) == 0) {
			srv_say(s, "250 srv.test");
		} else if (strncmp(l, "MAIL", 4) == 0) {
			if (++s->mails == s->drop_mail) {
				free(l);
				srv_drop(s);
				return;
			}
			srv_say(s, "250 2.1.0 Ok");
		} else if (strncmp(l, "RCPT", 4) == 0) {
			srv_say(s, s->rcpt);
		} else if (strcmp(l, "DATA") == 0) {
			s->in_data = 1;
			srv_say(s, "354 go");
		} else if (strcmp(l, "RSET") == 0) {
			s->rsets++;
			srv_say(s, "250 2.0.0 Ok");
		} else if (strcmp(l, "QUIT") == 0) {
			s->quits++;
			srv_say(s, "221 2.0.0 Bye");
			hangup = 1;
		} else {
			srv_say(s, "502 5.5.2 what?");
		}
		free(l);
		if (hangup) /* once the reply is out */
			bufferevent_setcb(bev, NULL, srv_drained, NULL, s);
	}
}

static void
srv_event(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	(void)what;
	srv_drop(arg);
}

static void
srv_accept(evutil_socket_t fd, short what, void *arg)
{
	struct srv *s = arg;
	(void)what;
	int c = accept(fd, NULL, NULL);
	if (c < 0)
		return;
	srv_drop(s); /* one at a time: a client starting over */
	evutil_make_socket_nonblocking(c);
	s->bev = bufferevent_socket_new(s->base, c, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(s->bev, srv_read, NULL, srv_event, s);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
	s->conns++;
	srv_say(s, "220 srv.test ESMTP");
}

static void
srv_start(struct srv *s, struct event_base *base)
{
	memset(s, 0, sizeof(*s));
	s->base = base;
	s->rcpt = "250 2.1.5 Ok";
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	s->lfd = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(s->lfd >= 0 && bind(s->lfd, (struct sockaddr *)&a, len) == 0 &&
	      listen(s->lfd, 8) == 0 &&
	      getsockname(s->lfd, (struct sockaddr *)&a, &len) == 0);
	s->port = ntohs(a.sin_port);
	s->lev = event_new(base, s->lfd, EV_READ | EV_PERSIST, srv_accept, s);
	event_add(s->lev, NULL);
}

static void
srv_stop(struct srv *s)
{
	srv_drop(s);
	event_free(s->lev);
	close(s->lfd);
}

static void
on_expired(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	*(int *)arg = 1;
}

/* Runs the loop until *v reaches want, or for ms when want is < 0; 0 on
 * a timeout. */
static int
run_until(struct event_base *base, const int *v, int want, int ms)
{
	int expired = 0;
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	struct event *t = evtimer_new(base, on_expired, &expired);
	evtimer_add(t, &tv);
	while (!expired && (want < 0 || *v < want))
		event_base_loop(base, EVLOOP_ONCE);
	event_free(t);
	return !expired || want < 0;
}

static void
test_reuse(void)
{
	struct event_base *base = event_base_new();
	struct srv s;
	srv_start(&s, base);
	const char *rcpts[] = {"a@x.test", "b@x.test"};
	char text[] = "Subject: t\r\n\r\nhello\r\n";
	FILE *m = tmpfile();
	fwrite(text, 1, strlen(text), m);
	fflush(m);
	struct smtp_tx tx = {.sender = "s@x.test",
			     .rcpts = rcpts,
			     .nrcpt = 2,
			     .msg_fd = fileno(m),
			     .msg_size = strlen(text)};
	struct smtp_client_params p = {.helo_name = "me.test",
				       .connect_timeout = 2,
				       .command_timeout = 2,
				       .data_timeout = 2,
				       .keep_open = 1};
	struct dns_target t;
	loopback_target(&t, s.port);
	char relay[64];
	snprintf(relay, sizeof(relay), "mx.test[127.0.0.1]:%u", s.port);

	/* two messages, one connection, then a QUIT */
	struct result r1 = {0}, r2 = {0};
	struct smtp_client *c =
	    smtp_client_start(base, &p, &t, 1, &tx, on_done, &r1);
	CHECK(smtp_client_reuse(c, &tx, on_done, &r2) == -1); /* running */
	CHECK(run_until(base, &r1.calls, 1, 3000));
	CHECK(r1.o.kept == 1);
	CHECK(r1.r[0].status == DELIVER_OK && r1.r[1].status == DELIVER_OK);
	CHECK(r1.o.ready_us > 0);
	CHECK_STR(r1.o.relay, relay);
	CHECK(smtp_client_reuse(c, &tx, on_done, &r2) == 0);
	CHECK(r2.calls == 0); /* never from inside reuse */
	CHECK(smtp_client_reuse(c, &tx, on_done, &r2) == -1); /* not parked */
	CHECK(run_until(base, &r2.calls, 1, 3000));
	CHECK(r1.calls == 1 && r2.calls == 1);
	CHECK(r2.o.kept == 1);
	CHECK(r2.r[0].status == DELIVER_OK && r2.r[1].status == DELIVER_OK);
	CHECK(r2.o.ready_us >= r1.o.ready_us);
	CHECK(r2.o.tried_addrs == 1 && r2.o.ntried == 1);
	CHECK(s.conns == 1 && s.msgs == 2 && s.mails == 2 && s.rsets == 0);
	smtp_client_close(c);
	CHECK(run_until(base, &s.quits, 1, 3000));
	CHECK(r2.calls == 1); /* no callback for close */

	/* every RCPT refused: RSET, kept; the parked session cancelled */
	s.rcpt = "550 5.1.1 unknown";
	memset(&r1, 0, sizeof(r1));
	c = smtp_client_start(base, &p, &t, 1, &tx, on_done, &r1);
	CHECK(run_until(base, &r1.calls, 1, 3000));
	CHECK(r1.o.kept == 1 && s.rsets == 1 && s.msgs == 2);
	CHECK(r1.r[0].status == DELIVER_BOUNCE);
	CHECK_STR(r1.r[1].dsn, "5.1.1");
	smtp_client_cancel(c);
	s.rcpt = "250 2.1.5 Ok";

	/* the server hangs up after each message: the parked session
	 * notices, and the next message goes on a new connection */
	s.close_after_dot = 1;
	int conns = s.conns;
	memset(&r1, 0, sizeof(r1));
	memset(&r2, 0, sizeof(r2));
	c = smtp_client_start(base, &p, &t, 1, &tx, on_done, &r1);
	CHECK(run_until(base, &r1.calls, 1, 3000));
	CHECK(r1.o.kept == 1);
	run_until(base, NULL, -1, 200); /* the EOF arrives while parked */
	CHECK(smtp_client_reuse(c, &tx, on_done, &r2) == 0);
	CHECK(run_until(base, &r2.calls, 1, 3000));
	CHECK(r2.r[0].status == DELIVER_OK && r2.o.host_failed == 0);
	CHECK(r2.o.tried_addrs == 1 && r2.o.tried_failed[0] == 0);
	CHECK(s.conns == conns + 2);
	/* close on a parked client whose session is gone: freed at once */
	run_until(base, NULL, -1, 200);
	smtp_client_close(c);
	s.close_after_dot = 0;

	/* the parked session is lost as MAIL goes: start over, delivered */
	conns = s.conns;
	memset(&r1, 0, sizeof(r1));
	memset(&r2, 0, sizeof(r2));
	c = smtp_client_start(base, &p, &t, 1, &tx, on_done, &r1);
	CHECK(run_until(base, &r1.calls, 1, 3000));
	s.drop_mail = s.mails + 1;
	CHECK(smtp_client_reuse(c, &tx, on_done, &r2) == 0);
	CHECK(run_until(base, &r2.calls, 1, 3000));
	CHECK(r2.r[0].status == DELIVER_OK && r2.o.host_failed == 0);
	CHECK(r2.o.kept == 1 && r2.o.tried_addrs == 1);
	CHECK(s.conns == conns + 2 && s.mails == s.drop_mail + 1);
	int quits = s.quits;
	smtp_client_close(c);
	CHECK(run_until(base, &s.quits, quits + 1, 3000));

	/* cancel, then close, from inside the callback of a kept outcome */
	for (int then = 1; then <= 2; then++) {
		quits = s.quits;
		memset(&r1, 0, sizeof(r1));
		r1.then = then;
		r1.c = c =
		    smtp_client_start(base, &p, &t, 1, &tx, on_done, &r1);
		CHECK(run_until(base, &r1.calls, 1, 3000));
		CHECK(r1.o.kept == 1);
		if (then == 2)
			CHECK(run_until(base, &s.quits, quits + 1, 3000));
		else
			CHECK(!run_until(base, &s.quits, quits + 1, 200));
	}

	/* without keep_open: QUIT per message, as ever */
	p.keep_open = 0;
	quits = s.quits;
	memset(&r1, 0, sizeof(r1));
	c = smtp_client_start(base, &p, &t, 1, &tx, on_done, &r1);
	CHECK(run_until(base, &r1.calls, 1, 3000));
	CHECK(r1.o.kept == 0 && r1.o.ready_us > 0);
	CHECK(run_until(base, &s.quits, quits + 1, 3000));

	srv_stop(&s);
	event_base_dispatch(base); /* nothing of the clients left */
	fclose(m);
	event_base_free(base);
}

int
main(void)
{
	signal(SIGPIPE, SIG_IGN);
	test_dsn();
	test_dot_stuff();
	test_engine();
	test_reuse();
	return check_done();
}
