#include "deliver/smtp_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/strbuf.h"
#include "common/util.h"

#define REPLY_LINE_MAX	1000	     /* longer reply lines are cut */
#define REPLY_TEXT_MAX	900	     /* kept of a multi-line reply */
#define REPLY_LINES_MAX 200	     /* more: the server is broken */
#define INPUT_MAX	(64 * 1024)  /* unanswered octets without a line */
#define DATA_CHUNK	(64 * 1024)  /* read from the message at a time */
#define DATA_LOW	(64 * 1024)  /* refill the output below this */
#define DATA_HIGH	(256 * 1024) /* and up to this */

/* What a reply answers, in the order the commands went. */
enum expect {
	E_GREETING,
	E_EHLO,
	E_HELO,
	E_STARTTLS,
	E_AUTH,
	E_AUTH_USER, /* AUTH LOGIN's 334 for the user name */
	E_AUTH_PASS,
	E_MAIL,
	E_RCPT,
	E_DATA,
	E_DOT,
	E_RSET,
	E_QUIT
};

enum phase {
	P_IDLE,	      /* between connections */
	P_CONNECTING, /* TCP (and, for SMTPS, the TLS handshake) */
	P_HANDSHAKE,  /* STARTTLS handshake */
	P_COMMANDS,   /* waiting for replies */
	P_SENDING,    /* the message text */
	P_RESETTING,  /* RSET after a transaction that sent no message */
	P_PARKED,     /* kept, idle: the caller owns the client */
	P_QUITTING
};

struct pending {
	enum expect what;
	size_t idx; /* E_RCPT: the recipient */
};

struct smtp_client {
	struct event_base *base;
	struct smtp_client_params p;
	char *helo_name, *auth_user, *auth_pass;
	struct dns_target *targets;
	size_t ntargets, cur;
	struct smtp_tx tx;
	char *sender;
	char **rcpts;
	smtp_done_cb cb;
	void *arg;

	struct event *timer; /* the phase's deadline */
	struct event *kick;  /* starts a transaction, outside the caller */
	struct bufferevent *bev;
	SSL *ssl;
	enum phase phase;
	const char *doing; /* for timeout / lost-connection reasons */
	char host[304];	   /* "name[ip]" */
	char ip[48];
	unsigned port;

	/* the session */
	int tls_active, no_tls_this_addr, plain_retry_done;
	int f_auth_any; /* AUTH offered, whatever the mechanisms */
	int esmtp, f_pipelining, f_starttls, f_8bitmime, f_auth_plain,
	    f_auth_login;
	uint64_t f_size;
	struct pending *pend;
	size_t npend_cap, pend_head, pend_tail;

	/* the reply being read */
	int rcode;
	struct strbuf rtext;
	size_t rlines;

	/* the transaction */
	int txn_started, mail_failed;
	size_t naccepted;
	int *accepted; /* per recipient: 1 after a 2xx to RCPT */
	int *final;    /* per recipient: result set */
	uint64_t sent;
	int bol;
	char *iobuf;

	char host_dsn[16]; /* of the last host failure */
	int busy, done;	   /* in a callback; finished */
	int owned;	   /* kept, and not yet reused: the caller's */
	int reusing;	   /* a reused session, until MAIL FROM's reply */
	int closing;	   /* smtp_client_close: nobody to tell */

	struct smtp_outcome out;
};

static void next_address(struct smtp_client *c);
static void start_over(struct smtp_client *c);
static void finish(struct smtp_client *c);
static void proceed_after_ehlo(struct smtp_client *c);
static void send_mail(struct smtp_client *c);
static void on_read(struct bufferevent *bev, void *arg);
static void on_write(struct bufferevent *bev, void *arg);
static void on_event(struct bufferevent *bev, short what, void *arg);
static void enter(struct smtp_client *c);
static void leave(struct smtp_client *c);

/* ---- helpers ----------------------------------------------------------- */

void
smtp_reply_dsn(int code, const char *text, char *dsn, size_t len)
{
	int cls = code / 100;
	const char *t = text;
	size_t n = 0;
	if (t[0] >= '2' && t[0] <= '5' && t[0] - '0' == cls && t[1] == '.') {
		const char *q = t + 2;
		int ok = 1;
		for (int part = 0; part < 2 && ok; part++) {
			size_t d = 0;
			while (q[d] >= '0' && q[d] <= '9')
				d++;
			if (d == 0 || d > 3)
				ok = 0;
			q += d;
			if (part == 0) {
				if (*q != '.')
					ok = 0;
				else
					q++;
			}
		}
		if (ok && (*q == ' ' || *q == '\0'))
			n = (size_t)(q - t);
	}
	if (n > 0 && n < len) {
		memcpy(dsn, t, n);
		dsn[n] = '\0';
	} else {
		snprintf(dsn, len, "%d.0.0", cls >= 2 && cls <= 5 ? cls : 4);
	}
}

size_t
smtp_dot_stuff(int *bol, const char *in, size_t n, char *out)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		if (*bol && in[i] == '.')
			out[o++] = '.';
		out[o++] = in[i];
		*bol = in[i] == '\n';
	}
	return o;
}

static void
arm(struct smtp_client *c, unsigned seconds)
{
	struct timeval tv = {seconds ? seconds : 1, 0};
	evtimer_add(c->timer, &tv);
}

static const char *
expect_name(enum expect e)
{
	switch (e) {
	case E_GREETING:
		return "initial greeting";
	case E_EHLO:
		return "EHLO";
	case E_HELO:
		return "HELO";
	case E_STARTTLS:
		return "STARTTLS";
	case E_AUTH:
	case E_AUTH_USER:
	case E_AUTH_PASS:
		return "AUTH";
	case E_MAIL:
		return "MAIL FROM";
	case E_RCPT:
		return "RCPT TO";
	case E_DATA:
		return "DATA";
	case E_DOT:
		return "end of DATA";
	case E_RSET:
		return "RSET";
	case E_QUIT:
		return "QUIT";
	}
	return "?";
}

