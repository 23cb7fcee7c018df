/* The queue's state transitions, envelope text form, and the start-up
 * recovery of everything a crash or a stranger can leave in the spool. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/util.h"
#include "queue/queue.h"
#include "tests/lib/testutil.h"
#include "tests/unit/check.h"

static char *spool;

static char *
spath(const char *dir, const char *name)
{
	static char buf[4][512];
	static int k;
	k = (k + 1) % 4;
	snprintf(buf[k], sizeof(buf[k]), "%s/%s/%s", spool, dir, name);
	return buf[k];
}

static int
exists(const char *dir, const char *name)
{
	struct stat st;
	return lstat(spath(dir, name), &st) == 0;
}

static struct queue *
open_queue(void)
{
	char err[256];
	struct queue *q =
	    queue_open(spool, (uid_t)-1, (gid_t)-1, err, sizeof(err));
	if (q == NULL)
		fprintf(stderr, "queue_open: %s\n", err);
	return q;
}

/* Commits a message with body text and n recipients; returns its id. */
static char *
commit_msg(struct queue *q, const char *body, int n)
{
	struct queue_msg *m = queue_msg_create(q);
	CHECK(m != NULL);
	if (m == NULL)
		return NULL;
	CHECK(queue_msg_write(m, body, strlen(body)) == 0);
	struct envelope env;
	envelope_init(&env);
	envelope_set(&env.sender, "alice@example.com");
	for (int i = 0; i < n; i++) {
		char rcpt[64];
		snprintf(rcpt, sizeof(rcpt), "r%d@example.net", i);
		envelope_add_rcpt(&env, rcpt);
	}
	char *id = xstrdup(queue_msg_id(m));
	CHECK(queue_msg_commit(m, &env) == 0);
	CHECK_STR(env.id, id);
	CHECK(env.size == strlen(body));
	envelope_free(&env);
	return id;
}

static void
test_layout(void)
{
	struct queue *q = open_queue();
	CHECK(q != NULL);
	const char *dirs[] = {"tmp",  "msg",	 "incoming", "deferred",
			      "hold", "corrupt", "maildrop"};
	for (size_t i = 0; i < SMALT_NELEM(dirs); i++) {
		struct stat st;
		char p[512];
		snprintf(p, sizeof(p), "%s/%s", spool, dirs[i]);
		CHECK(stat(p, &st) == 0 && S_ISDIR(st.st_mode));
		if (strcmp(dirs[i], "maildrop") == 0)
			CHECK((st.st_mode & 07777) == 01730);
		else
			CHECK((st.st_mode & 07777) == 0700);
	}
	queue_close(q);
	/* Opening again over an existing spool is fine. */
	q = open_queue();
	CHECK(q != NULL);
	queue_close(q);
}

static void
test_ids(void)
{
	char prev[QUEUE_ID_LEN + 1] = "", id[QUEUE_ID_LEN + 1];
	for (int i = 0; i < 10000; i++) {
		queue_id_new(id);
		CHECK(queue_id_valid(id));
		if (strcmp(prev, id) >= 0) {
			CHECK(!"ids must increase");
			break;
		}
		memcpy(prev, id, sizeof(id));
	}
	CHECK(!queue_id_valid(""));
	CHECK(!queue_id_valid("0123456789abcdef"));
	CHECK(!queue_id_valid("0123456789ABCDEF0"));
	CHECK(!queue_id_valid("0123456789ABCDE"));
	CHECK(!queue_id_valid("../../etc/passwd"));
	CHECK(queue_id_valid("0123456789ABCDEF"));
}

