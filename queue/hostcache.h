/* The per-host unavailability cache (SPEC §5), as MMDF's deliver kept it:
 * per channel and next hop, whether the host is down, why, and when it may
 * be tried again. While a host is down, messages for it are deferred with
 * its reason and no connection is made; the backoff doubles with each
 * failure between host_retry_min and host_retry_max. The first success,
 * or an inbound SMTP connection from one of the host's last known
 * addresses (RFC 1123 5.3.1.1), marks it up again.
 *
 * Keys: a channel name ("smtp", "relay": lower-case letters, digits, '-'
 * and '_', at most 32) and a host as `smaltctl show hosts` prints it (an
 * MX name, or "[192.0.2.1]:587" for a literal next hop: 1 to 300 printable
 * ASCII characters, no spaces). Hosts compare ASCII case-insensitively and
 * are kept in lower case. Calls with a key outside these rules change
 * nothing, and such a host is never down.
 *
 * What is kept: every host that is down, and a host that is up only while
 * it has addresses recorded (hostcache_set_addrs); hostcache_expire drops
 * up hosts whose addresses are more than a day old and down hosts whose
 * retry time passed more than a day ago with nobody trying (no longer
 * evidence of anything). At most HOSTCACHE_MAX_ENTRIES hosts: beyond that,
 * new hosts are not recorded (they are simply tried, as without a cache).
 *
 * Not thread-safe: the queue manager's event loop owns it. */
#ifndef SMALT_HOSTCACHE_H
#define SMALT_HOSTCACHE_H

#include <stddef.h>
#include <stdio.h>
#include <time.h>

#define HOSTCACHE_CHANNEL_MAX 32
#define HOSTCACHE_HOST_MAX    300
#define HOSTCACHE_REASON_MAX  512 /* bytes, cut on a UTF-8 boundary */
#define HOSTCACHE_ADDRS_MAX   32
#define HOSTCACHE_MAX_ENTRIES 100000
/* How long up hosts' addresses, and down hosts past their retry time, are
 * kept (hostcache_expire). */
#define HOSTCACHE_KEEP_SECS 86400

struct hostcache_entry {
	char *channel; /* as given */
	char *host;    /* lower case */
	char *reason;  /* "" when up; never "" when down */
	int down;
	unsigned failures;   /* in a row; 0 when up */
	time_t since;	     /* first failure of this run; 0 when up */
	time_t next_attempt; /* when down: no connection before this */
	char **addrs;	     /* inet_ntop text, IPv4-mapped as IPv4 */
	size_t naddrs;
	time_t addrs_seen; /* when addrs were last recorded; 0 if none */
};

struct hostcache;

/* retry_min/retry_max in seconds; a max below min counts as min. */
struct hostcache *hostcache_new(unsigned retry_min, unsigned retry_max);
void hostcache_free(struct hostcache *hc);
/* After a reload: the next failure uses the new limits; a retry time
 * already given that lies further away than the new retry_max counts as
 * come (as it does when the clock is set back). */
void hostcache_set_backoff(struct hostcache *hc, unsigned retry_min,
			   unsigned retry_max);

/* Replaces the contents with the file's. A missing file is an empty cache
 * and 0. Anything malformed: -1, err says where and why, and the cache is
 * empty. */
int hostcache_load(struct hostcache *hc, const char *path, char *err,
		   size_t errlen);
/* Writes PATH.tmp, fsyncs it, renames it over path and fsyncs the folder,
 * so a crash leaves the old file or the new one, whole. Does nothing (0)
 * when nothing changed since the last load or save. -1 with errno and err
 * on failure; the old file is untouched and the next call tries again. */
int hostcache_save(struct hostcache *hc, const char *path, char *err,
		   size_t errlen);
/* The file format, one line per host, sorted:
 *   smalt-hosts<TAB>1
 *   host<TAB>CHANNEL<TAB>HOST<TAB>up|down<TAB>FAILURES<TAB>SINCE
 *       <TAB>NEXT_ATTEMPT<TAB>ADDRS_SEEN<TAB>ADDR,ADDR...<TAB>REASON
 *   end
 * hostcache_parse accepts exactly what hostcache_format writes; on error
 * it returns -1 with err set and leaves the cache empty. */
char *hostcache_format(const struct hostcache *hc, size_t *len);
int hostcache_parse(struct hostcache *hc, const char *text, size_t len,
		    char *err, size_t errlen);

/* 1 when the host is down at now: no connection may be made; *reason
 * (valid until the next change to the cache) and *until are set when not
 * NULL. Else 0, also once next_attempt has come: then connections are
 * tried again and their outcome marks the host up or down. */
int hostcache_is_down(const struct hostcache *hc, const char *channel,
		      const char *host, time_t now, const char **reason,
		      time_t *until);
/* A connection failure, timeout, TLS failure where TLS is required, or a
 * 4xx/5xx greeting. The first failure waits retry_min, each further one
 * twice as long, up to retry_max. A failure reported while the host is
 * already down and before its retry time (a connection that was under way
 * when another one failed) updates the reason only: concurrent attempts
 * count as one. reason NULL or empty becomes "host unavailable". */
void hostcache_mark_down(struct hostcache *hc, const char *channel,
			 const char *host, const char *reason, time_t now);
/* A success: the host is up, failures cleared. Returns 1 if it was down,
 * so that the caller wakes every message waiting on it. */
int hostcache_mark_up(struct hostcache *hc, const char *channel,
		      const char *host);
/* Records the host's addresses as resolved for a connection (inet_ntop
 * text; invalid ones are skipped, duplicates dropped, at most
 * HOSTCACHE_ADDRS_MAX kept). n == 0 forgets them. */
void hostcache_set_addrs(struct hostcache *hc, const char *channel,
			 const char *host, const char *const *addrs, size_t n,
			 time_t now);
/* An inbound connection from ip (text; "::ffff:192.0.2.1" is 192.0.2.1):
 * every down host, of any channel, with that address is marked up and fn
 * (which must not change the cache) is called for it. Returns how many. */
size_t hostcache_mark_up_by_addr(struct hostcache *hc, const char *ip,
				 void (*fn)(const char *channel,
					    const char *host, void *arg),
				 void *arg);
/* smaltctl flush: host NULL forgets every entry, else the entries of that
 * host (any case, any channel). Returns how many were forgotten. */
size_t hostcache_flush(struct hostcache *hc, const char *host);
/* Drops what is no longer worth keeping (see above). Returns how many. */
size_t hostcache_expire(struct hostcache *hc, time_t now);

/* The entries, sorted by channel, then host. */
size_t hostcache_count(const struct hostcache *hc);
const struct hostcache_entry *hostcache_at(const struct hostcache *hc,
					   size_t i);

/* smaltctl show hosts. Text: one line per host,
 *   channel=smtp host=mx.example.org state=down failures=3
 *   next_attempt=2026-11-29T10:00:00Z reason=(...)
 * (on one line; up hosts end after failures=0), or "no hosts". JSON
 * (SPEC §9): [{"channel","host","state","reason","failures",
 * "next_attempt"}], next_attempt null when up; times RFC 3339 UTC. */
void hostcache_print(const struct hostcache *hc, FILE *out, int json);

#endif
