#include "deliver/pipe.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"

#define CHUNK (64 * 1024)
/* Without a pidfd we notice the child's exit by polling this often. */
#define EXIT_POLL_MS 50
/* After the child has exited, output still buffered in the pipe is read,
 * but a grandchild that keeps writing must not hold us: this many reads
 * at most. */
#define DRAIN_READS 64

/* --- results ---------------------------------------------------------- */

static long long
mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --- what the child needs, made before fork --------------------------- */

/* After fork only async-signal-safe calls are allowed (the daemon may
 * have threads), so every string and lookup is prepared here. */
struct launch {
	const char *path;
	char *const *argv;
	char *sh_argv[4];
	char *env[8]; /* malloc'd, NULL-terminated */
	char *home;   /* NULL: unknown, work in "/" */
	int as_root;
	uid_t uid;
	gid_t gid;
	int in_fd, out_fd, report_fd; /* the child's ends of the pipes */
};

static void
env_add(struct launch *l, size_t *n, const char *name, const char *value)
{
	l->env[(*n)++] = xasprintf("%s=%s", name, value != NULL ? value : "");
}

static void
launch_init(struct launch *l, const struct pipe_request *req)
{
	memset(l, 0, sizeof(*l));
	l->as_root = geteuid() == 0;
	l->uid = l->as_root ? req->uid : getuid();
	l->gid = req->gid;
	if (req->argv != NULL) {
		l->path = req->argv[0];
		l->argv = req->argv;
	} else {
		l->sh_argv[0] = "sh";
		l->sh_argv[1] = "-c";
		l->sh_argv[2] = (char *)req->shell_command;
		l->path = "/bin/sh";
		l->argv = l->sh_argv;
	}
	size_t n = 0;
	env_add(l, &n, "PATH", "/usr/bin:/bin");
	env_add(l, &n, "SHELL", "/bin/sh");
	struct passwd pw, *pwp = NULL;
	char buf[16384];
	if (getpwuid_r(l->uid, &pw, buf, sizeof(buf), &pwp) == 0 &&
	    pwp != NULL) {
		l->home = xstrdup(pw.pw_dir);
		env_add(l, &n, "HOME", pw.pw_dir);
		env_add(l, &n, "USER", pw.pw_name);
		env_add(l, &n, "LOGNAME", pw.pw_name);
	}
	env_add(l, &n, "SENDER", req->sender);
	env_add(l, &n, "RECIPIENT", req->recipient);
	l->env[n] = NULL;
}

static void
launch_free(struct launch *l)
{
	for (size_t i = 0; l->env[i] != NULL; i++)
		free(l->env[i]);
	free(l->home);
}

/* --- the child -------------------------------------------------------- */

enum { STAGE_SETUP, STAGE_EXEC };

/* Sent through the close-on-exec report pipe: data on it means the
 * command never ran, whatever the exit status says. */
struct child_report {
	int stage;
	int err;
};

static void __attribute__((noreturn)) child_fail(int fd, int stage)
{
	struct child_report r = {stage, errno};
	ssize_t n = write(fd, &r, sizeof(r));
	(void)n;
	_exit(71); /* EX_OSERR; the report is what counts */
}

static void
close_from(int lowfd)
{
	if (syscall(SYS_close_range, (unsigned)lowfd, ~0U, 0) == 0)
		return;
	struct rlimit rl;
	int max = getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
			  rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < 65536
		      ? (int)rl.rlim_cur
		      : 65536;
	for (int fd = lowfd; fd < max; fd++)
		close(fd);
}

/* A daemon ignores SIGPIPE and may block signals; an exec'd command
 * would inherit both and behave unlike it does from a shell. */
