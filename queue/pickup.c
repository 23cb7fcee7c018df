#include "queue/pickup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/addr.h"
#include "common/log.h"
#include "common/strbuf.h"
#include "common/util.h"
#include "queue/maildrop.h"

static int
valid_address(const char *s, int allow_null)
{
	struct mailaddr a;
	const char *errstr;
	if (s[0] == '\0')
		return allow_null;
	return addr_parse_mailbox(s, 0, &a, &errstr) == 0 ||
	       ascii_strcasecmp(s, "postmaster") == 0;
}

static const char *
check_envelope(const struct envelope *env)
{
	if (!valid_address(env->sender, 1))
		return "bad sender address";
	for (size_t i = 0; i < env->nrcpt; i++)
		if (!valid_address(env->rcpt[i].address, 0))
			return "bad recipient address";
	return NULL;
}

/* Trace fields the daemon vouches for, not sendmail. */
static void
trace_headers(struct strbuf *b, const struct smalt_conf *conf, const char *id,
	      uid_t uid, const char *sender)
{
	char date[64];
	char login[64];
	struct passwd *pw = getpwuid(uid);
	if (pw != NULL)
		smalt_strlcpy(login, pw->pw_name, sizeof(login));
	else
		snprintf(login, sizeof(login), "uid%lu", (unsigned long)uid);
	strbuf_addf(
	    b, "Received: by %s (smalt, from userid %lu)\r\n\tid %s; %s\r\n",
	    conf->hostname, (unsigned long)uid, id,
	    rfc5322_date(time(NULL), date, sizeof(date)));
	int trusted = uid == 0 || uid == geteuid();
	char *own = xasprintf("%s@%s", login, conf->hostname);
	/* The null sender too: a user must not send fake bounces. */
	if (!trusted && ascii_strcasecmp(sender, own) != 0)
		strbuf_addf(b,
			    "X-Authentication-Warning: %s: %s set sender to "
			    "%s%s%s using -f\r\n",
			    conf->hostname, login, sender[0] ? "" : "<", sender,
			    sender[0] ? "" : ">");
	free(own);
}

static enum pickup_result
queue_it(struct queue *q, const struct smalt_conf *conf, const char *name,
	 struct maildrop_file *md)
{
	struct queue_msg *m = queue_msg_create(q);
	if (m == NULL) {
		log_warn("%s: cannot queue maildrop file: %s", name,
			 strerror(errno));
		return PICKUP_RETRY;
	}
	struct strbuf head = {0};
	trace_headers(&head, conf, queue_msg_id(m), md->uid, md->env.sender);
	struct envelope env;
	envelope_init(&env);
	envelope_set(&env.sender, md->env.sender);
	envelope_set(&env.protocol, "local");
	env.uid = (long)md->uid;
	for (size_t i = 0; i < md->env.nrcpt; i++)
		envelope_add_rcpt(&env, md->env.rcpt[i].address);
	int rc = queue_msg_write(m, head.s, head.len);
	if (rc == 0)
		rc = queue_msg_write(m, md->msg, md->msg_len);
	if (rc == 0)
		rc = queue_msg_commit(m, &env);
	free(head.s);
	if (rc != 0) {
		log_warn("%s: cannot queue maildrop file: %s", name,
			 strerror(queue_msg_error(m)));
		queue_msg_abort(m);
		envelope_free(&env);
		return PICKUP_RETRY;
	}
	log_info_as("pickup", "%s: uid=%lu from=<%s>", env.id,
		    (unsigned long)md->uid, env.sender);
	envelope_free(&env);
	/* A crash before this unlink queues the file again: at least once. */
	if (unlinkat(queue_dir_fd(q, QDIR_MAILDROP), name, 0) != 0)
		log_warn("%s: cannot remove maildrop file: %s", name,
			 strerror(errno));
	return PICKUP_QUEUED;
}

enum pickup_result
pickup_file(struct queue *q, const struct smalt_conf *conf, const char *name,
	    struct pickup_request *req)
{
	struct maildrop_file md;
	const char *errstr;
	size_t max = (size_t)conf->max_message_size + MAILDROP_ENV_MAX + 4096;
	if (maildrop_read(q, name, max, &md, &errstr) != 0) {
		if (errno == ENOENT)
			return PICKUP_GONE;
		if (errno == EINVAL || errno == EFBIG) {
			queue_quarantine(q, QDIR_MAILDROP, name, errstr);
			return PICKUP_BAD;
		}
		log_warn("%s: cannot read maildrop file: %s", name,
			 errstr ? errstr : strerror(errno));
		return PICKUP_RETRY;
	}
	enum pickup_result res;
	const char *why;
	if (md.request != NULL) {
		unlinkat(queue_dir_fd(q, QDIR_MAILDROP), name, 0);
		smalt_strlcpy(req->word, md.request, sizeof(req->word));
		smalt_strlcpy(req->arg, md.request_arg ? md.request_arg : "",
			      sizeof(req->arg));
		req->trusted = md.uid == 0 || md.uid == geteuid();
		res = PICKUP_REQUEST;
	} else if ((why = check_envelope(&md.env)) != NULL) {
		queue_quarantine(q, QDIR_MAILDROP, name, why);
		res = PICKUP_BAD;
	} else if (md.msg_len > conf->max_message_size) {
		queue_quarantine(q, QDIR_MAILDROP, name,
				 "larger than max_message_size");
		res = PICKUP_BAD;
	} else {
		res = queue_it(q, conf, name, &md);
	}
	maildrop_file_free(&md);
	return res;
}

void
pickup_sweep(struct queue *q, unsigned max_age)
{
	int fd = dup(queue_dir_fd(q, QDIR_MAILDROP));
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (d == NULL) {
		if (fd >= 0)
			close(fd);
		return;
	}
	rewinddir(d);
	time_t now = time(NULL);
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		struct stat st;
		if (e->d_name[0] == '.' || queue_id_valid(e->d_name) ||
		    fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) !=
			0 ||
		    now - st.st_mtime < (time_t)max_age)
			continue;
		if (unlinkat(dirfd(d), e->d_name, 0) == 0)
			log_warn("removed maildrop/%s (uid %lu): left by an "
				 "interrupted sendmail",
				 e->d_name, (unsigned long)st.st_uid);
	}
	closedir(d);
}
