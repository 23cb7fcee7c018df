/* The real SMTP session, driven over a socketpair: the command parser,
 * the state machine, pipelining and the DATA state machine together.
 * Each input is what one client sends before it half-closes. */
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "conf/conf.h"
#include "queue/queue.h"
#include "smtpd/smtp_session.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct event_base *base;
static struct smtpd *sd;
static struct queue *q;
static struct smalt_conf *conf;

static int
remove_one(struct queue *queue, enum queue_dir dir, const char *id, void *arg)
{
	(void)arg;
	queue_remove(queue, dir, id);
	return 0;
}

static void
setup(void)
{
	char err[512];
	static char spool[] = "/tmp/smalt-fuzz-session.XXXXXX";
	/* Quiet: a log line per session would be most of the run time. */
	log_init(getenv("SMALT_FUZZ_LOG") ? LOG_DEST_STDERR : LOG_DEST_NONE,
		 "fuzz");
	if (mkdtemp(spool) == NULL)
		abort();
	static const char text[] = "hostname = mx.example.test\n"
				   "aliases =\n"
				   "max_recipients = 5\n"
				   "max_message_size = 20k\n";
	char *spool_opt = xasprintf("spool_dir=%s", spool);
	char *overrides[] = {spool_opt};
	conf = conf_parse_buffer("fuzz.conf", text, sizeof(text) - 1, overrides,
				 1, err, sizeof(err));
	free(spool_opt);
	if (conf == NULL) {
		fprintf(stderr, "%s\n", err);
		abort();
	}
	q = queue_open(spool, (uid_t)-1, (gid_t)-1, err, sizeof(err));
	if (q == NULL)
		abort();
	base = event_base_new();
	struct listeners none = {0};
	sd = smtpd_new(base, conf, q, &none, err, sizeof(err));
	if (sd == NULL)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (base == NULL)
		setup();
	if (size > 200000)
		return 0;
	int fds[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds) != 0)
		abort();
	struct sockaddr_in sin = {.sin_family = AF_INET,
				  .sin_port = htons(40000),
				  .sin_addr.s_addr = htonl(0x7f000001)};
	struct sockaddr_storage key = {0};
	((struct sockaddr_in *)&key)->sin_family = AF_INET;
	((struct sockaddr_in *)&key)->sin_addr = sin.sin_addr;
	sd->nipcounts = 0;
	smtp_session_start(sd, fds[0], (struct sockaddr *)&sin, sizeof(sin),
			   &key, LISTENER_SMTP);
	size_t off = 0;
	int shut = 0;
	char sink[65536];
	for (int spins = 0; sd->nsessions > 0 && spins < 200000; spins++) {
		if (off < size) {
			ssize_t n = write(fds[1], data + off, size - off);
			if (n > 0)
				off += (size_t)n;
		} else if (!shut) {
			shutdown(fds[1], SHUT_WR);
			shut = 1;
		}
		while (read(fds[1], sink, sizeof(sink)) > 0)
			;
		event_base_loop(base, EVLOOP_NONBLOCK);
		if (spins > 1000)
			usleep(100); /* a commit thread is fsyncing */
	}
	if (sd->nsessions > 0)
		abort(); /* a wedged session */
	close(fds[1]);
	queue_scan(q, QDIR_INCOMING, remove_one, NULL);
	return 0;
}
