/* smaltd: reads the configuration, prepares the spool, recovers what a
 * crash left, binds the listeners as root, drops to the unprivileged user
 * and runs the event loop (SPEC §2). */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "conf/conf.h"
#include "queue/queue.h"
#include "smtpd/listener.h"
#include "smtpd/smtpd.h"

/* The group whose members (through the sendmail program) may drop files
 * into maildrop/, as Postfix's postdrop. Created by setup.sh. */
#define MAILDROP_GROUP "smaltdrop"

struct options {
	const char *config; /* NULL: the default file */
	int foreground;
	int check_only;
	int verbose;
	char **overrides;
	size_t n_overrides;
};

struct daemon {
	struct options opt;
	struct smalt_conf *conf;
	struct queue *queue;
	struct listeners listeners;
	struct smtpd *smtpd;
	struct event_base *base;
	int lock_fd;
	int stopping;
};

static void usage(void) __attribute__((noreturn));

static void
usage(void)
{
	fprintf(stderr, "usage: smaltd [-f FILE] [-d] [-n] [-v] "
			"[-o key=value]...\n");
	exit(EX_USAGE);
}

static void
parse_options(int argc, char **argv, struct options *opt)
{
	int c;
	memset(opt, 0, sizeof(*opt));
	opt->overrides = xcalloc((size_t)argc, sizeof(char *));
	while ((c = getopt(argc, argv, "f:dnvo:")) != -1) {
		switch (c) {
		case 'f':
			opt->config = optarg;
			break;
		case 'd':
			opt->foreground = 1;
			break;
		case 'n':
			opt->check_only = 1;
			break;
		case 'v':
			opt->verbose = 1;
			break;
		case 'o':
			opt->overrides[opt->n_overrides++] = optarg;
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
	/* The daemon changes to / and reloads later: keep an absolute
	 * path to the file it was started with. */
	if (opt->config != NULL && opt->config[0] != '/') {
		char *abs = realpath(opt->config, NULL);
		if (abs != NULL)
			opt->config = abs;
	}
}

static struct smalt_conf *
load_conf(const struct options *opt, char *err, size_t errlen)
{
	return conf_load(opt->config, opt->overrides, opt->n_overrides, err,
			 errlen);
}

/* Only one daemon may own a spool: two would deliver everything twice. */
static int
lock_spool(const char *spool_dir)
{
	char *path = xasprintf("%s/smaltd.pid", spool_dir);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		fatal("%s: %s", path, strerror(errno));
	/* Readable by all despite our umask: smaltctl status reads it. */
	if (fchmod(fd, 0644) != 0)
		log_warn("%s: %s", path, strerror(errno));
	if (flock(fd, LOCK_EX | LOCK_NB) != 0)
		fatal("%s: another smaltd is running on this spool", path);
	free(path);
	return fd;
}

static void
write_pid(int fd)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) != 0 || pwrite(fd, buf, (size_t)n, 0) != n)
		log_warn("cannot write pid file: %s", strerror(errno));
}

/* The parent of a daemonized smaltd waits until the daemon is serving,
 * or has died, and exits with its status, so that a start-up error is
 * the exit status of the command the admin typed. */
static int ready_fd = -1;

static void
daemonize(void)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) != 0)
		fatal("pipe: %s", strerror(errno));
	pid_t pid = fork();
	if (pid < 0)
		fatal("fork: %s", strerror(errno));
	if (pid > 0) {
		unsigned char status;
		close(p[1]);
		if (read(p[0], &status, 1) == 1)
			_exit(status);
		int wst;
		if (waitpid(pid, &wst, 0) == pid && WIFEXITED(wst))
			_exit(WEXITSTATUS(wst));
		_exit(1);
	}
	close(p[0]);
	ready_fd = p[1];
	setsid();
	if (chdir("/") != 0)
		fatal("chdir /: %s", strerror(errno));
}

/* Serving: release the waiting parent and let go of the terminal. */
static void
daemon_ready(void)
{
	log_set_echo_stderr(0);
	if (ready_fd < 0)
		return;
	unsigned char ok = 0;
	if (write(ready_fd, &ok, 1) != 1)
		log_warn("cannot tell the parent we started: %s",
			 strerror(errno));
	close(ready_fd);
	ready_fd = -1;
	int fd = open("/dev/null", O_RDWR);
	if (fd >= 0) {
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		if (fd > 2)
			close(fd);
	}
}

