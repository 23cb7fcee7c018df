/* sendmail's message preparation: inject_prepare with and without -t
 * and the dot, and the address list parser on the raw input. Aborts
 * when an output breaks what the queue relies on. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli/inject.h"
#include "common/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
has_bare_lf(const char *d, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (d[i] == '\n' && (i == 0 || d[i - 1] != '\r'))
			return 1;
	return 0;
}

static int
is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* Every line before the first empty one is a field's first line or a
 * continuation, the first one a field, none of them a Bcc. */
static void
check_header_section(const char *d, size_t len)
{
	const char *end = memmem(d, len, "\r\n\r\n", 4);
	if (end == NULL)
		abort();
	for (const char *p = d; p < end + 2;) {
		const char *e = memmem(p, (size_t)(end + 2 - p), "\r\n", 2);
		size_t n = (size_t)(e - p), i = 0;
		if (n == 0 || (p == d && is_wsp(p[0])))
			abort();
		if (!is_wsp(p[0])) {
			while (i < n && (unsigned char)p[i] > ' ' &&
			       (unsigned char)p[i] < 0x7f && p[i] != ':')
				i++;
			size_t name = i;
			while (i < n && is_wsp(p[i]))
				i++;
			if (name == 0 || i == n || p[i] != ':')
				abort();
			if ((name == 3 &&
			     ascii_strncasecmp(p, "Bcc", 3) == 0) ||
			    (name == 10 &&
			     ascii_strncasecmp(p, "Resent-Bcc", 10) == 0))
				abort();
		}
		p = e + 2;
	}
}

/* Addresses: not empty, no control characters, no duplicates. */
static void
check_addrs(char **v, size_t from, size_t n)
{
	for (size_t i = from; i < n; i++) {
		if (v[i] == NULL || v[i][0] == '\0')
			abort();
		for (const char *c = v[i]; *c != '\0'; c++)
			if ((unsigned char)*c < 0x20 || *c == 0x7f)
				abort();
		for (size_t j = 0; j < i; j++)
			if (ascii_strcasecmp(v[i], v[j]) == 0)
				abort();
	}
}

static void
run_prepare(const char *in, size_t len, const struct inject_opts *o)
{
	struct inject_out out, again;
	char err[512];
	err[0] = '\0';
	if (inject_prepare(in, len, o, &out, err, sizeof(err)) != 0) {
		/* Only an address list under -t may fail, saying why. */
		if (!o->extract_rcpts || err[0] == '\0' || out.nrcpt != 0)
			abort();
		inject_out_free(&out);
		return;
	}
	if (out.data == NULL || out.len < 2 ||
	    memcmp(out.data + out.len - 2, "\r\n", 2) != 0 ||
	    has_bare_lf(out.data, out.len))
		abort();
	check_header_section(out.data, out.len);
	if (!o->extract_rcpts && (out.nrcpt != 0 || out.rcpts != NULL))
		abort();
	check_addrs(out.rcpts, 0, out.nrcpt);
	/* A prepared message prepared again stays as it is, with all of
	 * From, Date and Message-ID found. */
	struct inject_opts o2 = *o;
	o2.extract_rcpts = 0;
	if (inject_prepare(out.data, out.len, &o2, &again, err, sizeof(err)) !=
		0 ||
	    again.len != out.len ||
	    memcmp(again.data, out.data, out.len) != 0 || !again.has_from ||
	    !again.has_date || !again.has_message_id)
		abort();
	inject_out_free(&again);
	inject_out_free(&out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* An exact-size copy: a read past len is a sanitizer report. */
	char *in = malloc(size ? size : 1);
	memcpy(in, data, size);

	struct inject_opts t = {1,
				1,
				"fuzz@example.org",
				"Fuzz \"F.\" Tester, Jr.",
				"mx.example.org",
				1700000000};
	struct inject_opts i = {0, 0, "", NULL, NULL, 0};
	run_prepare(in, size, &t);
	run_prepare(in, size, &i);

	char **v = NULL;
	size_t n = 0;
	char err[512];
	err[0] = '\0';
	if (inject_parse_address_list(in, size, &v, &n, err, sizeof(err)) ==
	    0) {
		check_addrs(v, 0, n);
		/* A second parse of the same text adds nothing new. */
		size_t n1 = n;
		if (inject_parse_address_list(in, size, &v, &n, err,
					      sizeof(err)) != 0 ||
		    n != n1)
			abort();
	} else if (err[0] == '\0' || n != 0) {
		abort();
	}
	for (size_t k = 0; k < n; k++)
		free(v[k]);
	free(v);
	free(in);
	return 0;
}
