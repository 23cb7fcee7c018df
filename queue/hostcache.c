#include "queue/hostcache.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/strbuf.h"
#include "common/util.h"

#define HC_MAGIC "smalt-hosts\t1"
/* Times are kept within what RFC 3339 prints with a four-digit year
 * (9999-12-31T23:59:59Z), so that a planted file cannot make gmtime fail
 * or now + delay overflow. */
#define HC_TIME_MAX	((time_t)253402300799LL)
#define HC_FAILURES_MAX 1000000u
/* addrs_seen moves only when the addresses change or it is an hour old:
 * a change, and so a save, per delivery would be a disk flush per
 * delivery. Expiry is a day, so an hour late is close enough. */
#define HC_SEEN_SLACK 3600
/* The longest line hostcache_format can write, with room to spare. */
#define HC_LINE_MAX                                                            \
	(64 + HOSTCACHE_CHANNEL_MAX + HOSTCACHE_HOST_MAX + 4 * 24 +            \
	 HOSTCACHE_ADDRS_MAX * INET6_ADDRSTRLEN + HOSTCACHE_REASON_MAX)
#define HC_FILE_MAX                                                            \
	((size_t)HOSTCACHE_MAX_ENTRIES * HC_LINE_MAX + sizeof(HC_MAGIC) + 8)
#define HC_DEFAULT_REASON "host unavailable"

struct hostcache {
	/* Sorted by (channel, host): bsearch for lookups; an insertion moves
	 * pointers only, which is cheap next to a connection attempt. */
	struct hostcache_entry **v;
	size_t n, cap;
	unsigned retry_min, retry_max;
	int dirty; /* changed since the last load or save */
};

/* -- keys and field checks */

static int
valid_channel(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > HOSTCACHE_CHANNEL_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '-' ||
		      s[i] == '_'))
			return 0;
	return 1;
}

/* Printable ASCII without spaces: a host must stay one word in `show
 * hosts` and one field in the file. */
static int
valid_host(const char *s)
{
	size_t n = strnlen(s, HOSTCACHE_HOST_MAX + 1);
	if (n == 0 || n > HOSTCACHE_HOST_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
			return 0;
	return 1;
}

/* The host's lookup key in buf (HOSTCACHE_HOST_MAX + 1 bytes): lower
 * case. -1 when channel or host is not a valid key. */
static int
make_key(const char *channel, const char *host, char *buf)
{
	if (channel == NULL || host == NULL || !valid_channel(channel) ||
	    !valid_host(host))
		return -1;
	smalt_strlcpy(buf, host, HOSTCACHE_HOST_MAX + 1);
	ascii_lower(buf);
	return 0;
}

static time_t
clamp_time(time_t t)
{
	return t < 0 ? 0 : t > HC_TIME_MAX ? HC_TIME_MAX : t;
}

/* Length of the valid UTF-8 sequence at s (n bytes left), or 0. */
static size_t
utf8_seq(const unsigned char *s, size_t n)
{
	unsigned c = s[0], cp, min;
	size_t len;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2, min = 0x80;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3, min = 0x800;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4, min = 0x10000;
	else
		return 0;
	if (len > n)
		return 0;
	cp = c & (0x7fu >> len);
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3fu);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/* A reason as stored: control characters (tabs, newlines) and bytes that
 * are not UTF-8 become '?', so a remote server's reply can neither break
 * the file's shape nor the JSON; at most HOSTCACHE_REASON_MAX bytes, cut
 * between characters. Cleaning a clean string changes nothing, which is
 * how the parser checks a reason. */
static char *
clean_reason(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s), o = 0;
	char *out = xmalloc(HOSTCACHE_REASON_MAX + 1);
	for (size_t i = 0; i < n;) {
		size_t len = utf8_seq(p + i, n - i);
		if (o + (len ? len : 1) > HOSTCACHE_REASON_MAX)
			break;
		if (len == 0 || p[i] < 0x20 || p[i] == 0x7f) {
			out[o++] = '?';
			i += len ? len : 1;
			continue;
		}
		memcpy(out + o, p + i, len);
		o += len;
		i += len;
	}
	out[o] = '\0';
	return out;
}

