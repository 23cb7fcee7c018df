#include "deliver/bounce.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/strbuf.h"
#include "common/util.h"
#include "queue/queue.h"

/* RFC 5322 §2.1.1: lines SHOULD stay within 78 characters and MUST NOT
 * exceed 998, CRLF excluded. */
#define SOFT_WIDTH 78
#define HARD_WIDTH 998
/* RFC 2046 §5.1.1 limits a boundary to 70 characters. */
#define BOUNDARY_MAX   70
#define BOUNDARY_TRIES 32
#define CHUNK	       8192
#define TEXT_RULE                                                              \
	"####################################################################"

typedef int (*sink_fn)(void *arg, const char *buf, size_t len);

/* Text from elsewhere (remote replies, addresses, our own config) made
 * safe for a header field or a line of text: CR and LF would let it
 * start lines of its own, so every control character and run of white
 * space becomes one space; the report declares US-ASCII, so octets
 * beyond it become '?'. */
static char *
clean_text(const char *s)
{
	if (s == NULL)
		s = "";
	char *out = xmalloc(strlen(s) + 1), *o = out;
	int space = 0;
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		if (c <= ' ' || c == 0x7f) {
			space = 1;
			continue;
		}
		if (space && o > out)
			*o++ = ' ';
		space = 0;
		*o++ = c >= 0x80 ? '?' : (char)c;
	}
	*o = '\0';
	return out;
}

/* Where to end a physical line of a text longer than soft: at the last
 * space within soft, else at the first space within hard, else at hard
 * (a word that long has to be split somewhere). */
static size_t
break_at(const char *s, size_t len, size_t soft, size_t hard)
{
	for (size_t i = soft; i > 0; i--)
		if (s[i] == ' ')
			return i;
	for (size_t i = soft + 1; i < len && i <= hard; i++)
		if (s[i] == ' ')
			return i;
	return len <= hard ? len : hard;
}

/* Appends one logical line as physical lines ending in CRLF. Each
 * continuation starts with indent, which replaces the space broken at:
 * with indent " " that is RFC 5322 folding and unfolds to the original. */
static void
add_folded(struct strbuf *b, const char *line, const char *indent)
{
	const char *lead = "";
	size_t rem = strlen(line);
	for (;;) {
		size_t soft = SOFT_WIDTH - strlen(lead);
		size_t hard = HARD_WIDTH - strlen(lead);
		size_t cut =
		    rem <= soft ? rem : break_at(line, rem, soft, hard);
		strbuf_adds(b, lead);
		strbuf_add(b, line, cut);
		strbuf_add(b, "\r\n", 2);
		line += cut;
		rem -= cut;
		if (rem > 0 && *line == ' ') {
			line++;
			rem--;
		}
		if (rem == 0)
			return;
		lead = indent;
	}
}

/* A header field or a delivery-status field; value is clean already. */
static void
add_field(struct strbuf *b, const char *name, const char *value)
{
	char *line = xasprintf("%s: %s", name, value);
	add_folded(b, line, " ");
	free(line);
}

static void
add_date_field(struct strbuf *b, const char *name, time_t t)
{
	char date[64];
	add_field(b, name, rfc5322_date(t, date, sizeof(date)));
}

/* RFC 3463: class 4 or 5, then two numbers of 1-3 digits. */
static int
valid_status(const char *s)
{
	if (s == NULL || (s[0] != '4' && s[0] != '5') || s[1] != '.')
		return 0;
	s += 2;
	for (int part = 0; part < 2; part++) {
		int n = 0;
		while (*s >= '0' && *s <= '9') {
			s++;
			n++;
		}
		if (n < 1 || n > 3)
			return 0;
		if (part == 0 && *s++ != '.')
			return 0;
	}
	return *s == '\0';
}

static const char *
status_of(const struct bounce_rcpt *r, enum dsn_kind kind)
{
	if (valid_status(r->dsn))
		return r->dsn;
	return kind == DSN_DELAY ? "4.0.0" : "5.0.0";
}

/* A reason that starts with an SMTP reply code came from a remote server
 * (diagnostic type "smtp"); anything else is ours ("x-unix", as Postfix
 * calls local errors). */
static int
starts_with_reply_code(const char *s)
{
	return s[0] >= '2' && s[0] <= '5' && s[1] >= '0' && s[1] <= '9' &&
	       s[2] >= '0' && s[2] <= '9' &&
	       (s[3] == '\0' || s[3] == ' ' || s[3] == '-');
}

