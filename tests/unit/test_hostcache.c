/* The per-host unavailability cache: backoff, down/up, wake-up by
 * address, flush, expiry, the file (round trip, crash-safe save, malformed
 * input) and the show hosts output. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "queue/hostcache.h"
#include "tests/lib/testutil.h"
#include "tests/unit/check.h"

#define T0 ((time_t)1795946400) /* 2026-11-29T10:00:00Z */

static char *tmpdir;

static const struct hostcache_entry *
find_entry(const struct hostcache *hc, const char *channel, const char *host)
{
	for (size_t i = 0; i < hostcache_count(hc); i++) {
		const struct hostcache_entry *e = hostcache_at(hc, i);
		if (strcmp(e->channel, channel) == 0 &&
		    strcmp(e->host, host) == 0)
			return e;
	}
	return NULL;
}

static char *
printed(const struct hostcache *hc, int json)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	hostcache_print(hc, f, json);
	fclose(f);
	return buf;
}

static char *
formatted(const struct hostcache *hc)
{
	size_t len;
	char *s = hostcache_format(hc, &len);
	CHECK(strlen(s) == len);
	return s;
}

static void
test_backoff(void)
{
	struct hostcache *hc = hostcache_new(60, 1800);
	static const time_t want[] = {60, 120, 240, 480, 960, 1800, 1800};
	time_t now = T0;
	const char *reason = NULL;
	time_t until = 0;

	for (size_t i = 0; i < SMALT_NELEM(want); i++) {
		hostcache_mark_down(hc, "smtp", "mx1.example.org",
				    "connect: Connection refused", now);
		const struct hostcache_entry *e = hostcache_at(hc, 0);
		CHECK(e != NULL && e->down && e->failures == i + 1);
		CHECK(e != NULL && e->next_attempt == now + want[i]);
		CHECK(e != NULL && e->since == T0);
		CHECK(hostcache_is_down(hc, "smtp", "mx1.example.org", now,
					&reason, &until) == 1);
		CHECK(until == now + want[i]);
		CHECK_STR(reason, "connect: Connection refused");
		/* Still down one second before, up for a try at the time. */
		CHECK(hostcache_is_down(hc, "smtp", "mx1.example.org",
					now + want[i] - 1, NULL, NULL) == 1);
		CHECK(hostcache_is_down(hc, "smtp", "mx1.example.org",
					now + want[i], NULL, NULL) == 0);
		now += want[i];
	}

	/* Attempts that were under way count once: the failure of a second
	 * connection before the retry time changes the reason only. */
	hostcache_mark_down(hc, "smtp", "MX1.example.org", "timeout", now);
	const struct hostcache_entry *e = hostcache_at(hc, 0);
	CHECK(e->failures == 8 && e->next_attempt == now + 1800);
	hostcache_mark_down(hc, "smtp", "mx1.example.org", "greeting: 421 busy",
			    now + 10);
	CHECK(e->failures == 8 && e->next_attempt == now + 1800);
	CHECK_STR(e->reason, "greeting: 421 busy");
	CHECK(hostcache_count(hc) == 1);

	/* A reload: a retry time beyond the new maximum has come, and the
	 * next failure uses the new limits. */
	CHECK(hostcache_is_down(hc, "smtp", "mx1.example.org", now + 10, NULL,
				NULL) == 1);
	hostcache_set_backoff(hc, 10, 5);
	CHECK(hostcache_is_down(hc, "smtp", "mx1.example.org", now + 10, NULL,
				NULL) == 0);
	hostcache_set_backoff(hc, 60, 1800);
	/* So has one after the clock went back by more than retry_max. */
	CHECK(hostcache_is_down(hc, "smtp", "mx1.example.org", now - 1, NULL,
				NULL) == 0);
	CHECK(hostcache_is_down(hc, "smtp", "mx1.example.org", now, NULL,
				NULL) == 1);
	hostcache_set_backoff(hc, 10, 5);
	hostcache_mark_down(hc, "smtp", "mx1.example.org", NULL, now + 1800);
	CHECK(e->next_attempt == now + 1800 + 10);
	CHECK_STR(e->reason, "host unavailable");
	hostcache_free(hc);

	/* retry_min 0: down is recorded, but never blocks. */
	hc = hostcache_new(0, 0);
	hostcache_mark_down(hc, "relay", "[192.0.2.1]:587", "x", T0);
	CHECK(hostcache_count(hc) == 1);
	CHECK(hostcache_is_down(hc, "relay", "[192.0.2.1]:587", T0, NULL,
				NULL) == 0);
	hostcache_free(hc);
}

