/* Runs the SMTP client engine, for tests/integration/test_smtp_client.py:
 *   smtp_client_driver [-t none|may|encrypt|smtps] [-C cafile] [-u user]
 *       [-p pass] [-T seconds] [-H helo] [-8] [-c cancel_ms] [-k]
 *       [-n count] [-w wait_ms] -f sender -m msgfile -a host,ip,port
 *       [-a ...] rcpt...
 * and prints each outcome, one "key=value" line each:
 *   message=N (from 1), relay=, host_failed=, host_reason=, tried=,
 *   tried_ip=IP failed=N, kept=0|1, ready_us=,
 *   rcpt=ADDR status=sent|deferred|bounced dsn=D reason=TEXT
 * -n sends the message count times: after a kept outcome (-k sets
 * keep_open) with smtp_client_reuse, else with a new client. The last
 * kept session is closed with smtp_client_close, or, with -c, left for
 * the cancel. -w waits that long before each next step (reuse, start,
 * close); without it the next step runs from inside the callback. */
#include <arpa/inet.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "deliver/smtp_client.h"

static const char *const *g_rcpts;
static struct event_base *g_base;
static struct smtp_client_params g_params;
static struct dns_target g_targets[16];
static size_t g_ntargets, g_nrcpt;
static struct smtp_tx g_tx;
static int g_total = 1, g_count, g_wait_ms, g_cancel_ms = -1;
/* running, or parked when g_parked */
static struct smtp_client *g_client;
static int g_parked;
static struct event *g_next;

static void done(void *arg, const struct smtp_outcome *o);

/* After an outcome: the next message, on the kept session or a new
 * client, or the end. */
static void
next_step(void)
{
	if (g_count < g_total) {
		if (!g_parked) {
			g_client = smtp_client_start(g_base, &g_params,
						     g_targets, g_ntargets,
						     &g_tx, done, &g_nrcpt);
			return;
		}
		g_parked = 0;
		if (smtp_client_reuse(g_client, &g_tx, done, &g_nrcpt) != 0) {
			printf("reuse refused\n");
			smtp_client_cancel(g_client);
			g_client = NULL;
		}
		return;
	}
	if (g_parked && g_cancel_ms < 0) {
		smtp_client_close(g_client);
		g_parked = 0;
		g_client = NULL;
	}
}

static void
on_next(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	next_step();
}

static void
done(void *arg, const struct smtp_outcome *o)
{
	static const char *names[] = {"sent", "deferred", "bounced"};
	size_t n = *(size_t *)arg;
	printf("message=%d\n", ++g_count);
	printf("relay=%s\n", o->relay);
	printf("host_failed=%d\n", o->host_failed);
	printf("host_reason=%s\n", o->host_reason);
	printf("tried=%zu\n", o->tried_addrs);
	for (size_t i = 0; i < o->ntried; i++)
		printf("tried_ip=%s failed=%d\n", o->tried_ips[i],
		       o->tried_failed[i]);
	for (size_t i = 0; i < n; i++)
		printf("rcpt=%s status=%s dsn=%s reason=%s\n", g_rcpts[i],
		       names[o->rcpt[i].status], o->rcpt[i].dsn,
		       o->rcpt[i].reason);
	printf("kept=%d\n", o->kept);
	printf("ready_us=%llu\n", (unsigned long long)o->ready_us);
	fflush(stdout);
	g_parked = o->kept;
	if (!o->kept)
		g_client = NULL; /* the engine frees itself */
	if (g_wait_ms > 0) {
		struct timeval tv = {g_wait_ms / 1000,
				     (g_wait_ms % 1000) * 1000};
		evtimer_add(g_next, &tv);
	} else {
		next_step(); /* reuse or close from inside cb */
	}
}

static void
on_cancel(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	if (g_client != NULL) {
		smtp_client_cancel(g_client);
		g_client = NULL;
		g_parked = 0;
		evtimer_del(g_next);
		printf("cancelled\n");
	}
}

