/* The mailbox writers of the `local` channel (SPEC §5, §9): mbox (mboxrd)
 * and Maildir. They are meant to run in a child that already has the
 * recipient's uid and gid (SPEC §8); they never change credentials.
 *
 * The message is read from a queue message file (CRLF line endings,
 * dot-unstuffed) in 64 KiB chunks with pread, never whole, and written
 * with LF line endings: every CRLF becomes LF, also across chunk
 * boundaries; a lone CR is kept as it is. The caller's trace headers
 * (Return-Path:, Delivered-To:) come first.
 *
 * Outcome: DELIVER_DEFER (4.x.x) for what may go away by itself or by an
 * admin's fix without anyone changing the mail: the mailbox locked,
 * permission denied, a missing folder (4.2.0); I/O errors, too many open
 * files, a read-only file system, an unreadable message file (4.3.0); a
 * full disk or quota (ENOSPC, EDQUOT, EFBIG: 4.2.2 "mailbox full").
 * DELIVER_BOUNCE (5.2.0) for a mailbox path that is structurally wrong
 * and suspicious: a symbolic link, not a regular file, a file with more
 * than one hard link, a path component that is not a folder, a name too
 * long. A DEFER or BOUNCE leaves no partial message behind. The reason
 * names the path and the system error, e.g. "mailbox full: cannot write
 * to mailbox /var/mail/bob: No space left on device"; success says
 * "delivered to mailbox" or "delivered to maildir", as Postfix does.
 *
 * The caller should ignore SIGXFSZ in the delivery child: a mailbox over
 * RLIMIT_FSIZE then fails a write with EFBIG (reported as 4.2.2) instead
 * of killing the child. */
#ifndef SMALT_MAILBOX_H
#define SMALT_MAILBOX_H

#include <time.h>

#include "deliver/result.h"

/* How long mbox_deliver waits for both locks together before it defers
 * with "mailbox locked". */
#define MAILBOX_LOCK_TIMEOUT_MS (30 * 1000)
/* A dot-lock file older than this is left over from a crashed writer and
 * is removed (the traditional 5 minutes). */
#define MAILBOX_DOTLOCK_STALE 300

/* Changes the lock wait of this process (tests, a future config knob). */
void mailbox_set_lock_timeout(unsigned ms);
/* 1: mbox_deliver defers (4.2.0) when an existing mailbox is not owned
 * by our effective uid, as Postfix's safe_open does; for mailboxes, not
 * for /file targets of aliases. */
void mailbox_set_owner_check(int on);

/* Appends one message to the mbox file path, in the mboxrd format:
 *
 *   From SENDER DATE\n       SENDER "MAILER-DAEMON" for the null sender,
 *                            white space and control characters in it
 *                            turned into '_'; DATE is now in asctime(3)
 *                            form in local time, "Sun Nov 29 06:51:56 2026"
 *   headers                  as given (LF endings; a missing final LF is
 *                            added); NULL or "" for none
 *   the message              LF endings; every line matching ^>*From_ gets
 *                            one more '>'; a final LF is added if missing
 *   \n                       the empty line that ends every message
 *
 * When the existing file does not end in an empty line (another writer's
 * habit, or damage), one or two LFs are written first so that the From_
 * line really starts a message.
 *
 * Locking, in this order, within one MAILBOX_LOCK_TIMEOUT_MS:
 *   1. a dot-lock path.lock made with O_CREAT|O_EXCL, retried, removed
 *      when older than MAILBOX_DOTLOCK_STALE. When we may not create files
 *      in the mailbox's folder (EACCES/EPERM: Debian's /var/mail is 2775
 *      root:mail), delivery goes on with the fcntl lock alone, as MUAs
 *      without a setgid helper do;
 *   2. an fcntl(F_SETLK) write lock on the whole file, retried. After it
 *      the path is checked to still name the locked file (a writer that
 *      rewrites the mbox by rename would otherwise win).
 * A path that is missing is created with mode 0600 (O_EXCL, O_NOFOLLOW).
 * The data are fsync'd before DELIVER_OK (and the folder, when the file
 * was created). On any failure after the file was opened, it is truncated
 * back to its size before (a file we created is removed) and the status
 * is DELIVER_DEFER. */
void mbox_deliver(const char *path, const char *sender, time_t now, int msg_fd,
		  const char *headers, struct deliver_result *res);

/* Delivers one message into the Maildir dir: creates dir and its tmp/,
 * new/ and cur/ (0700) when missing (not the folders above dir); writes
 * headers then the message (LF endings, otherwise unchanged: no From_
 * line, no quoting) to tmp/UNIQUE, fsyncs it, renames it into new/ and
 * fsyncs new/. UNIQUE is "SECONDS.MmicrosPpidQcountRrandom.HOSTNAME"
 * ('/' and ':' in the host name written as \057 and \072). Symbolic links
 * to dir and its subfolders are followed: the child runs as the
 * recipient and can only reach what the recipient can. On failure the
 * tmp/ file is removed; a message already renamed into new/ whose
 * folder sync fails is unlinked again, so DEFER means "not delivered". */
void maildir_deliver(const char *dir, int msg_fd, const char *headers,
		     struct deliver_result *res);

/* The loop check of SPEC §5: how many Delivered-To: fields in the header
 * section of the message in msg_fd (up to the first empty line, read with
 * pread in chunks) have, unfolded and with surrounding white space and
 * one pair of <> removed, a value equal to address (ASCII case-
 * insensitive)? Field names match case-insensitively; white space
 * before the colon (obsolete syntax) is allowed. -1 with errno when the
 * file cannot be read. */
int count_delivered_to(int msg_fd, const char *address);

#endif
