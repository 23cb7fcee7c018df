#include "queue/envelope.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/strbuf.h"
#include "common/util.h"
#include "queue/queue.h"

#define ENV_MAGIC      "smalt-envelope\t1"
#define ENV_FIELD_MAX  1024 /* longest free-text field kept */
#define ENV_RCPT_LIMIT 100000

static const char *const state_names[] = {
    [RCPT_PENDING] = "pending",
    [RCPT_DEFERRED] = "deferred",
    [RCPT_DELIVERED] = "delivered",
    [RCPT_BOUNCED] = "bounced",
};

const char *
rcpt_state_name(enum rcpt_state s)
{
	return (unsigned)s < SMALT_NELEM(state_names) ? state_names[s] : "?";
}

void
envelope_set(char **field, const char *value)
{
	free(*field);
	*field = xstrdup(value ? value : "");
}

void
envelope_init(struct envelope *env)
{
	memset(env, 0, sizeof(*env));
	env->uid = -1;
	envelope_set(&env->sender, "");
	envelope_set(&env->client_name, "");
	envelope_set(&env->client_addr, "");
	envelope_set(&env->helo, "");
	envelope_set(&env->protocol, "");
	envelope_set(&env->auth_user, "");
}

void
envelope_free(struct envelope *env)
{
	for (size_t i = 0; i < env->nrcpt; i++) {
		free(env->rcpt[i].address);
		free(env->rcpt[i].reason);
	}
	free(env->rcpt);
	free(env->sender);
	free(env->client_name);
	free(env->client_addr);
	free(env->helo);
	free(env->protocol);
	free(env->auth_user);
	memset(env, 0, sizeof(*env));
}

struct env_rcpt *
envelope_add_rcpt(struct envelope *env, const char *address)
{
	env->rcpt = xrealloc(env->rcpt, (env->nrcpt + 1) * sizeof(*env->rcpt));
	struct env_rcpt *r = &env->rcpt[env->nrcpt++];
	memset(r, 0, sizeof(*r));
	r->address = xstrdup(address);
	r->reason = xstrdup("");
	r->state = RCPT_PENDING;
	return r;
}

int
envelope_done(const struct envelope *env)
{
	for (size_t i = 0; i < env->nrcpt; i++)
		if (env->rcpt[i].state == RCPT_PENDING ||
		    env->rcpt[i].state == RCPT_DEFERRED)
			return 0;
	return 1;
}

/* Fields are cleaned as they are appended so that
 * whatever a peer sent (a HELO name, a remote reply) cannot break the
 * one-field-per-tab, one-record-per-line shape. */
static void
out_field(struct strbuf *b, const char *s)
{
	strbuf_add(b, "\t", 1);
	size_t n = strnlen(s, ENV_FIELD_MAX);
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if ((unsigned char)c < 0x20 || c == 0x7f)
			c = '?';
		strbuf_add(b, &c, 1);
	}
}

static void
out_record(struct strbuf *b, const char *key, int nfields, ...)
{
	va_list ap;
	strbuf_add(b, key, strlen(key));
	va_start(ap, nfields);
	for (int i = 0; i < nfields; i++)
		out_field(b, va_arg(ap, const char *));
	va_end(ap);
	strbuf_add(b, "\n", 1);
}

char *
envelope_format(const struct envelope *env, size_t *len)
{
	struct strbuf b = {0};
	char n1[32], n2[32], n3[32];

	strbuf_add(&b, ENV_MAGIC "\n", strlen(ENV_MAGIC) + 1);
	out_record(&b, "id", 1, env->id);
	snprintf(n1, sizeof(n1), "%lld", (long long)env->arrival);
	out_record(&b, "arrival", 1, n1);
	snprintf(n1, sizeof(n1), "%llu", (unsigned long long)env->size);
	out_record(&b, "size", 1, n1);
	out_record(&b, "sender", 1, env->sender);
	snprintf(n1, sizeof(n1), "%u", env->attempts);
	out_record(&b, "attempts", 1, n1);
	out_record(&b, "warned", 1, env->warned ? "1" : "0");
	snprintf(n1, sizeof(n1), "%ld", env->uid);
	out_record(&b, "uid", 1, n1);
	out_record(&b, "client", 5, env->client_name, env->client_addr,
		   env->helo, env->protocol, env->auth_user);
	for (size_t i = 0; i < env->nrcpt; i++) {
		const struct env_rcpt *r = &env->rcpt[i];
		snprintf(n2, sizeof(n2), "%lld", (long long)r->next_attempt);
		smalt_strlcpy(n3, r->dsn[0] ? r->dsn : "-", sizeof(n3));
		out_record(&b, "rcpt", 5, rcpt_state_name(r->state), n2, n3,
			   r->address, r->reason);
	}
	strbuf_add(&b, "end\n", 4);
	*len = b.len;
	return b.s;
}

/* Parsing: the text is split into lines, each line into tab-separated
 * fields, and every record must come in the order envelope_format writes
 * it. Anything else is corruption. */
struct cursor {
	const char *p, *end;
	char *fields[8];
	int nfields;
	char line[ENV_FIELD_MAX * 6 + 64];
};

static int
next_record(struct cursor *c, const char *key, int nfields)
{
	const char *nl = memchr(c->p, '\n', (size_t)(c->end - c->p));
	if (nl == NULL)
		return -1;
	size_t n = (size_t)(nl - c->p);
	if (n >= sizeof(c->line) || memchr(c->p, '\0', n) != NULL)
		return -1;
	memcpy(c->line, c->p, n);
	c->line[n] = '\0';
	c->p = nl + 1;
	c->nfields = 0;
	char *s = c->line;
	for (;;) {
		if (c->nfields == (int)SMALT_NELEM(c->fields))
			return -1;
		c->fields[c->nfields++] = s;
		char *tab = strchr(s, '\t');
		if (tab == NULL)
			break;
		*tab = '\0';
		s = tab + 1;
	}
	if (strcmp(c->fields[0], key) != 0 || c->nfields != nfields + 1)
		return -1;
	return 0;
}

