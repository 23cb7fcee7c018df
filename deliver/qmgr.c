#include "deliver/qmgr.h"

#include <errno.h>
#include <event2/event.h>
#include <search.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/strbuf.h"
#include "common/util.h"
#include "deliver/agent.h"
#include "deliver/bounce.h"
#include "deliver/delivery_log.h"
#include "deliver/mta.h"
#include "deliver/routes.h"
#include "queue/hostcache.h"
#include "queue/pickup.h"

struct qmsg;

/* One delivery: one recipient through the agent, or up to
 * MTA_RCPT_LIMIT recipients of one next hop in one SMTP transaction. */
struct qjob {
	unsigned long no;
	struct qmgr *q;
	struct qmsg *m;
	size_t *rcpts; /* indexes into m->env.rcpt */
	size_t nrcpt;
	enum channel_kind channel;
	struct dest *dest;
	char **argv;		 /* pipe */
	struct mta_nexthop *hop; /* smtp, relay */
	struct qjob *next_hop;	 /* m's smtp/relay jobs while routing */
	uint64_t sent_us;
	TAILQ_ENTRY(qjob) link;
};
TAILQ_HEAD(qjob_list, qjob);

/* A destination: what destination_concurrency counts. */
struct dest {
	char *key;
	unsigned running;
	struct qjob_list ready;
	int listed; /* on qmgr.busy_dests */
	TAILQ_ENTRY(dest) link;
};
TAILQ_HEAD(dest_list, dest);

/* What smaltctl asked for a message while it was being delivered. */
enum after_round { AFTER_NOTHING, AFTER_HOLD, AFTER_REMOVE };

struct qmsg {
	struct envelope env;
	enum queue_dir dir;
	uint64_t arrival_us, active_us;
	unsigned jobs_left;
	unsigned char *bounced_now; /* per recipient: bounced this round */
	enum after_round after;
	struct qjob *hop_jobs; /* while routing: the smtp/relay jobs */
};

/* A message waiting for its next round, or not yet taken up. */
struct waiting {
	time_t when;
	enum queue_dir dir;
	char id[QUEUE_ID_LEN + 1];
	/* The next hops its deferred recipients wait for, as
	 * "\nCHANNEL HOST\n..." (NULL: none), so that a host coming back
	 * wakes it. */
	char *hops;
};

struct backlog_entry {
	char id[QUEUE_ID_LEN + 1];
	STAILQ_ENTRY(backlog_entry) link;
};

struct qmgr {
	struct qmgr_params *p;
	struct smalt_conf *conf;
	struct routes *routes;
	struct event_base *base;
	struct event *ev_sock, *ev_watch, *ev_timer, *ev_maildrop;
	int watch_fd;
	void *known;  /* tsearch set of ids we have in hand */
	void *active; /* tsearch of struct qmsg by id */
	void *dests;  /* tsearch set of struct dest by key */
	STAILQ_HEAD(, backlog_entry) backlog; /* incoming/, not yet active */
	struct waiting *heap;		      /* deferred/, by time */
	size_t nheap, capheap;
	unsigned nactive, nrunning;
	struct dest_list busy_dests; /* those with ready jobs */
	struct qjob_list running;
	unsigned long next_job;
	int stopping;
	int heap_turn; /* alternate between new mail and retries */
	/* Recipient results since start, for smaltctl show stats. */
	unsigned long delivered, deferred, bounced, picked_up;
	unsigned long saved_sum; /* the total last written */
	struct event *ev_stats;
	/* The smtp and relay channels and the per-host cache. */
	struct mta *mta;
	struct hostcache *hosts;
	struct event *ev_hosts; /* a down host's retry time comes */
	time_t hosts_checked;	/* retry times up to here are handled */
	time_t hosts_expired;
};

static void fill(struct qmgr *q);
static void pump(struct qmgr *q);
static void arm_hosts_timer(struct qmgr *q);
static void check_stopped(struct qmgr *q);
static char *waiting_hops(struct qmgr *q, const struct envelope *env);
static void apply(struct qmgr *q, const struct agent_result *r);

/* -- the set of ids in hand, so inotify and scans never double up */

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(a, b);
}

static int
know(struct qmgr *q, const char *id)
{
	char *copy = xstrdup(id);
	char **found = tsearch(copy, &q->known, cmp_str);
	if (found == NULL)
		fatal("out of memory");
	if (*found != copy) {
		free(copy);
		return 0; /* already known */
	}
	return 1;
}

static void
forget(struct qmgr *q, const char *id)
{
	char **found = tfind(id, &q->known, cmp_str);
	if (found == NULL)
		return;
	char *key = *found;
	tdelete(id, &q->known, cmp_str);
	free(key);
}

static int
cmp_qmsg(const void *a, const void *b)
{
	return strcmp(((const struct qmsg *)a)->env.id,
		      ((const struct qmsg *)b)->env.id);
}

static struct qmsg *
active_find(struct qmgr *q, const char *id)
{
	struct qmsg probe;
	memcpy(probe.env.id, id, sizeof(probe.env.id));
	struct qmsg **found = tfind(&probe, &q->active, cmp_qmsg);
	return found ? *found : NULL;
}

/* -- the retry heap */

static int
heap_less(const struct waiting *a, const struct waiting *b)
{
	return a->when < b->when ||
	       (a->when == b->when && strcmp(a->id, b->id) < 0);
}

/* hops is taken over (freed with the entry). */
static void
heap_push(struct qmgr *q, time_t when, enum queue_dir dir, const char *id,
	  char *hops)
{
	if (q->nheap == q->capheap) {
		q->capheap = q->capheap ? q->capheap * 2 : 64;
		q->heap = xrealloc(q->heap, q->capheap * sizeof(*q->heap));
	}
	size_t i = q->nheap++;
	struct waiting w = {.when = when, .dir = dir, .hops = hops};
	memcpy(w.id, id, sizeof(w.id));
	while (i > 0 && heap_less(&w, &q->heap[(i - 1) / 2])) {
		q->heap[i] = q->heap[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	q->heap[i] = w;
}

static struct waiting
heap_pop(struct qmgr *q)
{
	struct waiting top = q->heap[0];
	struct waiting last = q->heap[--q->nheap];
	size_t i = 0;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= q->nheap)
			break;
		if (c + 1 < q->nheap && heap_less(&q->heap[c + 1], &q->heap[c]))
			c++;
		if (!heap_less(&q->heap[c], &last))
			break;
		q->heap[i] = q->heap[c];
		i = c;
	}
	if (q->nheap > 0)
		q->heap[i] = last;
	return top;
}

