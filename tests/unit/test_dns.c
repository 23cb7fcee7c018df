/* Next-hop resolution (common/dns.c) against a real DNS server: dnsmasq,
 * started here on 127.0.0.1 and a free high port, serves a small .test
 * zone. Covered: MX order and the random order of equal preferences, the
 * IPv6-then-IPv4 addresses of each host, the port, the limits of 10 MX
 * hosts and 20 addresses, the implicit MX (A/AAAA without MX), an MX host
 * without address skipped, no address anywhere, NXDOMAIN, null MX
 * (RFC 7505, as a raw RR), timeouts (a forwarded zone whose server never
 * answers, a server that never answers, a closed port) as TEMPFAIL within
 * the configured time, an MX host that times out beside one that works,
 * address literals and bare addresses, the hosts file, callbacks never
 * run inside the call when DNS is asked, and cancelling: at once, while
 * the address queries run, and dns_free with requests pending (ASan/LSan
 * check the memory). dnsmasq (Debian's dnsmasq-base) must be installed. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/dns.h"
#include "common/util.h"
#include "tests/lib/testutil.h"
#include "tests/unit/check.h"

#define PORT 2525

static struct event_base *base;
static struct dns *dns;	 /* through dnsmasq, short timeouts */
static char servers[64]; /* "127.0.0.1:N" of dnsmasq */
static int silent_fd;	 /* a UDP socket that never answers */
static int silent_port;
static pid_t dnsmasq_pid = -1; /* its watchdog's */
static int watchdog_fd = -1;
static char *dir;
static int quiet; /* target_is() only answers */

struct result {
	int done;
	enum dns_status st;
	struct dns_target v[DNS_MAX_ADDRS];
	size_t n;
	char reason[600];
};

static void
on_result(void *arg, enum dns_status st, const struct dns_target *v, size_t n,
	  const char *reason)
{
	struct result *r = arg;
	r->done++;
	r->st = st;
	r->n = n;
	if (n > DNS_MAX_ADDRS) {
		fprintf(stderr, "callback with %zu targets\n", n);
		n = DNS_MAX_ADDRS;
	}
	if (n > 0)
		memcpy(r->v, v, n * sizeof(*v));
	smalt_strlcpy(r->reason, reason ? reason : "", sizeof(r->reason));
}

static double
now_sec(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
}

/* Runs the loop until r has its answer or max seconds passed. */
static void
wait_for(struct result *r, double max)
{
	struct event *tick = event_new(base, -1, EV_PERSIST, on_tick, NULL);
	struct timeval tv = {0, 50000};
	event_add(tick, &tv);
	double end = now_sec() + max;
	while (!r->done && now_sec() < end)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(tick);
}

/* Runs the loop for ms milliseconds. */
static void
run_for(int ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
}

/* A whole lookup; *sync tells whether cb ran inside the call. */
static void
resolve(struct dns *d, int mx, const char *name, struct result *r, int *sync)
{
	memset(r, 0, sizeof(*r));
	struct dns_req *req =
	    mx ? dns_resolve_mx(d, name, PORT, on_result, r)
	       : dns_resolve_host(d, name, PORT, on_result, r);
	if (sync != NULL)
		*sync = req == NULL;
	if (req == NULL && !r->done)
		fprintf(stderr, "%s: NULL request without an answer\n", name);
	if (req != NULL && r->done)
		fprintf(stderr, "%s: answer inside the call\n", name);
	wait_for(r, 10);
	if (r->done != 1)
		fprintf(stderr, "%s: callback ran %d times\n", name, r->done);
}

static const char *
addr_text(const struct dns_target *t, char *buf, size_t len)
{
	if (t->family == AF_INET6)
		inet_ntop(AF_INET6,
			  &((const struct sockaddr_in6 *)&t->addr)->sin6_addr,
			  buf, len);
	else
		inet_ntop(AF_INET,
			  &((const struct sockaddr_in *)&t->addr)->sin_addr,
			  buf, len);
	return buf;
}

static unsigned
port_of(const struct dns_target *t)
{
	if (t->family == AF_INET6)
		return ntohs(
		    ((const struct sockaddr_in6 *)&t->addr)->sin6_port);
	return ntohs(((const struct sockaddr_in *)&t->addr)->sin_port);
}

