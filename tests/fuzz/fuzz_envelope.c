/* The envelope parser reads files from the spool, which may be damaged or
 * planted. It must refuse bad input cleanly, and whatever it accepts must
 * format back to text it accepts again with the same content. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "queue/envelope.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* An exact-size copy, so reading past the end is caught. */
	char *text = malloc(size ? size : 1);
	memcpy(text, data, size);
	struct envelope env, again;
	const char *why = NULL;
	if (envelope_parse(text, size, &env, &why) == 0) {
		size_t len;
		char *out = envelope_format(&env, &len);
		if (envelope_parse(out, len, &again, &why) != 0)
			abort();
		size_t len2;
		char *out2 = envelope_format(&again, &len2);
		if (len != len2 || memcmp(out, out2, len) != 0)
			abort();
		if (again.nrcpt != env.nrcpt || again.size != env.size)
			abort();
		free(out);
		free(out2);
		envelope_free(&again);
	} else if (why == NULL) {
		abort();
	}
	envelope_free(&env);
	free(text);
	return 0;
}
