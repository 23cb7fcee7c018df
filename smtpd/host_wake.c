#include "smtpd/host_wake.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/log.h"
#include "common/util.h"
#include "queue/hostcache.h"
#include "queue/maildrop.h"

struct host_wake {
	char *spool_dir;
	char *path;
	struct hostcache *hc; /* our copy; marked up as we report */
	struct stat seen;     /* of the file our copy came from */
};

struct host_wake *
host_wake_new(const char *spool_dir)
{
	struct host_wake *w = xcalloc(1, sizeof(*w));
	w->spool_dir = xstrdup(spool_dir);
	w->path = xasprintf("%s/state/hosts", spool_dir);
	/* Backoff values do not matter: this copy is only read. */
	w->hc = hostcache_new(60, 60);
	return w;
}

void
host_wake_free(struct host_wake *w)
{
	if (w == NULL)
		return;
	hostcache_free(w->hc);
	free(w->path);
	free(w->spool_dir);
	free(w);
}

static int
same_file(const struct stat *a, const struct stat *b)
{
	return a->st_ino == b->st_ino && a->st_dev == b->st_dev &&
	       a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
	       a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

static void
refresh(struct host_wake *w)
{
	struct stat st;
	if (stat(w->path, &st) != 0) {
		hostcache_flush(w->hc, NULL);
		memset(&w->seen, 0, sizeof(w->seen));
		return;
	}
	if (same_file(&st, &w->seen))
		return;
	char err[300];
	if (hostcache_load(w->hc, w->path, err, sizeof(err)) != 0)
		log_debug("host cache: %s", err);
	w->seen = st;
}

static int
addr_text(const struct sockaddr *sa, char *ip, size_t len)
{
	if (sa->sa_family == AF_INET)
		return inet_ntop(AF_INET,
				 &((const struct sockaddr_in *)(const void *)sa)
				      ->sin_addr,
				 ip, (socklen_t)len) != NULL
			   ? 0
			   : -1;
	if (sa->sa_family == AF_INET6)
		return inet_ntop(
			   AF_INET6,
			   &((const struct sockaddr_in6 *)(const void *)sa)
				->sin6_addr,
			   ip, (socklen_t)len) != NULL
			   ? 0
			   : -1;
	return -1;
}

void
host_wake_note(struct host_wake *w, const struct sockaddr *sa)
{
	char ip[INET6_ADDRSTRLEN];
	/* 127.0.0.1 and ::1 are where every local program connects from
	 * (sendmail -bs aside, cron jobs, webmail): no evidence about a
	 * host, even a smarthost on the same machine. */
	if (w == NULL || addr_text(sa, ip, sizeof(ip)) != 0 ||
	    strcmp(ip, "127.0.0.1") == 0 || strcmp(ip, "::1") == 0 ||
	    strcmp(ip, "::ffff:127.0.0.1") == 0)
		return;
	refresh(w);
	if (hostcache_count(w->hc) == 0)
		return;
	/* Marking our copy up sends one request per host, not one per
	 * connection, until the queue manager rewrites the file. */
	if (hostcache_mark_up_by_addr(w->hc, ip, NULL, NULL) == 0)
		return;
	char err[300];
	if (maildrop_request(w->spool_dir, "wake", ip, err, sizeof(err)) != 0)
		log_warn("cannot tell the queue manager that %s is up: %s", ip,
			 err);
}