static void
test_keys(void)
{
	struct hostcache *hc = hostcache_new(60, 1800);
	const char *reason = NULL;
	char longhost[HOSTCACHE_HOST_MAX + 2];

	CHECK(hostcache_is_down(hc, "smtp", "nowhere.example", T0, &reason,
				NULL) == 0);
	CHECK(reason == NULL);
	hostcache_mark_down(hc, "smtp", "Mx.Example.ORG", "refused", T0);
	CHECK(hostcache_is_down(hc, "smtp", "mx.example.org", T0, NULL, NULL) ==
	      1);
	CHECK(hostcache_is_down(hc, "smtp", "MX.EXAMPLE.ORG", T0, NULL, NULL) ==
	      1);
	CHECK_STR(hostcache_at(hc, 0)->host, "mx.example.org");
	/* The channel is part of the key. */
	CHECK(hostcache_is_down(hc, "relay", "mx.example.org", T0, NULL,
				NULL) == 0);

	/* Keys outside the rules are never recorded. */
	hostcache_mark_down(hc, "smtp", "bad host", "x", T0);
	hostcache_mark_down(hc, "smtp", "tab\thost", "x", T0);
	hostcache_mark_down(hc, "smtp", "", "x", T0);
	hostcache_mark_down(hc, "SMTP", "ok.example", "x", T0);
	hostcache_mark_down(hc, "", "ok.example", "x", T0);
	hostcache_mark_down(hc, NULL, "ok.example", "x", T0);
	hostcache_mark_down(hc, "smtp", NULL, "x", T0);
	memset(longhost, 'a', sizeof(longhost) - 1);
	longhost[sizeof(longhost) - 1] = '\0';
	hostcache_mark_down(hc, "smtp", longhost, "x", T0);
	CHECK(hostcache_count(hc) == 1);
	CHECK(hostcache_is_down(hc, "smtp", "bad host", T0, NULL, NULL) == 0);
	CHECK(hostcache_mark_up(hc, "smtp", "bad host") == 0);
	/* 300 characters is still a host. */
	longhost[HOSTCACHE_HOST_MAX] = '\0';
	hostcache_mark_down(hc, "smtp", longhost, "x", T0);
	CHECK(hostcache_count(hc) == 2);

	/* Sorted by channel, then host. */
	hostcache_mark_down(hc, "relay", "zz.example", "x", T0);
	hostcache_mark_down(hc, "smtp", "b.example", "x", T0);
	CHECK_STR(hostcache_at(hc, 0)->channel, "relay");
	CHECK_STR(hostcache_at(hc, 1)->host, longhost);
	CHECK_STR(hostcache_at(hc, 2)->host, "b.example");
	CHECK_STR(hostcache_at(hc, 3)->host, "mx.example.org");
	CHECK(hostcache_at(hc, 4) == NULL);
	hostcache_free(hc);
}

static void
test_reason_cleaning(void)
{
	struct hostcache *hc = hostcache_new(60, 1800);
	char big[HOSTCACHE_REASON_MAX + 10];

	hostcache_mark_down(hc, "smtp", "a.example",
			    "421 4.3.2 busy\r\n\ttry\x7f later \xff\xc3", T0);
	CHECK_STR(hostcache_at(hc, 0)->reason,
		  "421 4.3.2 busy???try? later ??");
	/* Valid UTF-8 stays; a long reason is cut between characters. */
	hostcache_mark_down(hc, "smtp", "b.example", "d\xc3\xa9j\xc3\xa0", T0);
	CHECK_STR(hostcache_at(hc, 1)->reason, "d\xc3\xa9j\xc3\xa0");
	memset(big, 'x', HOSTCACHE_REASON_MAX - 1);
	memcpy(big + HOSTCACHE_REASON_MAX - 1, "\xc3\xa9yz", 5);
	hostcache_mark_down(hc, "smtp", "c.example", big, T0);
	const char *r = hostcache_at(hc, 2)->reason;
	CHECK(strlen(r) == HOSTCACHE_REASON_MAX - 1);
	CHECK(strchr(r, '\xc3') == NULL);
	/* An overlong encoding and a surrogate are not UTF-8. */
	hostcache_mark_down(hc, "smtp", "d.example", "\xc0\xaf\xed\xa0\x80",
			    T0);
	CHECK_STR(hostcache_at(hc, 3)->reason, "?????");
	hostcache_free(hc);
}

