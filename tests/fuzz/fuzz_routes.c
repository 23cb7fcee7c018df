/* The routes file parser and lookups over what it accepts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "deliver/routes.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct smalt_conf *conf;
	char err[512];
	if (conf == NULL) {
		static const char text[] = "hostname = mx.example.org\n"
					   "relayhost = [smart.example]:587\n";
		conf = conf_parse_buffer("fuzz", text, sizeof(text) - 1, NULL,
					 0, err, sizeof(err));
		if (conf == NULL)
			abort();
	}
	char *text = malloc(size ? size : 1);
	memcpy(text, data, size);
	struct routes *r =
	    routes_parse_buffer("fuzz", text, size, err, sizeof(err));
	free(text);
	if (r == NULL)
		return err[0] == '\0' ? (abort(), 0) : 0;
	static const char *const domains[] = {"example.com", "a.example.com",
					      "localhost",   "mx.example.org",
					      "x.y.z",	     "",
					      "EXAMPLE.COM."};
	for (size_t i = 0; i < sizeof(domains) / sizeof(domains[0]); i++) {
		const struct route *rt = routes_lookup(r, conf, domains[i]);
		if (rt->channel == CHANNEL_PIPE) {
			char **argv = route_pipe_argv(rt, "s@x", "%r@y");
			route_argv_free(argv);
		}
	}
	routes_free(r);
	return 0;
}
