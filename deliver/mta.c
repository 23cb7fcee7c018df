#include "deliver/mta.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/dns.h"
#include "common/log.h"
#include "common/strbuf.h"
#include "common/util.h"
#include "deliver/smtp_client.h"

struct mta {
	struct event_base *base;
	struct queue *queue;
	const struct smalt_conf *conf;
	struct hostcache *hosts;
	char *hosts_path;
	mta_host_up_cb up;
	void *up_arg;
	struct dns *dns;
	char dns_err[256]; /* why there is no resolver */
	SSL_CTX *ssl_ctx;
	char *auth_user, *auth_pass;
	char auth_err[300]; /* why relayhost_auth_file is unusable */
	struct mta_job *jobs;
	struct idle_session *idle; /* parked for reuse, newest first */
	/* Bumped by every mta_set_conf: a session opened under older
	 * settings is never parked. */
	unsigned long generation;
};

/* A session kept open after a transaction, waiting for the next message
 * to the same next hop. */
struct idle_session {
	struct mta *m;
	struct idle_session *next;
	struct smtp_client *client;
	enum channel_kind channel;
	char host[HOSTCACHE_HOST_MAX + 1];
	char name[256];
	uint16_t port;
	SSL_CTX *ssl_ctx; /* the one the engine was started with */
	unsigned long generation;
	time_t born; /* the connection's */
	struct event *timer;
};

struct mta_job {
	struct mta *m;
	struct mta_job *next, *prev;
	char id[QUEUE_ID_LEN + 1];
	struct mta_nexthop hop;
	char *sender;
	char **rcpts;
	size_t nrcpt;
	int msg_fd;
	uint64_t msg_size;
	struct dns_req *dns;
	struct smtp_client *client;
	/* Held while the engine may use it: a reload replaces m->ssl_ctx. */
	SSL_CTX *ssl_ctx;
	/* Of the settings and the connection this job's session has. */
	unsigned long generation;
	time_t born;
	struct event *kick; /* reports a result decided inside mta_start */
	int in_start;
	struct deliver_result *res;
	char relay[320];
	uint64_t ready_us;
	mta_done_cb cb;
	void *arg;
};

/* -- the next hop */

/* The cache key: host, or fmt with host and port; lower case. */
static int
put_host(char *out, size_t len, const char *fmt, const char *host,
	 unsigned port)
{
	int n = fmt ? snprintf(out, len, fmt, host, port)
		    : snprintf(out, len, "%s", host);
	if (n < 0 || (size_t)n >= len)
		return -1;
	ascii_lower(out);
	return 0;
}

int
mta_nexthop(const struct smalt_conf *conf, const struct route *r,
	    const char *domain, struct mta_nexthop *out, const char **why)
{
	memset(out, 0, sizeof(*out));
	out->channel = r->channel;
	const struct conf_hostport *hp = &r->nexthop;
	*why = "the next hop's name is too long";
	if (r->channel == CHANNEL_SMTP) {
		out->port = hp->port ? hp->port : conf->smtp_port;
		if (hp->host[0] == '\0') {
			out->mx = 1;
			if (smalt_strlcpy(out->name, domain,
					  sizeof(out->name)) >=
				sizeof(out->name) ||
			    put_host(out->host, sizeof(out->host), NULL, domain,
				     0) != 0)
				return -1;
		} else if (hp->is_literal) {
			if (smalt_strlcpy(out->name, hp->host,
					  sizeof(out->name)) >=
				sizeof(out->name) ||
			    put_host(out->host, sizeof(out->host), "[%s]:%u",
				     hp->host, out->port) != 0)
				return -1;
		} else {
			out->mx = 1;
			if (smalt_strlcpy(out->name, hp->host,
					  sizeof(out->name)) >=
				sizeof(out->name) ||
			    put_host(out->host, sizeof(out->host), NULL,
				     hp->host, 0) != 0)
				return -1;
		}
		size_t n = strlen(out->name);
		if (n > 0 && out->name[n - 1] == '.')
			out->name[n - 1] = '\0';
		return out->name[0] != '\0' ? 0 : -1;
	}
	if (hp->host[0] == '\0')
		hp = &conf->relayhost;
	out->is_relayhost =
	    hp == &conf->relayhost ||
	    (ascii_strcasecmp(hp->host, conf->relayhost.host) == 0 &&
	     (hp->port ? hp->port : 25) == conf->relayhost.port);
	if (hp->host[0] == '\0') {
		*why = "mail is routed to the relay channel, but relayhost is "
		       "not set";
		return -1;
	}
	out->port = hp->port ? hp->port : 25;
	if (smalt_strlcpy(out->name, hp->host, sizeof(out->name)) >=
		sizeof(out->name) ||
	    put_host(out->host, sizeof(out->host),
		     hp->is_literal ? "[%s]:%u" : "%s:%u", hp->host,
		     out->port) != 0)
		return -1;
	return 0;
}

