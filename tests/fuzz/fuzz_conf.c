/* smalt.conf parser: any input either parses or fails with a message,
 * never crashes or leaks; whatever parses prints, and the print parses
 * back to the same print. Input up to a NUL byte is also tried as a file
 * followed by one "-o" override (the bytes after the NUL). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"

static FILE *devnull;

static char *
print_to_string(const struct smalt_conf *c)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (f == NULL)
		abort();
	conf_print(c, f);
	fclose(f);
	return buf;
}

static size_t
longest_line(const char *s)
{
	size_t longest = 0;
	while (*s != '\0') {
		const char *nl = strchr(s, '\n');
		size_t n = nl ? (size_t)(nl - s) : strlen(s);
		if (n > longest)
			longest = n;
		s += n + (nl != NULL);
	}
	return longest;
}

/* The printed settings are a config of their own and mean the same. */
static void
check_round_trip(const struct smalt_conf *c)
{
	char err[CONF_ERRLEN];
	char *first = print_to_string(c);
	/* A huge value prints on one line past the parser's line limit. */
	if (longest_line(first) <= 65536) {
		struct smalt_conf *again = conf_parse_buffer(
		    "printed", first, strlen(first), NULL, 0, err, sizeof(err));
		if (again == NULL) {
			fprintf(stderr, "printed config does not parse: %s\n%s",
				err, first);
			abort();
		}
		char *second = print_to_string(again);
		if (strcmp(first, second) != 0) {
			fprintf(stderr, "print changed:\n%s---\n%s", first,
				second);
			abort();
		}
		free(second);
		conf_free(again);
	}
	free(first);
}

static void
exercise(const struct smalt_conf *c)
{
	conf_print(c, devnull);
	check_round_trip(c);
	struct sockaddr_in in = {.sin_family = AF_INET};
	struct sockaddr_in6 in6 = {.sin6_family = AF_INET6};
	inet_pton(AF_INET, "127.0.0.1", &in.sin_addr);
	inet_pton(AF_INET6, "::ffff:10.0.0.1", &in6.sin6_addr);
	conf_cidrs_match(&c->relay_networks, (struct sockaddr *)&in);
	conf_cidrs_match(&c->relay_networks, (struct sockaddr *)&in6);
	conf_is_local_domain(c, "localhost.");
}

/* The first line through the value parsers that other code reuses. */
static void
value_parsers(const uint8_t *data, size_t size)
{
	size_t n = 0;
	while (n < size && n < 300 && data[n] != '\n' && data[n] != '\0')
		n++;
	char *s = strndup((const char *)data, n);
	if (s == NULL)
		return;
	char why[200];
	unsigned d;
	uint64_t sz;
	struct conf_hostport h;
	struct conf_cidr cidr;
	conf_parse_duration(s, &d, why, sizeof(why));
	conf_parse_size(s, &sz, why, sizeof(why));
	if (conf_parse_hostport(s, 25, &h, why, sizeof(why)) == 0)
		free(h.host);
	conf_parse_cidr(s, &cidr, why, sizeof(why));
	free(s);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[CONF_ERRLEN];
	if (devnull == NULL)
		devnull = fopen("/dev/null", "w");
	if (devnull == NULL)
		abort();

	struct smalt_conf *c = conf_parse_buffer(
	    "fuzz.conf", (const char *)data, size, NULL, 0, err, sizeof(err));
	if (c != NULL)
		exercise(c);
	else if (err[0] == '\0')
		abort(); /* a failure must say why */
	conf_free(c);

	const uint8_t *nul = memchr(data, '\0', size);
	if (nul != NULL) {
		size_t len = (size_t)(nul - data);
		char *override = strndup((const char *)nul + 1, size - len - 1);
		if (override == NULL)
			return 0;
		char *o[] = {override};
		c = conf_parse_buffer("fuzz.conf", (const char *)data, len, o,
				      1, err, sizeof(err));
		if (c != NULL)
			exercise(c);
		conf_free(c);
		free(override);
	}
	value_parsers(data, size);
	return 0;
}