/* Target i is host with address addr and preference pref. */
static int
target_is(const struct result *r, size_t i, const char *host, unsigned pref,
	  const char *addr)
{
	char buf[INET6_ADDRSTRLEN];
	if (i >= r->n) {
		if (!quiet)
			fprintf(stderr, "no target %zu (of %zu)\n", i, r->n);
		return 0;
	}
	const struct dns_target *t = &r->v[i];
	int want_family = strchr(addr, ':') ? AF_INET6 : AF_INET;
	socklen_t want_len = want_family == AF_INET6
				 ? sizeof(struct sockaddr_in6)
				 : sizeof(struct sockaddr_in);
	addr_text(t, buf, sizeof(buf));
	if (strcmp(t->host, host) != 0 || t->pref != pref ||
	    t->family != want_family || t->addr.ss_family != want_family ||
	    t->addrlen != want_len || strcmp(buf, addr) != 0 ||
	    port_of(t) != PORT) {
		if (!quiet)
			fprintf(
			    stderr,
			    "target %zu: %s pref %u %s port %u len %u, want %s "
			    "pref %u %s port %u\n",
			    i, t->host, t->pref, buf, port_of(t),
			    (unsigned)t->addrlen, host, pref, addr, PORT);
		return 0;
	}
	return 1;
}

/* --- the server --------------------------------------------------------- */