/* An address in the one text form inet_ntop gives, IPv4-mapped IPv6 as
 * plain IPv4 (a dual-stack listener reports IPv4 clients that way), so
 * that addresses compare as strings. buf holds INET6_ADDRSTRLEN bytes. */
static int
canon_addr(const char *in, char *buf)
{
	struct in_addr a4;
	struct in6_addr a6;
	if (inet_pton(AF_INET, in, &a4) == 1)
		return inet_ntop(AF_INET, &a4, buf, INET6_ADDRSTRLEN) ? 0 : -1;
	if (inet_pton(AF_INET6, in, &a6) != 1)
		return -1;
	if (IN6_IS_ADDR_V4MAPPED(&a6)) {
		memcpy(&a4, &a6.s6_addr[12], 4);
		return inet_ntop(AF_INET, &a4, buf, INET6_ADDRSTRLEN) ? 0 : -1;
	}
	return inet_ntop(AF_INET6, &a6, buf, INET6_ADDRSTRLEN) ? 0 : -1;
}

/* -- entries and the sorted array */

static void
entry_free(struct hostcache_entry *e)
{
	for (size_t i = 0; i < e->naddrs; i++)
		free(e->addrs[i]);
	free(e->addrs);
	free(e->channel);
	free(e->host);
	free(e->reason);
	free(e);
}

static struct hostcache_entry *
entry_new(const char *channel, const char *key)
{
	struct hostcache_entry *e = xcalloc(1, sizeof(*e));
	e->channel = xstrdup(channel);
	e->host = xstrdup(key);
	e->reason = xstrdup("");
	return e;
}

static void
entry_set_reason(struct hostcache_entry *e, const char *reason)
{
	free(e->reason);
	e->reason = xstrdup(reason);
}

static void
entry_clear_addrs(struct hostcache_entry *e)
{
	for (size_t i = 0; i < e->naddrs; i++)
		free(e->addrs[i]);
	free(e->addrs);
	e->addrs = NULL;
	e->naddrs = 0;
	e->addrs_seen = 0;
}

static int
key_cmp(const char *channel, const char *host, const struct hostcache_entry *e)
{
	int c = strcmp(channel, e->channel);
	return c != 0 ? c : strcmp(host, e->host);
}

/* The entry's index, or -1 with *pos where it would go. */
static long
find(const struct hostcache *hc, const char *channel, const char *key,
     size_t *pos)
{
	size_t lo = 0, hi = hc->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = key_cmp(channel, key, hc->v[mid]);
		if (c == 0)
			return (long)mid;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	if (pos != NULL)
		*pos = lo;
	return -1;
}

static struct hostcache_entry *
lookup(const struct hostcache *hc, const char *channel, const char *host)
{
	char key[HOSTCACHE_HOST_MAX + 1];
	if (make_key(channel, host, key) != 0)
		return NULL;
	long i = find(hc, channel, key, NULL);
	return i < 0 ? NULL : hc->v[i];
}

static void
push(struct hostcache *hc, size_t pos, struct hostcache_entry *e)
{
	if (hc->n == hc->cap) {
		hc->cap = hc->cap ? hc->cap * 2 : 64;
		hc->v = xrealloc(hc->v, hc->cap * sizeof(*hc->v));
	}
	memmove(&hc->v[pos + 1], &hc->v[pos], (hc->n - pos) * sizeof(*hc->v));
	hc->v[pos] = e;
	hc->n++;
}

/* The entry for a key, created up and empty when missing; NULL for an
 * invalid key or a full cache. */
static struct hostcache_entry *
lookup_or_add(struct hostcache *hc, const char *channel, const char *host)
{
	char key[HOSTCACHE_HOST_MAX + 1];
	size_t pos = 0; /* set by find() when it returns -1 */
	if (make_key(channel, host, key) != 0)
		return NULL;
	long i = find(hc, channel, key, &pos);
	if (i >= 0)
		return hc->v[i];
	if (hc->n >= HOSTCACHE_MAX_ENTRIES)
		return NULL;
	struct hostcache_entry *e = entry_new(channel, key);
	push(hc, pos, e);
	return e;
}

static void
remove_at(struct hostcache *hc, size_t i)
{
	entry_free(hc->v[i]);
	memmove(&hc->v[i], &hc->v[i + 1], (hc->n - i - 1) * sizeof(*hc->v));
	hc->n--;
	hc->dirty = 1;
}

