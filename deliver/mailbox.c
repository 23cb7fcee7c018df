#include "deliver/mailbox.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "common/util.h"

#define CHUNK (64 * 1024)
/* A Delivered-To value longer than this cannot be an address we would
 * compare with (RFC 5321 paths are at most 256 octets). */
#define FIELD_MAX 1024
/* gethostname's limit (HOST_NAME_MAX on Linux). */
#define HOST_MAX 255

static unsigned lock_timeout_ms = MAILBOX_LOCK_TIMEOUT_MS;

void
mailbox_set_lock_timeout(unsigned ms)
{
	lock_timeout_ms = ms;
}

/* --- results ---------------------------------------------------------- */

/* The one place that decides what an errno means for the sender: see the
 * header for the policy. */
static void
fail_errno(struct deliver_result *res, int err, const char *what,
	   const char *path)
{
	switch (err) {
	case ENOSPC:
	case EDQUOT:
	case EFBIG:
		deliver_result_set(res, DELIVER_DEFER, "4.2.2",
				   "mailbox full: %s %s: %s", what, path,
				   strerror(err));
		return;
	case ELOOP:
	case ENOTDIR:
	case EISDIR:
	case ENAMETOOLONG:
		deliver_result_set(res, DELIVER_BOUNCE, "5.2.0", "%s %s: %s",
				   what, path, strerror(err));
		return;
	case EIO:
	case ENOMEM:
	case EMFILE:
	case ENFILE:
	case EROFS:
		deliver_result_set(res, DELIVER_DEFER, "4.3.0", "%s %s: %s",
				   what, path, strerror(err));
		return;
	default:
		deliver_result_set(res, DELIVER_DEFER, "4.2.0", "%s %s: %s",
				   what, path, strerror(err));
	}
}

/* --- clocks and waiting ----------------------------------------------- */

static long long
mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sleeps a little longer each time (2 ms up to 500 ms) so that a lock
 * released at once is taken at once and a long wait costs few wake-ups.
 * The usual holder is another delivery of ours, done in a few ms. 0
 * when the deadline has passed. */
static int
pause_until(long long deadline, unsigned *backoff)
{
	long long left = deadline - mono_ms();
	if (left <= 0)
		return 0;
	*backoff = *backoff == 0 ? 2 : *backoff * 2;
	if (*backoff > 500)
		*backoff = 500;
	long long ms = left < *backoff ? left : *backoff;
	struct timespec ts = {.tv_sec = ms / 1000,
			      .tv_nsec = (ms % 1000) * 1000000};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
	return 1;
}

/* --- the output stream: CRLF -> LF and mboxrd quoting ------------------ */

struct out {
	int fd;
	char *buf;
	size_t len;
	int err;      /* errno of the first failed write; the rest is dropped */
	int quote;    /* mboxrd: quote lines matching ^>*From_ */
	int bol;      /* the next byte starts a line */
	int scanning; /* at a line start, matching >*From_ so far */
	size_t gts;   /* '>' seen in that match */
	size_t matched; /* octets of "From " seen in that match */
	int cr;		/* the last input octet was a CR, not yet written */
	char last;	/* the last octet written */
};

static void
out_init(struct out *o, int fd, int quote)
{
	memset(o, 0, sizeof(*o));
	o->fd = fd;
	o->buf = xmalloc(CHUNK);
	o->quote = quote;
	o->bol = 1;
	o->last = '\n';
}

static void
out_flush(struct out *o)
{
	if (o->len > 0 && o->err == 0 && write_all(o->fd, o->buf, o->len) < 0)
		o->err = errno;
	o->len = 0;
}

static void
emit(struct out *o, const char *p, size_t n)
{
	if (n == 0 || o->err != 0)
		return;
	o->last = p[n - 1];
	while (n > 0) {
		size_t k = CHUNK - o->len < n ? CHUNK - o->len : n;
		memcpy(o->buf + o->len, p, k);
		o->len += k;
		p += k;
		n -= k;
		if (o->len == CHUNK)
			out_flush(o);
	}
}

static void
emit_gts(struct out *o, size_t n)
{
	static const char gts[] = ">>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>";
	while (n > 0) {
		size_t k = n < sizeof(gts) - 1 ? n : sizeof(gts) - 1;
		emit(o, gts, k);
		n -= k;
	}
}