static void send_cmd(struct smtp_client *c, enum expect what, size_t idx,
		     const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
send_cmd(struct smtp_client *c, enum expect what, size_t idx, const char *fmt,
	 ...)
{
	struct evbuffer *o = bufferevent_get_output(c->bev);
	va_list ap;
	va_start(ap, fmt);
	evbuffer_add_vprintf(o, fmt, ap);
	va_end(ap);
	evbuffer_add(o, "\r\n", 2);
	if (c->pend_tail == c->npend_cap) {
		c->npend_cap *= 2;
		c->pend = xrealloc(c->pend, c->npend_cap * sizeof(*c->pend));
	}
	c->pend[c->pend_tail].what = what;
	c->pend[c->pend_tail].idx = idx;
	c->pend_tail++;
	c->phase = P_COMMANDS;
	arm(c, what == E_DOT ? c->p.data_timeout : c->p.command_timeout);
}

static void
close_conn(struct smtp_client *c)
{
	if (c->bev != NULL) {
		bufferevent_free(c->bev); /* frees the SSL too */
		c->bev = NULL;
		c->ssl = NULL;
	}
	if (c->ssl != NULL) {
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	evtimer_del(c->timer);
	c->phase = P_IDLE;
	c->pend_head = c->pend_tail = 0;
	free(c->rtext.s);
	memset(&c->rtext, 0, sizeof(c->rtext));
	c->rlines = 0;
}

static void set_rcpt(struct smtp_client *c, size_t i, enum deliver_status st,
		     const char *dsn, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void
set_rcpt(struct smtp_client *c, size_t i, enum deliver_status st,
	 const char *dsn, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	deliver_result_vset(&c->out.rcpt[i], st, dsn, fmt, ap);
	va_end(ap);
	c->final[i] = 1;
}

/* The reply as one line: "550 5.1.1 text more text". */
static const char *
reply_text(struct smtp_client *c)
{
	return c->rtext.s != NULL ? c->rtext.s : "";
}

static enum deliver_status
status_of(int code)
{
	if (code >= 200 && code < 300)
		return DELIVER_OK;
	return code >= 500 && code < 600 ? DELIVER_BOUNCE : DELIVER_DEFER;
}

/* A server's reply applied to recipient i. */
static void
rcpt_from_reply(struct smtp_client *c, size_t i, enum expect what)
{
	char dsn[16];
	const char *t = reply_text(c);
	smtp_reply_dsn(c->rcode, t + (strlen(t) > 4 ? 4 : strlen(t)), dsn,
		       sizeof(dsn));
	if (status_of(c->rcode) == DELIVER_OK)
		set_rcpt(c, i, DELIVER_OK, dsn, "%s", t);
	else
		set_rcpt(c, i, status_of(c->rcode), dsn,
			 "host %s said: %s (in reply to %s command)", c->host,
			 t, expect_name(what));
}

/* ---- failures ---------------------------------------------------------- */

/* The host failed: before the transaction, try the next address; during
 * it, defer whoever has no result and stop. */
static void host_fail(struct smtp_client *c, const char *dsn, const char *fmt,
		      ...) __attribute__((format(printf, 3, 4)));

static void
host_fail(struct smtp_client *c, const char *dsn, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->out.host_reason, sizeof(c->out.host_reason), fmt, ap);
	va_end(ap);
	c->out.host_failed = 1;
	smalt_strlcpy(c->host_dsn, dsn, sizeof(c->host_dsn));
	if (c->host_dsn[0] == '5') /* a host failure defers */
		c->host_dsn[0] = '4';
	dsn = c->host_dsn;
	if (c->out.ntried > 0)
		c->out.tried_failed[c->out.ntried - 1] = 1;
	close_conn(c);
	if (c->txn_started || c->closing) {
		for (size_t i = 0; i < c->tx.nrcpt; i++)
			if (!c->final[i])
				set_rcpt(c, i, DELIVER_DEFER, dsn, "%s",
					 c->out.host_reason);
		finish(c);
		return;
	}
	next_address(c);
}

/* What the session was at, for a timeout or a lost connection: the
 * oldest command still unanswered, else the last step. */
static const char *
doing_now(struct smtp_client *c)
{
	if (c->phase != P_COMMANDS || c->pend_head == c->pend_tail)
		return c->doing;
	switch (c->pend[c->pend_head].what) {
	case E_GREETING:
		return "receiving the initial server greeting";
	case E_EHLO:
		return "performing the EHLO handshake";
	case E_HELO:
		return "performing the HELO handshake";
	case E_STARTTLS:
		return "sending STARTTLS";
	case E_AUTH:
	case E_AUTH_USER:
	case E_AUTH_PASS:
		return "performing the SASL authentication";
	case E_MAIL:
		return "sending MAIL FROM";
	case E_RCPT:
		return "sending RCPT TO";
	case E_DATA:
		return "sending DATA";
	case E_DOT:
		return "sending end of data";
	case E_RSET:
		return "sending RSET";
	case E_QUIT:
		return "sending QUIT";
	}
	return c->doing;
}

/* The conversation ended on its own (EOF, error or timeout). */
static void
lost(struct smtp_client *c, int timeout)
{
	const char *tail = "";
	if (c->reusing) {
		/* the server let the idle session go as we spoke: not its
		 * failure, and nothing was taken yet */
		start_over(c);
		return;
	}
	c->doing = doing_now(c);
	if (c->phase != P_SENDING && c->pend_head < c->pend_tail &&
	    c->pend[c->pend_head].what == E_DOT)
		tail = " -- message may be sent more than once";
	if (c->phase == P_QUITTING || c->phase == P_RESETTING) {
		/* all said already; a session that fails RSET is not kept */
		close_conn(c);
		finish(c);
		return;
	}
	if (timeout)
		host_fail(c, "4.4.2",
			  "conversation with %s timed out while %s%s", c->host,
			  c->doing, tail);
	else
		host_fail(c, "4.4.2", "lost connection with %s while %s%s",
			  c->host, c->doing, tail);
}

/* Says QUIT, and finishes on its reply, the server closing or a timeout.
 */
static void
quit(struct smtp_client *c)
{
	send_cmd(c, E_QUIT, 0, "QUIT");
	c->phase = P_QUITTING;
	c->doing = "sending QUIT";
}

/* Keeps the idle session for smtp_client_reuse and reports. Reads stay
 * armed, so that a server closing it meanwhile is noticed. */
static void
park(struct smtp_client *c)
{
	evtimer_del(c->timer);
	c->pend_head = c->pend_tail = 0;
	c->phase = P_PARKED;
	c->doing = "waiting for the next message";
	c->owned = 1;
	c->out.kept = 1;
	finish(c);
}

/* The server ended the transaction. rset: it may still hold part of it
 * (MAIL or RCPT taken, no message), which a kept session must clear. */
static void
end_txn(struct smtp_client *c, int rset)
{
	if (!c->p.keep_open) {
		quit(c);
		return;
	}
	if (rset) {
		c->doing = "sending RSET";
		send_cmd(c, E_RSET, 0, "RSET");
		c->phase = P_RESETTING;
		return;
	}
	park(c);
}

/* ---- the message ------------------------------------------------------- */

static void
pump(struct smtp_client *c)
{
	struct evbuffer *o = bufferevent_get_output(c->bev);
	if (c->iobuf == NULL) /* the chunk read, then its stuffed copy */
		c->iobuf = xmalloc(3 * DATA_CHUNK);
	char *in = c->iobuf, *st = c->iobuf + DATA_CHUNK;
	while (evbuffer_get_length(o) < DATA_HIGH && c->sent < c->tx.msg_size) {
		uint64_t left = c->tx.msg_size - c->sent;
		size_t want = left < DATA_CHUNK ? (size_t)left : DATA_CHUNK;
		ssize_t n = pread(c->tx.msg_fd, in, want,
				  c->tx.msg_offset + (off_t)c->sent);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			/* The queue file is ours: a local failure. */
			int e = n < 0 ? errno : 0;
			for (size_t i = 0; i < c->tx.nrcpt; i++)
				if (!c->final[i])
					set_rcpt(c, i, DELIVER_DEFER, "4.3.0",
						 "error reading the message "
						 "file: %s",
						 e ? strerror(e)
						   : "unexpected end of file");
			close_conn(c);
			finish(c);
			return;
		}
		size_t m = smtp_dot_stuff(&c->bol, in, (size_t)n, st);
		evbuffer_add(o, st, m);
		c->sent += (uint64_t)n;
	}
	arm(c, c->p.data_timeout);
	if (c->sent >= c->tx.msg_size) {
		if (!c->bol)
			evbuffer_add(o, "\r\n", 2);
		bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
		c->doing = "sending end of data";
		send_cmd(c, E_DOT, 0, ".");
	}
}

/* ---- replies ----------------------------------------------------------- */

static void
parse_ehlo_line(struct smtp_client *c, const char *kw)
{
	if (ascii_strcasecmp(kw, "PIPELINING") == 0)
		c->f_pipelining = 1;
	else if (ascii_strcasecmp(kw, "STARTTLS") == 0)
		c->f_starttls = 1;
	else if (ascii_strcasecmp(kw, "8BITMIME") == 0)
		c->f_8bitmime = 1;
	else if (ascii_strncasecmp(kw, "SIZE", 4) == 0 &&
		 (kw[4] == ' ' || kw[4] == '\0')) {
		c->f_size = strtoull(kw + 4, NULL, 10);
	} else if (ascii_strncasecmp(kw, "AUTH", 4) == 0 &&
		   (kw[4] == ' ' || kw[4] == '=')) {
		const char *p = kw + 5;
		c->f_auth_any = 1;
		while (*p != '\0') {
			size_t n = strcspn(p, " ");
			if (n == 5 && ascii_strncasecmp(p, "PLAIN", 5) == 0)
				c->f_auth_plain = 1;
			if (n == 5 && ascii_strncasecmp(p, "LOGIN", 5) == 0)
				c->f_auth_login = 1;
			p += n;
			p += strspn(p, " ");
		}
	}
}

static char *
b64(const char *s, size_t n)
{
	char *o = xmalloc(4 * ((n + 2) / 3) + 1);
	EVP_EncodeBlock((unsigned char *)o, (const unsigned char *)s, (int)n);
	return o;
}

static void start_tls_handshake(struct smtp_client *c);

static int
tls_needs_verify(const struct smtp_client *c)
{
	return c->p.tls == SMTP_TLS_ENCRYPT || c->p.tls == SMTP_TLS_SMTPS;
}

/* After EHLO (or HELO): STARTTLS, AUTH, then MAIL. */
static void
proceed_after_ehlo(struct smtp_client *c)
{
	if (!c->tls_active && c->p.tls == SMTP_TLS_ENCRYPT &&
	    c->p.ssl_ctx == NULL) {
		host_fail(c, "4.7.5",
			  "TLS is required, but our TLS engine is unavailable");
		return;
	}
	if (!c->tls_active && c->p.tls == SMTP_TLS_ENCRYPT && !c->f_starttls) {
		host_fail(c, "4.7.4",
			  "TLS is required, but was not offered by host %s",
			  c->host);
		return;
	}
	if (!c->tls_active && c->f_starttls && !c->no_tls_this_addr &&
	    (c->p.tls == SMTP_TLS_MAY || c->p.tls == SMTP_TLS_ENCRYPT) &&
	    c->p.ssl_ctx != NULL) {
		c->doing = "sending STARTTLS";
		send_cmd(c, E_STARTTLS, 0, "STARTTLS");
		return;
	}
	if (c->auth_user != NULL && c->f_auth_any && !c->f_auth_plain &&
	    !c->f_auth_login) {
		host_fail(c, "4.7.0",
			  "SASL authentication failed; cannot authenticate to "
			  "server %s: no mechanism available",
			  c->host);
		return;
	}
	if (c->auth_user != NULL && (c->f_auth_plain || c->f_auth_login)) {
		if (!c->tls_active && c->p.tls != SMTP_TLS_NONE) {
			host_fail(c, "4.7.0",
				  "SASL authentication needs TLS, but the "
				  "session with host %s is not encrypted",
				  c->host);
			return;
		}
		c->doing = "performing the SASL authentication";
		if (c->f_auth_plain) {
			size_t ul = strlen(c->auth_user);
			size_t pl = strlen(c->auth_pass);
			char *raw = xmalloc(ul + pl + 2);
			raw[0] = '\0';
			memcpy(raw + 1, c->auth_user, ul);
			raw[1 + ul] = '\0';
			memcpy(raw + 2 + ul, c->auth_pass, pl);
			char *enc = b64(raw, ul + pl + 2);
			send_cmd(c, E_AUTH, 0, "AUTH PLAIN %s", enc);
			OPENSSL_cleanse(raw, ul + pl + 2);
			free(raw);
			free(enc);
		} else {
			send_cmd(c, E_AUTH_USER, 0, "AUTH LOGIN");
		}
		return;
	}
	send_mail(c);
}

static void
send_mail(struct smtp_client *c)
{
	char size[40] = "";
	const char *body = "";
	c->out.host_failed = 0; /* this one takes the transaction */
	c->out.host_reason[0] = '\0';
	c->host_dsn[0] = '\0';
	c->out.ready_us = now_usec();
	if (c->f_size > 0 && c->tx.msg_size > c->f_size) {
		for (size_t i = 0; i < c->tx.nrcpt; i++)
			set_rcpt(c, i, DELIVER_BOUNCE, "5.3.4",
				 "message size %llu exceeds size limit %llu of "
				 "server %s",
				 (unsigned long long)c->tx.msg_size,
				 (unsigned long long)c->f_size, c->host);
		c->txn_started = 1;
		snprintf(c->out.relay, sizeof(c->out.relay), "%s:%u", c->host,
			 c->port);
		end_txn(c, 0); /* nothing started: the session is clean */
		return;
	}
	if (c->esmtp && c->f_size > 0)
		snprintf(size, sizeof(size), " SIZE=%llu",
			 (unsigned long long)c->tx.msg_size);
	if (c->esmtp && c->f_8bitmime && c->tx.eight_bit)
		body = " BODY=8BITMIME";
	c->txn_started = 1;
	snprintf(c->out.relay, sizeof(c->out.relay), "%s:%u", c->host, c->port);
	c->doing = "sending MAIL FROM";
	send_cmd(c, E_MAIL, 0, "MAIL FROM:<%s>%s%s", c->tx.sender, size, body);
	if (c->f_pipelining) {
		c->doing = "sending RCPT TO";
		for (size_t i = 0; i < c->tx.nrcpt; i++)
			send_cmd(c, E_RCPT, i, "RCPT TO:<%s>", c->tx.rcpts[i]);
		c->doing = "sending DATA";
		send_cmd(c, E_DATA, 0, "DATA");
	}
}

static void
after_rcpts(struct smtp_client *c)
{
	if (c->naccepted == 0) {
		end_txn(c, 1);
		return;
	}
	c->doing = "sending DATA";
	send_cmd(c, E_DATA, 0, "DATA");
}

static void
on_reply(struct smtp_client *c)
{
	if (c->pend_head == c->pend_tail) {
		host_fail(c, "4.4.2", "host %s sent an unexpected reply: %s",
			  c->host, reply_text(c));
		return;
	}
	struct pending pd = c->pend[c->pend_head++];
	int code = c->rcode;
	int ok = code >= 200 && code < 300;
	char dsn[16];
	const char *t = reply_text(c);
	smtp_reply_dsn(code, strlen(t) > 4 ? t + 4 : "", dsn, sizeof(dsn));
	if (c->pend_head == c->pend_tail)
		evtimer_del(c->timer);

	switch (pd.what) {
	case E_GREETING:
		if (!ok) {
			host_fail(c, dsn, "host %s refused to talk to me: %s",
				  c->host, t);
			return;
		}
		c->doing = "performing the EHLO handshake";
		send_cmd(c, E_EHLO, 0, "EHLO %s", c->helo_name);
		return;
	case E_EHLO:
		if (ok) {
			c->esmtp = 1;
			proceed_after_ehlo(c);
		} else if (code >= 500 && !c->tls_active) {
			c->f_pipelining = c->f_starttls = c->f_8bitmime = 0;
			c->f_auth_plain = c->f_auth_login = c->f_auth_any = 0;
			c->f_size = 0;
			c->doing = "performing the HELO handshake";
			send_cmd(c, E_HELO, 0, "HELO %s", c->helo_name);
		} else {
			host_fail(c, dsn,
				  "host %s said: %s (in reply to EHLO command)",
				  c->host, t);
		}
		return;
	case E_HELO:
		if (!ok) {
			host_fail(c, dsn,
				  "host %s said: %s (in reply to HELO command)",
				  c->host, t);
			return;
		}
		c->esmtp = 0;
		proceed_after_ehlo(c);
		return;
	case E_STARTTLS:
		if (!ok) {
			if (c->p.tls == SMTP_TLS_ENCRYPT) {
				host_fail(
				    c, "4.7.5",
				    "TLS is required, but host %s refused "
				    "to start TLS: %s",
				    c->host, t);
				return;
			}
			c->no_tls_this_addr = 1;
			proceed_after_ehlo(c);
			return;
		}
		if (c->pend_head != c->pend_tail ||
		    evbuffer_get_length(bufferevent_get_input(c->bev)) > 0) {
			host_fail(c, "4.7.5",
				  "host %s sent data after the STARTTLS reply "
				  "(command injection?)",
				  c->host);
			return;
		}
		start_tls_handshake(c);
		return;
	case E_AUTH_USER:
	case E_AUTH_PASS:
		if (code == 334) {
			const char *s = pd.what == E_AUTH_USER ? c->auth_user
							       : c->auth_pass;
			char *enc = b64(s, strlen(s));
			send_cmd(c,
				 pd.what == E_AUTH_USER ? E_AUTH_PASS : E_AUTH,
				 0, "%s", enc);
			free(enc);
			return;
		}
		/* fall through */
	case E_AUTH:
		if (!ok) {
			host_fail(c, "4.7.0",
				  "SASL authentication failed; server %s said: "
				  "%s",
				  c->host, t);
			return;
		}
		send_mail(c);
		return;
	case E_MAIL:
		if (c->reusing && code == 421) {
			/* the idle session's end, crossing our MAIL */
			start_over(c);
			return;
		}
		c->reusing = 0;
		if (!ok) {
			c->mail_failed = 1;
			for (size_t i = 0; i < c->tx.nrcpt; i++)
				rcpt_from_reply(c, i, E_MAIL);
			if (!c->f_pipelining)
				end_txn(c, 1);
			return;
		}
		if (!c->f_pipelining) {
			c->doing = "sending RCPT TO";
			send_cmd(c, E_RCPT, 0, "RCPT TO:<%s>", c->tx.rcpts[0]);
		}
		return;
	case E_RCPT:
		if (!c->mail_failed) {
			if (ok) {
				c->accepted[pd.idx] = 1;
				c->naccepted++;
			} else {
				rcpt_from_reply(c, pd.idx, E_RCPT);
			}
		}
		if (!c->f_pipelining) {
			if (pd.idx + 1 < c->tx.nrcpt)
				send_cmd(c, E_RCPT, pd.idx + 1, "RCPT TO:<%s>",
					 c->tx.rcpts[pd.idx + 1]);
			else
				after_rcpts(c);
		}
		return;
	case E_DATA:
		if (code == 354) {
			if (c->mail_failed || c->naccepted == 0) {
				/* pipelined DATA the server took anyway:
				 * an empty message nobody gets */
				send_cmd(c, E_DOT, 0, ".");
				c->mail_failed = 1;
				return;
			}
			c->phase = P_SENDING;
			c->doing = "sending message body";
			c->bol = 1;
			c->sent = 0;
			bufferevent_setwatermark(c->bev, EV_WRITE, DATA_LOW, 0);
			pump(c);
			return;
		}
		if (!c->mail_failed)
			for (size_t i = 0; i < c->tx.nrcpt; i++)
				if (c->accepted[i])
					rcpt_from_reply(c, i, E_DATA);
		end_txn(c, 1);
		return;
	case E_DOT:
		if (!c->mail_failed)
			for (size_t i = 0; i < c->tx.nrcpt; i++)
				if (c->accepted[i])
					rcpt_from_reply(c, i, E_DOT);
		end_txn(c, 0);
		return;
	case E_RSET:
		if (ok)
			park(c);
		else
			quit(c);
		return;
	case E_QUIT:
		close_conn(c);
		finish(c);
		return;
	}
}

static void
on_read_(struct smtp_client *c, struct bufferevent *bev)
{
	struct evbuffer *in = bufferevent_get_input(bev);
	while (c->bev == bev && c->phase != P_HANDSHAKE) {
		if (c->phase == P_PARKED) {
			/* an idle server speaks to say goodbye (421) */
			if (evbuffer_get_length(in) > 0)
				close_conn(c);
			return;
		}
		size_t n;
		char *line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF);
		if (line == NULL) {
			if (evbuffer_get_length(in) > INPUT_MAX)
				host_fail(c, "4.4.2",
					  "host %s sent a reply line too long",
					  c->host);
			return;
		}
		if (n > REPLY_LINE_MAX)
			line[REPLY_LINE_MAX] = '\0';
		int code = 0;
		if (n >= 3 && line[0] >= '2' && line[0] <= '5' &&
		    line[1] >= '0' && line[1] <= '9' && line[2] >= '0' &&
		    line[2] <= '9' &&
		    (line[3] == '\0' || line[3] == ' ' || line[3] == '-'))
			code = atoi(line);
		if (code == 0 || (c->rlines > 0 && code != c->rcode) ||
		    ++c->rlines > REPLY_LINES_MAX) {
			free(line);
			host_fail(c, "4.4.2",
				  "host %s sent a malformed reply while %s",
				  c->host, c->doing);
			return;
		}
		c->rcode = code;
		int last = line[3] != '-';
		const char *text = line[3] != '\0' ? line + 4 : "";
		if (c->rlines == 1) {
			strbuf_addf(&c->rtext, "%d", code);
		} else if (c->pend_head < c->pend_tail &&
			   c->pend[c->pend_head].what == E_EHLO) {
			parse_ehlo_line(c, text);
		}
		if (*text != '\0' && c->rtext.len < REPLY_TEXT_MAX) {
			strbuf_adds(&c->rtext, " ");
			strbuf_add(
			    &c->rtext, text,
			    strnlen(text, REPLY_TEXT_MAX - c->rtext.len));
		}
		free(line);
		if (!last)
			continue;
		on_reply(c);
		if (c->done)
			return;
		/* also when STARTTLS or a failure replaced the connection */
		free(c->rtext.s);
		memset(&c->rtext, 0, sizeof(c->rtext));
		c->rlines = 0;
	}
}

