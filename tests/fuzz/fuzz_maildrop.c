/* The maildrop file parser: what any local user (through sendmail, or
 * by hand with the smaltdrop group) can put in front of the daemon. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "queue/maildrop.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size + 1);
	memcpy(buf, data, size);
	buf[size] = '\0';
	struct maildrop_file md;
	memset(&md, 0, sizeof(md));
	const char *errstr = NULL;
	if (maildrop_parse(buf, size, &md, &errstr) == 0) {
		if (md.request == NULL &&
		    (md.env.nrcpt == 0 || md.msg == NULL ||
		     md.msg + md.msg_len != buf + size))
			abort();
		envelope_free(&md.env);
		free(md.request);
	} else if (errstr == NULL) {
		abort();
	}
	free(buf);
	return 0;
}