static int
parse_time(const char *s, time_t *out)
{
	uint64_t v;
	if (parse_decimal(s, (uint64_t)INT64_MAX / 2, &v) != 0)
		return -1;
	*out = (time_t)v;
	return 0;
}

static int
parse_state(const char *s, enum rcpt_state *out)
{
	for (size_t i = 0; i < SMALT_NELEM(state_names); i++)
		if (strcmp(s, state_names[i]) == 0) {
			*out = (enum rcpt_state)i;
			return 0;
		}
	return -1;
}

static int
valid_dsn(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n >= 16)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || s[i] == '.'))
			return 0;
	return 1;
}

static int
parse_rcpt(struct cursor *c, struct envelope *env, const char **errstr)
{
	enum rcpt_state st;
	time_t next;
	const char *dsn = c->fields[3], *addr = c->fields[4];

	if (parse_state(c->fields[1], &st) != 0) {
		*errstr = "bad recipient state";
		return -1;
	}
	if (parse_time(c->fields[2], &next) != 0) {
		*errstr = "bad next attempt time";
		return -1;
	}
	if (strcmp(dsn, "-") != 0 && !valid_dsn(dsn)) {
		*errstr = "bad status code";
		return -1;
	}
	if (*addr == '\0' || strlen(addr) > 512) {
		*errstr = "bad recipient address";
		return -1;
	}
	if (env->nrcpt >= ENV_RCPT_LIMIT) {
		*errstr = "too many recipients";
		return -1;
	}
	struct env_rcpt *r = envelope_add_rcpt(env, addr);
	r->state = st;
	r->next_attempt = next;
	smalt_strlcpy(r->dsn, strcmp(dsn, "-") == 0 ? "" : dsn, sizeof(r->dsn));
	envelope_set(&r->reason, c->fields[5]);
	return 0;
}

static int
parse_header(struct cursor *c, struct envelope *env, const char **errstr)
{
	uint64_t v;

#define NEED(key, n, why)                                                      \
	do {                                                                   \
		if (next_record(c, key, n) != 0) {                             \
			*errstr = why;                                         \
			return -1;                                             \
		}                                                              \
	} while (0)

	NEED("id", 1, "bad id record");
	if (!queue_id_valid(c->fields[1])) {
		*errstr = "bad queue id";
		return -1;
	}
	memcpy(env->id, c->fields[1], QUEUE_ID_LEN + 1);
	NEED("arrival", 1, "bad arrival record");
	if (parse_time(c->fields[1], &env->arrival) != 0) {
		*errstr = "bad arrival time";
		return -1;
	}
	NEED("size", 1, "bad size record");
	if (parse_decimal(c->fields[1], UINT64_MAX, &env->size) != 0) {
		*errstr = "bad size";
		return -1;
	}
	NEED("sender", 1, "bad sender record");
	envelope_set(&env->sender, c->fields[1]);
	NEED("attempts", 1, "bad attempts record");
	if (parse_decimal(c->fields[1], 1000000, &v) != 0) {
		*errstr = "bad attempts count";
		return -1;
	}
	env->attempts = (unsigned)v;
	NEED("warned", 1, "bad warned record");
	if (strcmp(c->fields[1], "0") != 0 && strcmp(c->fields[1], "1") != 0) {
		*errstr = "bad warned flag";
		return -1;
	}
	env->warned = c->fields[1][0] == '1';
	NEED("uid", 1, "bad uid record");
	if (strcmp(c->fields[1], "-1") == 0)
		env->uid = -1;
	else if (parse_decimal(c->fields[1], 0xffffffffu, &v) == 0)
		env->uid = (long)v;
	else {
		*errstr = "bad uid";
		return -1;
	}
	NEED("client", 5, "bad client record");
	envelope_set(&env->client_name, c->fields[1]);
	envelope_set(&env->client_addr, c->fields[2]);
	envelope_set(&env->helo, c->fields[3]);
	envelope_set(&env->protocol, c->fields[4]);
	envelope_set(&env->auth_user, c->fields[5]);
#undef NEED
	return 0;
}

int
envelope_parse(const char *text, size_t len, struct envelope *env,
	       const char **errstr)
{
	struct cursor *c = xmalloc(sizeof(*c));
	int rc = -1;

	envelope_init(env);
	c->p = text;
	c->end = text + len;
	if (next_record(c, "smalt-envelope", 1) != 0 ||
	    strcmp(c->fields[1], "1") != 0) {
		*errstr = "not a smalt envelope (version 1)";
		goto out;
	}
	if (parse_header(c, env, errstr) != 0)
		goto out;
	for (;;) {
		const char *line = c->p;
		if (next_record(c, "end", 0) == 0)
			break;
		c->p = line;
		if (next_record(c, "rcpt", 5) != 0) {
			*errstr = "bad recipient record or missing end";
			goto out;
		}
		if (parse_rcpt(c, env, errstr) != 0)
			goto out;
	}
	if (c->p != c->end) {
		*errstr = "data after end";
		goto out;
	}
	if (env->nrcpt == 0) {
		*errstr = "no recipients";
		goto out;
	}
	rc = 0;
out:
	free(c);
	if (rc != 0)
		envelope_free(env); /* leaves it zeroed: nothing to free */
	return rc;
}
