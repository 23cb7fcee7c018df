#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "common/util.h"
#include "queue/queue.h"

/* The id is the arrival time in microseconds shifted left by 12 bits,
 * plus a counter for ids made in the same microsecond. 64 bits as 16 hex
 * digits sort the same as numbers, so a directory listing sorted by name
 * is in arrival order. Uniqueness across processes comes from creating
 * msg/ID with O_EXCL, not from here. */
static _Atomic uint64_t last_id;

void
queue_id_new(char out[QUEUE_ID_LEN + 1])
{
	uint64_t want = now_usec() << 12;
	uint64_t prev = atomic_load(&last_id);
	uint64_t next;
	do {
		next = want > prev ? want : prev + 1;
	} while (!atomic_compare_exchange_weak(&last_id, &prev, next));
	snprintf(out, QUEUE_ID_LEN + 1, "%016llX", (unsigned long long)next);
}

int
queue_id_valid(const char *s)
{
	size_t i;
	for (i = 0; i < QUEUE_ID_LEN; i++) {
		char c = s[i];
		if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'F')))
			return 0;
	}
	return s[i] == '\0';
}
