/* The pipe channel's executor: the bytes a command receives on stdin
 * (headers, CRLF -> LF across chunk boundaries), argv without a shell,
 * the /bin/sh -c form, the exit status map, the timeout that kills the
 * whole process group, a command that never reads its input, capped
 * output in the reason, exec failures, the environment, descriptors,
 * signal state, and, as root, the uid/gid it runs with and the refusal
 * of root. Commands are small shell scripts written into a temporary
 * folder. */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/strbuf.h"
#include "common/util.h"
#include "deliver/pipe.h"
#include "tests/lib/testutil.h"
#include "tests/unit/check.h"

#define HEADERS                                                                \
	"Return-Path: <alice@example.com>\nDelivered-To: bob@example.org\n"
#define SHORT_MSG "Subject: t\r\n\r\nbody\r\n"

static char *dir;
static int as_root;
static uid_t run_uid; /* nobody when root, else ourselves */
static gid_t run_gid;
static const char *run_home; /* where the command should start */

/* --- helpers ---------------------------------------------------------- */

static char *
tpath(const char *name)
{
	return xasprintf("%s/%s", dir, name);
}

/* An executable shell script; malloc'd path. */
static char *
script(const char *name, const char *body)
{
	char *path = tpath(name);
	char *text = xasprintf("#!/bin/sh\n%s", body);
	if (test_write_file(path, text, strlen(text)) < 0 ||
	    chmod(path, 0755) < 0) {
		perror(path);
		exit(2);
	}
	free(text);
	return path;
}

/* A queue-style message file holding len octets; an O_RDONLY fd. */
static int
msg_file(const char *text, size_t len)
{
	static int n;
	char name[32];
	snprintf(name, sizeof(name), "msg%d", ++n);
	char *path = tpath(name);
	if (test_write_file(path, text, len) < 0) {
		perror(path);
		exit(2);
	}
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	free(path);
	return fd;
}

static struct pipe_request
request(int msg_fd)
{
	struct pipe_request req = {
	    .msg_fd = msg_fd,
	    .headers = HEADERS,
	    .uid = run_uid,
	    .gid = run_gid,
	    .timeout = 30,
	    .sender = "alice@example.com",
	    .recipient = "bob@example.org",
	};
	return req;
}

/* Runs argv[0] ARG... on a short message. */
static void
run_script(const char *path, const char *arg, struct deliver_result *res)
{
	int fd = msg_file(SHORT_MSG, strlen(SHORT_MSG));
	char *argv[] = {(char *)path, (char *)arg, NULL};
	struct pipe_request req = request(fd);
	req.argv = argv;
	memset(res, 0, sizeof(*res));
	pipe_deliver(&req, res);
	close(fd);
}

static void
run_shell(const char *command, struct deliver_result *res)
{
	int fd = msg_file(SHORT_MSG, strlen(SHORT_MSG));
	struct pipe_request req = request(fd);
	req.shell_command = command;
	memset(res, 0, sizeof(*res));
	pipe_deliver(&req, res);
	close(fd);
}

static char *
read_out(const char *name)
{
	char *path = tpath(name);
	char *s = test_read_file(path, NULL);
	free(path);
	return s;
}

static long long
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The whole-buffer model of what the command must read. */
static char *
lf_model(const char *headers, const char *msg, size_t len, size_t *outlen)
{
	struct strbuf b = {0};
	strbuf_add(&b, "", 0);
	if (headers != NULL && *headers != '\0') {
		strbuf_adds(&b, headers);
		if (headers[strlen(headers) - 1] != '\n')
			strbuf_add(&b, "\n", 1);
	}
	for (size_t i = 0; i < len; i++) {
		if (msg[i] == '\r' && i + 1 < len && msg[i + 1] == '\n')
			continue;
		strbuf_add(&b, msg + i, 1);
	}
	*outlen = b.len;
	return b.s;
}

/* No process of the group is left: its members may take a moment to
 * be reaped by whoever inherits them. */