/* The line start did not turn out to be ^>*From_: give back what the
 * match held back, unchanged. */
static void
scan_giveup(struct out *o)
{
	emit_gts(o, o->gts);
	emit(o, "From ", o->matched);
	o->scanning = 0;
}

/* Takes LF-normalised text. The match is a small state machine rather
 * than a look at a buffered line so that a line start split across
 * chunks, or a run of '>' of any length, is quoted all the same. */
static void
put(struct out *o, const char *p, size_t n)
{
	while (n > 0) {
		if (o->scanning) {
			if (o->matched == 0 && *p == '>') {
				o->gts++;
			} else if (*p == "From "[o->matched]) {
				if (++o->matched == 5) {
					emit_gts(o, o->gts + 1);
					emit(o, "From ", 5);
					o->scanning = 0;
				}
			} else {
				scan_giveup(o);
				continue; /* *p is ordinary text */
			}
			p++;
			n--;
			continue;
		}
		if (o->bol && o->quote) {
			o->bol = 0;
			o->scanning = 1;
			o->gts = o->matched = 0;
			continue;
		}
		const char *nl = memchr(p, '\n', n);
		size_t k = nl != NULL ? (size_t)(nl - p) + 1 : n;
		emit(o, p, k);
		o->bol = nl != NULL;
		p += k;
		n -= k;
	}
}

/* Shared with the pipe channel (result.h). A CR is held back until the
 * next octet shows whether it ends a line, which may be in the next
 * chunk. */
size_t
crlf_to_lf(int *held_cr, const char *in, size_t n, char *out)
{
	size_t o = 0;
	if (*held_cr && n > 0) {
		*held_cr = 0;
		if (*in != '\n')
			out[o++] = '\r';
	}
	while (n > 0) {
		const char *cr = memchr(in, '\r', n);
		size_t k = cr != NULL ? (size_t)(cr - in) : n;
		memcpy(out + o, in, k);
		o += k;
		in += k;
		n -= k;
		if (n == 0)
			break;
		in++; /* the CR */
		n--;
		if (n == 0)
			*held_cr = 1; /* its LF may start the next call */
		else if (*in != '\n')
			out[o++] = '\r';
	}
	return o;
}

/* Takes the raw message text, in slices so that the converted copy fits
 * on the stack. */
static void
feed(struct out *o, const char *p, size_t n)
{
	char conv[4096 + 1];
	while (n > 0) {
		size_t k = n < sizeof(conv) - 1 ? n : sizeof(conv) - 1;
		put(o, conv, crlf_to_lf(&o->cr, p, k, conv));
		p += k;
		n -= k;
	}
}

static void
feed_end(struct out *o)
{
	if (o->cr) {
		o->cr = 0;
		put(o, "\r", 1);
	}
	if (o->scanning)
		scan_giveup(o);
}

static void
feed_headers(struct out *o, const char *headers)
{
	if (headers == NULL || *headers == '\0')
		return;
	feed(o, headers, strlen(headers));
	feed_end(o);
	if (o->last != '\n')
		put(o, "\n", 1);
}

/* Streams the message file through o. 0, or the errno of a failed read
 * (write errors are in o->err). */
static int
feed_message(struct out *o, int msg_fd)
{
	char *in = xmalloc(CHUNK);
	off_t off = 0;
	int err = 0;
	while (o->err == 0) {
		ssize_t n = pread(msg_fd, in, CHUNK, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err = errno;
			break;
		}
		if (n == 0)
			break;
		feed(o, in, (size_t)n);
		off += n;
	}
	feed_end(o);
	free(in);
	return err;
}

/* --- mbox ----------------------------------------------------------- */

/* asctime(3) without its newline, spelled out so that no locale can
 * change the day and month names. */
static void
from_date(time_t now, char *buf, size_t len)
{
	static const char *const days[7] = {"Sun", "Mon", "Tue", "Wed",
					    "Thu", "Fri", "Sat"};
	static const char *const months[12] = {"Jan", "Feb", "Mar", "Apr",
					       "May", "Jun", "Jul", "Aug",
					       "Sep", "Oct", "Nov", "Dec"};
	struct tm tm;
	if (localtime_r(&now, &tm) == NULL)
		memset(&tm, 0, sizeof(tm));
	snprintf(buf, len, "%s %s %2d %02d:%02d:%02d %d",
		 days[(unsigned)tm.tm_wday % 7],
		 months[(unsigned)tm.tm_mon % 12], tm.tm_mday, tm.tm_hour,
		 tm.tm_min, tm.tm_sec, tm.tm_year + 1900);
}

