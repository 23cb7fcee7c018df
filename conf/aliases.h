/* The aliases(5) database and its expansion, for local delivery and for
 * newaliases. The file is read whole through the table reader and every
 * target is checked when it is opened, so a bad file is reported as
 * "file:line: reason" before any mail depends on it; :include: files are
 * read when an alias that names them is expanded, as in sendmail.
 *
 * Expansion is pure: it runs nothing and writes nothing. It returns the
 * final targets (local users, remote addresses, commands, files) with the
 * uid/gid a command or file target must run as, and the delivery side
 * does the rest. */
#ifndef SMALT_ALIASES_H
#define SMALT_ALIASES_H

#include <stddef.h>
#include <sys/types.h>

#define ALIAS_MAX_TARGETS	1000  /* distinct targets of one expansion */
#define ALIAS_MAX_ITEMS		10000 /* items visited by one expansion */
#define ALIAS_MAX_NESTING	20    /* aliases expanded inside each other */
#define ALIAS_MAX_INCLUDE_DEPTH 10    /* :include: files inside each other */
#define ALIAS_INCLUDE_MAX_SIZE	(1024 * 1024)

struct alias_db;

/* Reads and checks the whole file (table_open's syntax, names folded to
 * lower case). Records the file's owner: |command and /file targets run
 * as that owner, or as "nobody" when it is root; :include: files must be
 * owned by root or by that owner. A file that anyone may write is refused
 * (it would let anyone run commands as its owner).
 *
 * NULL with err "file:line: reason" or "file: reason". A missing file
 * gives NULL with errno ENOENT so that callers can treat it as empty;
 * any other failure leaves errno != ENOENT. */
struct alias_db *alias_open(const char *path, char *err, size_t errlen);

/* The same from text in memory (tests, fuzzing): owner and group stand
 * for the file's owner. name is used in messages. */
struct alias_db *alias_parse_buffer(const char *name, const char *text,
				    size_t len, uid_t owner, gid_t group,
				    char *err, size_t errlen);

void alias_free(struct alias_db *db);

/* Is name (any case) an alias? What smtpd needs at RCPT time. */
int alias_exists(const struct alias_db *db, const char *name);

/* The entries in file order, names folded to lower case (a name defined
 * twice appears twice; lookups use the first). */
size_t alias_count(const struct alias_db *db);
const char *alias_name_at(const struct alias_db *db, size_t i);

enum alias_kind {
	ALIAS_LOCAL,   /* a local user name (lower case): deliver to the
			* system user or virtual mailbox, never look it up
			* in the aliases again */
	ALIAS_REMOTE,  /* "local@domain" whose domain is not local: route it
			* as any other mail */
	ALIAS_COMMAND, /* the command after '|', to run with the message on
			* stdin, as uid/gid */
	ALIAS_FILE     /* an absolute path: append in mbox format, as uid/gid */
};

struct alias_target {
	enum alias_kind kind;
	char *value;
	/* ALIAS_COMMAND and ALIAS_FILE: who runs the command or writes the
	 * file: the owner of the file that named the target (the aliases
	 * file or an :include: file), or nobody when that owner is root;
	 * a group of 0 becomes nobody's group too. Never 0. (uid_t)-1 and
	 * (gid_t)-1 for the other kinds. */
	uid_t uid;
	gid_t gid;
	/* "owner-LIST" when the target came through the alias LIST and an
	 * alias owner-LIST exists (the innermost such list wins): use
	 * owner-LIST@hostname as the envelope sender for this target.
	 * NULL otherwise. */
	char *errors_to;
	/* The alias whose entry (or :include: file) named the target, for
	 * logs and Delivered-To. */
	char *alias;
	/* ALIAS_LOCAL only: 1 when this name closed a loop (a: b, b: a gives
	 * "a" with loop 1). A name that lists itself (bob: bob, bob@other)
	 * is not a loop: it gives "bob" with loop 0. The delivery side
	 * should bounce a loop target with 5.4.6 (SPEC §9, aliases(5)
	 * LOOPS). */
	int loop;
};

struct alias_expansion {
	size_t n;
	struct alias_target *v; /* in the order they were first reached */
	size_t cap;		/* private */
};

/* Expands one local part (any case, unquoted as addr_local_unquoted
 * gives it; no +extension is stripped) recursively.
 *
 * is_local(domain, arg) says whether an address's domain (lower case) is
 * delivered here; then its local part is expanded again as a name. NULL
 * means no domain is local. A name that is not an alias is a final
 * ALIAS_LOCAL target ("postmaster" too, when it is not defined: callers
 * handle it); so is "\name", which is never looked up.
 *
 * Each alias name and each :include: file is expanded at most once per
 * call: a second reference to one already expanded adds nothing (its
 * targets are there), a reference to one still being expanded is either
 * the alias naming itself (sendmail's rule: deliver to that name as a
 * local user) or a loop (the same, with loop = 1). Targets are
 * deduplicated; the first occurrence wins.
 *
 * :include:/path is read now, one target per line or comma-separated,
 * "#" comment lines; the file must be a regular file owned by root or
 * the aliases file's owner and not writable by everyone.
 *
 * Returns 1 when local_part is an alias (out filled; out->n may be 0 when
 * its only members are empty :include: files), 0 when it is not an alias
 * (out empty), -1 on error with err (an :include: file missing, unsafe or
 * malformed; more than ALIAS_MAX_TARGETS targets; nesting too deep). The
 * errors are the aliases' administrator's, not the recipient's: defer
 * the recipient and log err. out needs no initialisation and is always
 * safe to pass to alias_expansion_free. */
int alias_expand(const struct alias_db *db, const char *local_part,
		 int (*is_local)(const char *domain, void *arg), void *arg,
		 struct alias_expansion *out, char *err, size_t errlen);

void alias_expansion_free(struct alias_expansion *e);

#endif
