/* A relay stream (text both ways) with the real call layer and an agent's voice: what
 * the agent says goes out as tokens and ends with a last one; the caller's words reach
 * observers and the agent as transcripts; an interrupt cuts the utterance to what was
 * heard and stops the voice; an utterance not cut is heard whole once the caller speaks
 * again; the provider's greeting is the agent's first utterance; hanging up sends `end`
 * with the hand-off; no audio is taken. */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include "agent/agent.h"
#include "agent/voice.h"
#include "call/talk.h"
#include "core/err.h"

typedef struct vagent {
    cs_agent base;
    cs_voice voice;
} vagent;

static struct world {
    cs_config cfg;
    cs_agent_env aenv;
    cs_calls calls;
    cs_stream *s;
    vagent *agent;
    char sent[2048]; /* every outbound message, one per line: type|text|last|interruptible */
    size_t nsent;
    char said[512];  /* observers' `said`: the last line, with cut */
    char heard[512]; /* the agent's played/cleared text */
    uint64_t heard_ms;
    int played, cleared, closes;
    char tx[512]; /* transcripts observers got: "i:text" interim, "f:text" final */
    char agent_tx[512];
    char events[1024]; /* relay events' details */
} w;

static int sink_relay(void *data, const cs_relay_out *m)
{
    (void)data;
    static const char *const types[] = {"", "text", "play", "digits", "end"};
    size_t at = strlen(w.sent);
    snprintf(w.sent + at, sizeof w.sent - at, "%s|%.*s|%d|%d\n", types[m->type], (int)m->text.n,
             m->text.p, m->last, m->interruptible);
    w.nsent++;
    return 0;
}

static void sink_close(void *data)
{
    (void)data;
    w.closes++;
}

static int va_open(cs_agent **out, cs_stream *s, const cs_agent_env *env)
{
    (void)s;
    vagent *a = calloc(1, sizeof *a);
    if (!a) return -ENOMEM;
    cs_voice_init(&a->voice, &a->base, env->tts_ops, env->tts);
    w.agent = a;
    *out = &a->base;
    return 0;
}

static void va_played(cs_agent *a, const cs_heard *h)
{
    (void)a;
    w.played++;
    snprintf(w.heard, sizeof w.heard, "%s", h->full);
}

static void va_cleared(cs_agent *a, const cs_heard *h, enum cs_clear_why why)
{
    (void)why;
    w.cleared++;
    w.heard_ms = h->heard_ms;
    snprintf(w.heard, sizeof w.heard, "%s", h->text);
    cs_voice_stop(&((vagent *)a)->voice);
}

static void va_transcript(cs_agent *a, const cs_transcript *t)
{
    (void)a;
    size_t at = strlen(w.agent_tx);
    snprintf(w.agent_tx + at, sizeof w.agent_tx - at, "%c:%s ", t->final ? 'f' : 'i', t->text);
}

static void va_close(cs_agent *a)
{
    cs_voice_free(&((vagent *)a)->voice);
    cs_agent_closed(a);
    free(a);
    w.agent = NULL;
}

static const cs_agent_ops voice_agent = {
    .name = "voice",
    .speaks_text = true,
    .interruptible = true,
    .open = va_open,
    .transcript = va_transcript,
    .played = va_played,
    .cleared = va_cleared,
    .close = va_close,
};

static const cs_agent_ops *agent_for(void *data, const cs_pevent *start)
{
    (void)data, (void)start;
    return &voice_agent;
}

static void on_said(void *o, const cs_stream *s, const cs_heard *h)
{
    (void)o, (void)s;
    snprintf(w.said, sizeof w.said, "%s%s", h->text, h->cut ? " (cut)" : "");
}

static void on_transcript(void *o, const cs_stream *s, const cs_transcript *t)
{
    (void)o, (void)s;
    size_t at = strlen(w.tx);
    snprintf(w.tx + at, sizeof w.tx - at, "%c:%s ", t->final ? 'f' : 'i', t->text);
}

static void on_event(void *o, const cs_call *call, const cs_stream *s, enum cs_event_type type,
                     int64_t at_ms, const char *detail)
{
    (void)o, (void)call, (void)s, (void)at_ms;
    if (type != CS_EVENT_RELAY || !detail) return;
    size_t at = strlen(w.events);
    snprintf(w.events + at, sizeof w.events - at, "%s\n", detail);
}