static int
free_port(void)
{
	for (int attempt = 0; attempt < 20; attempt++) {
		int u = socket(AF_INET, SOCK_DGRAM, 0);
		struct sockaddr_in sa = {.sin_family = AF_INET};
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		socklen_t len = sizeof(sa);
		if (bind(u, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
		    getsockname(u, (struct sockaddr *)&sa, &len) < 0) {
			close(u);
			continue;
		}
		int t = socket(AF_INET, SOCK_STREAM, 0);
		int ok = bind(t, (struct sockaddr *)&sa, sizeof(sa)) == 0;
		close(t);
		close(u);
		if (ok)
			return ntohs(sa.sin_port);
	}
	return -1;
}

static const char *
find_dnsmasq(void)
{
	static const char *const paths[] = {
	    "/usr/sbin/dnsmasq", "/usr/local/sbin/dnsmasq", "/sbin/dnsmasq",
	    "/usr/bin/dnsmasq"};
	for (size_t i = 0; i < SMALT_NELEM(paths); i++)
		if (access(paths[i], X_OK) == 0)
			return paths[i];
	return NULL;
}

static void
stop_dnsmasq(void)
{
	if (watchdog_fd >= 0) {
		close(watchdog_fd);
		watchdog_fd = -1;
	}
	if (dnsmasq_pid > 0) {
		waitpid(dnsmasq_pid, NULL, 0);
		dnsmasq_pid = -1;
	}
}

/* 1 when dnsmasq answers on port. */
static int
start_dnsmasq(const char *prog, int port)
{
	char *args[80];
	char *own[80]; /* what args owns, to free */
	size_t n = 0, nown = 0;
#define ARG(s)	  (args[n++] = (char *)(s))
#define ARGF(...) (args[n++] = own[nown++] = xasprintf(__VA_ARGS__))
	ARG(prog);
	ARG("-k");
	ARG("--conf-file=/dev/null");
	ARG("--pid-file=");
	ARG("--log-facility=-");
	ARGF("--port=%d", port);
	ARG("--listen-address=127.0.0.1");
	ARG("--bind-interfaces");
	ARG("--no-resolv");
	ARG("--no-hosts");
	ARG("--local=/test/"); /* unknown .test names: NXDOMAIN */
	ARG("--mx-host=order.test,mx2.order.test,20");
	ARG("--mx-host=order.test,mx1.order.test,10");
	ARG("--host-record=mx1.order.test,127.0.0.11,fd00::11");
	ARG("--host-record=mx2.order.test,127.0.0.12");
	ARG("--mx-host=eq.test,a.eq.test,10");
	ARG("--mx-host=eq.test,b.eq.test,10");
	ARG("--host-record=a.eq.test,127.0.0.21");
	ARG("--host-record=b.eq.test,127.0.0.22");
	ARG("--host-record=implicit.test,127.0.0.30,fd00::30");
	ARG("--mx-host=skip.test,noaddr.skip.test,5");
	ARG("--mx-host=skip.test,ok.skip.test,10");
	ARG("--host-record=ok.skip.test,127.0.0.40");
	ARG("--mx-host=noaddr.test,none.noaddr.test,10");
	ARG("--txt-record=nodata.test,nothing here");
	ARG("--dns-rr=nullmx.test,15,000000"); /* MX 0 . */
	ARGF("--server=/slow.test/127.0.0.1#%d", silent_port);
	ARG("--mx-host=partial.test,h.slow.test,10");
	ARG("--mx-host=partial.test,ok.partial.test,20");
	ARG("--host-record=ok.partial.test,127.0.0.50");
	ARG("--mx-host=mxslow.test,h.slow.test,10");
	for (int i = 1; i <= 12; i++) {
		ARGF("--mx-host=many.test,h%d.many.test,%d", i, i);
		ARGF("--host-record=h%d.many.test,127.0.1.%d,fd00::1:%d", i, i,
		     i);
	}
	ARG("--host-record=relay.test,127.0.0.60,fd00::60");
	ARG("--host-record=multi.test,127.0.0.71");
	ARG("--host-record=multi.test,127.0.0.72");
	ARG("--host-record=multi.test,127.0.0.73");
	ARG("--mx-host=dup.test,d.dup.test,20");
	ARG("--mx-host=dup.test,e.dup.test,15");
	ARG("--mx-host=dup.test,D.dup.test,10");
	ARG("--host-record=d.dup.test,127.0.0.81");
	ARG("--host-record=e.dup.test,127.0.0.82");
	ARG("--dns-rr=mixnull.test,15,000000");
	ARG("--mx-host=mixnull.test,ok.skip.test,10");
	args[n] = NULL;
#undef ARG
#undef ARGF

	/* dnsmasq runs under a watchdog child that kills it when our end of
	 * a pipe closes: at stop_dnsmasq(), or when this test dies in any way
	 * (a sanitizer's exit runs no atexit handlers). */
	char *log = xasprintf("%s/dnsmasq.log", dir);
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0) {
		perror("pipe");
		exit(2);
	}
	pid_t pid = fork();
	if (pid == 0) {
		close(p[1]);
		pid_t d = fork();
		if (d == 0) {
			int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
			if (fd >= 0) {
				dup2(fd, 1);
				dup2(fd, 2);
			}
			execv(prog, args);
			perror(prog);
			_exit(127);
		}
		for (;;) {
			struct pollfd pfd = {.fd = p[0], .events = POLLIN};
			int rc = poll(&pfd, 1, 100);
			if (d < 0 || waitpid(d, NULL, WNOHANG) == d)
				_exit(1); /* dnsmasq is gone */
			if (rc > 0 || (rc < 0 && errno != EINTR))
				break; /* EOF: the test is done */
		}
		kill(d, SIGTERM);
		waitpid(d, NULL, 0);
		_exit(0);
	}
	close(p[0]);
	watchdog_fd = p[1];
	for (size_t i = 0; i < nown; i++)
		free(own[i]);
	dnsmasq_pid = pid;
	snprintf(servers, sizeof(servers), "127.0.0.1:%d", port);

	/* Ready when it answers. */
	struct dns_opts o = {.timeout_ms = 200, .tries = 1};
	char err[256];
	struct dns *probe = dns_new_opts(base, servers, &o, err, sizeof(err));
	int ok = 0;
	for (int i = 0; probe != NULL && i < 50 && !ok; i++) {
		int status;
		if (waitpid(pid, &status, WNOHANG) == pid) {
			dnsmasq_pid = -1;
			break;
		}
		struct result r;
		resolve(probe, 0, "relay.test", &r, NULL);
		ok = r.st == DNS_OK;
		if (!ok)
			usleep(100000);
	}
	dns_free(probe);
	if (!ok) {
		char *text = test_read_file(log, NULL);
		fprintf(stderr, "dnsmasq on port %d did not answer:\n%s\n",
			port, text ? text : "");
		free(text);
		stop_dnsmasq();
	}
	free(log);
	return ok;
}

/* --- the tests ---------------------------------------------------------- */

