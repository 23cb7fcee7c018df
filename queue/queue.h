/* The on-disk queue (SPEC §4). A message is one immutable message file
 * (msg/ID) and one envelope (STATE/ID) whose directory says the state:
 *
 *   tmp/       envelopes being written; emptied at start-up
 *   msg/       message files, written once, never changed
 *   incoming/  envelopes of committed messages not yet tried
 *   deferred/  envelopes that wait for a retry
 *   hold/      envelopes put on hold by the admin
 *   corrupt/   files that failed validation, moved aside, never deleted
 *   maildrop/  sendmail's drop box (written by local users)
 *
 * The commit point of a message is the rename of its envelope into
 * incoming/. Before it, the message file and envelope are fsync'd and the
 * message file's directory entry is made durable; after it, incoming/ is
 * fsync'd before the caller is told. A message file without an envelope
 * is an uncommitted leftover and is removed at start-up.
 *
 * Thread safety: a struct queue may be shared by threads; each
 * struct queue_msg belongs to one thread at a time. Directory fsyncs are
 * shared between concurrent committers (group commit). */
#ifndef SMALT_QUEUE_H
#define SMALT_QUEUE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "queue/envelope.h"

enum queue_dir {
	QDIR_TMP,
	QDIR_MSG,
	QDIR_INCOMING,
	QDIR_DEFERRED,
	QDIR_HOLD,
	QDIR_CORRUPT,
	QDIR_MAILDROP,
	QDIR_STATE, /* the daemon's own small files: counters, host cache */
	QDIR_COUNT
};

struct queue;
struct queue_msg;

/* Opens the spool, creating it and its folders with safe modes when
 * missing (0700, maildrop 1730). owner/group: when not -1 the folders are
 * chowned to them (root start-up for the unprivileged user); with a
 * group, maildrop/ is writable by it (1730) and tmp/ (2700), incoming/,
 * deferred/ and hold/ (2750) give it read access to the envelopes
 * (0640), for mailq; msg/ and corrupt/ stay 0700. NULL with errno and a
 * message in err on failure. */
struct queue *queue_open(const char *spool_dir, uid_t owner, gid_t group,
			 char *err, size_t errlen);
/* Opens an existing spool to read it (mailq): creates and changes
 * nothing; folders the caller may not read are held with O_PATH. */
struct queue *queue_open_readonly(const char *spool_dir, char *err,
				  size_t errlen);
void queue_close(struct queue *q);
const char *queue_path(const struct queue *q);
const char *queue_dir_name(enum queue_dir d);
/* The open folder, for *at() calls of the parts that own a folder's
 * files (pickup in maildrop/). */
int queue_dir_fd(const struct queue *q, enum queue_dir d);
/* Reads dir/name whole (NUL-terminated) when it is a regular file of at
 * most limit octets, not a symbolic link; st gets its stat when not
 * NULL. NULL with errno: ENOENT, EINVAL for anything else in its place,
 * or the read error. */
struct stat;
char *queue_read_file(struct queue *q, enum queue_dir dir, const char *name,
		      size_t limit, size_t *lenp, struct stat *st);

/* Group commit: on by default; off makes every committer fsync the
 * directories itself (kept for the benchmark's comparison). */
void queue_set_group_commit(struct queue *q, int on);

/* A new message: creates msg/ID exclusively and returns a handle to
 * stream the message into. NULL with errno on failure. */
struct queue_msg *queue_msg_create(struct queue *q);
const char *queue_msg_id(const struct queue_msg *m);
/* Appends to the message file through a buffer; never holds the whole
 * message. -1 with errno (ENOSPC included) on failure. */
int queue_msg_write(struct queue_msg *m, const void *buf, size_t len);
uint64_t queue_msg_size(const struct queue_msg *m);
/* Makes the message durable and visible in incoming/ with env (its id,
 * size and arrival are filled in here). On success the handle is freed.
 * On failure (-1, errno) nothing becomes visible; call queue_msg_abort. */
int queue_msg_commit(struct queue_msg *m, struct envelope *env);
/* Commits several messages sharing one round of fsyncs: the shape of an
 * event loop that collected finished DATA transfers. Returns the number
 * committed; msgs[i] is set to NULL for each success. */