/* A From_ line is split on white space by every reader, so the sender
 * must be one word. */
static char *
from_line(const char *sender, time_t now)
{
	char date[64];
	from_date(now, date, sizeof(date));
	if (sender == NULL || *sender == '\0')
		sender = "MAILER-DAEMON";
	char *s = xstrdup(sender);
	for (char *p = s; *p != '\0'; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f)
			*p = '_';
	char *line = xasprintf("From %s %s\n", s, date);
	free(s);
	return line;
}

/* Refuses what must not be written through before any lock is taken;
 * O_NOFOLLOW and the checks after locking close the races. */
static int
mbox_precheck(const char *path, struct deliver_result *res)
{
	struct stat st;
	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		fail_errno(res, errno, "cannot look up mailbox", path);
		return -1;
	}
	if (S_ISLNK(st.st_mode)) {
		deliver_result_set(res, DELIVER_BOUNCE, "5.2.0",
				   "mailbox %s is a symbolic link", path);
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		deliver_result_set(res, DELIVER_BOUNCE, "5.2.0",
				   "mailbox %s is not a regular file", path);
		return -1;
	}
	return 0;
}

static int
dotlock_stale_removed(const char *lock)
{
	struct stat st;
	if (lstat(lock, &st) < 0)
		return errno == ENOENT; /* released meanwhile: try again */
	if (time(NULL) - st.st_mtime <= MAILBOX_DOTLOCK_STALE)
		return 0;
	return unlink(lock) == 0 || errno == ENOENT;
}

/* 1 with *lockp (malloc'd) when we hold the dot-lock, 0 when the folder
 * does not let us make one (fcntl alone then), -1 with res set. */
static int
dotlock_acquire(const char *path, long long deadline, char **lockp,
		struct deliver_result *res)
{
	char *lock = xasprintf("%s.lock", path);
	unsigned backoff = 0;
	*lockp = NULL;
	for (;;) {
		int fd = open(
		    lock, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		    0600);
		if (fd >= 0) {
			char pid[32];
			int n =
			    snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
			write_all(fd, pid, (size_t)n); /* only informative */
			close(fd);
			*lockp = lock;
			return 1;
		}
		int err = errno;
		if (err == EACCES || err == EPERM) {
			free(lock);
			return 0;
		}
		if (err != EEXIST && err != EINTR) {
			fail_errno(res, err, "cannot create lock file", lock);
			free(lock);
			return -1;
		}
		if (err == EEXIST && dotlock_stale_removed(lock))
			continue;
		if (!pause_until(deadline, &backoff)) {
			deliver_result_set(
			    res, DELIVER_DEFER, "4.2.0",
			    "mailbox locked: %s is held by another "
			    "process",
			    lock);
			free(lock);
			return -1;
		}
	}
}

static void
dotlock_release(char *lock)
{
	if (lock != NULL)
		unlink(lock);
	free(lock);
}

/* Opens path for appending, creating it when missing; *created says
 * which. O_NONBLOCK keeps a FIFO planted at the path from hanging us. */
static int
mbox_open(const char *path, int *created, struct deliver_result *res)
{
	const int flags =
	    O_RDWR | O_APPEND | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
	for (int tries = 0; tries < 5; tries++) {
		int fd = open(path, flags);
		if (fd >= 0) {
			*created = 0;
			return fd;
		}
		if (errno != ENOENT)
			break;
		fd = open(path, flags | O_CREAT | O_EXCL, 0600);
		if (fd >= 0) {
			*created = 1;
			return fd;
		}
		if (errno != EEXIST)
			break;
	}
	if (errno == ELOOP)
		deliver_result_set(res, DELIVER_BOUNCE, "5.2.0",
				   "mailbox %s is a symbolic link", path);
	else
		fail_errno(res, errno, "cannot open mailbox", path);
	return -1;
}

