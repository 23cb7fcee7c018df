/* smaltctl: the admin's view of a running smaltd (SPEC §2). It reads the
 * spool itself (show queue, show message), signals the master (reload,
 * stop) and hands the qmgr requests through maildrop/ (flush, hold,
 * release, remove), which the qmgr honours only from root and the
 * daemon's user. show hosts and show stats read what the qmgr keeps in
 * spool_dir/state/. */
#include <errno.h>
#include <signal.h>
#include <time.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sysexits.h>
#include <unistd.h>

#include "common/util.h"
#include "common/log.h"
#include "conf/conf.h"
#include "queue/hostcache.h"
#include "queue/maildrop.h"
#include "queue/queue.h"

static void usage(void) __attribute__((noreturn));

static void
usage(void)
{
	fprintf(stderr,
		"usage: smaltctl [-f FILE] [-o key=value]... COMMAND\n"
		"commands: status, show queue|message ID|hosts|stats "
		"[--json], flush [ID|HOST],\n"
		"          hold ID, release ID, remove ID, reload, stop\n");
	exit(EX_USAGE);
}

/* smaltd holds an exclusive flock on spool_dir/smaltd.pid while it
 * runs; a stale file left by a crash holds no lock. */
static int
cmd_status(const struct smalt_conf *conf)
{
	char *path = xasprintf("%s/smaltd.pid", conf->spool_dir);
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		printf("smaltd is not running (%s: %s)\n", path,
		       strerror(errno));
		free(path);
		return 1;
	}
	free(path);
	if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
		close(fd);
		printf("smaltd is not running\n");
		return 1;
	}
	char buf[32] = "";
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	printf("smaltd is running (pid %s)\n", buf[0] ? buf : "unknown");
	return 0;
}

/* The running daemon's pid, or 0. */
static long
daemon_pid(const struct smalt_conf *conf)
{
	char *path = xasprintf("%s/smaltd.pid", conf->spool_dir);
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	free(path);
	if (fd < 0)
		return 0;
	long pid = 0;
	char buf[32];
	if (flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK) {
		ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
		buf[n > 0 ? n : 0] = '\0';
		pid = strtol(buf, NULL, 10);
	}
	close(fd);
	return pid;
}

static int
cmd_signal(const struct smalt_conf *conf, int sig)
{
	long pid = daemon_pid(conf);
	if (pid <= 1) {
		fprintf(stderr, "smaltctl: smaltd is not running\n");
		return 1;
	}
	if (kill((pid_t)pid, sig) != 0) {
		fprintf(stderr,
			"smaltctl: cannot signal smaltd (pid %ld): %s\n", pid,
			strerror(errno));
		return EX_NOPERM;
	}
	if (sig == SIGHUP) {
		printf("smaltd (pid %ld) reloads its configuration\n", pid);
		return 0;
	}
	/* stop: wait until the lock is free, as the admin expects. */
	for (int i = 0; i < 300 && daemon_pid(conf) != 0; i++)
		usleep(100 * 1000);
	if (daemon_pid(conf) != 0) {
		fprintf(stderr, "smaltctl: smaltd (pid %ld) is still running\n",
			pid);
		return 1;
	}
	printf("smaltd stopped\n");
	return 0;
}

static int
cmd_request(const struct smalt_conf *conf, const char *word, const char *arg)
{
	char err[256];
	if (arg != NULL && strcmp(word, "flush") != 0 && !queue_id_valid(arg)) {
		fprintf(stderr, "smaltctl: %s: not a queue id\n", arg);
		return EX_USAGE;
	}
	if (maildrop_request(conf->spool_dir, word, arg, err, sizeof(err)) !=
	    0) {
		fprintf(stderr, "smaltctl: %s\n", err);
		return EX_TEMPFAIL;
	}
	if (daemon_pid(conf) == 0)
		printf("smaltd is not running: the request waits for it\n");
	else
		printf("requested: %s%s%s\n", word, arg ? " " : "",
		       arg ? arg : "");
	return 0;
}

/* -- show queue / show message */

static void
json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static char *
rfc3339(time_t t, char *buf, size_t len)
{
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return buf;
}

struct show {
	int json;
	int first;
	unsigned long n;
};

