#include "common/dns.h"

#include <ares.h>
#include <ares_nameser.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"

struct dns_sock {
	ares_socket_t fd;
	struct event *ev;
};

struct dns {
	struct event_base *base;
	ares_channel channel;
	struct event *timer;
	struct dns_sock *socks;
	size_t nsocks;
	int destroying;
	uint64_t rng; /* xorshift64* state: the order of equal MX */
};

enum req_kind { REQ_REVERSE, REQ_MX, REQ_HOST };

/* One MX host (or the domain itself, or the relay host) whose AAAA and A
 * queries are under way or done. */
struct dns_host {
	struct dns_req *req;
	char name[256];
	unsigned pref;
	int st6, st4; /* c-ares status of each query */
	size_t n6, n4;
	struct in6_addr a6[DNS_MAX_ADDRS];
	struct in_addr a4[DNS_MAX_ADDRS];
};

struct dns_req {
	struct dns *dns;
	enum req_kind kind;
	int cancelled;
	int *sync_done; /* set while the starting call has not returned yet */
	/* dns_reverse */
	dns_name_cb cb;
	void *arg;
	int family;
	unsigned char addr[16];
	char name[NI_MAXHOST];
	/* dns_resolve_mx, dns_resolve_host */
	dns_mx_cb mx_cb;
	uint16_t port;
	int pending;  /* c-ares queries whose callback has not run */
	int implicit; /* hosts[0] is the domain itself, no MX */
	char domain[256];
	struct dns_host *hosts;
	size_t nhosts;
};

static void dns_schedule(struct dns *dns);

static void
on_sock(evutil_socket_t fd, short what, void *arg)
{
	struct dns *dns = arg;
	ares_process_fd(dns->channel,
			(what & EV_READ) ? (ares_socket_t)fd : ARES_SOCKET_BAD,
			(what & EV_WRITE) ? (ares_socket_t)fd
					  : ARES_SOCKET_BAD);
	dns_schedule(dns);
}

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct dns *dns = arg;
	(void)fd;
	(void)what;
	ares_process_fd(dns->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	dns_schedule(dns);
}

/* c-ares says which of its sockets want reading or writing. */
static void
sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	struct dns *dns = data;
	size_t i;
	for (i = 0; i < dns->nsocks; i++)
		if (dns->socks[i].fd == fd)
			break;
	if (i < dns->nsocks) {
		event_free(dns->socks[i].ev);
		dns->socks[i] = dns->socks[--dns->nsocks];
	}
	if (!readable && !writable)
		return;
	short what =
	    EV_PERSIST | (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0);
	dns->socks =
	    xrealloc(dns->socks, (dns->nsocks + 1) * sizeof(*dns->socks));
	struct dns_sock *s = &dns->socks[dns->nsocks++];
	s->fd = fd;
	s->ev = event_new(dns->base, fd, what, on_sock, dns);
	event_add(s->ev, NULL);
}

static void
dns_schedule(struct dns *dns)
{
	struct timeval tv, *t = ares_timeout(dns->channel, NULL, &tv);
	if (t != NULL)
		event_add(dns->timer, t);
	else
		event_del(dns->timer);
}

struct dns *
dns_new(struct event_base *base, const char *servers, char *err, size_t errlen)
{
	return dns_new_opts(base, servers, NULL, err, errlen);
}

