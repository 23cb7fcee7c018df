/* What sendmail(1) does to a message before it queues it (SPEC §2,
 * issue 5): the pure, in-memory part, kept apart from option parsing
 * and the maildrop so that it can be unit-tested and fuzzed.
 *
 *   - input lines end in LF or CRLF, mixed (PHP writes CRLF headers and
 *     an LF body); the output has CRLF everywhere. A lone CR not before
 *     LF is kept as it is, except as the input's very last octet, where
 *     it is taken for a CRLF cut short. A last line without a line end
 *     gets its CRLF;
 *   - a first line starting "From " (an mbox envelope line, as git
 *     format-patch writes) is dropped, as Postfix's sendmail does;
 *   - without -i/-oi a line holding only "." ends the input (what comes
 *     after is ignored); with them it is an ordinary line;
 *   - the header section is the lines up to the first empty line; a line
 *     that is neither a header field ("Name:" with printable ASCII name
 *     characters, no spaces before the colon... obsolete "Name :" is
 *     accepted too) nor a continuation (starts with space or tab) ends it:
 *     an empty line is inserted there, as Postfix does. So does a
 *     continuation line with no field before it, and a "From " line
 *     after the first (it is kept, in the body). Input that ends inside the
 * header section (no empty line, or no input at all) gets its empty line;
 *   - with -t, recipients come from To:, Cc: and Bcc: or, when any
 *     Resent-* field is present, from Resent-To:, Resent-Cc: and
 *     Resent-Bcc: only; address lists per RFC 5322: folded fields,
 *     groups ("undisclosed-recipients:;", "list: a@x, b@y;"), comments
 *     in parentheses (nested, with quoted-pairs), quoted display names
 *     holding commas or angle brackets, angle addresses, bare addresses,
 *     quoted local parts ("john doe"@x keeps its quotes), encoded words
 *     left alone (an encoded word is one word even when a sloppy encoder
 *     left a ',' in it); an address without a domain is returned as it
 *     is (the caller qualifies it). Duplicates (ASCII case-insensitive)
 *     once, the first spelling kept. Leniencies: a ';' outside a group
 *     separates like ',' (Outlook), the field's end closes an open
 *     group, empty members and "<>" are skipped, an obs-route
 *     "<@a,@b:u@d>" is dropped, CFWS inside an addr-spec goes
 *     ("a . b @ x" is a.b@x), dots in local parts are not checked.
 *     Errors: an unterminated quoted string, comment or domain literal,
 *     '<' without '>' and the reverse, ')' without '(', two words in a
 *     row ("John Doe" with no address), more than one '@', an empty
 *     local part or domain, text after "<...>", a group in a group,
 *     control characters in an address (TAB too). The lists are parsed
 *     only with -t, and only the kind that counts (To/Cc/Bcc or
 *     Resent-*) can fail the message;
 *   - Bcc: and Resent-Bcc: fields are removed from the output (with their
 *     continuation lines), with or without -t;
 *   - From:, Date: (RFC 5322, local time with numeric zone) and
 *     Message-ID: (<UNIQUE@hostname>) are added at the end of the header
 *     section when missing, in that order (field names matched
 *     case-insensitively; Resent-From: etc. do not count). The display
 *     name of From: is quoted when it holds more than atoms and spaces
 *     (RFC 5322 specials such as ',' '.' '"'), '"' and '\' escaped;
 *     control characters in -F and -f values become spaces, so that
 *     neither can start a field of its own. UNIQUE is the UTC time, pid,
 *     a per-process counter and 64 random bits;
 *   - 8-bit octets pass untouched; body lines of any length are kept;
 *     header fields longer than 998 octets per line are folded at white
 *     space where there is some (a header line with no white space to
 *     fold at is kept whole). A fold goes at the last white space
 *     within 998 octets, else the first one after; never before the
 *     first word of the value or of a continuation line, nor into
 *     trailing white space, so no line of white space only appears.
 *
 * What comes out, whatever went in: CRLF line ends only, a header
 * section of fields and continuation lines ended by an empty line, and
 * a message that a second inject_prepare with the same dot_ends leaves
 * as it is. */
#ifndef SMALT_INJECT_H
#define SMALT_INJECT_H

#include <stddef.h>
#include <time.h>

struct inject_opts {
	int dot_ends;	   /* 1 unless -i/-oi */
	int extract_rcpts; /* -t */
	/* The From: to add when missing: "Full Name <addr>" when full_name
	 * (-F) is set and not empty (white space trimmed), else "addr".
	 * NULL or "" (the null sender) gives "MAILER-DAEMON", as Postfix
	 * writes. */
	const char *from_addr;
	const char *full_name;
	const char *hostname; /* Message-ID's right-hand side; NULL or ""
			       * gives "localhost" */
	time_t now;	      /* Date: */
};

struct inject_out {
	char *data; /* the message as queued: CRLF lines; malloc'd */
	size_t len;
	char **rcpts; /* -t: the addresses found, in order; malloc'd. NULL
		       * and 0 without -t or when none were found */
	size_t nrcpt;
	int has_from, has_date, has_message_id; /* present in the input */
};

/* 0, or -1 with err (e.g. a -t address list that does not parse: the
 * reason names the field as written, "cc field: '<' without '>'"). That
 * is the only failure: without -t every input gives a message, and -t
 * with no recipients found is a success with nrcpt 0 (the caller
 * decides). in need not be NUL-terminated and may hold NULs. out needs
 * no initialisation; free it with inject_out_free in either case (on
 * failure it holds no recipients). inject_out_free leaves out zeroed,
 * so freeing twice is harmless. */
int inject_prepare(const char *in, size_t len, const struct inject_opts *o,
		   struct inject_out *out, char *err, size_t errlen);
void inject_out_free(struct inject_out *out);

/* Parses one address-list field value (unfolded or not; value need not
 * be NUL-terminated) and appends the addresses to *v / *n (malloc'd
 * strings, array grown with realloc; *v NULL and *n 0 to start). An
 * address already in *v (ASCII case-insensitive) is not added again.
 * 0, or -1 with err; on -1 *v / *n hold what they held before the call.
 * Exposed for the tests and the fuzz target. */
int inject_parse_address_list(const char *value, size_t len, char ***v,
			      size_t *n, char *err, size_t errlen);

#endif
