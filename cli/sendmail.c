/* sendmail, mailq, newaliases (SPEC §2): the local injector. Not setuid
 * root: installed setgid smaltdrop, it writes each message into
 * spool_dir/maildrop/, which works whether or not smaltd runs; the
 * daemon takes the file from there (inotify, or its start-up scan) and
 * treats it as untrusted input. */
#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "cli/inject.h"
#include "common/addr.h"
#include "common/log.h"
#include "common/util.h"
#include "conf/aliases.h"
#include "conf/conf.h"
#include "queue/envelope.h"
#include "queue/maildrop.h"
#include "queue/queue.h"
#include "smtpd/listener.h"
#include "smtpd/policy.h"
#include "smtpd/smtpd.h"

enum mode {
	MODE_DELIVER,
	MODE_PRINT,
	MODE_ALIASES,
	MODE_FLUSH,
	MODE_SMTP,
	MODE_VERIFY
};

struct options {
	enum mode mode;
	const char *config;
	int extract;  /* -t */
	int dot_ends; /* cleared by -i / -oi */
	const char *sender;
	const char *full_name;
	char **rcpts;
	size_t nrcpt;
};

static const char *progname = "sendmail";

#if defined(__SANITIZE_ADDRESS__)
/* Sanitized builds (CI): LeakSanitizer cannot work in a set-group-ID
 * process, which is not dumpable, and the runtime ignores ASAN_OPTIONS
 * there; so leave leak checking off when we run setgid, on otherwise. */
const char *__asan_default_options(void);
const char *
__asan_default_options(void)
{
	return getegid() != getgid() ? "detect_leaks=0" : "";
}
#endif

static void die(int code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));

static void
die(int code, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s: ", progname);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	/* An error ends the program where it is: what it had allocated is
	 * the kernel's to take back, not a leak for the sanitizer's exit
	 * check to report. */
	fflush(stdout);
	_exit(code);
}

/* Option letters that take a value, attached or as the next argument.
 * Everything else is a flag; flags we do not act on are ignored, as
 * Postfix does, so that any caller's habits work. */
static int
takes_value(char c)
{
	return strchr("fFrCBNRVLOhXpo", c) != NULL;
}

static void
add_rcpt(struct options *o, const char *arg)
{
	/* "a@x, b@y" in one argument, as sendmail accepts. */
	char *copy = xstrdup(arg), *save = NULL;
	for (char *t = strtok_r(copy, ", \t", &save); t != NULL;
	     t = strtok_r(NULL, ", \t", &save)) {
		o->rcpts = xrealloc(o->rcpts, (o->nrcpt + 1) * sizeof(char *));
		o->rcpts[o->nrcpt++] = xstrdup(t);
	}
	free(copy);
}

static void
apply_option(struct options *o, char c, const char *val)
{
	switch (c) {
	case 't':
		o->extract = 1;
		break;
	case 'i':
		o->dot_ends = 0;
		break;
	case 'o':
		/* -oi is -i; -oem, -odb and the rest mean nothing here. */
		if (strcmp(val, "i") == 0)
			o->dot_ends = 0;
		break;
	case 'f':
	case 'r':
		o->sender = val;
		break;
	case 'F':
		o->full_name = val;
		break;
	case 'C':
		o->config = val;
		break;
	case 'b':
		switch (val[0]) {
		case 'p':
			o->mode = MODE_PRINT;
			break;
		case 'i':
			o->mode = MODE_ALIASES;
			break;
		case 's':
			o->mode = MODE_SMTP;
			break;
		case 'm':
			o->mode = MODE_DELIVER;
			break;
		case 'v':
			o->mode = MODE_VERIFY;
			break;
		case 'd':
		case 'D':
			die(EX_USAGE,
			    "-b%s: the daemon is smaltd(8); start it with "
			    "smaltd",
			    val);
		default:
			/* Test and status modes (-bt, -bh, -bP...) would be
			 * taken for -bm and mail the input to whoever is
			 * named: refuse them. */
			die(EX_USAGE, "unsupported mode -b%s", val);
		}
		break;
	case 'q':
		o->mode = MODE_FLUSH;
		break;
	default:
		break; /* -v, -G, -U, -B, -N, -R, -V, -L, -O, ...: ignored */
	}
}

