/* RFC 1123 5.3.1.1 on the server side: a connection from a host that the
 * delivery side has marked down is evidence that the host is up again.
 * smtpd reads the host cache the queue manager keeps in the spool
 * (state/hosts, read again only when it changed) and, when the client's
 * address is one of a down host's, drops a "wake IP" request into
 * maildrop/ for the queue manager, which marks the host up and sends its
 * mail at once. Costs one stat() per connection. Connections from
 * 127.0.0.1 and ::1 (local programs) are no evidence and are ignored. */
#ifndef SMALT_HOST_WAKE_H
#define SMALT_HOST_WAKE_H

#include <sys/socket.h>

struct host_wake;

struct host_wake *host_wake_new(const char *spool_dir);
void host_wake_free(struct host_wake *w);
/* A client connected from sa. */
void host_wake_note(struct host_wake *w, const struct sockaddr *sa);

#endif