struct dns *
dns_new_opts(struct event_base *base, const char *servers,
	     const struct dns_opts *opts, char *err, size_t errlen)
{
	static int library_ready;
	if (!library_ready) {
		int rc = ares_library_init(ARES_LIB_INIT_ALL);
		if (rc != ARES_SUCCESS) {
			snprintf(err, errlen, "c-ares: %s", ares_strerror(rc));
			return NULL;
		}
		library_ready = 1;
	}
	struct dns *dns = xcalloc(1, sizeof(*dns));
	dns->base = base;
	struct ares_options opt = {0};
	opt.sock_state_cb = sock_state;
	opt.sock_state_cb_data = dns;
	opt.timeout = 2000; /* ms per try; a mail client waits for this */
	opt.tries = 2;
	if (opts != NULL && opts->timeout_ms > 0)
		opt.timeout = (int)opts->timeout_ms;
	if (opts != NULL && opts->tries > 0)
		opt.tries = (int)opts->tries;
	opt.lookups = (char *)"fb"; /* /etc/hosts, then DNS */
	int rc = ares_init_options(&dns->channel, &opt,
				   ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS |
				       ARES_OPT_TRIES | ARES_OPT_LOOKUPS);
	if (rc != ARES_SUCCESS) {
		snprintf(err, errlen, "c-ares: %s", ares_strerror(rc));
		free(dns);
		return NULL;
	}
	if (servers != NULL && *servers != '\0' &&
	    (rc = ares_set_servers_ports_csv(dns->channel, servers)) !=
		ARES_SUCCESS) {
		snprintf(err, errlen, "resolver %s: %s", servers,
			 ares_strerror(rc));
		ares_destroy(dns->channel);
		free(dns);
		return NULL;
	}
	dns->timer = evtimer_new(base, on_timer, dns);
	if (getrandom(&dns->rng, sizeof(dns->rng), GRND_NONBLOCK) !=
	    (ssize_t)sizeof(dns->rng))
		dns->rng = now_usec() ^ ((uint64_t)getpid() << 32);
	if (dns->rng == 0)
		dns->rng = 0x9e3779b97f4a7c15ULL;
	return dns;
}

void
dns_free(struct dns *dns)
{
	if (dns == NULL)
		return;
	/* Pending callbacks run with ARES_EDESTRUCTION; they only free. */
	dns->destroying = 1;
	ares_destroy(dns->channel);
	for (size_t i = 0; i < dns->nsocks; i++)
		event_free(dns->socks[i].ev);
	free(dns->socks);
	event_free(dns->timer);
	free(dns);
}

static void
finish(struct dns_req *req, const char *name)
{
	if (req->sync_done != NULL)
		*req->sync_done = 1;
	if (!req->cancelled && !req->dns->destroying)
		req->cb(req->arg, name);
}

/* The forward half: does the PTR name lead back to the client? */
static void
on_forward(void *arg, int status, int timeouts, struct hostent *he)
{
	struct dns_req *req = arg;
	(void)timeouts;
	const char *name = NULL;
	if (status == ARES_SUCCESS && he != NULL &&
	    he->h_addrtype == req->family) {
		size_t len = req->family == AF_INET ? 4 : 16;
		for (char **a = he->h_addr_list; *a != NULL; a++)
			if (memcmp(*a, req->addr, len) == 0)
				name = req->name;
	}
	finish(req, name);
	free(req);
}

static void
on_reverse(void *arg, int status, int timeouts, struct hostent *he)
{
	struct dns_req *req = arg;
	(void)timeouts;
	if (status != ARES_SUCCESS || he == NULL || he->h_name == NULL ||
	    req->cancelled || req->dns->destroying ||
	    strlen(he->h_name) >= sizeof(req->name)) {
		finish(req, NULL);
		free(req);
		return;
	}
	smalt_strlcpy(req->name, he->h_name, sizeof(req->name));
	ares_gethostbyname(req->dns->channel, req->name, req->family,
			   on_forward, req);
}

struct dns_req *
dns_reverse(struct dns *dns, const struct sockaddr *sa, dns_name_cb cb,
	    void *arg)
{
	struct dns_req *req = xcalloc(1, sizeof(*req));
	req->dns = dns;
	req->cb = cb;
	req->arg = arg;
	req->family = sa->sa_family;
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)sa;
		memcpy(req->addr, &s6->sin6_addr, 16);
	} else {
		const struct sockaddr_in *s4 = (const void *)sa;
		memcpy(req->addr, &s4->sin_addr, 4);
	}
	/* An answer from the hosts file comes back inside this call and
	 * frees req; the flag on our stack tells. */
	int sync_done = 0;
	req->sync_done = &sync_done;
	ares_gethostbyaddr(dns->channel, req->addr,
			   req->family == AF_INET ? 4 : 16, req->family,
			   on_reverse, req);
	dns_schedule(dns);
	if (sync_done)
		return NULL;
	req->sync_done = NULL;
	return req;
}

