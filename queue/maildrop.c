#include "queue/maildrop.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/strbuf.h"
#include "common/util.h"

static int
fail(char *err, size_t errlen, const char *what, const char *path)
{
	int saved = errno;
	set_err(err, errlen, "%s %s: %s", what, path, strerror(saved));
	errno = saved;
	return -1;
}

/* The rename's folder entry must be on disk before sendmail exits 0.
 * A member of smaltdrop may not open maildrop/ for reading, so it
 * cannot fsync it: then syncfs() makes the whole file system durable,
 * the folder entry included. */
static int
sync_entry(int file_fd, const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		int rc = fsync(fd);
		close(fd);
		return rc;
	}
	return syncfs(file_fd);
}

static int
write_file(const char *spool_dir, const char *head, size_t head_len,
	   const char *body, size_t body_len, char id_out[QUEUE_ID_LEN + 1],
	   char *err, size_t errlen)
{
	char *dir = xasprintf("%s/maildrop", spool_dir);
	char tmp[64];
	int rc = -1, fd = -1;
	/* O_PATH: we may write in the folder but not read it. */
	int dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		fail(err, errlen, "cannot open", dir);
		goto out;
	}
	snprintf(tmp, sizeof(tmp), "t.%ld.%llx", (long)getpid(),
		 (unsigned long long)now_usec());
	fd = openat(dfd, tmp,
		    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0) {
		fail(err, errlen, "cannot create a file in", dir);
		goto out;
	}
	/* Readable by the daemon's user whatever the caller's umask; the
	 * folder keeps everyone else out. */
	if (fchmod(fd, 0644) != 0 || write_all(fd, head, head_len) != 0 ||
	    write_all(fd, body, body_len) != 0 || fsync(fd) != 0) {
		fail(err, errlen, "cannot write to", dir);
		unlinkat(dfd, tmp, 0);
		goto out;
	}
	for (int tries = 0;; tries++) {
		queue_id_new(id_out);
		if (renameat2(dfd, tmp, dfd, id_out, RENAME_NOREPLACE) == 0)
			break;
		if (errno != EEXIST || tries == 100) {
			fail(err, errlen, "cannot rename in", dir);
			unlinkat(dfd, tmp, 0);
			goto out;
		}
	}
	if (sync_entry(fd, dir) != 0) {
		fail(err, errlen, "cannot sync", dir);
		goto out; /* it is there; whether it stays is unknown */
	}
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	if (dfd >= 0)
		close(dfd);
	free(dir);
	return rc;
}

int
maildrop_write(const char *spool_dir, const struct envelope *env,
	       const char *msg, size_t len, char id_out[QUEUE_ID_LEN + 1],
	       char *err, size_t errlen)
{
	size_t env_len;
	char *env_text = envelope_format(env, &env_len);
	struct strbuf head = {0};
	strbuf_addf(&head, "%senvelope\t%zu\n", MAILDROP_MAGIC, env_len);
	strbuf_add(&head, env_text, env_len);
	int rc = write_file(spool_dir, head.s, head.len, msg, len, id_out, err,
			    errlen);
	free(head.s);
	free(env_text);
	return rc;
}

int
maildrop_request(const char *spool_dir, const char *request, const char *arg,
		 char *err, size_t errlen)
{
	char id[QUEUE_ID_LEN + 1];
	char *head = xasprintf("%srequest\t%s%s%s\n", MAILDROP_MAGIC, request,
			       arg ? "\t" : "", arg ? arg : "");
	int rc =
	    write_file(spool_dir, head, strlen(head), "", 0, id, err, errlen);
	free(head);
	return rc;
}

void
maildrop_file_free(struct maildrop_file *md)
{
	envelope_free(&md->env);
	free(md->data);
	free(md->request);
	free(md->request_arg);
	memset(md, 0, sizeof(*md));
}

static int
bad(struct maildrop_file *md, const char **errstr, const char *why)
{
	envelope_free(&md->env);
	free(md->request);
	md->request = NULL;
	free(md->request_arg);
	md->request_arg = NULL;
	*errstr = why;
	errno = EINVAL;
	return -1;
}

/* "WORD" or "WORD\tARG": flush [ID|HOST], hold ID, release ID,
 * remove ID, wake IP. */