static int begin(const char *greeting)
{
    memset(&w, 0, sizeof w);
    w.aenv = (cs_agent_env){.cfg = &w.cfg}; /* no TTS: the provider speaks */
    cs_calls_init(&w.calls, NULL);
    w.calls.talk.agent_for = agent_for;
    w.calls.talk.env = &w.aenv;
    cs_call_observer o = {.said = on_said, .heard = on_transcript, .event = on_event};
    cs_calls_observe(&w.calls, &o);
    cs_kv params[1] = {{CS_STR("Greeting"), cs_str_of(greeting ? greeting : "")}};
    cs_pevent start = {
        .type = CS_PEV_START,
        .seq = -1,
        .stream_id = CS_STR("VX1"),
        .start = {.account_id = CS_STR("AC1"),
                  .call_id = CS_STR("CA1"),
                  .stream_id = CS_STR("VX1"),
                  .params = params,
                  .nparams = greeting ? 1 : 0,
                  .from = CS_STR("+15550001"),
                  .to = CS_STR("+15550002")},
    };
    cs_stream_sink sink = {.close = sink_close, .relay = sink_relay};
    return cs_stream_begin(&w.calls, &start, CS_MODE_RELAY, false, &sink, NULL, NULL, &w.s);
}

static int setup(void **state)
{
    (void)state;
    return begin(NULL);
}

static int setup_greeting(void **state)
{
    (void)state;
    return begin("Hello, how can I help?");
}

static int teardown(void **state)
{
    (void)state;
    cs_calls_free(&w.calls, CS_END_SHUTDOWN);
    return 0;
}

static void prompt(const char *text, bool last)
{
    cs_pevent ev = {.type = CS_PEV_PROMPT,
                    .seq = -1,
                    .prompt = {.text = cs_str_of(text), .lang = CS_STR("en-US"), .last = last}};
    assert_int_equal(cs_stream_event(w.s, &ev, NULL), 0);
}

static void interrupt(const char *heard, uint64_t ms)
{
    cs_pevent ev = {.type = CS_PEV_INTERRUPT,
                    .seq = -1,
                    .interrupt = {.heard = cs_str_of(heard), .heard_ms = ms}};
    assert_int_equal(cs_stream_event(w.s, &ev, NULL), 0);
}

static void tokens_go_out_and_the_last_ends_the_turn(void **state)
{
    (void)state;
    assert_true(cs_stream_relay(w.s));
    assert_string_equal(w.s->call->from, "+15550001");
    cs_voice *v = &w.agent->voice;
    assert_int_equal(cs_voice_feed(v, "Good ", 5), 0);
    assert_int_equal(cs_voice_feed(v, "morning.", 8), 0);
    assert_true(cs_stream_talking(w.s));
    assert_true(cs_voice_busy(v));
    assert_int_equal(cs_voice_end(v), 0);
    assert_false(cs_stream_talking(w.s));
    assert_string_equal(w.sent, "text|Good |0|1\ntext|morning.|0|1\ntext||1|1\n");
    assert_int_equal(w.played, 0); /* the provider may still be saying it */
    /* The caller's words: interim, then final; the utterance was heard whole. */
    prompt("I would", false);
    assert_int_equal(w.played, 0);
    prompt("I would like tea", true);
    assert_int_equal(w.played, 1);
    assert_string_equal(w.heard, "Good morning.");
    assert_string_equal(w.said, "Good morning.");
    assert_string_equal(w.tx, "i:I would f:I would like tea ");
    assert_string_equal(w.agent_tx, w.tx);
    assert_int_equal(w.s->stats.prompts, 2);
    assert_int_equal(w.s->stats.texts_out, 3);
}