void
dns_req_cancel(struct dns_req *req)
{
	if (req != NULL)
		req->cancelled = 1;
}

/* --- next hops: MX, then A/AAAA --------------------------------------- */

static uint64_t
dns_random(struct dns *dns)
{
	uint64_t x = dns->rng;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	dns->rng = x;
	return x * 0x2545f4914f6cdd1dULL;
}

/* What a c-ares status means for mail. */
static enum dns_status
classify(int status)
{
	switch (status) {
	case ARES_SUCCESS:
		return DNS_OK;
	case ARES_ENODATA:
		return DNS_NODATA;
	case ARES_ENOTFOUND:
	case ARES_EBADNAME: /* no such name can exist */
		return DNS_NXDOMAIN;
	default:
		return DNS_TEMPFAIL;
	}
}

/* Postfix's dns_strerror() texts, by what the status means. */
static const char *
status_text(int status)
{
	switch (classify(status)) {
	case DNS_NXDOMAIN:
		return "Host not found";
	case DNS_NODATA:
	case DNS_OK: /* an answer without a record of the type asked */
		return "Host found but no data record of requested type";
	default:
		return status == ARES_EBADRESP
			   ? "Malformed or unexpected name server reply"
			   : "Host not found, try again";
	}
}

static void
name_error(char *buf, size_t len, const char *name, const char *type,
	   int status)
{
	snprintf(buf, len,
		 "Host or domain name not found. Name service error for "
		 "name=%s type=%s: %s",
		 name, type, status_text(status));
}

static void
put_target(struct dns_target *t, const char *host, unsigned pref, int family,
	   const void *addr, uint16_t port)
{
	memset(t, 0, sizeof(*t));
	smalt_strlcpy(t->host, host, sizeof(t->host));
	t->pref = pref;
	t->family = family;
	if (family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&t->addr;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		memcpy(&s6->sin6_addr, addr, sizeof(s6->sin6_addr));
		t->addrlen = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&t->addr;
		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		memcpy(&s4->sin_addr, addr, sizeof(s4->sin_addr));
		t->addrlen = sizeof(*s4);
	}
}

/* "[192.0.2.1]", "[IPv6:2001:db8::1]", or a bare address: 1 and *t set;
 * 0 when s is no address at all; -1 for a malformed literal. */
static int
parse_literal(const char *s, uint16_t port, struct dns_target *t)
{
	char buf[INET6_ADDRSTRLEN + 8];
	unsigned char a[16];
	size_t len = strlen(s);
	int bracketed = len >= 2 && s[0] == '[' && s[len - 1] == ']';
	if (bracketed) {
		s++;
		len -= 2;
	}
	if (len >= sizeof(buf))
		return bracketed ? -1 : 0;
	memcpy(buf, s, len);
	buf[len] = '\0';
	const char *p = buf;
	int v6 = ascii_strncasecmp(p, "IPv6:", 5) == 0;
	if (v6)
		p += 5;
	if (!bracketed && v6)
		return 0;
	if (!v6 && inet_pton(AF_INET, p, a) == 1) {
		put_target(t, p, 0, AF_INET, a, port);
		return 1;
	}
	/* RFC 5321 wants the IPv6: tag; a bare IPv6 address is taken too. */
	if ((v6 || !bracketed) && inet_pton(AF_INET6, p, a) == 1) {
		put_target(t, p, 0, AF_INET6, a, port);
		return 1;
	}
	return bracketed ? -1 : 0;
}

static void
free_req(struct dns_req *req)
{
	if (req->sync_done != NULL)
		*req->sync_done = 1;
	free(req->hosts);
	free(req);
}

/* The end of a next-hop request: the callback (unless cancelled), then
 * the memory. No query of req may be pending. */
static void
deliver(struct dns_req *req, enum dns_status st, const struct dns_target *v,
	size_t n, const char *reason)
{
	if (req->sync_done != NULL)
		*req->sync_done = 1;
	req->sync_done = NULL;
	if (!req->cancelled && !req->dns->destroying)
		req->mx_cb(req->arg, st, v, n, reason);
	free_req(req);
}

