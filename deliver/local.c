#include "deliver/local.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/addr.h"
#include "common/log.h"
#include "common/util.h"
#include "deliver/bounce.h"
#include "deliver/delivery_log.h"
#include "deliver/mailbox.h"
#include "deliver/pipe.h"

/* One recipient's delivery: what every target shares. */
struct job {
	const struct local_ctx *c;
	const struct agent_request *req;
	int msg_fd;
	char domain[ADDR_DOMAIN_MAX + 1];
	/* The envelope sender of the target being delivered: the message's,
	 * or owner-LIST@hostname for members of a list that has an owner. */
	const char *sender;
	const char *owner; /* that owner address, NULL when none */
	char *headers;	   /* Return-Path: and Delivered-To:, LF lines */
	struct delivery_times t;
	struct deliver_result sum;
	int any_defer, any_bounce;
};

typedef void (*target_fn)(void *arg, struct deliver_result *res);

/* Runs fn with uid/gid in a child when we are root and uid is another
 * user's, else here: a mailbox writer must never hold root's rights over
 * a file a user controls. */
static void
run_as(uid_t uid, gid_t gid, target_fn fn, void *arg,
       struct deliver_result *res)
{
	if (geteuid() != 0 || uid == 0 || uid == (uid_t)-1) {
		fn(arg, res);
		return;
	}
	int p[2];
	if (pipe2(p, O_CLOEXEC) != 0) {
		deliver_result_set(res, DELIVER_DEFER, "4.3.0", "pipe: %s",
				   strerror(errno));
		return;
	}
	pid_t pid = fork();
	if (pid < 0) {
		deliver_result_set(res, DELIVER_DEFER, "4.3.0", "fork: %s",
				   strerror(errno));
		close(p[0]);
		close(p[1]);
		return;
	}
	if (pid == 0) {
		struct deliver_result r;
		close(p[0]);
		if (setgroups(1, &gid) != 0 || setresgid(gid, gid, gid) != 0 ||
		    setresuid(uid, uid, uid) != 0)
			deliver_result_set(&r, DELIVER_DEFER, "4.3.0",
					   "cannot change to uid %ld: %s",
					   (long)uid, strerror(errno));
		else
			fn(arg, &r);
		_exit(write_all(p[1], &r, sizeof(r)) == 0 ? 0 : 1);
	}
	close(p[1]);
	size_t got = 0;
	while (got < sizeof(*res)) {
		ssize_t n = read(p[0], (char *)res + got, sizeof(*res) - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(p[0]);
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (got != sizeof(*res))
		deliver_result_set(res, DELIVER_DEFER, "4.3.0",
				   "delivery process for uid %ld died",
				   (long)uid);
	res->dsn[sizeof(res->dsn) - 1] = '\0';
	res->reason[sizeof(res->reason) - 1] = '\0';
}

static int notify_owner(struct job *j, const char *to,
			const struct deliver_result *r);

static void
record(struct job *j, const char *to, const char *relay,
       const struct deliver_result *r)
{
	j->t.end_us = now_usec();
	delivery_log("local", j->req->id, to, j->req->rcpt, relay, &j->t, r);
	/* A list with an owner: its members' failures are the owner's to
	 * hear about, not the sender's (sendmail's owner- rule). */
	if (r->status == DELIVER_BOUNCE && j->owner != NULL &&
	    notify_owner(j, to, r) == 0)
		return;
	if (r->status == DELIVER_DEFER && !j->any_defer) {
		j->any_defer = 1;
		j->sum = *r;
	} else if (r->status == DELIVER_BOUNCE && !j->any_defer &&
		   !j->any_bounce) {
		j->any_bounce = 1;
		j->sum = *r;
		/* The recipient bounced because of this target: say so. */
		if (strcmp(to, j->req->rcpt) != 0)
			snprintf(j->sum.reason, sizeof(j->sum.reason),
				 "%.60s: %.190s", to, r->reason);
	}
}

/* -- bounces of list members to the list's owner */

struct owner_arg {
	struct job *j;
	const char *to;
	const struct deliver_result *r;
};

static void
write_owner_bounce(void *arg, struct deliver_result *res)
{
	struct owner_arg *a = arg;
	struct job *j = a->j;
	struct envelope orig, env;
	envelope_init(&orig);
	envelope_init(&env);
	memcpy(orig.id, j->req->id, sizeof(orig.id));
	orig.arrival = (time_t)(j->req->arrival_us / 1000000);
	envelope_set(&orig.sender, j->owner);
	struct bounce_rcpt br = {a->to, a->r->dsn, a->r->reason};
	struct bounce_params bp = {
	    .kind = DSN_FAILURE,
	    .hostname = j->c->conf->hostname,
	    .to = j->owner,
	    .env = &orig,
	    .rcpts = &br,
	    .nrcpt = 1,
	    .msg_fd = j->msg_fd,
	    .now = time(NULL),
	};
	envelope_set(&env.sender, "");
	envelope_set(&env.protocol, "local");
	envelope_add_rcpt(&env, j->owner);
	struct queue_msg *m = queue_msg_create(j->c->queue);
	int rc = m == NULL ? -1 : bounce_write(&bp, bounce_queue_write, m);
	if (rc == 0)
		rc = queue_msg_commit(m, &env);
	if (rc != 0) {
		deliver_result_set(res, DELIVER_DEFER, "4.3.0",
				   "cannot queue a bounce to %s: %s", j->owner,
				   strerror(m ? queue_msg_error(m) : errno));
		if (m != NULL)
			queue_msg_abort(m);
	} else {
		deliver_result_set(res, DELIVER_OK, "2.0.0", "%s", env.id);
	}
	envelope_free(&orig);
	envelope_free(&env);
}

/* 0 when the owner will hear of it: then the failure is dealt with. */
static int
notify_owner(struct job *j, const char *to, const struct deliver_result *r)
{
	struct owner_arg a = {j, to, r};
	struct deliver_result res;
	run_as(j->c->user_uid, j->c->user_gid, write_owner_bounce, &a, &res);
	if (res.status != DELIVER_OK) {
		log_warn("%s: %s", j->req->id, res.reason);
		return -1;
	}
	log_info_as("bounce", "%s: owner %s non-delivery notification: %s",
		    j->req->id, j->owner, res.reason);
	return 0;
}

/* Return-Path: and Delivered-To: for the current sender. */
static void
set_sender(struct job *j, const char *sender, const char *owner)
{
	j->sender = sender;
	j->owner = owner;
	free(j->headers);
	j->headers = xasprintf("Return-Path: <%s>\nDelivered-To: %s\n", sender,
			       j->req->rcpt);
}

/* -- mailboxes */

struct mailbox_arg {
	struct job *j;
	const char *path;
	int maildir;
	int is_mailbox; /* a user's mailbox, not an alias's /file */
};

static void
write_mailbox(void *arg, struct deliver_result *res)
{
	struct mailbox_arg *a = arg;
	/* A mailbox over RLIMIT_FSIZE must fail a write (EFBIG, 4.2.2),
	 * not kill us. */
	signal(SIGXFSZ, SIG_IGN);
	mailbox_set_owner_check(a->is_mailbox);
	if (a->maildir)
		maildir_deliver(a->path, a->j->msg_fd, a->j->headers, res);
	else
		mbox_deliver(a->path, a->j->sender, time(NULL), a->j->msg_fd,
			     a->j->headers, res);
}

/* /var/mail is root's folder (Debian: 2775 root:mail), so a user cannot
 * create a mailbox there: make it empty, as theirs, while still root, as
 * Postfix's local does. */
static void
create_spool_mbox(const char *path, uid_t uid, gid_t gid)
{
	if (geteuid() != 0 || uid == 0)
		return;
	struct stat st;
	if (lstat(path, &st) == 0 || errno != ENOENT)
		return; /* there already, or the writer will say why */
	/* Made under another name and linked into place once it is the
	 * user's: a delivery running beside this one must never see the
	 * mailbox while it still is root's. */
	char *tmp = xasprintf("%s.smalt-new.%ld", path, (long)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		      0600);
	if (fd < 0) {
		free(tmp);
		return;
	}
	if (fchown(fd, uid, gid) != 0)
		log_warn("%s: chown: %s", tmp, strerror(errno));
	else if (link(tmp, path) != 0 && errno != EEXIST)
		log_warn("%s: link: %s", path, strerror(errno));
	close(fd);
	unlink(tmp);
	free(tmp);
}

static void
deliver_mailbox(struct job *j, const char *to, const char *path, uid_t uid,
		gid_t gid)
{
	struct deliver_result r;
	size_t n = strlen(path);
	struct mailbox_arg a = {j, path, n > 0 && path[n - 1] == '/', 1};
	if (path[0] != '/') {
		deliver_result_set(&r, DELIVER_DEFER, "4.3.5",
				   "mailbox path is not absolute: %s", path);
	} else {
		run_as(uid, gid, write_mailbox, &a, &r);
	}
	record(j, to, "local", &r);
}

/* A name that is no alias (or an alias member that is a local name):
 * a virtual mailbox, else a system user. */
static void
deliver_user(struct job *j, const char *name)
{
	const struct local_ctx *c = j->c;
	char to[ADDR_PATH_MAX + 8];
	/* Bare "postmaster" (RCPT TO:<Postmaster>) is ours. */
	snprintf(to, sizeof(to), "%s@%s", name,
		 j->domain[0] ? j->domain : c->conf->hostname);
	ascii_lower(to);
	if (c->virtuals != NULL) {
		const struct table_entry *e = table_lookup(c->virtuals, to);
		if (e == NULL)
			e = table_lookup(c->virtuals, name);
		if (e != NULL) {
			deliver_mailbox(j, to, e->value, c->user_uid,
					c->user_gid);
			return;
		}
	}
	struct passwd *pw = getpwnam(name);
	/* RFC 5321 4.5.1: mail for postmaster must be taken; without an
	 * alias it is root's. */
	if (pw == NULL && strcmp(name, "postmaster") == 0)
		pw = getpwnam("root");
	if (pw == NULL) {
		struct deliver_result r;
		deliver_result_set(&r, DELIVER_BOUNCE, "5.1.1",
				   "unknown user: \"%s\"", name);
		record(j, to, "local", &r);
		return;
	}
	char *path;
	if (c->conf->home_mailbox[0] != '\0') {
		path = xasprintf("%s/%s", pw->pw_dir, c->conf->home_mailbox);
	} else {
		path = xasprintf("%s/%s", c->conf->mail_spool_directory,
				 pw->pw_name);
		create_spool_mbox(path, pw->pw_uid, pw->pw_gid);
	}
	uid_t uid = pw->pw_uid;
	gid_t gid = pw->pw_gid;
	deliver_mailbox(j, to, path, uid, gid);
	free(path);
}

/* -- alias targets */

static void
deliver_command(struct job *j, const struct alias_target *t)
{
	struct deliver_result r;
	struct pipe_request pr = {
	    .shell_command = t->value,
	    .msg_fd = j->msg_fd,
	    .headers = j->headers,
	    .uid = t->uid,
	    .gid = t->gid,
	    .timeout = LOCAL_COMMAND_TIMEOUT,
	    .sender = j->sender,
	    .recipient = j->req->rcpt,
	};
	pipe_deliver(&pr, &r);
	if (r.status == DELIVER_OK)
		snprintf(r.reason, sizeof(r.reason),
			 "delivered to command: %.200s", t->value);
	record(j, j->req->rcpt, "local", &r);
}

static void
deliver_file(struct job *j, const struct alias_target *t)
{
	struct deliver_result r;
	struct mailbox_arg a = {j, t->value, 0, 0};
	/* sendmail's idiom for "accept and drop". */
	if (strcmp(t->value, "/dev/null") == 0) {
		deliver_result_set(&r, DELIVER_OK, "2.0.0",
				   "delivered to file: /dev/null");
		record(j, j->req->rcpt, "local", &r);
		return;
	}
	run_as(t->uid, t->gid, write_mailbox, &a, &r);
	if (r.status == DELIVER_OK)
		snprintf(r.reason, sizeof(r.reason),
			 "delivered to file: %.200s", t->value);
	record(j, j->req->rcpt, "local", &r);
}

/* -- forwarding to alias members elsewhere */

struct forward_arg {
	struct job *j;
	const char *sender;
	const char **rcpts;
	size_t n;
};

static int
copy_message(struct queue_msg *m, int fd)
{
	char buf[65536];
	off_t off = 0;
	for (;;) {
		ssize_t n = pread(fd, buf, sizeof(buf), off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			return 0;
		if (queue_msg_write(m, buf, (size_t)n) != 0)
			return -1;
		off += n;
	}
}

static void
write_forward(void *arg, struct deliver_result *res)
{
	struct forward_arg *a = arg;
	struct queue_msg *m = queue_msg_create(a->j->c->queue);
	if (m == NULL) {
		deliver_result_set(res, DELIVER_DEFER, "4.3.0",
				   "cannot queue a forwarded copy: %s",
				   strerror(errno));
		return;
	}
	/* The trace that stops a forwarding loop between hosts. */
	char *trace = xasprintf("Delivered-To: %s\r\n", a->j->req->rcpt);
	int rc = queue_msg_write(m, trace, strlen(trace));
	free(trace);
	if (rc == 0)
		rc = copy_message(m, a->j->msg_fd);
	struct envelope env;
	envelope_init(&env);
	envelope_set(&env.sender, a->sender);
	envelope_set(&env.protocol, "local");
	for (size_t i = 0; i < a->n; i++)
		envelope_add_rcpt(&env, a->rcpts[i]);
	if (rc == 0)
		rc = queue_msg_commit(m, &env);
	if (rc != 0) {
		int err = queue_msg_error(m);
		queue_msg_abort(m);
		deliver_result_set(
		    res, DELIVER_DEFER, err == ENOSPC ? "4.3.1" : "4.3.0",
		    "cannot queue a forwarded copy: %s", strerror(err));
	} else {
		deliver_result_set(res, DELIVER_OK, "2.0.0", "forwarded as %s",
				   env.id);
	}
	envelope_free(&env);
}

/* Members on other hosts, one new message per envelope sender (an
 * owner-LIST alias changes it for its members). */
static void
forward_remote(struct job *j, const struct alias_expansion *e)
{
	const char **rcpts = xcalloc(e->n, sizeof(*rcpts));
	char *done = xcalloc(e->n, 1);
	for (size_t i = 0; i < e->n; i++) {
		const struct alias_target *t = &e->v[i];
		if (t->kind != ALIAS_REMOTE || done[i])
			continue;
		char *owner = NULL;
		const char *sender = j->req->sender;
		/* Never turn a bounce into mail with a sender. */
		if (t->errors_to != NULL && sender[0] != '\0')
			sender = owner = xasprintf("%s@%s", t->errors_to,
						   j->c->conf->hostname);
		size_t n = 0;
		for (size_t k = i; k < e->n; k++) {
			const struct alias_target *u = &e->v[k];
			if (u->kind != ALIAS_REMOTE || done[k])
				continue;
			if ((t->errors_to == NULL) != (u->errors_to == NULL) ||
			    (t->errors_to != NULL &&
			     strcmp(t->errors_to, u->errors_to) != 0))
				continue;
			rcpts[n++] = u->value;
			done[k] = 1;
		}
		struct forward_arg a = {j, sender, rcpts, n};
		struct deliver_result r;
		run_as(j->c->user_uid, j->c->user_gid, write_forward, &a, &r);
		for (size_t k = 0; k < n; k++)
			record(j, rcpts[k], "local", &r);
		free(owner);
	}
	free(done);
	free(rcpts);
}

static int
domain_is_local(const char *domain, void *arg)
{
	return conf_is_local_domain(arg, domain);
}

static void
deliver_alias(struct job *j, const struct alias_expansion *e)
{
	if (e->n == 0) {
		/* "list: :include:/empty" or "/dev/null" members only. */
		struct deliver_result r;
		deliver_result_set(&r, DELIVER_OK, "2.0.0",
				   "discarded: the alias has no members");
		record(j, j->req->rcpt, "local", &r);
		return;
	}
	for (size_t i = 0; i < e->n; i++) {
		const struct alias_target *t = &e->v[i];
		struct deliver_result r;
		char *owner = NULL;
		/* Never give a bounce a sender: it would bounce back. */
		if (t->errors_to != NULL && j->req->sender[0] != '\0' &&
		    t->kind != ALIAS_REMOTE)
			owner = xasprintf("%s@%s", t->errors_to,
					  j->c->conf->hostname);
		set_sender(j, owner ? owner : j->req->sender, owner);
		switch (t->kind) {
		case ALIAS_LOCAL:
			if (t->loop) {
				deliver_result_set(&r, DELIVER_BOUNCE, "5.4.6",
						   "alias loop through \"%s\"",
						   t->value);
				record(j, j->req->rcpt, "local", &r);
			} else {
				deliver_user(j, t->value);
			}
			break;
		case ALIAS_COMMAND:
			deliver_command(j, t);
			break;
		case ALIAS_FILE:
			deliver_file(j, t);
			break;
		case ALIAS_REMOTE:
			break; /* below, grouped */
		}
		set_sender(j, j->req->sender, NULL);
		free(owner);
	}
	forward_remote(j, e);
}

static int
split_rcpt(struct job *j, char *local, size_t len)
{
	struct mailaddr a;
	const char *errstr;
	if (addr_parse_mailbox(j->req->rcpt, 0, &a, &errstr) != 0) {
		/* Bare "postmaster" (RCPT TO:<Postmaster>) has no domain. */
		if (ascii_strcasecmp(j->req->rcpt, "postmaster") != 0)
			return -1;
		smalt_strlcpy(local, "postmaster", len);
		j->domain[0] = '\0';
		return 0;
	}
	addr_local_unquoted(&a, local, len);
	ascii_lower(local);
	smalt_strlcpy(j->domain, a.domain, sizeof(j->domain));
	ascii_lower(j->domain);
	return 0;
}

void
local_deliver(const struct local_ctx *ctx, const struct agent_request *req,
	      int msg_fd, struct deliver_result *res)
{
	struct job j = {.c = ctx, .req = req, .msg_fd = msg_fd};
	char local[ADDR_LOCAL_MAX + 1];
	j.t.arrival_us = req->arrival_us;
	j.t.active_us = req->active_us;
	j.t.sent_us = req->sent_us;
	j.t.start_us = now_usec();
	deliver_result_set(&j.sum, DELIVER_OK, "2.0.0", "delivered");

	if (split_rcpt(&j, local, sizeof(local)) != 0) {
		deliver_result_set(res, DELIVER_BOUNCE, "5.1.3",
				   "bad recipient address syntax");
		record(&j, req->rcpt, "local", res);
		return;
	}
	int seen = count_delivered_to(msg_fd, req->rcpt);
	if (seen < 0) {
		deliver_result_set(res, DELIVER_DEFER, "4.3.0",
				   "cannot read the message file: %s",
				   strerror(errno));
		record(&j, req->rcpt, "local", res);
		return;
	}
	if (seen > 0) {
		deliver_result_set(res, DELIVER_BOUNCE, "5.4.6",
				   "mail forwarding loop for %s", req->rcpt);
		record(&j, req->rcpt, "local", res);
		return;
	}
	set_sender(&j, req->sender, NULL);

	struct alias_expansion e;
	char err[512];
	int rc = 0;
	if (ctx->aliases != NULL)
		rc = alias_expand(ctx->aliases, local, domain_is_local,
				  (void *)ctx->conf, &e, err, sizeof(err));
	else
		memset(&e, 0, sizeof(e));
	if (rc < 0) {
		/* The aliases' administrator's mistake, not the sender's. */
		struct deliver_result r;
		deliver_result_set(&r, DELIVER_DEFER, "4.3.0",
				   "alias expansion: %s", err);
		record(&j, req->rcpt, "local", &r);
	} else if (rc == 1) {
		deliver_alias(&j, &e);
	} else {
		deliver_user(&j, local);
	}
	alias_expansion_free(&e);
	free(j.headers);
	*res = j.sum;
}