static void
test_mark_up(void)
{
	struct hostcache *hc = hostcache_new(60, 1800);
	const char *const addrs[] = {"192.0.2.1"};

	CHECK(hostcache_mark_up(hc, "smtp", "mx.example.org") == 0);
	hostcache_mark_down(hc, "smtp", "mx.example.org", "refused", T0);
	hostcache_mark_down(hc, "smtp", "mx.example.org", "refused", T0 + 60);
	CHECK(hostcache_at(hc, 0)->failures == 2);
	CHECK(hostcache_mark_up(hc, "smtp", "MX.example.org") == 1);
	/* Without addresses an up host is not kept. */
	CHECK(hostcache_count(hc) == 0);
	CHECK(hostcache_mark_up(hc, "smtp", "mx.example.org") == 0);

	/* With addresses it stays, up, its history gone. */
	hostcache_set_addrs(hc, "smtp", "mx.example.org", addrs, 1, T0);
	hostcache_mark_down(hc, "smtp", "mx.example.org", "refused", T0);
	CHECK(hostcache_mark_up(hc, "smtp", "mx.example.org") == 1);
	const struct hostcache_entry *e = hostcache_at(hc, 0);
	CHECK(e != NULL && !e->down && e->failures == 0 && e->since == 0 &&
	      e->next_attempt == 0 && e->naddrs == 1);
	CHECK_STR(e->reason, "");
	CHECK(hostcache_mark_up(hc, "smtp", "mx.example.org") == 0);
	CHECK(hostcache_is_down(hc, "smtp", "mx.example.org", T0, NULL, NULL) ==
	      0);
	/* The next failure starts the backoff over. */
	hostcache_mark_down(hc, "smtp", "mx.example.org", "refused", T0 + 5);
	CHECK(e->failures == 1 && e->next_attempt == T0 + 65 &&
	      e->since == T0 + 5);
	hostcache_free(hc);
}

static void
test_addrs(void)
{
	struct hostcache *hc = hostcache_new(60, 1800);
	const char *const addrs[] = {
	    "2001:DB8:0::1",	"192.0.2.1",   "bogus",	     NULL,
	    "::ffff:192.0.2.1", "2001:db8::1", "192.0.2.300"};
	const char *many[40];
	char buf[40][16];

	hostcache_set_addrs(hc, "smtp", "mx.example.org", addrs,
			    SMALT_NELEM(addrs), T0);
	const struct hostcache_entry *e = hostcache_at(hc, 0);
	CHECK(e != NULL && e->naddrs == 2 && !e->down && e->addrs_seen == T0);
	CHECK_STR(e->addrs[0], "2001:db8::1");
	CHECK_STR(e->addrs[1], "192.0.2.1");

	for (size_t i = 0; i < SMALT_NELEM(many); i++) {
		snprintf(buf[i], sizeof(buf[i]), "10.0.0.%zu", i);
		many[i] = buf[i];
	}
	hostcache_set_addrs(hc, "smtp", "mx.example.org", many,
			    SMALT_NELEM(many), T0);
	CHECK(e->naddrs == HOSTCACHE_ADDRS_MAX);
	CHECK_STR(e->addrs[31], "10.0.0.31");

	/* None valid: forgotten, and an up host with it. */
	hostcache_set_addrs(hc, "smtp", "mx.example.org", addrs + 2, 1, T0);
	CHECK(hostcache_count(hc) == 0);
	/* A down host keeps its entry without addresses. */
	hostcache_set_addrs(hc, "smtp", "mx.example.org", addrs, 2, T0);
	hostcache_mark_down(hc, "smtp", "mx.example.org", "refused", T0);
	hostcache_set_addrs(hc, "smtp", "mx.example.org", NULL, 0, T0);
	e = hostcache_at(hc, 0);
	CHECK(e != NULL && e->down && e->naddrs == 0 && e->addrs_seen == 0);
	hostcache_free(hc);
}

struct woken {
	char names[8][64];
	int n;
};

static void
on_wake(const char *channel, const char *host, void *arg)
{
	struct woken *w = arg;
	if (w->n < 8)
		snprintf(w->names[w->n++], sizeof(w->names[0]), "%s %s",
			 channel, host);
}

static void
test_by_addr(void)
{
	struct hostcache *hc = hostcache_new(60, 1800);
	const char *const a_addrs[] = {"192.0.2.1", "2001:db8::1"};
	const char *const c_addrs[] = {"192.0.2.9"};
	struct woken w = {0};

	hostcache_set_addrs(hc, "smtp", "a.example", a_addrs, 2, T0);
	hostcache_set_addrs(hc, "relay", "[192.0.2.1]:587", a_addrs, 1, T0);
	hostcache_set_addrs(hc, "smtp", "c.example", c_addrs, 1, T0);
	hostcache_set_addrs(hc, "smtp", "d.example", a_addrs, 1, T0);
	hostcache_mark_down(hc, "smtp", "a.example", "refused", T0);
	hostcache_mark_down(hc, "relay", "[192.0.2.1]:587", "refused", T0);
	hostcache_mark_down(hc, "smtp", "c.example", "refused", T0);
	/* d.example is up: it has the address but needs no waking. */

	CHECK(hostcache_mark_up_by_addr(hc, "::ffff:192.0.2.1", on_wake, &w) ==
	      2);
	CHECK(w.n == 2);
	CHECK_STR(w.names[0], "relay [192.0.2.1]:587");
	CHECK_STR(w.names[1], "smtp a.example");
	CHECK(hostcache_is_down(hc, "smtp", "a.example", T0, NULL, NULL) == 0);
	CHECK(hostcache_is_down(hc, "relay", "[192.0.2.1]:587", T0, NULL,
				NULL) == 0);
	CHECK(hostcache_is_down(hc, "smtp", "c.example", T0, NULL, NULL) == 1);
	CHECK(find_entry(hc, "smtp", "a.example")->failures == 0);

	/* Already up: nothing to wake. */
	CHECK(hostcache_mark_up_by_addr(hc, "2001:DB8:0:0::1", on_wake, &w) ==
	      0);
	CHECK(hostcache_mark_up_by_addr(hc, "not an address", on_wake, &w) ==
	      0);
	CHECK(hostcache_mark_up_by_addr(hc, NULL, on_wake, &w) == 0);
	CHECK(hostcache_mark_up_by_addr(hc, "192.0.2.9", NULL, NULL) == 1);
	CHECK(w.n == 2);
	CHECK(hostcache_count(hc) == 4);
	hostcache_free(hc);
}