static void
shuffle6(struct dns *dns, struct in6_addr *a, size_t n)
{
	for (size_t i = n; i > 1; i--) {
		size_t j = (size_t)(dns_random(dns) % i);
		struct in6_addr t = a[i - 1];
		a[i - 1] = a[j];
		a[j] = t;
	}
}

static void
shuffle4(struct dns *dns, struct in_addr *a, size_t n)
{
	for (size_t i = n; i > 1; i--) {
		size_t j = (size_t)(dns_random(dns) % i);
		struct in_addr t = a[i - 1];
		a[i - 1] = a[j];
		a[j] = t;
	}
}

static int
is_temp(int status)
{
	return classify(status) == DNS_TEMPFAIL;
}

/* The error of a host without addresses: the temporary one first, then
 * the A query's. */
static void
host_error(const struct dns_host *h, char *buf, size_t len)
{
	if (is_temp(h->st4) || !is_temp(h->st6))
		name_error(buf, len, h->name, "A", h->st4);
	else
		name_error(buf, len, h->name, "AAAA", h->st6);
}

/* Every address query is done: the answer. */
static void
finish_hosts(struct dns_req *req)
{
	struct dns_target v[DNS_MAX_ADDRS];
	size_t n = 0;
	for (size_t i = 0; i < req->nhosts; i++) {
		struct dns_host *h = &req->hosts[i];
		shuffle6(req->dns, h->a6, h->n6);
		shuffle4(req->dns, h->a4, h->n4);
		for (size_t j = 0; j < h->n6 && n < DNS_MAX_ADDRS; j++)
			put_target(&v[n++], h->name, h->pref, AF_INET6,
				   &h->a6[j], req->port);
		for (size_t j = 0; j < h->n4 && n < DNS_MAX_ADDRS; j++)
			put_target(&v[n++], h->name, h->pref, AF_INET,
				   &h->a4[j], req->port);
	}
	if (n > 0) {
		deliver(req, DNS_OK, v, n, NULL);
		return;
	}
	char reason[512];
	enum dns_status st = DNS_NODATA;
	const struct dns_host *bad = &req->hosts[0];
	for (size_t i = 0; i < req->nhosts; i++)
		if (is_temp(req->hosts[i].st4) || is_temp(req->hosts[i].st6)) {
			bad = &req->hosts[i];
			st = DNS_TEMPFAIL;
			break;
		}
	/* The name itself (not an MX host) may not exist after all. */
	if (st == DNS_NODATA && (req->implicit || req->kind == REQ_HOST) &&
	    (classify(bad->st4) == DNS_NXDOMAIN ||
	     classify(bad->st6) == DNS_NXDOMAIN))
		st = DNS_NXDOMAIN;
	host_error(bad, reason, sizeof(reason));
	deliver(req, st, NULL, 0, reason);
}

/* After one of req's queries: 1 when req is done with (freed), so the
 * callback must not go on; otherwise the caller continues. */
static int
query_done(struct dns_req *req)
{
	req->pending--;
	if (req->pending > 0)
		return 1;
	if (req->cancelled || req->dns->destroying) {
		free_req(req);
		return 1;
	}
	return 0;
}

static void
on_aaaa(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct dns_host *h = arg;
	struct dns_req *req = h->req;
	(void)timeouts;
	if (status == ARES_SUCCESS) {
		struct ares_addr6ttl ttl[DNS_MAX_ADDRS];
		int n = DNS_MAX_ADDRS;
		status = ares_parse_aaaa_reply(abuf, alen, NULL, ttl, &n);
		if (status == ARES_SUCCESS && n == 0)
			status = ARES_ENODATA;
		for (int i = 0; status == ARES_SUCCESS && i < n; i++)
			memcpy(&h->a6[h->n6++], &ttl[i].ip6addr,
			       sizeof(h->a6[0]));
	}
	h->st6 = status;
	if (!query_done(req))
		finish_hosts(req);
}

