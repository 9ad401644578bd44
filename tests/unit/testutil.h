/* Helpers shared by the unit tests (cmocka). */
#ifndef CS_TESTUTIL_H
#define CS_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <uv.h>

#include "core/worker.h"

#define TU_WAIT_MS 10000 /* how long a test waits for work done on other threads */

/* Path under tests/data (CS_TEST_DATA); returns a static buffer. */
const char *tu_data_path(const char *name);
/* Reads a whole file; caller frees. NULL if it cannot. */
uint8_t *tu_read_file(const char *path, size_t *len);
/* Captures log lines into a buffer tests can search. */
void tu_log_capture_start(void);
void tu_log_capture_stop(void);
/* How many times `needle` was logged since the capture started (0: never). */
int tu_log_contains(const char *needle);

/* A new empty directory /tmp/<prefix>-XXXXXX; caller frees the path. NULL if it cannot. */
char *tu_mkdtemp(const char *prefix);
/* Removes `path` and everything under it. */
void tu_rmtree(const char *path);
/* What most fixtures start from: a loop with a mailbox, a new temp directory and the log
 * captured. open: 0 or -1; close: uv_loop_close's result (0 unless a handle was left
 * open), after removing the directory. */
typedef struct tu_env {
    uv_loop_t loop;
    cs_mailbox *mb;
    char *dir;
} tu_env;
int tu_env_open(tu_env *e, const char *prefix);
int tu_env_close(tu_env *e);
/* `name` in the env's directory; returns a static buffer. */
const char *tu_path_in(const tu_env *e, const char *name);
/* Runs `loop` until `done(data)` holds, checking at least every 10 ms, for at most
 * `timeout_ms`; returns the last `done(data)`, so a test fails instead of hanging. */
bool tu_run_until(uv_loop_t *loop, bool (*done)(void *data), void *data, unsigned timeout_ms);
/* Faults, for this process: writes past `bytes` of a file fail with EFBIG as on a full
 * disk (RLIMIT_FSIZE, with SIGXFSZ ignored); opening files fails with EMFILE when no
 * descriptor number under `n` is free (RLIMIT_NOFILE; 0: nothing more opens from now).
 * -1 lifts either limit. */
void tu_limit_file_size(long long bytes);
void tu_limit_open_files(int n);
/* Seeded pseudo-random numbers (splitmix64), so randomized tests repeat exactly. */
uint64_t tu_rand(uint64_t *state);
/* A value in [0, n); 0 when n is 0. */
size_t tu_rand_below(uint64_t *state, size_t n);

#endif
