/* The delivery agent process (see agent.h): reads requests, forks one
 * child per delivery, and makes sure every request gets exactly one
 * result, even from a child that crashed. */
#include "deliver/agent.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "conf/aliases.h"
#include "conf/table.h"
#include "deliver/delivery_log.h"
#include "deliver/local.h"
#include "deliver/pipe.h"

/* Postfix's pipe(8) default time limit for a command. */
#define AGENT_PIPE_TIMEOUT 1000

struct child {
	pid_t pid;
	unsigned long job;
	struct child *next;
};

struct agent {
	struct agent_params *p;
	struct event_base *base;
	struct event *ev_sock;
	struct alias_db *aliases;
	struct table *virtuals;
	struct child *children;
	unsigned nchildren;
	int closing;
};

static int
load_tables(const struct smalt_conf *conf, struct alias_db **aliases,
	    struct table **virtuals, char *err, size_t errlen)
{
	*aliases = NULL;
	*virtuals = NULL;
	if (conf->aliases[0] != '\0') {
		*aliases = alias_open(conf->aliases, err, errlen);
		if (*aliases == NULL && errno != ENOENT)
			return -1;
	}
	if (conf->virtual_mailboxes[0] != '\0') {
		*virtuals = table_open(conf->virtual_mailboxes, TABLE_SEP_SPACE,
				       TABLE_FOLD_CASE, err, errlen);
		if (*virtuals == NULL) {
			if (*aliases)
				alias_free(*aliases);
			*aliases = NULL;
			return -1;
		}
	}
	return 0;
}

static void
send_result(int sock, unsigned long job, const struct deliver_result *r)
{
	char buf[AGENT_MSG_MAX];
	struct agent_result res = {.job = job, .r = *r};
	int n = agent_result_format(&res, buf, sizeof(buf));
	if (n < 0 || send(sock, buf, (size_t)n, MSG_NOSIGNAL) != n)
		log_warn("cannot report the result of job %lu: %s", job,
			 strerror(errno));
}

/* In the child: one delivery. */
static void
run_job(struct agent *a, const struct agent_request *req)
{
	struct deliver_result r;
	struct agent_params *p = a->p;
	int fd = queue_msg_open(p->queue, req->id);
	struct stat st;
	/* We are root and msg/ is the unprivileged user's: take only what
	 * that user could have queued, never a FIFO or a planted link. */
	if (fd >= 0 &&
	    (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1 ||
	     (p->user_uid != (uid_t)-1 && st.st_uid != p->user_uid))) {
		close(fd);
		fd = -1;
		errno = EPERM;
	}
	if (fd < 0) {
		deliver_result_set(&r, DELIVER_DEFER, "4.3.0",
				   "cannot open message file %s: %s", req->id,
				   strerror(errno));
		send_result(p->sock, req->job, &r);
		return;
	}
	if (req->channel == CHANNEL_LOCAL) {
		log_set_part("local");
		struct local_ctx ctx = {
		    .conf = p->conf,
		    .aliases = a->aliases,
		    .virtuals = a->virtuals,
		    .queue = p->queue,
		    .user_uid = p->user_uid,
		    .user_gid = p->user_gid,
		};
		local_deliver(&ctx, req, fd, &r);
	} else {
		log_set_part("pipe");
		struct delivery_times t = {req->arrival_us, req->active_us,
					   req->sent_us, now_usec(), 0};
		struct pipe_request pr = {
		    .argv = req->argv,
		    .msg_fd = fd,
		    .uid = p->user_uid,
		    .gid = p->user_gid,
		    .timeout = AGENT_PIPE_TIMEOUT,
		    .sender = req->sender,
		    .recipient = req->rcpt,
		};
		char *headers = xasprintf("Return-Path: <%s>\n", req->sender);
		pr.headers = headers;
		pipe_deliver(&pr, &r);
		free(headers);
		t.end_us = now_usec();
		delivery_log("pipe", req->id, req->rcpt, NULL, "pipe", &t, &r);
	}
	close(fd);
	send_result(p->sock, req->job, &r);
}

static void
start_job(struct agent *a, char *buf, size_t len)
{
	struct agent_request req;
	if (agent_request_parse(buf, len, &req) != 0) {
		log_warn("malformed delivery request ignored");
		return;
	}
	pid_t pid = fork();
	if (pid < 0) {
		struct deliver_result r;
		deliver_result_set(&r, DELIVER_DEFER, "4.3.0", "fork: %s",
				   strerror(errno));
		send_result(a->p->sock, req.job, &r);
		return;
	}
	if (pid == 0) {
		/* A delivery dies with the agent, as the agent dies with
		 * the master: the message is then tried again. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() == 1)
			_exit(1); /* the agent died already: no result due */
		/* The event loop's handlers are the parent's business. A
		 * delivery under way finishes (the agent waits for it): a
		 * stop signal sent to every process must not cut an mbox
		 * write in half. */
		signal(SIGCHLD, SIG_DFL);
		signal(SIGTERM, SIG_IGN);
		signal(SIGHUP, SIG_IGN);
		signal(SIGINT, SIG_IGN);
		run_job(a, &req);
		_exit(0);
	}
	struct child *c = xcalloc(1, sizeof(*c));
	c->pid = pid;
	c->job = req.job;
	c->next = a->children;
	a->children = c;
	a->nchildren++;
}

