#include "smtpd/smtpd.h"

#include <errno.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "smtpd/host_wake.h"
#include "smtpd/smtp_session.h"

/* The per-address key: the address alone, port zeroed, so that every
 * connection from one client counts together. IPv4-mapped IPv6 counts
 * as its IPv4 address. */
static void
ip_key(const struct sockaddr *sa, struct sockaddr_storage *key)
{
	memset(key, 0, sizeof(*key));
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)sa;
		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
			struct sockaddr_in *s4 = (void *)key;
			s4->sin_family = AF_INET;
			memcpy(&s4->sin_addr, &s6->sin6_addr.s6_addr[12], 4);
			return;
		}
		struct sockaddr_in6 *k6 = (void *)key;
		k6->sin6_family = AF_INET6;
		k6->sin6_addr = s6->sin6_addr;
		return;
	}
	struct sockaddr_in *k4 = (void *)key;
	k4->sin_family = AF_INET;
	k4->sin_addr = ((const struct sockaddr_in *)(const void *)sa)->sin_addr;
}

static struct ip_count *
ip_find(struct smtpd *sd, const struct sockaddr_storage *key)
{
	for (size_t i = 0; i < sd->nipcounts; i++)
		if (memcmp(&sd->ipcounts[i].addr, key, sizeof(*key)) == 0)
			return &sd->ipcounts[i];
	return NULL;
}

void
smtpd_ip_release(struct smtpd *sd, const struct sockaddr_storage *key)
{
	struct ip_count *c = ip_find(sd, key);
	if (c != NULL && --c->n == 0)
		*c = sd->ipcounts[--sd->nipcounts];
}

