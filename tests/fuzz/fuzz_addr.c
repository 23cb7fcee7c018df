/* Fuzzes RFC 5321 path parsing. The first byte is the ADDR_ALLOW_* flags,
 * the rest the path. Anything the parser accepts must respect the length
 * limits and survive a format and reparse unchanged; anything else
 * aborts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/addr.h"

#define ALL_FLAGS                                                              \
	(ADDR_ALLOW_NULL | ADDR_ALLOW_POSTMASTER | ADDR_ALLOW_UTF8 |           \
	 ADDR_ALLOW_NOBRACKETS)

static void
check_invariants(const struct mailaddr *a, size_t endp, size_t len, int flags)
{
	if (strlen(a->local) > ADDR_LOCAL_MAX ||
	    strlen(a->domain) > ADDR_DOMAIN_MAX || endp > len)
		abort();

	char formatted[ADDR_PATH_MAX + 1];
	addr_format(a, formatted, sizeof(formatted));
	size_t flen = strlen(formatted);
	/* With its brackets it must still fit in a path. */
	if (flen + 2 > ADDR_PATH_MAX)
		abort();

	char bracketed[ADDR_PATH_MAX + 1];
	bracketed[0] = '<';
	memcpy(bracketed + 1, formatted, flen);
	bracketed[flen + 1] = '>';

	struct mailaddr again;
	size_t endp2;
	const char *err = NULL;
	if (addr_parse_path(bracketed, flen + 2, flags, &again, &endp2, &err) !=
	    0)
		abort();
	if (endp2 != flen + 2 || strcmp(again.local, a->local) != 0 ||
	    strcmp(again.domain, a->domain) != 0)
		abort();

	/* The bare form is a mailbox as config files write it. */
	if (addr_parse_mailbox(formatted, flags, &again, &err) != 0 ||
	    strcmp(again.local, a->local) != 0 ||
	    strcmp(again.domain, a->domain) != 0)
		abort();
	if (addr_check_domain(a->domain, strlen(a->domain), flags, &err) != 0 &&
	    a->domain[0] != '\0')
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	int flags = data[0] & ALL_FLAGS;
	size_t len = size - 1;

	/* Exactly sized and not NUL-terminated, so that ASan catches any
	 * read past len. */
	char *path = malloc(len ? len : 1);
	if (path == NULL)
		return 0;
	memcpy(path, data + 1, len);

	struct mailaddr a;
	size_t endp = 0;
	const char *err = NULL;
	if (addr_parse_path(path, len, flags, &a, &endp, &err) == 0)
		check_invariants(&a, endp, len, flags);
	else if (err == NULL)
		abort();

	char *text = malloc(len + 1);
	if (text != NULL) {
		memcpy(text, path, len);
		text[len] = '\0';
		err = NULL;
		if (addr_parse_mailbox(text, flags, &a, &err) == 0)
			check_invariants(&a, strlen(text), strlen(text), flags);
		else if (err == NULL)
			abort();
		addr_check_domain(text, strlen(text), flags, &err);
		free(text);
	}
	free(path);
	return 0;
}
