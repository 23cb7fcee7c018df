#include "smtpd/smtp_session.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"

#define SMTP_LINE_MAX	  512	      /* command line with CR LF, RFC 5321 */
#define SMTPD_OUTPUT_HIGH (64 * 1024) /* stop reading past this */

static void session_process(struct smtp_session *s);
static void session_arm_deadline(struct smtp_session *s);
static void finish_after_eof(struct smtp_session *s);
static void greet(struct smtp_session *s);
static void on_client_name(void *arg, const char *name);

/* ---- replies ---------------------------------------------------------- */

static void reply(struct smtp_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
reply(struct smtp_session *s, const char *fmt, ...)
{
	struct evbuffer *out = bufferevent_get_output(s->bev);
	va_list ap;
	va_start(ap, fmt);
	evbuffer_add_vprintf(out, fmt, ap);
	va_end(ap);
	evbuffer_add(out, "\r\n", 2);
	if (fmt[0] == '4' || fmt[0] == '5')
		s->errors++;
}

/* Sends the last reply and closes once it is written. */
static void
close_after(struct smtp_session *s)
{
	s->state = SMTP_CLOSING;
	bufferevent_disable(s->bev, EV_READ);
	if (evbuffer_get_length(bufferevent_get_output(s->bev)) == 0)
		smtp_session_free(s);
}

static const char *
proto_name(const struct smtp_session *s)
{
	return s->esmtp ? "ESMTP" : "SMTP";
}

static void
log_reject(struct smtp_session *s, const char *cmd, const char *rcpt,
	   const char *reply_text)
{
	log_info("NOQUEUE: reject: %s from %s[%s]: %s; from=<%s> to=<%s> "
		 "proto=%s helo=<%s>",
		 cmd, s->client_name, s->client_ip, reply_text,
		 s->have_mail ? s->env.sender : "", rcpt, proto_name(s),
		 s->helo ? s->helo : "");
	s->sd->stats.rejected++;
}

/* ---- the transaction -------------------------------------------------- */

static void
transaction_reset(struct smtp_session *s)
{
	if (s->msg != NULL) {
		queue_msg_abort(s->msg);
		s->msg = NULL;
	}
	envelope_free(&s->env);
	envelope_init(&s->env);
	s->have_mail = 0;
	s->rejected_rcpts = 0;
}

/* ---- commands: check then proceed ------------------------------------- */

struct smtp_command {
	const char *name;
	/* Replies and returns -1 when the command may not run now. */
	int (*check)(struct smtp_session *s, const char *args);
	void (*proceed)(struct smtp_session *s, const char *args);
	unsigned *(*counter)(struct smtp_session *s);
};

static int
check_helo(struct smtp_session *s, const char *args)
{
	if (*args == '\0') {
		reply(s, "501 5.5.4 Syntax: HELO hostname");
		return -1;
	}
	return 0;
}

static void
set_helo(struct smtp_session *s, const char *args)
{
	free(s->helo);
	size_t n = strcspn(args, " ");
	s->helo = xstrndup(args, n > 255 ? 255 : n);
	transaction_reset(s);
	s->state = SMTP_HELO;
}

static void
proceed_helo(struct smtp_session *s, const char *args)
{
	set_helo(s, args);
	s->esmtp = 0;
	reply(s, "250 %s", s->sd->conf->hostname);
}

static void
proceed_ehlo(struct smtp_session *s, const char *args)
{
	set_helo(s, args);
	s->esmtp = 1;
	reply(s, "250-%s", s->sd->conf->hostname);
	reply(s, "250-PIPELINING");
	reply(s, "250-SIZE %llu",
	      (unsigned long long)s->sd->conf->max_message_size);
	reply(s, "250-8BITMIME");
	reply(s, "250 ENHANCEDSTATUSCODES");
}

static int
check_in_session(struct smtp_session *s)
{
	if (s->state == SMTP_CONNECTED) {
		reply(s, "503 5.5.1 Error: send HELO/EHLO first");
		return -1;
	}
	return 0;
}

/* "FROM:" or "TO:", case-insensitive, then optional spaces (a common
 * client habit Postfix also tolerates). Returns the path's start. */
static const char *
skip_keyword(const char *args, const char *kw)
{
	size_t n = strlen(kw);
	if (ascii_strncasecmp(args, kw, n) != 0)
		return NULL;
	args += n;
	while (*args == ' ')
		args++;
	return args;
}

/* Parses the ESMTP parameters of MAIL. 0, or -1 after replying. */
static int
mail_params(struct smtp_session *s, const char *p)
{
	while (*p != '\0') {
		while (*p == ' ')
			p++;
		if (*p == '\0')
			break;
		size_t n = strcspn(p, " ");
		char *param = xstrndup(p, n);
		p += n;
		char *eq = strchr(param, '=');
		char *val = eq ? eq + 1 : NULL;
		if (eq)
			*eq = '\0';
		int bad = 0;
		if (ascii_strcasecmp(param, "SIZE") == 0 && val) {
			char *end;
			errno = 0;
			unsigned long long size = strtoull(val, &end, 10);
			if (*val < '0' || *val > '9' || *end || errno) {
				reply(s, "501 5.5.4 Bad SIZE parameter");
				bad = 1;
			} else if (size > s->sd->conf->max_message_size) {
				reply(s, "552 5.3.4 Message size exceeds "
					 "fixed limit");
				bad = 1;
			}
		} else if (ascii_strcasecmp(param, "BODY") == 0 && val) {
			if (ascii_strcasecmp(val, "8BITMIME") != 0 &&
			    ascii_strcasecmp(val, "7BIT") != 0) {
				reply(s, "501 5.5.4 Bad BODY parameter");
				bad = 1;
			}
		} else {
			reply(s, "555 5.5.4 Unsupported option: %s", param);
			bad = 1;
		}
		free(param);
		if (bad)
			return -1;
	}
	return 0;
}

static int
check_mail(struct smtp_session *s, const char *args)
{
	(void)args;
	if (check_in_session(s) != 0)
		return -1;
	if (s->have_mail) {
		reply(s, "503 5.5.1 Error: nested MAIL command");
		return -1;
	}
	/* Port 587 takes mail only from authenticated users; AUTH is not
	 * in this version, so it takes none. */
	if (s->kind == LISTENER_SUBMISSION) {
		reply(s, "530 5.7.0 Authentication required");
		return -1;
	}
	return 0;
}

static void
proceed_mail(struct smtp_session *s, const char *args)
{
	const char *path = skip_keyword(args, "FROM:");
	struct mailaddr a;
	size_t end;
	const char *why;
	char buf[ADDR_PATH_MAX + 1];

	if (path == NULL) {
		reply(s, "501 5.5.4 Syntax: MAIL FROM:<address>");
		return;
	}
	if (addr_parse_path(path, strlen(path),
			    ADDR_ALLOW_NULL | ADDR_ALLOW_NOBRACKETS, &a, &end,
			    &why) != 0) {
		reply(s, "501 5.1.7 Bad sender address syntax: %s", why);
		return;
	}
	if (mail_params(s, path + end) != 0)
		return;
	transaction_reset(s);
	envelope_set(&s->env.sender, addr_format(&a, buf, sizeof(buf)));
	s->have_mail = 1;
	s->state = SMTP_MAIL;
	reply(s, "250 2.1.0 Ok");
}

static int
check_rcpt(struct smtp_session *s, const char *args)
{
	(void)args;
	if (check_in_session(s) != 0)
		return -1;
	if (!s->have_mail) {
		reply(s, "503 5.5.1 Error: need MAIL command");
		return -1;
	}
	if (s->env.nrcpt >= s->sd->conf->max_recipients) {
		reply(s, "452 4.5.3 Error: too many recipients");
		return -1;
	}
	return 0;
}

/* The queue file is made at the first accepted recipient, so the queue
 * id is in the log from then on, as with Postfix. */
static int
open_message(struct smtp_session *s)
{
	if (s->msg != NULL)
		return 0;
	s->msg = queue_msg_create(s->sd->queue);
	if (s->msg == NULL) {
		log_warn("cannot create queue file: %s", strerror(errno));
		if (errno == ENOSPC || errno == EDQUOT)
			reply(s, "452 4.3.1 Insufficient system storage");
		else
			reply(s, "451 4.3.0 Error: queue file write error");
		return -1;
	}
	log_info("%s: client=%s[%s]", queue_msg_id(s->msg), s->client_name,
		 s->client_ip);
	return 0;
}

static void
proceed_rcpt(struct smtp_session *s, const char *args)
{
	const char *path = skip_keyword(args, "TO:");
	struct mailaddr a;
	size_t end;
	const char *why;
	char buf[ADDR_PATH_MAX + 1], text[ADDR_PATH_MAX + 80];

	if (path == NULL) {
		reply(s, "501 5.5.4 Syntax: RCPT TO:<address>");
		return;
	}
	if (addr_parse_path(path, strlen(path),
			    ADDR_ALLOW_POSTMASTER | ADDR_ALLOW_NOBRACKETS, &a,
			    &end, &why) != 0) {
		reply(s, "501 5.1.3 Bad recipient address syntax: %s", why);
		return;
	}
	const char *p = path + end;
	while (*p == ' ')
		p++;
	if (*p != '\0') {
		reply(s, "555 5.5.4 Unsupported option: %.*s",
		      (int)strcspn(p, " "), p);
		return;
	}
	addr_format(&a, buf, sizeof(buf));
	switch (policy_check_rcpt(&s->sd->policy, &a,
				  (struct sockaddr *)&s->addr, 0)) {
	case RCPT_UNKNOWN_USER:
		snprintf(text, sizeof(text),
			 "550 5.1.1 <%s>: Recipient address rejected: User "
			 "unknown in local recipient table",
			 buf);
		log_reject(s, "RCPT", buf, text);
		reply(s, "%s", text);
		s->rejected_rcpts++;
		return;
	case RCPT_RELAY_DENIED:
		snprintf(text, sizeof(text),
			 "554 5.7.1 <%s>: Relay access denied", buf);
		log_reject(s, "RCPT", buf, text);
		reply(s, "%s", text);
		s->rejected_rcpts++;
		return;
	case RCPT_OK:
		break;
	}
	if (open_message(s) != 0)
		return;
	envelope_add_rcpt(&s->env, buf);
	s->state = SMTP_RCPT;
	reply(s, "250 2.1.5 Ok");
}

static int
data_sink(void *arg, const char *buf, size_t len)
{
	struct smtp_session *s = arg;
	return queue_msg_write(s->msg, buf, len);
}

static void
write_received(struct smtp_session *s)
{
	char date[64], line[1024];
	const char *helo = s->helo ? s->helo : "";
	int n;
	rfc5322_date(time(NULL), date, sizeof(date));
	n = snprintf(line, sizeof(line),
		     "Received: from %s (%s [%s])\r\n"
		     "\tby %s (smalt) with %s id %s",
		     helo, s->client_name, s->client_ip, s->sd->conf->hostname,
		     proto_name(s), queue_msg_id(s->msg));
	if (s->env.nrcpt == 1)
		n += snprintf(line + n, sizeof(line) - (size_t)n,
			      "\r\n\tfor <%s>", s->env.rcpt[0].address);
	n += snprintf(line + n, sizeof(line) - (size_t)n, "; %s\r\n", date);
	if (n >= (int)sizeof(line))
		n = (int)sizeof(line) - 1;
	s->data.size += (uint64_t)n;
	if (queue_msg_write(s->msg, line, (size_t)n) != 0)
		s->data.sink_failed = 1;
}

static int
check_data(struct smtp_session *s, const char *args)
{
	if (check_in_session(s) != 0)
		return -1;
	if (*args != '\0') {
		reply(s, "501 5.5.4 Syntax: DATA");
		return -1;
	}
	if (!s->have_mail) {
		reply(s, "503 5.5.1 Error: need RCPT command");
		return -1;
	}
	if (s->env.nrcpt == 0) {
		if (s->rejected_rcpts > 0)
			reply(s, "554 5.5.1 Error: no valid recipients");
		else
			reply(s, "503 5.5.1 Error: need RCPT command");
		return -1;
	}
	return 0;
}

static void
proceed_data(struct smtp_session *s, const char *args)
{
	(void)args;
	smtp_data_init(&s->data, s->sd->conf->max_message_size, data_sink, s);
	write_received(s);
	s->state = SMTP_DATA;
	reply(s, "354 End data with <CR><LF>.<CR><LF>");
}

static void
proceed_rset(struct smtp_session *s, const char *args)
{
	(void)args;
	transaction_reset(s);
	if (s->state != SMTP_CONNECTED)
		s->state = SMTP_HELO;
	reply(s, "250 2.0.0 Ok");
}

static void
proceed_noop(struct smtp_session *s, const char *args)
{
	(void)args;
	reply(s, "250 2.0.0 Ok");
}

static void
proceed_quit(struct smtp_session *s, const char *args)
{
	(void)args;
	reply(s, "221 2.0.0 Bye");
	close_after(s);
}

static void
proceed_help(struct smtp_session *s, const char *args)
{
	(void)args;
	reply(s, "214 2.0.0 Commands: HELO EHLO MAIL RCPT DATA RSET NOOP "
		 "QUIT HELP VRFY");
}

static void
proceed_vrfy(struct smtp_session *s, const char *args)
{
	(void)args;
	/* Answering would let anyone harvest addresses. */
	reply(s, "252 2.0.0 Cannot VRFY user; send some mail and I will "
		 "try my best");
}

static void
proceed_expn(struct smtp_session *s, const char *args)
{
	(void)args;
	reply(s, "502 5.5.1 Error: EXPN not supported");
}

#define COUNTER(field)                                                         \
	static unsigned *count_##field(struct smtp_session *s)                 \
	{                                                                      \
		return &s->field;                                              \
	}
COUNTER(n_helo)
COUNTER(n_ehlo)
COUNTER(n_mail)
COUNTER(n_rcpt)
COUNTER(n_data)
COUNTER(n_rset)
COUNTER(n_quit)
COUNTER(n_other)

static const struct smtp_command commands[] = {
    {"HELO", check_helo, proceed_helo, count_n_helo},
    {"EHLO", check_helo, proceed_ehlo, count_n_ehlo},
    {"MAIL", check_mail, proceed_mail, count_n_mail},
    {"RCPT", check_rcpt, proceed_rcpt, count_n_rcpt},
    {"DATA", check_data, proceed_data, count_n_data},
    {"RSET", NULL, proceed_rset, count_n_rset},
    {"NOOP", NULL, proceed_noop, count_n_other},
    {"QUIT", NULL, proceed_quit, count_n_quit},
    {"HELP", NULL, proceed_help, count_n_other},
    {"VRFY", NULL, proceed_vrfy, count_n_other},
    {"EXPN", NULL, proceed_expn, count_n_other},
};

static void
too_many_errors(struct smtp_session *s)
{
	log_info("too many errors after %s from %s[%s]",
		 s->state == SMTP_CONNECTED ? "CONNECT" : "command",
		 s->client_name, s->client_ip);
	reply(s, "421 4.7.0 %s Error: too many errors", s->sd->conf->hostname);
	close_after(s);
}

static void
handle_command(struct smtp_session *s, char *line, size_t len)
{
	if (memchr(line, '\0', len) != NULL) {
		reply(s, "500 5.5.2 Error: NUL character in command");
		s->n_other++;
		return;
	}
	size_t vlen = strcspn(line, " ");
	const char *args = line + vlen;
	while (*args == ' ')
		args++;
	for (size_t i = 0; i < SMALT_NELEM(commands); i++) {
		const struct smtp_command *c = &commands[i];
		if (vlen != 4 || ascii_strncasecmp(line, c->name, 4) != 0)
			continue;
		(*c->counter(s))++;
		if (c->check == NULL || c->check(s, args) == 0)
			c->proceed(s, args);
		return;
	}
	s->n_other++;
	reply(s, "500 5.5.2 Error: command not recognized");
}

/* ---- DATA end --------------------------------------------------------- */

static void
finish_data(struct smtp_session *s)
{
	struct smtp_data *d = &s->data;
	const char *refusal = NULL;

	smtp_data_flush(d);
	if (d->too_big)
		refusal = "552 5.3.4 Error: message file too big";
	else if (d->long_line)
		refusal = "552 5.5.2 Error: message has a line longer than "
			  "1000 octets";
	else if (d->bare_nl && s->sd->conf->bare_newline == BARE_NEWLINE_REJECT)
		refusal = "554 5.6.0 Error: bare CR or LF in message; lines "
			  "must end with CR LF";
	else if (d->sink_failed) {
		int err = queue_msg_error(s->msg);
		log_warn("%s: queue file write error: %s", queue_msg_id(s->msg),
			 strerror(err));
		refusal = err == ENOSPC || err == EDQUOT
			      ? "452 4.3.1 Insufficient system storage"
			      : "451 4.3.0 Error: queue file write error";
	}
	if (refusal != NULL) {
		log_info("%s: reject: DATA from %s[%s]: %s; from=<%s> "
			 "proto=%s helo=<%s>",
			 queue_msg_id(s->msg), s->client_name, s->client_ip,
			 refusal, s->env.sender, proto_name(s),
			 s->helo ? s->helo : "");
		s->sd->stats.rejected++;
		reply(s, "%s", refusal);
		transaction_reset(s);
		s->state = SMTP_HELO;
		return;
	}
	envelope_set(&s->env.client_name, s->client_name);
	envelope_set(&s->env.client_addr, s->client_ip);
	envelope_set(&s->env.helo, s->helo);
	envelope_set(&s->env.protocol, proto_name(s));
	s->state = SMTP_COMMIT;
	struct queue_msg *m = s->msg;
	s->msg = NULL;
	queue_committer_submit(s->sd->committer, m, &s->env, s);
}

void
smtp_session_committed(struct smtp_session *s, const struct commit_result *r)
{
	if (r->ok) {
		s->sd->stats.received++;
		log_info("%s: from=<%s>, size=%llu, nrcpt=%zu (queued)", r->id,
			 s->env.sender, (unsigned long long)s->env.size,
			 s->env.nrcpt);
	} else {
		log_warn("%s: queue commit failed: %s", r->id,
			 strerror(r->error));
	}
	if (s->dead) {
		smtp_session_free(s);
		return;
	}
	if (r->ok)
		reply(s, "250 2.0.0 Ok: queued as %s", r->id);
	else if (r->error == ENOSPC || r->error == EDQUOT)
		reply(s, "452 4.3.1 Insufficient system storage");
	else
		reply(s, "451 4.3.0 Error: queue file write error");
	transaction_reset(s);
	s->state = SMTP_HELO;
	session_arm_deadline(s); /* the wait was ours, not the client's */
	if (s->eof)
		finish_after_eof(s);
	else
		/* Commands pipelined behind the message wait in the input. */
		session_process(s);
}

/* ---- input ------------------------------------------------------------ */

/* Feeds buffered input to the DATA parser; 1 when DATA ended. */
static int
feed_data(struct smtp_session *s, struct evbuffer *in)
{
	while (evbuffer_get_length(in) > 0 && !s->data.done) {
		struct evbuffer_iovec v;
		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			break;
		size_t used = smtp_data_feed(&s->data, v.iov_base, v.iov_len);
		evbuffer_drain(in, used);
	}
	return s->data.done;
}

/* Reads one command line; 0 when none is complete yet. Over-long lines
 * are answered and skipped up to their end. */
static int
next_line(struct smtp_session *s, struct evbuffer *in, char **line, size_t *len)
{
	for (;;) {
		struct evbuffer_ptr eol =
		    evbuffer_search_eol(in, NULL, NULL, EVBUFFER_EOL_LF);
		if (eol.pos < 0) {
			if (evbuffer_get_length(in) >= SMTP_LINE_MAX) {
				if (!s->discard_line)
					reply(s, "500 5.5.2 Error: line too "
						 "long");
				s->discard_line = 1;
				evbuffer_drain(in, evbuffer_get_length(in));
			}
			return 0;
		}
		size_t n = (size_t)eol.pos;
		if (s->discard_line || n + 1 > SMTP_LINE_MAX) {
			if (!s->discard_line)
				reply(s, "500 5.5.2 Error: line too long");
			s->discard_line = 0;
			evbuffer_drain(in, n + 1);
			continue;
		}
		*line = xmalloc(n + 1);
		evbuffer_remove(in, *line, n + 1);
		if (n > 0 && (*line)[n - 1] == '\r')
			n--;
		(*line)[n] = '\0';
		*len = n;
		return 1;
	}
}

static void
session_process(struct smtp_session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	struct evbuffer *out = bufferevent_get_output(s->bev);
	/* Only a whole command or text line moves the deadline on: bytes
	 * trickled without a line end do not. */
	int progress = 0;
	unsigned long lines = s->state == SMTP_DATA ? s->data.lines : 0;

	while (s->state != SMTP_CLOSING && s->state != SMTP_COMMIT) {
		/* A client that does not read its replies gets no more
		 * of them until it does. */
		if (evbuffer_get_length(out) > SMTPD_OUTPUT_HIGH) {
			bufferevent_disable(s->bev, EV_READ);
			return;
		}
		if (s->state == SMTP_DATA) {
			int ended = feed_data(s, in);
			progress |= s->data.lines != lines;
			if (!ended)
				break;
			finish_data(s);
			continue;
		}
		char *line;
		size_t len;
		if (!next_line(s, in, &line, &len))
			break;
		progress = 1;
		handle_command(s, line, len);
		free(line);
		if (s->errors >= (int)s->sd->conf->smtpd_error_limit &&
		    s->state != SMTP_CLOSING)
			too_many_errors(s);
		if (s->state == SMTP_DATA)
			lines = s->data.lines;
	}
	if (progress && s->state != SMTP_CLOSING)
		session_arm_deadline(s);
}

static void
on_read(struct bufferevent *bev, void *arg)
{
	struct smtp_session *s = arg;
	(void)bev;
	if (s->state == SMTP_GREETING) {
		/* Talking before the greeting: a spam engine's habit. */
		log_info("reject: early talker %s[%s]", s->client_name,
			 s->client_ip);
		s->sd->stats.rejected++;
		reply(s, "554 5.5.1 Error: SMTP protocol synchronization: "
			 "data sent before greeting");
		evbuffer_drain(bufferevent_get_input(bev),
			       evbuffer_get_length(bufferevent_get_input(bev)));
		close_after(s);
		return;
	}
	session_process(s);
}

static void
on_write(struct bufferevent *bev, void *arg)
{
	struct smtp_session *s = arg;
	(void)bev;
	if (s->state == SMTP_CLOSING) {
		smtp_session_free(s);
		return;
	}
	/* Output drained below the mark: read again. */
	if (!(bufferevent_get_enabled(s->bev) & EV_READ) &&
	    s->state != SMTP_COMMIT) {
		bufferevent_enable(s->bev, EV_READ);
		session_process(s);
	}
}

/* The client half-closed: what it sent before still counts (a script
 * may pipe a whole transaction and close its side), so finish that,
 * write the replies, then close. */
static void
finish_after_eof(struct smtp_session *s)
{
	s->eof = 1;
	if (s->state == SMTP_COMMIT)
		return; /* smtp_session_committed comes back here */
	if (s->state != SMTP_CLOSING)
		session_process(s);
	if (s->state != SMTP_CLOSING && s->state != SMTP_COMMIT) {
		transaction_reset(s);
		close_after(s);
	}
}

static void
on_event(struct bufferevent *bev, short what, void *arg)
{
	struct smtp_session *s = arg;
	(void)bev;
	if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR)) {
		finish_after_eof(s);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		/* A reply the client would not read. */
		log_info("timeout after write to %s[%s]", s->client_name,
			 s->client_ip);
	} else if ((what & BEV_EVENT_ERROR) && errno != ECONNRESET &&
		   errno != EPIPE) {
		log_info("lost connection from %s[%s]: %s", s->client_name,
			 s->client_ip, strerror(errno));
	}
	if (s->state == SMTP_COMMIT) {
		/* The commit goes on; the session ends when it returns. */
		s->dead = 1;
		bufferevent_disable(s->bev, EV_READ | EV_WRITE);
		return;
	}
	smtp_session_free(s);
}

