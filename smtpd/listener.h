/* The listening sockets of SPEC §3 (listen, submission_listen,
 * smtps_listen). They are bound by the privileged parent before it drops
 * to the unprivileged user, and survive reloads. */
#ifndef SMALT_LISTENER_H
#define SMALT_LISTENER_H

#include <stddef.h>

#include "conf/conf.h"

enum listener_kind {
	LISTENER_SMTP,	     /* port 25 style */
	LISTENER_SUBMISSION, /* port 587: STARTTLS, AUTH before MAIL */
	LISTENER_SMTPS	     /* port 465: implicit TLS */
};

struct listener {
	int fd;
	enum listener_kind kind;
	char name[80]; /* "127.0.0.1:2525", "[::1]:25" for logs */
};

struct listeners {
	size_t n;
	struct listener *v;
};

/* Binds every configured address (non-blocking, close-on-exec, backlog
 * at least SOMAXCONN). An address whose family the host lacks is skipped
 * with a warning; any other failure returns -1 with the reason in err and
 * nothing left open. */
int listeners_bind(const struct smalt_conf *conf, struct listeners *out,
		   char *err, size_t errlen);
void listeners_close(struct listeners *l);
const char *listener_kind_name(enum listener_kind kind);

#endif