static void
heap_fix(struct qmgr *q)
{
	/* Rebuilt by pushing again: rare (smaltctl flush ID). */
	size_t n = q->nheap;
	struct waiting *old = q->heap;
	q->heap = NULL;
	q->nheap = q->capheap = 0;
	for (size_t i = 0; i < n; i++)
		heap_push(q, old[i].when, old[i].dir, old[i].id, old[i].hops);
	free(old);
}

/* -- destinations */

static int
cmp_dest(const void *a, const void *b)
{
	return strcmp(((const struct dest *)a)->key,
		      ((const struct dest *)b)->key);
}

static struct dest *
dest_get(struct qmgr *q, const char *key)
{
	struct dest probe = {.key = (char *)key};
	struct dest **found = tfind(&probe, &q->dests, cmp_dest);
	if (found != NULL)
		return *found;
	struct dest *d = xcalloc(1, sizeof(*d));
	d->key = xstrdup(key);
	TAILQ_INIT(&d->ready);
	if (tsearch(d, &q->dests, cmp_dest) == NULL)
		fatal("out of memory");
	return d;
}

/* Idle destinations are dropped so the set does not grow forever. */
static void
dest_release(struct qmgr *q, struct dest *d)
{
	if (d->running > 0 || !TAILQ_EMPTY(&d->ready))
		return;
	if (d->listed) {
		TAILQ_REMOVE(&q->busy_dests, d, link);
		d->listed = 0;
	}
	tdelete(d, &q->dests, cmp_dest);
	free(d->key);
	free(d);
}

/* -- results */

static uint64_t
id_arrival_us(const char *id)
{
	return strtoull(id, NULL, 16) >> 12;
}

static void
count_result(struct qmgr *q, const struct deliver_result *r)
{
	if (r->status == DELIVER_OK)
		q->delivered++;
	else if (r->status == DELIVER_DEFER)
		q->deferred++;
	else
		q->bounced++;
}

static void
save_stats(struct qmgr *q)
{
	unsigned long sum =
	    q->delivered + q->deferred + q->bounced + q->picked_up;
	if (sum == q->saved_sum && sum != 0)
		return;
	char buf[160];
	int n = snprintf(buf, sizeof(buf),
			 "delivered %lu\ndeferred %lu\nbounced %lu\n"
			 "picked_up %lu\n",
			 q->delivered, q->deferred, q->bounced, q->picked_up);
	if (queue_state_write(q->p->queue, "qmgr", buf, (size_t)n) == 0)
		q->saved_sum = sum;
}

static void
on_stats_timer(evutil_socket_t fd, short what, void *arg)
{
	struct qmgr *q = arg;
	(void)fd;
	(void)what;
	save_stats(q);
	time_t now = time(NULL);
	if (now - q->hosts_expired >= 3600) {
		q->hosts_expired = now;
		if (hostcache_expire(q->hosts, now) > 0)
			mta_save_hosts(q->mta);
	}
}

static void
set_rcpt_result(struct qmsg *m, size_t i, const struct deliver_result *r)
{
	struct env_rcpt *rc = &m->env.rcpt[i];
	smalt_strlcpy(rc->dsn, r->dsn, sizeof(rc->dsn));
	envelope_set(&rc->reason, r->reason);
	switch (r->status) {
	case DELIVER_OK:
		rc->state = RCPT_DELIVERED;
		break;
	case DELIVER_DEFER:
		rc->state = RCPT_DEFERRED;
		break;
	case DELIVER_BOUNCE:
		rc->state = RCPT_BOUNCED;
		m->bounced_now[i] = 1;
		break;
	}
}

/* A result the qmgr decides itself (error channel, a channel not built
 * yet, expiry), logged as the channel would. */
static void
local_result(struct qmgr *q, struct qmsg *m, size_t i, const char *part,
	     const struct deliver_result *r)
{
	uint64_t now = now_usec();
	struct delivery_times t = {m->arrival_us, m->active_us, now, now, now};
	delivery_log(part, m->env.id, m->env.rcpt[i].address, NULL, "none", &t,
		     r);
	count_result(q, r);
	set_rcpt_result(m, i, r);
}

/* -- notifications */

static int
send_dsn(struct qmgr *q, struct qmsg *m, enum dsn_kind kind,
	 enum rcpt_state which, const unsigned char *only)
{
	char *postmaster = xasprintf("postmaster@%s", q->conf->hostname);
	const char *to = bounce_recipient(&m->env, postmaster);
	int rc = 0;
	if (to[0] == '\0') {
		log_info_as("bounce",
			    "%s: undeliverable double bounce "
			    "discarded",
			    m->env.id);
		free(postmaster);
		return 0;
	}
	struct bounce_rcpt *br = xcalloc(m->env.nrcpt, sizeof(*br));
	size_t n = 0;
	for (size_t i = 0; i < m->env.nrcpt; i++) {
		struct env_rcpt *r = &m->env.rcpt[i];
		if (r->state != which || (only != NULL && !only[i]))
			continue;
		br[n++] = (struct bounce_rcpt){r->address, r->dsn, r->reason};
	}
	struct queue_msg *qm = queue_msg_create(q->p->queue);
	int fd = queue_msg_open(q->p->queue, m->env.id);
	struct envelope env;
	envelope_init(&env);
	if (qm == NULL || fd < 0) {
		rc = -1;
	} else {
		struct bounce_params bp = {
		    .kind = kind,
		    .hostname = q->conf->hostname,
		    .to = to,
		    .env = &m->env,
		    .rcpts = br,
		    .nrcpt = n,
		    .msg_fd = fd,
		    .now = time(NULL),
		    .retry_until = m->env.arrival + q->conf->queue_lifetime,
		};
		envelope_set(&env.sender, "");
		envelope_set(&env.protocol, "local");
		envelope_add_rcpt(&env, to);
		rc = bounce_write(&bp, bounce_queue_write, qm);
		if (rc == 0)
			rc = queue_msg_commit(qm, &env);
		if (rc == 0)
			qm = NULL;
	}
	if (rc == 0)
		log_info_as("bounce", "%s: %s %s notification: %s", m->env.id,
			    m->env.sender[0] ? "sender" : "postmaster",
			    kind == DSN_FAILURE ? "non-delivery" : "delay",
			    env.id);
	else
		log_error("%s: cannot queue a %s notification: %s", m->env.id,
			  kind == DSN_FAILURE ? "non-delivery" : "delay",
			  strerror(qm ? queue_msg_error(qm) : errno));
	if (qm != NULL)
		queue_msg_abort(qm);
	if (fd >= 0)
		close(fd);
	envelope_free(&env);
	free(br);
	free(postmaster);
	return rc;
}

