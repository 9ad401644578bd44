#include "core/log.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define CS_LOG_LINE_MAX 2048

enum cs_log_level cs_log_min = CS_LOG_INFO;

static cs_log_sink_fn sink_fn;
static void *sink_data;
static pthread_mutex_t sink_lock = PTHREAD_MUTEX_INITIALIZER;
static _Thread_local const cs_log_ctx *cur_ctx;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

int cs_log_level_parse(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (strcasecmp(name, level_names[i]) == 0) return i;
    if (strcasecmp(name, "warning") == 0) return CS_LOG_WARN;
    return -1;
}

void cs_log_set_sink(cs_log_sink_fn fn, void *data)
{
    pthread_mutex_lock(&sink_lock);
    sink_fn = fn;
    sink_data = data;
    pthread_mutex_unlock(&sink_lock);
}

const cs_log_ctx *cs_log_set_ctx(const cs_log_ctx *ctx)
{
    const cs_log_ctx *prev = cur_ctx;
    cur_ctx = ctx;
    return prev;
}

void cs_log_write(enum cs_log_level level, const char *fmt, ...)
{
    /* The context is on every line: it is formatted first and a long message gives way. */
    char ctx_text[256];
    int c = 0;
    const cs_log_ctx *ctx = cur_ctx;
    if (ctx && ctx->call) c = snprintf(ctx_text, sizeof ctx_text, " call=%s", ctx->call);
    if (ctx && ctx->stream && c < (int)sizeof ctx_text - 1)
        c += snprintf(ctx_text + c, sizeof ctx_text - c, " stream=%s", ctx->stream);
    if (c >= (int)sizeof ctx_text) c = sizeof ctx_text - 1;

    char line[CS_LOG_LINE_MAX];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = (int)strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
    n += snprintf(line + n, sizeof line - n, ".%03ldZ %-5s ", ts.tv_nsec / 1000000,
                  level_names[level]);
    int room = (int)sizeof line - c; /* for the message and its NUL */
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, room - n, fmt, ap);
    va_end(ap);
    n = m < 0 ? n : (n + m >= room ? room - 1 : n + m);
    memcpy(line + n, ctx_text, (size_t)c);
    n += c;
    line[n] = '\0';

    pthread_mutex_lock(&sink_lock);
    if (sink_fn) {
        sink_fn(level, line, sink_data);
    } else {
        line[n] = '\n';
        fwrite(line, 1, (size_t)n + 1, stderr);
    }
    pthread_mutex_unlock(&sink_lock);
}