static int
fcntl_lock(int fd, const char *path, long long deadline,
	   struct deliver_result *res)
{
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
	unsigned backoff = 0;
	for (;;) {
		if (fcntl(fd, F_SETLK, &fl) == 0)
			return 0;
		if (errno != EACCES && errno != EAGAIN && errno != EINTR) {
			fail_errno(res, errno, "cannot lock mailbox", path);
			return -1;
		}
		if (!pause_until(deadline, &backoff)) {
			deliver_result_set(
			    res, DELIVER_DEFER, "4.2.0",
			    "mailbox locked: %s is locked (fcntl) by "
			    "another process",
			    path);
			return -1;
		}
	}
}

static int owner_check;

void
mailbox_set_owner_check(int on)
{
	owner_check = on;
}

static int
mbox_check_file(const char *path, const struct stat *st,
		struct deliver_result *res)
{
	/* In a sticky, world-writable spool anyone may create another
	 * user's mailbox first, and read what lands in it. */
	if (owner_check && st->st_uid != geteuid()) {
		deliver_result_set(res, DELIVER_DEFER, "4.2.0",
				   "mailbox %s is owned by uid %lu, not by "
				   "the recipient (uid %lu)",
				   path, (unsigned long)st->st_uid,
				   (unsigned long)geteuid());
		return -1;
	}
	if (!S_ISREG(st->st_mode)) {
		deliver_result_set(res, DELIVER_BOUNCE, "5.2.0",
				   "mailbox %s is not a regular file", path);
		return -1;
	}
	/* A hard link planted by someone else would get the mail. */
	if (st->st_nlink > 1) {
		deliver_result_set(res, DELIVER_BOUNCE, "5.2.0",
				   "mailbox %s has %lu hard links", path,
				   (unsigned long)st->st_nlink);
		return -1;
	}
	return 0;
}

/* Opens and fcntl-locks the file that path names when the lock is
 * granted: a writer that replaced the mbox by rename while we waited
 * makes us lock the new file. *st is the locked file's. */
static int
mbox_open_locked(const char *path, long long deadline, int *created,
		 struct stat *st, struct deliver_result *res)
{
	for (;;) {
		int fd = mbox_open(path, created, res);
		if (fd < 0)
			return -1;
		if (fcntl_lock(fd, path, deadline, res) < 0) {
			close(fd);
			return -1;
		}
		if (fstat(fd, st) < 0) {
			fail_errno(res, errno, "cannot stat mailbox", path);
			close(fd);
			return -1;
		}
		if (mbox_check_file(path, st, res) < 0) {
			close(fd);
			return -1;
		}
		struct stat now;
		if (lstat(path, &now) == 0 && now.st_dev == st->st_dev &&
		    now.st_ino == st->st_ino)
			return fd;
		close(fd);
		if (mono_ms() >= deadline) {
			deliver_result_set(res, DELIVER_DEFER, "4.2.0",
					   "mailbox %s keeps being replaced",
					   path);
			return -1;
		}
	}
}

/* What must come before our From_ line so that it follows an empty line
 * (or starts the file): "", "\n" or "\n\n". */
static const char *
mbox_separator(int fd, off_t size)
{
	char tail[2];
	if (size == 0)
		return "";
	off_t off = size >= 2 ? size - 2 : 0;
	ssize_t n = pread(fd, tail, (size_t)(size - off), off);
	if (n <= 0 || tail[n - 1] != '\n')
		return "\n\n";
	if (n == 1 || tail[0] == '\n')
		return "";
	return "\n";
}

/* The end of every mailbox write: flush, then report the first of a
 * read error, a write error or a failed fsync. */
static int
finish_write(struct out *o, int fd, int rerr, const char *write_what,
	     const char *sync_what, const char *path,
	     struct deliver_result *res)
{
	out_flush(o);
	free(o->buf);
	if (rerr != 0) {
		deliver_result_set(res, DELIVER_DEFER, "4.3.0",
				   "cannot read the message file: %s",
				   strerror(rerr));
		return -1;
	}
	if (o->err != 0) {
		fail_errno(res, o->err, write_what, path);
		return -1;
	}
	if (fsync(fd) < 0) {
		fail_errno(res, errno, sync_what, path);
		return -1;
	}
	return 0;
}

