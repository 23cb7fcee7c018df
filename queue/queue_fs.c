#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "queue/queue.h"

#define MSG_BUFSIZE	 (64 * 1024)
#define ENVELOPE_MAXSIZE (64u * 1024 * 1024)

static const char *const dir_names[QDIR_COUNT] = {
    [QDIR_TMP] = "tmp",		  [QDIR_MSG] = "msg",
    [QDIR_INCOMING] = "incoming", [QDIR_DEFERRED] = "deferred",
    [QDIR_HOLD] = "hold",	  [QDIR_CORRUPT] = "corrupt",
    [QDIR_MAILDROP] = "maildrop", [QDIR_STATE] = "state",
};

/* Shares one directory fsync among every committer whose rename happened
 * before it started (group commit). A committer takes a ticket after its
 * rename; an fsync that starts after ticket t was taken covers t. */
struct dirsync {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	uint64_t requested, completed;
	int running;
	/* An fsync error is kept for good: after a failed fsync the kernel
	 * may have dropped the dirty state, so retrying proves nothing. */
	int sticky_errno;
};

struct queue {
	char *path;
	mode_t env_mode; /* 0640 when a drop group may list the queue */
	int dirfd[QDIR_COUNT];
	struct dirsync sync[QDIR_COUNT];
	int group_commit;
};

struct queue_msg {
	struct queue *q;
	char id[QUEUE_ID_LEN + 1];
	int fd;
	int env_fd; /* tmp/ID during commit */
	uint64_t size;
	size_t buflen;
	char *buf;
	int failed; /* errno of the first write error, kept */
};

const char *
queue_dir_name(enum queue_dir d)
{
	return dir_names[d];
}

int
queue_dir_fd(const struct queue *q, enum queue_dir d)
{
	return q->dirfd[d];
}

const char *
queue_path(const struct queue *q)
{
	return q->path;
}

void
queue_set_group_commit(struct queue *q, int on)
{
	q->group_commit = on;
}

static int
dir_fsync(struct queue *q, enum queue_dir d)
{
	struct dirsync *ds = &q->sync[d];

	if (!q->group_commit)
		return fsync(q->dirfd[d]);
	pthread_mutex_lock(&ds->mu);
	uint64_t ticket = ++ds->requested;
	while (ds->completed < ticket && ds->sticky_errno == 0) {
		if (ds->running) {
			pthread_cond_wait(&ds->cv, &ds->mu);
			continue;
		}
		ds->running = 1;
		uint64_t upto = ds->requested;
		pthread_mutex_unlock(&ds->mu);
		int rc = fsync(q->dirfd[d]);
		int err = errno;
		pthread_mutex_lock(&ds->mu);
		ds->running = 0;
		if (rc == 0)
			ds->completed = upto;
		else
			ds->sticky_errno = err;
		pthread_cond_broadcast(&ds->cv);
	}
	int err = ds->sticky_errno;
	pthread_mutex_unlock(&ds->mu);
	if (err != 0) {
		errno = err;
		return -1;
	}
	return 0;
}

static int
make_dir(const char *path, mode_t mode, uid_t owner, gid_t group)
{
	if (mkdir(path, mode) != 0 && errno != EEXIST)
		return -1;
	/* Through a descriptor: root must not chown what a symbolic link
	 * put in the folder's place points to. */
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ELOOP)
			errno = ENOTDIR;
		return -1;
	}
	int rc = 0;
	if ((owner != (uid_t)-1 || group != (gid_t)-1) &&
	    fchown(fd, owner, group) != 0)
		rc = -1;
	/* mkdir's mode is cut by the umask; the sticky bit of maildrop must
	 * be exact, so set it explicitly. */
	if (rc == 0 && fchmod(fd, mode) != 0)
		rc = -1;
	int saved = errno;
	close(fd);
	errno = saved;
	return rc;
}

