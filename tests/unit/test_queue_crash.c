/* Crash test: a writer process commits, moves and removes messages and is
 * SIGKILLed at a random moment, 1,000 times. After each kill the start-up
 * recovery runs, and then:
 *   - every message whose commit returned is there, byte for byte;
 *   - nothing whose commit had not begun is there;
 *   - a commit, move or remove in flight at the kill either happened
 *     whole or not at all;
 *   - recovery quarantined nothing (a crash never makes corrupt files),
 *     and tmp/ and orphaned message files are gone.
 * The writer reports "B op id" before and "E op id" after each operation
 * through a pipe, which keeps what it wrote after it dies. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "queue/queue.h"
#include "tests/lib/testutil.h"
#include "tests/unit/check.h"

#define MAX_IDS 4096

static uint64_t
rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Message content is a function of (seed, length) written in its first
 * line, so the checker can rebuild what must be there. */
static char *
make_body(uint64_t seed, size_t len, size_t *outlen)
{
	char head[64];
	int h = snprintf(head, sizeof(head), "X-Seed: %llu %zu\r\n",
			 (unsigned long long)seed, len);
	char *p = xmalloc((size_t)h + len);
	memcpy(p, head, (size_t)h);
	uint64_t s = seed | 1;
	for (size_t i = 0; i < len; i++)
		p[h + i] = (char)('a' + rnd(&s) % 26);
	*outlen = (size_t)h + len;
	return p;
}

static void
report(int fd, char kind, char op, const char *id)
{
	char line[40];
	int n = snprintf(line, sizeof(line), "%c %c %s\n", kind, op, id);
	write_all(fd, line, (size_t)n);
}

/* The writer: never returns; killed by the parent. */
static void
writer(const char *spool, int out, uint64_t seed)
{
	char err[256];
	struct queue *q =
	    queue_open(spool, (uid_t)-1, (gid_t)-1, err, sizeof(err));
	if (q == NULL)
		_exit(3);
	char live[64][QUEUE_ID_LEN + 1];
	int nlive = 0;
	for (;;) {
		uint64_t r = rnd(&seed);
		if (nlive > 0 && r % 5 == 0) {
			/* move one to deferred with new recipient state */
			int k = (int)(rnd(&seed) % (uint64_t)nlive);
			struct envelope env;
			const char *why;
			report(out, 'B', 'D', live[k]);
			if (queue_env_read(q, QDIR_INCOMING, live[k], &env,
					   &why) != 0)
				_exit(4);
			env.attempts = 1;
			env.rcpt[0].state = RCPT_DEFERRED;
			envelope_set(&env.rcpt[0].reason, "moved");
			if (queue_env_write(q, QDIR_INCOMING, QDIR_DEFERRED,
					    &env) != 0)
				_exit(5);
			envelope_free(&env);
			report(out, 'E', 'D', live[k]);
			memcpy(live[k], live[--nlive], sizeof(live[k]));
			continue;
		}
		if (nlive > 0 && r % 7 == 0) {
			int k = (int)(rnd(&seed) % (uint64_t)nlive);
			report(out, 'B', 'R', live[k]);
			if (queue_remove(q, QDIR_INCOMING, live[k]) != 0)
				_exit(6);
			report(out, 'E', 'R', live[k]);
			memcpy(live[k], live[--nlive], sizeof(live[k]));
			continue;
		}
		struct queue_msg *m = queue_msg_create(q);
		if (m == NULL)
			_exit(7);
		char id[QUEUE_ID_LEN + 1];
		memcpy(id, queue_msg_id(m), sizeof(id));
		report(out, 'B', 'C', id);
		uint64_t bseed = rnd(&seed);
		size_t len, blen = (size_t)(rnd(&seed) % 300000);
		char *body = make_body(bseed, blen, &len);
		/* in pieces, as a session would stream it */
		for (size_t off = 0; off < len;) {
			size_t piece = 1 + (size_t)(rnd(&seed) % 9000);
			if (piece > len - off)
				piece = len - off;
			if (queue_msg_write(m, body + off, piece) != 0)
				_exit(8);
			off += piece;
		}
		free(body);
		struct envelope env;
		envelope_init(&env);
		envelope_set(&env.sender, "crash@example.com");
		envelope_add_rcpt(&env, "a@example.net");
		envelope_add_rcpt(&env, "b@example.net");
		if (queue_msg_commit(m, &env) != 0)
			_exit(9);
		envelope_free(&env);
		report(out, 'E', 'C', id);
		if (nlive < 64)
			memcpy(live[nlive++], id, sizeof(id));
	}
}