static void
test_mx_order(void)
{
	struct result r;
	resolve(dns, 1, "order.test", &r, NULL);
	CHECK(r.st == DNS_OK);
	CHECK(r.n == 3);
	CHECK_STR(r.reason, "");
	CHECK(target_is(&r, 0, "mx1.order.test", 10, "fd00::11"));
	CHECK(target_is(&r, 1, "mx1.order.test", 10, "127.0.0.11"));
	CHECK(target_is(&r, 2, "mx2.order.test", 20, "127.0.0.12"));
	/* A name with a trailing dot, in capitals. */
	resolve(dns, 1, "ORDER.test.", &r, NULL);
	CHECK(r.st == DNS_OK && r.n == 3);
}

static void
test_equal_preference(void)
{
	int a_first = 0, b_first = 0, other = 0;
	for (int i = 0; i < 60; i++) {
		struct result r;
		resolve(dns, 1, "eq.test", &r, NULL);
		if (r.st != DNS_OK || r.n != 2) {
			other++;
			continue;
		}
		quiet = 1;
		if (target_is(&r, 0, "a.eq.test", 10, "127.0.0.21") &&
		    target_is(&r, 1, "b.eq.test", 10, "127.0.0.22"))
			a_first++;
		else if (target_is(&r, 0, "b.eq.test", 10, "127.0.0.22") &&
			 target_is(&r, 1, "a.eq.test", 10, "127.0.0.21"))
			b_first++;
		else
			other++;
		quiet = 0;
	}
	printf("equal preference: a first %d, b first %d\n", a_first, b_first);
	CHECK(other == 0);
	CHECK(a_first >= 5);
	CHECK(b_first >= 5);
}

static void
test_limits(void)
{
	struct result r;
	resolve(dns, 1, "many.test", &r, NULL);
	CHECK(r.st == DNS_OK);
	CHECK(r.n == DNS_MAX_ADDRS);
	/* 10 hosts of 2 addresses each, h1 to h10 in order. */
	for (size_t i = 0; i < r.n && i < 20; i++) {
		char host[64], a6[64], a4[64];
		unsigned h = (unsigned)i / 2 + 1;
		snprintf(host, sizeof(host), "h%u.many.test", h);
		snprintf(a6, sizeof(a6), "fd00::1:%u", h);
		snprintf(a4, sizeof(a4), "127.0.1.%u", h);
		CHECK(target_is(&r, i, host, h, i % 2 ? a4 : a6));
	}
}

/* Each host's addresses come in random order; a host listed twice counts
 * once, at its best preference; a "." beside real MX hosts is skipped. */
static void
test_shuffle_dup(void)
{
	int first[3] = {0, 0, 0}, other = 0;
	for (int i = 0; i < 45; i++) {
		struct result r;
		resolve(dns, 0, "multi.test", &r, NULL);
		unsigned seen = 0;
		for (size_t j = 0; j < r.n; j++) {
			const struct sockaddr_in *s4 =
			    (const void *)&r.v[j].addr;
			unsigned last = ntohl(s4->sin_addr.s_addr) & 0xff;
			if (last >= 71 && last <= 73)
				seen |= 1u << (last - 71);
			if (j == 0 && last >= 71 && last <= 73)
				first[last - 71]++;
		}
		if (r.st != DNS_OK || r.n != 3 || seen != 7)
			other++;
	}
	printf("multi.test first address: .71 %d, .72 %d, .73 %d\n", first[0],
	       first[1], first[2]);
	CHECK(other == 0);
	CHECK(first[0] > 0 && first[1] > 0 && first[2] > 0);

	struct result r;
	resolve(dns, 1, "dup.test", &r, NULL);
	CHECK(r.st == DNS_OK && r.n == 2);
	CHECK(target_is(&r, 0, "d.dup.test", 10, "127.0.0.81"));
	CHECK(target_is(&r, 1, "e.dup.test", 15, "127.0.0.82"));

	resolve(dns, 1, "mixnull.test", &r, NULL);
	CHECK(r.st == DNS_OK && r.n == 1);
	CHECK(target_is(&r, 0, "ok.skip.test", 10, "127.0.0.40"));
}

static void
test_implicit_mx(void)
{
	struct result r;
	resolve(dns, 1, "implicit.test", &r, NULL);
	CHECK(r.st == DNS_OK);
	CHECK(r.n == 2);
	CHECK(target_is(&r, 0, "implicit.test", 0, "fd00::30"));
	CHECK(target_is(&r, 1, "implicit.test", 0, "127.0.0.30"));
}