/* -- the end of a round */

static unsigned
backoff(const struct smalt_conf *conf, unsigned attempts)
{
	unsigned long long b = conf->retry_min;
	for (unsigned i = 1; i < attempts && b < conf->retry_max; i++)
		b *= 2;
	return b > conf->retry_max ? conf->retry_max : (unsigned)b;
}

static void
finish(struct qmgr *q, struct qmsg *m)
{
	struct envelope *env = &m->env;
	time_t now = time(NULL);
	int any_bounced = 0, any_deferred = 0;
	for (size_t i = 0; i < env->nrcpt; i++) {
		any_bounced |= m->bounced_now[i];
		any_deferred |= env->rcpt[i].state == RCPT_DEFERRED;
	}
	if (any_bounced &&
	    send_dsn(q, m, DSN_FAILURE, RCPT_BOUNCED, m->bounced_now) != 0) {
		/* No bounce, no giving up: try them again next round. */
		for (size_t i = 0; i < env->nrcpt; i++)
			if (m->bounced_now[i]) {
				env->rcpt[i].state = RCPT_DEFERRED;
				any_deferred = 1;
			}
	}
	if (any_deferred && q->conf->delay_warning > 0 && !env->warned &&
	    env->sender[0] != '\0' &&
	    now - env->arrival >= (time_t)q->conf->delay_warning &&
	    send_dsn(q, m, DSN_DELAY, RCPT_DEFERRED, NULL) == 0)
		env->warned = 1;

	tdelete(m, &q->active, cmp_qmsg);
	if (envelope_done(env) || m->after == AFTER_REMOVE) {
		if (queue_remove(q->p->queue, m->dir, env->id) != 0)
			log_error("%s: cannot remove: %s", env->id,
				  strerror(errno));
		else
			log_info("%s: removed", env->id);
		forget(q, env->id);
	} else {
		env->attempts++;
		time_t next = now + backoff(q->conf, env->attempts);
		for (size_t i = 0; i < env->nrcpt; i++)
			if (env->rcpt[i].state == RCPT_DEFERRED ||
			    env->rcpt[i].state == RCPT_PENDING)
				env->rcpt[i].next_attempt = next;
		enum queue_dir to =
		    m->after == AFTER_HOLD ? QDIR_HOLD : QDIR_DEFERRED;
		if (queue_env_write(q->p->queue, m->dir, to, env) != 0) {
			log_error("%s: cannot update the envelope in %s/: %s",
				  env->id, queue_dir_name(QDIR_DEFERRED),
				  strerror(errno));
			/* The move may have happened before the failure:
			 * look for the old envelope where it is now. */
			if (queue_env_exists(q->p->queue, QDIR_DEFERRED,
					     env->id))
				m->dir = QDIR_DEFERRED;
		} else {
			m->dir = to;
		}
		if (m->dir == QDIR_HOLD) {
			log_info("%s: placed on hold", env->id);
			forget(q, env->id);
		} else {
			heap_push(q, next, m->dir, env->id,
				  waiting_hops(q, env));
		}
	}
	envelope_free(env);
	free(m->bounced_now);
	free(m);
	q->nactive--;
}

/* -- starting deliveries */

static struct qjob *
add_job(struct qmgr *q, struct qmsg *m, size_t i, enum channel_kind ch,
	const char *destkey, char **argv)
{
	struct qjob *j = xcalloc(1, sizeof(*j));
	j->no = ++q->next_job;
	j->q = q;
	j->m = m;
	j->rcpts = xcalloc(
	    ch == CHANNEL_SMTP || ch == CHANNEL_RELAY ? MTA_RCPT_LIMIT : 1,
	    sizeof(*j->rcpts));
	j->rcpts[0] = i;
	j->nrcpt = 1;
	j->channel = ch;
	j->argv = argv;
	j->dest = dest_get(q, destkey);
	TAILQ_INSERT_TAIL(&j->dest->ready, j, link);
	if (!j->dest->listed) {
		TAILQ_INSERT_TAIL(&q->busy_dests, j->dest, link);
		j->dest->listed = 1;
	}
	m->jobs_left++;
	return j;
}

/* "delivery temporarily suspended", as Postfix says it: no connection
 * while the host is down. 1 when it is. */
static int
host_down_result(struct qmgr *q, const struct mta_nexthop *hop,
		 struct deliver_result *res)
{
	const char *reason;
	if (!hostcache_is_down(q->hosts, channel_name(hop->channel), hop->host,
			       time(NULL), &reason, NULL))
		return 0;
	deliver_result_set(res, DELIVER_DEFER, "4.4.1",
			   "delivery temporarily suspended: %s", reason);
	return 1;
}

/* smtp and relay: recipients with one next hop share a transaction. */
static void
route_remote(struct qmgr *q, struct qmsg *m, size_t i, const struct route *r,
	     const char *domain)
{
	struct mta_nexthop hop;
	struct deliver_result res;
	const char *why;
	const char *ch = channel_name(r->channel);
	if (mta_nexthop(q->conf, r, domain, &hop, &why) != 0) {
		deliver_result_set(&res, DELIVER_DEFER, "4.3.5", "%s", why);
		local_result(q, m, i, ch, &res);
		return;
	}
	if (host_down_result(q, &hop, &res)) {
		local_result(q, m, i, ch, &res);
		return;
	}
	struct qjob *j;
	for (j = m->hop_jobs; j != NULL; j = j->next_hop)
		if (j->channel == r->channel && j->nrcpt < MTA_RCPT_LIMIT &&
		    strcmp(j->hop->host, hop.host) == 0 &&
		    strcmp(j->hop->name, hop.name) == 0 &&
		    j->hop->port == hop.port)
			break;
	if (j != NULL) {
		j->rcpts[j->nrcpt++] = i;
		return;
	}
	char *key = xasprintf("%s:%s", ch, hop.host);
	j = add_job(q, m, i, r->channel, key, NULL);
	free(key);
	j->hop = xmalloc(sizeof(*j->hop));
	*j->hop = hop;
	j->next_hop = m->hop_jobs;
	m->hop_jobs = j;
}

/* The next hops a message's deferred recipients wait for (see struct
 * waiting), or NULL. */
