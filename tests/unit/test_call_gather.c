/* Gather conversations (call/gather.h) on a real loop with a scripted agent: the first
 * answer holds the greeting, a turn's words and keys reach the agent and its reply
 * answers it, a hang-up ends the conversation, answers are bounded (every piece kept
 * has text, the rest is counted), and refusals say why (no agent, full, unknown call,
 * an answer awaited already, keys that are not keys). */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "call/gather.h"
#include "call/talk.h"
#include "core/err.h"

typedef struct tagent {
    cs_agent base;
} tagent;

static struct {
    size_t utts;    /* what start says: this many utterances … */
    size_t utt_len; /* … of this many bytes */
    char heard[256];
    size_t heard_len;
    char keys[64];
} script;

static void say(cs_stream *s, const char *text, size_t n)
{
    uint32_t utt;
    assert_int_equal(cs_stream_say_begin(s, &utt), 0);
    cs_stream_say_text(s, utt, text, n);
    cs_stream_say_end(s, utt);
}

static int ta_open(cs_agent **out, cs_stream *s, const cs_agent_env *env)
{
    (void)s, (void)env;
    tagent *a = calloc(1, sizeof *a);
    *out = &a->base;
    return a ? 0 : -ENOMEM;
}

static void ta_start(cs_agent *a)
{
    char text[4096];
    memset(text, 'x', sizeof text);
    for (size_t i = 0; i < script.utts; i++)
        say(a->stream, text, script.utt_len < sizeof text ? script.utt_len : sizeof text);
}

static void ta_transcript(cs_agent *a, const cs_transcript *t)
{
    snprintf(script.heard, sizeof script.heard, "%s", t->text);
    script.heard_len = strlen(t->text);
    char reply[300];
    int n = snprintf(reply, sizeof reply, "You said %s.", t->text);
    say(a->stream, reply, n < (int)sizeof reply ? (size_t)n : sizeof reply - 1);
}

static void ta_dtmf(cs_agent *a, char digit)
{
    size_t n = strlen(script.keys);
    if (n + 1 < sizeof script.keys) script.keys[n] = digit;
    if (digit == '#') {
        say(a->stream, "Goodbye.", 8);
        cs_stream_hangup(a->stream, true);
    }
}

static void ta_close(cs_agent *a)
{
    cs_agent_closed(a);
    free(a);
}

static const cs_agent_ops test_agent = {
    .name = "test",
    .speaks_text = true,
    .open = ta_open,
    .start = ta_start,
    .transcript = ta_transcript,
    .dtmf = ta_dtmf,
    .close = ta_close,
};

static const cs_agent_ops audio_agent = {
    .name = "audio",
    .open = ta_open,
    .close = ta_close,
};

static bool no_agent, audio_only;

static const cs_agent_ops *agent_for(void *data, const cs_pevent *start)
{
    (void)data, (void)start;
    return no_agent ? NULL : audio_only ? &audio_agent : &test_agent;
}

typedef struct fixture {
    uv_loop_t loop;
    cs_calls calls;
    cs_gather *g;
} fixture;

/* The last answer, copied. */
static struct {
    int n;
    enum cs_gather_next next;
    size_t nitems;
    char items[CS_GATHER_ITEMS_MAX][CS_GATHER_TEXT_MAX + 1];
    bool late;
} got;

static void on_reply(void *data, const cs_gather_reply *r)
{
    (void)data;
    got.n++;
    got.next = r->next;
    got.nitems = r->nitems;
    got.late = r->late;
    for (size_t i = 0; i < r->nitems; i++)
        snprintf(got.items[i], sizeof got.items[i], "%s", r->items[i].text);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    uv_loop_init(&f->loop);
    cs_calls_init(&f->calls, NULL);
    f->calls.talk.agent_for = agent_for;
    assert_int_equal(cs_calls_talk_start(&f->calls, &f->loop), 0);
    cs_gather_opts o = {.max = 2, .reply_ms = 3000, .idle_ms = 60000, .max_ms = 600000};
    assert_int_equal(cs_gather_new(&f->g, &f->calls, &f->loop, &o), 0);
    memset(&script, 0, sizeof script);
    memset(&got, 0, sizeof got);
    no_agent = audio_only = false;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    cs_gather_stop(f->g);
    cs_calls_free(&f->calls, CS_END_SHUTDOWN);
    cs_talk_free(&f->calls);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    cs_gather_free(f->g);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f);
    return 0;
}