static void
test_flush_expire(void)
{
	struct hostcache *hc = hostcache_new(60, 1800);
	const char *const addrs[] = {"192.0.2.1"};

	hostcache_mark_down(hc, "smtp", "mx.example.org", "x", T0);
	hostcache_mark_down(hc, "relay", "mx.example.org", "x", T0);
	hostcache_mark_down(hc, "smtp", "other.example", "x", T0);
	CHECK(hostcache_flush(hc, "nothing.example") == 0);
	CHECK(hostcache_flush(hc, "MX.Example.Org") == 2);
	CHECK(hostcache_count(hc) == 1);
	CHECK_STR(hostcache_at(hc, 0)->host, "other.example");
	hostcache_mark_down(hc, "smtp", "mx.example.org", "x", T0);
	CHECK(hostcache_flush(hc, NULL) == 2);
	CHECK(hostcache_count(hc) == 0);
	CHECK(hostcache_flush(hc, NULL) == 0);

	/* expire: up hosts' addresses a day old, down hosts a day past their
	 * retry time; anything newer stays. */
	hostcache_set_addrs(hc, "smtp", "old-up.example", addrs, 1, T0);
	hostcache_set_addrs(hc, "smtp", "new-up.example", addrs, 1, T0 + 100);
	hostcache_mark_down(hc, "smtp", "old-down.example", "x", T0 - 60);
	hostcache_mark_down(hc, "smtp", "new-down.example", "x", T0 + 100);
	CHECK(hostcache_expire(hc, T0 + HOSTCACHE_KEEP_SECS - 1) == 0);
	CHECK(hostcache_expire(hc, T0 + HOSTCACHE_KEEP_SECS) == 2);
	CHECK(hostcache_count(hc) == 2);
	CHECK(find_entry(hc, "smtp", "new-up.example") != NULL);
	CHECK(find_entry(hc, "smtp", "new-down.example") != NULL);
	hostcache_free(hc);
}

static void
test_print(void)
{
	struct hostcache *hc = hostcache_new(60, 1800);
	const char *const addrs[] = {"192.0.2.1"};
	char *s = printed(hc, 0);
	CHECK_STR(s, "no hosts\n");
	free(s);
	s = printed(hc, 1);
	CHECK_STR(s, "[]\n");
	free(s);

	hostcache_mark_down(hc, "smtp", "mx.example.org",
			    "greeting: 421 \"busy\" \\ later", T0 - 60);
	hostcache_mark_down(hc, "smtp", "mx.example.org", "timeout", T0 - 60);
	hostcache_mark_down(hc, "smtp", "mx.example.org", "timeout", T0 - 60);
	hostcache_mark_down(hc, "smtp", "mx.example.org", "timeout", T0 - 60);
	hostcache_mark_down(hc, "relay", "[192.0.2.1]:587", "TLS required",
			    T0 - 60);
	hostcache_set_addrs(hc, "smtp", "up.example", addrs, 1, T0);
	/* failures=1 after four calls: the last three came before the
	 * retry time of the first, so they only replaced its reason. */
	s = printed(hc, 0);
	CHECK_STR(s, "channel=relay host=[192.0.2.1]:587 state=down "
		     "failures=1 next_attempt=2026-11-29T10:00:00Z "
		     "reason=(TLS required)\n"
		     "channel=smtp host=mx.example.org state=down failures=1 "
		     "next_attempt=2026-11-29T10:00:00Z reason=(timeout)\n"
		     "channel=smtp host=up.example state=up failures=0\n");
	free(s);
	hostcache_mark_down(hc, "smtp", "mx.example.org",
			    "greeting: 421 \"busy\" \\ later", T0);
	hostcache_mark_down(hc, "smtp", "mx.example.org",
			    "greeting: 421 \"busy\" \\ later", T0 + 120);
	s = printed(hc, 0);
	CHECK_CONTAINS(s, "channel=smtp host=mx.example.org state=down "
			  "failures=3 next_attempt=2026-11-29T10:06:00Z "
			  "reason=(greeting: 421 \"busy\" \\ later)\n");
	free(s);
	s = printed(hc, 1);
	CHECK_STR(s, "[{\"channel\":\"relay\",\"host\":\"[192.0.2.1]:587\","
		     "\"state\":\"down\",\"reason\":\"TLS required\","
		     "\"failures\":1,"
		     "\"next_attempt\":\"2026-11-29T10:00:00Z\"},"
		     "{\"channel\":\"smtp\",\"host\":\"mx.example.org\","
		     "\"state\":\"down\","
		     "\"reason\":\"greeting: 421 \\\"busy\\\" \\\\ later\","
		     "\"failures\":3,"
		     "\"next_attempt\":\"2026-11-29T10:06:00Z\"},"
		     "{\"channel\":\"smtp\",\"host\":\"up.example\","
		     "\"state\":\"up\",\"reason\":\"\",\"failures\":0,"
		     "\"next_attempt\":null}]\n");
	free(s);
	hostcache_free(hc);
}