static char *
waiting_hops(struct qmgr *q, const struct envelope *env)
{
	struct strbuf b = {0};
	for (size_t i = 0; i < env->nrcpt; i++) {
		const struct env_rcpt *rc = &env->rcpt[i];
		if (rc->state != RCPT_DEFERRED && rc->state != RCPT_PENDING)
			continue;
		const char *at = strrchr(rc->address, '@');
		const struct route *r =
		    routes_lookup(q->routes, q->conf, at ? at + 1 : "");
		struct mta_nexthop hop;
		const char *why;
		if ((r->channel != CHANNEL_SMTP &&
		     r->channel != CHANNEL_RELAY) ||
		    mta_nexthop(q->conf, r, at ? at + 1 : "", &hop, &why) != 0)
			continue;
		char *line =
		    xasprintf("\n%s %s\n", channel_name(r->channel), hop.host);
		if (b.s == NULL || strstr(b.s, line) == NULL)
			strbuf_adds(&b, line + (b.s != NULL));
		free(line);
	}
	return b.s;
}

static void
route_rcpt(struct qmgr *q, struct qmsg *m, size_t i)
{
	const char *rcpt = m->env.rcpt[i].address;
	const char *at = strrchr(rcpt, '@');
	const char *domain = at ? at + 1 : "";
	const struct route *r = routes_lookup(q->routes, q->conf, domain);
	struct deliver_result res;
	char *key, *lower;
	switch (r->channel) {
	case CHANNEL_LOCAL:
		/* Per recipient, as Postfix's local: one mailbox lock. */
		lower = xstrdup(rcpt);
		ascii_lower(lower);
		key = xasprintf("local:%s", lower);
		add_job(q, m, i, CHANNEL_LOCAL, key, NULL);
		free(key);
		free(lower);
		break;
	case CHANNEL_PIPE:
		key = xasprintf("pipe:%s", r->argv[0]);
		add_job(q, m, i, CHANNEL_PIPE, key,
			route_pipe_argv(r, m->env.sender, rcpt));
		free(key);
		break;
	case CHANNEL_ERROR:
		deliver_result_set(&res, DELIVER_BOUNCE, "5.0.0", "%s",
				   r->text[0] ? r->text : "mail refused");
		local_result(q, m, i, "error", &res);
		break;
	case CHANNEL_SMTP:
	case CHANNEL_RELAY:
		route_remote(q, m, i, r, domain);
		break;
	}
}

static void
expire(struct qmgr *q, struct qmsg *m)
{
	unsigned days = q->conf->queue_lifetime / 86400;
	for (size_t i = 0; i < m->env.nrcpt; i++) {
		struct env_rcpt *r = &m->env.rcpt[i];
		if (r->state != RCPT_PENDING && r->state != RCPT_DEFERRED)
			continue;
		struct deliver_result res;
		deliver_result_set(
		    &res, DELIVER_BOUNCE, "4.4.7",
		    "message expired after %u%s in the queue%s%s",
		    days ? days : q->conf->queue_lifetime,
		    days ? (days == 1 ? " day" : " days") : " seconds",
		    r->reason[0] ? "; last reason: " : "", r->reason);
		local_result(q, m, i, "qmgr", &res);
	}
}

static void
activate(struct qmgr *q, enum queue_dir dir, const char *id)
{
	if (active_find(q, id) != NULL)
		return; /* a second entry for it (smaltctl release) */
	struct qmsg *m = xcalloc(1, sizeof(*m));
	const char *errstr;
	int rc = queue_env_read(q->p->queue, dir, id, &m->env, &errstr);
	/* Moved between new and waiting meanwhile (a failed update, a
	 * release from hold): take it where it is. */
	if (rc != 0 && errno == ENOENT && dir != QDIR_HOLD) {
		dir = dir == QDIR_INCOMING ? QDIR_DEFERRED : QDIR_INCOMING;
		rc = queue_env_read(q->p->queue, dir, id, &m->env, &errstr);
	}
	if (rc != 0) {
		int err = errno;
		free(m);
		if (err == ENOENT) {
			/* Removed or held by the admin meanwhile. */
			forget(q, id);
		} else if (err == EINVAL) {
			queue_quarantine(q->p->queue, dir, id, errstr);
			forget(q, id);
		} else {
			log_error("%s: cannot read the envelope: %s", id,
				  strerror(err));
			heap_push(q, time(NULL) + q->conf->retry_min, dir, id,
				  NULL);
		}
		return;
	}
	q->nactive++;
	m->dir = dir;
	if (tsearch(m, &q->active, cmp_qmsg) == NULL)
		fatal("out of memory");
	m->arrival_us = id_arrival_us(id);
	m->active_us = now_usec();
	m->bounced_now = xcalloc(m->env.nrcpt ? m->env.nrcpt : 1, 1);
	log_info("%s: from=<%s>, size=%llu, nrcpt=%zu (queue active)", id,
		 m->env.sender, (unsigned long long)m->env.size, m->env.nrcpt);
	time_t now = time(NULL);
	if (m->env.attempts > 0 &&
	    now - m->env.arrival >= (time_t)q->conf->queue_lifetime) {
		expire(q, m);
	} else {
		for (size_t i = 0; i < m->env.nrcpt; i++)
			if (m->env.rcpt[i].state == RCPT_PENDING ||
			    m->env.rcpt[i].state == RCPT_DEFERRED)
				route_rcpt(q, m, i);
		m->hop_jobs = NULL;
	}
	if (m->jobs_left == 0)
		finish(q, m);
}

static void job_done(struct qmgr *q, struct qjob *j,
		     const struct deliver_result *res);

static void
on_mta_done(void *arg, const struct mta_result *r)
{
	struct qjob *j = arg;
	struct qmgr *q = j->q;
	struct qmsg *m = j->m;
	uint64_t now = now_usec();
	struct delivery_times t = {m->arrival_us, m->active_us, j->sent_us,
				   r->ready_us ? r->ready_us : now, now};
	for (size_t i = 0; i < j->nrcpt; i++)
		delivery_log(channel_name(j->channel), m->env.id,
			     m->env.rcpt[j->rcpts[i]].address, NULL, r->relay,
			     &t, &r->rcpt[i]);
	job_done(q, j, r->rcpt);
	/* The host may have gone down (a retry time to watch) or come up
	 * (its mail is due). */
	arm_hosts_timer(q);
	check_stopped(q);
	fill(q);
}

/* smtp and relay run here, in the qmgr, on its event loop. */
static void
start_remote(struct qmgr *q, struct qjob *j)
{
	struct qmsg *m = j->m;
	struct deliver_result down;
	/* It may have gone down while this job waited its turn. */
	if (host_down_result(q, j->hop, &down)) {
		for (size_t i = 0; i < j->nrcpt; i++)
			local_result(q, m, j->rcpts[i],
				     channel_name(j->channel), &down);
		/* local_result counted and recorded them already. */
		job_done(q, j, NULL);
		return;
	}
	const char **rcpts = xcalloc(j->nrcpt, sizeof(*rcpts));
	for (size_t i = 0; i < j->nrcpt; i++)
		rcpts[i] = m->env.rcpt[j->rcpts[i]].address;
	struct mta_tx tx = {m->env.id, j->hop, m->env.sender, rcpts, j->nrcpt};
	mta_start(q->mta, &tx, on_mta_done, j);
	free(rcpts);
}