/* Refuses a connection over a limit without making a session for it. */
static void
refuse(struct smtpd *sd, int fd, const char *why)
{
	char line[300];
	int n = snprintf(line, sizeof(line), "421 4.7.0 %s Error: %s\r\n",
			 sd->conf->hostname, why);
	/* Non-blocking and best effort: the socket buffer of a new
	 * connection always has room for one line. */
	if (send(fd, line, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		log_debug("refuse: %s", strerror(errno));
	close(fd);
	sd->stats.rejected++;
}

/* Counts the session against its address and starts it. */
static void
count_and_start(struct smtpd *sd, int fd, struct sockaddr *sa, socklen_t salen,
		const struct sockaddr_storage *key, enum listener_kind kind)
{
	struct ip_count *c = ip_find(sd, key);
	if (c == NULL) {
		sd->ipcounts = xrealloc(
		    sd->ipcounts, (sd->nipcounts + 1) * sizeof(*sd->ipcounts));
		c = &sd->ipcounts[sd->nipcounts++];
		c->addr = *key;
		c->n = 0;
	}
	c->n++;
	smtp_session_start(sd, fd, sa, salen, key, kind);
}

struct accept_ctx {
	struct smtpd *sd;
	enum listener_kind kind;
	struct evconnlistener *lev;
};

static void
on_accept(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
	  int salen, void *arg)
{
	struct accept_ctx *ctx = arg;
	struct smtpd *sd = ctx->sd;
	struct sockaddr_storage key;
	(void)lev;

	ip_key(sa, &key);
	if (sd->nsessions >= sd->conf->max_connections) {
		log_warn("connection limit of %u reached; refusing a client",
			 sd->conf->max_connections);
		refuse(sd, fd, "too many connections");
		return;
	}
	struct ip_count *c = ip_find(sd, &key);
	if (c != NULL && c->n >= sd->conf->max_connections_per_ip) {
		log_warn("per-address connection limit of %u reached",
			 sd->conf->max_connections_per_ip);
		refuse(sd, fd, "too many connections from your address");
		return;
	}
	host_wake_note(sd->host_wake, sa);
	count_and_start(sd, fd, sa, (socklen_t)salen, &key, ctx->kind);
}

void
smtpd_serve_fd(struct smtpd *sd, int fd, const struct sockaddr *sa,
	       socklen_t salen)
{
	struct sockaddr_storage key;
	ip_key((struct sockaddr *)sa, &key);
	count_and_start(sd, fd, (struct sockaddr *)sa, salen, &key,
			LISTENER_SMTP);
}

void
smtpd_set_commit_hook(struct smtpd *sd, smtpd_commit_hook fn, void *arg)
{
	sd->commit_hook = fn;
	sd->commit_hook_arg = arg;
}

static void
on_accept_resume(evutil_socket_t fd, short what, void *arg)
{
	struct accept_ctx *ctx = arg;
	(void)fd;
	(void)what;
	if (ctx->sd->drain_done == NULL) /* not shutting down */
		evconnlistener_enable(ctx->lev);
}

static void
on_accept_error(struct evconnlistener *lev, void *arg)
{
	/* EMFILE and friends: the pending connection stays, so accepting
	 * again at once would spin. Pause this listener for a second, as
	 * Postfix's master does. */
	log_warn("accept: %s; pausing this listener for 1 s", strerror(errno));
	evconnlistener_disable(lev);
	struct timeval tv = {1, 0};
	event_base_once(evconnlistener_get_base(lev), -1, EV_TIMEOUT,
			on_accept_resume, arg, &tv);
}

static void
on_commit_results(evutil_socket_t fd, short what, void *arg)
{
	struct smtpd *sd = arg;
	struct commit_result r[64];
	size_t n;
	(void)fd;
	(void)what;
	while ((n = queue_committer_results(sd->committer, r, 64)) > 0)
		for (size_t i = 0; i < n; i++) {
			if (r[i].ok && sd->commit_hook != NULL &&
			    sd->commit_hook(r[i].id, sd->commit_hook_arg) !=
				0) {
				r[i].ok = 0;
				r[i].error = errno ? errno : EIO;
			}
			smtp_session_committed(r[i].token, &r[i]);
		}
}

/* conf's resolver list in c-ares' CSV form; "" for resolv.conf. */
static char *
resolver_csv(const struct conf_hostports *r)
{
	char *csv = xstrdup("");
	for (size_t i = 0; i < r->n; i++) {
		char *next = xasprintf(
		    strchr(r->v[i].host, ':') ? "%s%s[%s]:%u" : "%s%s%s:%u",
		    csv, i ? "," : "", r->v[i].host, r->v[i].port);
		free(csv);
		csv = next;
	}
	return csv;
}

struct smtpd *
smtpd_new(struct event_base *base, struct smalt_conf *conf, struct queue *queue,
	  struct listeners *listeners, char *err, size_t errlen)
{
	for (size_t i = 0; i < listeners->n; i++)
		if (listeners->v[i].kind == LISTENER_SMTPS) {
			/* Plain text on 465 would mislead every client. */
			snprintf(err, errlen,
				 "smtps_listen: implicit TLS is not in this "
				 "version of smalt; remove smtps_listen");
			return NULL;
		}
	struct smtpd *sd = xcalloc(1, sizeof(*sd));
	sd->base = base;
	sd->conf = conf;
	sd->queue = queue;
	if (policy_load(&sd->policy, conf, err, errlen) != 0) {
		free(sd);
		return NULL;
	}
	char *servers = resolver_csv(&conf->resolver);
	sd->dns = dns_new(base, servers, err, errlen);
	free(servers);
	if (sd->dns == NULL) {
		policy_free(&sd->policy);
		free(sd);
		return NULL;
	}
	sd->host_wake = host_wake_new(queue_path(queue));
	sd->committer = queue_committer_start(queue);
	sd->commit_ev = event_new(base, queue_committer_fd(sd->committer),
				  EV_READ | EV_PERSIST, on_commit_results, sd);
	event_add(sd->commit_ev, NULL);
	sd->levs = xcalloc(listeners->n, sizeof(*sd->levs));
	struct accept_ctx *ctxs = xcalloc(listeners->n, sizeof(*ctxs));
	sd->accept_ctxs = ctxs;
	for (size_t i = 0; i < listeners->n; i++) {
		struct accept_ctx *ctx = &ctxs[i];
		ctx->sd = sd;
		ctx->kind = listeners->v[i].kind;
		/* backlog 0: the socket already listens. */
		sd->levs[i] = evconnlistener_new(base, on_accept, ctx, 0, 0,
						 listeners->v[i].fd);
		if (sd->levs[i] == NULL)
			fatal("evconnlistener_new failed");
		ctx->lev = sd->levs[i];
		evconnlistener_set_error_cb(sd->levs[i], on_accept_error);
		sd->nlevs++;
	}
	return sd;
}

int
smtpd_set_conf(struct smtpd *sd, struct smalt_conf *conf, char *err,
	       size_t errlen)
{
	struct policy p;
	if (policy_load(&p, conf, err, errlen) != 0)
		return -1;
	policy_free(&sd->policy);
	sd->policy = p;
	sd->conf = conf;
	return 0;
}

void
smtpd_free(struct smtpd *sd)
{
	if (sd == NULL)
		return;
	for (size_t i = 0; i < sd->nlevs; i++)
		evconnlistener_free(sd->levs[i]);
	free(sd->levs);
	free(sd->accept_ctxs);
	host_wake_free(sd->host_wake);
	/* Commits under way finish (the client was promised nothing yet,
	 * but the files are consistent either way). */
	queue_committer_stop(sd->committer);
	event_free(sd->commit_ev);
	while (sd->sessions != NULL)
		smtp_session_free(sd->sessions);
	if (sd->drain_ev)
		event_free(sd->drain_ev);
	policy_free(&sd->policy);
	dns_free(sd->dns);
	free(sd->ipcounts);
	free(sd);
}

static int
commits_pending(const struct smtpd *sd)
{
	for (const struct smtp_session *s = sd->sessions; s; s = s->next)
		if (s->state == SMTP_COMMIT)
			return 1;
	return 0;
}

static void
on_drain_tick(evutil_socket_t fd, short what, void *arg)
{
	struct smtpd *sd = arg;
	(void)fd;
	(void)what;
	/* A message being committed gets its 250 (or 4xx) before we go;
	 * the 5 s bound covers a disk that no longer answers. */
	if (!commits_pending(sd) || ++sd->drain_ticks > 100) {
		event_free(sd->drain_ev);
		sd->drain_ev = NULL;
		sd->drain_done(sd->drain_arg);
		return;
	}
	struct timeval tv = {0, 50000};
	event_add(sd->drain_ev, &tv);
}

void
smtpd_drain(struct smtpd *sd, void (*done)(void *), void *arg)
{
	for (size_t i = 0; i < sd->nlevs; i++)
		evconnlistener_disable(sd->levs[i]);
	sd->drain_done = done;
	sd->drain_arg = arg;
	sd->drain_ev = evtimer_new(sd->base, on_drain_tick, sd);
	on_drain_tick(-1, 0, sd);
}

const struct smtpd_stats *
smtpd_stats(const struct smtpd *sd)
{
	return &sd->stats;
}
