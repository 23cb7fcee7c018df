#include "queue/committer.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"

/* Enough for the messages a busy loop finishes while one batch syncs;
 * more simply wait for the next batch. */
#define BATCH_MAX 256

struct job {
	struct queue_msg *msg;
	struct envelope *env;
	void *token;
	struct job *next;
};

struct queue_committer {
	struct queue *q;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct job *todo, **todo_tail;
	struct commit_result *done;
	size_t ndone, capdone;
	int stopping;
	int notify[2]; /* [0] for the loop, [1] written by the thread */
};

static void
push_result(struct queue_committer *c, const struct commit_result *r)
{
	if (c->ndone == c->capdone) {
		c->capdone = c->capdone ? c->capdone * 2 : 64;
		c->done = xrealloc(c->done, c->capdone * sizeof(*c->done));
	}
	c->done[c->ndone++] = *r;
}

static void
commit_batch(struct queue_committer *c, struct job *jobs)
{
	struct queue_msg *msgs[BATCH_MAX];
	struct envelope *envs[BATCH_MAX];
	struct commit_result res[BATCH_MAX];
	size_t n = 0;

	for (struct job *j = jobs; j != NULL && n < BATCH_MAX; j = j->next) {
		msgs[n] = j->msg;
		envs[n] = j->env;
		res[n].token = j->token;
		smalt_strlcpy(res[n].id, queue_msg_id(j->msg),
			      sizeof(res[n].id));
		n++;
	}
	queue_msg_commit_batch(msgs, envs, n);
	for (size_t i = 0; i < n; i++) {
		/* A committed message's handle was freed and set to NULL. */
		res[i].ok = msgs[i] == NULL;
		res[i].error = 0;
		if (!res[i].ok) {
			res[i].error = queue_msg_error(msgs[i]);
			queue_msg_abort(msgs[i]);
		}
	}
	pthread_mutex_lock(&c->mu);
	for (size_t i = 0; i < n; i++)
		push_result(c, &res[i]);
	pthread_mutex_unlock(&c->mu);
	char byte = 1;
	/* A full pipe already means "results wait". */
	if (write(c->notify[1], &byte, 1) < 0 && errno != EAGAIN)
		log_warn("committer notify: %s", strerror(errno));
}

static void *
committer_main(void *arg)
{
	struct queue_committer *c = arg;
	pthread_mutex_lock(&c->mu);
	for (;;) {
		while (c->todo == NULL && !c->stopping)
			pthread_cond_wait(&c->cv, &c->mu);
		if (c->todo == NULL && c->stopping)
			break;
		/* Take up to BATCH_MAX jobs; late arrivals join the next. */
		struct job *batch = c->todo, *last = batch;
		for (int k = 1; k < BATCH_MAX && last->next != NULL; k++)
			last = last->next;
		c->todo = last->next;
		if (c->todo == NULL)
			c->todo_tail = &c->todo;
		last->next = NULL;
		pthread_mutex_unlock(&c->mu);
		commit_batch(c, batch);
		while (batch != NULL) {
			struct job *next = batch->next;
			free(batch);
			batch = next;
		}
		pthread_mutex_lock(&c->mu);
	}
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

struct queue_committer *
queue_committer_start(struct queue *q)
{
	struct queue_committer *c = xcalloc(1, sizeof(*c));
	c->q = q;
	c->todo_tail = &c->todo;
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, NULL);
	if (pipe2(c->notify, O_NONBLOCK | O_CLOEXEC) != 0)
		fatal("committer pipe: %s", strerror(errno));
	if (pthread_create(&c->thread, NULL, committer_main, c) != 0)
		fatal("committer thread: %s", strerror(errno));
	return c;
}

void
queue_committer_stop(struct queue_committer *c)
{
	if (c == NULL)
		return;
	pthread_mutex_lock(&c->mu);
	c->stopping = 1;
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mu);
	pthread_join(c->thread, NULL);
	close(c->notify[0]);
	close(c->notify[1]);
	pthread_mutex_destroy(&c->mu);
	pthread_cond_destroy(&c->cv);
	free(c->done);
	free(c);
}

int
queue_committer_fd(const struct queue_committer *c)
{
	return c->notify[0];
}

void
queue_committer_submit(struct queue_committer *c, struct queue_msg *m,
		       struct envelope *env, void *token)
{
	struct job *j = xcalloc(1, sizeof(*j));
	j->msg = m;
	j->env = env;
	j->token = token;
	pthread_mutex_lock(&c->mu);
	*c->todo_tail = j;
	c->todo_tail = &j->next;
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

size_t
queue_committer_results(struct queue_committer *c, struct commit_result *out,
			size_t max)
{
	char drain[64];
	while (read(c->notify[0], drain, sizeof(drain)) > 0)
		;
	pthread_mutex_lock(&c->mu);
	size_t n = c->ndone < max ? c->ndone : max;
	memcpy(out, c->done, n * sizeof(*out));
	memmove(c->done, c->done + n, (c->ndone - n) * sizeof(*out));
	c->ndone -= n;
	size_t left = c->ndone;
	pthread_mutex_unlock(&c->mu);
	if (left > 0) {
		/* Leave the descriptor readable for the rest. */
		char byte = 1;
		if (write(c->notify[1], &byte, 1) < 0 && errno != EAGAIN)
			log_warn("committer notify: %s", strerror(errno));
	}
	return n;
}