static int
parse_target(const char *s, struct dns_target *t)
{
	char buf[512];
	smalt_strlcpy(buf, s, sizeof(buf));
	char *c1 = strchr(buf, ',');
	char *c2 = c1 ? strrchr(c1 + 1, ',') : NULL;
	if (c1 == NULL || c2 == NULL)
		return -1;
	*c1 = *c2 = '\0';
	memset(t, 0, sizeof(*t));
	smalt_strlcpy(t->host, buf, sizeof(t->host));
	unsigned port = (unsigned)atoi(c2 + 1);
	struct sockaddr_in *s4 = (struct sockaddr_in *)&t->addr;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&t->addr;
	if (inet_pton(AF_INET, c1 + 1, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		t->family = AF_INET;
		t->addrlen = sizeof(*s4);
	} else if (inet_pton(AF_INET6, c1 + 1, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		t->family = AF_INET6;
		t->addrlen = sizeof(*s6);
	} else {
		return -1;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	struct smtp_client_params p = {.helo_name = "client.smalt.test",
				       .connect_timeout = 5,
				       .command_timeout = 5,
				       .data_timeout = 5};
	struct dns_target *targets = g_targets;
	size_t nt = 0;
	const char *sender = NULL, *msgfile = NULL, *cafile = NULL;
	int eight = 0, opt, cancel_ms = -1;
	while ((opt = getopt(argc, argv, "t:C:u:p:T:H:8c:f:m:a:kn:w:")) != -1) {
		switch (opt) {
		case 't':
			p.tls = strcmp(optarg, "may") == 0 ? SMTP_TLS_MAY
				: strcmp(optarg, "encrypt") == 0
				    ? SMTP_TLS_ENCRYPT
				: strcmp(optarg, "smtps") == 0 ? SMTP_TLS_SMTPS
							       : SMTP_TLS_NONE;
			break;
		case 'C':
			cafile = optarg;
			break;
		case 'u':
			p.auth_user = optarg;
			break;
		case 'p':
			p.auth_pass = optarg;
			break;
		case 'T':
			p.connect_timeout = p.command_timeout = p.data_timeout =
			    (unsigned)atoi(optarg);
			break;
		case 'H':
			p.helo_name = optarg;
			break;
		case '8':
			eight = 1;
			break;
		case 'c':
			cancel_ms = atoi(optarg);
			break;
		case 'f':
			sender = optarg;
			break;
		case 'm':
			msgfile = optarg;
			break;
		case 'a':
			if (nt == 16 || parse_target(optarg, &targets[nt++])) {
				fprintf(stderr, "bad target %s\n", optarg);
				return 2;
			}
			break;
		case 'k':
			p.keep_open = 1;
			break;
		case 'n':
			g_total = atoi(optarg);
			break;
		case 'w':
			g_wait_ms = atoi(optarg);
			break;
		default:
			return 2;
		}
	}
	if (sender == NULL || msgfile == NULL || nt == 0 || optind >= argc ||
	    g_total < 1) {
		fprintf(stderr, "usage: see the source\n");
		return 2;
	}
	/* as smaltd: a server that closed an idle session is a write
	 * error, not a signal */
	signal(SIGPIPE, SIG_IGN);
	int fd = open(msgfile, O_RDONLY);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		perror(msgfile);
		return 2;
	}
	SSL_CTX *ctx = NULL;
	if (p.tls != SMTP_TLS_NONE) {
		ctx = SSL_CTX_new(TLS_client_method());
		if (cafile != NULL &&
		    SSL_CTX_load_verify_locations(ctx, cafile, NULL) != 1) {
			fprintf(stderr, "cannot load %s\n", cafile);
			return 2;
		}
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
		p.ssl_ctx = ctx;
	}
	g_nrcpt = (size_t)(argc - optind);
	g_rcpts = (const char *const *)argv + optind;
	g_tx = (struct smtp_tx){.sender = sender,
				.rcpts = g_rcpts,
				.nrcpt = g_nrcpt,
				.msg_fd = fd,
				.msg_offset = 0,
				.msg_size = (uint64_t)st.st_size,
				.eight_bit = eight};
	g_params = p;
	g_ntargets = nt;
	g_cancel_ms = cancel_ms;
	struct event_base *base = event_base_new();
	g_base = base;
	g_next = evtimer_new(base, on_next, NULL);
	next_step();
	struct event *cev = NULL;
	if (cancel_ms >= 0) {
		struct timeval tv = {cancel_ms / 1000,
				     (cancel_ms % 1000) * 1000};
		cev = evtimer_new(base, on_cancel, NULL);
		evtimer_add(cev, &tv);
	}
	event_base_dispatch(base);
	if (cev != NULL)
		event_free(cev);
	event_free(g_next);
	event_base_free(base);
	SSL_CTX_free(ctx);
	close(fd);
	return 0;
}
