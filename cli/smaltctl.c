/* smaltctl: the admin's view of a running smaltd (SPEC §2). This build
 * answers `status` from the spool's lock file; the commands that need the
 * daemon's control socket come with the delivery side. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sysexits.h>
#include <unistd.h>

#include "common/util.h"
#include "conf/conf.h"

static void usage(void) __attribute__((noreturn));

static void
usage(void)
{
	fprintf(stderr,
		"usage: smaltctl [-f FILE] [-o key=value]... COMMAND\n"
		"commands: status, show queue|message ID|hosts|stats "
		"[--json], flush [ID|HOST],\n"
		"          hold ID, release ID, remove ID, reload, stop\n");
	exit(EX_USAGE);
}

/* smaltd holds an exclusive flock on spool_dir/smaltd.pid while it
 * runs; a stale file left by a crash holds no lock. */
static int
cmd_status(const struct smalt_conf *conf)
{
	char *path = xasprintf("%s/smaltd.pid", conf->spool_dir);
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		printf("smaltd is not running (%s: %s)\n", path,
		       strerror(errno));
		free(path);
		return 1;
	}
	free(path);
	if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
		close(fd);
		printf("smaltd is not running\n");
		return 1;
	}
	char buf[32] = "";
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	printf("smaltd is running (pid %s)\n", buf[0] ? buf : "unknown");
	return 0;
}

int
main(int argc, char **argv)
{
	const char *config = NULL;
	char **overrides = xcalloc((size_t)argc, sizeof(char *));
	size_t n_overrides = 0;
	int c;
	while ((c = getopt(argc, argv, "+f:o:")) != -1) {
		switch (c) {
		case 'f':
			config = optarg;
			break;
		case 'o':
			overrides[n_overrides++] = optarg;
			break;
		default:
			usage();
		}
	}
	if (optind >= argc)
		usage();
	char err[CONF_ERRLEN];
	struct smalt_conf *conf =
	    conf_load(config, overrides, n_overrides, err, sizeof(err));
	free(overrides);
	if (conf == NULL) {
		fprintf(stderr, "smaltctl: %s\n", err);
		return EX_CONFIG;
	}
	const char *cmd = argv[optind];
	int rc;
	if (strcmp(cmd, "status") == 0 && optind + 1 == argc) {
		rc = cmd_status(conf);
	} else if (strcmp(cmd, "status") == 0) {
		usage();
	} else {
		static const char *const later[] = {
		    "show",   "flush",	"hold", "release",
		    "remove", "reload", "stop"};
		int known = 0;
		for (size_t i = 0; i < SMALT_NELEM(later); i++)
			known |= strcmp(cmd, later[i]) == 0;
		if (!known)
			usage();
		fprintf(stderr,
			"smaltctl: %s: not available in this version: smaltd "
			"has no control socket yet\n",
			cmd);
		rc = EX_UNAVAILABLE;
	}
	conf_free(conf);
	return rc;
}