static void
test_round_trip(void)
{
	struct hostcache *hc = hostcache_new(60, 1800);
	const char *const addrs[] = {"2001:db8::25", "192.0.2.25"};
	const char *const v6[] = {"2001:db8:1::1"};
	char err[256];
	char *path = xasprintf("%s/hosts", tmpdir);

	/* A missing file is an empty cache. */
	CHECK(hostcache_load(hc, path, err, sizeof(err)) == 0);
	CHECK(hostcache_count(hc) == 0);
	/* Nothing changed: nothing written. */
	CHECK(hostcache_save(hc, path, err, sizeof(err)) == 0);
	CHECK(access(path, F_OK) != 0);

	hostcache_set_addrs(hc, "smtp", "mx.example.org", addrs, 2, T0);
	hostcache_mark_down(hc, "smtp", "mx.example.org",
			    "connect to 2001:db8::25:\tNetwork\nunreachable",
			    T0);
	hostcache_set_addrs(hc, "relay", "[2001:db8:1::1]:587", v6, 1, T0 + 1);
	hostcache_mark_down(hc, "relay", "[2001:db8:1::1]:587", "x", T0 + 5);
	hostcache_mark_up(hc, "relay", "[2001:db8:1::1]:587");
	hostcache_mark_down(hc, "smtp", "plain.example", "refused", T0 + 2);
	char *text = formatted(hc);
	CHECK_STR(text, "smalt-hosts\t1\n"
			"host\trelay\t[2001:db8:1::1]:587\tup\t0\t0\t0\t"
			"1795946401\t2001:db8:1::1\t\n"
			"host\tsmtp\tmx.example.org\tdown\t1\t1795946400\t"
			"1795946460\t1795946400\t2001:db8::25,192.0.2.25\t"
			"connect to 2001:db8::25:?Network?unreachable\n"
			"host\tsmtp\tplain.example\tdown\t1\t1795946402\t"
			"1795946462\t0\t\trefused\n"
			"end\n");
	CHECK(hostcache_save(hc, path, err, sizeof(err)) == 0);
	size_t len;
	char *disk = test_read_file(path, &len);
	CHECK_STR(disk, text);
	free(disk);
	char *tmp = xasprintf("%s.tmp", path);
	CHECK(access(tmp, F_OK) != 0);
	free(tmp);

	struct hostcache *again = hostcache_new(60, 1800);
	CHECK(hostcache_load(again, path, err, sizeof(err)) == 0);
	CHECK(hostcache_count(again) == 3);
	char *text2 = formatted(again);
	CHECK_STR(text2, text);
	const char *reason = NULL;
	time_t until = 0;
	CHECK(hostcache_is_down(again, "smtp", "mx.example.org", T0 + 59,
				&reason, &until) == 1);
	CHECK_STR(reason, "connect to 2001:db8::25:?Network?unreachable");
	CHECK(until == T0 + 60);
	CHECK(hostcache_mark_up_by_addr(again, "2001:db8::25", NULL, NULL) ==
	      1);
	/* A loaded cache is clean until it changes: unlinking the file
	 * shows whether the second save wrote. */
	CHECK(hostcache_save(again, path, err, sizeof(err)) == 0);
	unlink(path);
	CHECK(hostcache_save(again, path, err, sizeof(err)) == 0);
	CHECK(access(path, F_OK) != 0);
	/* Same addresses within the hour: not worth a write either. */
	hostcache_set_addrs(again, "smtp", "mx.example.org", addrs, 2,
			    T0 + 600);
	CHECK(hostcache_save(again, path, err, sizeof(err)) == 0);
	CHECK(access(path, F_OK) != 0);
	hostcache_set_addrs(again, "smtp", "mx.example.org", addrs, 2,
			    T0 + 3600);
	CHECK(hostcache_save(again, path, err, sizeof(err)) == 0);
	CHECK(access(path, F_OK) == 0);

	/* Loading replaces what was there. */
	CHECK(hostcache_load(hc, path, err, sizeof(err)) == 0);
	CHECK(hostcache_count(hc) == 3);
	CHECK(!find_entry(hc, "smtp", "mx.example.org")->down);
	free(text);
	free(text2);
	free(path);
	hostcache_free(again);
	hostcache_free(hc);
}

