/* sendmail, mailq, newaliases (SPEC §2). Local injection through
 * maildrop/ is not in this version: rather than pretend, every mode says
 * so and exits EX_TEMPFAIL, which callers such as cron treat as "try
 * again later", so no caller believes its mail was queued. */
#include <stdio.h>
#include <string.h>
#include <sysexits.h>

int
main(int argc, char **argv)
{
	const char *name = argc > 0 ? strrchr(argv[0], '/') : NULL;
	name = name ? name + 1 : (argc > 0 ? argv[0] : "sendmail");
	fprintf(stderr,
		"%s: local mail injection is not available in this version "
		"of smalt; nothing was queued\n",
		name);
	return EX_TEMPFAIL;
}
