/* Queue commit rate against the raw limit of the same filesystem.
 *
 * raw:   create + write 4 KiB + fsync(file) + rename + fsync(dir), in a
 *        loop: the least any crash-safe commit can cost.
 * queue: queue_msg_create + write 4 KiB + queue_msg_commit, which also
 *        writes and fsyncs an envelope and syncs two directories.
 * Each runs with 1 and with N concurrent writer threads, and the queue
 * also with group commit off, alternating the variants round by round so
 * that the disk's drift hits all alike. Prints a table and ratios.
 *
 *   queue_bench [-d DIR] [-s SECONDS] [-t THREADS] [-r ROUNDS] */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "queue/queue.h"

#define MSG_SIZE 4096

enum variant { V_RAW, V_QUEUE, V_QUEUE_NOGROUP, V_COUNT };
static const char *const variant_names[] = {"raw", "queue (group commit)",
					    "queue (no group commit)"};

struct run {
	enum variant v;
	const char *dir;
	struct queue *q;
	int rawdir;
	double seconds;
	_Atomic unsigned long ops;
	_Atomic int stop;
	_Atomic unsigned long seq;
};

static char payload[MSG_SIZE];

static int
raw_once(struct run *r, unsigned long n)
{
	char tmp[64], fin[64];
	snprintf(tmp, sizeof(tmp), "tmp.%lu", n);
	snprintf(fin, sizeof(fin), "f.%lu", n);
	int fd = openat(r->rawdir, tmp, O_WRONLY | O_CREAT | O_EXCL, 0600);
	if (fd < 0 || write_all(fd, payload, sizeof(payload)) != 0 ||
	    fsync(fd) != 0 || close(fd) != 0)
		return -1;
	if (renameat(r->rawdir, tmp, r->rawdir, fin) != 0 ||
	    fsync(r->rawdir) != 0)
		return -1;
	return 0;
}

static int
queue_once(struct run *r)
{
	struct queue_msg *m = queue_msg_create(r->q);
	if (m == NULL || queue_msg_write(m, payload, sizeof(payload)) != 0)
		return -1;
	struct envelope env;
	envelope_init(&env);
	envelope_set(&env.sender, "bench@example.com");
	envelope_add_rcpt(&env, "sink@example.net");
	int rc = queue_msg_commit(m, &env);
	if (rc != 0)
		queue_msg_abort(m);
	envelope_free(&env);
	return rc;
}

static void *
worker(void *arg)
{
	struct run *r = arg;
	while (!atomic_load(&r->stop)) {
		unsigned long n = atomic_fetch_add(&r->seq, 1);
		int rc = r->v == V_RAW ? raw_once(r, n) : queue_once(r);
		if (rc != 0) {
			fprintf(stderr, "%s: %s\n", variant_names[r->v],
				strerror(errno));
			exit(1);
		}
		atomic_fetch_add(&r->ops, 1);
	}
	return NULL;
}

static double
run_variant(enum variant v, const char *base, int threads, double seconds)
{
	struct run r = {.v = v, .seconds = seconds, .rawdir = -1};
	char *dir =
	    xasprintf("%s/%s-%d", base, v == V_RAW ? "raw" : "queue", threads);
	char err[256];
	if (v == V_RAW) {
		mkdir(dir, 0700);
		r.rawdir = open(dir, O_RDONLY | O_DIRECTORY);
	} else {
		r.q = queue_open(dir, (uid_t)-1, (gid_t)-1, err, sizeof(err));
		if (r.q == NULL) {
			fprintf(stderr, "%s\n", err);
			exit(1);
		}
		queue_set_group_commit(r.q, v == V_QUEUE);
	}
	pthread_t *tid = xcalloc((size_t)threads, sizeof(*tid));
	uint64_t t0 = now_usec();
	for (int i = 0; i < threads; i++)
		pthread_create(&tid[i], NULL, worker, &r);
	usleep((useconds_t)(seconds * 1e6));
	atomic_store(&r.stop, 1);
	for (int i = 0; i < threads; i++)
		pthread_join(tid[i], NULL);
	double elapsed = (double)(now_usec() - t0) / 1e6;
	free(tid);
	if (r.q)
		queue_close(r.q);
	if (r.rawdir >= 0)
		close(r.rawdir);
	char *cmd = xasprintf("rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not clean %s\n", dir);
	free(cmd);
	free(dir);
	return (double)atomic_load(&r.ops) / elapsed;
}

int
main(int argc, char **argv)
{
	const char *base = "bench-queue.d";
	double seconds = 5;
	int threads = 20, rounds = 3, opt;
	while ((opt = getopt(argc, argv, "d:s:t:r:")) != -1) {
		switch (opt) {
		case 'd':
			base = optarg;
			break;
		case 's':
			seconds = atof(optarg);
			break;
		case 't':
			threads = atoi(optarg);
			break;
		case 'r':
			rounds = atoi(optarg);
			break;
		default:
			fprintf(stderr, "usage: queue_bench [-d DIR] "
					"[-s SECONDS] [-t THREADS] "
					"[-r ROUNDS]\n");
			return 64;
		}
	}
	mkdir(base, 0700);
	memset(payload, 'x', sizeof(payload));
	int conc[2] = {1, threads};
	double sum[2][V_COUNT] = {{0}};
	for (int round = 0; round < rounds; round++)
		for (int c = 0; c < 2; c++)
			for (int v = 0; v < V_COUNT; v++) {
				double rate = run_variant((enum variant)v, base,
							  conc[c], seconds);
				sum[c][v] += rate;
				fprintf(stderr,
					"round %d: %2d writers %-24s %8.0f/s\n",
					round + 1, conc[c], variant_names[v],
					rate);
			}
	printf("\n| writers | raw commits/s | queue commits/s | queue "
	       "without group commit | queue/raw | no-group/raw |\n");
	printf("|---|---|---|---|---|---|\n");
	for (int c = 0; c < 2; c++) {
		double raw = sum[c][V_RAW] / rounds;
		double q = sum[c][V_QUEUE] / rounds;
		double qn = sum[c][V_QUEUE_NOGROUP] / rounds;
		printf("| %d | %.0f | %.0f | %.0f | %.2f | %.2f |\n", conc[c],
		       raw, q, qn, q / raw, qn / raw);
	}
	rmdir(base);
	return 0;
}
