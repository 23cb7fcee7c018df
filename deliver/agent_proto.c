/* The qmgr <-> agent datagrams (see agent.h). Both ends are smalt, but
 * the agent runs as root and the qmgr does not: the agent's decoder
 * treats every request as hostile input. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "deliver/agent.h"

static int
field_ok(const char *s)
{
	return s != NULL && strpbrk(s, "\t\r\n") == NULL;
}

static int
append(char *buf, size_t len, size_t *pos, const char *s)
{
	size_t n = strlen(s);
	if (*pos + n + 2 > len)
		return -1;
	if (*pos > 0)
		buf[(*pos)++] = '\t';
	memcpy(buf + *pos, s, n);
	*pos += n;
	buf[*pos] = '\0';
	return 0;
}

int
agent_request_format(const struct agent_request *req, char *buf, size_t len)
{
	char head[160];
	size_t pos = 0;
	if (req->channel != CHANNEL_LOCAL && req->channel != CHANNEL_PIPE)
		goto bad;
	snprintf(head, sizeof(head), "R1\t%lu\t%s\t%s\t%llu\t%llu\t%llu",
		 req->job, channel_name(req->channel), req->id,
		 (unsigned long long)req->arrival_us,
		 (unsigned long long)req->active_us,
		 (unsigned long long)req->sent_us);
	if (!field_ok(req->sender) || !field_ok(req->rcpt) ||
	    append(buf, len, &pos, head) != 0 ||
	    append(buf, len, &pos, req->sender) != 0 ||
	    append(buf, len, &pos, req->rcpt) != 0)
		goto bad;
	for (size_t i = 0; req->channel == CHANNEL_PIPE && req->argv[i]; i++)
		if (i >= AGENT_ARGV_MAX || !field_ok(req->argv[i]) ||
		    req->argv[i][0] == '\0' ||
		    append(buf, len, &pos, req->argv[i]) != 0)
			goto bad;
	return (int)pos;
bad:
	errno = EINVAL;
	return -1;
}

static const char *const status_names[] = {[DELIVER_OK] = "ok",
					   [DELIVER_DEFER] = "defer",
					   [DELIVER_BOUNCE] = "bounce"};

int
agent_result_format(const struct agent_result *res, char *buf, size_t len)
{
	char reason[sizeof(res->r.reason)];
	/* Reasons come from commands and system errors: flatten them. */
	smalt_strlcpy(reason, res->r.reason, sizeof(reason));
	for (char *p = reason; *p; p++)
		if (*p == '\t' || *p == '\r' || *p == '\n')
			*p = ' ';
	if ((unsigned)res->r.status >= SMALT_NELEM(status_names) ||
	    !field_ok(res->r.dsn)) {
		errno = EINVAL;
		return -1;
	}
	int n = snprintf(buf, len, "A1\t%lu\t%s\t%s\t%s", res->job,
			 status_names[res->r.status], res->r.dsn, reason);
	if (n < 0 || (size_t)n >= len) {
		errno = EINVAL;
		return -1;
	}
	return n;
}

/* Splits buf at tabs into at most max fields; the count, or -1 when buf
 * holds a NUL before len or a line break. */
static int
split(char *buf, size_t len, char **f, int max)
{
	if (len == 0 || strlen(buf) != len || strpbrk(buf, "\r\n"))
		return -1;
	int n = 0;
	char *p = buf;
	for (;;) {
		if (n == max)
			return -1;
		f[n++] = p;
		char *tab = strchr(p, '\t');
		if (tab == NULL)
			break;
		*tab = '\0';
		p = tab + 1;
	}
	return n;
}

static int
parse_ulong(const char *s, unsigned long long *out)
{
	char *end;
	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	*out = strtoull(s, &end, 10);
	return errno == 0 && *end == '\0' ? 0 : -1;
}

int
agent_request_parse(char *buf, size_t len, struct agent_request *req)
{
	char *f[9 + AGENT_ARGV_MAX];
	unsigned long long job, t[3];
	memset(req, 0, sizeof(*req));
	int n = split(buf, len, f, (int)SMALT_NELEM(f));
	if (n < 9 || strcmp(f[0], "R1") != 0 || parse_ulong(f[1], &job) ||
	    !queue_id_valid(f[3]) || parse_ulong(f[4], &t[0]) ||
	    parse_ulong(f[5], &t[1]) || parse_ulong(f[6], &t[2]) ||
	    f[8][0] == '\0')
		return -1;
	if (strcmp(f[2], "local") == 0 && n == 9)
		req->channel = CHANNEL_LOCAL;
	else if (strcmp(f[2], "pipe") == 0 && n > 9 && f[9][0] == '/')
		req->channel = CHANNEL_PIPE;
	else
		return -1;
	req->job = (unsigned long)job;
	memcpy(req->id, f[3], QUEUE_ID_LEN + 1);
	req->arrival_us = t[0];
	req->active_us = t[1];
	req->sent_us = t[2];
	req->sender = f[7];
	req->rcpt = f[8];
	for (int i = 9; i < n; i++) {
		if (f[i][0] == '\0')
			return -1;
		req->argv[i - 9] = f[i];
	}
	return 0;
}

int
agent_result_parse(char *buf, size_t len, struct agent_result *res)
{
	char *f[5];
	unsigned long long job;
	memset(res, 0, sizeof(*res));
	int n = split(buf, len, f, 5);
	if (n != 5 || strcmp(f[0], "A1") != 0 || parse_ulong(f[1], &job))
		return -1;
	res->job = (unsigned long)job;
	size_t i;
	for (i = 0; i < SMALT_NELEM(status_names); i++)
		if (strcmp(f[2], status_names[i]) == 0)
			break;
	if (i == SMALT_NELEM(status_names) ||
	    strlen(f[3]) >= sizeof(res->r.dsn))
		return -1;
	res->r.status = (enum deliver_status)i;
	smalt_strlcpy(res->r.dsn, f[3], sizeof(res->r.dsn));
	smalt_strlcpy(res->r.reason, f[4], sizeof(res->r.reason));
	return 0;
}