/* Removes, in one pass, the entries for which drop() says so. */
static size_t
remove_if(struct hostcache *hc,
	  int (*drop)(const struct hostcache_entry *e, const void *arg),
	  const void *arg)
{
	size_t o = 0, n = hc->n;
	for (size_t i = 0; i < n; i++) {
		if (drop(hc->v[i], arg))
			entry_free(hc->v[i]);
		else
			hc->v[o++] = hc->v[i];
	}
	hc->n = o;
	if (o != n)
		hc->dirty = 1;
	return n - o;
}

static void
clear_all(struct hostcache *hc)
{
	for (size_t i = 0; i < hc->n; i++)
		entry_free(hc->v[i]);
	hc->n = 0;
}

/* -- life cycle */

struct hostcache *
hostcache_new(unsigned retry_min, unsigned retry_max)
{
	struct hostcache *hc = xcalloc(1, sizeof(*hc));
	hostcache_set_backoff(hc, retry_min, retry_max);
	return hc;
}

void
hostcache_free(struct hostcache *hc)
{
	if (hc == NULL)
		return;
	clear_all(hc);
	free(hc->v);
	free(hc);
}

void
hostcache_set_backoff(struct hostcache *hc, unsigned retry_min,
		      unsigned retry_max)
{
	hc->retry_min = retry_min;
	hc->retry_max = retry_max < retry_min ? retry_min : retry_max;
}

size_t
hostcache_count(const struct hostcache *hc)
{
	return hc->n;
}

const struct hostcache_entry *
hostcache_at(const struct hostcache *hc, size_t i)
{
	return i < hc->n ? hc->v[i] : NULL;
}

/* -- state changes */

/* retry_min << (failures - 1), capped at retry_max. */
static time_t
backoff(const struct hostcache *hc, unsigned failures)
{
	uint64_t d = hc->retry_min;
	for (unsigned i = 1; i < failures && d != 0 && d < hc->retry_max; i++)
		d *= 2;
	return (time_t)(d > hc->retry_max ? hc->retry_max : d);
}

/* Is the host down and its retry time still to come? A retry time
 * further away than retry_max (the clock was set back, or a reload
 * lowered the limit) has come: it could not have been given now. */
static int
waiting(const struct hostcache *hc, const struct hostcache_entry *e, time_t now)
{
	return e->down && now < e->next_attempt &&
	       e->next_attempt - now <= (time_t)hc->retry_max;
}

int
hostcache_is_down(const struct hostcache *hc, const char *channel,
		  const char *host, time_t now, const char **reason,
		  time_t *until)
{
	const struct hostcache_entry *e = lookup(hc, channel, host);
	if (e == NULL || !waiting(hc, e, clamp_time(now)))
		return 0;
	if (reason != NULL)
		*reason = e->reason;
	if (until != NULL)
		*until = e->next_attempt;
	return 1;
}

void
hostcache_mark_down(struct hostcache *hc, const char *channel, const char *host,
		    const char *reason, time_t now)
{
	struct hostcache_entry *e = lookup_or_add(hc, channel, host);
	if (e == NULL)
		return;
	char *why = clean_reason(reason ? reason : "");
	if (why[0] == '\0') {
		free(why);
		why = xstrdup(HC_DEFAULT_REASON);
	}
	now = clamp_time(now);
	if (strcmp(why, e->reason) != 0) {
		free(e->reason);
		e->reason = why;
		hc->dirty = 1;
	} else {
		free(why);
	}
	if (waiting(hc, e, now))
		return; /* one of several attempts that were under way */
	if (!e->down) {
		e->down = 1;
		e->since = now;
		e->failures = 0;
	}
	if (e->failures < HC_FAILURES_MAX)
		e->failures++;
	time_t wait = backoff(hc, e->failures);
	e->next_attempt = now > HC_TIME_MAX - wait ? HC_TIME_MAX : now + wait;
	hc->dirty = 1;
}

/* Up, with the failure history gone. An up host without addresses is not
 * kept: it would tell nothing. Returns whether it was down. */