static void
test_save_failure(void)
{
	struct hostcache *hc = hostcache_new(60, 1800);
	char err[256] = "";
	char *missing = xasprintf("%s/no/such/folder/hosts", tmpdir);
	char *path = xasprintf("%s/keep", tmpdir);
	char *tmp = xasprintf("%s.tmp", path);

	hostcache_mark_down(hc, "smtp", "mx.example.org", "refused", T0);
	CHECK(hostcache_save(hc, missing, err, sizeof(err)) == -1);
	CHECK_CONTAINS(err, "no/such/folder/hosts.tmp: write:");

	/* The old file stays whole when the new one cannot be written:
	 * a folder where the temporary file goes stops even root. */
	CHECK(hostcache_save(hc, path, err, sizeof(err)) == 0);
	char *old = test_read_file(path, NULL);
	hostcache_mark_down(hc, "smtp", "other.example", "refused", T0);
	CHECK(mkdir(tmp, 0700) == 0);
	err[0] = '\0';
	CHECK(hostcache_save(hc, path, err, sizeof(err)) == -1);
	CHECK(err[0] != '\0');
	char *now = test_read_file(path, NULL);
	CHECK_STR(now, old);
	free(now);
	/* Still to be written: the next save does it. */
	rmdir(tmp);
	CHECK(hostcache_save(hc, path, err, sizeof(err)) == 0);
	now = test_read_file(path, NULL);
	CHECK_CONTAINS(now, "other.example");
	free(now);
	free(old);

	/* A read error is reported and leaves the cache empty. */
	CHECK(hostcache_load(hc, tmpdir, err, sizeof(err)) == -1);
	CHECK(err[0] != '\0');
	CHECK(hostcache_count(hc) == 0);
	free(missing);
	free(path);
	free(tmp);
	hostcache_free(hc);
}

#define REC_UP	 "host\tsmtp\tup.example\tup\t0\t0\t0\t5\t192.0.2.1\t\n"
#define REC_DOWN "host\tsmtp\tmx.example\tdown\t2\t100\t200\t0\t\tbusy\n"