static int
group_gone(pid_t pgid)
{
	for (int i = 0; i < 100; i++) {
		if (kill(-pgid, 0) < 0 && errno == ESRCH)
			return 1;
		usleep(20000);
	}
	return 0;
}

/* --- stdin ------------------------------------------------------------- */

static void
check_stdin_bytes(const char *headers, const char *msg, size_t len)
{
	char *cat = script("cat.sh", "cat > \"$1\"\n");
	char *out = tpath("stdin.out");
	unlink(out);
	int fd = msg_file(msg, len);
	char *argv[] = {cat, out, NULL};
	struct pipe_request req = request(fd);
	req.argv = argv;
	req.headers = headers;
	struct deliver_result res;
	pipe_deliver(&req, &res);
	CHECK(res.status == DELIVER_OK);
	CHECK_STR(res.dsn, "2.0.0");
	CHECK_STR(res.reason, "delivered via command");
	size_t wantlen, gotlen = 0;
	char *want = lf_model(headers, msg, len, &wantlen);
	char *got = test_read_file(out, &gotlen);
	CHECK(got != NULL && gotlen == wantlen &&
	      memcmp(got, want, wantlen) == 0);
	if (got != NULL && (gotlen != wantlen || memcmp(got, want, wantlen)))
		fprintf(stderr, "  got %zu octets, want %zu\n", gotlen,
			wantlen);
	free(want);
	free(got);
	close(fd);
	free(out);
	free(cat);
}

static void
test_stdin(void)
{
	const char *small = "Subject: hi\r\n\r\nline 1\r\nlone\rcr\r\n"
			    "no final newline";
	check_stdin_bytes(HEADERS, small, strlen(small));
	check_stdin_bytes(NULL, small, strlen(small));
	check_stdin_bytes("X-Unterminated: 1", small, strlen(small));
	check_stdin_bytes(HEADERS, "", 0);
	check_stdin_bytes(HEADERS, "a\r", 2); /* a lone CR at the very end */

	/* 1 MiB with a CRLF split across each 64 KiB read and a CR at
	 * the end of a chunk that is not followed by LF. */
	size_t len = 1024 * 1024;
	char *big = xmalloc(len);
	for (size_t i = 0; i < len; i++)
		big[i] = (char)('a' + i % 26);
	for (size_t i = 70; i + 1 < len; i += 71) {
		big[i] = '\r';
		big[i + 1] = '\n';
	}
	big[65535] = '\r';
	big[65536] = '\n';
	big[131071] = '\r';
	big[131072] = 'x';
	check_stdin_bytes(HEADERS, big, len);
	free(big);
}

/* --- argv and shell forms ---------------------------------------------- */

static void
test_argv_no_shell(void)
{
	char *s = script("args.sh", "printf '%s|%s|%d\\n' \"$1\" \"$2\" $# "
				    "> \"$3\"\n");
	char *out = tpath("args.out");
	int fd = msg_file("x\r\n", 3);
	char *argv[] = {s, "a b; touch /tmp/pwned", "$HOME `id` *", out, NULL};
	struct pipe_request req = request(fd);
	req.argv = argv;
	struct deliver_result res;
	pipe_deliver(&req, &res);
	CHECK(res.status == DELIVER_OK);
	char *got = read_out("args.out");
	CHECK_STR(got, "a b; touch /tmp/pwned|$HOME `id` *|3\n");
	free(got);
	close(fd);
	free(out);
	free(s);
}

static void
test_shell_command(void)
{
	char *out = tpath("shell.out");
	char *cmd = xasprintf("tr a-z A-Z | grep -v '^RETURN-PATH' > %s", out);
	struct deliver_result res;
	run_shell(cmd, &res);
	CHECK(res.status == DELIVER_OK);
	char *got = read_out("shell.out");
	CHECK_STR(got, "DELIVERED-TO: BOB@EXAMPLE.ORG\nSUBJECT: T\n\nBODY\n");
	free(got);
	free(cmd);

	/* A command sh cannot find: sh's own message, a bounce. */
	run_shell("no-such-command-here", &res);
	CHECK(res.status == DELIVER_BOUNCE);
	CHECK_STR(res.dsn, "5.3.0");
	CHECK_CONTAINS(res.reason, "status 127");
	CHECK_CONTAINS(res.reason, "not found");
	free(out);
}