static void
on_write(struct bufferevent *bev, void *arg)
{
	struct smtp_client *c = arg;
	(void)bev;
	enter(c);
	if (c->phase == P_SENDING)
		pump(c);
	leave(c);
}

static void
on_read(struct bufferevent *bev, void *arg)
{
	struct smtp_client *c = arg;
	enter(c);
	on_read_(c, bev);
	leave(c);
}

static void
verify_done(struct smtp_client *c)
{
	if (tls_needs_verify(c)) {
		long v = SSL_get_verify_result(c->ssl);
		X509 *cert = SSL_get1_peer_certificate(c->ssl);
		if (cert == NULL || v != X509_V_OK) {
			X509_free(cert);
			host_fail(c, "4.7.5",
				  "Server certificate not verified: host %s: "
				  "%s",
				  c->host,
				  cert == NULL
				      ? "no certificate"
				      : X509_verify_cert_error_string(v));
			return;
		}
		X509_free(cert);
	}
	c->tls_active = 1;
}

static void
on_event_(struct smtp_client *c, struct bufferevent *bev, short what)
{
	if (what & BEV_EVENT_CONNECTED) {
		if (c->phase == P_HANDSHAKE || c->p.tls == SMTP_TLS_SMTPS) {
			verify_done(c);
			if (!c->tls_active)
				return;
		}
		if (c->phase == P_HANDSHAKE) {
			/* EHLO again: forget what was offered in clear */
			c->f_pipelining = c->f_starttls = c->f_8bitmime = 0;
			c->f_auth_plain = c->f_auth_login = c->f_auth_any = 0;
			c->f_size = 0;
			c->doing = "performing the EHLO handshake";
			send_cmd(c, E_EHLO, 0, "EHLO %s", c->helo_name);
			return;
		}
		c->phase = P_COMMANDS;
		c->doing = "receiving the initial server greeting";
		c->pend[c->pend_tail].what = E_GREETING;
		c->pend[c->pend_tail++].idx = 0;
		arm(c, c->p.command_timeout);
		return;
	}
	if (!(what & (BEV_EVENT_ERROR | BEV_EVENT_EOF)))
		return;
	if (c->phase == P_PARKED) {
		/* the idle session is gone: the next reuse starts over */
		ERR_clear_error();
		close_conn(c);
		return;
	}
	int err = EVUTIL_SOCKET_ERROR();
	unsigned long ssl_err =
	    c->ssl != NULL ? bufferevent_get_openssl_error(bev) : 0;
	if (c->phase == P_CONNECTING &&
	    !(c->p.tls == SMTP_TLS_SMTPS && ssl_err != 0)) {
		host_fail(c, "4.4.1", "connect to %s:%u: %s", c->host, c->port,
			  err ? strerror(err) : "Connection closed");
		return;
	}
	if (c->phase == P_HANDSHAKE || (c->phase == P_CONNECTING)) {
		char buf[160] = "handshake failure";
		if (ssl_err != 0)
			ERR_error_string_n(ssl_err, buf, sizeof(buf));
		ERR_clear_error();
		if (c->p.tls == SMTP_TLS_MAY && !c->plain_retry_done) {
			/* once more in plain text */
			c->plain_retry_done = 1;
			c->no_tls_this_addr = 1;
			close_conn(c);
			c->cur--;
			next_address(c);
			return;
		}
		host_fail(c, "4.7.5",
			  "Cannot start TLS: handshake failure with "
			  "host %s: %s",
			  c->host, buf);
		return;
	}
	ERR_clear_error();
	lost(c, 0);
}