static int
entry_up(struct hostcache *hc, size_t i)
{
	struct hostcache_entry *e = hc->v[i];
	int was_down = e->down;
	if (e->naddrs == 0) {
		remove_at(hc, i);
		return was_down;
	}
	if (was_down) {
		e->down = 0;
		e->failures = 0;
		e->since = 0;
		e->next_attempt = 0;
		entry_set_reason(e, "");
		hc->dirty = 1;
	}
	return was_down;
}

int
hostcache_mark_up(struct hostcache *hc, const char *channel, const char *host)
{
	char key[HOSTCACHE_HOST_MAX + 1];
	if (make_key(channel, host, key) != 0)
		return 0;
	long i = find(hc, channel, key, NULL);
	return i < 0 ? 0 : entry_up(hc, (size_t)i);
}

/* The canonical, duplicate-free list of valid addresses; returns how many
 * went into out (HOSTCACHE_ADDRS_MAX strings of INET6_ADDRSTRLEN). */
static size_t
canon_addrs(const char *const *addrs, size_t n, char out[][INET6_ADDRSTRLEN])
{
	size_t k = 0;
	for (size_t i = 0; i < n && k < HOSTCACHE_ADDRS_MAX; i++) {
		if (addrs[i] == NULL || canon_addr(addrs[i], out[k]) != 0)
			continue;
		size_t j = 0;
		while (j < k && strcmp(out[j], out[k]) != 0)
			j++;
		if (j == k)
			k++;
	}
	return k;
}

static int
same_addrs(const struct hostcache_entry *e, char v[][INET6_ADDRSTRLEN],
	   size_t n)
{
	if (e->naddrs != n)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (strcmp(e->addrs[i], v[i]) != 0)
			return 0;
	return 1;
}

void
hostcache_set_addrs(struct hostcache *hc, const char *channel, const char *host,
		    const char *const *addrs, size_t n, time_t now)
{
	char v[HOSTCACHE_ADDRS_MAX][INET6_ADDRSTRLEN];
	size_t k = canon_addrs(addrs, n, v);
	now = clamp_time(now);
	if (k == 0) {
		char key[HOSTCACHE_HOST_MAX + 1];
		if (make_key(channel, host, key) != 0)
			return;
		long i = find(hc, channel, key, NULL);
		if (i < 0)
			return;
		struct hostcache_entry *e = hc->v[i];
		if (e->naddrs != 0) {
			entry_clear_addrs(e);
			hc->dirty = 1;
		}
		if (!e->down)
			remove_at(hc, (size_t)i);
		return;
	}
	struct hostcache_entry *e = lookup_or_add(hc, channel, host);
	if (e == NULL)
		return;
	if (!same_addrs(e, v, k)) {
		entry_clear_addrs(e);
		e->addrs = xcalloc(k, sizeof(*e->addrs));
		for (size_t i = 0; i < k; i++)
			e->addrs[i] = xstrdup(v[i]);
		e->naddrs = k;
		e->addrs_seen = now;
		hc->dirty = 1;
	} else if (now - e->addrs_seen >= HC_SEEN_SLACK) {
		e->addrs_seen = now;
		hc->dirty = 1;
	}
}

static int
has_addr(const struct hostcache_entry *e, const char *ip)
{
	for (size_t i = 0; i < e->naddrs; i++)
		if (strcmp(e->addrs[i], ip) == 0)
			return 1;
	return 0;
}

size_t
hostcache_mark_up_by_addr(struct hostcache *hc, const char *ip,
			  void (*fn)(const char *channel, const char *host,
				     void *arg),
			  void *arg)
{
	char a[INET6_ADDRSTRLEN];
	size_t woken = 0;
	if (ip == NULL || canon_addr(ip, a) != 0)
		return 0;
	/* A scan: only down hosts are candidates, and there are few; an
	 * address index would cost more to keep than it saves. Hosts with
	 * the address are never removed by entry_up, so i stays valid. */
	for (size_t i = 0; i < hc->n; i++) {
		struct hostcache_entry *e = hc->v[i];
		if (!e->down || !has_addr(e, a))
			continue;
		entry_up(hc, i);
		woken++;
		if (fn != NULL)
			fn(e->channel, e->host, arg);
	}
	return woken;
}

static int
host_matches(const struct hostcache_entry *e, const void *host)
{
	return host == NULL || ascii_strcasecmp(e->host, host) == 0;
}