enum fate {
	F_NONE,
	F_COMMITTING,
	F_COMMITTED,
	F_MOVING,
	F_MOVED,
	F_REMOVING,
	F_REMOVED
};

struct tracked {
	char id[QUEUE_ID_LEN + 1];
	enum fate fate;
};

static struct tracked *
track(struct tracked *t, int *n, const char *id)
{
	for (int i = 0; i < *n; i++)
		if (strcmp(t[i].id, id) == 0)
			return &t[i];
	if (*n == MAX_IDS)
		return NULL;
	memcpy(t[*n].id, id, QUEUE_ID_LEN + 1);
	t[*n].fate = F_NONE;
	return &t[(*n)++];
}

static int
read_reports(int fd, struct tracked *t, int *n)
{
	static char buf[1 << 20];
	size_t len = 0;
	ssize_t r;
	while ((r = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0)
		len += (size_t)r;
	buf[len] = '\0';
	for (char *line = buf; *line;) {
		char *nl = strchr(line, '\n');
		if (nl == NULL)
			break; /* a torn last line: the op had not begun */
		*nl = '\0';
		char kind, op, id[32];
		if (sscanf(line, "%c %c %31s", &kind, &op, id) != 3)
			return -1;
		struct tracked *e = track(t, n, id);
		if (e == NULL)
			return -1;
		static const enum fate begin[] = {
		    ['C'] = F_COMMITTING, ['D'] = F_MOVING, ['R'] = F_REMOVING};
		static const enum fate end[] = {
		    ['C'] = F_COMMITTED, ['D'] = F_MOVED, ['R'] = F_REMOVED};
		e->fate = kind == 'B' ? begin[(int)op] : end[(int)op];
		line = nl + 1;
	}
	return 0;
}

static int
present(const char *spool, const char *dir, const char *id)
{
	char *p = xasprintf("%s/%s/%s", spool, dir, id);
	struct stat st;
	int rc = stat(p, &st) == 0;
	free(p);
	return rc;
}

/* The message file holds exactly what the writer made. */
static int
intact(struct queue *q, const char *id)
{
	int fd = queue_msg_open(q, id);
	if (fd < 0)
		return 0;
	char head[64] = {0};
	ssize_t r = pread(fd, head, sizeof(head) - 1, 0);
	close(fd);
	unsigned long long seed;
	size_t blen;
	if (r <= 0 || sscanf(head, "X-Seed: %llu %zu", &seed, &blen) != 2)
		return 0;
	size_t len;
	char *want = make_body(seed, blen, &len);
	char *path = xasprintf("%s/msg/%s", queue_path(q), id);
	size_t glen;
	char *got = test_read_file(path, &glen);
	free(path);
	int ok = got != NULL && glen == len && memcmp(got, want, len) == 0;
	free(want);
	free(got);
	return ok;
}

static long
count_sub(const char *spool, const char *dir)
{
	char *p = xasprintf("%s/%s", spool, dir);
	long n = test_count_dir(p);
	free(p);
	return n;
}

static int
check_one(struct queue *q, const struct tracked *e)
{
	const char *s = queue_path(q);
	int inc = present(s, "incoming", e->id);
	int def = present(s, "deferred", e->id);
	int msg = present(s, "msg", e->id);
	if (inc && def)
		return 0;
	int there = inc || def;
	if (there && !intact(q, e->id))
		return 0;
	if (!there && msg)
		return 0;
	switch (e->fate) {
	case F_COMMITTING:
		return !def;
	case F_COMMITTED:
		return inc;
	case F_MOVING:
		return there;
	case F_MOVED:
		return def;
	case F_REMOVING:
		return !def;
	case F_REMOVED:
		return !there;
	default:
		return 0;
	}
}

int
main(void)
{
	const char *env_iter = getenv("SMALT_CRASH_ITERATIONS");
	int iterations = env_iter ? atoi(env_iter) : 1000;
	uint64_t seed = (uint64_t)time(NULL) * 2654435761u | 1;
	char *base = test_mkdtemp("crash");
	static struct tracked t[MAX_IDS];
	int bad_iterations = 0;
	unsigned long committed_total = 0, inflight_total = 0;

	printf("seed %llu, %d iterations\n", (unsigned long long)seed,
	       iterations);
	for (int it = 0; it < iterations; it++) {
		char *spool = xasprintf("%s/%d", base, it);
		int fds[2];
		if (pipe(fds) != 0)
			return 2;
		uint64_t wseed = rnd(&seed);
		pid_t pid = fork();
		if (pid == 0) {
			close(fds[0]);
			writer(spool, fds[1], wseed);
		}
		close(fds[1]);
		/* From before the spool exists to dozens of commits in. */
		struct timespec ts = {0, (long)(rnd(&seed) % 25000000)};
		nanosleep(&ts, NULL);
		kill(pid, SIGKILL);
		int status;
		waitpid(pid, &status, 0);
		if (!WIFSIGNALED(status)) {
			fprintf(stderr, "writer exited %d\n",
				WEXITSTATUS(status));
			return 2;
		}
		int n = 0;
		if (read_reports(fds[0], t, &n) != 0)
			return 2;
		close(fds[0]);

		char err[256];
		struct queue *q =
		    queue_open(spool, (uid_t)-1, (gid_t)-1, err, sizeof(err));
		CHECK(q != NULL);
		if (q == NULL)
			return 1;
		struct queue_recover_stats st;
		CHECK(queue_recover(q, &st) == 0);
		int ok = st.quarantined == 0;
		unsigned long want_present = 0;
		for (int i = 0; i < n; i++) {
			if (!check_one(q, &t[i])) {
				fprintf(stderr, "iteration %d: %s fate %d\n",
					it, t[i].id, t[i].fate);
				ok = 0;
			}
			if (t[i].fate == F_COMMITTED || t[i].fate == F_MOVED)
				committed_total++;
			if (t[i].fate == F_COMMITTING ||
			    t[i].fate == F_MOVING || t[i].fate == F_REMOVING)
				inflight_total++;
			want_present += present(spool, "incoming", t[i].id) +
					present(spool, "deferred", t[i].id);
		}
		/* Nothing is there that the writer never began. */
		long ninc = count_sub(spool, "incoming");
		long ndef = count_sub(spool, "deferred");
		long nmsg = count_sub(spool, "msg");
		long ntmp = count_sub(spool, "tmp");
		if ((unsigned long)(ninc + ndef) != want_present ||
		    nmsg != ninc + ndef || ntmp != 0) {
			fprintf(stderr,
				"iteration %d: %ld+%ld envelopes, %ld "
				"messages, %ld tmp; %lu expected\n",
				it, ninc, ndef, nmsg, ntmp, want_present);
			ok = 0;
		}
		if (!ok) {
			bad_iterations++;
			fprintf(stderr, "kept %s for inspection\n", spool);
		} else {
			test_rm_rf(spool);
		}
		CHECK(ok);
		queue_close(q);
		free(spool);
	}
	printf("%d iterations, %lu completed operations checked, %lu in "
	       "flight at the kill, %d bad\n",
	       iterations, committed_total, inflight_total, bad_iterations);
	/* The test must have killed writers mid-way, not only between ops. */
	CHECK(committed_total > (unsigned long)iterations);
	CHECK(inflight_total > (unsigned long)iterations / 2);
	if (bad_iterations == 0)
		test_rm_rf(base);
	free(base);
	return check_done();
}
