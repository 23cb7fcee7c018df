/* smaltd: reads the configuration, prepares the spool, recovers what a
 * crash left and binds the listeners as root, then runs as a master over
 * three children (SPEC §2, §8):
 *   smtpd     the SMTP server, as the unprivileged user;
 *   qmgr      the scheduler, as the unprivileged user;
 *   agent     the delivery agent, which keeps root to deliver as each
 *             recipient and touches no network input.
 * The master restarts a child that dies, forwards SIGHUP after checking
 * the new configuration, and on SIGTERM waits for all three. */
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
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "conf/conf.h"
#include "deliver/agent.h"
#include "deliver/qmgr.h"
#include "deliver/routes.h"
#include "queue/queue.h"
#include "smtpd/listener.h"
#include "smtpd/smtpd.h"

/* Seconds between writes of the counters that smaltctl show stats
 * reads (only when they changed). */
#define SMALTD_STATS_INTERVAL 5

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
	int lock_fd;
	int stopping;
	uid_t uid; /* the unprivileged user; -1 when not started as root */
	gid_t gid;
	pid_t smtpd_pid, qmgr_pid, agent_pid;
	time_t smtpd_started, delivery_started;
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
	/* The children of a master that was killed die with it, but not
	 * in the same instant: give them a moment before refusing. */
	for (int i = 0; flock(fd, LOCK_EX | LOCK_NB) != 0; i++) {
		if (errno != EWOULDBLOCK || i == 30)
			fatal("%s: another smaltd is running on this spool",
			      path);
		usleep(100 * 1000);
	}
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

/* Lets go of the terminal (or whatever started us): a command that
 * waits for our output must see its end. */
static void
detach_stdio(void)
{
	log_set_echo_stderr(0);
	int fd = open("/dev/null", O_RDWR);
	if (fd >= 0) {
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		if (fd > 2)
			close(fd);
	}
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
	detach_stdio();
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
	/* A change of credentials clears the parent-death signal. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() == 1)
		_exit(1);
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

/* -- the smtpd child: unprivileged, owns the sessions */

struct smtpd_proc {
	struct daemon *d;
	struct smtpd *smtpd;
	struct event_base *base;
	int stopping;
	struct smtpd_stats saved; /* what state/smtpd says now */
};

/* The counters for smaltctl show stats, written when they changed. */
static void
save_smtpd_stats(struct smtpd_proc *sp)
{
	const struct smtpd_stats *st = smtpd_stats(sp->smtpd);
	if (memcmp(st, &sp->saved, sizeof(*st)) == 0)
		return;
	char buf[160];
	int n = snprintf(buf, sizeof(buf),
			 "received %lu\nrejected %lu\nconnections %lu\n",
			 st->received, st->rejected, st->connections);
	if (queue_state_write(sp->d->queue, "smtpd", buf, (size_t)n) == 0)
		sp->saved = *st;
}

static void
on_stats_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	save_smtpd_stats(arg);
}

static void
stop_loop(void *arg)
{
	struct smtpd_proc *sp = arg;
	/* One more turn writes the last replies out. */
	struct timeval tv = {0, 100000};
	event_base_loopexit(sp->base, &tv);
}

