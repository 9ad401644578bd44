/* Agents talk back into a two-way stream: they hear the caller's audio, DTMF and mark
 * echoes, and answer through cs_stream_send_media / _mark / cs_stream_clear. One agent
 * instance per stream; backends are ops tables chosen by AGENT. */
#ifndef CS_AGENT_H
#define CS_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "call/call.h"
#include "core/config.h"

typedef struct cs_agent cs_agent;

typedef struct cs_agent_ops {
    const char *name;
    const char *help;
    /* An instance for `s` (a two-way stream). 0 or a negative code. */
    int (*open)(cs_agent **out, cs_stream *s, const cs_config *cfg);
    /* Caller audio at frame `pos` of the call's timeline. */
    void (*audio)(cs_agent *a, uint64_t pos, const uint8_t *ulaw, size_t n);
    void (*dtmf)(cs_agent *a, char digit); /* may be NULL */
    /* A mark we sent came back: `played`, or discarded by a clear. May be NULL. */
    void (*mark)(cs_agent *a, cs_str name, bool played);
    /* The stream is ending; free everything. */
    void (*close)(cs_agent *a);
} cs_agent_ops;

/* Base of every instance; backends embed it first. */
struct cs_agent {
    const cs_agent_ops *ops;
    cs_stream *stream;
};

extern const cs_agent_ops cs_agent_echo;

/* By AGENT name; "none" gives NULL with 0 (listen only), an unknown name CS_ECONFIG. */
int cs_agent_find(const char *name, const cs_agent_ops **out);
/* "none, echo" for messages. */
const char *cs_agent_names(void);

#endif