/* Writes and syncs the message. 0, or -1 with res set; the caller rolls
 * back. */
static int
mbox_write(int fd, const char *path, off_t size, const char *sender, time_t now,
	   int msg_fd, const char *headers, struct deliver_result *res)
{
	struct out o;
	out_init(&o, fd, 1);
	const char *sep = mbox_separator(fd, size);
	emit(&o, sep, strlen(sep));
	char *from = from_line(sender, now);
	emit(&o, from, strlen(from));
	free(from);
	feed_headers(&o, headers);
	int rerr = feed_message(&o, msg_fd);
	if (o.last != '\n')
		put(&o, "\n", 1);
	put(&o, "\n", 1);
	return finish_write(&o, fd, rerr, "cannot write to mailbox",
			    "cannot sync mailbox", path, res);
}

/* Takes back a failed append so that no reader ever sees part of a
 * message; res keeps the first error, with a note when this fails. */
static void
mbox_rollback(int fd, const char *path, off_t size, int created,
	      struct deliver_result *res)
{
	if (created && unlink(path) == 0)
		return;
	if (ftruncate(fd, size) < 0 || fsync(fd) < 0) {
		size_t n = strlen(res->reason);
		snprintf(res->reason + n, sizeof(res->reason) - n,
			 "; truncating it back failed: %s", strerror(errno));
	}
}

static const char *
parent_dir(const char *path, char *buf, size_t len)
{
	const char *slash = strrchr(path, '/');
	if (slash == NULL)
		return ".";
	if (slash == path)
		return "/";
	size_t n = (size_t)(slash - path);
	if (n >= len)
		return NULL;
	memcpy(buf, path, n);
	buf[n] = '\0';
	return buf;
}

void
mbox_deliver(const char *path, const char *sender, time_t now, int msg_fd,
	     const char *headers, struct deliver_result *res)
{
	if (mbox_precheck(path, res) < 0)
		return;
	long long deadline = mono_ms() + lock_timeout_ms;
	char *lock;
	if (dotlock_acquire(path, deadline, &lock, res) < 0)
		return;
	int created;
	struct stat st;
	int fd = mbox_open_locked(path, deadline, &created, &st, res);
	if (fd < 0) {
		dotlock_release(lock);
		return;
	}
	char dirbuf[4096];
	const char *dir = parent_dir(path, dirbuf, sizeof(dirbuf));
	if (mbox_write(fd, path, st.st_size, sender, now, msg_fd, headers,
		       res) < 0) {
		mbox_rollback(fd, path, st.st_size, created, res);
	} else if (created && (dir == NULL || fsync_dir(dir) < 0)) {
		fail_errno(res, dir == NULL ? ENAMETOOLONG : errno,
			   "cannot sync the folder of mailbox", path);
		mbox_rollback(fd, path, st.st_size, created, res);
	} else {
		deliver_result_set(res, DELIVER_OK, "2.0.0",
				   "delivered to mailbox");
	}
	close(fd); /* releases the fcntl lock before the dot-lock */
	dotlock_release(lock);
}

/* --- Maildir ---------------------------------------------------------- */

/* 0 when path is (now) a folder; *made says whether we made it. */
static int
make_dir(const char *path, int *made, struct deliver_result *res)
{
	struct stat st;
	if (mkdir(path, 0700) == 0) {
		*made = 1;
		return 0;
	}
	if (errno != EEXIST) {
		fail_errno(res, errno, "cannot create maildir folder", path);
		return -1;
	}
	if (stat(path, &st) < 0) {
		fail_errno(res, errno, "cannot look up maildir folder", path);
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		fail_errno(res, ENOTDIR, "maildir folder", path);
		return -1;
	}
	return 0;
}

static int
maildir_make(const char *dir, struct deliver_result *res)
{
	static const char *const subs[] = {"tmp", "new", "cur"};
	int made_top = 0, made_sub = 0;
	if (make_dir(dir, &made_top, res) < 0)
		return -1;
	for (size_t i = 0; i < SMALT_NELEM(subs); i++) {
		char *p = xasprintf("%s/%s", dir, subs[i]);
		int rc = make_dir(p, &made_sub, res);
		free(p);
		if (rc < 0)
			return -1;
	}
	/* New folders must survive a crash like the message in them. */
	char buf[4096];
	const char *parent = parent_dir(dir, buf, sizeof(buf));
	if ((made_top && parent != NULL && fsync_dir(parent) < 0) ||
	    (made_sub && fsync_dir(dir) < 0)) {
		fail_errno(res, errno, "cannot sync maildir", dir);
		return -1;
	}
	return 0;
}