static void an_interrupt_cuts_to_what_was_heard(void **state)
{
    (void)state;
    cs_voice *v = &w.agent->voice;
    const char *text = "Our opening hours are nine to five, Monday to Friday.";
    assert_int_equal(cs_voice_feed(v, text, strlen(text)), 0);
    interrupt("Our opening hours", 1200);
    assert_int_equal(w.cleared, 1);
    assert_string_equal(w.heard, "Our opening hours");
    assert_int_equal(w.heard_ms, 1200);
    assert_string_equal(w.said, "Our opening hours (cut)");
    assert_false(cs_voice_busy(v));
    /* The cut utterance takes nothing more. */
    assert_int_equal(cs_stream_say_text(w.s, 1, " more", 5), CS_ECLOSED);
    assert_int_equal(cs_stream_say_end(w.s, 1), CS_ECLOSED);
    assert_non_null(strstr(w.events, "\"type\":\"interrupt\""));
    assert_non_null(strstr(w.events, "\"heardText\":\"Our opening hours\""));
    assert_int_equal(w.s->stats.interrupts, 1);
    /* An interrupt with nothing in flight is an event only. */
    interrupt("", 0);
    assert_int_equal(w.cleared, 1);
    assert_int_equal(w.s->stats.interrupts, 2);
}

static void no_audio_on_a_relay(void **state)
{
    (void)state;
    uint32_t utt;
    assert_int_equal(cs_stream_say_begin(w.s, &utt), 0);
    uint8_t frame[160] = {0};
    assert_int_equal(cs_stream_say_audio(w.s, utt, frame, sizeof frame), CS_ESTATE);
    assert_int_equal(cs_stream_say_sentence(w.s, utt, "a", 1, NULL, 0), CS_ESTATE);
    assert_int_equal(cs_stream_say_text(w.s, utt + 1, "x", 1), CS_ECLOSED);
    assert_int_equal(cs_stream_say_end(w.s, utt), 0);
    assert_int_equal(cs_stream_say_end(w.s, utt), CS_ECLOSED);
    assert_int_equal(cs_stream_play(w.s, "https://example.com/a.mp3", 2), 0);
    assert_int_equal(cs_stream_send_digits(w.s, "12w#"), 0);
    assert_int_equal(cs_stream_send_digits(w.s, "12x"), -EINVAL);
    assert_non_null(strstr(w.sent, "play|https://example.com/a.mp3|0|1\n"));
    assert_non_null(strstr(w.sent, "digits|12w#|0|0\n"));
}

static void hanging_up_ends_with_the_handoff(void **state)
{
    (void)state;
    cs_voice *v = &w.agent->voice;
    assert_int_equal(cs_stream_handoff(w.s, "{\"reason\":\"done\"}"), 0);
    assert_int_equal(cs_voice_say(v, "Goodbye.", 8), 0);
    assert_int_equal(cs_stream_hangup(w.s, true), 0);
    cs_calls_tick(&w.calls);
    assert_int_equal(w.closes, 1);
    assert_non_null(
        strstr(w.sent, "text|Goodbye.|0|1\ntext||1|1\nend|{\"reason\":\"done\"}|0|0\n"));
    assert_non_null(strstr(w.events, "\"handoffData\":\"{\\\"reason\\\":\\\"done\\\"}\""));
}

static void the_greeting_is_the_first_utterance(void **state)
{
    (void)state;
    uint32_t g = cs_stream_greeting(w.s);
    assert_true(g > 0);
    assert_false(cs_stream_talking(w.s));
    interrupt("Hello, how", 600);
    assert_int_equal(w.cleared, 1);
    assert_string_equal(w.heard, "Hello, how");
    assert_string_equal(w.said, "Hello, how (cut)");
    assert_int_equal(w.nsent, 0); /* the provider said it: nothing was sent */
}

static void the_stream_ends_with_words_in_flight(void **state)
{
    (void)state;
    assert_int_equal(cs_voice_feed(&w.agent->voice, "Half a sen", 10), 0);
    cs_stream_end(w.s, CS_END_STOP);
    assert_null(w.agent);
    assert_string_equal(w.said, "Half a sen (cut)");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(tokens_go_out_and_the_last_ends_the_turn, setup, teardown),
        cmocka_unit_test_setup_teardown(an_interrupt_cuts_to_what_was_heard, setup, teardown),
        cmocka_unit_test_setup_teardown(no_audio_on_a_relay, setup, teardown),
        cmocka_unit_test_setup_teardown(hanging_up_ends_with_the_handoff, setup, teardown),
        cmocka_unit_test_setup_teardown(the_greeting_is_the_first_utterance, setup_greeting,
                                        teardown),
        cmocka_unit_test_setup_teardown(the_stream_ends_with_words_in_flight, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