static int
parse_request(struct maildrop_file *md, const char *w, const char *end,
	      const char **errstr)
{
	static const char *const words[] = {"flush", "hold", "release",
					    "remove", "wake"};
	const char *tab = memchr(w, '\t', (size_t)(end - w));
	const char *wend = tab ? tab : end;
	size_t i;
	for (i = 0; i < SMALT_NELEM(words); i++)
		if ((size_t)(wend - w) == strlen(words[i]) &&
		    memcmp(w, words[i], (size_t)(wend - w)) == 0)
			break;
	if (i == SMALT_NELEM(words))
		return bad(md, errstr, "unknown request");
	char *arg = tab ? xstrndup(tab + 1, (size_t)(end - tab - 1)) : NULL;
	int ok = 1;
	if (i == 0)
		ok =
		    arg == NULL ||
		    (arg[0] != '\0' && strlen(arg) <= 255 &&
		     strspn(arg, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRS"
				 "TUVWXYZ0123456789.-[]:") == strlen(arg));
	else if (i == 4) /* an address */
		ok = arg != NULL && arg[0] != '\0' && strlen(arg) < 46 &&
		     strspn(arg, "0123456789abcdefABCDEF.:") == strlen(arg);
	else
		ok = arg != NULL && queue_id_valid(arg);
	if (!ok) {
		free(arg);
		return bad(md, errstr, "bad request argument");
	}
	md->request = xstrdup(words[i]);
	md->request_arg = arg;
	return 0;
}

int
maildrop_parse(char *data, size_t len, struct maildrop_file *md,
	       const char **errstr)
{
	size_t magic = strlen(MAILDROP_MAGIC);
	memset(&md->env, 0, sizeof(md->env));
	md->request = NULL;
	md->request_arg = NULL;
	md->msg = NULL;
	md->msg_len = 0;
	if (len < magic || memcmp(data, MAILDROP_MAGIC, magic) != 0)
		return bad(md, errstr, "not a maildrop file");
	const char *p = data + magic, *end = data + len;
	const char *nl = memchr(p, '\n', (size_t)(end - p));
	if (nl == NULL)
		return bad(md, errstr, "truncated");
	static const char req[] = "request\t";
	if ((size_t)(nl - p) > sizeof(req) - 1 &&
	    memcmp(p, req, sizeof(req) - 1) == 0) {
		if (nl + 1 != end)
			return bad(md, errstr, "data after a request");
		return parse_request(md, p + sizeof(req) - 1, nl, errstr);
	}
	static const char envk[] = "envelope\t";
	if ((size_t)(nl - p) <= sizeof(envk) - 1 ||
	    memcmp(p, envk, sizeof(envk) - 1) != 0)
		return bad(md, errstr, "no envelope line");
	size_t n = 0;
	for (const char *d = p + sizeof(envk) - 1; d < nl; d++) {
		if (*d < '0' || *d > '9' || n > MAILDROP_ENV_MAX)
			return bad(md, errstr, "bad envelope length");
		n = n * 10 + (size_t)(*d - '0');
	}
	p = nl + 1;
	if (n == 0 || n > MAILDROP_ENV_MAX || n > (size_t)(end - p))
		return bad(md, errstr, "bad envelope length");
	if (envelope_parse(p, n, &md->env, errstr) != 0) {
		errno = EINVAL;
		return -1;
	}
	if (md->env.nrcpt == 0)
		return bad(md, errstr, "no recipients");
	md->msg = p + n;
	md->msg_len = (size_t)(end - md->msg);
	return 0;
}

int
maildrop_read(struct queue *q, const char *name, size_t max_size,
	      struct maildrop_file *md, const char **errstr)
{
	struct stat st;
	size_t len;
	memset(md, 0, sizeof(*md));
	*errstr = NULL;
	char *data =
	    queue_read_file(q, QDIR_MAILDROP, name, max_size, &len, &st);
	if (data == NULL) {
		if (errno == EINVAL)
			*errstr = "not a regular file, or too big";
		else if (errno != ENOENT)
			*errstr = strerror(errno);
		return -1;
	}
	/* A second name would let its owner change the file after we
	 * checked it. */
	if (st.st_nlink != 1) {
		free(data);
		*errstr = "more than one link";
		errno = EINVAL;
		return -1;
	}
	md->uid = st.st_uid;
	if (maildrop_parse(data, len, md, errstr) != 0) {
		free(data);
		return -1;
	}
	md->data = data;
	return 0;
}