static void
send_job(struct qmgr *q, struct qjob *j)
{
	struct qmsg *m = j->m;
	j->sent_us = now_usec();
	if (j->channel == CHANNEL_SMTP || j->channel == CHANNEL_RELAY) {
		TAILQ_INSERT_TAIL(&q->running, j, link);
		j->dest->running++;
		q->nrunning++;
		start_remote(q, j);
		return;
	}
	struct agent_request req = {
	    .job = j->no,
	    .channel = j->channel,
	    .arrival_us = m->arrival_us,
	    .active_us = m->active_us,
	    .sent_us = j->sent_us,
	    .sender = m->env.sender,
	    .rcpt = m->env.rcpt[j->rcpts[0]].address,
	};
	memcpy(req.id, m->env.id, sizeof(req.id));
	for (size_t i = 0; j->argv && j->argv[i] && i < AGENT_ARGV_MAX; i++)
		req.argv[i] = j->argv[i];
	char buf[AGENT_MSG_MAX];
	int n = agent_request_format(&req, buf, sizeof(buf));
	TAILQ_INSERT_TAIL(&q->running, j, link);
	j->dest->running++;
	q->nrunning++;
	if (n >= 0 && send(q->p->agent_sock, buf, (size_t)n, MSG_NOSIGNAL) == n)
		return;
	/* Hand the job a result of its own: deferred. */
	struct agent_result res = {.job = j->no};
	deliver_result_set(&res.r, DELIVER_DEFER, "4.3.0",
			   n < 0 ? "the recipient or command cannot be passed "
				   "to the delivery agent"
				 : "the delivery agent is not available: %s",
			   strerror(errno));
	log_warn("%s: %s", m->env.id, res.r.reason);
	apply(q, &res);
}

static void
pump(struct qmgr *q)
{
	struct dest *d, *next;
	unsigned limit = q->conf->delivery_concurrency;
	int progress = 1;
	/* Round robin over destinations: one job each per pass. */
	while (progress && q->nrunning < limit && !q->stopping) {
		progress = 0;
		for (d = TAILQ_FIRST(&q->busy_dests); d; d = next) {
			next = TAILQ_NEXT(d, link);
			if (q->nrunning >= limit)
				break;
			if (d->running >= q->conf->destination_concurrency)
				continue;
			struct qjob *j = TAILQ_FIRST(&d->ready);
			TAILQ_REMOVE(&d->ready, j, link);
			if (TAILQ_EMPTY(&d->ready)) {
				TAILQ_REMOVE(&q->busy_dests, d, link);
				d->listed = 0;
			}
			send_job(q, j);
			progress = 1;
		}
	}
}

static void
free_job_parts(struct qjob *j)
{
	route_argv_free(j->argv);
	free(j->rcpts);
	free(j->hop);
	free(j);
}

/* res: one result per recipient of the job, or NULL when they are
 * recorded already. */
static void
job_done(struct qmgr *q, struct qjob *j, const struct deliver_result *res)
{
	TAILQ_REMOVE(&q->running, j, link);
	q->nrunning--;
	j->dest->running--;
	struct qmsg *m = j->m;
	for (size_t i = 0; res != NULL && i < j->nrcpt; i++) {
		count_result(q, &res[i]);
		set_rcpt_result(m, j->rcpts[i], &res[i]);
	}
	dest_release(q, j->dest);
	free_job_parts(j);
	if (--m->jobs_left == 0)
		finish(q, m);
}

static void
apply(struct qmgr *q, const struct agent_result *r)
{
	struct qjob *j;
	TAILQ_FOREACH(j, &q->running, link)
	if (j->no == r->job)
		break;
	if (j == NULL)
		return; /* a duplicate from a crashed child: had one */
	job_done(q, j, &r->r);
}

/* -- taking messages up */

static void
backlog_add(struct qmgr *q, const char *id)
{
	if (!know(q, id))
		return;
	struct backlog_entry *b = xcalloc(1, sizeof(*b));
	memcpy(b->id, id, sizeof(b->id));
	STAILQ_INSERT_TAIL(&q->backlog, b, link);
}

static void
arm_timer(struct qmgr *q)
{
	/* At the active limit a finished message calls fill() anyway; a
	 * timer for a due retry would only spin. */
	if (q->nheap == 0 || q->stopping || q->nactive >= QMGR_ACTIVE_LIMIT)
		return;
	time_t now = time(NULL);
	struct timeval tv = {q->heap[0].when > now ? q->heap[0].when - now : 0,
			     0};
	event_add(q->ev_timer, &tv);
}

static void
fill(struct qmgr *q)
{
	if (q->conf->delivery_concurrency == 0)
		return; /* queue only: nothing is taken up */
	time_t now = time(NULL);
	while (!q->stopping && q->nactive < QMGR_ACTIVE_LIMIT) {
		int due = q->nheap > 0 && q->heap[0].when <= now;
		int fresh = !STAILQ_EMPTY(&q->backlog);
		if (!due && !fresh)
			break;
		/* New mail and retries take turns. */
		if (due && (!fresh || q->heap_turn)) {
			struct waiting w = heap_pop(q);
			activate(q, w.dir, w.id);
			free(w.hops);
		} else {
			struct backlog_entry *b = STAILQ_FIRST(&q->backlog);
			STAILQ_REMOVE_HEAD(&q->backlog, link);
			activate(q, QDIR_INCOMING, b->id);
			free(b);
		}
		q->heap_turn = !q->heap_turn;
	}
	pump(q);
	arm_timer(q);
}

static int
scan_incoming(struct queue *queue, enum queue_dir dir, const char *id,
	      void *arg)
{
	(void)queue;
	(void)dir;
	backlog_add(arg, id);
	return 0;
}

static int
scan_deferred(struct queue *queue, enum queue_dir dir, const char *id,
	      void *arg)
{
	struct qmgr *q = arg;
	struct envelope env;
	const char *errstr;
	if (!know(q, id))
		return 0;
	time_t when = 0;
	char *hops = NULL;
	if (queue_env_read(queue, dir, id, &env, &errstr) == 0) {
		for (size_t i = 0; i < env.nrcpt; i++) {
			struct env_rcpt *r = &env.rcpt[i];
			if ((r->state == RCPT_DEFERRED ||
			     r->state == RCPT_PENDING) &&
			    (when == 0 || r->next_attempt < when))
				when = r->next_attempt;
		}
		hops = waiting_hops(q, &env);
		envelope_free(&env);
	}
	/* A bad one is quarantined when it is taken up. */
	heap_push(q, when, dir, id, hops);
	return 0;
}