static void
reset_signals(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	sigemptyset(&sa.sa_mask);
	for (int s = 1; s < NSIG; s++)
		if (s != SIGKILL && s != SIGSTOP)
			sigaction(s, &sa, NULL);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

/* The pipe ends are first moved above 2 so that putting them on 0, 1
 * and 2 cannot overwrite one another, whatever numbers they had (a
 * daemon may have closed its standard descriptors). */
static void
child_fds(const struct launch *l)
{
	int in = fcntl(l->in_fd, F_DUPFD_CLOEXEC, 3);
	int out = fcntl(l->out_fd, F_DUPFD_CLOEXEC, 3);
	int rep = fcntl(l->report_fd, F_DUPFD_CLOEXEC, 3);
	if (in < 0 || out < 0 || rep < 0)
		child_fail(l->report_fd, STAGE_SETUP);
	if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
		child_fail(rep, STAGE_SETUP);
	if (rep != 3 && dup3(rep, 3, O_CLOEXEC) < 0)
		child_fail(rep, STAGE_SETUP);
	close_from(4);
}

static void __attribute__((noreturn)) child_run(const struct launch *l)
{
	setsid(); /* our own process group: a timeout kills all of it */
	child_fds(l);
	reset_signals();
	if (l->as_root && (setgroups(0, NULL) < 0 || setgid(l->gid) < 0 ||
			   setuid(l->uid) < 0))
		child_fail(3, STAGE_SETUP);
	if (l->home == NULL || chdir(l->home) < 0) {
		if (chdir("/") < 0)
			child_fail(3, STAGE_SETUP);
	}
	execve(l->path, l->argv, l->env);
	child_fail(3, STAGE_EXEC);
}

/* --- the parent: feeding stdin ----------------------------------------- */

struct feed {
	int fd; /* the command's stdin; -1 once closed */
	int msg_fd;
	off_t off;
	int cr;	 /* crlf_to_lf's held CR */
	int eof; /* the message file is read to its end */
	int err; /* errno of a failed read of the message file */
	char *in;
	char *buf; /* converted text waiting to be written */
	size_t len, pos;
};

/* The headers go through the same conversion as the message and end in
 * LF, as in the mailbox writers. */
static void
feed_init(struct feed *f, int fd, int msg_fd, const char *headers)
{
	memset(f, 0, sizeof(*f));
	f->fd = fd;
	f->msg_fd = msg_fd;
	size_t hlen = headers != NULL ? strlen(headers) : 0;
	f->in = xmalloc(CHUNK);
	f->buf = xmalloc((hlen + 2 > CHUNK + 1) ? hlen + 2 : CHUNK + 1);
	if (hlen == 0)
		return;
	f->len = crlf_to_lf(&f->cr, headers, hlen, f->buf);
	if (f->cr) {
		f->cr = 0;
		f->buf[f->len++] = '\r';
	}
	if (f->len == 0 || f->buf[f->len - 1] != '\n')
		f->buf[f->len++] = '\n';
}

static void
feed_close(struct feed *f)
{
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
}

/* 1 when converted text is waiting in buf, 0 at the end of the message,
 * -1 when the message file cannot be read. */
static int
feed_fill(struct feed *f)
{
	while (f->pos == f->len) {
		if (f->eof)
			return 0;
		ssize_t n = pread(f->msg_fd, f->in, CHUNK, f->off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			f->err = errno;
			return -1;
		}
		f->pos = f->len = 0;
		if (n == 0) {
			f->eof = 1;
			if (f->cr)
				f->buf[f->len++] = '\r'; /* a lone final CR */
			continue;
		}
		f->off += n;
		f->len = crlf_to_lf(&f->cr, f->in, (size_t)n, f->buf);
	}
	return 1;
}

/* Writes what the pipe takes without blocking. A command that stops
 * reading (EPIPE) only ends the feeding: its exit status decides. -1 on
 * a read error of the message file. */
static int
feed_write(struct feed *f)
{
	while (f->fd >= 0) {
		int r = feed_fill(f);
		if (r < 0)
			return -1;
		if (r == 0) {
			feed_close(f);
			break;
		}
		ssize_t w = write(f->fd, f->buf + f->pos, f->len - f->pos);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (w < 0) {
			feed_close(f); /* EPIPE and the like */
			break;
		}
		f->pos += (size_t)w;
	}
	return 0;
}

static void
feed_free(struct feed *f)
{
	feed_close(f);
	free(f->in);
	free(f->buf);
}

/* --- the parent: the command's output ---------------------------------- */

struct capture {
	int fd; /* -1 at end of file */
	char keep[PIPE_OUTPUT_KEEP];
	size_t len;
};

/* Reads what is there without blocking, at most max times. */
static void
capture_read(struct capture *c, int max)
{
	char drop[4096];
	for (int i = 0; c->fd >= 0 && i < max; i++) {
		char *p = c->len < sizeof(c->keep) ? c->keep + c->len : drop;
		size_t room = c->len < sizeof(c->keep)
				  ? sizeof(c->keep) - c->len
				  : sizeof(drop);
		ssize_t n = read(c->fd, p, room);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			close(c->fd);
			c->fd = -1;
			return;
		}
		if (p != drop)
			c->len += (size_t)n;
	}
}