static void
on_terminate(evutil_socket_t sig, short what, void *arg)
{
	struct smtpd_proc *sp = arg;
	(void)sig;
	(void)what;
	if (sp->stopping++)
		return;
	smtpd_drain(sp->smtpd, stop_loop, sp);
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
reload_smtpd(struct smtpd_proc *sp)
{
	struct daemon *d = sp->d;
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
	if (smtpd_set_conf(sp->smtpd, conf, err, sizeof(err)) != 0) {
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
	reload_smtpd(arg);
}

/* Runs the SMTP side; writes one byte to ready_wr once it serves. */
static int
run_smtpd(struct daemon *d, int ready_wr)
{
	struct smtpd_proc sp = {.d = d};
	char err[CONF_ERRLEN];
	log_set_part("smtpd");
	prctl(PR_SET_NAME, "smalt-smtpd");
	drop_privileges(d->uid, d->gid);
	sp.base = event_base_new();
	if (sp.base == NULL)
		fatal("event_base_new failed");
	struct event *ev_term =
	    evsignal_new(sp.base, SIGTERM, on_terminate, &sp);
	struct event *ev_int = evsignal_new(sp.base, SIGINT, on_terminate, &sp);
	struct event *ev_hup = evsignal_new(sp.base, SIGHUP, on_reload, &sp);
	event_add(ev_term, NULL);
	event_add(ev_int, NULL);
	event_add(ev_hup, NULL);
	smalt_unblock_stop_signals();
	sp.smtpd = smtpd_new(sp.base, d->conf, d->queue, &d->listeners, err,
			     sizeof(err));
	if (sp.smtpd == NULL) {
		log_error("%s", err);
		return EX_CONFIG;
	}
	unsigned char ok = 0;
	if (ready_wr >= 0 && write(ready_wr, &ok, 1) != 1)
		log_warn("cannot tell the master we serve: %s",
			 strerror(errno));
	if (ready_wr >= 0)
		close(ready_wr);
	/* Start-up errors went to the admin's terminal; the rest goes to
	 * the log only. */
	if (!d->opt.foreground)
		detach_stdio();
	struct event *ev_stats =
	    event_new(sp.base, -1, EV_PERSIST, on_stats_timer, &sp);
	struct timeval every = {SMALTD_STATS_INTERVAL, 0};
	memset(&sp.saved, 0xff, sizeof(sp.saved)); /* written once at start */
	save_smtpd_stats(&sp);
	event_add(ev_stats, &every);
	event_base_dispatch(sp.base);
	save_smtpd_stats(&sp);
	event_free(ev_stats);
	smtpd_free(sp.smtpd);
	event_free(ev_term);
	event_free(ev_int);
	event_free(ev_hup);
	event_base_free(sp.base);
	return 0;
}

/* -- the master: starts the three children and keeps them running */

static volatile sig_atomic_t got_term, got_hup, got_chld, got_alarm;

static void
on_master_signal(int sig)
{
	switch (sig) {
	case SIGTERM:
	case SIGINT:
		got_term = sig;
		break;
	case SIGHUP:
		got_hup = 1;
		break;
	case SIGCHLD:
		got_chld = 1;
		break;
	case SIGALRM:
		got_alarm = 1;
		break;
	}
}

static const int master_signals[] = {SIGTERM, SIGINT, SIGHUP, SIGCHLD, SIGALRM};
static sigset_t master_blocked, master_orig;

static void
master_signals_setup(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_master_signal;
	sigemptyset(&sa.sa_mask);
	sigemptyset(&master_blocked);
	for (size_t i = 0; i < SMALT_NELEM(master_signals); i++) {
		sigaddset(&master_blocked, master_signals[i]);
		sigaction(master_signals[i], &sa, NULL);
	}
	/* Handled only inside sigsuspend: no race with the loop's checks. */
	sigprocmask(SIG_BLOCK, &master_blocked, &master_orig);
}

/* In a new child: the master's handlers and mask are not its own, and
 * it must not outlive the master (a new master would find the spool
 * locked, or two schedulers would deliver the same mail). */
static pid_t master_pid;

static void
child_setup(struct daemon *d, int quiet)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != master_pid)
		_exit(1);
	/* Root's lock and the start-up pipe are the master's alone. */
	if (d->lock_fd >= 0)
		close(d->lock_fd);
	d->lock_fd = -1;
	if (ready_fd >= 0)
		close(ready_fd);
	ready_fd = -1;
	if (quiet && !d->opt.foreground)
		detach_stdio();
	for (size_t i = 0; i < SMALT_NELEM(master_signals); i++)
		signal(master_signals[i], SIG_DFL);
	/* `pkill smaltd` and systemd signal every process, not only the
	 * master: a child stops when the master tells it to, and a second
	 * SIGTERM while it finishes must not kill it. Until its event loop
	 * has handlers for them the three stay blocked, not ignored: a
	 * SIGTERM from the master during a slow start-up (CA bundle, host
	 * cache) must wait, not be lost. Each child unblocks them with
	 * smalt_unblock_stop_signals() once its handlers are in place. */
	sigset_t mask = master_orig;
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	/* One call: unblocking the master's set first would let a stop
	 * signal in with SIG_DFL for a moment. */
	sigprocmask(SIG_SETMASK, &mask, NULL);
}

static struct options *reload_opt;

static struct smalt_conf *
reload_conf(char *err, size_t errlen)
{
	return load_conf(reload_opt, err, errlen);
}

