/* Server-Sent Events, incrementally (WHATWG HTML, "Parsing an event stream"): feed the
 * body of a text/event-stream answer in slices of any size; each complete event comes out
 * through a callback with its type, its data lines joined with \n and the last event id.
 * Lines end with CRLF, LF or CR (also when a CRLF is split between slices); ':' lines are
 * comments; a leading BOM is skipped; an event still open when the stream ends is not
 * dispatched (cs_sse_partial says whether there was one). The bytes held for one event
 * are bounded. Streams OpenAI-style chat completions (`data: {…}` … `data: [DONE]`). */
#ifndef CS_SSE_H
#define CS_SSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/buf.h"

#define CS_SSE_MAX_EVENT_DEFAULT                                                                   \
    (256u << 10) /* bytes held for one event (its lines, data,                                     \
                    type and id), when init gets 0 */

/* One event; views valid during the callback only. */
typedef struct cs_sse_event {
    const char *type; /* "message" unless an `event:` line named it */
    size_t type_len;
    const char *data; /* the data lines joined with \n (may hold NULs; NUL-terminated) */
    size_t data_len;
    const char *id; /* the last `id:` seen in the stream, this event's or an earlier one's */
    size_t id_len;
} cs_sse_event;

/* Returns < 0 to stop: cs_sse_feed returns that value and takes no more. Must not free the
 * parser. */
typedef int (*cs_sse_fn)(void *data, const cs_sse_event *ev);

typedef struct cs_sse {
    int64_t retry_ms; /* the last valid `retry:` (the server's reconnection time), or -1 */
    /* private */
    cs_buf line, data, type, id;
    size_t max;
    int err;      /* once < 0, every feed returns it */
    bool cr;      /* the last byte was a CR: an LF right after it ends nothing */
    bool started; /* past the first line (a BOM is skipped only there) */
} cs_sse;

/* `max_event`: bytes held for one event (0: CS_SSE_MAX_EVENT_DEFAULT). */
void cs_sse_init(cs_sse *p, size_t max_event);
void cs_sse_free(cs_sse *p);
/* Parses `n` bytes, calling `fn` for each event completed. Returns n, or < 0: CS_ELIMIT
 * when an event holds more than max_event bytes (the stream cannot be read on), or what
 * `fn` returned. After an error every call returns it. */
ssize_t cs_sse_feed(cs_sse *p, const char *buf, size_t n, cs_sse_fn fn, void *data);
/* Whether the bytes fed so far end inside an event (a line or fields not yet dispatched):
 * at the end of the stream, that event was cut off. */
bool cs_sse_partial(const cs_sse *p);

#endif
