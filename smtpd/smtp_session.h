/* One SMTP session: the state machine of RFC 5321 over a bufferevent.
 * Internal to smtpd/. */
#ifndef SMALT_SMTP_SESSION_H
#define SMALT_SMTP_SESSION_H

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "common/addr.h"
#include "common/dns.h"
#include "queue/committer.h"
#include "queue/envelope.h"
#include "smtpd/listener.h"
#include "smtpd/policy.h"
#include "smtpd/smtp_data.h"
#include "smtpd/smtpd.h"

/* What the server shares with its sessions. */
struct smtpd {
	struct event_base *base;
	struct smalt_conf *conf;
	struct queue *queue;
	struct queue_committer *committer;
	struct event *commit_ev;
	struct policy policy;
	struct dns *dns;
	struct host_wake *host_wake;   /* RFC 1123 5.3.1.1 */
	smtpd_commit_hook commit_hook; /* sendmail -bs: on to maildrop */
	void *commit_hook_arg;
	struct evconnlistener **levs;
	void *accept_ctxs; /* one per listener: the server and its kind */
	size_t nlevs;
	unsigned nsessions;
	struct smtp_session *sessions; /* all live sessions, for shutdown */
	struct smtpd_stats stats;
	/* Shutting down: waiting for commits under way. */
	struct event *drain_ev;
	int drain_ticks;
	void (*drain_done)(void *);
	void *drain_arg;
	/* Open sessions per client address: a small array, since it holds
	 * at most max_connections entries and is walked once per accept. */
	struct ip_count {
		struct sockaddr_storage addr;
		unsigned n;
	} * ipcounts;
	size_t nipcounts;
};

enum smtp_state {
	SMTP_GREETING,	/* greeting held back to catch early talkers */
	SMTP_CONNECTED, /* greeted, no HELO/EHLO yet */
	SMTP_HELO,	/* between transactions */
	SMTP_MAIL,	/* MAIL accepted */
	SMTP_RCPT,	/* at least one RCPT accepted */
	SMTP_DATA,	/* reading the message */
	SMTP_COMMIT,	/* waiting for the queue commit */
	SMTP_CLOSING	/* last reply is being written */
};

struct smtp_session {
	struct smtpd *sd;
	struct smtp_session *prev, *next;
	struct bufferevent *bev;
	struct event *timer;	 /* greeting pause, then the command deadline */
	struct dns_req *dns_req; /* the client's name, while looked up */
	struct sockaddr_storage addr;
	struct sockaddr_storage ipkey; /* addr without the port */
	enum listener_kind kind;
	enum smtp_state state;
	char client_ip[INET6_ADDRSTRLEN];
	char client_name[64]; /* "unknown" until reverse DNS is done */
	char *helo;
	int esmtp;
	int errors;
	int discard_line; /* skipping the rest of an over-long line */
	int dead;	  /* client gone while a commit was under way */
	int eof;	  /* client half-closed: finish, then close */
	/* The transaction. */
	struct envelope env;
	int have_mail;
	unsigned rejected_rcpts;
	struct queue_msg *msg;
	struct smtp_data data;
	/* Command counts for the disconnect line, as Postfix logs them. */
	unsigned n_helo, n_ehlo, n_mail, n_rcpt, n_data, n_rset, n_quit,
	    n_other;
};

void smtp_session_start(struct smtpd *sd, int fd, struct sockaddr *sa,
			socklen_t salen, const struct sockaddr_storage *ipkey,
			enum listener_kind kind);
/* Releases one connection of ipkey from the per-address counts. */
void smtpd_ip_release(struct smtpd *sd, const struct sockaddr_storage *ipkey);
/* The commit of the session's message is finished. */
void smtp_session_committed(struct smtp_session *s,
			    const struct commit_result *r);
void smtp_session_free(struct smtp_session *s);

#endif