static pid_t
start_smtpd(struct daemon *d, int *ready_rd)
{
	int p[2] = {-1, -1};
	if (ready_rd != NULL && pipe2(p, O_CLOEXEC) != 0)
		fatal("pipe: %s", strerror(errno));
	pid_t pid = fork();
	if (pid < 0)
		fatal("fork: %s", strerror(errno));
	if (pid == 0) {
		child_setup(d, 0);
		if (p[0] >= 0)
			close(p[0]);
		int rc = run_smtpd(d, p[1]);
		listeners_close(&d->listeners);
		queue_close(d->queue);
		conf_free(d->conf);
		free(d->opt.overrides);
		exit(rc);
	}
	if (ready_rd != NULL) {
		close(p[1]);
		*ready_rd = p[0];
	}
	d->smtpd_pid = pid;
	d->smtpd_started = time(NULL);
	return pid;
}

static void
start_delivery(struct daemon *d)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
		fatal("socketpair: %s", strerror(errno));
	pid_t pid = fork();
	if (pid < 0)
		fatal("fork: %s", strerror(errno));
	if (pid == 0) {
		/* The agent keeps root (when we have it) to deliver as each
		 * recipient; it never touches the network. */
		child_setup(d, 1);
		prctl(PR_SET_NAME, "smalt-deliver");
		listeners_close(&d->listeners);
		close(sv[0]);
		struct agent_params ap = {
		    .sock = sv[1],
		    .conf = d->conf,
		    .queue = d->queue,
		    .user_uid = d->uid,
		    .user_gid = d->gid,
		    .load_conf = reload_conf,
		};
		int rc = agent_main(&ap);
		queue_close(d->queue);
		conf_free(ap.conf);
		free(d->opt.overrides);
		exit(rc);
	}
	d->agent_pid = pid;
	pid = fork();
	if (pid < 0)
		fatal("fork: %s", strerror(errno));
	if (pid == 0) {
		child_setup(d, 1);
		prctl(PR_SET_NAME, "smalt-qmgr");
		listeners_close(&d->listeners);
		close(sv[1]);
		drop_privileges(d->uid, d->gid);
		struct qmgr_params qp = {
		    .agent_sock = sv[0],
		    .conf = d->conf,
		    .queue = d->queue,
		    .load_conf = reload_conf,
		};
		int rc = qmgr_main(&qp);
		queue_close(d->queue);
		conf_free(qp.conf);
		free(d->opt.overrides);
		exit(rc);
	}
	d->qmgr_pid = pid;
	d->delivery_started = time(NULL);
	close(sv[0]);
	close(sv[1]);
}

static const char *
child_name(const struct daemon *d, pid_t pid)
{
	if (pid == d->smtpd_pid)
		return "smtpd";
	if (pid == d->qmgr_pid)
		return "qmgr";
	if (pid == d->agent_pid)
		return "delivery agent";
	return "child";
}

static void
log_child_exit(const struct daemon *d, pid_t pid, int st)
{
	if (WIFSIGNALED(st))
		log_error("%s (pid %ld) killed by signal %d",
			  child_name(d, pid), (long)pid, WTERMSIG(st));
	else if (WEXITSTATUS(st) != 0)
		log_error("%s (pid %ld) exited with status %d",
			  child_name(d, pid), (long)pid, WEXITSTATUS(st));
	else if (!d->stopping)
		log_warn("%s (pid %ld) exited", child_name(d, pid), (long)pid);
}

/* A child that dies keeps coming back, but never faster than once a
 * second. The qmgr and the agent share a socket: they restart as a
 * pair. */
static void
reap_children(struct daemon *d)
{
	int st;
	pid_t pid;
	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		log_child_exit(d, pid, st);
		if (pid == d->smtpd_pid) {
			d->smtpd_pid = 0;
			if (!d->stopping) {
				if (time(NULL) - d->smtpd_started < 1)
					sleep(1);
				start_smtpd(d, NULL);
			}
		} else if (pid == d->qmgr_pid || pid == d->agent_pid) {
			if (pid == d->qmgr_pid)
				d->qmgr_pid = 0;
			else
				d->agent_pid = 0;
			pid_t other = d->qmgr_pid ? d->qmgr_pid : d->agent_pid;
			if (other != 0)
				kill(other, SIGTERM);
			if (d->qmgr_pid == 0 && d->agent_pid == 0 &&
			    !d->stopping) {
				if (time(NULL) - d->delivery_started < 1)
					sleep(1);
				start_delivery(d);
			}
		}
	}
}