/* -- events */

/* sendmail -q: every message waiting for a retry is due now. */
static void
flush_queue(struct qmgr *q)
{
	/* All equal keys still make a heap. */
	for (size_t i = 0; i < q->nheap; i++)
		q->heap[i].when = 0;
	log_info("queue flush requested");
}

static void
flush_one(struct qmgr *q, const char *id)
{
	int found = 0;
	for (size_t i = 0; i < q->nheap; i++)
		if (strcmp(q->heap[i].id, id) == 0) {
			q->heap[i].when = 0;
			found = 1;
		}
	if (found)
		heap_fix(q);
	log_info("%s: flush requested%s", id, found ? "" : " (not waiting)");
}

static void
hold_one(struct qmgr *q, const char *id)
{
	struct qmsg *m = active_find(q, id);
	if (m != NULL) {
		m->after = AFTER_HOLD; /* after the deliveries under way */
		return;
	}
	if (queue_env_move(q->p->queue, id, QDIR_INCOMING, QDIR_HOLD) == 0 ||
	    queue_env_move(q->p->queue, id, QDIR_DEFERRED, QDIR_HOLD) == 0) {
		log_info("%s: placed on hold", id);
		forget(q, id);
	}
}

static void
release_one(struct qmgr *q, const char *id)
{
	if (queue_env_move(q->p->queue, id, QDIR_HOLD, QDIR_DEFERRED) != 0)
		return;
	log_info("%s: released from hold", id);
	know(q, id);
	heap_push(q, 0, QDIR_DEFERRED, id, NULL);
}

static void
remove_one(struct qmgr *q, const char *id)
{
	struct qmsg *m = active_find(q, id);
	if (m != NULL) {
		m->after = AFTER_REMOVE;
		return;
	}
	static const enum queue_dir dirs[] = {QDIR_INCOMING, QDIR_DEFERRED,
					      QDIR_HOLD};
	for (size_t i = 0; i < SMALT_NELEM(dirs); i++)
		if (queue_remove(q->p->queue, dirs[i], id) == 0) {
			log_info("%s: removed by the administrator", id);
			forget(q, id);
			return;
		}
}

/* -- the host cache */

/* Does a waiting entry's hops name host (of channel, or of any channel
 * when channel is NULL)? */
static int
hops_name(const char *hops, const char *channel, const char *host)
{
	for (const char *l = hops; l != NULL && *l != '\0';) {
		const char *e = strchr(l + 1, '\n');
		if (e == NULL)
			break;
		const char *sp = memchr(l + 1, ' ', (size_t)(e - l - 1));
		if (sp != NULL &&
		    (channel == NULL ||
		     ((size_t)(sp - l - 1) == strlen(channel) &&
		      memcmp(l + 1, channel, strlen(channel)) == 0)) &&
		    (size_t)(e - sp - 1) == strlen(host) &&
		    ascii_strncasecmp(sp + 1, host, strlen(host)) == 0)
			return 1;
		l = e;
	}
	return 0;
}

/* Every message waiting for the host is due now, ahead of its own
 * backoff (MMDF: the host is back, so is its mail). The caller fixes
 * the heap (once, when it wakes several hosts). */
static size_t
mark_host_due(struct qmgr *q, const char *channel, const char *host)
{
	size_t n = 0;
	for (size_t i = 0; i < q->nheap; i++)
		if (q->heap[i].when > 0 &&
		    hops_name(q->heap[i].hops, channel, host)) {
			q->heap[i].when = 0;
			n++;
		}
	return n;
}

static size_t
wake_host(struct qmgr *q, const char *channel, const char *host)
{
	size_t n = mark_host_due(q, channel, host);
	if (n > 0)
		heap_fix(q);
	return n;
}

static void
on_host_up(void *arg, const char *channel, const char *host)
{
	struct qmgr *q = arg;
	size_t n = wake_host(q, channel, host);
	if (n > 0)
		log_info("host %s %s: %zu waiting message%s retried now",
			 channel, host, n, n == 1 ? "" : "s");
	/* The caller is inside a result; fill() comes after it. */
}

static void
arm_hosts_timer(struct qmgr *q)
{
	time_t next = 0;
	for (size_t i = 0; i < hostcache_count(q->hosts); i++) {
		const struct hostcache_entry *e = hostcache_at(q->hosts, i);
		if (e->down && e->next_attempt > q->hosts_checked &&
		    (next == 0 || e->next_attempt < next))
			next = e->next_attempt;
	}
	if (next == 0) {
		evtimer_del(q->ev_hosts);
		return;
	}
	time_t now = time(NULL);
	struct timeval tv = {next > now ? next - now : 0, 0};
	evtimer_add(q->ev_hosts, &tv);
}

/* A down host's retry time came: its mail is tried now, and the first
 * connection says whether the host is back (the others wait on the
 * cache again if it is not). */
static void
on_hosts_timer(evutil_socket_t fd, short what, void *arg)
{
	struct qmgr *q = arg;
	(void)fd;
	(void)what;
	time_t now = time(NULL);
	size_t n = 0;
	for (size_t i = 0; i < hostcache_count(q->hosts); i++) {
		const struct hostcache_entry *e = hostcache_at(q->hosts, i);
		if (e->down && e->next_attempt > q->hosts_checked &&
		    e->next_attempt <= now)
			n += mark_host_due(q, e->channel, e->host);
	}
	if (n > 0)
		heap_fix(q);
	q->hosts_checked = now;
	arm_hosts_timer(q);
	fill(q);
}

/* After a reload that lowered host_retry_max: a retry time beyond the
 * new limit counts as come (hostcache_set_backoff), so that host's mail
 * goes now rather than at the old time. */
static void
wake_hosts_come_early(struct qmgr *q)
{
	time_t now = time(NULL);
	size_t n = 0;
	for (size_t i = 0; i < hostcache_count(q->hosts); i++) {
		const struct hostcache_entry *e = hostcache_at(q->hosts, i);
		if (e->down && e->next_attempt > now &&
		    !hostcache_is_down(q->hosts, e->channel, e->host, now, NULL,
				       NULL))
			n += mark_host_due(q, e->channel, e->host);
	}
	if (n > 0)
		heap_fix(q);
}

