/* Shared by the C tests: temporary folders and files. */
#ifndef SMALT_TESTUTIL_H
#define SMALT_TESTUTIL_H

#include <stddef.h>

/* A new empty folder under $SMALT_TEST_TMP (or /tmp); malloc'd path. */
char *test_mkdtemp(const char *tag);
/* rm -rf */
int test_rm_rf(const char *path);
/* Writes a whole file; 0 or -1. */
int test_write_file(const char *path, const void *data, size_t len);
/* Reads a whole file (malloc'd, NUL-terminated), NULL on error. */
char *test_read_file(const char *path, size_t *len);
/* Number of entries in a folder (not . and ..), -1 on error. */
long test_count_dir(const char *path);

#endif
