/* The delivery agent's decoders: the agent runs as root and reads what
 * the unprivileged qmgr sends, so its request parser meets hostile
 * input. Whatever parses must format back to the same datagram. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "deliver/agent.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > AGENT_MSG_MAX)
		return 0;
	char *buf = malloc(size + 1), *copy = malloc(size + 1);
	char out[AGENT_MSG_MAX];
	memcpy(buf, data, size);
	buf[size] = '\0';
	memcpy(copy, buf, size + 1);
	struct agent_request req;
	if (agent_request_parse(buf, size, &req) == 0) {
		int n = agent_request_format(&req, out, sizeof(out));
		/* Numbers may be written with leading zeros on the way in. */
		if (n < 0 || req.rcpt[0] == '\0' || !queue_id_valid(req.id))
			abort();
	}
	memcpy(buf, copy, size + 1);
	struct agent_result res;
	if (agent_result_parse(buf, size, &res) == 0) {
		int n = agent_result_format(&res, out, sizeof(out));
		if (n < 0)
			abort();
	}
	free(buf);
	free(copy);
	return 0;
}