/* With a drop group (a root start), that group may also read the
 * envelopes (not the messages): it is how mailq, setgid smaltdrop,
 * lists the queue for any user, as Postfix's mailq does. tmp/ and the
 * state folders are setgid so that envelopes get the group. */
static mode_t
dir_mode(int d, int with_group)
{
	switch (d) {
	case QDIR_MAILDROP:
		return 01730;
	case QDIR_TMP:
		return with_group ? 02700 : 0700;
	case QDIR_INCOMING:
	case QDIR_DEFERRED:
	case QDIR_HOLD:
		return with_group ? 02750 : 0700;
	default:
		return 0700;
	}
}

/* A handle with every folder closed, ready to be opened. */
static struct queue *
queue_alloc(const char *spool_dir)
{
	struct queue *q = xcalloc(1, sizeof(*q));
	q->path = xstrdup(spool_dir);
	q->group_commit = 1;
	for (int d = 0; d < QDIR_COUNT; d++) {
		q->dirfd[d] = -1;
		pthread_mutex_init(&q->sync[d].mu, NULL);
		pthread_cond_init(&q->sync[d].cv, NULL);
	}
	return q;
}

struct queue *
queue_open_readonly(const char *spool_dir, char *err, size_t errlen)
{
	struct queue *q = queue_alloc(spool_dir);
	for (int d = 0; d < QDIR_COUNT; d++) {
		char path[4096];
		snprintf(path, sizeof(path), "%s/%s", spool_dir, dir_names[d]);
		/* O_PATH where we may not read (msg/, maildrop/). */
		q->dirfd[d] = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		/* Only where nothing is listed: a state folder we may not
		 * read is an error, not an empty queue. */
		if (q->dirfd[d] < 0 && errno == EACCES &&
		    (d == QDIR_MSG || d == QDIR_MAILDROP || d == QDIR_TMP ||
		     d == QDIR_CORRUPT))
			q->dirfd[d] =
			    open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (q->dirfd[d] < 0) {
			int saved = errno;
			snprintf(err, errlen, "%s: %s", path, strerror(saved));
			queue_close(q);
			errno = saved;
			return NULL;
		}
	}
	return q;
}