/* --- exit statuses ----------------------------------------------------- */

static void
test_exit_codes(void)
{
	struct deliver_result res;
	char *s = script("ok.sh", "cat > /dev/null\nexit 0\n");
	run_script(s, NULL, &res);
	CHECK(res.status == DELIVER_OK);
	CHECK_STR(res.dsn, "2.0.0");
	free(s);

	s = script("tempfail.sh",
		   "cat > /dev/null\n"
		   "echo 'mailbox busy, try later' >&2\nexit 75\n");
	run_script(s, NULL, &res);
	CHECK(res.status == DELIVER_DEFER);
	CHECK_STR(res.dsn, "4.3.0");
	CHECK_STR(res.reason,
		  "command exited with status 75: mailbox busy, try later");
	free(s);

	s = script("fail.sh", "echo 'no such list' >&2\nexit 1\n");
	run_script(s, NULL, &res);
	CHECK(res.status == DELIVER_BOUNCE);
	CHECK_STR(res.dsn, "5.3.0");
	CHECK_STR(res.reason, "command exited with status 1: no such list");
	free(s);

	s = script("nouser.sh", "exit 67\n");
	run_script(s, NULL, &res);
	CHECK(res.status == DELIVER_BOUNCE);
	CHECK_STR(res.dsn, "5.1.1");
	CHECK_STR(res.reason, "command exited with status 67 (user unknown)");
	free(s);

	s = script("oserr.sh", "exit 71\n");
	run_script(s, NULL, &res);
	CHECK(res.status == DELIVER_DEFER);
	CHECK_STR(res.dsn, "4.3.0");
	free(s);

	s = script("config.sh", "exit 78\n");
	run_script(s, NULL, &res);
	CHECK(res.status == DELIVER_BOUNCE);
	CHECK_STR(res.dsn, "5.3.5");
	free(s);

	s = script("silent.sh", "exit 3\n");
	run_script(s, NULL, &res);
	CHECK(res.status == DELIVER_BOUNCE);
	CHECK_STR(res.reason, "command exited with status 3");
	free(s);

	/* Control characters and line breaks become single spaces. */
	s = script("ctl.sh",
		   "printf '  first\\r\\n\\tsecond\\001 \\303\\251\\n' "
		   ">&2\nexit 1\n");
	run_script(s, NULL, &res);
	CHECK_STR(res.reason, "command exited with status 1: first second ??");
	free(s);
}

static void
test_signal(void)
{
	struct deliver_result res;
	char *s = script("sig.sh", "echo dying\nkill -TERM $$\nsleep 5\n");
	run_script(s, NULL, &res);
	CHECK(res.status == DELIVER_DEFER);
	CHECK_STR(res.dsn, "4.3.0");
	CHECK_STR(res.reason, "command killed by signal 15: dying");
	free(s);
}

/* --- timeout and process groups ---------------------------------------- */

static pid_t
read_pid(const char *name)
{
	char *s = read_out(name);
	pid_t pid = s != NULL ? (pid_t)atol(s) : 0;
	free(s);
	return pid;
}

static void
test_timeout(void)
{
	char *pidf = tpath("timeout.pid");
	unlink(pidf);
	/* sh forks sleep: the group, not just the child, must die. */
	char *s = script("slow.sh", "echo $$ > \"$1\"\nsleep 10\necho done\n");
	int fd = msg_file("x\r\n", 3);
	char *argv[] = {s, pidf, NULL};
	struct pipe_request req = request(fd);
	req.argv = argv;
	req.timeout = 1;
	struct deliver_result res;
	long long t0 = now_ms();
	pipe_deliver(&req, &res);
	long long took = now_ms() - t0;
	CHECK(res.status == DELIVER_DEFER);
	CHECK_STR(res.dsn, "4.3.0");
	CHECK_STR(res.reason, "command timed out after 1 s");
	CHECK(took >= 900 && took < 2500);
	pid_t pgid = read_pid("timeout.pid");
	CHECK(pgid > 1);
	if (pgid > 1)
		CHECK(group_gone(pgid));
	close(fd);
	free(s);
	free(pidf);
}