static void
on_timer_(struct smtp_client *c)
{
	if (c->phase == P_CONNECTING) {
		host_fail(c, "4.4.1", "connect to %s:%u: Connection timed out",
			  c->host, c->port);
		return;
	}
	if (c->phase == P_HANDSHAKE) {
		c->doing = "performing the TLS handshake";
	}
	lost(c, 1);
}

static void
on_event(struct bufferevent *bev, short what, void *arg)
{
	struct smtp_client *c = arg;
	enter(c);
	on_event_(c, bev, what);
	leave(c);
}

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_client *c = arg;
	(void)fd;
	(void)what;
	enter(c);
	on_timer_(c);
	leave(c);
}

static SSL *
new_ssl(struct smtp_client *c, const struct dns_target *t)
{
	SSL *ssl = SSL_new(c->p.ssl_ctx);
	if (ssl == NULL)
		return NULL;
	unsigned char bin[16];
	int literal = inet_pton(AF_INET, t->host, bin) == 1 ||
		      inet_pton(AF_INET6, t->host, bin) == 1;
	if (!literal)
		SSL_set_tlsext_host_name(ssl, t->host);
	if (tls_needs_verify(c)) {
		if (literal)
			X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl),
						      t->host);
		else
			SSL_set1_host(ssl, t->host);
	}
	SSL_set_verify(ssl, SSL_VERIFY_NONE, NULL);
	return ssl;
}