/* Looks up the unprivileged user when running as root. */
static void
lookup_user(const struct smalt_conf *conf, uid_t *uid, gid_t *gid,
	    gid_t *drop_gid)
{
	*uid = (uid_t)-1;
	*gid = (gid_t)-1;
	*drop_gid = (gid_t)-1;
	if (geteuid() != 0)
		return;
	struct passwd *pw = getpwnam(conf->user);
	if (pw == NULL) {
		log_error("user \"%s\" (the user key) does not exist: create "
			  "it (setup.sh does) or set user to an existing "
			  "unprivileged account",
			  conf->user);
		exit(EX_CONFIG);
	}
	if (pw->pw_uid == 0) {
		log_error("user \"%s\" is root: network-facing code never "
			  "runs as root",
			  conf->user);
		exit(EX_CONFIG);
	}
	*uid = pw->pw_uid;
	*gid = pw->pw_gid;
	struct group *gr = getgrnam(MAILDROP_GROUP);
	if (gr != NULL)
		*drop_gid = gr->gr_gid;
	else
		log_warn("group %s does not exist: local users cannot drop "
			 "mail into maildrop/",
			 MAILDROP_GROUP);
}

static void
drop_privileges(uid_t uid, gid_t gid)
{
	if (uid == (uid_t)-1)
		return;
	if (setgroups(1, &gid) != 0 || setresgid(gid, gid, gid) != 0 ||
	    setresuid(uid, uid, uid) != 0)
		fatal("cannot drop privileges: %s", strerror(errno));
	if (setuid(0) == 0)
		fatal("privileges were not dropped");
}

/* Each session is a descriptor; the usual soft limit of 1024 would cap
 * the server below max_connections. */
static void
raise_fd_limit(const struct smalt_conf *conf)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
		log_warn("cannot raise the open file limit: %s",
			 strerror(errno));
	/* Room for listeners, spool and log descriptors besides sessions. */
	if (rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur < (rlim_t)conf->max_connections + 64)
		log_warn("open file limit %llu is below max_connections %u "
			 "+ 64; connections beyond it will fail",
			 (unsigned long long)rl.rlim_cur,
			 conf->max_connections);
}

static void
stop_loop(void *arg)
{
	struct daemon *d = arg;
	/* One more turn writes the last replies out. */
	struct timeval tv = {0, 100000};
	event_base_loopexit(d->base, &tv);
}

static void
on_terminate(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;
	(void)what;
	log_set_part("master");
	log_info("terminating on signal %d", (int)sig);
	if (d->stopping++)
		return;
	smtpd_drain(d->smtpd, stop_loop, d);
}

static int
same_hostports(const struct conf_hostports *a, const struct conf_hostports *b)
{
	if (a->n != b->n)
		return 0;
	for (size_t i = 0; i < a->n; i++)
		if (a->v[i].port != b->v[i].port ||
		    strcmp(a->v[i].host, b->v[i].host) != 0)
			return 0;
	return 1;
}

/* SIGHUP: a bad file keeps the old settings (SPEC §9). Settings bound at
 * start-up (addresses, spool, user) need a restart. */
static void
reload(struct daemon *d)
{
	char err[CONF_ERRLEN];
	struct smalt_conf *conf = load_conf(&d->opt, err, sizeof(err));
	if (conf == NULL) {
		log_error("reload failed, keeping the old settings: %s", err);
		return;
	}
	if (!same_hostports(&conf->listen, &d->conf->listen) ||
	    !same_hostports(&conf->submission_listen,
			    &d->conf->submission_listen) ||
	    !same_hostports(&conf->smtps_listen, &d->conf->smtps_listen) ||
	    strcmp(conf->spool_dir, d->conf->spool_dir) != 0 ||
	    strcmp(conf->user, d->conf->user) != 0 ||
	    conf->resolver.n != d->conf->resolver.n)
		log_warn("reload: listen addresses, spool_dir, user and "
			 "resolver change only with a restart");
	if (smtpd_set_conf(d->smtpd, conf, err, sizeof(err)) != 0) {
		log_error("reload failed, keeping the old settings: %s", err);
		conf_free(conf);
		return;
	}
	conf_free(d->conf);
	d->conf = conf;
	/* The host name shown in log lines may have changed. */
	log_init(d->opt.foreground ? LOG_DEST_STDERR : LOG_DEST_SYSLOG,
		 conf->hostname);
	log_info("reloaded configuration from %s",
		 conf->source ? conf->source : "built-in defaults");
}