/* The child exits while a background process it left still holds the
 * output pipe: we must not wait for that pipe's end of file. */
static void
test_background_keeps_output(void)
{
	char *pidf = tpath("bg.pid");
	char *s = script("bg.sh", "echo $$ > \"$1\"\nsleep 5 &\nexit 0\n");
	struct deliver_result res;
	long long t0 = now_ms();
	run_script(s, pidf, &res);
	CHECK(res.status == DELIVER_OK);
	CHECK(now_ms() - t0 < 2000);
	pid_t pgid = read_pid("bg.pid");
	if (pgid > 1)
		kill(-pgid, SIGKILL);
	free(s);
	free(pidf);
}

/* --- stdin not read, big output ---------------------------------------- */

static void
test_unread_stdin(void)
{
	size_t len = 1024 * 1024;
	char *big = xmalloc(len);
	memset(big, 'm', len);
	for (size_t i = 76; i + 1 < len; i += 78) {
		big[i] = '\r';
		big[i + 1] = '\n';
	}
	int fd = msg_file(big, len);
	char *s = script("noread.sh", "exit 0\n");
	char *argv[] = {s, NULL};
	struct pipe_request req = request(fd);
	req.argv = argv;
	struct deliver_result res;
	pipe_deliver(&req, &res);
	CHECK(res.status == DELIVER_OK);
	free(s);

	/* Reads a little, then fails: its status still decides. */
	s = script("partial.sh", "head -c 10 > /dev/null\necho nope\nexit 1\n");
	argv[0] = s;
	pipe_deliver(&req, &res);
	CHECK(res.status == DELIVER_BOUNCE);
	CHECK_STR(res.reason, "command exited with status 1: nope");
	free(s);

	/* The caller's SIGPIPE disposition is back as it was. */
	struct sigaction sa;
	sigaction(SIGPIPE, NULL, &sa);
	CHECK(sa.sa_handler == SIG_DFL);
	close(fd);
	free(big);
}

static void
test_big_output(void)
{
	/* 100 KB of output before reading stdin: we must drain it while
	 * we write, or both sides block until the timeout. */
	char *s =
	    script("chatty.sh", "head -c 102400 /dev/zero | tr '\\0' x >&2\n"
				"cat > /dev/null\nexit 1\n");
	size_t len = 512 * 1024;
	char *big = xmalloc(len);
	memset(big, 'q', len);
	int fd = msg_file(big, len);
	char *argv[] = {s, NULL};
	struct pipe_request req = request(fd);
	req.argv = argv;
	req.timeout = 20;
	struct deliver_result res;
	long long t0 = now_ms();
	pipe_deliver(&req, &res);
	CHECK(now_ms() - t0 < 5000);
	CHECK(res.status == DELIVER_BOUNCE);
	CHECK_STR(res.dsn, "5.3.0");
	CHECK_CONTAINS(res.reason, "command exited with status 1: xxxxxxxx");
	size_t n = strlen(res.reason);
	CHECK(n < sizeof(res.reason) - 1);
	CHECK(n <=
	      strlen("command exited with status 1: ") + PIPE_REASON_MAX + 3);
	CHECK(n > 3 && strcmp(res.reason + n - 3, "...") == 0);
	close(fd);
	free(big);
	free(s);
}

/* --- exec failures and bad requests ----------------------------------- */