static int open_call(fixture *f, const char *call)
{
    cs_pevent start = {.type = CS_PEV_START, .seq = -1};
    start.start.call_id = cs_str_of(call);
    start.start.account_id = CS_STR("AC1");
    start.start.from = CS_STR("+1555");
    start.start.to = CS_STR("+1666");
    return cs_gather_open(f->g, &start, "test", on_reply, NULL);
}

/* Runs the loop until `n` answers came (or 5 s). */
static void wait_answers(fixture *f, int n)
{
    uint64_t end = uv_now(&f->loop) + 5000;
    while (got.n < n && uv_now(&f->loop) < end) uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(got.n, n);
}

static void a_conversation(void **state)
{
    fixture *f = *state;
    script.utts = 1;
    script.utt_len = 5;
    assert_int_equal(open_call(f, "CA1"), 0);
    assert_int_equal(got.n, 0); /* never inside the call that asked */
    wait_answers(f, 1);
    assert_int_equal(got.next, CS_GATHER_LISTEN);
    assert_int_equal(got.nitems, 1);
    assert_string_equal(got.items[0], "xxxxx");
    assert_true(cs_gather_has(f->g, "CA1"));

    assert_int_equal(cs_gather_turn(f->g, "CA1", "hello there", 0.9, NULL, on_reply, NULL), 0);
    assert_int_equal(cs_gather_turn(f->g, "CA1", "again", 0.9, NULL, on_reply, NULL), CS_ESTATE);
    wait_answers(f, 2);
    assert_string_equal(script.heard, "hello there");
    assert_int_equal(got.nitems, 1);
    assert_string_equal(got.items[0], "You said hello there.");

    assert_int_equal(cs_gather_turn(f->g, "CA1", NULL, -1, "12x", on_reply, NULL), -EINVAL);
    assert_int_equal(cs_gather_turn(f->g, "CA1", NULL, -1, "12#", on_reply, NULL), 0);
    wait_answers(f, 3);
    assert_string_equal(script.keys, "12#");
    assert_int_equal(got.next, CS_GATHER_HANGUP);
    assert_string_equal(got.items[0], "Goodbye.");
    assert_false(cs_gather_has(f->g, "CA1")); /* over */
    assert_int_equal(cs_gather_turn(f->g, "CA1", "hi", 1, NULL, on_reply, NULL), CS_ENOTFOUND);
    const cs_gather_stats *st = cs_gather_stats_get(f->g);
    assert_int_equal(st->turns, 2);
    assert_int_equal(st->answers[CS_GATHER_LISTEN], 2);
    assert_int_equal(st->answers[CS_GATHER_HANGUP], 1);
    assert_int_equal(st->unknown, 1);
}

/* More than an answer holds: pieces up to the bound, none left empty (the third's NUL
 * fits, its text does not: it is taken back). */
static void answers_are_bounded(void **state)
{
    fixture *f = *state;
    script.utts = 3;
    script.utt_len = CS_GATHER_TEXT_MAX / 2 - 2; /* two fit (with their NULs), not three */
    assert_int_equal(open_call(f, "CA2"), 0);
    wait_answers(f, 1);
    assert_int_equal(got.nitems, 2);
    for (size_t i = 0; i < got.nitems; i++) assert_int_equal(strlen(got.items[i]), script.utt_len);
    assert_int_equal(cs_gather_stats_get(f->g)->dropped, 1);

    script.utts = CS_GATHER_ITEMS_MAX + 2; /* more pieces than an answer holds */
    script.utt_len = 1;
    assert_int_equal(open_call(f, "CA3"), 0);
    wait_answers(f, 2);
    assert_int_equal(got.nitems, CS_GATHER_ITEMS_MAX);
    assert_int_equal(cs_gather_stats_get(f->g)->dropped, 3);
}

