/* The host cache file lives in the spool and outlives crashes and
 * upgrades: the parser must refuse damaged input cleanly (an error and an
 * empty cache), and whatever it accepts must format back to the same text
 * and survive every operation and both show hosts forms. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "queue/hostcache.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
exercise(struct hostcache *hc)
{
	static const char *const ips[] = {"192.0.2.1", "2001:db8::1", "x"};
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (f == NULL)
		abort();
	hostcache_print(hc, f, 0);
	hostcache_print(hc, f, 1);
	fclose(f);
	free(buf);
	for (size_t i = 0; i < hostcache_count(hc); i++) {
		const struct hostcache_entry *e = hostcache_at(hc, i);
		const char *reason = NULL;
		if (hostcache_is_down(hc, e->channel, e->host, 0, &reason,
				      NULL) &&
		    (reason == NULL || reason[0] == '\0'))
			abort();
	}
	for (size_t i = 0; i < sizeof(ips) / sizeof(ips[0]); i++)
		hostcache_mark_up_by_addr(hc, ips[i], NULL, NULL);
	if (hostcache_count(hc) > 0) {
		const struct hostcache_entry *e = hostcache_at(hc, 0);
		char *host = strdup(e->host);
		hostcache_mark_down(hc, e->channel, host, "fuzz", 1);
		hostcache_flush(hc, host);
		free(host);
	}
	hostcache_expire(hc, 1000000000);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* An exact-size copy, so reading past the end is caught. */
	char *text = malloc(size ? size : 1);
	memcpy(text, data, size);
	struct hostcache *hc = hostcache_new(60, 1800);
	char err[256] = "";
	if (hostcache_parse(hc, text, size, err, sizeof(err)) == 0) {
		size_t len, len2;
		char *out = hostcache_format(hc, &len);
		if (len != size || memcmp(out, text, size) != 0)
			abort(); /* only what format writes is accepted */
		struct hostcache *again = hostcache_new(60, 1800);
		if (hostcache_parse(again, out, len, err, sizeof(err)) != 0)
			abort();
		char *out2 = hostcache_format(again, &len2);
		if (len != len2 || memcmp(out, out2, len) != 0)
			abort();
		free(out);
		free(out2);
		hostcache_free(again);
		exercise(hc);
	} else if (err[0] == '\0' || hostcache_count(hc) != 0) {
		abort();
	}
	hostcache_free(hc);
	free(text);
	return 0;
}
