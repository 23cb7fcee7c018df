#include "common/dns.h"

#include <ares.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
};

struct dns_req {
	struct dns *dns;
	dns_name_cb cb;
	void *arg;
	int cancelled;
	int family;
	unsigned char addr[16];
	int *sync_done; /* set while dns_reverse has not returned yet */
	char name[NI_MAXHOST];
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
