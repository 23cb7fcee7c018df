/* The smtp and relay channels (SPEC §5), run by the queue manager on its
 * own event loop as the unprivileged user: the next hop of a recipient,
 * its DNS (c-ares), the SMTP client engine (smtp_client.h), and the
 * per-host unavailability cache (queue/hostcache.h) that the outcome of
 * each connection updates.
 *
 * The cache key of a next hop ("host" in `smaltctl show hosts`):
 * - smtp: the domain whose MX is looked up, in lower case: the
 *   recipient's domain or the route's NEXTHOP; "[192.0.2.1]:25" for a
 *   literal NEXTHOP (no MX lookup).
 * - relay: the smarthost (relayhost, or the route's NEXTHOP) as
 *   "[host]:port" when written in brackets, else "host:port"; its
 *   addresses come from A/AAAA, never MX.
 * A host is marked down when every address failed at host level before
 * a transaction began (see smtp_client.h: refused, timeout, 4xx/5xx
 * greeting, TLS that is required but fails, AUTH refused); a transaction
 * that went through marks it up. A session lost after MAIL FROM (a slow
 * server, a content filter hanging up) says nothing either way, nor do
 * DNS failures, which defer or bounce the mail. */
#ifndef SMALT_MTA_H
#define SMALT_MTA_H

#include <event2/event.h>
#include <stdint.h>

#include "conf/conf.h"
#include "deliver/result.h"
#include "deliver/routes.h"
#include "queue/hostcache.h"
#include "queue/queue.h"

/* Recipients of one message to one next hop in one transaction, at most
 * (Postfix's smtp_destination_recipient_limit). */
#define MTA_RCPT_LIMIT 50
/* A message with more Received: headers than this is in a loop (an MX or
 * relayhost pointing back here): it bounces with 5.4.6 instead of going
 * round forever (Postfix's hopcount_limit). */
#define MTA_HOP_LIMIT 50
/* Seconds: TCP connect and TLS handshake; each command's reply; each
 * step of the message and the reply to its dot (Postfix's defaults). */
#define MTA_CONNECT_TIMEOUT 30
#define MTA_COMMAND_TIMEOUT 300
#define MTA_DATA_TIMEOUT    600
/* A session that ended cleanly stays open this many seconds for the
 * next message to the same next hop (Postfix's connection cache keeps
 * 2 s); at most MTA_IDLE_PER_HOST of them per next hop. */
#define MTA_IDLE_SECS	  5
#define MTA_IDLE_PER_HOST 4
/* A connection carries transactions for this long at most (Postfix's
 * smtp_connection_reuse_time_limit), so that DNS changes are seen. */
#define MTA_REUSE_SECS 300

struct mta_nexthop {
	enum channel_kind channel;	   /* CHANNEL_SMTP or CHANNEL_RELAY */
	char host[HOSTCACHE_HOST_MAX + 1]; /* the cache key */
	char name[256];			   /* what DNS is asked for */
	uint16_t port;
	int mx; /* 1: MX, then A/AAAA; 0: A/AAAA of name */
	/* relay: the next hop is relayhost itself, so relayhost_auth_file's
	 * credentials go to it (and to no other relay next hop). */
	int is_relayhost;
};

/* The next hop of a recipient in domain routed by r (smtp or relay).
 * -1 with why when there is none (relay without a relayhost, a name too
 * long): a configuration error, which defers. */
int mta_nexthop(const struct smalt_conf *conf, const struct route *r,
		const char *domain, struct mta_nexthop *out, const char **why);

/* relayhost_auth_file: the first line that is not blank or a "#"
 * comment is "user password", the password being the rest of the line
 * (trailing white space and CR dropped). 0 with both malloc'd, or -1
 * (no such line, a NUL) with both NULL. */
#define MTA_AUTH_FILE_MAX 4096
int mta_auth_parse(const char *text, size_t len, char **user, char **pass);

struct mta_tx {
	const char *id;
	const struct mta_nexthop *hop;
	const char *sender; /* "" for <> */
	const char *const *rcpts;
	size_t nrcpt; /* 1 .. MTA_RCPT_LIMIT */
};

struct mta_result {
	const char *relay;		   /* "host[ip]:port", or "none" */
	const struct deliver_result *rcpt; /* one per tx recipient */
	uint64_t ready_us; /* session ready for MAIL FROM; 0 if none was */
};

/* Runs once per mta_start, never inside it; r is valid during the call
 * only. */
typedef void (*mta_done_cb)(void *arg, const struct mta_result *r);
/* A host that was down is up again (a transaction went through): the
 * queue manager wakes the mail waiting for it. */
typedef void (*mta_host_up_cb)(void *arg, const char *channel,
			       const char *host);

struct mta;

/* hosts is the queue manager's cache; hosts_path where it is saved. */
struct mta *mta_new(struct event_base *base, struct queue *queue,
		    const struct smalt_conf *conf, struct hostcache *hosts,
		    const char *hosts_path, mta_host_up_cb up, void *up_arg);
/* After a reload: TLS settings, CA file and AUTH file are read again;
 * the resolver stays as it was at start. conf must outlive the mta or
 * the next mta_set_conf. */
void mta_set_conf(struct mta *m, const struct smalt_conf *conf);
void mta_start(struct mta *m, const struct mta_tx *tx, mta_done_cb cb,
	       void *arg);
/* Writes the host cache if it changed (logged on failure). */
void mta_save_hosts(struct mta *m);
/* Closes idle connections kept for reuse. */
void mta_close_idle(struct mta *m);
/* Drops everything under way: no callback runs. */
void mta_free(struct mta *m);

#endif