/* The Diagnostic-Code value for a clean reason. The channels word remote
 * replies as Postfix does, "host H[A] said: 550 5.1.1 ... (in reply to
 * RCPT TO command)"; the code carries just the reply, as Postfix's does,
 * while part 1 keeps the whole sentence. */
static char *
diagnostic_code(const char *why)
{
	if (starts_with_reply_code(why))
		return xasprintf("smtp; %s", why);
	const char *said = strstr(why, " said: ");
	if (said == NULL || !starts_with_reply_code(said + 7))
		return xasprintf("x-unix; %s", why);
	const char *reply = said + 7;
	size_t len = strlen(reply);
	const char *tail = NULL;
	for (const char *t = reply; (t = strstr(t, " (in reply to ")) != NULL;
	     t++)
		tail = t;
	if (tail != NULL && reply[len - 1] == ')' &&
	    strchr(tail + 2, '(') == NULL)
		len = (size_t)(tail - reply);
	return xasprintf("smtp; %.*s", (int)len, reply);
}

/* Boundary characters (RFC 2046 bcharsnospace) are a superset of what a
 * host name and a queue id hold; anything else in a strange hostname
 * setting becomes '-'. */
static void
make_boundary(const struct bounce_params *p, unsigned attempt, char *out,
	      size_t outlen)
{
	const char *id = p->env->id[0] != '\0' ? p->env->id : "0";
	snprintf(out, outlen, "%s.%lld.%u/%s", id, (long long)p->now, attempt,
		 p->hostname);
	for (char *s = out; *s != '\0'; s++)
		if (strchr("abcdefghijklmnopqrstuvwxyz"
			   "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'()+_,-./:=?",
			   *s) == NULL)
			*s = '-';
}

/* Copying part 3: the original's bytes with bare LFs made CRLF so that
 * the report is all CRLF; in header mode it stops at the empty line
 * that ends the header section. A CR at the start of a line is held
 * back until the next byte says whether that line is the empty one. */
struct copier {
	int headers_only;
	int bol;     /* at the start of a line */
	int held_cr; /* header mode: a CR at the start of a line, unwritten */
	int prev_cr; /* the last byte written was a CR */
	int done;    /* header mode: the header section has ended */
};

static size_t
copy_byte(struct copier *c, unsigned char ch, char *out)
{
	size_t n = 0;
	if (c->held_cr) {
		c->held_cr = 0;
		if (ch == '\n') {
			c->done = 1;
			return 0;
		}
		out[n++] = '\r';
		c->bol = 0;
		c->prev_cr = 1;
	}
	if (c->headers_only && c->bol && ch == '\r') {
		c->held_cr = 1;
		return n;
	}
	if (ch == '\n') {
		if (c->headers_only && c->bol) {
			c->done = 1;
			return n;
		}
		if (!c->prev_cr)
			out[n++] = '\r';
		out[n++] = '\n';
		c->bol = 1;
		c->prev_cr = 0;
		return n;
	}
	out[n++] = (char)ch;
	c->bol = 0;
	c->prev_cr = ch == '\r';
	return n;
}

/* Streams the part of the original that the report carries to sink, a
 * chunk at a time, so a large message is never in memory whole. */