/* -- settings */

int
mta_auth_parse(const char *text, size_t len, char **user, char **pass)
{
	*user = *pass = NULL;
	const char *p = text, *end = text + len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *e = nl ? nl : end;
		const char *next = nl ? nl + 1 : end;
		while (e > p &&
		       (e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'))
			e--;
		while (p < e && (*p == ' ' || *p == '\t'))
			p++;
		if (p == e || *p == '#') {
			p = next;
			continue;
		}
		if (memchr(p, '\0', (size_t)(e - p)) != NULL)
			return -1;
		const char *u = p;
		while (p < e && *p != ' ' && *p != '\t')
			p++;
		const char *ue = p;
		while (p < e && (*p == ' ' || *p == '\t'))
			p++;
		if (p == e)
			return -1; /* a user without a password */
		*user = xstrndup(u, (size_t)(ue - u));
		*pass = xstrndup(p, (size_t)(e - p));
		return 0;
	}
	return -1;
}

static void
load_auth(struct mta *m)
{
	free(m->auth_user);
	if (m->auth_pass)
		explicit_bzero(m->auth_pass, strlen(m->auth_pass));
	free(m->auth_pass);
	m->auth_user = m->auth_pass = NULL;
	m->auth_err[0] = '\0';
	const char *path = m->conf->relayhost_auth_file;
	if (path[0] == '\0')
		return;
	char buf[MTA_AUTH_FILE_MAX + 1];
	size_t len = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	ssize_t n = 0;
	while (fd >= 0 && len < sizeof(buf) &&
	       (n = read(fd, buf + len, sizeof(buf) - len)) > 0)
		len += (size_t)n;
	if (fd < 0 || n < 0) {
		snprintf(m->auth_err, sizeof(m->auth_err),
			 "cannot read relayhost_auth_file %s: %s", path,
			 strerror(errno));
	} else if (len > MTA_AUTH_FILE_MAX ||
		   mta_auth_parse(buf, len, &m->auth_user, &m->auth_pass) !=
		       0) {
		snprintf(m->auth_err, sizeof(m->auth_err),
			 "relayhost_auth_file %s: expected a line \"user "
			 "password\"",
			 path);
	}
	if (fd >= 0)
		close(fd);
	explicit_bzero(buf, sizeof(buf));
	if (m->auth_err[0] != '\0')
		log_error("%s", m->auth_err);
}

static void
load_tls(struct mta *m)
{
	SSL_CTX_free(m->ssl_ctx);
	m->ssl_ctx = SSL_CTX_new(TLS_client_method());
	if (m->ssl_ctx == NULL)
		fatal("SSL_CTX_new failed");
	/* The engine checks the verification result itself, and only where
	 * the policy requires it. */
	SSL_CTX_set_verify(m->ssl_ctx, SSL_VERIFY_NONE, NULL);
	const char *ca = m->conf->tls_ca_file;
	int ok = ca[0] != '\0'
		     ? SSL_CTX_load_verify_locations(m->ssl_ctx, ca, NULL)
		     : SSL_CTX_set_default_verify_paths(m->ssl_ctx);
	if (ok != 1) {
		log_error("cannot load the CA certificates from %s: %s",
			  ca[0] ? ca : "the system's default paths",
			  ERR_reason_error_string(ERR_get_error()));
		ERR_clear_error();
	}
}

static void
open_resolver(struct mta *m)
{
	const struct conf_hostports *r = &m->conf->resolver;
	struct strbuf csv = {0};
	strbuf_adds(&csv, "");
	for (size_t i = 0; i < r->n; i++)
		strbuf_addf(&csv,
			    strchr(r->v[i].host, ':') ? "%s[%s]:%u" : "%s%s:%u",
			    i ? "," : "", r->v[i].host, r->v[i].port);
	m->dns = dns_new(m->base, csv.s, m->dns_err, sizeof(m->dns_err));
	if (m->dns == NULL)
		log_error("cannot set up the resolver: %s", m->dns_err);
	free(csv.s);
}

struct mta *
mta_new(struct event_base *base, struct queue *queue,
	const struct smalt_conf *conf, struct hostcache *hosts,
	const char *hosts_path, mta_host_up_cb up, void *up_arg)
{
	struct mta *m = xcalloc(1, sizeof(*m));
	m->base = base;
	m->queue = queue;
	m->conf = conf;
	m->hosts = hosts;
	m->hosts_path = xstrdup(hosts_path);
	m->up = up;
	m->up_arg = up_arg;
	open_resolver(m);
	load_tls(m);
	load_auth(m);
	return m;
}

void
mta_set_conf(struct mta *m, const struct smalt_conf *conf)
{
	m->conf = conf;
	/* Sessions opened under the old TLS or AUTH settings go, now or
	 * when their transaction ends. */
	m->generation++;
	mta_close_idle(m);
	load_tls(m);
	load_auth(m);
}

void
mta_save_hosts(struct mta *m)
{
	char err[512];
	if (hostcache_save(m->hosts, m->hosts_path, err, sizeof(err)) != 0)
		log_error("cannot save the host cache: %s", err);
}

/* -- idle sessions */

static int
same_hop(const struct idle_session *s, const struct mta_nexthop *h)
{
	return s->channel == h->channel && s->port == h->port &&
	       strcmp(s->host, h->host) == 0 && strcmp(s->name, h->name) == 0;
}

static void
idle_unlink(struct idle_session *s)
{
	struct idle_session **pp = &s->m->idle;
	while (*pp != s)
		pp = &(*pp)->next;
	*pp = s->next;
	event_free(s->timer);
	SSL_CTX_free(s->ssl_ctx);
	free(s);
}

static void
on_idle_timer(evutil_socket_t fd, short what, void *arg)
{
	struct idle_session *s = arg;
	(void)fd;
	(void)what;
	/* Closed without QUIT: a QUIT under way would outlive mta_free
	 * (the engine frees itself on its reply), and a server does not
	 * mind. */
	smtp_client_cancel(s->client);
	idle_unlink(s);
}

void
mta_close_idle(struct mta *m)
{
	while (m->idle != NULL) {
		smtp_client_cancel(m->idle->client);
		idle_unlink(m->idle);
	}
}

/* -- one transaction */

/* Received: fields in the header section (its first 256 KiB). */
static unsigned
count_received(int fd)
{
	enum { HEAD_MAX = 256 * 1024 };
	char *buf = xmalloc(HEAD_MAX);
	ssize_t n = pread(fd, buf, HEAD_MAX, 0);
	unsigned hops = 0;
	for (ssize_t i = 0; n > 0 && i < n;) {
		char *nl = memchr(buf + i, '\n', (size_t)(n - i));
		size_t len = nl ? (size_t)(nl - (buf + i)) : (size_t)(n - i);
		if (len == 0 || (len == 1 && buf[i] == '\r'))
			break; /* the end of the header section */
		if (len >= 9 && ascii_strncasecmp(buf + i, "Received:", 9) == 0)
			hops++;
		if (nl == NULL)
			break;
		i += (ssize_t)len + 1;
	}
	free(buf);
	return hops;
}

static void
job_free(struct mta_job *j)
{
	struct mta *m = j->m;
	if (j->prev)
		j->prev->next = j->next;
	else
		m->jobs = j->next;
	if (j->next)
		j->next->prev = j->prev;
	if (j->msg_fd >= 0)
		close(j->msg_fd);
	if (j->kick)
		event_free(j->kick);
	SSL_CTX_free(j->ssl_ctx);
	for (size_t i = 0; i < j->nrcpt; i++)
		free(j->rcpts[i]);
	free(j->rcpts);
	free(j->sender);
	free(j->res);
	free(j);
}

static void
report(struct mta_job *j)
{
	struct mta_result r = {j->relay, j->res, j->ready_us};
	j->cb(j->arg, &r);
	job_free(j);
}

static void
on_kick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	report(arg);
}