static void
test_exec_failures(void)
{
	struct deliver_result res;
	run_script("/nonexistent/smalt-no-such-command", NULL, &res);
	CHECK(res.status == DELIVER_BOUNCE);
	CHECK_STR(res.dsn, "5.3.0");
	CHECK_CONTAINS(res.reason, "command not found");

	char *s = tpath("notexec.sh");
	test_write_file(s, "#!/bin/sh\nexit 0\n", 17);
	chmod(s, 0644);
	run_script(s, NULL, &res);
	CHECK(res.status == DELIVER_BOUNCE);
	CHECK_CONTAINS(res.reason, "cannot execute command");
	CHECK_CONTAINS(res.reason, strerror(EACCES));
	free(s);

	run_script("relative/cmd", NULL, &res);
	CHECK(res.status == DELIVER_DEFER);
	CHECK_CONTAINS(res.reason, "absolute path");

	int fd = msg_file("x\r\n", 3);
	struct pipe_request req = request(fd);
	pipe_deliver(&req, &res); /* neither argv nor shell_command */
	CHECK(res.status == DELIVER_DEFER);
	close(fd);

	/* An unreadable message file: nothing is delivered. */
	char *out = tpath("unreadable.out");
	char *cat = script("cat2.sh", "cat > \"$1\"\n");
	char *argv[] = {cat, out, NULL};
	req = request(-1);
	req.argv = argv;
	pipe_deliver(&req, &res);
	CHECK(res.status == DELIVER_DEFER);
	CHECK_CONTAINS(res.reason, "cannot read the message file");
	free(cat);
	free(out);
}

/* --- what the command finds around it ---------------------------------- */

static void
test_environment(void)
{
	setenv("SMALT_TEST_SECRET", "leak", 1);
	char *out = tpath("env.out");
	char *s = script("env.sh", "env | sort > \"$1\"\n");
	struct deliver_result res;
	run_script(s, out, &res);
	CHECK(res.status == DELIVER_OK);
	char *got = read_out("env.out");
	CHECK_CONTAINS(got, "SENDER=alice@example.com\n");
	CHECK_CONTAINS(got, "RECIPIENT=bob@example.org\n");
	CHECK_CONTAINS(got, "PATH=/usr/bin:/bin\n");
	CHECK_CONTAINS(got, "SHELL=/bin/sh\n");
	CHECK(got != NULL && strstr(got, "SMALT_TEST_SECRET") == NULL);
	struct passwd *pw = getpwuid(run_uid);
	if (pw != NULL) {
		char *want = xasprintf("USER=%s\n", pw->pw_name);
		CHECK_CONTAINS(got, want);
		free(want);
		want = xasprintf("LOGNAME=%s\n", pw->pw_name);
		CHECK_CONTAINS(got, want);
		free(want);
		want = xasprintf("HOME=%s\n", pw->pw_dir);
		CHECK_CONTAINS(got, want);
		free(want);
	}
	free(got);

	/* The null sender is an empty SENDER. */
	int fd = msg_file("x\r\n", 3);
	char *s2 = script("sender.sh", "printf '[%s]' \"$SENDER\" > \"$1\"\n");
	char *argv[] = {s2, out, NULL};
	struct pipe_request req = request(fd);
	req.argv = argv;
	req.sender = "";
	pipe_deliver(&req, &res);
	got = read_out("env.out");
	CHECK_STR(got, "[]");
	free(got);
	close(fd);
	free(s2);
	free(s);
	free(out);
	unsetenv("SMALT_TEST_SECRET");
}

