#include "smtpd/policy.h"

#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"

static int
load_table(const char *path, enum table_sep sep, struct table **out, char *err,
	   size_t errlen)
{
	*out = NULL;
	if (path == NULL || *path == '\0')
		return 0;
	*out = table_open(path, sep, TABLE_FOLD_CASE, err, errlen);
	return *out != NULL ? 0 : -1;
}

/* The same reader and checks as local delivery, so that smtpd and
 * delivery never disagree about one file. */
static int
load_aliases(const char *path, struct alias_db **out, char *err, size_t errlen)
{
	*out = NULL;
	if (path == NULL || *path == '\0')
		return 0;
	*out = alias_open(path, err, errlen);
	if (*out != NULL)
		return 0;
	/* A system without /etc/aliases is common; Postfix only warns. */
	if (errno == ENOENT) {
		log_warn("%s: %s; only system users and virtual mailboxes "
			 "are local recipients",
			 path, strerror(ENOENT));
		return 0;
	}
	return -1;
}

int
policy_load(struct policy *p, const struct smalt_conf *conf, char *err,
	    size_t errlen)
{
	memset(p, 0, sizeof(*p));
	p->conf = conf;
	if (load_aliases(conf->aliases, &p->aliases, err, errlen) != 0 ||
	    load_table(conf->virtual_mailboxes, TABLE_SEP_SPACE, &p->virtuals,
		       err, errlen) != 0) {
		policy_free(p);
		return -1;
	}
	return 0;
}

void
policy_free(struct policy *p)
{
	if (p->aliases)
		alias_free(p->aliases);
	if (p->virtuals)
		table_free(p->virtuals);
	p->aliases = NULL;
	p->virtuals = NULL;
}

static int
local_user_exists(const struct policy *p, const struct mailaddr *a)
{
	char local[ADDR_LOCAL_MAX + 1],
	    full[ADDR_LOCAL_MAX + ADDR_DOMAIN_MAX + 2];
	addr_local_unquoted(a, local, sizeof(local));
	ascii_lower(local);
	/* RFC 5321 4.5.1: postmaster must always be accepted. */
	if (strcmp(local, "postmaster") == 0)
		return 1;
	if (p->aliases && alias_exists(p->aliases, local))
		return 1;
	if (p->virtuals) {
		snprintf(full, sizeof(full), "%s@%s", local, a->domain);
		ascii_lower(full);
		if (table_lookup(p->virtuals, full) ||
		    table_lookup(p->virtuals, local))
			return 1;
	}
	/* System accounts are looked up by their lower-case name, as
	 * Postfix's local(8) does. */
	return getpwnam(local) != NULL;
}

enum rcpt_verdict
policy_check_rcpt(const struct policy *p, const struct mailaddr *rcpt,
		  const struct sockaddr *sa, int authenticated)
{
	if (rcpt->domain[0] == '\0' ||
	    conf_is_local_domain(p->conf, rcpt->domain))
		return local_user_exists(p, rcpt) ? RCPT_OK : RCPT_UNKNOWN_USER;
	if (authenticated || conf_cidrs_match(&p->conf->relay_networks, sa))
		return RCPT_OK;
	return RCPT_RELAY_DENIED;
}