/* The host name part of a unique name: '/' and ':' would make it a path
 * or start the info part, so the Maildir convention writes them in
 * octal. */
static void
maildir_host(char *out, size_t len)
{
	char host[HOST_MAX + 1];
	if (gethostname(host, sizeof(host)) < 0 || host[0] == '\0')
		smalt_strlcpy(host, "localhost", sizeof(host));
	host[sizeof(host) - 1] = '\0';
	size_t o = 0;
	for (const char *p = host; *p != '\0' && o + 5 < len; p++) {
		if (*p == '/' || *p == ':') {
			o += (size_t)snprintf(out + o, len - o, "\\%03o",
					      (unsigned char)*p);
		} else {
			out[o++] = *p;
		}
	}
	out[o] = '\0';
}

static void
maildir_name(char *out, size_t len)
{
	static unsigned long deliveries;
	struct timeval tv;
	gettimeofday(&tv, NULL);
	uint32_t rnd;
	if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != sizeof(rnd))
		rnd = 0;
	char host[2 * HOST_MAX];
	maildir_host(host, sizeof(host));
	snprintf(out, len, "%lld.M%06ldP%ldQ%luR%08lx.%s", (long long)tv.tv_sec,
		 (long)tv.tv_usec, (long)getpid(), ++deliveries,
		 (unsigned long)rnd, host);
}

/* Creates tmp/UNIQUE; *tmpp and *newp are its path and the path it will
 * get in new/. */
static int
maildir_create(const char *dir, char **tmpp, char **newp,
	       struct deliver_result *res)
{
	for (int tries = 0; tries < 10; tries++) {
		char name[1024];
		maildir_name(name, sizeof(name));
		char *tmp = xasprintf("%s/tmp/%s", dir, name);
		int fd = open(tmp,
			      O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
				  O_NOCTTY | O_CLOEXEC,
			      0600);
		if (fd >= 0) {
			*tmpp = tmp;
			*newp = xasprintf("%s/new/%s", dir, name);
			return fd;
		}
		int err = errno;
		if (err != EEXIST) {
			fail_errno(res, err, "cannot create", tmp);
			free(tmp);
			return -1;
		}
		free(tmp);
	}
	deliver_result_set(res, DELIVER_DEFER, "4.2.0",
			   "cannot find a unique name in %s/tmp", dir);
	return -1;
}

static int
maildir_write(int fd, const char *tmp, int msg_fd, const char *headers,
	      struct deliver_result *res)
{
	struct out o;
	out_init(&o, fd, 0);
	feed_headers(&o, headers);
	int rerr = feed_message(&o, msg_fd);
	return finish_write(&o, fd, rerr, "cannot write", "cannot sync", tmp,
			    res);
}

/* Makes the message visible and durable; DEFER must mean "not
 * delivered", so a rename that cannot be made durable is undone. */
static int
maildir_commit(const char *dir, const char *tmp, const char *new,
	       struct deliver_result *res)
{
	if (rename(tmp, new) < 0) {
		fail_errno(res, errno, "cannot rename into", new);
		return -1;
	}
	char *newdir = xasprintf("%s/new", dir);
	int rc = fsync_dir(newdir);
	int err = errno;
	free(newdir);
	if (rc < 0) {
		fail_errno(res, err, "cannot sync the new/ folder of", dir);
		if (unlink(new) < 0 && errno == ENOENT) {
			/* A reader has taken it already: it is delivered. */
			return 0;
		}
		return -1;
	}
	return 0;
}

void
maildir_deliver(const char *dir, int msg_fd, const char *headers,
		struct deliver_result *res)
{
	if (maildir_make(dir, res) < 0)
		return;
	char *tmp = NULL, *new = NULL;
	int fd = maildir_create(dir, &tmp, &new, res);
	if (fd < 0)
		return;
	int rc = maildir_write(fd, tmp, msg_fd, headers, res);
	if (close(fd) < 0 && rc == 0) {
		fail_errno(res, errno, "cannot close", tmp);
		rc = -1;
	}
	if (rc == 0)
		rc = maildir_commit(dir, tmp, new, res);
	if (rc < 0)
		unlink(tmp);
	else
		deliver_result_set(res, DELIVER_OK, "2.0.0",
				   "delivered to maildir");
	free(tmp);
	free(new);
}