struct woken {
	struct qmgr *q;
	const char *ip;
	/* channel and host pairs, "\nCHANNEL HOST\n..." */
	struct strbuf hosts;
};

static void
note_woken(const char *channel, const char *host, void *arg)
{
	struct woken *w = arg;
	strbuf_addf(&w->hosts, "%s %s\n", channel, host);
}

/* RFC 1123 5.3.1.1: mail from a host says it is up. */
static void
wake_by_addr(struct qmgr *q, const char *ip)
{
	struct woken w = {q, ip, {0}};
	if (hostcache_mark_up_by_addr(q->hosts, ip, note_woken, &w) == 0)
		return;
	mta_save_hosts(q->mta);
	for (char *l = w.hosts.s, *e; (e = strchr(l, '\n')) != NULL;
	     l = e + 1) {
		*e = '\0';
		char *sp = strchr(l, ' ');
		*sp = '\0';
		log_info("host %s %s is up again: inbound connection from %s",
			 l, sp + 1, ip);
		on_host_up(q, l, sp + 1);
	}
	free(w.hosts.s);
}

/* smaltctl flush HOST: forget what the cache says about it (any
 * channel) and try its mail now. */
static void
flush_host(struct qmgr *q, const char *host)
{
	size_t n = hostcache_flush(q->hosts, host);
	mta_save_hosts(q->mta);
	size_t woken = wake_host(q, NULL, host);
	log_info("flush requested for host %s: %zu cache entr%s cleared, %zu "
		 "message%s retried now",
		 host, n, n == 1 ? "y" : "ies", woken, woken == 1 ? "" : "s");
}

/* smaltctl's requests (through maildrop/, from root or our user only;
 * a plain flush from anyone, as sendmail -q). */
static void
run_request(struct qmgr *q, const struct pickup_request *r)
{
	if (strcmp(r->word, "flush") == 0 && r->arg[0] == '\0') {
		/* The host cache is for root and smaltctl to clear: a
		 * user's sendmail -q does not reopen down hosts. */
		if (r->trusted && hostcache_flush(q->hosts, NULL) > 0)
			mta_save_hosts(q->mta);
		flush_queue(q);
		return;
	}
	if (!r->trusted) {
		log_warn("request \"%s %s\" from an untrusted user ignored",
			 r->word, r->arg);
		return;
	}
	if (strcmp(r->word, "flush") == 0) {
		if (queue_id_valid(r->arg))
			flush_one(q, r->arg);
		else
			flush_host(q, r->arg);
	} else if (strcmp(r->word, "wake") == 0) {
		wake_by_addr(q, r->arg);
	} else if (strcmp(r->word, "hold") == 0) {
		hold_one(q, r->arg);
	} else if (strcmp(r->word, "release") == 0) {
		release_one(q, r->arg);
	} else if (strcmp(r->word, "remove") == 0) {
		remove_one(q, r->arg);
	}
}

static void
pick_up(struct qmgr *q, const char *name)
{
	struct pickup_request req;
	/* Its commit shows up in incoming/ by itself. */
	switch (pickup_file(q->p->queue, q->conf, name, &req)) {
	case PICKUP_REQUEST:
		run_request(q, &req);
		break;
	case PICKUP_QUEUED:
		q->picked_up++;
		break;
	case PICKUP_RETRY: {
		/* sendmail has exited 0: nobody else will bring it back. */
		struct timeval tv = {QMGR_MAILDROP_RETRY, 0};
		if (!evtimer_pending(q->ev_maildrop, NULL))
			evtimer_add(q->ev_maildrop, &tv);
		break;
	}
	default:
		break;
	}
}

static int
scan_maildrop(struct queue *queue, enum queue_dir dir, const char *id,
	      void *arg)
{
	(void)queue;
	(void)dir;
	pick_up(arg, id);
	return 0;
}

static void
on_arrival(enum queue_dir dir, const char *id, void *arg)
{
	if (dir == QDIR_INCOMING)
		backlog_add(arg, id);
	else if (dir == QDIR_MAILDROP)
		pick_up(arg, id);
}

static void
on_watch(evutil_socket_t fd, short what, void *arg)
{
	struct qmgr *q = arg;
	(void)what;
	if (queue_watch_read(fd, on_arrival, q) != 0) {
		log_warn("missed queue events: scanning %s/ and %s/",
			 queue_dir_name(QDIR_INCOMING),
			 queue_dir_name(QDIR_MAILDROP));
		queue_scan(q->p->queue, QDIR_MAILDROP, scan_maildrop, q);
		queue_scan(q->p->queue, QDIR_INCOMING, scan_incoming, q);
	}
	fill(q);
}

/* Again what could not be taken before (a full disk), and away with
 * what sendmails killed half-way left. */
static void
on_maildrop_timer(evutil_socket_t fd, short what, void *arg)
{
	struct qmgr *q = arg;
	(void)fd;
	(void)what;
	pickup_sweep(q->p->queue, QMGR_MAILDROP_STALE);
	queue_scan(q->p->queue, QDIR_MAILDROP, scan_maildrop, q);
	struct timeval tv = {QMGR_MAILDROP_SWEEP, 0};
	if (!evtimer_pending(q->ev_maildrop, NULL))
		evtimer_add(q->ev_maildrop, &tv);
	fill(q); /* what a flush or wake request it found made due */
}

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	fill(arg);
}

static void
check_stopped(struct qmgr *q)
{
	if (q->stopping && q->nrunning == 0)
		event_base_loopbreak(q->base);
}