static void
start_tls_handshake(struct smtp_client *c)
{
	SSL *ssl = new_ssl(c, &c->targets[c->cur - 1]);
	if (ssl == NULL) {
		host_fail(c, "4.7.5", "Cannot start TLS: out of memory");
		return;
	}
	struct bufferevent *f = bufferevent_openssl_filter_new(
	    c->base, c->bev, ssl, BUFFEREVENT_SSL_CONNECTING,
	    BEV_OPT_CLOSE_ON_FREE);
	if (f == NULL) {
		SSL_free(ssl);
		host_fail(c, "4.7.5", "Cannot start TLS: no filter");
		return;
	}
	c->bev = f;
	c->ssl = ssl; /* the bufferevent frees it */
	bufferevent_openssl_set_allow_dirty_shutdown(f, 1);
	bufferevent_setcb(f, on_read, on_write, on_event, c);
	bufferevent_enable(f, EV_READ | EV_WRITE);
	c->phase = P_HANDSHAKE;
	c->doing = "performing the TLS handshake";
	arm(c, c->p.connect_timeout);
}

/* ---- connections ------------------------------------------------------- */

static void
next_address(struct smtp_client *c)
{
	for (;;) {
		if (c->cur >= c->ntargets) {
			finish(c);
			return;
		}
		const struct dns_target *t = &c->targets[c->cur++];
		char ip[INET6_ADDRSTRLEN] = "?";
		unsigned port = 0;
		if (t->addr.ss_family == AF_INET6) {
			const struct sockaddr_in6 *s6 =
			    (const struct sockaddr_in6 *)&t->addr;
			inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
			port = ntohs(s6->sin6_port);
		} else {
			const struct sockaddr_in *s4 =
			    (const struct sockaddr_in *)&t->addr;
			inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
			port = ntohs(s4->sin_port);
		}
		int retry =
		    c->no_tls_this_addr && c->plain_retry_done &&
		    c->out.ntried > 0 &&
		    strcmp(c->out.tried_ips[c->out.ntried - 1], ip) == 0;
		if (!retry) {
			c->no_tls_this_addr = 0;
			c->plain_retry_done = 0;
		}
		smalt_strlcpy(c->ip, ip, sizeof(c->ip));
		snprintf(c->host, sizeof(c->host), "%s[%s]", t->host, ip);
		c->port = port;
		c->out.tried_addrs++;
		if (!retry && c->out.ntried < SMTP_MAX_TRIED) {
			smalt_strlcpy(c->out.tried_ips[c->out.ntried], ip,
				      sizeof(c->out.tried_ips[0]));
			c->out.tried_failed[c->out.ntried++] = 0;
		} else if (retry) {
			c->out.tried_failed[c->out.ntried - 1] = 0;
		}
		c->tls_active = 0;
		c->esmtp = 0;
		c->f_pipelining = c->f_starttls = c->f_8bitmime = 0;
		c->f_auth_plain = c->f_auth_login = c->f_auth_any = 0;
		c->f_size = 0;
		c->mail_failed = 0;
		c->naccepted = 0;

		if (c->p.tls == SMTP_TLS_SMTPS) {
			c->ssl = new_ssl(c, t);
			if (c->ssl == NULL) {
				host_fail(c, "4.7.5", "Cannot start TLS");
				return;
			}
			c->bev = bufferevent_openssl_socket_new(
			    c->base, -1, c->ssl, BUFFEREVENT_SSL_CONNECTING,
			    BEV_OPT_CLOSE_ON_FREE);
			if (c->bev == NULL)
				SSL_free(c->ssl);
		} else {
			c->bev = bufferevent_socket_new(c->base, -1,
							BEV_OPT_CLOSE_ON_FREE);
		}
		if (c->bev == NULL) {
			c->ssl = NULL;
			host_fail(c, "4.3.0", "connect to %s:%u: %s", c->host,
				  port, "cannot create a socket");
			return;
		}
		if (c->ssl != NULL)
			bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
		bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
		bufferevent_enable(c->bev, EV_READ | EV_WRITE);
		c->phase = P_CONNECTING;
		c->doing = "connecting";
		arm(c, c->p.connect_timeout);
		if (bufferevent_socket_connect(
			c->bev, (const struct sockaddr *)&t->addr,
			(int)t->addrlen) < 0) {
			int e = EVUTIL_SOCKET_ERROR();
			host_fail(c, "4.4.1", "connect to %s:%u: %s", c->host,
				  port, strerror(e ? e : ECONNREFUSED));
			return;
		}
		return;
	}
}