static int
copy_original(int fd, int headers_only, sink_fn sink, void *arg)
{
	char in[CHUNK], out[2 * CHUNK];
	struct copier c = {.headers_only = headers_only, .bol = 1};
	off_t off = 0;
	while (!c.done) {
		ssize_t r = pread(fd, in, sizeof(in), off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		off += r;
		size_t n = 0;
		for (ssize_t i = 0; i < r && !c.done; i++)
			n += copy_byte(&c, (unsigned char)in[i], out + n);
		if (n > 0 && sink(arg, out, n) != 0)
			return -1;
	}
	return 0;
}

/* The first pass over what part 3 will hold: does the candidate
 * boundary occur anywhere in it (also split across chunks), and does it
 * need an 8bit transfer encoding? */
struct scan {
	const char *boundary;
	size_t blen;
	char tail[BOUNDARY_MAX]; /* the last blen-1 bytes seen */
	size_t ntail;
	int found, eightbit;
};

static int
scan_sink(void *arg, const char *buf, size_t len)
{
	struct scan *s = arg;
	for (size_t i = 0; i < len && !s->eightbit; i++)
		if ((unsigned char)buf[i] >= 0x80)
			s->eightbit = 1;
	size_t keep = s->blen - 1;
	char join[2 * BOUNDARY_MAX];
	size_t head = len < keep ? len : keep;
	memcpy(join, s->tail, s->ntail);
	memcpy(join + s->ntail, buf, head);
	size_t njoin = s->ntail + head;
	if (memmem(join, njoin, s->boundary, s->blen) != NULL ||
	    memmem(buf, len, s->boundary, s->blen) != NULL)
		s->found = 1;
	if (len >= keep) {
		memcpy(s->tail, buf + len - keep, keep);
		s->ntail = keep;
	} else {
		/* The whole buffer is in join: keep its last bytes. */
		s->ntail = njoin < keep ? njoin : keep;
		memmove(s->tail, join + njoin - s->ntail, s->ntail);
	}
	return 0;
}

/* The boundary is derived from the queue id and the time, and then made
 * certain: a candidate that occurs in the original is passed over. */
static int
choose_boundary(const struct bounce_params *p, int headers_only, char *out,
		size_t outlen, int *eightbit)
{
	for (unsigned attempt = 0; attempt < BOUNDARY_TRIES; attempt++) {
		make_boundary(p, attempt, out, outlen);
		struct scan s = {.boundary = out, .blen = strlen(out)};
		if (copy_original(p->msg_fd, headers_only, scan_sink, &s) != 0)
			return -1;
		*eightbit = s.eightbit;
		if (!s.found)
			return 0;
	}
	errno = EEXIST;
	return -1;
}

static void
add_headers(struct strbuf *b, const struct bounce_params *p, const char *host,
	    const char *boundary, int eightbit)
{
	static atomic_uint counter;
	unsigned serial = atomic_fetch_add(&counter, 1);
	char *to = clean_text(p->to);
	char *v;

	add_date_field(b, "Date", p->now);
	v = xasprintf("MAILER-DAEMON@%s (Mail Delivery System)", host);
	add_field(b, "From", v);
	free(v);
	add_field(b, "Subject",
		  p->kind == DSN_DELAY ? "Delayed Mail (still being retried)"
				       : "Undelivered Mail Returned to Sender");
	v = xasprintf("<%s>", to);
	add_field(b, "To", v);
	free(v);
	/* RFC 3834: keeps vacation responders from answering the report. */
	add_field(b, "Auto-Submitted", "auto-replied");
	v = xasprintf("<%lld.%s.%u@%s>", (long long)p->now,
		      p->env->id[0] != '\0' ? p->env->id : "0", serial, host);
	add_field(b, "Message-ID", v);
	free(v);
	add_field(b, "MIME-Version", "1.0");
	v = xasprintf("multipart/report; report-type=delivery-status; "
		      "boundary=\"%s\"",
		      boundary);
	add_field(b, "Content-Type", v);
	free(v);
	add_field(b, "Content-Transfer-Encoding", eightbit ? "8bit" : "7bit");
	strbuf_adds(b, "\r\nThis is a MIME-encapsulated message.\r\n");
	free(to);
}

static void
add_delay_intro(struct strbuf *b, const struct bounce_params *p)
{
	long long waited = (long long)(p->now - p->env->arrival);
	strbuf_adds(b, TEXT_RULE
		    "\r\n"
		    "# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO "
		    "RESEND YOUR MESSAGE. #\r\n" TEXT_RULE "\r\n\r\n");
	if (waited >= 3600)
		strbuf_addf(b,
			    "Your message could not be delivered for more "
			    "than %lld hour(s).\r\n",
			    waited / 3600);
	else if (waited >= 60)
		strbuf_addf(b,
			    "Your message could not be delivered for more "
			    "than %lld minute(s).\r\n",
			    waited / 60);
	else
		strbuf_adds(b, "Your message could not be delivered yet.\r\n");
	if (p->retry_until != 0) {
		char date[64];
		char *line =
		    xasprintf("It will be retried until %s.",
			      rfc5322_date(p->retry_until, date, sizeof(date)));
		add_folded(b, line, "");
		free(line);
	}
}

/* Part 1, in the words of Postfix's templates so that users (and the
 * filters they wrote for Postfix bounces) recognise it. */
static void
add_notification(struct strbuf *b, const struct bounce_params *p,
		 const char *host)
{
	strbuf_adds(b, "Content-Description: Notification\r\n"
		       "Content-Type: text/plain; charset=us-ascii\r\n\r\n");
	char *line = xasprintf("This is the mail system at host %s.", host);
	add_folded(b, line, "");
	free(line);
	strbuf_adds(b, "\r\n");
	if (p->kind == DSN_DELAY)
		add_delay_intro(b, p);
	else
		strbuf_adds(b, "I'm sorry to have to inform you that your "
			       "message could not\r\n"
			       "be delivered to one or more recipients. It's "
			       "attached below.\r\n");
	if (p->env->sender == NULL || p->env->sender[0] == '\0')
		strbuf_adds(b, "\r\nThe message had the null sender <> (it "
			       "was itself a notification),\r\n"
			       "so this report goes to the postmaster.\r\n");
	strbuf_adds(b, "\r\nFor further assistance, please send mail to "
		       "postmaster.\r\n\r\n"
		       "If you do so, please include this problem report. "
		       "You can\r\n"
		       "delete your own text from the attached returned "
		       "message.\r\n\r\n"
		       "                   The mail system\r\n");
	for (size_t i = 0; i < p->nrcpt; i++) {
		char *addr = clean_text(p->rcpts[i].address);
		char *why = clean_text(p->rcpts[i].reason);
		if (why[0] == '\0') {
			free(why);
			why = xstrdup(p->kind == DSN_DELAY
					  ? "delivery temporarily deferred"
					  : "delivery failed");
		}
		line = xasprintf("<%s>: %s", addr, why);
		strbuf_adds(b, "\r\n");
		add_folded(b, line, "    ");
		free(line);
		free(addr);
		free(why);
	}
}

static void
add_recipient_status(struct strbuf *b, const struct bounce_params *p,
		     const struct bounce_rcpt *r)
{
	char *addr = clean_text(r->address);
	char *why = clean_text(r->reason);
	char *v = xasprintf("rfc822; %s", addr);
	strbuf_adds(b, "\r\n");
	add_field(b, "Final-Recipient", v);
	free(v);
	add_field(b, "Action", p->kind == DSN_DELAY ? "delayed" : "failed");
	add_field(b, "Status", status_of(r, p->kind));
	if (why[0] != '\0') {
		v = diagnostic_code(why);
		add_field(b, "Diagnostic-Code", v);
		free(v);
	}
	if (p->kind == DSN_DELAY) {
		add_date_field(b, "Last-Attempt-Date", p->now);
		if (p->retry_until != 0)
			add_date_field(b, "Will-Retry-Until", p->retry_until);
	}
	free(addr);
	free(why);
}

/* Part 2, RFC 3464 §2.2 and §2.3. X- fields name the queue id and the
 * sender as Postfix's X-Postfix-Queue-ID and X-Postfix-Sender do. */
static void
add_status(struct strbuf *b, const struct bounce_params *p, const char *host)
{
	strbuf_adds(b, "Content-Description: Delivery report\r\n"
		       "Content-Type: message/delivery-status\r\n\r\n");
	char *v = xasprintf("dns; %s", host);
	add_field(b, "Reporting-MTA", v);
	free(v);
	if (p->env->id[0] != '\0') {
		v = clean_text(p->env->id);
		add_field(b, "X-Smalt-Queue-ID", v);
		free(v);
	}
	if (p->env->sender != NULL && p->env->sender[0] != '\0') {
		char *sender = clean_text(p->env->sender);
		v = xasprintf("rfc822; %s", sender);
		add_field(b, "X-Smalt-Sender", v);
		free(v);
		free(sender);
	}
	add_date_field(b, "Arrival-Date", p->env->arrival);
	for (size_t i = 0; i < p->nrcpt; i++)
		add_recipient_status(b, p, &p->rcpts[i]);
}

static void
add_original_header(struct strbuf *b, const struct bounce_params *p,
		    int headers_only, int eightbit)
{
	const char *what =
	    p->kind == DSN_DELAY ? "Delayed Message" : "Undelivered Message";
	strbuf_addf(b, "Content-Description: %s%s\r\n", what,
		    headers_only ? " Headers" : "");
	strbuf_adds(b, headers_only ? "Content-Type: text/rfc822-headers\r\n"
				    : "Content-Type: message/rfc822\r\n");
	if (eightbit)
		strbuf_adds(b, "Content-Transfer-Encoding: 8bit\r\n");
	strbuf_adds(b, "\r\n");
}

static int
valid_params(const struct bounce_params *p, bounce_write_fn write_fn)
{
	return p != NULL && write_fn != NULL && p->hostname != NULL &&
	       p->hostname[0] != '\0' && p->to != NULL && p->to[0] != '\0' &&
	       p->env != NULL && p->rcpts != NULL && p->nrcpt > 0 &&
	       p->msg_fd >= 0;
}

struct writer {
	bounce_write_fn fn;
	void *arg;
};

static int
write_sink(void *arg, const char *buf, size_t len)
{
	struct writer *w = arg;
	return w->fn(w->arg, buf, len) == 0 ? 0 : -1;
}

/* Everything before part 3's content: small (it grows with the number of
 * recipients only), so it is built in memory and written at once. */
static char *
build_head(const struct bounce_params *p, const char *boundary,
	   int headers_only, int eightbit, size_t *len)
{
	struct strbuf b = {0};
	char *host = clean_text(p->hostname);
	add_headers(&b, p, host, boundary, eightbit);
	/* Each delimiter's leading CRLF belongs to it (RFC 2046 §5.1.1), so
	 * every part's last line keeps its own CRLF. Nothing in parts 1 and
	 * 2 can start a line with "--": their lines start with our words, a
	 * field name, "<" or white space. */
	strbuf_addf(&b, "\r\n--%s\r\n", boundary);
	add_notification(&b, p, host);
	strbuf_addf(&b, "\r\n--%s\r\n", boundary);
	add_status(&b, p, host);
	strbuf_addf(&b, "\r\n--%s\r\n", boundary);
	add_original_header(&b, p, headers_only, eightbit);
	free(host);
	*len = b.len;
	return b.s;
}

int
bounce_write(const struct bounce_params *p, bounce_write_fn write_fn, void *arg)
{
	if (!valid_params(p, write_fn)) {
		errno = EINVAL;
		return -1;
	}
	struct stat st;
	if (fstat(p->msg_fd, &st) != 0)
		return -1;
	int headers_only = st.st_size >= BOUNCE_FULL_LIMIT;
	char boundary[BOUNDARY_MAX + 1];
	int eightbit = 0;
	if (choose_boundary(p, headers_only, boundary, sizeof(boundary),
			    &eightbit) != 0)
		return -1;

	size_t len;
	char *head = build_head(p, boundary, headers_only, eightbit, &len);
	int rc = write_fn(arg, head, len);
	int saved = errno;
	free(head);
	errno = saved;
	if (rc != 0)
		return -1;
	struct writer w = {write_fn, arg};
	if (copy_original(p->msg_fd, headers_only, write_sink, &w) != 0)
		return -1;
	char end[BOUNDARY_MAX + 16];
	int n = snprintf(end, sizeof(end), "\r\n--%s--\r\n", boundary);
	return write_fn(arg, end, (size_t)n) == 0 ? 0 : -1;
}

int
bounce_queue_write(void *msg, const void *buf, size_t len)
{
	return queue_msg_write(msg, buf, len);
}

/* The postmaster as an envelope recipient: the configured address, or,
 * when that is a bare local part, that local part at any domain. */
static int
is_postmaster(const char *address, const char *postmaster)
{
	if (ascii_strcasecmp(address, postmaster) == 0)
		return 1;
	size_t n = strlen(postmaster);
	return strchr(postmaster, '@') == NULL &&
	       ascii_strncasecmp(address, postmaster, n) == 0 &&
	       address[n] == '@';
}

const char *
bounce_recipient(const struct envelope *env, const char *postmaster_address)
{
	const char *pm =
	    postmaster_address != NULL && postmaster_address[0] != '\0'
		? postmaster_address
		: "postmaster";
	if (env->sender != NULL && env->sender[0] != '\0')
		return env->sender;
	/* Our double bounces go to the postmaster alone, so this is the
	 * case where one failed: Postfix's "undeliverable postmaster
	 * notification discarded". */
	for (size_t i = 0; i < env->nrcpt; i++)
		if (!is_postmaster(env->rcpt[i].address, pm))
			return pm;
	return env->nrcpt > 0 ? "" : pm;
}