static void
test_envelope_roundtrip(void)
{
	struct envelope env, back;
	const char *why = NULL;
	envelope_init(&env);
	memcpy(env.id, "00000000000000AB", QUEUE_ID_LEN + 1);
	env.arrival = 1700000000;
	env.size = 12345;
	env.attempts = 3;
	env.warned = 1;
	env.uid = 1000;
	envelope_set(&env.sender, "");
	envelope_set(&env.helo, "evil\thelo\r\nrcpt\tx");
	envelope_set(&env.client_addr, "192.0.2.1");
	struct env_rcpt *r = envelope_add_rcpt(&env, "\"a b\"@example.com");
	r->state = RCPT_DEFERRED;
	r->next_attempt = 1700000300;
	strcpy(r->dsn, "4.4.1");
	envelope_set(&r->reason, "connect to mx[192.0.2.2]: refused\n");
	envelope_add_rcpt(&env, "bob@example.com")->state = RCPT_DELIVERED;

	size_t len;
	char *text = envelope_format(&env, &len);
	CHECK(envelope_parse(text, len, &back, &why) == 0);
	CHECK_STR(back.id, env.id);
	CHECK(back.arrival == env.arrival && back.size == env.size);
	CHECK(back.attempts == 3 && back.warned == 1 && back.uid == 1000);
	CHECK_STR(back.sender, "");
	/* Control characters from a peer cannot add fields or records. */
	CHECK_STR(back.helo, "evil?helo??rcpt?x");
	CHECK(back.nrcpt == 2);
	CHECK_STR(back.rcpt[0].address, "\"a b\"@example.com");
	CHECK(back.rcpt[0].state == RCPT_DEFERRED);
	CHECK(back.rcpt[0].next_attempt == 1700000300);
	CHECK_STR(back.rcpt[0].dsn, "4.4.1");
	CHECK_STR(back.rcpt[0].reason, "connect to mx[192.0.2.2]: refused?");
	CHECK(back.rcpt[1].state == RCPT_DELIVERED);
	CHECK(!envelope_done(&back));
	back.rcpt[0].state = RCPT_BOUNCED;
	CHECK(envelope_done(&back));
	envelope_free(&back);

	/* Every truncation of a valid envelope is refused: a half-written
	 * file is never taken as valid. */
	int all_refused = 1;
	for (size_t cut = 0; cut < len; cut++) {
		if (envelope_parse(text, cut, &back, &why) == 0) {
			all_refused = 0;
			fprintf(stderr, "truncated at %zu accepted\n", cut);
		}
		envelope_free(&back);
	}
	CHECK(all_refused);
	free(text);
	envelope_free(&env);
}

static void
test_envelope_malformed(void)
{
	const char *head = "smalt-envelope\t1\nid\t00000000000000AB\n"
			   "arrival\t1\nsize\t2\nsender\ta@b\nattempts\t0\n"
			   "warned\t0\nuid\t-1\nclient\t\t\t\t\t\n";
	const char *bad[] = {
	    "",
	    "smalt-envelope\t2\n",
	    "hello\n",
	    /* no recipients */
	    "%send\n",
	    /* unknown state */
	    "%srcpt\tlost\t0\t-\ta@b\t\nend\n",
	    /* bad time */
	    "%srcpt\tpending\t-5\t-\ta@b\t\nend\n",
	    "%srcpt\tpending\t99999999999999999999999\t-\ta@b\t\nend\n",
	    /* bad dsn */
	    "%srcpt\tpending\t0\tx.y\ta@b\t\nend\n",
	    /* empty address */
	    "%srcpt\tpending\t0\t-\t\t\nend\n",
	    /* missing field */
	    "%srcpt\tpending\t0\t-\ta@b\nend\n",
	    /* extra field */
	    "%srcpt\tpending\t0\t-\ta@b\tr\tx\nend\n",
	    /* trailing garbage */
	    "%srcpt\tpending\t0\t-\ta@b\t\nend\nmore\n",
	    /* no end */
	    "%srcpt\tpending\t0\t-\ta@b\t\n",
	    /* end without newline */
	    "%srcpt\tpending\t0\t-\ta@b\t\nend",
	};
	for (size_t i = 0; i < SMALT_NELEM(bad); i++) {
		char buf[1024];
		snprintf(buf, sizeof(buf), bad[i], head);
		struct envelope env;
		const char *why = NULL;
		int rc = envelope_parse(buf, strlen(buf), &env, &why);
		if (rc == 0)
			fprintf(stderr, "accepted bad envelope %zu\n", i);
		CHECK(rc == -1 && why != NULL);
		envelope_free(&env);
	}
	/* And the good one for contrast, plus a NUL inside it. */
	char buf[1024];
	snprintf(buf, sizeof(buf), "%srcpt\tpending\t0\t-\ta@b\t\nend\n", head);
	struct envelope env;
	const char *why;
	CHECK(envelope_parse(buf, strlen(buf), &env, &why) == 0);
	envelope_free(&env);
	buf[40] = '\0';
	CHECK(envelope_parse(buf, strlen(buf + 41) + 41, &env, &why) == -1);
	envelope_free(&env);
}