/* Forgets the last transaction and the outcome that told of it. */
static void
reset_txn(struct smtp_client *c)
{
	size_t n = c->tx.nrcpt ? c->tx.nrcpt : 1;
	struct deliver_result *r = c->out.rcpt;
	memset(&c->out, 0, sizeof(c->out));
	memset(r, 0, n * sizeof(*r));
	c->out.rcpt = r;
	smalt_strlcpy(c->out.relay, "none", sizeof(c->out.relay));
	memset(c->accepted, 0, n * sizeof(*c->accepted));
	memset(c->final, 0, n * sizeof(*c->final));
	c->txn_started = c->mail_failed = 0;
	c->naccepted = 0;
	c->sent = 0;
	c->bol = 1;
	c->host_dsn[0] = '\0';
}

/* From the first address, as smtp_client_start does; also when a reused
 * session turned out to be gone. */
static void
start_over(struct smtp_client *c)
{
	close_conn(c);
	reset_txn(c);
	c->reusing = 0;
	c->cur = 0;
	next_address(c);
}

/* The next transaction on the parked session, which the outcome names
 * alone. */
static void
reuse_session(struct smtp_client *c)
{
	reset_txn(c);
	c->reusing = 1;
	c->out.tried_addrs = 1;
	smalt_strlcpy(c->out.tried_ips[0], c->ip, sizeof(c->out.tried_ips[0]));
	c->out.tried_failed[0] = 0;
	c->out.ntried = 1;
	send_mail(c);
}