static void
on_a(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct dns_host *h = arg;
	struct dns_req *req = h->req;
	(void)timeouts;
	if (status == ARES_SUCCESS) {
		struct ares_addrttl ttl[DNS_MAX_ADDRS];
		int n = DNS_MAX_ADDRS;
		status = ares_parse_a_reply(abuf, alen, NULL, ttl, &n);
		if (status == ARES_SUCCESS && n == 0)
			status = ARES_ENODATA;
		for (int i = 0; status == ARES_SUCCESS && i < n; i++)
			h->a4[h->n4++] = ttl[i].ipaddr;
	}
	h->st4 = status;
	if (!query_done(req))
		finish_hosts(req);
}

/* Starts the AAAA and A queries of every host. Any of them may answer
 * inside ares_query (a malformed name); one pending count of our own
 * keeps req alive until all are started. */
static void
resolve_hosts(struct dns_req *req)
{
	req->pending++;
	for (size_t i = 0; i < req->nhosts; i++) {
		struct dns_host *h = &req->hosts[i];
		h->req = req;
		h->st6 = h->st4 = ARES_ENODATA;
		req->pending += 2;
		ares_query(req->dns->channel, h->name, C_IN, T_AAAA, on_aaaa,
			   h);
		ares_query(req->dns->channel, h->name, C_IN, T_A, on_a, h);
	}
	if (!query_done(req))
		finish_hosts(req);
}

struct mx_entry {
	unsigned pref;
	uint64_t key; /* random: the order among equal preferences */
	const char *host;
};

static int
mx_cmp(const void *a, const void *b)
{
	const struct mx_entry *x = a, *y = b;
	if (x->pref != y->pref)
		return x->pref < y->pref ? -1 : 1;
	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	return 0;
}

/* The domain is its own (implicit) MX, RFC 5321 5.1. */
static void
implicit_mx(struct dns_req *req)
{
	req->implicit = 1;
	req->hosts = xcalloc(1, sizeof(*req->hosts));
	req->nhosts = 1;
	smalt_strlcpy(req->hosts[0].name, req->domain,
		      sizeof(req->hosts[0].name));
	resolve_hosts(req);
}

static void
on_mx(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct dns_req *req = arg;
	(void)timeouts;
	if (query_done(req))
		return;
	char reason[512];
	struct ares_mx_reply *mx = NULL;
	if (status == ARES_SUCCESS)
		status = ares_parse_mx_reply(abuf, alen, &mx);
	if (status == ARES_ENODATA || (status == ARES_SUCCESS && mx == NULL)) {
		implicit_mx(req); /* or only a CNAME came back */
		return;
	}
	if (status != ARES_SUCCESS) {
		enum dns_status st = classify(status);
		name_error(reason, sizeof(reason), req->domain, "MX", status);
		deliver(req, st == DNS_NXDOMAIN ? DNS_NXDOMAIN : DNS_TEMPFAIL,
			NULL, 0, reason);
		return;
	}
	size_t n = 0, cap = 0;
	int dots = 0;
	struct mx_entry *e = NULL;
	for (struct ares_mx_reply *r = mx; r != NULL; r = r->next) {
		/* "." (c-ares gives "") is no host: RFC 7505's null MX. */
		if (r->host == NULL || r->host[0] == '\0' ||
		    strcmp(r->host, ".") == 0) {
			dots++;
			continue;
		}
		if (strlen(r->host) >= sizeof(req->hosts[0].name))
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 8;
			e = xrealloc(e, cap * sizeof(*e));
		}
		e[n].pref = r->priority;
		e[n].key = dns_random(req->dns);
		e[n].host = r->host;
		n++;
	}
	if (n == 0) {
		ares_free_data(mx);
		free(e);
		if (dots > 0) {
			snprintf(reason, sizeof(reason),
				 "Domain %s does not accept mail (nullMX)",
				 req->domain);
			deliver(req, DNS_NULL_MX, NULL, 0, reason);
		} else {
			name_error(reason, sizeof(reason), req->domain, "MX",
				   ARES_EBADRESP);
			deliver(req, DNS_TEMPFAIL, NULL, 0, reason);
		}
		return;
	}
	qsort(e, n, sizeof(*e), mx_cmp);
	req->hosts =
	    xcalloc(n < DNS_MAX_MX ? n : DNS_MAX_MX, sizeof(*req->hosts));
	for (size_t i = 0; i < n && req->nhosts < DNS_MAX_MX; i++) {
		size_t j;
		for (j = 0; j < req->nhosts; j++) /* the best pref only */
			if (ascii_strcasecmp(req->hosts[j].name, e[i].host) ==
			    0)
				break;
		if (j < req->nhosts)
			continue;
		struct dns_host *h = &req->hosts[req->nhosts++];
		smalt_strlcpy(h->name, e[i].host, sizeof(h->name));
		h->pref = e[i].pref;
	}
	free(e);
	ares_free_data(mx);
	resolve_hosts(req);
}