static int
collect(struct queue *q, enum queue_dir dir, const char *id, void *arg)
{
	(void)q;
	(void)dir;
	char *list = arg;
	strcat(list, id);
	strcat(list, " ");
	return 0;
}

static void
test_transitions(void)
{
	struct queue *q = open_queue();
	const char *why;
	char *id = commit_msg(q, "Subject: t\r\n\r\nhello\r\n", 2);
	CHECK(exists("incoming", id));
	CHECK(exists("msg", id));
	CHECK(test_count_dir(spath("tmp", "")) == 0);

	/* incoming -> deferred with new per-recipient state */
	struct envelope env;
	CHECK(queue_env_read(q, QDIR_INCOMING, id, &env, &why) == 0);
	env.attempts = 1;
	env.rcpt[0].state = RCPT_DEFERRED;
	env.rcpt[0].next_attempt = 42;
	envelope_set(&env.rcpt[0].reason, "host down");
	env.rcpt[1].state = RCPT_DELIVERED;
	CHECK(queue_env_write(q, QDIR_INCOMING, QDIR_DEFERRED, &env) == 0);
	envelope_free(&env);
	CHECK(!exists("incoming", id) && exists("deferred", id));
	CHECK(queue_env_read(q, QDIR_DEFERRED, id, &env, &why) == 0);
	CHECK(env.attempts == 1 && env.rcpt[0].state == RCPT_DEFERRED);
	CHECK_STR(env.rcpt[0].reason, "host down");
	envelope_free(&env);

	/* deferred -> hold -> deferred (admin hold/release) */
	CHECK(queue_env_move(q, id, QDIR_DEFERRED, QDIR_HOLD) == 0);
	CHECK(!exists("deferred", id) && exists("hold", id));
	CHECK(queue_env_move(q, id, QDIR_HOLD, QDIR_DEFERRED) == 0);
	CHECK(exists("deferred", id) && !exists("hold", id));
	/* Moving what is not there fails cleanly. */
	CHECK(queue_env_move(q, id, QDIR_HOLD, QDIR_DEFERRED) == -1 &&
	      errno == ENOENT);

	/* update in place */
	CHECK(queue_env_read(q, QDIR_DEFERRED, id, &env, &why) == 0);
	env.rcpt[0].state = RCPT_DELIVERED;
	CHECK(queue_env_write(q, QDIR_DEFERRED, QDIR_DEFERRED, &env) == 0);
	envelope_free(&env);
	CHECK(queue_env_read(q, QDIR_DEFERRED, id, &env, &why) == 0);
	CHECK(envelope_done(&env));
	envelope_free(&env);

	/* message file content is what was written */
	int fd = queue_msg_open(q, id);
	CHECK(fd >= 0);
	char buf[64] = {0};
	CHECK(read(fd, buf, sizeof(buf)) == 21);
	CHECK_STR(buf, "Subject: t\r\n\r\nhello\r\n");
	close(fd);
	CHECK(queue_msg_open(q, "../x") == -1);

	/* removal */
	CHECK(queue_remove(q, QDIR_DEFERRED, id) == 0);
	CHECK(!exists("deferred", id) && !exists("msg", id));
	CHECK(queue_env_read(q, QDIR_DEFERRED, id, &env, &why) == -1 &&
	      errno == ENOENT);
	envelope_free(&env);
	free(id);

	/* abort leaves nothing */
	struct queue_msg *m = queue_msg_create(q);
	char *aid = xstrdup(queue_msg_id(m));
	CHECK(queue_msg_write(m, "x", 1) == 0);
	queue_msg_abort(m);
	CHECK(!exists("msg", aid));
	free(aid);

	/* quarantine moves both files to corrupt/ */
	id = commit_msg(q, "x\r\n", 1);
	CHECK(queue_quarantine(q, QDIR_INCOMING, id, "test") == 0);
	CHECK(exists("corrupt", id));
	char msgname[64];
	snprintf(msgname, sizeof(msgname), "%s.msg", id);
	CHECK(exists("corrupt", msgname));
	CHECK(!exists("incoming", id) && !exists("msg", id));
	free(id);

	/* batch commit and scan order = arrival order */
	struct queue_msg *ms[5];
	struct envelope envs[5], *ep[5];
	char want[200] = "", got[200] = "";
	for (int i = 0; i < 5; i++) {
		ms[i] = queue_msg_create(q);
		strcat(want, queue_msg_id(ms[i]));
		strcat(want, " ");
		queue_msg_write(ms[i], "batch\r\n", 7);
		envelope_init(&envs[i]);
		envelope_add_rcpt(&envs[i], "x@y");
		ep[i] = &envs[i];
	}
	CHECK(queue_msg_commit_batch(ms, ep, 5) == 5);
	for (int i = 0; i < 5; i++) {
		CHECK(ms[i] == NULL);
		envelope_free(&envs[i]);
	}
	CHECK(queue_scan(q, QDIR_INCOMING, collect, got) == 5);
	CHECK_STR(got, want);
	queue_close(q);
}