static void
on_reload(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	log_set_part("master");
	reload(arg);
	log_set_part("smtpd");
}

static void
recover_queue(struct daemon *d)
{
	struct queue_recover_stats st;
	if (queue_recover(d->queue, &st) != 0)
		fatal("queue recovery in %s: %s", d->conf->spool_dir,
		      strerror(errno));
	log_info("queue %s: %lu messages, %lu leftovers removed, %lu "
		 "uncommitted message files removed, %lu moved to corrupt/",
		 d->conf->spool_dir, st.messages, st.tmp_removed,
		 st.orphans_removed, st.quarantined);
}

int
main(int argc, char **argv)
{
	struct daemon d = {.lock_fd = -1};
	char err[CONF_ERRLEN];
	uid_t uid;
	gid_t gid, drop_gid;

	parse_options(argc, argv, &d.opt);
	d.conf = load_conf(&d.opt, err, sizeof(err));
	if (d.conf == NULL) {
		fprintf(stderr, "smaltd: %s\n", err);
		free(d.opt.overrides);
		return EX_CONFIG;
	}
	if (d.opt.check_only) {
		conf_print(d.conf, stdout);
		conf_free(d.conf);
		free(d.opt.overrides);
		return fflush(stdout) == 0 ? 0 : EX_IOERR;
	}
	/* Lines for stderr need a stderr to go to: log = stderr keeps the
	 * daemon in the foreground as -d does. */
	if (d.conf->log == CONF_LOG_STDERR)
		d.opt.foreground = 1;
	log_init(d.opt.foreground ? LOG_DEST_STDERR : LOG_DEST_SYSLOG,
		 d.conf->hostname);
	log_set_echo_stderr(!d.opt.foreground);
	log_set_part("master");
	log_set_verbose(d.opt.verbose);
	signal(SIGPIPE, SIG_IGN);
	umask(077);

	raise_fd_limit(d.conf);
	lookup_user(d.conf, &uid, &gid, &drop_gid);
	d.queue =
	    queue_open(d.conf->spool_dir, uid, drop_gid, err, sizeof(err));
	if (d.queue == NULL)
		fatal("spool: %s", err);
	d.lock_fd = lock_spool(d.conf->spool_dir);
	recover_queue(&d);
	if (listeners_bind(d.conf, &d.listeners, err, sizeof(err)) != 0)
		fatal("%s", err);
	if (!d.opt.foreground)
		daemonize();
	write_pid(d.lock_fd);
	drop_privileges(uid, gid);

	d.base = event_base_new();
	if (d.base == NULL)
		fatal("event_base_new failed");
	struct event *ev_term = evsignal_new(d.base, SIGTERM, on_terminate, &d);
	struct event *ev_int = evsignal_new(d.base, SIGINT, on_terminate, &d);
	struct event *ev_hup = evsignal_new(d.base, SIGHUP, on_reload, &d);
	event_add(ev_term, NULL);
	event_add(ev_int, NULL);
	event_add(ev_hup, NULL);
	d.smtpd =
	    smtpd_new(d.base, d.conf, d.queue, &d.listeners, err, sizeof(err));
	if (d.smtpd == NULL) {
		log_error("%s", err);
		exit(EX_CONFIG);
	}
	for (size_t i = 0; i < d.listeners.n; i++)
		log_info("listening on %s (%s)", d.listeners.v[i].name,
			 listener_kind_name(d.listeners.v[i].kind));
	log_info("daemon started -- version %s, configuration %s",
		 SMALT_VERSION,
		 d.conf->source ? d.conf->source : "built-in defaults");

	daemon_ready();
	/* One process for now: from here on the SMTP side does the
	 * talking, so its lines carry the tag pflogsumm looks for. */
	log_set_part("smtpd");
	event_base_dispatch(d.base);
	log_set_part("master");

	smtpd_free(d.smtpd);
	event_free(ev_term);
	event_free(ev_int);
	event_free(ev_hup);
	event_base_free(d.base);
	listeners_close(&d.listeners);
	queue_close(d.queue);
	conf_free(d.conf);
	free(d.opt.overrides);
	log_info("daemon stopped");
	return 0;
}