static void
on_kick(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_client *c = arg;
	(void)fd;
	(void)what;
	enter(c);
	if (c->phase == P_PARKED && c->bev != NULL)
		reuse_session(c);
	else
		start_over(c);
	leave(c);
}

static void
free_tx(struct smtp_client *c)
{
	free(c->sender);
	for (size_t i = 0; i < c->tx.nrcpt; i++)
		free(c->rcpts[i]);
	free(c->rcpts);
	free(c->accepted);
	free(c->final);
	free(c->out.rcpt);
	c->sender = NULL;
	c->rcpts = NULL;
	c->accepted = c->final = NULL;
	c->out.rcpt = NULL;
	c->tx.nrcpt = 0;
}

/* Copies tx, and sizes the per-recipient state to it. */
static void
set_tx(struct smtp_client *c, const struct smtp_tx *tx)
{
	size_t n = tx->nrcpt ? tx->nrcpt : 1;
	free_tx(c);
	c->tx = *tx;
	c->sender = xstrdup(tx->sender ? tx->sender : "");
	c->tx.sender = c->sender;
	c->rcpts = xcalloc(n, sizeof(char *));
	for (size_t i = 0; i < tx->nrcpt; i++)
		c->rcpts[i] = xstrdup(tx->rcpts[i]);
	c->tx.rcpts = (const char *const *)c->rcpts;
	c->accepted = xcalloc(n, sizeof(int));
	c->final = xcalloc(n, sizeof(int));
	c->out.rcpt = xcalloc(n, sizeof(struct deliver_result));
}