static void
test_malformed(void)
{
	static const char *const bad[] = {
	    "",
	    "smalt-hosts\t1\n",		/* no end */
	    "smalt-hosts\t1\nend",	/* no newline */
	    "smalt-hosts\t2\nend\n",	/* version */
	    "smalt-envelope\t1\nend\n", /* magic */
	    "smalt-hosts 1\nend\n",
	    "smalt-hosts\t1\r\nend\r\n",
	    "smalt-hosts\t1\n" REC_DOWN, /* truncated */
	    "smalt-hosts\t1\nhost\tsmtp\tmx.example\tdown\t2\t100", /* mid */
	    "smalt-hosts\t1\nend\nend\n", /* after end */
	    "smalt-hosts\t1\nend\n\n",
	    "smalt-hosts\t1\n\nend\n",
	    "smalt-hosts\t1\nhost\tsmtp\tmx.example\tdown\t02\t100\t200\t0\t\tb"
	    "\nend\n",
	    "smalt-hosts\t1\nhost\tsmtp\tmx.example\tdown\t-2\t100\t200\t0\t\tb"
	    "\nend\n",
	    "smalt-hosts\t1\nhost\tsmtp\tmx.example\tdown\t2x\t100\t200\t0\t\tb"
	    "\nend\n",
	    "smalt-hosts\t1\nhost\tsmtp\tmx.example\tdown\t2\t\t200\t0\t\tb"
	    "\nend\n",
	    "smalt-hosts\t1\nhost\tsmtp\tmx.example\tdown\t2\t100\t"
	    "99999999999999999999\t0\t\tb\nend\n",
	    "smalt-hosts\t1\nhost\tsmtp\tmx.example\tdown\t2\t100\t"
	    "253402300800\t0\t\tb\nend\n", /* past year 9999 */
	    "smalt-hosts\t1\nhost\tsmtp\tmx.example\tdown\t1000001\t1\t2\t0\t\t"
	    "b\nend\n",
	    "smalt-hosts\t1\nhost\tsmtp\tmx.example\tsideways\t2\t1\t2\t0\t\tb"
	    "\nend\n",
	    "smalt-hosts\t1\nhost\tSMTP\tmx.example\tdown\t2\t1\t2\t0\t\tb\n"
	    "end\n",
	    "smalt-hosts\t1\nhost\tsmtp\tMX.example\tdown\t2\t1\t2\t0\t\tb\n"
	    "end\n",
	    "smalt-hosts\t1\nhost\tsmtp\tmx example\tdown\t2\t1\t2\t0\t\tb\n"
	    "end\n",
	    "smalt-hosts\t1\nhost\tsmtp\t\tdown\t2\t1\t2\t0\t\tb\nend\n",
	    "smalt-hosts\t1\nhost\tsmtp\tmx.example\tdown\t2\t1\t2\t0\t\t\n"
	    "end\n", /* down without a reason */
	    "smalt-hosts\t1\nhost\tsmtp\tmx.example\tdown\t0\t1\t2\t0\t\tb\n"
	    "end\n", /* down without failures */
	    "smalt-hosts\t1\nhost\tsmtp\tup.example\tup\t1\t0\t0\t5\t192.0.2.1"
	    "\t\nend\n",
	    "smalt-hosts\t1\nhost\tsmtp\tup.example\tup\t0\t0\t0\t0\t\t\n"
	    "end\n", /* up without addresses */
	    "smalt-hosts\t1\nhost\tsmtp\tup.example\tup\t0\t0\t0\t5\t192.0.2.1"
	    "\tgone\nend\n",
	    "smalt-hosts\t1\nhost\tsmtp\tup.example\tup\t0\t0\t0\t0\t192.0.2.1"
	    "\t\nend\n", /* addresses without a time */
	    "smalt-hosts\t1\nhost\tsmtp\tup.example\tup\t0\t0\t0\t5\t"
	    "192.0.2.01\t\nend\n",
	    "smalt-hosts\t1\nhost\tsmtp\tup.example\tup\t0\t0\t0\t5\t"
	    "2001:DB8::1\t\nend\n",
	    "smalt-hosts\t1\nhost\tsmtp\tup.example\tup\t0\t0\t0\t5\t"
	    "::ffff:192.0.2.1\t\nend\n",
	    "smalt-hosts\t1\nhost\tsmtp\tup.example\tup\t0\t0\t0\t5\t"
	    "192.0.2.1,192.0.2.1\t\nend\n",
	    "smalt-hosts\t1\nhost\tsmtp\tup.example\tup\t0\t0\t0\t5\t"
	    "192.0.2.1,\t\nend\n",
	    "smalt-hosts\t1\nhost\tsmtp\tup.example\tup\t0\t0\t0\t5\t"
	    "192.0.2.1 \t\nend\n",
	    "smalt-hosts\t1\n" REC_UP REC_DOWN "end\n", /* out of order */
	    "smalt-hosts\t1\n" REC_UP REC_UP "end\n",	/* repeated */
	    "smalt-hosts\t1\nhost\tsmtp\tmx.example\tdown\t2\t100\t200\t0\t\t"
	    "busy\textra\nend\n",
	    "smalt-hosts\t1\nhost\tsmtp\tmx.example\tdown\t2\t100\t200\t0\t"
	    "busy\nend\n",
	    "smalt-hosts\t1\nhost\tsmtp\tmx.example\tdown\t2\t100\t200\t0\t\t"
	    "b\xff\nend\n",
	    "smalt-hosts\t1\nhost\tsmtp\tmx.example\tdown\t2\t100\t200\t0\t\t"
	    "b\rx\nend\n",
	    "smalt-hosts\t1\nhosts\tsmtp\tmx.example\tdown\t2\t100\t200\t0\t\t"
	    "busy\nend\n",
	};
	struct hostcache *hc = hostcache_new(60, 1800);
	char err[256];

	CHECK(hostcache_parse(hc, "smalt-hosts\t1\nend\n", 18, err,
			      sizeof(err)) == 0);
	CHECK(hostcache_count(hc) == 0);
	const char *good = "smalt-hosts\t1\n" REC_DOWN REC_UP "end\n";
	CHECK(hostcache_parse(hc, good, strlen(good), err, sizeof(err)) == 0);
	CHECK(hostcache_count(hc) == 2);

	for (size_t i = 0; i < SMALT_NELEM(bad); i++) {
		/* Start from a full cache: an error must leave it empty. */
		hostcache_parse(hc, good, strlen(good), err, sizeof(err));
		err[0] = '\0';
		int rc = hostcache_parse(hc, bad[i], strlen(bad[i]), err,
					 sizeof(err));
		CHECK(rc == -1);
		CHECK(err[0] != '\0');
		CHECK(hostcache_count(hc) == 0);
		if (rc != -1)
			fprintf(stderr, "accepted bad[%zu]\n", i);
	}

	CHECK(hostcache_parse(hc, "", 0, err, sizeof(err)) == -1);
	CHECK_STR(err, "line 1: not a smalt host cache (version 1)");
	CHECK(hostcache_parse(hc, "smalt-hosts\t1\nend", 17, err,
			      sizeof(err)) == -1);
	CHECK_STR(err, "line 2: truncated line");
	CHECK(hostcache_parse(hc, "smalt-hosts\t1\nend\nx\n", 20, err,
			      sizeof(err)) == -1);
	CHECK_STR(err, "line 3: data after end");

	/* A NUL inside a line. */
	static const char nul[] = "smalt-hosts\t1\nhost\tsmtp\tmx.example\tdown"
				  "\t2\t100\t200\t0\t\tb\0x\nend\n";
	CHECK(hostcache_parse(hc, nul, sizeof(nul) - 1, err, sizeof(err)) ==
	      -1);
	CHECK_CONTAINS(err, "line 2: NUL byte");

	/* Overlong fields. */
	char host[HOSTCACHE_HOST_MAX + 2], reason[HOSTCACHE_REASON_MAX + 2];
	memset(host, 'h', sizeof(host) - 1);
	host[sizeof(host) - 1] = '\0';
	memset(reason, 'r', sizeof(reason) - 1);
	reason[sizeof(reason) - 1] = '\0';
	char *t = xasprintf("smalt-hosts\t1\nhost\tsmtp\t%s\tdown\t1\t1\t2\t0"
			    "\t\tb\nend\n",
			    host);
	CHECK(hostcache_parse(hc, t, strlen(t), err, sizeof(err)) == -1);
	CHECK_CONTAINS(err, "line 2: bad host");
	free(t);
	host[HOSTCACHE_HOST_MAX] = '\0';
	reason[HOSTCACHE_REASON_MAX] = '\0';
	t = xasprintf("smalt-hosts\t1\nhost\tsmtp\t%s\tdown\t1\t1\t2\t0\t\t%s"
		      "\nend\n",
		      host, reason);
	CHECK(hostcache_parse(hc, t, strlen(t), err, sizeof(err)) == 0);
	free(t);
	t = xasprintf("smalt-hosts\t1\nhost\tsmtp\t%s\tdown\t1\t1\t2\t0\t\t%sr"
		      "\nend\n",
		      host, reason);
	CHECK(hostcache_parse(hc, t, strlen(t), err, sizeof(err)) == -1);
	CHECK_CONTAINS(err, "bad reason");
	free(t);
	/* A line longer than any format writes. */
	char *huge = xmalloc(10000);
	memset(huge, 'x', 9999);
	huge[9999] = '\0';
	t = xasprintf("smalt-hosts\t1\n%s\nend\n", huge);
	CHECK(hostcache_parse(hc, t, strlen(t), err, sizeof(err)) == -1);
	CHECK_CONTAINS(err, "line 2: line too long");
	free(t);
	free(huge);

	/* 32 addresses are fine, 33 are not. */
	char addrs[33 * 16] = "";
	for (int i = 0; i < 33; i++)
		snprintf(addrs + strlen(addrs), sizeof(addrs) - strlen(addrs),
			 "%s10.0.0.%d", i ? "," : "", i);
	t = xasprintf("smalt-hosts\t1\nhost\tsmtp\tup.example\tup\t0\t0\t0\t5"
		      "\t%s\t\nend\n",
		      addrs);
	CHECK(hostcache_parse(hc, t, strlen(t), err, sizeof(err)) == -1);
	CHECK_CONTAINS(err, "too many addresses");
	free(t);
	*strrchr(addrs, ',') = '\0';
	t = xasprintf("smalt-hosts\t1\nhost\tsmtp\tup.example\tup\t0\t0\t0\t5"
		      "\t%s\t\nend\n",
		      addrs);
	CHECK(hostcache_parse(hc, t, strlen(t), err, sizeof(err)) == 0);
	CHECK(hostcache_at(hc, 0)->naddrs == 32);
	free(t);

	/* Through load: a damaged file is an error and an empty cache. */
	char *path = xasprintf("%s/bad", tmpdir);
	CHECK(test_write_file(path, "smalt-hosts\t1\n" REC_DOWN,
			      strlen("smalt-hosts\t1\n" REC_DOWN)) == 0);
	CHECK(hostcache_load(hc, path, err, sizeof(err)) == -1);
	CHECK_CONTAINS(err, "/bad: line 3: missing end");
	CHECK(hostcache_count(hc) == 0);
	free(path);
	hostcache_free(hc);
}

int
main(void)
{
	tmpdir = test_mkdtemp("hostcache");
	test_backoff();
	test_keys();
	test_reason_cleaning();
	test_mark_up();
	test_addrs();
	test_by_addr();
	test_flush_expire();
	test_print();
	test_round_trip();
	test_save_failure();
	test_malformed();
	test_rm_rf(tmpdir);
	free(tmpdir);
	return check_done();
}