static void
test_cwd_fds_signals(void)
{
	char *out = tpath("cwd.out");
	char *s = script("cwd.sh", "pwd > \"$1\"\n");
	struct deliver_result res;
	run_script(s, out, &res);
	char *got = read_out("cwd.out");
	char *want = xasprintf("%s\n", run_home);
	CHECK_STR(got, want);
	free(want);
	free(got);
	free(s);

	/* No descriptor beyond 2 reaches the command, also one the caller
	 * left without close-on-exec. */
	int leak = open("/dev/null", O_RDONLY);
	s = script("fds.sh",
		   "for f in 3 4 5 6 7 8 9; do\n"
		   "  [ -e /proc/$$/fd/$f ] && echo $f\ndone > \"$1\"\n"
		   "exit 0\n");
	run_script(s, out, &res);
	got = read_out("cwd.out");
	CHECK_STR(got, "");
	free(got);
	free(s);
	close(leak);

	/* Ignored and blocked signals of the caller are not inherited. */
	struct sigaction ign = {.sa_handler = SIG_IGN}, old;
	sigemptyset(&ign.sa_mask);
	sigaction(SIGINT, &ign, &old);
	sigset_t block, oldmask;
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigprocmask(SIG_BLOCK, &block, &oldmask);
	s = script("sigint.sh", "kill -INT $$\nsleep 5\n");
	run_script(s, NULL, &res);
	CHECK(res.status == DELIVER_DEFER);
	CHECK_STR(res.reason, "command killed by signal 2");
	free(s);
	s = script("sigterm.sh", "kill -TERM $$\nsleep 5\n");
	run_script(s, NULL, &res);
	CHECK_STR(res.reason, "command killed by signal 15");
	free(s);
	sigprocmask(SIG_SETMASK, &oldmask, NULL);
	sigaction(SIGINT, &old, NULL);
	free(out);
}

/* --- credentials --------------------------------------------------------- */

static void
test_credentials(void)
{
	char *out = tpath("id.out");
	char *s = script("id.sh", "{ id -u; id -g; id -G; } > \"$1\"\n");
	struct deliver_result res;
	run_script(s, out, &res);
	CHECK(res.status == DELIVER_OK);
	char *got = read_out("id.out");
	char *want = xasprintf("%lu\n%lu\n%lu\n", (unsigned long)run_uid,
			       (unsigned long)run_gid, (unsigned long)run_gid);
	if (as_root)
		CHECK_STR(got, want);
	else
		CHECK(got != NULL);
	free(want);
	free(got);
	if (!as_root) {
		printf("not root: uid/gid changes not tested\n");
		free(s);
		free(out);
		return;
	}

	/* Never as root, whatever the caller asks. */
	unlink(out);
	int fd = msg_file("x\r\n", 3);
	char *argv[] = {s, out, NULL};
	struct pipe_request req = request(fd);
	req.argv = argv;
	req.uid = 0;
	pipe_deliver(&req, &res);
	CHECK(res.status == DELIVER_DEFER);
	CHECK_STR(res.dsn, "4.3.0");
	CHECK_CONTAINS(res.reason, "refusing to run a command as root");
	CHECK(access(out, F_OK) < 0);
	req.uid = run_uid;
	req.gid = 0;
	pipe_deliver(&req, &res);
	CHECK(res.status == DELIVER_DEFER);
	CHECK(access(out, F_OK) < 0);
	close(fd);
	free(s);
	free(out);
}

int
main(void)
{
	setenv("TZ", "UTC", 1);
	dir = test_mkdtemp("pipe");
	as_root = geteuid() == 0;
	run_uid = getuid();
	run_gid = getgid();
	if (as_root) {
		struct passwd *pw = getpwnam("nobody");
		run_uid = pw != NULL ? pw->pw_uid : 65534;
		run_gid = pw != NULL ? pw->pw_gid : 65534;
		chmod(dir, 0777); /* the scripts, run as nobody, write here */
	}
	struct passwd *pw = getpwuid(run_uid);
	struct stat st;
	run_home = pw != NULL && stat(pw->pw_dir, &st) == 0 &&
			   (!as_root || (st.st_mode & S_IXOTH))
		       ? xstrdup(pw->pw_dir)
		       : "/";

	test_stdin();
	test_argv_no_shell();
	test_shell_command();
	test_exit_codes();
	test_signal();
	test_timeout();
	test_background_keeps_output();
	test_unread_stdin();
	test_big_output();
	test_exec_failures();
	test_environment();
	test_cwd_fds_signals();
	test_credentials();

	if (check_failed == 0)
		test_rm_rf(dir);
	free(dir);
	return check_done();
}