static int
show_one(struct queue *q, enum queue_dir dir, const char *id, void *arg)
{
	struct show *sh = arg;
	struct envelope env;
	const char *errstr;
	char t[32];
	if (queue_env_read(q, dir, id, &env, &errstr) != 0)
		return 0;
	int held = dir == QDIR_HOLD;
	if (sh->json) {
		printf("%s{\"id\":", sh->first ? "" : ",");
		json_str(env.id);
		printf(",\"sender\":");
		json_str(env.sender);
		printf(",\"size\":%llu,\"arrival\":\"%s\",\"held\":%s,"
		       "\"recipients\":[",
		       (unsigned long long)env.size,
		       rfc3339(env.arrival, t, sizeof(t)),
		       held ? "true" : "false");
		for (size_t i = 0; i < env.nrcpt; i++) {
			struct env_rcpt *r = &env.rcpt[i];
			printf("%s{\"address\":", i ? "," : "");
			json_str(r->address);
			printf(",\"state\":\"%s\",\"reason\":",
			       rcpt_state_name(r->state));
			json_str(r->reason);
			printf(",\"next_attempt\":");
			if (r->next_attempt)
				printf("\"%s\"}",
				       rfc3339(r->next_attempt, t, sizeof(t)));
			else
				printf("null}");
		}
		printf("]}");
	} else {
		printf("%s sender=<%s> size=%llu arrival=%s held=%s\n", env.id,
		       env.sender, (unsigned long long)env.size,
		       rfc3339(env.arrival, t, sizeof(t)), held ? "yes" : "no");
		for (size_t i = 0; i < env.nrcpt; i++) {
			struct env_rcpt *r = &env.rcpt[i];
			printf("  recipient=<%s> state=%s", r->address,
			       rcpt_state_name(r->state));
			if (r->next_attempt)
				printf(" next_attempt=%s",
				       rfc3339(r->next_attempt, t, sizeof(t)));
			if (r->reason[0])
				printf(" reason=(%s)", r->reason);
			printf("\n");
		}
	}
	sh->first = 0;
	sh->n++;
	envelope_free(&env);
	return 0;
}

static struct queue *
open_spool(const struct smalt_conf *conf)
{
	char err[512];
	log_init(LOG_DEST_NONE, conf->hostname);
	struct queue *q =
	    queue_open_readonly(conf->spool_dir, err, sizeof(err));
	if (q == NULL) {
		fprintf(stderr, "smaltctl: cannot read the queue: %s\n", err);
		exit(errno == EACCES ? EX_NOPERM : EX_UNAVAILABLE);
	}
	return q;
}

static int
cmd_show_queue(const struct smalt_conf *conf, int json)
{
	struct queue *q = open_spool(conf);
	struct show sh = {.json = json, .first = 1};
	static const enum queue_dir dirs[] = {QDIR_INCOMING, QDIR_DEFERRED,
					      QDIR_HOLD};
	if (json)
		printf("[");
	for (size_t i = 0; i < SMALT_NELEM(dirs); i++)
		if (queue_scan(q, dirs[i], show_one, &sh) < 0) {
			fprintf(stderr, "smaltctl: cannot read the queue: %s\n",
				strerror(errno));
			queue_close(q);
			return EX_NOPERM;
		}
	if (json)
		printf("]\n");
	else if (sh.n == 0)
		printf("the queue is empty\n");
	queue_close(q);
	return 0;
}

static int
cmd_show_message(const struct smalt_conf *conf, const char *id)
{
	if (!queue_id_valid(id)) {
		fprintf(stderr, "smaltctl: %s: not a queue id\n", id);
		return EX_USAGE;
	}
	struct queue *q = open_spool(conf);
	struct show sh = {.first = 1};
	static const enum queue_dir dirs[] = {QDIR_INCOMING, QDIR_DEFERRED,
					      QDIR_HOLD};
	for (size_t i = 0; i < SMALT_NELEM(dirs) && sh.n == 0; i++)
		show_one(q, dirs[i], id, &sh);
	if (sh.n == 0) {
		fprintf(stderr, "smaltctl: %s: no such message\n", id);
		queue_close(q);
		return 1;
	}
	printf("\n");
	int fd = queue_msg_open(q, id);
	char buf[65536];
	ssize_t n;
	while (fd >= 0 && (n = read(fd, buf, sizeof(buf))) > 0)
		if (fwrite(buf, 1, (size_t)n, stdout) != (size_t)n)
			break;
	if (fd < 0)
		fprintf(stderr, "smaltctl: %s: message file: %s\n", id,
			strerror(errno));
	else
		close(fd);
	queue_close(q);
	return fd < 0 ? 1 : 0;
}

/* -- show stats */

/* "name N" lines of state/FILE into the matching counters. */
static void
read_counters(struct queue *q, const char *file, const char *const *names,
	      unsigned long *v, size_t n)
{
	size_t len;
	char *text = queue_state_read(q, file, &len);
	for (char *line = text; line != NULL && *line != '\0';) {
		char *nl = strchr(line, '\n');
		if (nl != NULL)
			*nl = '\0';
		for (size_t i = 0; i < n; i++) {
			size_t k = strlen(names[i]);
			if (strncmp(line, names[i], k) == 0 && line[k] == ' ')
				v[i] = strtoul(line + k + 1, NULL, 10);
		}
		line = nl ? nl + 1 : NULL;
	}
	free(text);
}

static int
count_one(struct queue *q, enum queue_dir dir, const char *id, void *arg)
{
	(void)q;
	(void)dir;
	(void)id;
	(*(unsigned long *)arg)++;
	return 0;
}

/* Counters since the daemon started, as its parts last wrote them (at
 * most a few seconds old), and the messages in the queue now. */
