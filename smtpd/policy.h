/* Who may send to whom: local recipients must exist (aliases, system
 * users, virtual mailboxes), and only trusted clients may relay. */
#ifndef SMALT_POLICY_H
#define SMALT_POLICY_H

#include <sys/socket.h>

#include "common/addr.h"
#include "conf/aliases.h"
#include "conf/conf.h"
#include "conf/table.h"

struct policy {
	const struct smalt_conf *conf;
	struct alias_db *aliases; /* NULL when the file does not exist */
	struct table *virtuals;	  /* NULL when unset */
};

/* Reads the tables named in conf. -1 with err ("file:line: reason"). */
int policy_load(struct policy *p, const struct smalt_conf *conf, char *err,
		size_t errlen);
void policy_free(struct policy *p);

enum rcpt_verdict { RCPT_OK, RCPT_UNKNOWN_USER, RCPT_RELAY_DENIED };

/* The verdict for one RCPT from a client at sa. */
enum rcpt_verdict policy_check_rcpt(const struct policy *p,
				    const struct mailaddr *rcpt,
				    const struct sockaddr *sa,
				    int authenticated);

#endif