struct queue *
queue_open(const char *spool_dir, uid_t owner, gid_t group, char *err,
	   size_t errlen)
{
	struct queue *q = queue_alloc(spool_dir);
	/* The spool itself stays root's (root keeps the pid file and lock
	 * there); the unprivileged user owns the folders inside. */
	if (make_dir(spool_dir, 0755, owner != (uid_t)-1 ? 0 : (uid_t)-1,
		     (gid_t)-1) != 0) {
		snprintf(err, errlen, "%s: %s", spool_dir, strerror(errno));
		goto fail;
	}
	q->env_mode = group != (gid_t)-1 ? 0640 : 0600;
	for (int d = 0; d < QDIR_COUNT; d++) {
		char path[4096];
		mode_t mode = dir_mode(d, group != (gid_t)-1);
		snprintf(path, sizeof(path), "%s/%s", spool_dir, dir_names[d]);
		if (make_dir(path, mode, owner,
			     d == QDIR_MSG || d == QDIR_CORRUPT ||
				     d == QDIR_STATE
				 ? (gid_t)-1
				 : group) != 0 ||
		    (q->dirfd[d] =
			 open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			goto fail;
		}
	}
	return q;
fail:
	queue_close(q);
	return NULL;
}

void
queue_close(struct queue *q)
{
	if (q == NULL)
		return;
	for (int d = 0; d < QDIR_COUNT; d++) {
		if (q->dirfd[d] >= 0)
			close(q->dirfd[d]);
		pthread_mutex_destroy(&q->sync[d].mu);
		pthread_cond_destroy(&q->sync[d].cv);
	}
	free(q->path);
	free(q);
}

struct queue_msg *
queue_msg_create(struct queue *q)
{
	struct queue_msg *m = xcalloc(1, sizeof(*m));
	m->q = q;
	m->env_fd = -1;
	for (int tries = 0; tries < 100; tries++) {
		queue_id_new(m->id);
		m->fd = openat(q->dirfd[QDIR_MSG], m->id,
			       O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (m->fd >= 0) {
			m->buf = xmalloc(MSG_BUFSIZE);
			return m;
		}
		if (errno != EEXIST)
			break;
	}
	int saved = errno;
	free(m);
	errno = saved;
	return NULL;
}

const char *
queue_msg_id(const struct queue_msg *m)
{
	return m->id;
}

uint64_t
queue_msg_size(const struct queue_msg *m)
{
	return m->size;
}

int
queue_msg_error(const struct queue_msg *m)
{
	return m->failed ? m->failed : EIO;
}

static int
msg_flush(struct queue_msg *m)
{
	if (m->failed) {
		errno = m->failed;
		return -1;
	}
	if (m->buflen > 0 && write_all(m->fd, m->buf, m->buflen) != 0) {
		m->failed = errno;
		return -1;
	}
	m->buflen = 0;
	return 0;
}

int
queue_msg_write(struct queue_msg *m, const void *buf, size_t len)
{
	if (m->failed) {
		errno = m->failed;
		return -1;
	}
	m->size += len;
	if (m->buflen + len > MSG_BUFSIZE) {
		if (msg_flush(m) != 0)
			return -1;
		if (len >= MSG_BUFSIZE) {
			if (write_all(m->fd, buf, len) != 0) {
				m->failed = errno;
				return -1;
			}
			return 0;
		}
	}
	memcpy(m->buf + m->buflen, buf, len);
	m->buflen += len;
	return 0;
}

static void
msg_free(struct queue_msg *m)
{
	if (m->fd >= 0)
		close(m->fd);
	if (m->env_fd >= 0)
		close(m->env_fd);
	free(m->buf);
	free(m);
}

void
queue_msg_abort(struct queue_msg *m)
{
	if (m == NULL)
		return;
	if (m->env_fd >= 0)
		unlinkat(m->q->dirfd[QDIR_TMP], m->id, 0);
	unlinkat(m->q->dirfd[QDIR_MSG], m->id, 0);
	msg_free(m);
}

/* Writes the envelope text to tmp/ID (not yet synced). */
static int
write_tmp_envelope(struct queue *q, const struct envelope *env, int *fdp)
{
	size_t len;
	char *text = envelope_format(env, &len);
	int fd = openat(q->dirfd[QDIR_TMP], env->id,
			O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	/* The daemon's umask is 077; mailq's group reads envelopes. */
	if (fd >= 0 && q->env_mode != 0600 && fchmod(fd, q->env_mode) != 0) {
		int saved = errno;
		close(fd);
		unlinkat(q->dirfd[QDIR_TMP], env->id, 0);
		free(text);
		errno = saved;
		return -1;
	}
	if (fd < 0 || write_all(fd, text, len) != 0) {
		int saved = errno;
		if (fd >= 0) {
			close(fd);
			unlinkat(q->dirfd[QDIR_TMP], env->id, 0);
		}
		free(text);
		errno = saved;
		return -1;
	}
	free(text);
	*fdp = fd;
	return 0;
}

/* Starts writeback of a file without waiting, so that the fsyncs that
 * follow find the blocks allocated and one journal commit covers them all
 * rather than one commit per file. */
static void
start_writeback(int fd)
{
	sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
}

static void
batch_fail(struct queue_msg *m, int *ok, int err)
{
	if (*ok && m->env_fd >= 0) {
		close(m->env_fd);
		m->env_fd = -1;
		unlinkat(m->q->dirfd[QDIR_TMP], m->id, 0);
	}
	*ok = 0;
	m->failed = m->failed ? m->failed : err;
}

size_t
queue_msg_commit_batch(struct queue_msg **msgs, struct envelope **envs,
		       size_t n)
{
	if (n == 0)
		return 0;
	struct queue *q = msgs[0]->q;
	int *ok = xcalloc(n, sizeof(*ok));
	size_t committed = 0;

	/* 1: message data out of our buffer, envelope text into tmp/. */
	for (size_t i = 0; i < n; i++) {
		struct queue_msg *m = msgs[i];
		struct envelope *env = envs[i];
		memcpy(env->id, m->id, sizeof(env->id));
		env->size = m->size;
		if (env->arrival == 0)
			env->arrival = time(NULL);
		ok[i] = 1;
		if (msg_flush(m) != 0 ||
		    write_tmp_envelope(q, env, &m->env_fd) != 0) {
			batch_fail(m, &ok[i], errno);
			continue;
		}
		start_writeback(m->fd);
		start_writeback(m->env_fd);
	}
	/* 2: both files durable, and the message file's name. */
	for (size_t i = 0; i < n; i++)
		if (ok[i] &&
		    (fsync(msgs[i]->fd) != 0 || fsync(msgs[i]->env_fd) != 0))
			batch_fail(msgs[i], &ok[i], errno);
	if (dir_fsync(q, QDIR_MSG) != 0)
		for (size_t i = 0; i < n; i++)
			batch_fail(msgs[i], &ok[i], errno);
	/* 3: the commit point: the envelope's rename into incoming/. */
	for (size_t i = 0; i < n; i++) {
		if (!ok[i])
			continue;
		if (renameat(q->dirfd[QDIR_TMP], msgs[i]->id,
			     q->dirfd[QDIR_INCOMING], msgs[i]->id) != 0)
			batch_fail(msgs[i], &ok[i], errno);
	}
	if (dir_fsync(q, QDIR_INCOMING) != 0) {
		/* Visible but maybe not durable: take it back, so that the
		 * client's retry is the only copy. */
		int err = errno;
		for (size_t i = 0; i < n; i++) {
			if (!ok[i])
				continue;
			unlinkat(q->dirfd[QDIR_INCOMING], msgs[i]->id, 0);
			ok[i] = 0;
			msgs[i]->failed = err;
		}
	}
	for (size_t i = 0; i < n; i++) {
		if (!ok[i])
			continue;
		msg_free(msgs[i]);
		msgs[i] = NULL;
		committed++;
	}
	free(ok);
	return committed;
}

int
queue_msg_commit(struct queue_msg *m, struct envelope *env)
{
	struct queue_msg *msgs[1] = {m};
	struct envelope *envs[1] = {env};
	if (queue_msg_commit_batch(msgs, envs, 1) == 1)
		return 0;
	errno = m->failed ? m->failed : EIO;
	return -1;
}

/* Reads a small file whole, refusing links, non-regular files and files
 * over limit: everything in the spool is untrusted once written. */
static char *
read_file_at(int dirfd, const char *name, size_t limit, size_t *lenp,
	     struct stat *stp)
{
	int fd =
	    openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		/* A symbolic link (ELOOP) or a FIFO (ENXIO) is a bad file,
		 * not a missing one. */
		if (errno == ELOOP || errno == ENXIO)
			errno = EINVAL;
		return NULL;
	}
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_size > limit) {
		close(fd);
		errno = EINVAL;
		return NULL;
	}
	if (stp != NULL)
		*stp = st;
	size_t len = (size_t)st.st_size, got = 0;
	char *buf = xmalloc(len + 1);
	while (got < len) {
		ssize_t r = read(fd, buf + got, len - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	if (got != len) {
		free(buf);
		errno = EIO;
		return NULL;
	}
	buf[len] = '\0';
	*lenp = len;
	return buf;
}

char *
queue_read_file(struct queue *q, enum queue_dir dir, const char *name,
		size_t limit, size_t *lenp, struct stat *st)
{
	return read_file_at(q->dirfd[dir], name, limit, lenp, st);
}

int
queue_env_read(struct queue *q, enum queue_dir dir, const char *id,
	       struct envelope *env, const char **errstr)
{
	size_t len;
	*errstr = NULL;
	/* On failure env holds nothing to free. */
	memset(env, 0, sizeof(*env));
	if (!queue_id_valid(id)) {
		*errstr = "not a queue id";
		errno = EINVAL;
		return -1;
	}
	char *text =
	    read_file_at(q->dirfd[dir], id, ENVELOPE_MAXSIZE, &len, NULL);
	if (text == NULL) {
		*errstr = errno == EINVAL ? "not a regular file of sane size"
					  : strerror(errno);
		return -1;
	}
	int rc = envelope_parse(text, len, env, errstr);
	free(text);
	if (rc == 0 && strcmp(env->id, id) != 0) {
		*errstr = "envelope id differs from its file name";
		envelope_free(env);
		rc = -1;
	}
	if (rc != 0)
		errno = EINVAL;
	return rc;
}

int
queue_state_write(struct queue *q, const char *name, const char *text,
		  size_t len)
{
	char tmp[300];
	snprintf(tmp, sizeof(tmp), ".%s.new", name);
	int fd =
	    openat(q->dirfd[QDIR_STATE], tmp,
		   O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	int rc = write_all(fd, text, len);
	if (close(fd) != 0)
		rc = -1;
	if (rc == 0)
		rc = renameat(q->dirfd[QDIR_STATE], tmp, q->dirfd[QDIR_STATE],
			      name);
	if (rc != 0)
		unlinkat(q->dirfd[QDIR_STATE], tmp, 0);
	return rc;
}

char *
queue_state_read(struct queue *q, const char *name, size_t *len)
{
	return read_file_at(q->dirfd[QDIR_STATE], name, 1024 * 1024, len, NULL);
}

int
queue_env_exists(struct queue *q, enum queue_dir dir, const char *id)
{
	struct stat st;
	return fstatat(q->dirfd[dir], id, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

int
queue_env_move(struct queue *q, const char *id, enum queue_dir from,
	       enum queue_dir to)
{
	if (from == to)
		return 0;
	if (renameat(q->dirfd[from], id, q->dirfd[to], id) != 0)
		return -1;
	/* The new name first: after a crash between the two fsyncs the file
	 * is in one place or the other, never lost. */
	if (dir_fsync(q, to) != 0 || dir_fsync(q, from) != 0)
		return -1;
	return 0;
}

int
queue_env_write(struct queue *q, enum queue_dir from, enum queue_dir to,
		const struct envelope *env)
{
	/* Move first, then replace the content: there is never a moment
	 * with the envelope in two state folders. */
	if (queue_env_move(q, env->id, from, to) != 0)
		return -1;
	int fd;
	if (write_tmp_envelope(q, env, &fd) != 0)
		return -1;
	if (fsync(fd) != 0) {
		int saved = errno;
		close(fd);
		unlinkat(q->dirfd[QDIR_TMP], env->id, 0);
		errno = saved;
		return -1;
	}
	close(fd);
	if (renameat(q->dirfd[QDIR_TMP], env->id, q->dirfd[to], env->id) != 0)
		return -1;
	return dir_fsync(q, to);
}

int
queue_remove(struct queue *q, enum queue_dir dir, const char *id)
{
	if (unlinkat(q->dirfd[dir], id, 0) != 0)
		return -1;
	/* No folder fsync: a removal lost to a power cut only brings a
	 * delivered message back to be delivered again (at least once),
	 * and the fsync would cost every delivery a disk flush in the
	 * scheduler's loop. Postfix does not sync removals either. */
	/* An orphaned message file left by a crash here is removed at the
	 * next start-up. */
	if (unlinkat(q->dirfd[QDIR_MSG], id, 0) != 0 && errno != ENOENT)
		return -1;
	return 0;
}

static int
move_aside(struct queue *q, enum queue_dir dir, const char *name,
	   const char *suffix)
{
	char target[300];
	struct stat st;
	/* Never overwrite an earlier quarantined file of the same name. */
	for (int n = 0; n < 1000; n++) {
		if (n == 0)
			snprintf(target, sizeof(target), "%s%s", name, suffix);
		else
			snprintf(target, sizeof(target), "%s%s.%d", name,
				 suffix, n);
		if (fstatat(q->dirfd[QDIR_CORRUPT], target, &st,
			    AT_SYMLINK_NOFOLLOW) != 0)
			break;
	}
	return renameat(q->dirfd[dir], name, q->dirfd[QDIR_CORRUPT], target);
}

static int
quarantine(struct queue *q, enum queue_dir dir, const char *name,
	   const char *why, int with_msg)
{
	int rc = move_aside(q, dir, name, "");
	if (rc != 0) {
		log_warn("%s: cannot move %s/%s to %s/ (%s): %s", name,
			 dir_names[dir], name, dir_names[QDIR_CORRUPT],
			 strerror(errno), why);
		return -1;
	}
	log_warn("%s: moved %s/%s to %s/: %s", name, dir_names[dir], name,
		 dir_names[QDIR_CORRUPT], why);
	if (with_msg && dir != QDIR_MSG && dir != QDIR_TMP &&
	    dir != QDIR_MAILDROP && queue_id_valid(name) &&
	    move_aside(q, QDIR_MSG, name, ".msg") != 0 && errno != ENOENT)
		rc = -1;
	if (dir_fsync(q, QDIR_CORRUPT) != 0)
		rc = -1;
	return rc;
}

int
queue_quarantine(struct queue *q, enum queue_dir dir, const char *name,
		 const char *why)
{
	return quarantine(q, dir, name, why, 1);
}

int
queue_msg_open(struct queue *q, const char *id)
{
	if (!queue_id_valid(id)) {
		errno = EINVAL;
		return -1;
	}
	/* O_NONBLOCK: a FIFO in its place must not hang the reader. */
	return openat(q->dirfd[QDIR_MSG], id,
		      O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
}

static int
cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
free_names(char **v, long n)
{
	for (long i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* Names in a folder, sorted. *names is malloc'd; each name too. */
static long
list_dir(struct queue *q, enum queue_dir dir, char ***names)
{
	int fd = dup(q->dirfd[dir]);
	if (fd < 0)
		return -1;
	DIR *d = fdopendir(fd);
	if (d == NULL) {
		close(fd);
		return -1;
	}
	rewinddir(d);
	size_t n = 0, cap = 64;
	char **v = xmalloc(cap * sizeof(*v));
	struct dirent *de;
	errno = 0;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (n == cap)
			v = xrealloc(v, (cap *= 2) * sizeof(*v));
		v[n++] = xstrdup(de->d_name);
	}
	if (errno != 0) {
		int saved = errno;
		closedir(d);
		free_names(v, (long)n);
		errno = saved;
		return -1;
	}
	closedir(d);
	qsort(v, n, sizeof(*v), cmp_name);
	*names = v;
	return (long)n;
}

long
queue_scan(struct queue *q, enum queue_dir dir, queue_scan_fn fn, void *arg)
{
	char **names;
	long n = list_dir(q, dir, &names);
	if (n < 0)
		return -1;
	long visited = 0;
	for (long i = 0; i < n; i++) {
		if (!queue_id_valid(names[i]))
			continue;
		visited++;
		if (fn(q, dir, names[i], arg) != 0)
			break;
	}
	free_names(names, n);
	return visited;
}

/* Checks one envelope and its message file; quarantines what fails.
 * Returns 1 when the message is valid. */
static int
recover_one(struct queue *q, enum queue_dir dir, const char *name,
	    struct queue_recover_stats *stats)
{
	struct envelope env;
	const char *why;
	char reason[160];
	struct stat st;

	if (!queue_id_valid(name)) {
		queue_quarantine(q, dir, name, "not a queue file name");
		stats->quarantined++;
		return 0;
	}
	if (queue_env_read(q, dir, name, &env, &why) != 0) {
		snprintf(reason, sizeof(reason), "bad envelope: %s", why);
		queue_quarantine(q, dir, name, reason);
		stats->quarantined++;
		return 0;
	}
	if (fstatat(q->dirfd[QDIR_MSG], name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
	    !S_ISREG(st.st_mode)) {
		why = "message file missing";
	} else if ((uint64_t)st.st_size != env.size) {
		why = "message file size differs from the envelope";
	} else {
		envelope_free(&env);
		stats->messages++;
		return 1;
	}
	envelope_free(&env);
	queue_quarantine(q, dir, name, why);
	stats->quarantined++;
	return 0;
}

struct state_entry {
	char *name;
	enum queue_dir dir;
};

static int
cmp_state_entry(const void *a, const void *b)
{
	const struct state_entry *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	return c ? c : (int)x->dir - (int)y->dir;
}

/* Every name in incoming/, deferred/ and hold/, sorted by name. */
static long
list_states(struct queue *q, struct state_entry **out)
{
	static const enum queue_dir states[] = {QDIR_INCOMING, QDIR_DEFERRED,
						QDIR_HOLD};
	struct state_entry *v = NULL;
	size_t nv = 0;
	for (size_t s = 0; s < SMALT_NELEM(states); s++) {
		char **names;
		long n = list_dir(q, states[s], &names);
		if (n < 0) {
			for (size_t i = 0; i < nv; i++)
				free(v[i].name);
			free(v);
			return -1;
		}
		v = xrealloc(v, (nv + (size_t)n + 1) * sizeof(*v));
		for (long i = 0; i < n; i++)
			v[nv++] = (struct state_entry){names[i], states[s]};
		free(names);
	}
	qsort(v, nv, sizeof(*v), cmp_state_entry);
	*out = v;
	return (long)nv;
}

int
queue_recover(struct queue *q, struct queue_recover_stats *stats)
{
	struct queue_recover_stats local;
	struct state_entry *env;
	char **names, **valid;
	size_t nvalid = 0;
	long n, nenv;

	if (stats == NULL)
		stats = &local;
	memset(stats, 0, sizeof(*stats));
	/* tmp/ holds only envelopes never renamed into place. */
	if ((n = list_dir(q, QDIR_TMP, &names)) < 0)
		return -1;
	for (long i = 0; i < n; i++)
		if (unlinkat(q->dirfd[QDIR_TMP], names[i], 0) == 0)
			stats->tmp_removed++;
	free_names(names, n);

	if ((nenv = list_states(q, &env)) < 0)
		return -1;
	valid = xmalloc(((size_t)nenv + 1) * sizeof(*valid));
	for (long i = 0; i < nenv; i++) {
		/* Moves never leave two copies; a second one was put there
		 * by hand and is not trusted. */
		if (i > 0 && strcmp(env[i].name, env[i - 1].name) == 0) {
			quarantine(q, env[i].dir, env[i].name,
				   "envelope in two folders", 0);
			stats->quarantined++;
		} else if (recover_one(q, env[i].dir, env[i].name, stats)) {
			valid[nvalid++] = env[i].name;
		}
	}

	/* A message file with no envelope was never committed. valid[] is
	 * sorted because env[] is. */
	if ((n = list_dir(q, QDIR_MSG, &names)) >= 0) {
		for (long i = 0; i < n; i++) {
			if (nvalid && bsearch(&names[i], valid, nvalid,
					      sizeof(*valid), cmp_name))
				continue;
			if (unlinkat(q->dirfd[QDIR_MSG], names[i], 0) == 0) {
				stats->orphans_removed++;
				log_info("%s: removed uncommitted message file",
					 names[i]);
			}
		}
		free_names(names, n);
	}
	for (long i = 0; i < nenv; i++)
		free(env[i].name);
	free(env);
	free(valid);
	if (n < 0)
		return -1;
	for (int d = 0; d < QDIR_COUNT; d++)
		if (dir_fsync(q, (enum queue_dir)d) != 0)
			return -1;
	return 0;
}
