/* relayhost_auth_file's parser (mta_auth_parse): never a crash, and a
 * result that holds what the contract says: a user without white space,
 * a password without line ends or edge white space, both from the text. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "deliver/mta.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
has_any(const char *s, const char *set)
{
	return strpbrk(s, set) != NULL;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* An exact-size copy: a read past size is a sanitizer report. */
	char *in = malloc(size ? size : 1);
	memcpy(in, data, size);
	char *user, *pass;
	if (mta_auth_parse(in, size, &user, &pass) == 0) {
		size_t pl = strlen(pass);
		if (user[0] == '\0' || user[0] == '#' || pl == 0 ||
		    has_any(user, " \t\n") || has_any(pass, "\n") ||
		    pass[0] == ' ' || pass[0] == '\t' || pass[pl - 1] == ' ' ||
		    pass[pl - 1] == '\t' || pass[pl - 1] == '\r' ||
		    memmem(in, size, user, strlen(user)) == NULL ||
		    memmem(in, size, pass, pl) == NULL)
			abort();
		free(user);
		free(pass);
	} else if (user != NULL || pass != NULL) {
		abort();
	}
	free(in);
	return 0;
}
