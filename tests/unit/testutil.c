#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    return captured.data && strstr(captured.data, needle) != NULL;
}