/* The first words of the output, fit for a log line and a DSN
 * diagnostic: ASCII, one line, white space collapsed. */
static void
sanitise(const char *in, size_t n, char *out, size_t max)
{
	size_t o = 0;
	int space = 0, cut = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)in[i];
		if (c <= ' ' || c == 0x7f) {
			space = 1;
			continue;
		}
		if (o + (space && o > 0) + 1 > max) {
			cut = 1;
			break;
		}
		if (space && o > 0)
			out[o++] = ' ';
		space = 0;
		out[o++] = c >= 0x80 ? '?' : (char)c;
	}
	out[o] = '\0';
	if (cut)
		strcpy(out + o, "...");
}

/* --- the parent: running and waiting ----------------------------------- */

struct run {
	pid_t pid;
	int pidfd;	    /* -1: none, poll waitpid instead */
	long long deadline; /* -1: none */
	int status;
	int timed_out;
	struct feed feed;
	struct capture out;
};

static int
pidfd_for(pid_t pid)
{
#ifdef SYS_pidfd_open
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (fd >= 0)
		fcntl(fd, F_SETFD, FD_CLOEXEC);
	return fd;
#else
	(void)pid;
	return -1;
#endif
}

/* SIGKILL to the group, and to the child itself in case it was killed
 * before its setsid made the group; then reap it. */
static void
run_kill(struct run *r)
{
	kill(-r->pid, SIGKILL);
	kill(r->pid, SIGKILL);
	r->status = -1; /* stays when it cannot be reaped: not a success */
	while (waitpid(r->pid, &r->status, 0) < 0 && errno == EINTR)
		;
}

static int
run_reaped(struct run *r)
{
	pid_t p;
	while ((p = waitpid(r->pid, &r->status, WNOHANG)) < 0 && errno == EINTR)
		;
	if (p < 0 && errno == ECHILD) {
		/* Someone else reaped it: its status is lost, which must not
		 * read as success. */
		r->status = -1;
		return 1;
	}
	return p == r->pid;
}

static int
poll_wait_ms(const struct run *r)
{
	int ms = -1;
	if (r->deadline >= 0) {
		long long left = r->deadline - mono_ms();
		ms = left > 0 ? (left > 60000 ? 60000 : (int)left) : 0;
	}
	if (r->pidfd < 0 && (ms < 0 || ms > EXIT_POLL_MS))
		ms = EXIT_POLL_MS;
	return ms;
}

/* Feeds stdin, collects the output and waits for the child's exit, the
 * deadline or a read error of the message file, whichever comes first;
 * the child is reaped in every case. */
static void
run_loop(struct run *r)
{
	for (;;) {
		if (r->deadline >= 0 && mono_ms() >= r->deadline) {
			r->timed_out = 1;
			run_kill(r);
			return;
		}
		struct pollfd p[3] = {
		    {.fd = r->feed.fd, .events = POLLOUT},
		    {.fd = r->out.fd, .events = POLLIN},
		    {.fd = r->pidfd, .events = POLLIN},
		};
		int n = poll(p, 3, poll_wait_ms(r));
		if (n < 0 && errno != EINTR) {
			run_kill(r); /* cannot wait: do not leave it */
			return;
		}
		if (n > 0 && p[0].revents != 0 && feed_write(&r->feed) < 0) {
			run_kill(r); /* it must not see the end of a partial
					message and deliver it */
			return;
		}
		if (n > 0 && p[1].revents != 0)
			capture_read(&r->out, DRAIN_READS);
		if ((r->pidfd < 0 || (n > 0 && p[2].revents != 0)) &&
		    run_reaped(r)) {
			capture_read(&r->out, DRAIN_READS);
			return;
		}
	}
}

/* --- outcome ------------------------------------------------------------ */

struct sysexit {
	int code;
	enum deliver_status status;
	const char *dsn;
	const char *text;
};