static void
test_skip_and_nodata(void)
{
	struct result r;
	resolve(dns, 1, "skip.test", &r, NULL);
	CHECK(r.st == DNS_OK);
	CHECK(r.n == 1);
	CHECK(target_is(&r, 0, "ok.skip.test", 10, "127.0.0.40"));

	resolve(dns, 1, "noaddr.test", &r, NULL);
	CHECK(r.st == DNS_NODATA);
	CHECK(r.n == 0);
	CHECK_STR(r.reason, "Host or domain name not found. Name service "
			    "error for name=none.noaddr.test type=A: Host not "
			    "found");

	/* The name exists (a TXT record) but has no MX, A or AAAA. */
	resolve(dns, 1, "nodata.test", &r, NULL);
	CHECK(r.st == DNS_NODATA);
	CHECK_STR(r.reason, "Host or domain name not found. Name service "
			    "error for name=nodata.test type=A: Host found "
			    "but no data record of requested type");
}

static void
test_nxdomain_nullmx(void)
{
	struct result r;
	resolve(dns, 1, "nx.test", &r, NULL);
	CHECK(r.st == DNS_NXDOMAIN);
	CHECK(r.n == 0);
	CHECK_STR(r.reason, "Host or domain name not found. Name service "
			    "error for name=nx.test type=MX: Host not found");

	resolve(dns, 1, "nullmx.test", &r, NULL);
	CHECK(r.st == DNS_NULL_MX);
	CHECK_STR(r.reason, "Domain nullmx.test does not accept mail (nullMX)");

	resolve(dns, 0, "nx.test", &r, NULL);
	CHECK(r.st == DNS_NXDOMAIN);
	CHECK_STR(r.reason, "Host or domain name not found. Name service "
			    "error for name=nx.test type=A: Host not found");
}

/* dnsmasq forwards slow.test to a server that never answers. */
static void
test_timeouts(void)
{
	struct result r;
	double t0 = now_sec();
	resolve(dns, 1, "slow.test", &r, NULL);
	double t = now_sec() - t0;
	printf("slow.test MX: %.2f s\n", t);
	CHECK(r.st == DNS_TEMPFAIL);
	CHECK_STR(r.reason, "Host or domain name not found. Name service "
			    "error for name=slow.test type=MX: Host not "
			    "found, try again");
	CHECK(t < 2.5); /* 300 ms, then 600 ms, plus slack */

	/* The only MX host times out. */
	resolve(dns, 1, "mxslow.test", &r, NULL);
	CHECK(r.st == DNS_TEMPFAIL);
	CHECK_CONTAINS(r.reason, "name=h.slow.test type=A");
	CHECK_CONTAINS(r.reason, "try again");

	/* The best MX times out, the next one answers. */
	resolve(dns, 1, "partial.test", &r, NULL);
	CHECK(r.st == DNS_OK);
	CHECK(r.n == 1);
	CHECK(target_is(&r, 0, "ok.partial.test", 20, "127.0.0.50"));

	resolve(dns, 0, "h.slow.test", &r, NULL);
	CHECK(r.st == DNS_TEMPFAIL);

	/* A resolver that never answers, straight. */
	char err[256], srv[64];
	snprintf(srv, sizeof(srv), "127.0.0.1:%d", silent_port);
	struct dns_opts o = {.timeout_ms = 300, .tries = 2};
	struct dns *d = dns_new_opts(base, srv, &o, err, sizeof(err));
	CHECK(d != NULL);
	t0 = now_sec();
	resolve(d, 1, "example.test", &r, NULL);
	t = now_sec() - t0;
	printf("silent resolver: %.2f s\n", t);
	CHECK(r.st == DNS_TEMPFAIL);
	CHECK_CONTAINS(r.reason, "try again");
	CHECK(t >= 0.25 && t < 2.5);
	dns_free(d);

	/* A closed port. */
	int port = free_port();
	snprintf(srv, sizeof(srv), "127.0.0.1:%d", port);
	d = dns_new_opts(base, srv, &o, err, sizeof(err));
	CHECK(d != NULL);
	t0 = now_sec();
	resolve(d, 1, "example.test", &r, NULL);
	CHECK(r.st == DNS_TEMPFAIL);
	CHECK(now_sec() - t0 < 2.5);
	resolve(d, 0, "example.test", &r, NULL);
	CHECK(r.st == DNS_TEMPFAIL);
	dns_free(d);
}

