#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "common/util.h"
#include "queue/queue.h"

/* New mail is announced by the file system itself: a commit ends with a
 * rename into incoming/, and sendmail's drop with a rename into
 * maildrop/. Watching for those renames wakes the delivery side from any
 * process (smtpd, pickup, a restarted daemon) without either side
 * knowing the other. */
/* inotify watch descriptors are small integers handed out in order; two
 * watches per descriptor, so a tiny table maps them back to folders. */
#define WATCH_SLOTS 8
static enum queue_dir watch_dirs[WATCH_SLOTS];

int
queue_watch_open(struct queue *q)
{
	int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (fd < 0)
		return -1;
	static const enum queue_dir watched[] = {QDIR_INCOMING, QDIR_MAILDROP};
	for (size_t i = 0; i < SMALT_NELEM(watched); i++) {
		/* Through the folder we hold open: the unprivileged qmgr
		 * may not be able to walk the spool's path (a spool under
		 * /root, set up by root). */
		char *path =
		    xasprintf("/proc/self/fd/%d", queue_dir_fd(q, watched[i]));
		int wd = inotify_add_watch(fd, path, IN_MOVED_TO);
		if (wd >= 0)
			watch_dirs[wd % WATCH_SLOTS] = watched[i];
		free(path);
		if (wd < 0) {
			int saved = errno;
			close(fd);
			errno = saved;
			return -1;
		}
	}
	return fd;
}

static void
count_one(enum queue_dir dir, const char *id, void *arg)
{
	(void)dir;
	(void)id;
	(*(int *)arg)++;
}

int
queue_watch_drain(int fd)
{
	int events = 0;
	queue_watch_read(fd, count_one, &events);
	return events;
}

int
queue_watch_read(int fd, queue_watch_fn fn, void *arg)
{
	char buf[8192]
	    __attribute__((aligned(__alignof__(struct inotify_event))));
	int overflow = 0;
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n <= 0)
			break;
		for (char *p = buf; p < buf + n;) {
			struct inotify_event *ev = (struct inotify_event *)p;
			p += sizeof(*ev) + ev->len;
			if (ev->mask & IN_Q_OVERFLOW) {
				overflow = 1;
				continue;
			}
			if (ev->len == 0 || ev->wd < 0 ||
			    !queue_id_valid(ev->name))
				continue;
			fn(watch_dirs[ev->wd % WATCH_SLOTS], ev->name, arg);
		}
	}
	return overflow ? -1 : 0;
}