/* Postfix's sys_exits table: only EX_OSERR and EX_TEMPFAIL are soft. */
static const struct sysexit sysexits[] = {
    {64, DELIVER_BOUNCE, "5.3.0", "command line usage error"},
    {65, DELIVER_BOUNCE, "5.6.0", "data format error"},
    {66, DELIVER_BOUNCE, "5.3.0", "cannot open input"},
    {67, DELIVER_BOUNCE, "5.1.1", "user unknown"},
    {68, DELIVER_BOUNCE, "5.1.2", "host name unknown"},
    {69, DELIVER_BOUNCE, "5.3.0", "service unavailable"},
    {70, DELIVER_BOUNCE, "5.3.0", "internal software error"},
    {71, DELIVER_DEFER, "4.3.0", "system resource problem"},
    {72, DELIVER_BOUNCE, "5.3.0", "critical OS file missing"},
    {73, DELIVER_BOUNCE, "5.2.0", "can't create user output file"},
    {74, DELIVER_BOUNCE, "5.3.0", "input/output error"},
    {75, DELIVER_DEFER, "4.3.0", "temporary failure"},
    {76, DELIVER_BOUNCE, "5.5.0", "remote error in protocol"},
    {77, DELIVER_BOUNCE, "5.7.0", "permission denied"},
    {78, DELIVER_BOUNCE, "5.3.5", "local configuration error"},
};

static void
exit_result(int code, const char *output, struct deliver_result *res)
{
	if (code == 0) {
		deliver_result_set(res, DELIVER_OK, "2.0.0",
				   "delivered via command");
		return;
	}
	const struct sysexit *e = NULL;
	for (size_t i = 0; i < SMALT_NELEM(sysexits); i++)
		if (sysexits[i].code == code)
			e = &sysexits[i];
	enum deliver_status st = e != NULL ? e->status : DELIVER_BOUNCE;
	const char *dsn = e != NULL ? e->dsn : "5.3.0";
	if (*output != '\0')
		deliver_result_set(res, st, dsn,
				   "command exited with status %d: %s", code,
				   output);
	else if (e != NULL)
		deliver_result_set(res, st, dsn,
				   "command exited with status %d (%s)", code,
				   e->text);
	else
		deliver_result_set(res, st, dsn,
				   "command exited with status %d", code);
}

/* Resource shortages pass; a missing or unrunnable program does not. */
static int
exec_error_is_soft(int err)
{
	return err == ENOMEM || err == EAGAIN || err == EMFILE ||
	       err == ENFILE || err == ETXTBSY || err == EIO;
}

static void
report_result(const struct child_report *rep, const char *path,
	      struct deliver_result *res)
{
	if (rep->stage == STAGE_SETUP)
		deliver_result_set(res, DELIVER_DEFER, "4.3.0",
				   "cannot set up the command %s: %s", path,
				   strerror(rep->err));
	else if (rep->err == ENOENT || rep->err == ENOTDIR)
		deliver_result_set(res, DELIVER_BOUNCE, "5.3.0",
				   "command not found: %s", path);
	else
		deliver_result_set(
		    res,
		    exec_error_is_soft(rep->err) ? DELIVER_DEFER
						 : DELIVER_BOUNCE,
		    exec_error_is_soft(rep->err) ? "4.3.0" : "5.3.0",
		    "cannot execute command %s: %s", path, strerror(rep->err));
}

static void
outcome(const struct run *r, const struct launch *l, int have_report,
	const struct child_report *rep, unsigned timeout,
	struct deliver_result *res)
{
	char output[PIPE_REASON_MAX + 4];
	sanitise(r->out.keep, r->out.len, output, PIPE_REASON_MAX);
	if (r->feed.err != 0)
		deliver_result_set(res, DELIVER_DEFER, "4.3.0",
				   "cannot read the message file: %s",
				   strerror(r->feed.err));
	else if (r->timed_out)
		deliver_result_set(res, DELIVER_DEFER, "4.3.0",
				   "command timed out after %u s", timeout);
	else if (have_report)
		report_result(rep, l->path, res);
	else if (WIFSIGNALED(r->status))
		deliver_result_set(res, DELIVER_DEFER, "4.3.0",
				   "command killed by signal %d%s%s",
				   WTERMSIG(r->status),
				   *output != '\0' ? ": " : "", output);
	else if (WIFEXITED(r->status))
		exit_result(WEXITSTATUS(r->status), output, res);
	else
		deliver_result_set(res, DELIVER_DEFER, "4.3.0",
				   "cannot wait for the command");
}