static int
cmd_show_stats(const struct smalt_conf *conf, int json)
{
	static const char *const names[] = {
	    "received", "delivered",   "deferred",  "bounced",
	    "rejected", "connections", "queue_size"};
	unsigned long v[SMALT_NELEM(names)] = {0};
	struct queue *q = open_spool(conf);
	static const char *const smtpd_names[] = {"received", "rejected",
						  "connections"};
	unsigned long sv[3] = {0};
	read_counters(q, "smtpd", smtpd_names, sv, 3);
	v[0] = sv[0];
	v[4] = sv[1];
	v[5] = sv[2];
	/* received: over SMTP and from sendmail, as pflogsumm counts. */
	static const char *const qmgr_names[] = {"delivered", "deferred",
						 "bounced", "picked_up"};
	unsigned long qv[4] = {0};
	read_counters(q, "qmgr", qmgr_names, qv, 4);
	v[0] += qv[3];
	v[1] = qv[0];
	v[2] = qv[1];
	v[3] = qv[2];
	static const enum queue_dir dirs[] = {QDIR_INCOMING, QDIR_DEFERRED,
					      QDIR_HOLD};
	for (size_t i = 0; i < SMALT_NELEM(dirs); i++)
		queue_scan(q, dirs[i], count_one, &v[6]);
	queue_close(q);
	if (json)
		printf("{");
	for (size_t i = 0; i < SMALT_NELEM(names); i++) {
		if (json)
			printf("%s\"%s\":%lu", i ? "," : "", names[i], v[i]);
		else
			printf("%s=%lu\n", names[i], v[i]);
	}
	if (json)
		printf("}\n");
	return 0;
}

/* The per-host unavailability cache, as the qmgr last saved it (it
 * saves on every change). */
static int
cmd_show_hosts(const struct smalt_conf *conf, int json)
{
	struct queue *q = open_spool(conf);
	char *path =
	    xasprintf("%s/%s/hosts", queue_path(q), queue_dir_name(QDIR_STATE));
	queue_close(q);
	struct hostcache *hc =
	    hostcache_new(conf->host_retry_min, conf->host_retry_max);
	char err[600];
	int rc = 0;
	if (hostcache_load(hc, path, err, sizeof(err)) != 0) {
		fprintf(stderr, "smaltctl: %s\n", err);
		rc = errno == EACCES ? EX_NOPERM : EX_DATAERR;
	} else {
		hostcache_print(hc, stdout, json);
	}
	hostcache_free(hc);
	free(path);
	return rc;
}

int
main(int argc, char **argv)
{
	const char *config = NULL;
	char **overrides = xcalloc((size_t)argc, sizeof(char *));
	size_t n_overrides = 0;
	int c;
	while ((c = getopt(argc, argv, "+f:o:")) != -1) {
		switch (c) {
		case 'f':
			config = optarg;
			break;
		case 'o':
			overrides[n_overrides++] = optarg;
			break;
		default:
			usage();
		}
	}
	if (optind >= argc)
		usage();
	char err[CONF_ERRLEN];
	struct smalt_conf *conf =
	    conf_load(config, overrides, n_overrides, err, sizeof(err));
	free(overrides);
	if (conf == NULL) {
		fprintf(stderr, "smaltctl: %s\n", err);
		return EX_CONFIG;
	}
	const char *cmd = argv[optind];
	int nargs = argc - optind - 1;
	char **args = argv + optind + 1;
	int json = nargs > 0 && strcmp(args[nargs - 1], "--json") == 0;
	if (json)
		nargs--;
	int rc;
	if (strcmp(cmd, "status") == 0 && nargs == 0 && !json) {
		rc = cmd_status(conf);
	} else if (strcmp(cmd, "reload") == 0 && nargs == 0 && !json) {
		rc = cmd_signal(conf, SIGHUP);
	} else if (strcmp(cmd, "stop") == 0 && nargs == 0 && !json) {
		rc = cmd_signal(conf, SIGTERM);
	} else if (strcmp(cmd, "flush") == 0 && nargs <= 1 && !json) {
		rc = cmd_request(conf, "flush", nargs ? args[0] : NULL);
	} else if ((strcmp(cmd, "hold") == 0 || strcmp(cmd, "release") == 0 ||
		    strcmp(cmd, "remove") == 0) &&
		   nargs == 1 && !json) {
		rc = cmd_request(conf, cmd, args[0]);
	} else if (strcmp(cmd, "show") == 0 && nargs == 1 &&
		   strcmp(args[0], "queue") == 0) {
		rc = cmd_show_queue(conf, json);
	} else if (strcmp(cmd, "show") == 0 && nargs == 2 && !json &&
		   strcmp(args[0], "message") == 0) {
		rc = cmd_show_message(conf, args[1]);
	} else if (strcmp(cmd, "show") == 0 && nargs == 1 &&
		   strcmp(args[0], "stats") == 0) {
		rc = cmd_show_stats(conf, json);
	} else if (strcmp(cmd, "show") == 0 && nargs == 1 &&
		   strcmp(args[0], "hosts") == 0) {
		rc = cmd_show_hosts(conf, json);
	} else {
		usage();
	}
	conf_free(conf);
	return rc;
}
