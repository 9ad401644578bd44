/* How the STT engines' unit tests open a session: as the caller of a test call, its
 * results going to the test's own callbacks. */
#ifndef CS_TEST_STT_SESSION_H
#define CS_TEST_STT_SESSION_H

#include "stt/stt.h"

/* Where a test collects a session's results (cs_stt_session_opts has the contract). */
typedef struct tu_stt_callbacks {
    void (*on_segment)(void *data, const cs_stt_segment *seg);
    void (*on_error)(void *data, int err, const char *why);
    void (*on_closed)(void *data);
} tu_stt_callbacks;

/* Opens a session of engine `e` (of `ops`) with `grammar` or `keywords` (or neither),
 * results to `cb` with `data`. What ops->open returns. */
static inline int tu_stt_open(const cs_stt_ops *ops, cs_stt *e, const tu_stt_callbacks *cb,
                              void *data, const char *grammar, const char *keywords,
                              cs_stt_session **out)
{
    cs_stt_session_opts o = {.label = "CAtest/caller",
                             .grammar = grammar,
                             .keywords = keywords,
                             .on_segment = cb->on_segment,
                             .on_error = cb->on_error,
                             .on_closed = cb->on_closed,
                             .data = data};
    return ops->open(e, &o, out);
}

#endif
