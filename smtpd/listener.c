#include "smtpd/listener.h"

#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"

/* SOMAXCONN is 4096 on current Linux; a burst of connects beyond the
 * backlog is dropped SYNs and seconds of retransmit for the client. */
#define LISTEN_BACKLOG 4096

const char *
listener_kind_name(enum listener_kind kind)
{
	switch (kind) {
	case LISTENER_SMTP:
		return "smtp";
	case LISTENER_SUBMISSION:
		return "submission";
	case LISTENER_SMTPS:
		return "smtps";
	}
	return "?";
}

/* Does any interface carry an address of this family? [::1] on a host
 * with IPv6 switched off fails with EADDRNOTAVAIL, and so does a typo in
 * an IPv4 address: only the first may be skipped. */
static int
host_has_family(int family)
{
	struct ifaddrs *ifa, *i;
	int found = 0;
	if (getifaddrs(&ifa) != 0)
		return 1;
	for (i = ifa; i != NULL && !found; i = i->ifa_next)
		found = i->ifa_addr != NULL && i->ifa_addr->sa_family == family;
	freeifaddrs(ifa);
	return found;
}

/* Errors that mean "this host lacks the address family". */
static int
family_missing(int err, int family)
{
	if (err == EAFNOSUPPORT || err == EPFNOSUPPORT ||
	    err == EPROTONOSUPPORT)
		return 1;
	return err == EADDRNOTAVAIL && !host_has_family(family);
}

static int
bind_one(const struct addrinfo *ai, const char *name, enum listener_kind kind,
	 struct listeners *out, char *err, size_t errlen)
{
	int one = 1;
	int fd = socket(ai->ai_family,
			ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
			ai->ai_protocol);
	if (fd < 0) {
		if (family_missing(errno, ai->ai_family)) {
			log_warn("listen %s: skipped: %s", name,
				 strerror(errno));
			return 0;
		}
		snprintf(err, errlen, "listen %s: socket: %s", name,
			 strerror(errno));
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ai->ai_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
		int e = errno;
		close(fd);
		if (family_missing(e, ai->ai_family)) {
			log_warn("listen %s: skipped: %s", name, strerror(e));
			return 0;
		}
		snprintf(err, errlen, "listen %s: bind: %s", name, strerror(e));
		return -1;
	}
	if (listen(fd, LISTEN_BACKLOG) != 0) {
		snprintf(err, errlen, "listen %s: %s", name, strerror(errno));
		close(fd);
		return -1;
	}
	out->v = xrealloc(out->v, (out->n + 1) * sizeof(*out->v));
	struct listener *l = &out->v[out->n++];
	l->fd = fd;
	l->kind = kind;
	smalt_strlcpy(l->name, name, sizeof(l->name));
	return 0;
}

static int
bind_hostports(const struct conf_hostports *hps, enum listener_kind kind,
	       struct listeners *out, char *err, size_t errlen)
{
	for (size_t i = 0; i < hps->n; i++) {
		const struct conf_hostport *hp = &hps->v[i];
		char port[8], name[80];
		int wild = hp->host[0] == '\0' || strcmp(hp->host, "*") == 0;
		snprintf(port, sizeof(port), "%u", hp->port);
		snprintf(name, sizeof(name),
			 strchr(hp->host, ':') ? "[%s]:%u" : "%s:%u",
			 wild ? "*" : hp->host, hp->port);
		struct addrinfo hints = {.ai_family = AF_UNSPEC,
					 .ai_socktype = SOCK_STREAM,
					 .ai_flags =
					     AI_PASSIVE | AI_NUMERICSERV},
				*res, *ai;
		int rc =
		    getaddrinfo(wild ? NULL : hp->host, port, &hints, &res);
		if (rc != 0) {
			snprintf(err, errlen, "listen %s: %s", name,
				 gai_strerror(rc));
			return -1;
		}
		for (ai = res; ai != NULL; ai = ai->ai_next)
			if (bind_one(ai, name, kind, out, err, errlen) != 0) {
				freeaddrinfo(res);
				return -1;
			}
		freeaddrinfo(res);
	}
	return 0;
}

int
listeners_bind(const struct smalt_conf *conf, struct listeners *out, char *err,
	       size_t errlen)
{
	memset(out, 0, sizeof(*out));
	if (bind_hostports(&conf->listen, LISTENER_SMTP, out, err, errlen) !=
		0 ||
	    bind_hostports(&conf->submission_listen, LISTENER_SUBMISSION, out,
			   err, errlen) != 0 ||
	    bind_hostports(&conf->smtps_listen, LISTENER_SMTPS, out, err,
			   errlen) != 0) {
		listeners_close(out);
		return -1;
	}
	return 0;
}

void
listeners_close(struct listeners *l)
{
	for (size_t i = 0; i < l->n; i++)
		close(l->v[i].fd);
	free(l->v);
	memset(l, 0, sizeof(*l));
}