static void
test_large_message(void)
{
	struct queue *q = open_queue();
	struct queue_msg *m = queue_msg_create(q);
	char chunk[1000];
	memset(chunk, 'a', sizeof(chunk));
	for (int i = 0; i < 3000; i++)
		CHECK(queue_msg_write(m, chunk, (size_t)(i % 1000) + 1) == 0);
	uint64_t want = 0;
	for (int i = 0; i < 3000; i++)
		want += (uint64_t)(i % 1000) + 1;
	CHECK(queue_msg_size(m) == want);
	/* one write bigger than the buffer */
	static char big[200000];
	memset(big, 'b', sizeof(big));
	CHECK(queue_msg_write(m, big, sizeof(big)) == 0);
	want += sizeof(big);
	struct envelope env;
	envelope_init(&env);
	envelope_add_rcpt(&env, "x@y");
	char *id = xstrdup(queue_msg_id(m));
	CHECK(queue_msg_commit(m, &env) == 0);
	envelope_free(&env);
	struct stat st;
	CHECK(stat(spath("msg", id), &st) == 0 && (uint64_t)st.st_size == want);
	CHECK(queue_remove(q, QDIR_INCOMING, id) == 0);
	free(id);
	queue_close(q);
}

static void
test_recover(void)
{
	struct queue *q = open_queue();
	struct queue_recover_stats st;
	CHECK(queue_recover(q, &st) == 0);
	unsigned long base = st.messages;

	char *good = commit_msg(q, "good\r\n", 1);
	char *trunc = commit_msg(q, "will be cut\r\n", 1);
	char *noenv = commit_msg(q, "envelope lost\r\n", 1);
	char *dup = commit_msg(q, "dup\r\n", 1);
	/* a crash mid-commit: message file and tmp envelope, no rename */
	struct queue_msg *m = queue_msg_create(q);
	char *orphan = xstrdup(queue_msg_id(m));
	queue_msg_write(m, "orphan", 6);
	test_write_file(spath("tmp", orphan), "smalt-envelope\t1\n", 17);
	/* message file shorter than the envelope says */
	truncate(spath("msg", trunc), 3);
	/* envelope that is garbage */
	CHECK(test_write_file(spath("incoming", noenv), "garbage", 7) == 0);
	/* the same envelope in two state folders */
	char *text;
	size_t len;
	text = test_read_file(spath("incoming", dup), &len);
	test_write_file(spath("hold", dup), text, len);
	free(text);
	/* names that are not ids, and a symlink posing as an envelope */
	test_write_file(spath("deferred", "README"), "hi", 2);
	symlink("/etc/passwd", spath("incoming", "00000000000000FF"));
	/* an envelope whose message file is gone */
	char *gone = commit_msg(q, "gone\r\n", 1);
	unlink(spath("msg", gone));

	CHECK(queue_recover(q, &st) == 0);
	CHECK(st.messages == base + 2); /* good + dup (one copy) */
	CHECK(st.tmp_removed == 1);
	CHECK(st.orphans_removed == 1);
	CHECK(st.quarantined == 6);
	CHECK(exists("incoming", good) && exists("msg", good));
	CHECK(!exists("incoming", trunc) && exists("corrupt", trunc));
	CHECK(!exists("incoming", noenv) && exists("corrupt", noenv));
	CHECK(exists("incoming", dup) && !exists("hold", dup));
	CHECK(!exists("msg", orphan) && !exists("tmp", orphan));
	CHECK(exists("corrupt", "README"));
	CHECK(exists("corrupt", "00000000000000FF"));
	CHECK(!exists("incoming", gone) && exists("corrupt", gone));
	CHECK(test_count_dir(spath("tmp", "")) == 0);
	/* /etc/passwd was not followed nor touched */
	struct stat pw;
	CHECK(lstat("/etc/passwd", &pw) == 0 && S_ISREG(pw.st_mode));

	/* A second recovery finds a clean queue. */
	CHECK(queue_recover(q, &st) == 0);
	CHECK(st.messages == base + 2 && st.quarantined == 0 &&
	      st.orphans_removed == 0 && st.tmp_removed == 0);
	queue_msg_abort(m);
	free(good);
	free(trunc);
	free(noenv);
	free(dup);
	free(orphan);
	free(gone);
	queue_close(q);
}

