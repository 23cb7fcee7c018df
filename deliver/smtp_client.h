/* The SMTP client engine of the smtp and relay channels (SPEC §3, §5): one
 * message to one next hop, on the caller's libevent loop, never blocking
 * it. The caller resolves the next hop (common/dns.h) and hands over its
 * addresses in order; the engine tries them one after another until one
 * takes the transaction (or refuses it for good), and reports once.
 *
 * Decisions, after Postfix's smtp(8):
 * - Next address: on a connection failure or timeout, a greeting other than
 *   2xx, a 4xx to EHLO (or any failure of EHLO then HELO), a failed or
 *   required-but-missing STARTTLS, a failed certificate check and a refused
 *   AUTH. These are "host failures" (host_failed, host_reason): the caller
 *   marks the host down. Once MAIL FROM went out, the session decides:
 *   replies give per-recipient results, and a lost connection or timeout
 *   defers whoever has no result yet (no next address: the server may have
 *   taken the message).
 * - 5xx to EHLO: HELO (no extensions). A 5xx greeting defers like a 4xx
 *   (Postfix bounces only when it is sure; a defer is never wrong).
 * - SMTP_TLS_MAY: STARTTLS when offered, no certificate check. A refused
 *   STARTTLS goes on in plain text in the same session; a failed handshake
 *   kills that connection, and the engine reconnects to the same address
 *   once without STARTTLS (Postfix's opportunistic fallback).
 * - SMTP_TLS_ENCRYPT: STARTTLS must be offered and accepted, and the
 *   certificate must verify against ssl_ctx's CAs and the target's host
 *   name (the MX host name or the relay host; an address literal is checked
 *   as an IP address). Otherwise a host failure with DSN 4.7.5.
 * - SMTP_TLS_SMTPS: TLS from the first octet (port 465), verified the same.
 * - AUTH (auth_user set): PLAIN when offered, else LOGIN. The password is
 *   only sent over TLS, or in plain text when the policy is SMTP_TLS_NONE
 *   (the admin's explicit choice, e.g. a relay on a trusted network).
 *   Credentials set but the session unencrypted under MAY: host failure
 *   (never a password in clear by surprise). Server not offering AUTH at
 *   all: the mail goes without it, as Postfix does; offering AUTH but
 *   neither PLAIN nor LOGIN: host failure ("no mechanism available"). A
 *   refused AUTH is a host failure: deferred, never bounced.
 * - SIZE: a message larger than the server's limit bounces with 5.3.4
 *   without being sent. 8BITMIME: BODY=8BITMIME when eight_bit and
 *   offered (an 8-bit message goes as is to a server without it).
 * - PIPELINING: MAIL, every RCPT and DATA in one write when offered;
 *   otherwise one command per reply. No recipient accepted: no message,
 *   QUIT.
 * - STARTTLS reply followed by more octets before the handshake (the
 *   response injection of CVE-2011-0411): host failure.
 * - The message: msg_size octets of msg_fd from msg_offset, with CRLF line
 *   ends and not dot-stuffed (the queue's form, SPEC §9): read in 64 KiB
 *   chunks as the socket drains, a leading dot doubled, CRLF added when the
 *   text does not end with one, then ".".
 *
 * Connection reuse (keep_open), after Postfix's connection cache: the
 * session goes on to the next message for the same next hop instead of a
 * new connection per message.
 * - Kept: a transaction the server ended cleanly, i.e. it replied to the
 *   final dot (2xx, 4xx or 5xx), or to DATA with no 354, or no recipient
 *   was accepted or MAIL was refused; in the last three the engine sends
 *   RSET and keeps the session only on its 2xx (else QUIT, as without
 *   keep_open). A SIZE bounce decided before MAIL keeps it too (nothing
 *   was started, no RSET). Never kept: a timeout, a lost connection, a
 *   host failure, a failure to read the message.
 * - While parked the engine still reads: the server closing the session,
 *   an error, or anything it says (an idle timeout's 421) closes the
 *   socket, and the next smtp_client_reuse starts over. It sets no limit
 *   on the idle time: that is the caller's (Postfix keeps a session 2 s
 *   for the next message, smtp_connection_cache_time_limit).
 * - smtp_client_reuse: MAIL FROM on the parked session (with the
 *   extensions, TLS and AUTH of its EHLO). Until the reply to MAIL FROM
 *   shows the server still there, a lost connection, a timeout or a 421
 *   reply (a server that closed the idle session as the command went)
 *   starts over as smtp_client_start would: the targets from the first,
 *   with a fresh outcome; never a host failure or a deferral of its own.
 *   After that reply, failures are those of any session.
 * - The outcome of a reused session names it: relay, one tried_ips entry
 *   (tried_addrs 1); ready_us is when the transaction began. */
#ifndef SMALT_SMTP_CLIENT_H
#define SMALT_SMTP_CLIENT_H

#include <event2/event.h>
#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/dns.h"
#include "deliver/result.h"

