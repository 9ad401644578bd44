/* The echo agent: every frame the caller sends goes straight back, one utterance per
 * ECHO_MARK_MS of audio (each ends with a mark), so a call hears itself and marks
 * measure playback. It cannot be interrupted: it would cut itself off. */
#include <stdlib.h>

#include "agent/agent.h"
#include "core/err.h"
#include "core/log.h"

typedef struct echo {
    cs_agent base;
    uint64_t per_utt; /* bytes of audio per utterance */
    uint64_t in_utt;  /* bytes in the current one */
    uint32_t utt;     /* 0: none open */
} echo;

static int echo_open(cs_agent **out, cs_stream *s, const cs_agent_env *env)
{
    (void)s;
    echo *e = calloc(1, sizeof *e);
    if (!e) return -ENOMEM;
    e->per_utt = (uint64_t)env->cfg->echo_mark_ms * CS_FRAMES_PER_MS;
    *out = &e->base;
    return 0;
}

static void echo_audio(cs_agent *a, uint64_t pos, const uint8_t *ulaw, size_t n)
{
    (void)pos;
    echo *e = (echo *)a;
    int rc = 0;
    if (!e->utt && (rc = cs_stream_say_begin(a->stream, &e->utt)) < 0) {
        cs_warn("echo: cannot begin an utterance: %s", cs_strerror(rc));
        e->utt = 0;
        return;
    }
    if ((rc = cs_stream_say_audio(a->stream, e->utt, ulaw, n)) < 0) {
        cs_warn("echo: audio refused: %s", cs_strerror(rc));
        return;
    }
    e->in_utt += n;
    if (e->in_utt < e->per_utt) return;
    rc = cs_stream_say_end(a->stream, e->utt);
    if (rc < 0) cs_warn("echo: cannot end utterance %u: %s", e->utt, cs_strerror(rc));
    e->utt = 0;
    e->in_utt = 0;
}

static void echo_close(cs_agent *a)
{
    cs_agent_closed(a);
    free(a);
}

const cs_agent_ops cs_agent_echo = {
    .name = "echo",
    .help = "sends the caller's audio back, with a mark every ECHO_MARK_MS",
    .open = echo_open,
    .audio = echo_audio,
    .close = echo_close,
};