static void
parse_options(int argc, char **argv, struct options *o)
{
	int i;
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--") == 0) {
			i++;
			break;
		}
		if (a[0] != '-' || a[1] == '\0')
			break;
		for (size_t j = 1; a[j] != '\0'; j++) {
			char c = a[j];
			if (c == 'b' || c == 'q') {
				/* -bX: one letter; -q[interval]: ignored. */
				if (c == 'b' && a[j + 1] == '\0')
					die(EX_USAGE, "-b needs a mode letter");
				apply_option(o, c, a + j + 1);
				break;
			}
			if (!takes_value(c)) {
				apply_option(o, c, "");
				continue;
			}
			const char *val = a + j + 1;
			if (*val == '\0') {
				if (i + 1 >= argc)
					die(EX_USAGE,
					    "option -%c needs a value", c);
				val = argv[++i];
			}
			apply_option(o, c, val);
			break;
		}
	}
	for (; i < argc; i++)
		add_rcpt(o, argv[i]);
}

static struct smalt_conf *
load_config(const struct options *o)
{
	char err[CONF_ERRLEN];
	const char *path = o->config;
	if (path == NULL)
		path = getenv("SMALT_CONF");
	if (path != NULL && *path == '\0')
		path = NULL;
	/* The smaltdrop group is for spools that root configured: a user
	 * who names a configuration file of their own runs without it
	 * (their spool is theirs), as Postfix's postdrop only honours
	 * the configuration directories root lists. */
	struct stat st;
	if (path != NULL && getuid() != 0 && getegid() != getgid() &&
	    (stat(path, &st) != 0 || st.st_uid != 0 ||
	     (st.st_mode & 022) != 0) &&
	    setresgid(getgid(), getgid(), getgid()) != 0)
		die(EX_OSERR, "cannot drop the smaltdrop group: %s",
		    strerror(errno));
	struct smalt_conf *conf = conf_load(path, NULL, 0, err, sizeof(err));
	if (conf == NULL)
		die(EX_CONFIG, "%s", err);
	return conf;
}

/* -- reading the message */

