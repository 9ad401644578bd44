/* An agent's voice (agent/voice.h) on a real two-way stream, with a speech engine the test
 * drives by hand: each sentence's audio and text go to the utterance it was queued for,
 * also when the next utterance is begun while it is still being made (a reply broken off,
 * then the apology); an utterance abandoned keeps its complete sentences only. */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include "agent/voice.h"
#include "call/call.h"
#include "call/talk.h"
#include "core/err.h"

/* ---- a speech engine the test runs by hand ---- */

#define JOBS_MAX 8

struct cs_tts_job {
    cs_tts_opts o;
    char text[256];
    bool cancelled, done;
};

static struct cs_tts_job jobs[JOBS_MAX];
static size_t njobs;

static int hand_speak(cs_tts *e, const cs_tts_opts *o, cs_tts_job **out)
{
    (void)e;
    if (njobs == JOBS_MAX || o->len >= sizeof jobs[0].text) return CS_EFULL;
    cs_tts_job *j = &jobs[njobs++];
    memset(j, 0, sizeof *j);
    j->o = *o;
    memcpy(j->text, o->text, o->len);
    *out = j;
    return 0;
}

static void hand_cancel(cs_tts_job *j)
{
    j->cancelled = true;
}

static const cs_tts_ops hand = {.name = "hand", .speak = hand_speak, .cancel = hand_cancel};

/* The engine makes job k: 40 ms of audio, then its sentence, then the end. */
static void make(size_t k)
{
    cs_tts_job *j = &jobs[k];
    assert_false(j->cancelled || j->done);
    uint8_t ulaw[320];
    memset(ulaw, 0x7F, sizeof ulaw);
    j->o.on_audio(j->o.data, ulaw, sizeof ulaw);
    j->o.on_sentence(j->o.data, j->text, strlen(j->text), NULL, 0, 40);
    j->done = true;
    j->o.on_done(j->o.data, 0);
}

/* ---- an agent that is only a voice ---- */

typedef struct voiced {
    cs_agent base;
    cs_voice voice;
} voiced;

static char full[4][128]; /* by utterance: all of its text, as a clear reports it */

static int v_open(cs_agent **out, cs_stream *s, const cs_agent_env *env)
{
    (void)s, (void)env;
    voiced *v = calloc(1, sizeof *v);
    cs_voice_init(&v->voice, &v->base, &hand, NULL);
    *out = &v->base;
    return 0;
}

static void v_cleared(cs_agent *a, const cs_heard *h, enum cs_clear_why why)
{
    (void)a, (void)why;
    if (h->utt < 4) snprintf(full[h->utt], sizeof full[0], "%.*s", (int)h->full_len, h->full);
}

static void v_close(cs_agent *a)
{
    cs_voice_free(&((voiced *)a)->voice);
    cs_agent_closed(a);
    free(a);
}

static const cs_agent_ops voice_agent = {
    .name = "voice",
    .speaks_text = true,
    .open = v_open,
    .cleared = v_cleared,
    .close = v_close,
};

static const cs_agent_ops *agent_for(void *data, const cs_pevent *start)
{
    (void)data, (void)start;
    return &voice_agent;
}

static int sink_media(void *data, const uint8_t *ulaw, size_t n)
{
    (void)data, (void)ulaw, (void)n;
    return 0;
}

static int sink_mark(void *data, cs_str name)
{
    (void)data, (void)name;
    return 0;
}

static int sink_clear(void *data)
{
    (void)data;
    return 0;
}

static uint64_t clock_ms(void)
{
    return 1000000;
}

static void sentence_goes_to_its_own_utterance(void **state)
{
    (void)state;
    cs_calls calls;
    cs_calls_init(&calls, NULL);
    calls.clock_ms = clock_ms;
    calls.talk.agent_for = agent_for;
    cs_stream_sink sink = {sink_media, sink_mark, sink_clear, NULL, NULL};
    cs_pevent start = {.type = CS_PEV_START,
                       .seq = 1,
                       .stream_id = CS_STR("MZ1"),
                       .start = {.account_id = CS_STR("AC1"),
                                 .call_id = CS_STR("CA1"),
                                 .stream_id = CS_STR("MZ1"),
                                 .tracks = CS_TRACK_BIT(CS_TRACK_INBOUND),
                                 .encoding = CS_STR("audio/x-mulaw"),
                                 .sample_rate = 8000,
                                 .channels = 1}};
    cs_stream *s = NULL;
    assert_int_equal(cs_stream_begin(&calls, &start, CS_MODE_TWO_WAY, true, &sink, NULL, NULL, &s),
                     0);
    cs_voice *v = &((voiced *)s->agent)->voice;
    njobs = 0;
    memset(full, 0, sizeof full);

    /* A reply breaks off in its second sentence while its first is being made. */
    assert_int_equal(cs_voice_feed(v, "Well, let me see. Hmm", 21), 0);
    assert_int_equal(njobs, 1);
    assert_string_equal(jobs[0].text, "Well, let me see.");
    uint32_t reply = v->utt;
    assert_int_equal(cs_voice_abandon(v), 0);
    /* The apology: a new utterance, queued behind the sentence still being made. */
    assert_int_equal(cs_voice_say(v, "Sorry.", 6), 0);
    uint32_t apology = v->utt;
    assert_int_not_equal(apology, reply);
    assert_int_equal(njobs, 1);
    make(0);
    assert_int_equal(njobs, 2); /* "Hmm" was dropped: the apology is next */
    assert_string_equal(jobs[1].text, "Sorry.");
    make(1);
    assert_false(cs_voice_busy(v));

    /* Each utterance carries its own text (a clear reports all of it). */
    assert_int_equal(cs_stream_clear(s, CS_CLEAR_AGENT), 0);
    assert_string_equal(full[reply], "Well, let me see.");
    assert_string_equal(full[apology], "Sorry.");
    cs_stream_end(s, CS_END_HANGUP);
    cs_calls_free(&calls, CS_END_SHUTDOWN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sentence_goes_to_its_own_utterance),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