static void
on_sock(evutil_socket_t fd, short what, void *arg)
{
	struct qmgr *q = arg;
	char buf[AGENT_MSG_MAX + 1];
	(void)what;
	for (int i = 0; i < 256; i++) {
		ssize_t n = recv(fd, buf, AGENT_MSG_MAX, MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			break;
		if (n <= 0) {
			log_error("the delivery agent went away; stopping");
			q->stopping = 1;
			event_base_loopbreak(q->base);
			return;
		}
		buf[n] = '\0';
		struct agent_result r;
		if (agent_result_parse(buf, (size_t)n, &r) != 0) {
			log_warn("malformed result from the delivery agent");
			continue;
		}
		apply(q, &r);
	}
	check_stopped(q);
	fill(q);
}

static void
on_term(evutil_socket_t sig, short what, void *arg)
{
	struct qmgr *q = arg;
	(void)sig;
	(void)what;
	q->stopping = 1;
	check_stopped(q);
	/* The agent waits as long for its children. */
	struct timeval tv = {AGENT_DRAIN_SECONDS + 1, 0};
	event_base_loopexit(q->base, &tv);
}

static int
load_routes(const struct smalt_conf *conf, struct routes **out, char *err,
	    size_t errlen)
{
	*out = NULL;
	if (conf->routes[0] == '\0')
		return 0;
	*out = routes_open(conf->routes, err, errlen);
	return *out != NULL ? 0 : -1;
}

static void
on_hup(evutil_socket_t sig, short what, void *arg)
{
	struct qmgr *q = arg;
	char err[CONF_ERRLEN];
	struct routes *routes;
	(void)sig;
	(void)what;
	struct smalt_conf *conf = q->p->load_conf(err, sizeof(err));
	if (conf == NULL) {
		log_error("reload failed, keeping the old settings: %s", err);
		return;
	}
	if (load_routes(conf, &routes, err, sizeof(err)) != 0) {
		log_error("reload failed, keeping the old settings: %s", err);
		conf_free(conf);
		return;
	}
	routes_free(q->routes);
	q->routes = routes;
	mta_set_conf(q->mta, conf);
	hostcache_set_backoff(q->hosts, conf->host_retry_min,
			      conf->host_retry_max);
	conf_free(q->conf);
	q->conf = q->p->conf = conf;
	log_info("reloaded configuration from %s",
		 conf->source ? conf->source : "built-in defaults");
	wake_hosts_come_early(q);
	fill(q);
}

static void
noop_free(void *p)
{
	(void)p; /* messages are freed with their jobs */
}

/* Messages live as long as their jobs: the last one frees it. */
static void
free_job(struct qjob *j)
{
	struct qmsg *m = j->m;
	free_job_parts(j);
	if (--m->jobs_left == 0) {
		envelope_free(&m->env);
		free(m->bounced_now);
		free(m);
	}
}

static void
free_dest(void *node)
{
	struct dest *d = node;
	struct qjob *j;
	while ((j = TAILQ_FIRST(&d->ready)) != NULL) {
		TAILQ_REMOVE(&d->ready, j, link);
		free_job(j);
	}
	free(d->key);
	free(d);
}

int
qmgr_main(struct qmgr_params *p)
{
	struct qmgr q = {.p = p, .conf = p->conf};
	char err[CONF_ERRLEN];
	log_set_part("qmgr");
	STAILQ_INIT(&q.backlog);
	TAILQ_INIT(&q.busy_dests);
	TAILQ_INIT(&q.running);
	if (load_routes(q.conf, &q.routes, err, sizeof(err)) != 0) {
		log_error("%s", err);
		return 78;
	}
	q.watch_fd = queue_watch_open(p->queue);
	if (q.watch_fd < 0)
		fatal("inotify: %s", strerror(errno));
	q.base = event_base_new();
	if (q.base == NULL)
		fatal("event_base_new failed");
	q.ev_sock =
	    event_new(q.base, p->agent_sock, EV_READ | EV_PERSIST, on_sock, &q);
	q.ev_watch =
	    event_new(q.base, q.watch_fd, EV_READ | EV_PERSIST, on_watch, &q);
	q.ev_timer = evtimer_new(q.base, on_timer, &q);
	q.ev_maildrop = evtimer_new(q.base, on_maildrop_timer, &q);
	q.ev_stats = event_new(q.base, -1, EV_PERSIST, on_stats_timer, &q);
	q.ev_hosts = evtimer_new(q.base, on_hosts_timer, &q);
	q.hosts = hostcache_new(q.conf->host_retry_min, q.conf->host_retry_max);
	char *hosts_path = xasprintf("%s/%s/hosts", queue_path(p->queue),
				     queue_dir_name(QDIR_STATE));
	if (hostcache_load(q.hosts, hosts_path, err, sizeof(err)) != 0)
		log_warn("the host cache starts empty: %s", err);
	q.hosts_expired = time(NULL);
	q.mta = mta_new(q.base, p->queue, q.conf, q.hosts, hosts_path,
			on_host_up, &q);
	free(hosts_path);
	struct timeval every = {QMGR_STATS_INTERVAL, 0};
	event_add(q.ev_stats, &every);
	save_stats(&q);
	struct event *ev_term = evsignal_new(q.base, SIGTERM, on_term, &q);
	struct event *ev_int = evsignal_new(q.base, SIGINT, on_term, &q);
	struct event *ev_hup = evsignal_new(q.base, SIGHUP, on_hup, &q);
	event_add(q.ev_sock, NULL);
	event_add(q.ev_watch, NULL);
	event_add(ev_term, NULL);
	event_add(ev_int, NULL);
	event_add(ev_hup, NULL);
	/* Blocked since the fork: one that came meanwhile runs now. */
	smalt_unblock_stop_signals();

	/* What a stop or crash left: new mail in arrival order, retries by
	 * their time (a delivery cut off by a crash is simply done again). */
	queue_scan(p->queue, QDIR_INCOMING, scan_incoming, &q);
	queue_scan(p->queue, QDIR_DEFERRED, scan_deferred, &q);
	/* Mail that sendmail dropped while the daemon was down. */
	on_maildrop_timer(-1, 0, &q);
	arm_hosts_timer(&q);
	fill(&q);
	event_base_dispatch(q.base);

	if (q.nrunning > 0)
		log_warn("stopping with %u deliveries under way; they are "
			 "tried again after the restart",
			 q.nrunning);
	/* Their messages are still in the queue, tried after the restart
	 * (at least once, as with a crash). */
	mta_save_hosts(q.mta);
	mta_free(q.mta);
	struct qjob *j;
	while ((j = TAILQ_FIRST(&q.running)) != NULL) {
		TAILQ_REMOVE(&q.running, j, link);
		free_job(j);
	}
	tdestroy(q.active, noop_free);
	tdestroy(q.dests, free_dest);
	struct backlog_entry *b;
	while ((b = STAILQ_FIRST(&q.backlog)) != NULL) {
		STAILQ_REMOVE_HEAD(&q.backlog, link);
		free(b);
	}
	for (size_t i = 0; i < q.nheap; i++)
		free(q.heap[i].hops);
	free(q.heap);
	hostcache_free(q.hosts);
	event_free(q.ev_hosts);
	tdestroy(q.known, free);
	routes_free(q.routes);
	event_free(q.ev_sock);
	event_free(q.ev_watch);
	event_free(q.ev_timer);
	save_stats(&q);
	event_free(q.ev_maildrop);
	event_free(q.ev_stats);
	event_free(ev_term);
	event_free(ev_int);
	event_free(ev_hup);
	event_base_free(q.base);
	close(q.watch_fd);
	return 0;
}