/* --- Delivered-To counting -------------------------------------------- */

struct dt_scan {
	const char *address;
	int count;
	int done; /* the empty line ending the header section was seen */
	char line[FIELD_MAX]; /* the start of the current physical line */
	size_t linelen;	      /* its full length, also beyond line[] */
	int in_field;	      /* the current field is Delivered-To */
	char value[FIELD_MAX];
	size_t valuelen; /* FIELD_MAX or more: too long to match */
};

static void
dt_value_add(struct dt_scan *s, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++, s->valuelen++)
		if (s->valuelen < FIELD_MAX)
			s->value[s->valuelen] = p[i];
}

static int
is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

static void
dt_field_end(struct dt_scan *s)
{
	if (!s->in_field)
		return;
	s->in_field = 0;
	if (s->valuelen >= FIELD_MAX)
		return;
	char *v = s->value, *e = s->value + s->valuelen;
	while (v < e && is_wsp(*v))
		v++;
	while (e > v && is_wsp(e[-1]))
		e--;
	if (e - v >= 2 && *v == '<' && e[-1] == '>') {
		v++;
		e--;
	}
	*e = '\0';
	if (ascii_strcasecmp(v, s->address) == 0)
		s->count++;
}

/* One physical line, its line break removed. Only its first FIELD_MAX
 * octets are at hand; a longer line cannot hold a matching value. */
static void
dt_line(struct dt_scan *s)
{
	static const char name[] = "delivered-to";
	size_t have = s->linelen < FIELD_MAX ? s->linelen : FIELD_MAX;
	if (s->linelen == 0) {
		dt_field_end(s);
		s->done = 1;
		return;
	}
	if (is_wsp(s->line[0])) {
		if (s->in_field) {
			dt_value_add(s, s->line, have);
			if (s->linelen > have)
				s->valuelen = FIELD_MAX;
		}
		return;
	}
	dt_field_end(s);
	size_t n = sizeof(name) - 1;
	if (have <= n || ascii_strncasecmp(s->line, name, n) != 0)
		return;
	while (n < have && is_wsp(s->line[n]))
		n++;
	if (n >= have || s->line[n] != ':')
		return;
	s->in_field = 1;
	s->valuelen = 0;
	dt_value_add(s, s->line + n + 1, have - n - 1);
	if (s->linelen > have)
		s->valuelen = FIELD_MAX;
}

static void
dt_line_end(struct dt_scan *s)
{
	if (s->linelen > 0 && s->linelen <= FIELD_MAX &&
	    s->line[s->linelen - 1] == '\r')
		s->linelen--;
	dt_line(s);
	s->linelen = 0;
}

static void
dt_feed(struct dt_scan *s, const char *p, size_t n)
{
	while (n > 0 && !s->done) {
		const char *nl = memchr(p, '\n', n);
		size_t k = nl != NULL ? (size_t)(nl - p) : n;
		for (size_t i = 0; i < k; i++, s->linelen++)
			if (s->linelen < FIELD_MAX)
				s->line[s->linelen] = p[i];
		if (nl == NULL)
			return;
		dt_line_end(s);
		p += k + 1;
		n -= k + 1;
	}
}

int
count_delivered_to(int msg_fd, const char *address)
{
	struct dt_scan *s = xcalloc(1, sizeof(*s));
	s->address = address;
	char *in = xmalloc(CHUNK);
	off_t off = 0;
	int rc = 0;
	while (!s->done) {
		ssize_t n = pread(msg_fd, in, CHUNK, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -1;
			break;
		}
		if (n == 0) {
			if (s->linelen > 0)
				dt_line_end(s);
			dt_field_end(s);
			break;
		}
		dt_feed(s, in, (size_t)n);
		off += n;
	}
	int err = errno;
	if (rc == 0)
		rc = s->count;
	free(in);
	free(s);
	errno = err;
	return rc;
}