static struct dns_req *
new_hop_req(struct dns *dns, enum req_kind kind, const char *name,
	    uint16_t port, dns_mx_cb cb, void *arg)
{
	struct dns_req *req = xcalloc(1, sizeof(*req));
	req->dns = dns;
	req->kind = kind;
	req->mx_cb = cb;
	req->arg = arg;
	req->port = port;
	smalt_strlcpy(req->domain, name, sizeof(req->domain));
	return req;
}

/* The answers that need no DNS: 1 when cb has run. */
static int
answer_at_once(const char *name, const char *type, uint16_t port, dns_mx_cb cb,
	       void *arg)
{
	struct dns_target t;
	char reason[600];
	int rc = parse_literal(name, port, &t);
	if (rc > 0) {
		cb(arg, DNS_OK, &t, 1, NULL);
		return 1;
	}
	if (rc < 0) {
		snprintf(reason, sizeof(reason),
			 "malformed address literal: %.300s", name);
		cb(arg, DNS_NXDOMAIN, NULL, 0, reason);
		return 1;
	}
	size_t len = strlen(name);
	if (len == 0 || len >= 255 || name[0] == '.') {
		name_error(reason, sizeof(reason), len ? name : "\"\"", type,
			   ARES_EBADNAME);
		cb(arg, DNS_NXDOMAIN, NULL, 0, reason);
		return 1;
	}
	return 0;
}

struct dns_req *
dns_resolve_mx(struct dns *dns, const char *domain, uint16_t port, dns_mx_cb cb,
	       void *arg)
{
	if (answer_at_once(domain, "MX", port, cb, arg))
		return NULL;
	struct dns_req *req = new_hop_req(dns, REQ_MX, domain, port, cb, arg);
	int sync_done = 0;
	req->sync_done = &sync_done;
	req->pending = 1;
	ares_query(dns->channel, req->domain, C_IN, T_MX, on_mx, req);
	dns_schedule(dns);
	if (sync_done)
		return NULL;
	req->sync_done = NULL;
	return req;
}

/* The hosts file's addresses of name for one family, into h. */
static void
hosts_file(struct dns *dns, struct dns_host *h, int family)
{
	struct hostent *he = NULL;
	if (ares_gethostbyname_file(dns->channel, h->name, family, &he) !=
	    ARES_SUCCESS)
		return;
	if (he->h_addrtype == family)
		for (char **a = he->h_addr_list;
		     *a != NULL && h->n4 + h->n6 < DNS_MAX_ADDRS; a++) {
			if (family == AF_INET6)
				memcpy(&h->a6[h->n6++], *a, 16);
			else
				memcpy(&h->a4[h->n4++], *a, 4);
		}
	ares_free_hostent(he);
}

struct dns_req *
dns_resolve_host(struct dns *dns, const char *host, uint16_t port, dns_mx_cb cb,
		 void *arg)
{
	if (answer_at_once(host, "A", port, cb, arg))
		return NULL;
	struct dns_req *req = new_hop_req(dns, REQ_HOST, host, port, cb, arg);
	req->hosts = xcalloc(1, sizeof(*req->hosts));
	req->nhosts = 1;
	struct dns_host *h = &req->hosts[0];
	smalt_strlcpy(h->name, host, sizeof(h->name));
	hosts_file(dns, h, AF_INET6);
	hosts_file(dns, h, AF_INET);
	if (h->n6 + h->n4 > 0) {
		finish_hosts(req);
		return NULL;
	}
	int sync_done = 0;
	req->sync_done = &sync_done;
	resolve_hosts(req);
	dns_schedule(dns);
	if (sync_done)
		return NULL;
	req->sync_done = NULL;
	return req;
}