static char *
read_input(size_t limit, size_t *len)
{
	size_t cap = 65536, n = 0;
	char *buf = xmalloc(cap);
	for (;;) {
		if (n == cap) {
			if (cap > limit)
				die(EX_DATAERR,
				    "message is larger than max_message_size "
				    "(%zu octets); nothing was queued",
				    limit);
			cap *= 2;
			buf = xrealloc(buf, cap);
		}
		ssize_t r = read(0, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			die(EX_NOINPUT, "cannot read the message: %s",
			    strerror(errno));
		if (r == 0)
			break;
		n += (size_t)r;
	}
	*len = n;
	return buf;
}

/* -- addresses */

/* "user" -> "user@hostname"; "<a@b>" -> "a@b"; NULL when it does not
 * parse. */
static char *
qualify(const char *s, const struct smalt_conf *conf)
{
	struct mailaddr a;
	const char *errstr;
	char buf[ADDR_PATH_MAX + 1];
	size_t n = strlen(s);
	if (n >= 2 && s[0] == '<' && s[n - 1] == '>') {
		char *inner = xstrndup(s + 1, n - 2);
		char *r = inner[0] == '\0' ? xstrdup("") : qualify(inner, conf);
		free(inner);
		return r;
	}
	if (strchr(s, '@') == NULL) {
		char *full = xasprintf("%s@%s", s, conf->hostname);
		char *r = addr_parse_mailbox(full, 0, &a, &errstr) == 0
			      ? xstrdup(addr_format(&a, buf, sizeof(buf)))
			      : NULL;
		free(full);
		return r;
	}
	if (addr_parse_mailbox(s, 0, &a, &errstr) != 0)
		return NULL;
	return xstrdup(addr_format(&a, buf, sizeof(buf)));
}

static int
already(char **v, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (ascii_strcasecmp(v[i], s) == 0)
			return 1;
	return 0;
}

/* An unknown local user is known at once here: say so (EX_NOUSER)
 * rather than queue a bounce. */
static void
check_local(const struct smalt_conf *conf, char **rcpts, size_t n)
{
	struct policy p;
	char err[CONF_ERRLEN];
	log_init(LOG_DEST_NONE, conf->hostname);
	if (policy_load(&p, conf, err, sizeof(err)) != 0)
		return; /* unreadable tables: the daemon decides later */
	for (size_t i = 0; i < n; i++) {
		struct mailaddr a;
		const char *errstr;
		if (addr_parse_mailbox(rcpts[i], 0, &a, &errstr) == 0 &&
		    policy_check_rcpt(&p, &a, NULL, 1) == RCPT_UNKNOWN_USER) {
			policy_free(&p);
			die(EX_NOUSER, "%s: unknown user; nothing was queued",
			    rcpts[i]);
		}
	}
	policy_free(&p);
}

/* Mail sent before smaltd ever ran (right after installing) must not
 * be refused: root can make the spool as the daemon would. */
static void
prepare_spool(const struct smalt_conf *conf)
{
	char err[256];
	char *dir = xasprintf("%s/maildrop", conf->spool_dir);
	int missing = access(dir, F_OK) != 0 && errno == ENOENT;
	free(dir);
	if (!missing || geteuid() != 0)
		return;
	struct passwd *pw = getpwnam(conf->user);
	struct group *gr = getgrnam("smaltdrop");
	if (pw == NULL || pw->pw_uid == 0)
		return;
	log_init(LOG_DEST_NONE, conf->hostname);
	struct queue *q =
	    queue_open(conf->spool_dir, pw->pw_uid, gr ? gr->gr_gid : (gid_t)-1,
		       err, sizeof(err));
	if (q != NULL)
		queue_close(q);
}

static int
deliver(const struct options *o, const struct smalt_conf *conf)
{
	struct passwd *pw = getpwuid(getuid());
	char login[64];
	if (pw != NULL)
		smalt_strlcpy(login, pw->pw_name, sizeof(login));
	else
		snprintf(login, sizeof(login), "uid%lu",
			 (unsigned long)getuid());
	char *sender;
	if (o->sender == NULL)
		sender = xasprintf("%s@%s", login, conf->hostname);
	else if (o->sender[0] == '\0')
		sender = xstrdup(""); /* -f "": the null sender */
	else
		sender = qualify(o->sender, conf);
	if (sender == NULL)
		die(EX_USAGE, "bad sender address: %s", o->sender);

	size_t len;
	char *input = read_input((size_t)conf->max_message_size, &len);
	struct inject_opts io = {
	    .dot_ends = o->dot_ends,
	    .extract_rcpts = o->extract,
	    .from_addr = sender[0] ? sender : login,
	    .full_name = o->full_name,
	    .hostname = conf->hostname,
	    .now = time(NULL),
	};
	struct inject_out out;
	char err[512];
	if (inject_prepare(input, len, &io, &out, err, sizeof(err)) != 0)
		die(EX_DATAERR, "%s; nothing was queued", err);
	free(input);
	if (out.len > conf->max_message_size)
		die(EX_DATAERR,
		    "message is larger than max_message_size (%llu octets); "
		    "nothing was queued",
		    (unsigned long long)conf->max_message_size);

	struct envelope env;
	envelope_init(&env);
	/* A well-formed envelope needs an id; the daemon gives the
	 * message its own when it takes it up. */
	queue_id_new(env.id);
	env.arrival = time(NULL);
	env.size = out.len;
	envelope_set(&env.sender, sender);
	char **all = xcalloc(o->nrcpt + out.nrcpt + 1, sizeof(char *));
	size_t n = 0;
	for (size_t k = 0; k < o->nrcpt + out.nrcpt; k++) {
		const char *r =
		    k < o->nrcpt ? o->rcpts[k] : out.rcpts[k - o->nrcpt];
		char *q = qualify(r, conf);
		if (q == NULL || q[0] == '\0')
			die(EX_DATAERR, "bad recipient address: %s", r);
		if (already(all, n, q)) {
			free(q);
			continue;
		}
		all[n++] = q;
	}
	if (n == 0)
		die(EX_DATAERR, "no recipient addresses found%s",
		    o->extract ? " in the header" : "");
	check_local(conf, all, n);
	for (size_t k = 0; k < n; k++)
		envelope_add_rcpt(&env, all[k]);

	char id[QUEUE_ID_LEN + 1];
	prepare_spool(conf);
	if (maildrop_write(conf->spool_dir, &env, out.data, out.len, id, err,
			   sizeof(err)) != 0)
		die(EX_TEMPFAIL, "cannot queue the message: %s", err);
	for (size_t k = 0; k < n; k++)
		free(all[k]);
	free(all);
	envelope_free(&env);
	inject_out_free(&out);
	free(sender);
	return EX_OK;
}

/* -bv: says whether each recipient could be delivered to, as far as
 * this host knows at once; reads no message and queues nothing. */
static int
verify(const struct options *o, const struct smalt_conf *conf)
{
	struct policy p;
	char err[CONF_ERRLEN];
	int rc = EX_OK;
	if (o->nrcpt == 0)
		die(EX_USAGE, "-bv needs recipient addresses");
	log_init(LOG_DEST_NONE, conf->hostname);
	int have_policy = policy_load(&p, conf, err, sizeof(err)) == 0;
	for (size_t i = 0; i < o->nrcpt; i++) {
		struct mailaddr a;
		const char *errstr;
		char *q = qualify(o->rcpts[i], conf);
		if (q == NULL || addr_parse_mailbox(q, 0, &a, &errstr) != 0) {
			printf("%s: bad address syntax\n", o->rcpts[i]);
			rc = EX_DATAERR;
		} else if (have_policy && policy_check_rcpt(&p, &a, NULL, 1) ==
					      RCPT_UNKNOWN_USER) {
			printf("%s: unknown user\n", q);
			rc = EX_NOUSER;
		} else {
			printf("%s: deliverable\n", q);
		}
		free(q);
	}
	if (have_policy)
		policy_free(&p);
	return rc;
}

/* -- mailq */

struct listing {
	unsigned long count;
	unsigned long long bytes;
};

static void print_envelope(struct listing *l, const struct envelope *e,
			   char status);

static int
print_one(struct queue *q, enum queue_dir dir, const char *id, void *arg)
{
	struct envelope env;
	const char *errstr;
	if (queue_env_read(q, dir, id, &env, &errstr) != 0)
		return 0; /* delivered meanwhile, or corrupt */
	print_envelope(arg, &env, dir == QDIR_HOLD ? '!' : ' ');
	envelope_free(&env);
	return 0;
}

/* Mail that sendmail dropped and the daemon has not taken yet (it is
 * down): only root and the daemon's user may read maildrop/. */
static int
print_dropped(struct queue *q, enum queue_dir dir, const char *id, void *arg)
{
	struct maildrop_file md;
	const char *errstr;
	(void)dir;
	if (maildrop_read(q, id, (size_t)1 << 40, &md, &errstr) != 0)
		return 0;
	if (md.request == NULL) {
		memcpy(md.env.id, id, sizeof(md.env.id));
		md.env.size = md.msg_len;
		print_envelope(arg, &md.env, ' ');
	}
	maildrop_file_free(&md);
	return 0;
}

static void
print_envelope(struct listing *l, const struct envelope *e, char status)
{
	const struct envelope env = *e;
	char date[32];
	struct tm tm;
	if (l->count == 0)
		printf("-Queue ID-  --Size-- ----Arrival Time---- "
		       "-Sender/Recipient-------\n");
	localtime_r(&env.arrival, &tm);
	strftime(date, sizeof(date), "%a %b %e %H:%M:%S", &tm);
	printf("%-10s%c %8llu %.19s  %s\n", env.id, status,
	       (unsigned long long)env.size, date,
	       env.sender[0] ? env.sender : "MAILER-DAEMON");
	for (size_t i = 0; i < env.nrcpt; i++) {
		struct env_rcpt *r = &env.rcpt[i];
		if (r->state == RCPT_DELIVERED || r->state == RCPT_BOUNCED)
			continue;
		if (r->reason[0] != '\0')
			printf("(%s)\n", r->reason);
		printf("%41s%s\n", "", r->address);
	}
	printf("\n");
	l->count++;
	l->bytes += env.size;
}

static int
print_queue(const struct smalt_conf *conf)
{
	char err[256];
	struct listing l = {0};
	log_init(LOG_DEST_NONE, conf->hostname);
	struct queue *q =
	    queue_open_readonly(conf->spool_dir, err, sizeof(err));
	if (q == NULL && errno == ENOENT) {
		/* The daemon never ran: nothing can be queued yet. */
		printf("Mail queue is empty\n");
		return EX_OK;
	}
	if (q == NULL)
		die(errno == EACCES ? EX_NOPERM : EX_TEMPFAIL,
		    "cannot read the queue: %s", err);
	static const enum queue_dir dirs[] = {QDIR_INCOMING, QDIR_DEFERRED,
					      QDIR_HOLD};
	for (size_t i = 0; i < SMALT_NELEM(dirs); i++) {
		long n = queue_scan(q, dirs[i], print_one, &l);
		if (n < 0)
			die(EX_NOPERM,
			    "cannot read the queue in %s: %s (mailq needs "
			    "root, the daemon's user, or the group smaltdrop "
			    "that an installed sendmail has)",
			    conf->spool_dir, strerror(errno));
	}
	/* Not readable through the smaltdrop group: then it is skipped. */
	queue_scan(q, QDIR_MAILDROP, print_dropped, &l);
	queue_close(q);
	if (l.count == 0)
		printf("Mail queue is empty\n");
	else
		printf("-- %llu Kbytes in %lu Request%s.\n",
		       (l.bytes + 1023) / 1024, l.count,
		       l.count == 1 ? "" : "s");
	return EX_OK;
}

/* -- newaliases */

static int
rebuild_aliases(const struct smalt_conf *conf)
{
	char err[CONF_ERRLEN];
	if (conf->aliases[0] == '\0') {
		fprintf(stderr, "%s: no aliases file is configured\n",
			progname);
		return EX_OK;
	}
	log_init(LOG_DEST_NONE, conf->hostname);
	struct alias_db *db = alias_open(conf->aliases, err, sizeof(err));
	if (db == NULL)
		die(EX_CONFIG, "%s", err);
	size_t n = alias_count(db);
	alias_free(db);
	/* smalt reads the text file itself: there is no database to build,
	 * only a daemon to tell. */
	char *pidfile = xasprintf("%s/smaltd.pid", conf->spool_dir);
	char text[64];
	long pid = 0;
	int fd = open(pidfile, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	/* Only a pid whose daemon holds the lock: a stale file names some
	 * other process by now. */
	if (fd >= 0 && flock(fd, LOCK_SH | LOCK_NB) != 0 &&
	    errno == EWOULDBLOCK) {
		ssize_t n = read(fd, text, sizeof(text) - 1);
		if (n > 0) {
			text[n] = '\0';
			pid = strtol(text, NULL, 10);
		}
	}
	if (fd >= 0)
		close(fd);
	free(pidfile);
	printf("%s: %zu aliases\n", conf->aliases, n);
	if (pid > 1 && kill((pid_t)pid, SIGHUP) != 0 && errno == EPERM)
		die(EX_NOPERM,
		    "the aliases are good, but only root may tell the running "
		    "smaltd (pid %ld) to read them again",
		    pid);
	return EX_OK;
}

/* -- -bs: SMTP on standard input and output
 *
 * The same server as smtpd's, on one end of a socket pair, with a
 * private queue in a temporary folder; each message it commits there is
 * handed on to maildrop/ before the client hears 250. Two threads copy
 * between the socket and stdin/stdout, which may be pipes, files or a
 * terminal. */

struct bs {
	const struct smalt_conf *conf;
	struct queue *pq;
	int sock;	    /* our end of the pair */
	int done_pipe[2];   /* the output thread says the session ended */
	pthread_mutex_t mu; /* the input waits for the greeting */
	pthread_cond_t cv;
	int greeted;
};

static int
bs_commit_hook(const char *id, void *arg)
{
	struct bs *b = arg;
	struct envelope env;
	const char *errstr;
	char err[256], newid[QUEUE_ID_LEN + 1];
	if (queue_env_read(b->pq, QDIR_INCOMING, id, &env, &errstr) != 0)
		return -1;
	int fd = queue_msg_open(b->pq, id);
	char *data = fd >= 0 ? xmalloc(env.size + 1) : NULL;
	size_t got = 0;
	while (fd >= 0 && got < env.size) {
		ssize_t r = pread(fd, data + got, env.size - got, (off_t)got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	if (fd >= 0)
		close(fd);
	int rc = -1;
	struct inject_out out;
	memset(&out, 0, sizeof(out));
	/* The headers a local submission gets, as with -bm. */
	struct inject_opts io = {
	    .dot_ends = 0,
	    .from_addr = env.sender,
	    .hostname = b->conf->hostname,
	    .now = time(NULL),
	};
	if (data != NULL && got == env.size &&
	    inject_prepare(data, got, &io, &out, err, sizeof(err)) == 0)
		rc = maildrop_write(b->conf->spool_dir, &env, out.data, out.len,
				    newid, err, sizeof(err));
	else
		errno = EIO;
	inject_out_free(&out);
	int saved = errno;
	free(data);
	envelope_free(&env);
	queue_remove(b->pq, QDIR_INCOMING, id);
	errno = saved;
	return rc;
}

static void *
bs_output(void *arg)
{
	struct bs *b = arg;
	char buf[16384];
	for (;;) {
		ssize_t n = read(b->sock, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (write_all(1, buf, (size_t)n) != 0)
			break;
		pthread_mutex_lock(&b->mu);
		if (!b->greeted && memchr(buf, '\n', (size_t)n) != NULL) {
			b->greeted = 1;
			pthread_cond_signal(&b->cv);
		}
		pthread_mutex_unlock(&b->mu);
	}
	pthread_mutex_lock(&b->mu);
	b->greeted = 1; /* the input thread must not wait for ever */
	pthread_cond_signal(&b->cv);
	pthread_mutex_unlock(&b->mu);
	char c = 0;
	if (write(b->done_pipe[1], &c, 1) != 1) {
		/* the loop's timeout ends it anyway */
	}
	return NULL;
}

static void *
bs_input(void *arg)
{
	struct bs *b = arg;
	char buf[16384];
	/* A client that talks before the greeting is refused as an early
	 * talker; a script piping its whole dialogue must not be. */
	pthread_mutex_lock(&b->mu);
	while (!b->greeted)
		pthread_cond_wait(&b->cv, &b->mu);
	pthread_mutex_unlock(&b->mu);
	for (;;) {
		ssize_t n = read(0, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (write_all(b->sock, buf, (size_t)n) != 0)
			break;
	}
	shutdown(b->sock, SHUT_WR);
	return NULL;
}

static void
on_bs_done(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	event_base_loopexit(arg, NULL);
}

static void
remove_private_queue(const char *dir)
{
	for (int i = 0; i < QDIR_COUNT; i++) {
		char *path =
		    xasprintf("%s/%s", dir, queue_dir_name((enum queue_dir)i));
		DIR *d = opendir(path);
		struct dirent *e;
		while (d != NULL && (e = readdir(d)) != NULL)
			if (e->d_name[0] != '.')
				unlinkat(dirfd(d), e->d_name, 0);
		if (d != NULL)
			closedir(d);
		rmdir(path);
		free(path);
	}
	rmdir(dir);
}

static int
smtp_on_stdio(struct smalt_conf *conf)
{
	char err[CONF_ERRLEN];
	struct bs b = {.conf = conf};
	log_init(LOG_DEST_NONE, conf->hostname);
	signal(SIGPIPE, SIG_IGN);
	prepare_spool(conf);
	const char *tmpdir = getenv("TMPDIR");
	char *dir = xasprintf("%s/smalt-bs.XXXXXX",
			      tmpdir && *tmpdir ? tmpdir : "/tmp");
	if (mkdtemp(dir) == NULL)
		die(EX_TEMPFAIL, "cannot make a folder for -bs: %s",
		    strerror(errno));
	b.pq = queue_open(dir, (uid_t)-1, (gid_t)-1, err, sizeof(err));
	if (b.pq == NULL) {
		remove_private_queue(dir);
		die(EX_TEMPFAIL, "-bs: %s", err);
	}
	conf->smtpd_greet_pause = 0;
	struct event_base *base = event_base_new();
	struct listeners none = {0};
	struct smtpd *sd =
	    base ? smtpd_new(base, conf, b.pq, &none, err, sizeof(err)) : NULL;
	int sv[2];
	if (sd == NULL || pipe2(b.done_pipe, O_CLOEXEC) != 0 ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
		remove_private_queue(dir);
		die(EX_TEMPFAIL, "-bs: %s", sd ? strerror(errno) : err);
	}
	smtpd_set_commit_hook(sd, bs_commit_hook, &b);
	b.sock = sv[1];
	pthread_mutex_init(&b.mu, NULL);
	pthread_cond_init(&b.cv, NULL);
	struct sockaddr_in sin = {.sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	evutil_make_socket_nonblocking(sv[0]);
	smtpd_serve_fd(sd, sv[0], (struct sockaddr *)&sin, sizeof(sin));
	struct event *ev =
	    event_new(base, b.done_pipe[0], EV_READ, on_bs_done, base);
	event_add(ev, NULL);
	pthread_t tin, tout;
	pthread_create(&tout, NULL, bs_output, &b);
	pthread_create(&tin, NULL, bs_input, &b);
	event_base_dispatch(base);
	pthread_join(tout, NULL);
	/* The input thread may sit in read(0) on a terminal: the session
	 * is over, so is the process. */
	pthread_detach(tin);
	event_free(ev);
	smtpd_free(sd);
	event_base_free(base);
	queue_close(b.pq);
	remove_private_queue(dir);
	free(dir);
	return EX_OK;
}

int
main(int argc, char **argv)
{
	struct options o = {.dot_ends = 1};
	const char *slash = argc > 0 ? strrchr(argv[0], '/') : NULL;
	progname = slash ? slash + 1 : (argc > 0 ? argv[0] : "sendmail");
	if (strcmp(progname, "mailq") == 0)
		o.mode = MODE_PRINT;
	else if (strcmp(progname, "newaliases") == 0)
		o.mode = MODE_ALIASES;
	signal(SIGPIPE, SIG_IGN);
	parse_options(argc, argv, &o);
	struct smalt_conf *conf = load_config(&o);
	int rc;
	char err[256];
	switch (o.mode) {
	case MODE_PRINT:
		rc = print_queue(conf);
		break;
	case MODE_ALIASES:
		rc = rebuild_aliases(conf);
		break;
	case MODE_FLUSH:
		if (maildrop_request(conf->spool_dir, "flush", NULL, err,
				     sizeof(err)) != 0)
			die(EX_TEMPFAIL, "cannot ask for a queue run: %s", err);
		rc = EX_OK;
		break;
	case MODE_SMTP:
		rc = smtp_on_stdio(conf);
		break;
	case MODE_VERIFY:
		rc = verify(&o, conf);
		break;
	default:
		rc = deliver(&o, conf);
		break;
	}
	for (size_t i = 0; i < o.nrcpt; i++)
		free(o.rcpts[i]);
	free(o.rcpts);
	conf_free(conf);
	return rc;
}