/* ---- timers ----------------------------------------------------------- */

static void
on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_session *s = arg;
	(void)fd;
	(void)what;
	if (s->state == SMTP_GREETING) {
		if (s->dns_req == NULL) {
			greet(s);
			return;
		}
		/* The name lookup took all of smtpd_timeout. */
		dns_req_cancel(s->dns_req);
		on_client_name(s, NULL);
		return;
	}
	if (s->state == SMTP_COMMIT || s->state == SMTP_CLOSING)
		return;
	log_info("timeout after %s from %s[%s]",
		 s->state == SMTP_DATA ? "DATA" : "command", s->client_name,
		 s->client_ip);
	reply(s, "421 4.4.2 %s Error: timeout exceeded", s->sd->conf->hostname);
	close_after(s);
}

static void
greet(struct smtp_session *s)
{
	reply(s, "220 %s ESMTP smalt", s->sd->conf->hostname);
	s->state = SMTP_CONNECTED;
	session_arm_deadline(s);
}

/* smtpd_timeout bounds one whole command line or DATA block, however
 * slowly its bytes trickle in: the deadline is set when a command is
 * awaited, not pushed back by each byte. */
static void
session_arm_deadline(struct smtp_session *s)
{
	struct timeval tv = {s->sd->conf->smtpd_timeout, 0};
	event_add(s->timer, &tv);
}