/* Every recipient gets the same result, decided before any session. */
static void
fail_all(struct mta_job *j, enum deliver_status st, const char *dsn,
	 const char *reason)
{
	for (size_t i = 0; i < j->nrcpt; i++)
		deliver_result_set(&j->res[i], st, dsn, "%s", reason);
	if (j->in_start) {
		j->kick = evtimer_new(j->m->base, on_kick, j);
		struct timeval now = {0, 0};
		evtimer_add(j->kick, &now);
		return;
	}
	report(j);
}

static const char *
channel_of(const struct mta_job *j)
{
	return channel_name(j->hop.channel);
}

static void
host_failed(struct mta_job *j, const struct smtp_outcome *o)
{
	struct mta *m = j->m;
	const char *ch = channel_of(j);
	const char *ips[SMTP_MAX_TRIED];
	for (size_t i = 0; i < o->ntried; i++)
		ips[i] = o->tried_ips[i];
	time_t now = time(NULL);
	/* The addresses, for the RFC 1123 wake-up: an inbound connection
	 * from one of them says the host is back. */
	hostcache_set_addrs(m->hosts, ch, j->hop.host, ips, o->ntried, now);
	int was_down =
	    hostcache_is_down(m->hosts, ch, j->hop.host, now, NULL, NULL);
	hostcache_mark_down(m->hosts, ch, j->hop.host, o->host_reason, now);
	time_t until = 0;
	if (!was_down &&
	    hostcache_is_down(m->hosts, ch, j->hop.host, now, NULL, &until))
		log_info("host %s %s is down for %lds: %s", ch, j->hop.host,
			 (long)(until - now), o->host_reason);
	mta_save_hosts(m);
}

