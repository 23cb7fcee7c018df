/* DNS through c-ares on the caller's libevent loop: no lookup ever blocks
 * the loop. This much serves smtpd (client names); the delivery side adds
 * MX and address lookups on the same channel. */
#ifndef SMALT_DNS_H
#define SMALT_DNS_H

#include <event2/event.h>
#include <sys/socket.h>

struct dns;
struct dns_req;

/* servers: "" for /etc/resolv.conf, else c-ares' CSV form
 * "192.0.2.1:53,[2001:db8::1]:53". NULL with err on failure. */
struct dns *dns_new(struct event_base *base, const char *servers, char *err,
		    size_t errlen);
void dns_free(struct dns *dns);

/* name is the client's forward-confirmed name (its PTR name whose own
 * addresses include the client), or NULL: "unknown" in Postfix's words. */
typedef void (*dns_name_cb)(void *arg, const char *name);

/* Starts the lookup. When the answer is known at once (the hosts file)
 * cb runs before this returns and the result is NULL; otherwise the
 * request, which the caller may cancel (cb then never runs). */
struct dns_req *dns_reverse(struct dns *dns, const struct sockaddr *sa,
			    dns_name_cb cb, void *arg);
void dns_req_cancel(struct dns_req *req);

#endif