static void
test_literals(void)
{
	struct result r;
	int sync;
	resolve(dns, 1, "[192.0.2.1]", &r, &sync);
	CHECK(sync);
	CHECK(r.st == DNS_OK && r.n == 1);
	CHECK(target_is(&r, 0, "192.0.2.1", 0, "192.0.2.1"));

	resolve(dns, 1, "[IPv6:2001:db8::1]", &r, &sync);
	CHECK(sync);
	CHECK(r.st == DNS_OK && r.n == 1);
	CHECK(target_is(&r, 0, "2001:db8::1", 0, "2001:db8::1"));

	resolve(dns, 1, "[ipv6:2001:DB8::2]", &r, &sync);
	CHECK(sync && r.st == DNS_OK && r.n == 1);
	CHECK(target_is(&r, 0, "2001:DB8::2", 0, "2001:db8::2"));

	resolve(dns, 0, "192.0.2.7", &r, &sync);
	CHECK(sync && r.st == DNS_OK && r.n == 1);
	CHECK(target_is(&r, 0, "192.0.2.7", 0, "192.0.2.7"));

	resolve(dns, 0, "2001:db8::7", &r, &sync);
	CHECK(sync && r.st == DNS_OK && r.n == 1);
	CHECK(target_is(&r, 0, "2001:db8::7", 0, "2001:db8::7"));

	resolve(dns, 0, "[192.0.2.8]", &r, &sync);
	CHECK(sync && r.st == DNS_OK && r.n == 1);

	static const char *const bad[] = {"[300.1.2.3]", "[IPv6:zz]",
					  "[IPv6:192.0.2.1x]", "[]",
					  "[example.test]"};
	for (size_t i = 0; i < SMALT_NELEM(bad); i++) {
		resolve(dns, 1, bad[i], &r, &sync);
		CHECK(sync);
		CHECK(r.st == DNS_NXDOMAIN);
		CHECK_CONTAINS(r.reason, "malformed address literal");
	}

	/* Names no DNS can have. */
	resolve(dns, 1, "", &r, &sync);
	CHECK(sync && r.st == DNS_NXDOMAIN);
	char longname[300];
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	resolve(dns, 1, longname, &r, NULL);
	CHECK(r.st == DNS_NXDOMAIN);
	resolve(dns, 1, "a..test", &r, NULL);
	CHECK(r.st == DNS_NXDOMAIN);
}

static void
test_host(void)
{
	struct result r;
	int sync;
	resolve(dns, 0, "relay.test", &r, &sync);
	CHECK(!sync);
	CHECK(r.st == DNS_OK && r.n == 2);
	CHECK(target_is(&r, 0, "relay.test", 0, "fd00::60"));
	CHECK(target_is(&r, 1, "relay.test", 0, "127.0.0.60"));

	/* No MX lookup: order.test has MX records but no address. */
	resolve(dns, 0, "order.test", &r, NULL);
	CHECK(r.st == DNS_NODATA);

	/* The hosts file answers at once. */
	char *hosts = test_read_file("/etc/hosts", NULL);
	if (hosts != NULL && strstr(hosts, "127.0.0.1") != NULL &&
	    strstr(hosts, "localhost") != NULL) {
		resolve(dns, 0, "localhost", &r, &sync);
		CHECK(sync);
		CHECK(r.st == DNS_OK && r.n >= 1);
		int found = 0;
		char buf[INET6_ADDRSTRLEN];
		for (size_t i = 0; i < r.n; i++)
			if (strcmp(addr_text(&r.v[i], buf, sizeof(buf)),
				   "127.0.0.1") == 0 &&
			    port_of(&r.v[i]) == PORT)
				found = 1;
		CHECK(found);
	}
	free(hosts);
}

struct cancel_ctx {
	struct dns_req *req;
};

static void
on_cancel_timer(evutil_socket_t fd, short what, void *arg)
{
	struct cancel_ctx *c = arg;
	(void)fd;
	(void)what;
	dns_req_cancel(c->req);
}

