/* The envelope: who a message is from, who it is for, and how far each
 * recipient has got. It is a small text file rewritten whole on every
 * change (write-new + fsync + rename), never edited in place, so a reader
 * sees either the old or the new version. */
#ifndef SMALT_ENVELOPE_H
#define SMALT_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define QUEUE_ID_LEN 16

enum rcpt_state {
	RCPT_PENDING,	/* not tried yet */
	RCPT_DEFERRED,	/* tried, failed temporarily; next_attempt set */
	RCPT_DELIVERED, /* done */
	RCPT_BOUNCED	/* done, failed permanently; a bounce was queued */
};

struct env_rcpt {
	char *address; /* "local@domain" as parsed, no brackets */
	enum rcpt_state state;
	time_t next_attempt; /* 0 = as soon as possible */
	char dsn[16];	     /* enhanced status of the last attempt, or "" */
	char *reason;	     /* last attempt's reason, "" when none */
};

struct envelope {
	char id[QUEUE_ID_LEN + 1];
	time_t arrival;
	uint64_t size;	   /* exact size of the message file */
	char *sender;	   /* "" for the null sender <> */
	unsigned attempts; /* delivery rounds so far, for the backoff */
	int warned;	   /* the delay warning went out */
	/* Where the message came from, for logs and Received (may be ""). */
	char *client_name, *client_addr, *helo, *protocol, *auth_user;
	long uid; /* injecting uid for local mail, -1 for SMTP */
	size_t nrcpt;
	struct env_rcpt *rcpt;
};

void envelope_init(struct envelope *env);
void envelope_free(struct envelope *env);
/* Adds a recipient in state pending; the string is copied. */
struct env_rcpt *envelope_add_rcpt(struct envelope *env, const char *address);
/* Replaces a string field, copying value (NULL becomes ""). */
void envelope_set(char **field, const char *value);

/* The text form. envelope_format returns a malloc'd buffer and its length
 * in *len. envelope_parse accepts exactly what envelope_format writes and
 * nothing else; on error it returns -1, points *errstr at a reason and
 * leaves env with nothing to free. */
char *envelope_format(const struct envelope *env, size_t *len);
int envelope_parse(const char *text, size_t len, struct envelope *env,
		   const char **errstr);

const char *rcpt_state_name(enum rcpt_state s);
/* Are all recipients delivered or bounced? */
int envelope_done(const struct envelope *env);

#endif