/* The session stays open for the next message to the same next hop,
 * unless enough are parked for it already. */
static void
park(struct mta_job *j)
{
	struct mta *m = j->m;
	unsigned n = 0;
	for (struct idle_session *s = m->idle; s != NULL; s = s->next)
		n += same_hop(s, &j->hop);
	if (n >= MTA_IDLE_PER_HOST || j->generation != m->generation ||
	    time(NULL) - j->born >= MTA_REUSE_SECS) {
		smtp_client_cancel(j->client);
		return;
	}
	struct idle_session *s = xcalloc(1, sizeof(*s));
	s->m = m;
	s->client = j->client;
	s->channel = j->hop.channel;
	memcpy(s->host, j->hop.host, sizeof(s->host));
	memcpy(s->name, j->hop.name, sizeof(s->name));
	s->port = j->hop.port;
	s->ssl_ctx = j->ssl_ctx; /* the job's reference moves here */
	j->ssl_ctx = NULL;
	s->generation = j->generation;
	s->born = j->born;
	s->timer = evtimer_new(m->base, on_idle_timer, s);
	struct timeval tv = {MTA_IDLE_SECS, 0};
	evtimer_add(s->timer, &tv);
	s->next = m->idle;
	m->idle = s;
}

static void
on_outcome(void *arg, const struct smtp_outcome *o)
{
	struct mta_job *j = arg;
	struct mta *m = j->m;
	for (size_t i = 0; i < j->nrcpt; i++)
		j->res[i] = o->rcpt[i];
	smalt_strlcpy(j->relay, o->relay, sizeof(j->relay));
	j->ready_us = o->ready_us;
	if (o->kept)
		park(j);
	j->client = NULL; /* parked, or it frees itself */
	int talked = strcmp(o->relay, "none") != 0;
	if (o->host_failed && !talked) {
		host_failed(j, o);
	} else if (!o->host_failed && talked) {
		const char *ch = channel_of(j);
		if (hostcache_mark_up(m->hosts, ch, j->hop.host)) {
			log_info("host %s %s is up again", ch, j->hop.host);
			mta_save_hosts(m);
			if (m->up)
				m->up(m->up_arg, ch, j->hop.host);
		}
	}
	report(j);
}