static void refusals(void **state)
{
    fixture *f = *state;
    no_agent = true;
    assert_int_equal(open_call(f, "CA4"), CS_ENOTFOUND);
    assert_int_equal(cs_gather_active(f->g), 0);
    no_agent = false;
    assert_int_equal(open_call(f, "CA5"), 0);
    assert_int_equal(open_call(f, "CA5"), CS_ESTATE);
    assert_int_equal(open_call(f, "CA6"), 0);
    assert_int_equal(open_call(f, "CA7"), CS_ELIMIT); /* max 2 */
    assert_int_equal(cs_gather_stats_get(f->g)->refused_full, 1);
    wait_answers(f, 2);
    /* The call ends: its conversation goes. */
    cs_gather_end(f->g, "CA5");
    assert_false(cs_gather_has(f->g, "CA5"));
    assert_int_equal(open_call(f, "CA7"), 0);
}

/* Neither side says anything: after CS_GATHER_SILENT_MAX such answers, the line is hung
 * up; a turn with words in between starts the count again. */
static void silence_hangs_up(void **state)
{
    fixture *f = *state;
    assert_int_equal(open_call(f, "CA9"), 0); /* the agent says nothing first */
    wait_answers(f, 1);
    assert_int_equal(got.next, CS_GATHER_LISTEN);
    assert_int_equal(cs_gather_turn(f->g, "CA9", NULL, -1, NULL, on_reply, NULL), 0);
    wait_answers(f, 2);
    assert_int_equal(got.next, CS_GATHER_LISTEN);
    assert_int_equal(cs_gather_turn(f->g, "CA9", "hello", 1, NULL, on_reply, NULL), 0);
    wait_answers(f, 3); /* words: the count starts again */
    for (int i = 0; i < CS_GATHER_SILENT_MAX - 1; i++) {
        assert_int_equal(cs_gather_turn(f->g, "CA9", "", -1, NULL, on_reply, NULL), 0);
        wait_answers(f, 4 + i);
        assert_int_equal(got.next, CS_GATHER_LISTEN);
    }
    assert_int_equal(cs_gather_turn(f->g, "CA9", NULL, -1, NULL, on_reply, NULL), 0);
    wait_answers(f, 3 + CS_GATHER_SILENT_MAX);
    assert_int_equal(got.next, CS_GATHER_HANGUP);
    assert_false(cs_gather_has(f->g, "CA9"));
    assert_int_equal(cs_gather_stats_get(f->g)->silent, 1);
}

/* An agent that speaks audio only cannot talk in turns. */
static void audio_agent_refused(void **state)
{
    fixture *f = *state;
    audio_only = true;
    assert_int_equal(open_call(f, "CA10"), CS_ENOTFOUND);
    assert_int_equal(cs_gather_active(f->g), 0);
}

/* Words too long are cut between characters. */
static void long_words_are_cut(void **state)
{
    fixture *f = *state;
    assert_int_equal(open_call(f, "CA8"), 0);
    wait_answers(f, 1);
    static char words[CS_GATHER_SPEECH_MAX + 100];
    memset(words, 'a', sizeof words - 1);
    memcpy(words + CS_GATHER_SPEECH_MAX - 1, "\xc3\xa9", 2); /* é across the bound */
    assert_int_equal(cs_gather_turn(f->g, "CA8", words, 1, NULL, on_reply, NULL), 0);
    wait_answers(f, 2);
    assert_int_equal(script.heard_len, CS_GATHER_SPEECH_MAX - 1); /* before the é */
    assert_int_equal(cs_gather_stats_get(f->g)->dropped, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(a_conversation, setup, teardown),
        cmocka_unit_test_setup_teardown(answers_are_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(long_words_are_cut, setup, teardown),
        cmocka_unit_test_setup_teardown(silence_hangs_up, setup, teardown),
        cmocka_unit_test_setup_teardown(audio_agent_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
