/* DNS through c-ares on the caller's libevent loop: no lookup ever blocks
 * the loop. smtpd asks for client names; the delivery side asks for the
 * next hops of a domain (MX, then A/AAAA) or of a host (A/AAAA only). */
#ifndef SMALT_DNS_H
#define SMALT_DNS_H

#include <event2/event.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct dns;
struct dns_req;

/* How long one query may take: each of `tries` attempts per server waits
 * timeout_ms (c-ares doubles it on each round). 0 keeps the default
 * (2000 ms, 2 tries). */
struct dns_opts {
	unsigned timeout_ms;
	unsigned tries;
};

/* servers: "" for /etc/resolv.conf, else c-ares' CSV form
 * "192.0.2.1:53,[2001:db8::1]:53". opts may be NULL. NULL with err on
 * failure. */
struct dns *dns_new(struct event_base *base, const char *servers, char *err,
		    size_t errlen);
struct dns *dns_new_opts(struct event_base *base, const char *servers,
			 const struct dns_opts *opts, char *err, size_t errlen);
/* Requests still pending are dropped: their callbacks never run. Not to be
 * called from inside a dns callback. */
void dns_free(struct dns *dns);

/* name is the client's forward-confirmed name (its PTR name whose own
 * addresses include the client), or NULL: "unknown" in Postfix's words. */
typedef void (*dns_name_cb)(void *arg, const char *name);

/* Starts the lookup. When the answer is known at once (the hosts file)
 * cb runs before this returns and the result is NULL; otherwise the
 * request, which the caller may cancel (cb then never runs). */
struct dns_req *dns_reverse(struct dns *dns, const struct sockaddr *sa,
			    dns_name_cb cb, void *arg);
/* Any request, at any time before its callback ran; NULL is ignored. The
 * memory goes once c-ares is done with the queries under way. */
void dns_req_cancel(struct dns_req *req);

/* One next hop: an address of an MX host (or of the host itself). */
struct dns_target {
	char host[256]; /* the MX host, the domain (implicit MX), or the
			   address of a literal, without brackets */
	unsigned pref;	/* MX preference; 0 for an implicit MX */
	int family;	/* AF_INET6 or AF_INET */
	struct sockaddr_storage addr; /* with the port */
	socklen_t addrlen;
};

enum dns_status {
	DNS_OK,
	DNS_NXDOMAIN, /* the domain does not exist: bounce */
	DNS_NULL_MX,  /* RFC 7505 "0 .": bounce */
	DNS_NODATA,   /* no MX and no A/AAAA, or no MX host has any: bounce */
	DNS_TEMPFAIL, /* SERVFAIL, timeout, refused...: defer */
};

#define DNS_MAX_MX    10 /* MX hosts looked at */
#define DNS_MAX_ADDRS 20 /* addresses handed back, all hosts together */

/* v holds n targets when st is DNS_OK (n >= 1), else n is 0. reason is
 * NULL for DNS_OK, else what failed in Postfix's words ("Host or domain
 * name not found. Name service error for name=example.invalid type=MX:
 * Host not found"). Both are valid during the call only. */
typedef void (*dns_mx_cb)(void *arg, enum dns_status st,
			  const struct dns_target *v, size_t n,
			  const char *reason);

/* The next hops for mail to domain. MX records in preference order, in
 * random order among equal preferences (RFC 5321 5.1), each MX host
 * resolved to its IPv6 then its IPv4 addresses (all addresses of the best
 * MX first, then the next MX...). No MX: the domain's own A/AAAA (implicit
 * MX, pref 0). A single "0 ." MX: DNS_NULL_MX. NXDOMAIN: DNS_NXDOMAIN.
 * SERVFAIL, timeout...: DNS_TEMPFAIL. An MX host without address is
 * skipped; if none has any, DNS_TEMPFAIL when a lookup failed temporarily,
 * else DNS_NODATA. At most DNS_MAX_MX hosts and DNS_MAX_ADDRS addresses.
 * port goes into each addr. A literal "[192.0.2.1]", "[IPv6:2001:db8::1]"
 * (or a bare address) needs no DNS. No search domains are applied.
 *
 * cb runs exactly once, unless the request is cancelled or dns freed
 * first. When the answer is known at once (a literal, a malformed name)
 * cb runs before this returns and the result is NULL; otherwise the
 * request, for dns_req_cancel. */
struct dns_req *dns_resolve_mx(struct dns *dns, const char *domain,
			       uint16_t port, dns_mx_cb cb, void *arg);
/* The same without MX (the relay channel's [host]:port next hops, the
 * smarthost): the A/AAAA of host, pref 0. The hosts file is read first (an
 * answer from it comes back at once); then DNS. */
struct dns_req *dns_resolve_host(struct dns *dns, const char *host,
				 uint16_t port, dns_mx_cb cb, void *arg);

#endif