size_t
hostcache_flush(struct hostcache *hc, const char *host)
{
	return remove_if(hc, host_matches, host);
}

static int
is_stale(const struct hostcache_entry *e, const void *arg)
{
	time_t now = *(const time_t *)arg;
	if (e->down)
		return e->next_attempt <= now - HOSTCACHE_KEEP_SECS;
	return e->addrs_seen <= now - HOSTCACHE_KEEP_SECS;
}

size_t
hostcache_expire(struct hostcache *hc, time_t now)
{
	now = clamp_time(now);
	return remove_if(hc, is_stale, &now);
}

/* -- the file */

static void
out_field(struct strbuf *b, const char *s)
{
	strbuf_add(b, "\t", 1);
	strbuf_adds(b, s);
}

static void
out_entry(struct strbuf *b, const struct hostcache_entry *e)
{
	strbuf_adds(b, "host");
	out_field(b, e->channel);
	out_field(b, e->host);
	out_field(b, e->down ? "down" : "up");
	strbuf_addf(b, "\t%u\t%lld\t%lld\t%lld\t", e->failures,
		    (long long)e->since, (long long)e->next_attempt,
		    (long long)e->addrs_seen);
	for (size_t i = 0; i < e->naddrs; i++) {
		if (i > 0)
			strbuf_add(b, ",", 1);
		strbuf_adds(b, e->addrs[i]);
	}
	/* Reasons were cleaned when stored: no tab or newline can be in. */
	out_field(b, e->reason);
	strbuf_add(b, "\n", 1);
}

char *
hostcache_format(const struct hostcache *hc, size_t *len)
{
	struct strbuf b = {0};
	strbuf_adds(&b, HC_MAGIC "\n");
	for (size_t i = 0; i < hc->n; i++)
		out_entry(&b, hc->v[i]);
	strbuf_adds(&b, "end\n");
	*len = b.len;
	return b.s;
}

/* Parsing: line by line, each line split on tabs into a fixed number of
 * fields, every value checked against what the in-memory rules allow, and
 * the records in strictly ascending key order (as format writes them), so
 * that duplicates are corruption too. */
#define HC_FIELDS 10

struct cursor {
	const char *p, *end;
	unsigned lineno;
	char *f[HC_FIELDS];
	size_t nf;
	char line[HC_LINE_MAX];
};

/* The next line split into c->f: NULL, or why there is none. */
static const char *
next_line(struct cursor *c)
{
	c->lineno++;
	if (c->p == c->end)
		return "missing end";
	const char *nl = memchr(c->p, '\n', (size_t)(c->end - c->p));
	if (nl == NULL)
		return "truncated line";
	size_t n = (size_t)(nl - c->p);
	if (n >= sizeof(c->line))
		return "line too long";
	if (memchr(c->p, '\0', n) != NULL)
		return "NUL byte";
	memcpy(c->line, c->p, n);
	c->line[n] = '\0';
	c->p = nl + 1;
	c->nf = 0;
	for (char *s = c->line;;) {
		if (c->nf == HC_FIELDS)
			return "too many fields";
		c->f[c->nf++] = s;
		char *tab = strchr(s, '\t');
		if (tab == NULL)
			return NULL;
		*tab = '\0';
		s = tab + 1;
	}
}

static int
parse_time(const char *s, time_t *out)
{
	uint64_t v;
	if (parse_decimal(s, (uint64_t)HC_TIME_MAX, &v) != 0)
		return -1;
	*out = (time_t)v;
	return 0;
}

/* ADDR,ADDR,...: each canonical, no duplicates, at most the limit. */
static const char *
parse_addrs(char *s, struct hostcache_entry *e)
{
	if (*s == '\0')
		return NULL;
	e->addrs = xcalloc(HOSTCACHE_ADDRS_MAX, sizeof(*e->addrs));
	for (char *tok = s; tok != NULL;) {
		char *comma = strchr(tok, ',');
		if (comma != NULL)
			*comma = '\0';
		char a[INET6_ADDRSTRLEN];
		if (e->naddrs == HOSTCACHE_ADDRS_MAX)
			return "too many addresses";
		if (canon_addr(tok, a) != 0 || strcmp(a, tok) != 0)
			return "bad address";
		if (has_addr(e, a))
			return "duplicate address";
		e->addrs[e->naddrs++] = xstrdup(a);
		tok = comma ? comma + 1 : NULL;
	}
	return NULL;
}