static void
signal_children(struct daemon *d, int sig)
{
	pid_t pids[] = {d->smtpd_pid, d->qmgr_pid, d->agent_pid};
	for (size_t i = 0; i < SMALT_NELEM(pids); i++)
		if (pids[i] > 0)
			kill(pids[i], sig);
}

static void
master_reload(struct daemon *d)
{
	char err[CONF_ERRLEN];
	struct smalt_conf *conf = load_conf(&d->opt, err, sizeof(err));
	if (conf == NULL) {
		log_error("reload failed, keeping the old settings: %s", err);
		return;
	}
	conf_free(d->conf);
	d->conf = conf;
	log_init(d->opt.foreground ? LOG_DEST_STDERR : LOG_DEST_SYSLOG,
		 conf->hostname);
	signal_children(d, SIGHUP);
}

static void
master_loop(struct daemon *d)
{
	for (;;) {
		if (got_chld) {
			got_chld = 0;
			reap_children(d);
		}
		if (got_hup && !d->stopping) {
			got_hup = 0;
			master_reload(d);
		}
		if (got_term && !d->stopping) {
			log_info("terminating on signal %d", (int)got_term);
			d->stopping = 1;
			/* The agent last: it stops once the qmgr is gone
			 * and its own deliveries have ended. */
			if (d->smtpd_pid > 0)
				kill(d->smtpd_pid, SIGTERM);
			if (d->qmgr_pid > 0)
				kill(d->qmgr_pid, SIGTERM);
			else if (d->agent_pid > 0)
				kill(d->agent_pid, SIGTERM);
			/* The agent may wait AGENT_DRAIN_SECONDS for its
			 * deliveries; beyond that, no more waiting. */
			alarm(AGENT_DRAIN_SECONDS + 5);
		}
		if (got_alarm && d->stopping) {
			got_alarm = 0;
			log_warn("children still running; killing them");
			signal_children(d, SIGKILL);
		}
		if (d->stopping && d->smtpd_pid == 0 && d->qmgr_pid == 0 &&
		    d->agent_pid == 0)
			return;
		sigsuspend(&master_orig);
	}
}

/* Checks what the children would refuse to start with, while the admin
 * still watches the terminal. */
static void
check_delivery_tables(const struct smalt_conf *conf)
{
	char err[CONF_ERRLEN];
	if (conf->routes[0] != '\0') {
		struct routes *r = routes_open(conf->routes, err, sizeof(err));
		if (r == NULL) {
			log_error("%s", err);
			exit(EX_CONFIG);
		}
		routes_free(r);
	}
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
	gid_t drop_gid;

	parse_options(argc, argv, &d.opt);
	reload_opt = &d.opt;
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
	lookup_user(d.conf, &d.uid, &d.gid, &drop_gid);
	check_delivery_tables(d.conf);
	d.queue =
	    queue_open(d.conf->spool_dir, d.uid, drop_gid, err, sizeof(err));
	if (d.queue == NULL)
		fatal("spool: %s", err);
	d.lock_fd = lock_spool(d.conf->spool_dir);
	recover_queue(&d);
	if (listeners_bind(d.conf, &d.listeners, err, sizeof(err)) != 0)
		fatal("%s", err);
	if (!d.opt.foreground)
		daemonize();
	write_pid(d.lock_fd);
	master_pid = getpid();
	master_signals_setup();

	int ready_rd;
	start_smtpd(&d, &ready_rd);
	unsigned char ok;
	ssize_t n;
	while ((n = read(ready_rd, &ok, 1)) < 0 && errno == EINTR)
		;
	close(ready_rd);
	if (n != 1) {
		/* The SMTP side could not start: its reason is logged. */
		int st = 0;
		waitpid(d.smtpd_pid, &st, 0);
		exit(WIFEXITED(st) && WEXITSTATUS(st) ? WEXITSTATUS(st) : 1);
	}
	start_delivery(&d);
	for (size_t i = 0; i < d.listeners.n; i++)
		log_info("listening on %s (%s)", d.listeners.v[i].name,
			 listener_kind_name(d.listeners.v[i].kind));
	log_info("daemon started -- version %s, configuration %s",
		 SMALT_VERSION,
		 d.conf->source ? d.conf->source : "built-in defaults");
	daemon_ready();

	master_loop(&d);

	listeners_close(&d.listeners);
	queue_close(d.queue);
	conf_free(d.conf);
	free(d.opt.overrides);
	log_info("daemon stopped");
	return 0;
}