static void
test_cancel(void)
{
	/* At once. */
	struct result r1 = {0}, r2 = {0}, r3 = {0};
	struct dns_req *q1 =
	    dns_resolve_mx(dns, "slow.test", PORT, on_result, &r1);
	CHECK(q1 != NULL);
	dns_req_cancel(q1);
	dns_req_cancel(NULL);

	/* While the address queries of the MX hosts run: partial.test's MX
	 * answer comes at once, h.slow.test's addresses never. */
	struct dns_req *q2 =
	    dns_resolve_mx(dns, "partial.test", PORT, on_result, &r2);
	CHECK(q2 != NULL);
	struct cancel_ctx c = {q2};
	struct event *ev = evtimer_new(base, on_cancel_timer, &c);
	struct timeval tv = {0, 150000};
	evtimer_add(ev, &tv);

	/* An answered one beside them still comes. */
	struct dns_req *q3 =
	    dns_resolve_mx(dns, "order.test", PORT, on_result, &r3);
	CHECK(q3 != NULL);
	run_for(1500);
	event_free(ev);
	CHECK(r1.done == 0);
	CHECK(r2.done == 0);
	CHECK(r3.done == 1 && r3.st == DNS_OK);

	/* A cancelled request that finishes later, then more requests. */
	struct result r4 = {0};
	struct dns_req *q4 =
	    dns_resolve_host(dns, "relay.test", PORT, on_result, &r4);
	dns_req_cancel(q4);
	struct result r5;
	resolve(dns, 1, "order.test", &r5, NULL);
	CHECK(r5.st == DNS_OK && r5.n == 3);
	CHECK(r4.done == 0);
}

/* dns_free with requests of every stage pending: no callback, no leak. */
static void
test_free_pending(void)
{
	char err[256];
	struct dns_opts o = {.timeout_ms = 300, .tries = 2};
	struct dns *d = dns_new_opts(base, servers, &o, err, sizeof(err));
	CHECK(d != NULL);
	struct result r[6];
	memset(r, 0, sizeof(r));
	CHECK(dns_resolve_mx(d, "slow.test", PORT, on_result, &r[0]) != NULL);
	CHECK(dns_resolve_mx(d, "partial.test", PORT, on_result, &r[1]) !=
	      NULL);
	CHECK(dns_resolve_mx(d, "mxslow.test", PORT, on_result, &r[2]) != NULL);
	struct dns_req *q =
	    dns_resolve_host(d, "h.slow.test", PORT, on_result, &r[3]);
	CHECK(q != NULL);
	dns_req_cancel(q);
	CHECK(dns_resolve_mx(d, "order.test", PORT, on_result, &r[4]) != NULL);
	run_for(100); /* MX answers in, address queries out */
	CHECK(r[4].done == 1);
	CHECK(dns_resolve_mx(d, "many.test", PORT, on_result, &r[5]) != NULL);
	dns_free(d);
	for (int i = 0; i < 6; i++)
		if (i != 4)
			CHECK(r[i].done == 0);
	run_for(50);
}

int
main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const char *prog = find_dnsmasq();
	if (prog == NULL) {
		fprintf(stderr, "test_dns: dnsmasq not found; install Debian's "
				"dnsmasq-base\n");
		return 1;
	}
	dir = test_mkdtemp("dns");
	base = event_base_new();

	/* The server that never answers: a bound socket nobody reads. */
	silent_fd = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof(sa);
	if (bind(silent_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    getsockname(silent_fd, (struct sockaddr *)&sa, &len) < 0) {
		perror("silent socket");
		return 2;
	}
	silent_port = ntohs(sa.sin_port);

	int up = 0;
	for (int attempt = 0; attempt < 3 && !up; attempt++) {
		int port = free_port();
		up = port > 0 && start_dnsmasq(prog, port);
	}
	if (!up) {
		fprintf(stderr, "test_dns: dnsmasq did not start\n");
		return 1;
	}

	char err[256];
	struct dns_opts o = {.timeout_ms = 300, .tries = 2};
	dns = dns_new_opts(base, servers, &o, err, sizeof(err));
	if (dns == NULL) {
		fprintf(stderr, "dns_new_opts: %s\n", err);
		stop_dnsmasq();
		return 1;
	}

	test_mx_order();
	test_equal_preference();
	test_limits();
	test_implicit_mx();
	test_shuffle_dup();
	test_skip_and_nodata();
	test_nxdomain_nullmx();
	test_literals();
	test_host();
	test_timeouts();
	test_cancel();
	test_free_pending();

	dns_free(dns);
	stop_dnsmasq();
	close(silent_fd);
	event_base_free(base);
	test_rm_rf(dir);
	free(dir);
	return check_done();
}
