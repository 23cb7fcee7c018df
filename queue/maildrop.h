/* maildrop/: how local users hand mail to the daemon (SPEC §2, §4).
 *
 * sendmail, as the calling user (setgid smaltdrop; maildrop/ is 1730
 * smalt:smaltdrop, so a user can create files there but not list or
 * read the folder), writes one file per message:
 *
 *   "smalt-maildrop\t1\n"
 *   "envelope\t" N "\n"        N = the length of the envelope text
 *   envelope text              envelope_format(): sender and recipients
 *   the message                CRLF lines, as it will be queued
 *
 * named by a queue id (16 hex digits), created under a temporary name
 * ("t.*"), fsync'd and renamed into place without replacing anything, so
 * the daemon sees whole files only. A request file has no envelope:
 * "smalt-maildrop\t1\nrequest\tflush\n" asks for a queue run (anyone
 * may: sendmail -q); "request\tflush\tID|HOST", "request\thold\tID",
 * "release\tID" and "remove\tID" are smaltctl's, "wake\tIP" smtpd's
 * (an inbound connection from a host the cache has down), honoured
 * only from root and the daemon's user.
 *
 * The daemon treats every file as hostile: its owner is the identity,
 * the envelope's other fields are ignored, anything malformed is moved
 * to corrupt/ (see pickup.h). */
#ifndef SMALT_MAILDROP_H
#define SMALT_MAILDROP_H

#include <stddef.h>
#include <sys/types.h>

#include "queue/envelope.h"
#include "queue/queue.h"

#define MAILDROP_MAGIC "smalt-maildrop\t1\n"
/* Envelope text larger than this is refused (100,000 recipients). */
#define MAILDROP_ENV_MAX (16u * 1024 * 1024)

/* sendmail's side. Writes env (sender, recipients) and the message into
 * spool_dir/maildrop durably; the new name goes to id_out. 0, or -1 with
 * errno and err. */
int maildrop_write(const char *spool_dir, const struct envelope *env,
		   const char *msg, size_t len, char id_out[QUEUE_ID_LEN + 1],
		   char *err, size_t errlen);
/* Writes a request file: request "flush", "hold", "release", "remove"
 * or "wake", arg NULL or its argument. */
int maildrop_request(const char *spool_dir, const char *request,
		     const char *arg, char *err, size_t errlen);

/* The daemon's side: one file, whole. */
struct maildrop_file {
	uid_t uid;	   /* the file's owner */
	char *request;	   /* a request file: its word; else NULL */
	char *request_arg; /* its argument, or NULL */
	struct envelope env;
	char *data; /* the whole file; msg points into it */
	const char *msg;
	size_t msg_len;
};

/* Reads and checks maildrop/name: a regular file with one link, not a
 * symbolic link, at most max_size octets, in the format above. 0, or -1
 * with errno (ENOENT: gone; EINVAL: malformed, *errstr says why; EFBIG:
 * too big). On failure md holds nothing to free. */
int maildrop_read(struct queue *q, const char *name, size_t max_size,
		  struct maildrop_file *md, const char **errstr);
void maildrop_file_free(struct maildrop_file *md);

/* Parses the text of a maildrop file held in memory (data is kept and
 * owned by md). The same checks as maildrop_read after the stat. */
int maildrop_parse(char *data, size_t len, struct maildrop_file *md,
		   const char **errstr);

#endif