static void
client_free(struct smtp_client *c)
{
	close_conn(c);
	event_free(c->timer);
	event_free(c->kick);
	free(c->helo_name);
	free(c->auth_user);
	if (c->auth_pass != NULL) {
		OPENSSL_cleanse(c->auth_pass, strlen(c->auth_pass));
		free(c->auth_pass);
	}
	free(c->targets);
	free_tx(c);
	free(c->pend);
	free(c->iobuf);
	free(c);
}

static void
finish(struct smtp_client *c)
{
	c->reusing = 0;
	if (c->closing) { /* smtp_client_close: QUIT answered or not */
		close_conn(c);
		c->done = 1;
		if (c->busy == 0)
			client_free(c);
		return;
	}
	if (!c->out.kept)
		close_conn(c);
	if (!c->txn_started)
		smalt_strlcpy(c->out.relay, "none", sizeof(c->out.relay));
	for (size_t i = 0; i < c->tx.nrcpt; i++) {
		if (c->final[i])
			continue;
		set_rcpt(c, i, DELIVER_DEFER,
			 c->host_dsn[0] == '4' ? c->host_dsn : "4.4.1", "%s",
			 c->out.host_reason[0] != '\0'
			     ? c->out.host_reason
			     : "delivery temporarily suspended");
	}
	/* kept: the caller's now, and cb may reuse, close or cancel it */
	c->done = !c->out.kept;
	c->cb(c->arg, &c->out);
	if (c->done && c->busy == 0)
		client_free(c);
}

/* Every callback runs between enter and leave, so that finish() inside
 * it frees the client only once nothing up the stack uses it. */
static void
enter(struct smtp_client *c)
{
	c->busy++;
}

static void
leave(struct smtp_client *c)
{
	if (--c->busy == 0 && c->done)
		client_free(c);
}

static void
kick(struct smtp_client *c)
{
	struct timeval zero = {0, 0};
	evtimer_add(c->kick, &zero);
}

struct smtp_client *
smtp_client_start(struct event_base *base, const struct smtp_client_params *p,
		  const struct dns_target *targets, size_t ntargets,
		  const struct smtp_tx *tx, smtp_done_cb cb, void *arg)
{
	struct smtp_client *c = xcalloc(1, sizeof(*c));
	c->base = base;
	c->p = *p;
	c->helo_name = xstrdup(p->helo_name ? p->helo_name : "localhost");
	if (p->auth_user != NULL) {
		c->auth_user = xstrdup(p->auth_user);
		c->auth_pass = xstrdup(p->auth_pass ? p->auth_pass : "");
	}
	c->targets = xcalloc(ntargets ? ntargets : 1, sizeof(*targets));
	memcpy(c->targets, targets, ntargets * sizeof(*targets));
	c->ntargets = ntargets;
	set_tx(c, tx);
	c->cb = cb;
	c->arg = arg;
	c->npend_cap = tx->nrcpt + 8;
	c->pend = xcalloc(c->npend_cap, sizeof(*c->pend));
	smalt_strlcpy(c->out.relay, "none", sizeof(c->out.relay));
	c->timer = evtimer_new(base, on_timer, c);
	c->kick = evtimer_new(base, on_kick, c);
	kick(c);
	return c;
}

int
smtp_client_reuse(struct smtp_client *c, const struct smtp_tx *tx,
		  smtp_done_cb cb, void *arg)
{
	if (c == NULL || !c->owned || c->done || c->closing)
		return -1;
	c->owned = 0;
	set_tx(c, tx);
	c->cb = cb;
	c->arg = arg;
	/* the parked session, or a new one when it died meanwhile: decided
	 * in on_kick, so that cb never runs from inside this call */
	kick(c);
	return 0;
}

void
smtp_client_close(struct smtp_client *c)
{
	if (c == NULL)
		return;
	if (!c->owned || c->done || c->closing || c->bev == NULL ||
	    c->phase != P_PARKED) {
		smtp_client_cancel(c);
		return;
	}
	c->owned = 0;
	c->closing = 1;
	quit(c);
}

void
smtp_client_cancel(struct smtp_client *c)
{
	if (c == NULL)
		return;
	if (c->busy > 0) {
		/* from cb: the stack above still uses c; leave() frees it */
		close_conn(c);
		evtimer_del(c->kick);
		c->owned = 0;
		c->done = 1;
		return;
	}
	client_free(c);
}
