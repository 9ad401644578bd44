#include "testutil.h"

#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/log.h"

const char *tu_data_path(const char *name)
{
    static char path[4096];
    const char *dir = getenv("CS_TEST_DATA");
    snprintf(path, sizeof path, "%s/%s", dir ? dir : "tests/data", name);
    return path;
}

uint8_t *tu_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *p = malloc((size_t)n + 1);
    if (p && fread(p, 1, (size_t)n, f) != (size_t)n) {
        free(p);
        p = NULL;
    }
    fclose(f);
    if (p) {
        p[n] = 0;
        *len = (size_t)n;
    }
    return p;
}

static cs_buf captured = CS_BUF_INIT(1 << 20);

static void capture(enum cs_log_level level, const char *line, void *data)
{
    (void)level;
    (void)data;
    cs_buf_puts(&captured, line);
    cs_buf_putc(&captured, '\n');
}

void tu_log_capture_start(void)
{
    cs_buf_reset(&captured);
    cs_log_set_sink(capture, NULL);
}

void tu_log_capture_stop(void)
{
    cs_log_set_sink(NULL, NULL);
}

int tu_log_contains(const char *needle)
{
    int n = 0;
    for (const char *p = captured.data; p && (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

uint64_t tu_rand(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

size_t tu_rand_below(uint64_t *state, size_t n)
{
    return n ? (size_t)(tu_rand(state) % n) : 0;
}

char *tu_mkdtemp(const char *prefix)
{
    char tmpl[256];
    snprintf(tmpl, sizeof tmpl, "/tmp/%s-XXXXXX", prefix);
    return mkdtemp(tmpl) ? strdup(tmpl) : NULL;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void tu_rmtree(const char *path)
{
    nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int tu_env_open(tu_env *e, const char *prefix)
{
    *e = (tu_env){.dir = NULL};
    if (uv_loop_init(&e->loop) < 0) return -1;
    if (cs_mailbox_open(&e->mb, &e->loop) < 0 || !(e->dir = tu_mkdtemp(prefix))) return -1;
    tu_log_capture_start();
    return 0;
}

int tu_env_close(tu_env *e)
{
    tu_log_capture_stop();
    cs_mailbox_close(e->mb);
    uv_run(&e->loop, UV_RUN_NOWAIT);
    int rc = uv_loop_close(&e->loop);
    if (e->dir) tu_rmtree(e->dir);
    free(e->dir);
    return rc;
}

const char *tu_path_in(const tu_env *e, const char *name)
{
    static char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", e->dir, name);
    return path;
}

static void tick(uv_timer_t *t)
{
    (void)t;
}

bool tu_run_until(uv_loop_t *loop, bool (*done)(void *data), void *data, unsigned timeout_ms)
{
    uv_timer_t timer;
    uv_timer_init(loop, &timer);
    uv_timer_start(&timer, tick, 10, 10);
    uv_update_time(loop);
    uint64_t deadline = uv_now(loop) + timeout_ms;
    bool ok;
    while (!(ok = done(data)) && uv_now(loop) < deadline) uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&timer, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return ok;
}

/* Sets the soft limit, or puts back the one the process started with (value < 0). */
static void set_soft_limit(int resource, long long value)
{
    static struct rlimit first[RLIM_NLIMITS];
    static bool saved[RLIM_NLIMITS];
    struct rlimit rl;
    assert_int_equal(getrlimit(resource, &rl), 0);
    if (!saved[resource]) {
        first[resource] = rl;
        saved[resource] = true;
    }
    rl.rlim_cur = value < 0 ? first[resource].rlim_cur : (rlim_t)value;
    assert_int_equal(setrlimit(resource, &rl), 0);
}

void tu_limit_file_size(long long bytes)
{
    signal(SIGXFSZ, SIG_IGN);
    set_soft_limit(RLIMIT_FSIZE, bytes);
}

void tu_limit_open_files(int n)
{
    if (n == 0) {
        /* A new descriptor takes the lowest free number, and none may reach the limit:
         * with the limit there, nothing more opens (those above stay usable). */
        n = open("/dev/null", O_RDONLY | O_CLOEXEC);
        assert_true(n >= 0);
        close(n);
    }
    set_soft_limit(RLIMIT_NOFILE, n);
}
