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
		if (md.request != NULL && md.request_arg != NULL &&
		    md.request_arg[0] == '\0')
			abort(); /* an argument is absent or not empty */
		envelope_free(&md.env);
		free(md.request);
		free(md.request_arg);
	} else if (errstr == NULL) {
		abort();
	}
	free(buf);
	return 0;
}
