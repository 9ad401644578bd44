/* The echo agent: every frame the caller sends goes straight back, with a mark after
 * each ECHO_MARK_MS of audio, so a call hears itself and marks measure playback. */
#include <stdio.h>
#include <stdlib.h>

#include "agent/agent.h"
#include "core/err.h"
#include "core/log.h"

typedef struct echo {
    cs_agent base;
    uint64_t mark_every; /* bytes of audio between marks */
    uint64_t since_mark;
    uint64_t marks;
} echo;

static int echo_open(cs_agent **out, cs_stream *s, const cs_config *cfg)
{
    echo *e = calloc(1, sizeof *e);
    if (!e) return -ENOMEM;
    e->base.ops = &cs_agent_echo;
    e->base.stream = s;
    e->mark_every = (uint64_t)cfg->echo_mark_ms * CS_FRAMES_PER_MS;
    *out = &e->base;
    return 0;
}

static void echo_audio(cs_agent *a, uint64_t pos, const uint8_t *ulaw, size_t n)
{
    (void)pos;
    echo *e = (echo *)a;
    if (cs_stream_send_media(a->stream, ulaw, n) < 0) return;
    e->since_mark += n;
    if (e->since_mark < e->mark_every) return;
    e->since_mark = 0;
    char name[32];
    snprintf(name, sizeof name, "echo-%llu", (unsigned long long)++e->marks);
    int rc = cs_stream_send_mark(a->stream, name);
    if (rc < 0) cs_warn("echo: cannot send mark %s: %s", name, cs_strerror(rc));
}

static void echo_close(cs_agent *a)
{
    free(a);
}

const cs_agent_ops cs_agent_echo = {
    .name = "echo",
    .help = "sends the caller's audio back, with a mark every ECHO_MARK_MS",
    .open = echo_open,
    .audio = echo_audio,
    .close = echo_close,
};