/* The numbers and their invariants: an up host has no failure history
 * and some addresses; a down host has failures and a reason; addrs_seen
 * is set exactly when there are addresses. */
static const char *
parse_state(struct cursor *c, struct hostcache_entry *e)
{
	uint64_t v;
	if (strcmp(c->f[3], "up") == 0)
		e->down = 0;
	else if (strcmp(c->f[3], "down") == 0)
		e->down = 1;
	else
		return "bad state";
	if (parse_decimal(c->f[4], HC_FAILURES_MAX, &v) != 0)
		return "bad failure count";
	e->failures = (unsigned)v;
	if (parse_time(c->f[5], &e->since) != 0 ||
	    parse_time(c->f[6], &e->next_attempt) != 0 ||
	    parse_time(c->f[7], &e->addrs_seen) != 0)
		return "bad time";
	const char *why = parse_addrs(c->f[8], e);
	if (why != NULL)
		return why;
	if ((e->naddrs == 0) != (e->addrs_seen == 0))
		return "addresses and their time disagree";
	if (!e->down && (e->failures != 0 || e->since != 0 ||
			 e->next_attempt != 0 || e->naddrs == 0))
		return "up host with failure data or no addresses";
	if (e->down && e->failures == 0)
		return "down host without failures";
	return NULL;
}

static const char *
parse_reason(const char *s, struct hostcache_entry *e)
{
	char *clean = clean_reason(s);
	int same = strcmp(clean, s) == 0;
	free(clean);
	if (!same)
		return "bad reason";
	if ((e->down != 0) != (*s != '\0'))
		return "reason does not fit the state";
	entry_set_reason(e, s);
	return NULL;
}

/* One host record, appended to hc (the caller checks the order). */
static const char *
parse_entry(struct cursor *c, struct hostcache *hc)
{
	if (c->nf != HC_FIELDS || strcmp(c->f[0], "host") != 0)
		return "bad record";
	if (!valid_channel(c->f[1]))
		return "bad channel";
	if (!valid_host(c->f[2]))
		return "bad host";
	char key[HOSTCACHE_HOST_MAX + 1];
	smalt_strlcpy(key, c->f[2], sizeof(key));
	ascii_lower(key);
	if (strcmp(key, c->f[2]) != 0)
		return "host not in lower case";
	if (hc->n > 0 && key_cmp(c->f[1], key, hc->v[hc->n - 1]) <= 0)
		return "records out of order or repeated";
	if (hc->n >= HOSTCACHE_MAX_ENTRIES)
		return "too many hosts";
	struct hostcache_entry *e = entry_new(c->f[1], key);
	const char *why = parse_state(c, e);
	if (why == NULL)
		why = parse_reason(c->f[9], e);
	if (why != NULL) {
		entry_free(e);
		return why;
	}
	push(hc, hc->n, e);
	return NULL;
}

int
hostcache_parse(struct hostcache *hc, const char *text, size_t len, char *err,
		size_t errlen)
{
	struct cursor *c = xmalloc(sizeof(*c));
	const char *why = NULL;

	clear_all(hc);
	hc->dirty = 0;
	c->p = text;
	c->end = text + len;
	c->lineno = 0;
	if (next_line(c) != NULL || c->nf != 2 ||
	    strcmp(c->f[0], "smalt-hosts") != 0 || strcmp(c->f[1], "1") != 0) {
		why = "not a smalt host cache (version 1)";
		goto out;
	}
	for (;;) {
		why = next_line(c);
		if (why != NULL)
			goto out;
		if (c->nf == 1 && strcmp(c->f[0], "end") == 0)
			break;
		why = parse_entry(c, hc);
		if (why != NULL)
			goto out;
	}
	if (c->p != c->end) {
		c->lineno++;
		why = "data after end";
	}
out:
	if (why != NULL) {
		set_err(err, errlen, "line %u: %s", c->lineno, why);
		clear_all(hc);
	}
	free(c);
	return why != NULL ? -1 : 0;
}

