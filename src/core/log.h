/* Leveled logging: one family for the whole program. The level is checked before
 * formatting; the context of the call being processed (call=CA… stream=MZ…) is appended
 * to every line logged while it is set; a sink hook lets tests capture lines. */
#ifndef CS_LOG_H
#define CS_LOG_H

#include <stdarg.h>

enum cs_log_level { CS_LOG_DEBUG = 0, CS_LOG_INFO = 1, CS_LOG_WARN = 2, CS_LOG_ERROR = 3 };

/* What a line is about. Strings are borrowed: they must outlive the time it is set. */
typedef struct cs_log_ctx {
    const char *call;   /* CallSid or NULL */
    const char *stream; /* StreamSid or NULL */
} cs_log_ctx;

/* Receives each formatted line (no trailing newline). */
typedef void (*cs_log_sink_fn)(enum cs_log_level level, const char *line, void *data);

extern enum cs_log_level cs_log_min;

#define cs_log(level, ...)                                                                         \
    do {                                                                                           \
        if ((level) >= cs_log_min) cs_log_write((level), __VA_ARGS__);                             \
    } while (0)
#define cs_debug(...) cs_log(CS_LOG_DEBUG, __VA_ARGS__)
#define cs_info(...)  cs_log(CS_LOG_INFO, __VA_ARGS__)
#define cs_warn(...)  cs_log(CS_LOG_WARN, __VA_ARGS__)
#define cs_error(...) cs_log(CS_LOG_ERROR, __VA_ARGS__)

void cs_log_write(enum cs_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* "debug", "info", "warn", "error" → level; -1 if unknown. */
int cs_log_level_parse(const char *name);
/* Default sink is stderr; NULL restores it. */
void cs_log_set_sink(cs_log_sink_fn fn, void *data);
/* Context for this thread's following lines; returns the previous one. NULL clears. */
const cs_log_ctx *cs_log_set_ctx(const cs_log_ctx *ctx);

#endif