enum smtp_tls_policy {
	SMTP_TLS_NONE,	  /* never STARTTLS */
	SMTP_TLS_MAY,	  /* STARTTLS when offered, unverified */
	SMTP_TLS_ENCRYPT, /* STARTTLS required, certificate verified */
	SMTP_TLS_SMTPS	  /* implicit TLS (port 465), verified */
};

struct smtp_client_params {
	const char *helo_name; /* our name in EHLO/HELO */
	enum smtp_tls_policy tls;
	/* A client context with the CAs loaded (SSL_VERIFY_NONE: the engine
	 * checks the result itself); NULL only when tls is SMTP_TLS_NONE. */
	SSL_CTX *ssl_ctx;
	const char *auth_user; /* NULL: no AUTH */
	const char *auth_pass;
	unsigned connect_timeout; /* seconds; TCP connect and TLS handshake */
	unsigned command_timeout; /* each reply */
	unsigned data_timeout;	  /* each step of the message's sending, and
				     the reply to its final dot */
	/* 1: a transaction that ended cleanly leaves the session open and
	 * idle (outcome kept) instead of QUIT; see above. */
	int keep_open;
};

struct smtp_tx {
	const char *sender; /* "" for <> */
	const char *const *rcpts;
	size_t nrcpt; /* >= 1 */
	int msg_fd;   /* read with pread; the engine never closes it */
	off_t msg_offset;
	uint64_t msg_size;
	int eight_bit; /* BODY=8BITMIME when the server offers it */
};

#define SMTP_MAX_TRIED 32

struct smtp_outcome {
	/* "host[ip]:port" of the server that took the transaction (MAIL
	 * FROM went out), else "none". */
	char relay[320];
	/* 1 when the last address tried (or all of them, when no session
	 * got to MAIL FROM) failed at host level; host_reason tells why, in
	 * Postfix's words. */
	int host_failed;
	char host_reason[256];
	/* One per tx recipient, in order: OK after the final 250 to the
	 * message, BOUNCE for 5xx, DEFER for 4xx or a failure (host_reason
	 * when no session got as far). */
	struct deliver_result *rcpt;
	size_t tried_addrs;
	/* The addresses connected to (or tried), "ip" text, and whether each
	 * failed at host level; for the host cache. */
	char tried_ips[SMTP_MAX_TRIED][48];
	int tried_failed[SMTP_MAX_TRIED];
	size_t ntried;
	/* 1: the session is open and idle, and the caller owns the client:
	 * it must call smtp_client_reuse, smtp_client_close or
	 * smtp_client_cancel; the engine does not free itself. */
	int kept;
	/* Wall clock (CLOCK_REALTIME) in microseconds when the session that
	 * took the transaction was ready for MAIL FROM (after greeting,
	 * EHLO, STARTTLS and AUTH), or when a reused session began it; 0 when
	 * no session got that far. Splits delays= into setup and
	 * transmission. */
	uint64_t ready_us;
};

struct smtp_client;

/* Runs exactly once per smtp_client_start or smtp_client_reuse (unless
 * cancelled first), never from inside either. o is valid during the call
 * only, and no longer once cb called smtp_client_reuse, _close or _cancel.
 * Unless o->kept, the engine frees itself after cb returns. cb may call
 * smtp_client_reuse, _close or _cancel on a kept client, and _cancel on
 * any (a no-op then, since the client ends anyway). */
typedef void (*smtp_done_cb)(void *arg, const struct smtp_outcome *o);

/* Copies params, targets and tx (not the message: msg_fd must stay open
 * until cb runs or the client is cancelled). ntargets >= 1. */
struct smtp_client *smtp_client_start(struct event_base *base,
				      const struct smtp_client_params *p,
				      const struct dns_target *targets,
				      size_t ntargets, const struct smtp_tx *tx,
				      smtp_done_cb cb, void *arg);
/* The next transaction on a client whose last outcome was kept, with the
 * same params and targets; tx is copied as by smtp_client_start, and cb
 * runs as for it. -1 (nothing done) when the client is not parked. */
int smtp_client_reuse(struct smtp_client *c, const struct smtp_tx *tx,
		      smtp_done_cb cb, void *arg);
/* Ends a parked client politely: QUIT, then the connection closes on its
 * reply, on EOF or after command_timeout, and the client frees itself;
 * no callback. On a client that is not parked it is smtp_client_cancel. */
void smtp_client_close(struct smtp_client *c);
/* Stops at once, closing any connection; cb never runs. */
void smtp_client_cancel(struct smtp_client *c);

/* Helpers, public for the unit tests. */
/* The DSN of a reply "550 5.1.1 text": its enhanced code when present and
 * of the reply's class, else "4.0.0" / "5.0.0" ("2.0.0" for 2xx). */
void smtp_reply_dsn(int code, const char *text, char *dsn, size_t len);
/* Dot-stuffs n octets of in into out (room for 2 * n), *bol being 1 when
 * the previous octet ended a line (start with 1). Returns the length. */
size_t smtp_dot_stuff(int *bol, const char *in, size_t n, char *out);

#endif