static void
job_tx(const struct mta_job *j, struct smtp_tx *tx)
{
	*tx = (struct smtp_tx){
	    .sender = j->sender,
	    .rcpts = (const char *const *)j->rcpts,
	    .nrcpt = j->nrcpt,
	    .msg_fd = j->msg_fd,
	    .msg_offset = 0,
	    .msg_size = j->msg_size,
	    /* The queue does not know; declaring 8BITMIME to a server that
	     * offers it is right for 7-bit text too. */
	    .eight_bit = 1,
	};
}

/* A parked session to the same next hop takes the transaction: no DNS,
 * no connection, no greeting. 1 when one did. */
static int
reuse_session(struct mta_job *j)
{
	struct idle_session *s;
	for (s = j->m->idle; s != NULL; s = s->next)
		if (same_hop(s, &j->hop))
			break;
	if (s == NULL)
		return 0;
	struct smtp_client *c = s->client;
	j->ssl_ctx = s->ssl_ctx;
	s->ssl_ctx = NULL;
	j->generation = s->generation;
	j->born = s->born;
	idle_unlink(s);
	struct smtp_tx tx;
	job_tx(j, &tx);
	if (smtp_client_reuse(c, &tx, on_outcome, j) != 0) {
		smtp_client_cancel(c);
		SSL_CTX_free(j->ssl_ctx);
		j->ssl_ctx = NULL;
		return 0;
	}
	j->client = c;
	return 1;
}

static void
start_session(struct mta_job *j, const struct dns_target *v, size_t n)
{
	struct mta *m = j->m;
	const struct smalt_conf *conf = m->conf;
	/* A reload between mta_start and here broke the auth file: the
	 * mail waits, it must not go without AUTH and bounce. */
	if (j->hop.channel == CHANNEL_RELAY && j->hop.is_relayhost &&
	    m->auth_err[0] != '\0') {
		fail_all(j, DELIVER_DEFER, "4.7.0", m->auth_err);
		return;
	}
	SSL_CTX_up_ref(m->ssl_ctx);
	j->ssl_ctx = m->ssl_ctx;
	j->generation = m->generation;
	j->born = time(NULL);
	struct smtp_client_params p = {
	    .helo_name = conf->hostname,
	    .ssl_ctx = j->ssl_ctx,
	    .connect_timeout = MTA_CONNECT_TIMEOUT,
	    .command_timeout = MTA_COMMAND_TIMEOUT,
	    .data_timeout = MTA_DATA_TIMEOUT,
	    .keep_open = 1,
	};
	if (j->hop.channel == CHANNEL_RELAY) {
		static const enum smtp_tls_policy relay_tls[] = {
		    [TLS_RELAY_ENCRYPT] = SMTP_TLS_ENCRYPT,
		    [TLS_RELAY_SMTPS] = SMTP_TLS_SMTPS,
		    [TLS_RELAY_MAY] = SMTP_TLS_MAY,
		    [TLS_RELAY_NONE] = SMTP_TLS_NONE};
		p.tls = relay_tls[conf->relayhost_tls];
		if (j->hop.is_relayhost) {
			p.auth_user = m->auth_user;
			p.auth_pass = m->auth_pass;
		}
	} else {
		static const enum smtp_tls_policy smtp_tls[] = {
		    [TLS_SMTP_MAY] = SMTP_TLS_MAY,
		    [TLS_SMTP_ENCRYPT] = SMTP_TLS_ENCRYPT,
		    [TLS_SMTP_NONE] = SMTP_TLS_NONE};
		p.tls = smtp_tls[conf->smtp_tls];
	}
	struct smtp_tx tx;
	job_tx(j, &tx);
	j->client = smtp_client_start(m->base, &p, v, n, &tx, on_outcome, j);
}

