/* A commit thread for an event loop: the loop hands over finished
 * messages and goes on serving; the thread commits everything waiting in
 * one batch (one round of fsyncs for all), and the loop collects the
 * results when the notification descriptor turns readable. */
#ifndef SMALT_COMMITTER_H
#define SMALT_COMMITTER_H

#include <stddef.h>

#include "queue/queue.h"

struct queue_committer;

struct commit_result {
	void *token;
	int ok;
	int error; /* errno when !ok; ENOSPC means out of disk */
	char id[QUEUE_ID_LEN + 1];
};

struct queue_committer *queue_committer_start(struct queue *q);
/* Waits for the jobs under way, then ends the thread. */
void queue_committer_stop(struct queue_committer *c);
/* Readable when results wait; read it empty with
 * queue_committer_results. */
int queue_committer_fd(const struct queue_committer *c);
/* Takes ownership of m (freed or committed) and uses env until the
 * result for token is collected. */
void queue_committer_submit(struct queue_committer *c, struct queue_msg *m,
			    struct envelope *env, void *token);
/* Moves up to max results into out; returns how many. */
size_t queue_committer_results(struct queue_committer *c,
			       struct commit_result *out, size_t max);

#endif