int
hostcache_load(struct hostcache *hc, const char *path, char *err, size_t errlen)
{
	char *buf;
	size_t len;
	int rc = read_whole_file(path, HC_FILE_MAX, &buf, &len);
	if (rc == ENOENT) {
		clear_all(hc);
		hc->dirty = 0;
		return 0;
	}
	if (rc != 0) {
		clear_all(hc);
		hc->dirty = 0;
		set_err(err, errlen, "%s: %s", path, strerror(rc));
		errno = rc;
		return -1;
	}
	char why[256];
	rc = hostcache_parse(hc, buf, len, why, sizeof(why));
	free(buf);
	if (rc != 0) {
		set_err(err, errlen, "%s: %s", path, why);
		errno = EINVAL;
	}
	return rc;
}

/* The folder a path is in, for the fsync that makes the rename durable. */
static char *
dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');
	if (slash == NULL)
		return xstrdup(".");
	if (slash == path)
		return xstrdup("/");
	return xstrndup(path, (size_t)(slash - path));
}

static int
write_file(const char *tmp, const char *text, size_t len)
{
	int fd = open(
	    tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	if (write_all(fd, text, len) != 0 || fsync(fd) != 0) {
		int saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	return close(fd);
}

int
hostcache_save(struct hostcache *hc, const char *path, char *err, size_t errlen)
{
	if (!hc->dirty)
		return 0;
	size_t len;
	char *text = hostcache_format(hc, &len);
	char *tmp = xasprintf("%s.tmp", path);
	char *dir = dir_of(path);
	int rc = -1;
	const char *step = "write";
	if (write_file(tmp, text, len) != 0) {
		int saved = errno;
		unlink(tmp);
		errno = saved;
		goto out;
	}
	step = "rename";
	if (rename(tmp, path) != 0) {
		int saved = errno;
		unlink(tmp);
		errno = saved;
		goto out;
	}
	/* Renamed: the new contents are in place, if perhaps not yet on
	 * disk; keep dirty set on a failed fsync so the next save retries. */
	step = "fsync folder";
	if (fsync_dir(dir) != 0)
		goto out;
	hc->dirty = 0;
	rc = 0;
out:
	if (rc != 0) {
		int saved = errno;
		set_err(err, errlen, "%s: %s: %s",
			strcmp(step, "write") == 0 ? tmp : path, step,
			strerror(saved));
		errno = saved;
	}
	free(text);
	free(tmp);
	free(dir);
	return rc;
}

/* -- smaltctl show hosts */

static char *
rfc3339(time_t t, char *buf, size_t len)
{
	struct tm tm;
	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		smalt_strlcpy(buf, "?", len);
	return buf;
}

static void
json_str(FILE *out, const char *s)
{
	putc('"', out);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(out, "\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			fprintf(out, "\\u%04x", c);
		else
			putc(c, out);
	}
	putc('"', out);
}

static void
print_json(const struct hostcache_entry *e, FILE *out, int first)
{
	char t[32];
	fprintf(out, "%s{\"channel\":", first ? "" : ",");
	json_str(out, e->channel);
	fprintf(out, ",\"host\":");
	json_str(out, e->host);
	fprintf(out, ",\"state\":\"%s\",\"reason\":", e->down ? "down" : "up");
	json_str(out, e->reason);
	fprintf(out, ",\"failures\":%u,\"next_attempt\":", e->failures);
	if (e->down)
		fprintf(out, "\"%s\"}", rfc3339(e->next_attempt, t, sizeof(t)));
	else
		fprintf(out, "null}");
}

static void
print_text(const struct hostcache_entry *e, FILE *out)
{
	char t[32];
	fprintf(out, "channel=%s host=%s state=%s failures=%u", e->channel,
		e->host, e->down ? "down" : "up", e->failures);
	if (e->down)
		fprintf(out, " next_attempt=%s reason=(%s)",
			rfc3339(e->next_attempt, t, sizeof(t)), e->reason);
	putc('\n', out);
}

void
hostcache_print(const struct hostcache *hc, FILE *out, int json)
{
	if (json)
		putc('[', out);
	else if (hc->n == 0)
		fprintf(out, "no hosts\n");
	for (size_t i = 0; i < hc->n; i++) {
		if (json)
			print_json(hc->v[i], out, i == 0);
		else
			print_text(hc->v[i], out);
	}
	if (json)
		fprintf(out, "]\n");
}