/* ---- life cycle ------------------------------------------------------- */

static void
format_client(struct smtp_session *s, const struct sockaddr *sa)
{
	const void *a =
	    sa->sa_family == AF_INET6
		? (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr
		: (const void *)&((const struct sockaddr_in *)sa)->sin_addr;
	if (inet_ntop(sa->sa_family, a, s->client_ip, sizeof(s->client_ip)) ==
	    NULL)
		smalt_strlcpy(s->client_ip, "unknown", sizeof(s->client_ip));
	smalt_strlcpy(s->client_name, "unknown", sizeof(s->client_name));
}

/* The client's name is known (or known to be unknown): log the connect
 * and greet, at once for trusted networks; others wait a moment so that
 * a client that talks first shows itself. */
static void
on_client_name(void *arg, const char *name)
{
	struct smtp_session *s = arg;
	s->dns_req = NULL;
	if (name != NULL && strlen(name) < sizeof(s->client_name))
		smalt_strlcpy(s->client_name, name, sizeof(s->client_name));
	log_info("connect from %s[%s]", s->client_name, s->client_ip);
	if (conf_cidrs_match(&s->sd->conf->relay_networks,
			     (struct sockaddr *)&s->addr)) {
		greet(s);
		return;
	}
	struct timeval tv = {s->sd->conf->smtpd_greet_pause, 0};
	event_add(s->timer, &tv);
}

void
smtp_session_start(struct smtpd *sd, int fd, struct sockaddr *sa,
		   socklen_t salen, const struct sockaddr_storage *ipkey,
		   enum listener_kind kind)
{
	struct smtp_session *s = xcalloc(1, sizeof(*s));
	s->sd = sd;
	s->ipkey = *ipkey;
	s->kind = kind;
	memcpy(&s->addr, sa, salen < sizeof(s->addr) ? salen : sizeof(s->addr));
	format_client(s, sa);
	envelope_init(&s->env);
	s->bev = bufferevent_socket_new(sd->base, fd, BEV_OPT_CLOSE_ON_FREE);
	s->timer = evtimer_new(sd->base, on_deadline, s);
	if (s->bev == NULL || s->timer == NULL)
		fatal("out of memory for a session");
	s->next = sd->sessions;
	if (sd->sessions)
		sd->sessions->prev = s;
	sd->sessions = s;
	sd->nsessions++;
	sd->stats.connections++;

	struct timeval wtv = {sd->conf->smtpd_timeout, 0};
	bufferevent_set_timeouts(s->bev, NULL, &wtv);
	bufferevent_setcb(s->bev, on_read, on_write, on_event, s);
	bufferevent_setwatermark(s->bev, EV_WRITE, 0, 0);
	/* Bounds what a pipelining client can make us hold while a commit
	 * is under way; reading resumes as the input is consumed. */
	bufferevent_setwatermark(s->bev, EV_READ, 0, 256 * 1024);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
	/* The greeting waits for the client's name, but never longer than
	 * smtpd_timeout. */
	s->state = SMTP_GREETING;
	session_arm_deadline(s);
	if (sd->dns != NULL)
		s->dns_req = dns_reverse(sd->dns, sa, on_client_name, s);
	else
		on_client_name(s, NULL);
}

void
smtp_session_free(struct smtp_session *s)
{
	struct smtpd *sd = s->sd;
	log_info("disconnect from %s[%s] ehlo=%u helo=%u mail=%u rcpt=%u "
		 "data=%u rset=%u quit=%u other=%u",
		 s->client_name, s->client_ip, s->n_ehlo, s->n_helo, s->n_mail,
		 s->n_rcpt, s->n_data, s->n_rset, s->n_quit, s->n_other);
	if (s->prev)
		s->prev->next = s->next;
	else
		sd->sessions = s->next;
	if (s->next)
		s->next->prev = s->prev;
	sd->nsessions--;
	smtpd_ip_release(sd, &s->ipkey);
	dns_req_cancel(s->dns_req);
	transaction_reset(s);
	envelope_free(&s->env);
	event_free(s->timer);
	bufferevent_free(s->bev);
	free(s->helo);
	free(s);
}
