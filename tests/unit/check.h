/* A minimal test harness: CHECK records a failure and goes on, so one run
 * reports every broken case; check_done prints "N passed, N failed". */
#ifndef SMALT_CHECK_H
#define SMALT_CHECK_H

#include <stdio.h>
#include <string.h>

static int check_passed, check_failed;

#define CHECK(cond)                                                            \
	do {                                                                   \
		if (cond) {                                                    \
			check_passed++;                                        \
		} else {                                                       \
			check_failed++;                                        \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, \
				__LINE__, #cond);                              \
		}                                                              \
	} while (0)

#define CHECK_STR(a, b)                                                        \
	do {                                                                   \
		const char *check_a_ = (a), *check_b_ = (b);                   \
		if (check_a_ != NULL && check_b_ != NULL &&                    \
		    strcmp(check_a_, check_b_) == 0) {                         \
			check_passed++;                                        \
		} else {                                                       \
			check_failed++;                                        \
			fprintf(stderr,                                        \
				"%s:%d: CHECK_STR failed: %s == \"%s\", "      \
				"want \"%s\"\n",                               \
				__FILE__, __LINE__, #a,                        \
				check_a_ ? check_a_ : "(null)",                \
				check_b_ ? check_b_ : "(null)");               \
		}                                                              \
	} while (0)

#define CHECK_CONTAINS(s, sub)                                                 \
	do {                                                                   \
		const char *s_ = (s), *sub_ = (sub);                           \
		if (s_ != NULL && strstr(s_, sub_) != NULL) {                  \
			check_passed++;                                        \
		} else {                                                       \
			check_failed++;                                        \
			fprintf(stderr,                                        \
				"%s:%d: CHECK_CONTAINS failed: \"%s\" does "   \
				"not contain \"%s\"\n",                        \
				__FILE__, __LINE__, s_ ? s_ : "(null)", sub_); \
		}                                                              \
	} while (0)

static inline int
check_done(void)
{
	printf("%d passed, %d failed\n", check_passed, check_failed);
	return check_failed == 0 && check_passed > 0 ? 0 : 1;
}

#endif