static void
check_done(struct agent *a)
{
	if (a->closing && a->nchildren == 0)
		event_base_loopbreak(a->base);
}

static void
on_sock(evutil_socket_t fd, short what, void *arg)
{
	struct agent *a = arg;
	char buf[AGENT_MSG_MAX + 1];
	(void)what;
	for (int i = 0; i < 64; i++) {
		ssize_t n = recv(fd, buf, AGENT_MSG_MAX, MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			/* The scheduler went away (it stops first): finish
			 * what runs, within limits. */
			a->closing = 1;
			event_del(a->ev_sock);
			struct timeval tv = {AGENT_DRAIN_SECONDS, 0};
			event_base_loopexit(a->base, &tv);
			check_done(a);
			return;
		}
		buf[n] = '\0';
		start_job(a, buf, (size_t)n);
	}
}

static void
on_sigchld(evutil_socket_t sig, short what, void *arg)
{
	struct agent *a = arg;
	(void)sig;
	(void)what;
	for (;;) {
		int st;
		pid_t pid = waitpid(-1, &st, WNOHANG);
		if (pid <= 0)
			break;
		for (struct child **cp = &a->children; *cp; cp = &(*cp)->next) {
			struct child *c = *cp;
			if (c->pid != pid)
				continue;
			/* A child that sent its result exits 0; anything
			 * else never reported: do it for it. */
			if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
				struct deliver_result r;
				deliver_result_set(
				    &r, DELIVER_DEFER, "4.3.0",
				    "delivery process %ld died (%s %d)",
				    (long)pid,
				    WIFSIGNALED(st) ? "signal" : "status",
				    WIFSIGNALED(st) ? WTERMSIG(st)
						    : WEXITSTATUS(st));
				log_warn("job %lu: %s", c->job, r.reason);
				send_result(a->p->sock, c->job, &r);
			}
			*cp = c->next;
			free(c);
			a->nchildren--;
			break;
		}
	}
	check_done(a);
}

static void
on_hup(evutil_socket_t sig, short what, void *arg)
{
	struct agent *a = arg;
	char err[CONF_ERRLEN];
	struct alias_db *aliases;
	struct table *virtuals;
	(void)sig;
	(void)what;
	struct smalt_conf *conf = a->p->load_conf(err, sizeof(err));
	if (conf == NULL) {
		log_error("reload failed, keeping the old settings: %s", err);
		return;
	}
	if (load_tables(conf, &aliases, &virtuals, err, sizeof(err)) != 0) {
		log_error("reload failed, keeping the old settings: %s", err);
		conf_free(conf);
		return;
	}
	conf_free(a->p->conf);
	a->p->conf = conf;
	if (a->aliases)
		alias_free(a->aliases);
	if (a->virtuals)
		table_free(a->virtuals);
	a->aliases = aliases;
	a->virtuals = virtuals;
}

int
agent_main(struct agent_params *p)
{
	struct agent a = {.p = p};
	char err[CONF_ERRLEN];
	log_set_part("deliver");
	/* It stops when the qmgr closes the socket, after the deliveries
	 * under way: a stop signal sent to every process of the daemon
	 * must not cut them short. */
	signal(SIGTERM, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	if (load_tables(p->conf, &a.aliases, &a.virtuals, err, sizeof(err)) !=
	    0) {
		log_error("%s", err);
		return 78;
	}
	a.base = event_base_new();
	if (a.base == NULL)
		fatal("event_base_new failed");
	a.ev_sock =
	    event_new(a.base, p->sock, EV_READ | EV_PERSIST, on_sock, &a);
	struct event *ev_chld = evsignal_new(a.base, SIGCHLD, on_sigchld, &a);
	struct event *ev_hup = evsignal_new(a.base, SIGHUP, on_hup, &a);
	event_add(a.ev_sock, NULL);
	event_add(ev_chld, NULL);
	event_add(ev_hup, NULL);
	/* Blocked since the fork; its children must not inherit that. */
	smalt_unblock_stop_signals();
	event_base_dispatch(a.base);
	for (struct child *c = a.children; c; c = c->next)
		log_warn("job %lu still running at exit (pid %ld)", c->job,
			 (long)c->pid);
	event_free(a.ev_sock);
	event_free(ev_chld);
	event_free(ev_hup);
	event_base_free(a.base);
	if (a.aliases)
		alias_free(a.aliases);
	if (a.virtuals)
		table_free(a.virtuals);
	while (a.children) {
		struct child *c = a.children;
		a.children = c->next;
		free(c);
	}
	return 0;
}
