/* Helpers shared by the unit tests (cmocka). */
#ifndef CS_TESTUTIL_H
#define CS_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

/* Path under tests/data (CS_TEST_DATA); returns a static buffer. */
const char *tu_data_path(const char *name);
/* Reads a whole file; caller frees. NULL if it cannot. */
uint8_t *tu_read_file(const char *path, size_t *len);
/* Captures log lines into a buffer tests can search. */
void tu_log_capture_start(void);
void tu_log_capture_stop(void);
/* Whether a captured line contains `needle`. */
int tu_log_contains(const char *needle);

#endif