static void
on_dns(void *arg, enum dns_status st, const struct dns_target *v, size_t n,
       const char *reason)
{
	struct mta_job *j = arg;
	j->dns = NULL;
	if (st == DNS_OK) {
		start_session(j, v, n);
		return;
	}
	/* The smarthost not resolving is our configuration's problem, or
	 * DNS's: never a reason to bounce. */
	if (st == DNS_TEMPFAIL || j->hop.channel == CHANNEL_RELAY) {
		fail_all(j, DELIVER_DEFER, "4.4.3", reason);
	} else if (st == DNS_NULL_MX) {
		char why[400];
		snprintf(why, sizeof(why),
			 "Domain %s does not accept mail (nullMX)",
			 j->hop.name);
		fail_all(j, DELIVER_BOUNCE, "5.1.10", why);
	} else {
		fail_all(j, DELIVER_BOUNCE, "5.4.4", reason);
	}
}

void
mta_start(struct mta *m, const struct mta_tx *tx, mta_done_cb cb, void *arg)
{
	struct mta_job *j = xcalloc(1, sizeof(*j));
	j->m = m;
	j->next = m->jobs;
	if (m->jobs)
		m->jobs->prev = j;
	m->jobs = j;
	smalt_strlcpy(j->id, tx->id, sizeof(j->id));
	j->hop = *tx->hop;
	j->sender = xstrdup(tx->sender);
	j->nrcpt = tx->nrcpt;
	j->rcpts = xcalloc(tx->nrcpt, sizeof(*j->rcpts));
	for (size_t i = 0; i < tx->nrcpt; i++)
		j->rcpts[i] = xstrdup(tx->rcpts[i]);
	j->res = xcalloc(tx->nrcpt, sizeof(*j->res));
	j->msg_fd = -1;
	smalt_strlcpy(j->relay, "none", sizeof(j->relay));
	j->cb = cb;
	j->arg = arg;
	j->in_start = 1;

	struct stat st;
	char why[400];
	if (j->hop.channel == CHANNEL_RELAY && j->hop.is_relayhost &&
	    m->auth_err[0] != '\0') {
		fail_all(j, DELIVER_DEFER, "4.7.0", m->auth_err);
	} else if (m->dns == NULL) {
		snprintf(why, sizeof(why), "no resolver: %s", m->dns_err);
		fail_all(j, DELIVER_DEFER, "4.3.0", why);
	} else if ((j->msg_fd = queue_msg_open(m->queue, j->id)) < 0 ||
		   fstat(j->msg_fd, &st) != 0) {
		snprintf(why, sizeof(why), "cannot open the queue file: %s",
			 strerror(errno));
		fail_all(j, DELIVER_DEFER, "4.3.0", why);
	} else if (count_received(j->msg_fd) > MTA_HOP_LIMIT) {
		fail_all(j, DELIVER_BOUNCE, "5.4.6",
			 "mail forwarding loop: too many hops (Received: "
			 "headers)");
	} else if ((j->msg_size = (uint64_t)st.st_size), reuse_session(j)) {
		/* on its way */
	} else {
		j->dns = j->hop.mx ? dns_resolve_mx(m->dns, j->hop.name,
						    j->hop.port, on_dns, j)
				   : dns_resolve_host(m->dns, j->hop.name,
						      j->hop.port, on_dns, j);
	}
	/* Every failure above only scheduled its report: j is still here. */
	j->in_start = 0;
}

void
mta_free(struct mta *m)
{
	if (m == NULL)
		return;
	while (m->jobs) {
		struct mta_job *j = m->jobs;
		dns_req_cancel(j->dns);
		if (j->client)
			smtp_client_cancel(j->client);
		job_free(j);
	}
	mta_close_idle(m);
	if (m->dns)
		dns_free(m->dns);
	SSL_CTX_free(m->ssl_ctx);
	free(m->auth_user);
	if (m->auth_pass)
		explicit_bzero(m->auth_pass, strlen(m->auth_pass));
	free(m->auth_pass);
	free(m->hosts_path);
	free(m);
}
