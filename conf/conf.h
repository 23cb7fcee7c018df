/* smalt.conf (SPEC §3): every key, its built-in default, and the parsed
 * effective settings. Parsing never exits; errors come back as
 * "file:line: reason" for the caller to print and exit 78 on. */
#ifndef SMALT_CONF_H
#define SMALT_CONF_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#define CONF_DEFAULT_FILE "/etc/smalt/smalt.conf"
#define CONF_ERRLEN	  512

/* A list value: "a, b c" -> {"a","b","c"}. */
struct conf_list {
	size_t n;
	char **v;
};

/* host:port, [v6]:port, or a bare host (then port = default for the key).
 * host holds the name or address text without brackets. */
struct conf_hostport {
	char *host;
	uint16_t port;
	int is_literal; /* written in brackets: [host] means no MX lookup */
};

struct conf_hostports {
	size_t n;
	struct conf_hostport *v;
};

/* An address prefix: 10.0.0.0/8, ::1/128, or a bare address (full
 * length). addr is in network byte order. */
struct conf_cidr {
	int family; /* AF_INET or AF_INET6 */
	uint8_t addr[16];
	unsigned prefix;
};

struct conf_cidrs {
	size_t n;
	struct conf_cidr *v;
};

enum conf_tls_relay {
	TLS_RELAY_ENCRYPT,
	TLS_RELAY_SMTPS,
	TLS_RELAY_MAY,
	TLS_RELAY_NONE
};
enum conf_tls_smtp { TLS_SMTP_MAY, TLS_SMTP_ENCRYPT, TLS_SMTP_NONE };
enum conf_spf { SPF_OFF, SPF_TAG, SPF_REJECT };
enum conf_bare_newline { BARE_NEWLINE_NORMALIZE, BARE_NEWLINE_REJECT };
enum conf_log { CONF_LOG_SYSLOG, CONF_LOG_STDERR };

/* Durations are in seconds, sizes in bytes. Strings are never NULL (empty
 * string when unset). */
struct smalt_conf {
	char *hostname;
	struct conf_list local_domains;
	struct conf_hostports listen;
	struct conf_hostports submission_listen;
	struct conf_hostports smtps_listen;
	struct conf_cidrs relay_networks;
	char *spool_dir;
	char *user;
	char *mail_spool_directory;
	char *home_mailbox;
	char *aliases;
	char *virtual_mailboxes;
	char *routes;
	struct conf_hostport relayhost; /* host == "" when unset */
	char *relayhost_auth_file;
	enum conf_tls_relay relayhost_tls;
	uint16_t smtp_port;
	enum conf_tls_smtp smtp_tls;
	char *tls_cert;
	char *tls_key;
	char *tls_ca_file;
	char *auth_users;
	struct conf_hostports resolver; /* n == 0: /etc/resolv.conf */
	enum conf_spf spf;
	uint64_t max_message_size;
	unsigned max_recipients;
	unsigned max_connections;
	unsigned max_connections_per_ip;
	unsigned smtpd_timeout;
	enum conf_bare_newline bare_newline;
	unsigned smtpd_error_limit; /* error replies before 421 and close */
	unsigned smtpd_greet_pause; /* greeting held back, untrusted clients */
	unsigned retry_min, retry_max;
	unsigned host_retry_min, host_retry_max;
	unsigned queue_lifetime;
	unsigned delay_warning;
	unsigned delivery_concurrency;
	unsigned destination_concurrency;
	enum conf_log log;

	/* Where the settings came from, for messages: the file name, or
	 * NULL for built-in defaults. */
	char *source;
};

/* Reads path (NULL = CONF_DEFAULT_FILE, where a missing file means
 * built-in defaults; a named file that is missing is an error), then
 * applies the overrides ("key=value", as given to -o) in order.
 * Returns a new conf, or NULL with err filled as "file:line: reason". */
struct smalt_conf *conf_load(const char *path, char *const *overrides,
			     size_t n_overrides, char *err, size_t errlen);

/* Parses a whole config text held in memory (used by conf_load and the
 * fuzz target). name is used in error messages. */
struct smalt_conf *conf_parse_buffer(const char *name, const char *text,
				     size_t len, char *const *overrides,
				     size_t n_overrides, char *err,
				     size_t errlen);

void conf_free(struct smalt_conf *conf);

/* Prints "key = value" for every key, in the order of SPEC §3's table
 * (tls_cert and tls_key as two lines). Empty values print as "key =". */
void conf_print(const struct smalt_conf *conf, FILE *out);

/* Value parsers, exported for tests and for other files that take the
 * same shapes (routes next hops, relayhost). 0 on success, -1 with a
 * reason in err. */
int conf_parse_duration(const char *s, unsigned *out, char *err, size_t errlen);
int conf_parse_size(const char *s, uint64_t *out, char *err, size_t errlen);
int conf_parse_hostport(const char *s, uint16_t default_port,
			struct conf_hostport *out, char *err, size_t errlen);
int conf_parse_cidr(const char *s, struct conf_cidr *out, char *err,
		    size_t errlen);
/* Does the socket address fall in one of the prefixes? IPv4-mapped IPv6
 * addresses match IPv4 prefixes. */
int conf_cidrs_match(const struct conf_cidrs *cidrs, const struct sockaddr *sa);
/* Is domain (any case) one of local_domains? */
int conf_is_local_domain(const struct smalt_conf *conf, const char *domain);

#endif