/* The delivery side's wake-up: a commit in another process is seen. */
static void
test_watch(void)
{
	struct queue *q = open_queue();
	int fd = queue_watch_open(q);
	CHECK(fd >= 0);
	struct pollfd p = {.fd = fd, .events = POLLIN};
	CHECK(poll(&p, 1, 0) == 0);
	pid_t pid = fork();
	if (pid == 0) {
		struct queue *cq = open_queue();
		char *id = commit_msg(cq, "watched\r\n", 1);
		free(id);
		queue_close(cq);
		_exit(0);
	}
	int status;
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK(poll(&p, 1, 5000) == 1);
	CHECK(queue_watch_drain(fd) >= 1);
	CHECK(poll(&p, 1, 0) == 0);
	close(fd);
	queue_close(q);
}

static void
test_open_errors(void)
{
	char err[256] = "";
	char *file = xasprintf("%s/file", spool);
	test_write_file(file, "x", 1);
	struct queue *q =
	    queue_open(file, (uid_t)-1, (gid_t)-1, err, sizeof(err));
	CHECK(q == NULL);
	CHECK(strstr(err, file) != NULL);
	free(file);
}

int
main(void)
{
	spool = test_mkdtemp("queue");
	test_layout();
	test_ids();
	test_envelope_roundtrip();
	test_envelope_malformed();
	test_transitions();
	test_large_message();
	test_recover();
	test_watch();
	test_open_errors();
	test_rm_rf(spool);
	free(spool);
	return check_done();
}