size_t queue_msg_commit_batch(struct queue_msg **msgs, struct envelope **envs,
			      size_t n);
/* Why the last write or commit of m failed (an errno value, EIO when
 * unknown). */
int queue_msg_error(const struct queue_msg *m);
/* Drops an uncommitted message: its file is removed. */
void queue_msg_abort(struct queue_msg *m);

/* Reads the envelope of id from dir. 0, or -1 with errno (ENOENT when it
 * is not there, EINVAL when it does not parse: *errstr says why); on
 * failure env holds nothing to free. */
int queue_env_read(struct queue *q, enum queue_dir dir, const char *id,
		   struct envelope *env, const char **errstr);
/* Writes env as the new envelope of env->id in dir (which may differ from
 * the directory it is in now, from; then the old one is removed after the
 * new one is durable). */
int queue_env_write(struct queue *q, enum queue_dir from, enum queue_dir to,
		    const struct envelope *env);
/* Is there an envelope named id in dir? */
int queue_env_exists(struct queue *q, enum queue_dir dir, const char *id);
/* Moves an envelope between state folders unchanged (hold, release). */
int queue_env_move(struct queue *q, const char *id, enum queue_dir from,
		   enum queue_dir to);
/* Removes a finished message: envelope first (the point of no return),
 * then the message file. The removal is not fsync'd: after a machine
 * crash a message may come back and be delivered again (at least
 * once); a daemon crash cannot undo it. */
int queue_remove(struct queue *q, enum queue_dir dir, const char *id);
/* Moves the envelope and message file of id to corrupt/ and logs why. */
int queue_quarantine(struct queue *q, enum queue_dir dir, const char *id,
		     const char *why);

/* state/NAME: small files the daemon keeps for itself and smaltctl
 * (counters, later the host cache), replaced whole by write + rename.
 * Not fsync'd: they are worth nothing after a machine crash. read
 * returns a malloc'd NUL-terminated text or NULL with errno. */
int queue_state_write(struct queue *q, const char *name, const char *text,
		      size_t len);
char *queue_state_read(struct queue *q, const char *name, size_t *len);

/* Opens the message file for reading (O_RDONLY, O_CLOEXEC). */
int queue_msg_open(struct queue *q, const char *id);

/* Calls fn for every entry of dir (ids in sorted order, i.e. arrival
 * order). Names that are not queue ids are skipped (recover deals with
 * them). fn returns non-zero to stop. Returns the number visited or -1. */
typedef int (*queue_scan_fn)(struct queue *q, enum queue_dir dir,
			     const char *id, void *arg);
long queue_scan(struct queue *q, enum queue_dir dir, queue_scan_fn fn,
		void *arg);

struct queue_recover_stats {
	unsigned long messages;	   /* valid committed messages found */
	unsigned long tmp_removed; /* leftovers in tmp/ */
	unsigned long orphans_removed;
	unsigned long quarantined;
};
/* The start-up scan: removes what a crash left half-written and moves
 * what does not validate to corrupt/. Must run with no writer active. */
int queue_recover(struct queue *q, struct queue_recover_stats *stats);

/* A descriptor that turns readable when a message is committed into
 * incoming/ or dropped into maildrop/, by any process: the delivery
 * side's wake-up. queue_watch_drain empties it and returns the number
 * of arrivals seen. */
int queue_watch_open(struct queue *q);
int queue_watch_drain(int fd);
/* Empties the watch descriptor and calls fn(dir, id, arg) for every
 * queue id that arrived (dir QDIR_INCOMING or QDIR_MAILDROP). Returns -1
 * when the kernel dropped events (queue overflow): the caller must scan
 * the folders instead. */
typedef void (*queue_watch_fn)(enum queue_dir dir, const char *id, void *arg);
int queue_watch_read(int fd, queue_watch_fn fn, void *arg);

/* A new queue id: 16 upper-case hex digits, microseconds since the epoch
 * then a counter, so ids sort by arrival. */
void queue_id_new(char out[QUEUE_ID_LEN + 1]);
int queue_id_valid(const char *s);

#endif