/* --- pipe_deliver ------------------------------------------------------- */

static int
check_request(const struct pipe_request *req, struct deliver_result *res)
{
	if ((req->argv == NULL) == (req->shell_command == NULL) ||
	    (req->argv != NULL && req->argv[0] == NULL)) {
		deliver_result_set(res, DELIVER_DEFER, "4.3.0",
				   "internal error: no command, or two");
		return -1;
	}
	if (req->argv != NULL && req->argv[0][0] != '/') {
		deliver_result_set(res, DELIVER_DEFER, "4.3.0",
				   "command %s is not an absolute path",
				   req->argv[0]);
		return -1;
	}
	/* SPEC §9: never as root, whatever the configuration says. */
	if (geteuid() == 0 && (req->uid == 0 || req->gid == 0)) {
		deliver_result_set(
		    res, DELIVER_DEFER, "4.3.0",
		    "refusing to run a command as root (uid %lu, gid "
		    "%lu)",
		    (unsigned long)req->uid, (unsigned long)req->gid);
		return -1;
	}
	return 0;
}

static void
close_pair(int p[2])
{
	if (p[0] >= 0)
		close(p[0]);
	if (p[1] >= 0)
		close(p[1]);
}

/* The three pipes, close-on-exec so that no other child of the daemon
 * inherits them: in (stdin), out (stdout+stderr), report. */
static int
make_pipes(int in[2], int out[2], int rep[2])
{
	in[0] = in[1] = out[0] = out[1] = rep[0] = rep[1] = -1;
	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 ||
	    pipe2(rep, O_CLOEXEC) < 0) {
		int err = errno;
		close_pair(in);
		close_pair(out);
		close_pair(rep);
		errno = err;
		return -1;
	}
	fcntl(in[1], F_SETFL, O_NONBLOCK);
	fcntl(out[0], F_SETFL, O_NONBLOCK);
	return 0;
}

/* Whatever the child reported before it could exec; 1 when it did. */
static int
read_report(int fd, struct child_report *rep)
{
	ssize_t n;
	while ((n = read(fd, rep, sizeof(*rep))) < 0 && errno == EINTR)
		;
	return n == (ssize_t)sizeof(*rep);
}

void
pipe_deliver(const struct pipe_request *req, struct deliver_result *res)
{
	if (check_request(req, res) < 0)
		return;
	int in[2], out[2], rep[2];
	if (make_pipes(in, out, rep) < 0) {
		deliver_result_set(res, DELIVER_DEFER, "4.3.0",
				   "cannot make a pipe for the command: %s",
				   strerror(errno));
		return;
	}
	struct launch l;
	launch_init(&l, req);
	l.in_fd = in[0];
	l.out_fd = out[1];
	l.report_fd = rep[1];
	pid_t pid = fork();
	if (pid == 0)
		child_run(&l);
	int fork_err = errno;
	close(in[0]);
	close(out[1]);
	close(rep[1]);
	if (pid < 0) {
		close(in[1]);
		close(out[0]);
		close(rep[0]);
		launch_free(&l);
		deliver_result_set(res, DELIVER_DEFER, "4.3.0",
				   "cannot start the command: %s",
				   strerror(fork_err));
		return;
	}
	struct run r = {.pid = pid, .pidfd = pidfd_for(pid), .deadline = -1};
	if (req->timeout > 0)
		r.deadline = mono_ms() + (long long)req->timeout * 1000;
	feed_init(&r.feed, in[1], req->msg_fd, req->headers);
	r.out.fd = out[0];

	struct sigaction ign = {.sa_handler = SIG_IGN}, old;
	sigemptyset(&ign.sa_mask);
	sigaction(SIGPIPE, &ign, &old);
	run_loop(&r);
	sigaction(SIGPIPE, &old, NULL);

	struct child_report report;
	int have_report = read_report(rep[0], &report);
	outcome(&r, &l, have_report, &report, req->timeout, res);
	close(rep[0]);
	if (r.out.fd >= 0)
		close(r.out.fd);
	if (r.pidfd >= 0)
		close(r.pidfd);
	feed_free(&r.feed);
	launch_free(&l);
}
