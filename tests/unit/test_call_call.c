#include "testutil.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audio/g711.h"
#include "audio/recorder.h"
#include "audio/wav.h"
#include "call/call.h"
#include "call/talk.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/worker.h"

#define MAX_SEEN 2048

/* ---- a test observer: every callback, in order ---- */

enum cb {
    CB_CALL_STARTED,
    CB_CALL_ENDED,
    CB_STREAM_STARTED,
    CB_STREAM_ENDED,
    CB_EVENT,
    CB_AUDIO,
    CB_RECORDING,
    CB_SAID
};

typedef struct seen {
    enum cb cb;
    const cs_call *call; /* compared only while the call lives */
    char call_sid[CS_SID_MAX + 1];
    char stream_sid[CS_SID_MAX + 1];
    int what; /* event type, end reason or speaker */
    uint64_t pos, frames;
    size_t n;
    char text[1024]; /* event detail or recording path */
} seen;

typedef struct observer {
    seen seen[MAX_SEEN];
    size_t n;
} observer;

static seen *add(observer *o, enum cb cb, const cs_call *call, const cs_stream *s)
{
    assert_true(o->n < MAX_SEEN);
    seen *e = &o->seen[o->n++];
    memset(e, 0, sizeof *e);
    e->cb = cb;
    e->call = call;
    if (call) snprintf(e->call_sid, sizeof e->call_sid, "%s", call->sid);
    if (s) snprintf(e->stream_sid, sizeof e->stream_sid, "%s", s->sid);
    return e;
}

static void on_call_started(void *o, const cs_call *call)
{
    add(o, CB_CALL_STARTED, call, NULL);
}

static void on_call_ended(void *o, const cs_call *call)
{
    add(o, CB_CALL_ENDED, call, NULL);
}

static void on_stream_started(void *o, const cs_stream *s)
{
    add(o, CB_STREAM_STARTED, s->call, s);
}

static void on_stream_ended(void *o, const cs_stream *s, enum cs_end_reason why)
{
    add(o, CB_STREAM_ENDED, s->call, s)->what = (int)why;
}

static void on_event(void *o, const cs_call *call, const cs_stream *s, enum cs_event_type type,
                     int64_t at_ms, const char *detail)
{
    assert_true(at_ms > 0);
    seen *e = add(o, CB_EVENT, call, s);
    e->what = (int)type;
    if (detail) {
        assert_true(strlen(detail) < sizeof e->text);
        snprintf(e->text, sizeof e->text, "%s", detail);
    }
}

static void on_audio(void *o, const cs_stream *s, enum cs_speaker who, uint64_t pos,
                     const uint8_t *ulaw, size_t n)
{
    assert_non_null(ulaw);
    seen *e = add(o, CB_AUDIO, s->call, s);
    e->what = (int)who;
    e->pos = pos;
    e->n = n;
}

static void on_recording(void *o, const char *call_sid, const char *path, uint64_t frames)
{
    seen *e = add(o, CB_RECORDING, NULL, NULL);
    snprintf(e->call_sid, sizeof e->call_sid, "%s", call_sid);
    snprintf(e->text, sizeof e->text, "%s", path);
    e->frames = frames;
}

static void on_said(void *o, const cs_stream *s, const cs_heard *h)
{
    seen *e = add(o, CB_SAID, s->call, s);
    snprintf(e->text, sizeof e->text, "%s", h->text);
    e->pos = h->start_pos;
}

/* The callback of kind `cb` seen `index` times before it, or NULL. */
static const seen *nth(const observer *o, enum cb cb, size_t index)
{
    for (size_t i = 0; i < o->n; i++)
        if (o->seen[i].cb == cb && index-- == 0) return &o->seen[i];
    return NULL;
}

/* The audio of `who` heard `index` times before it, or NULL. */
static const seen *nth_audio(const observer *o, enum cs_speaker who, size_t index)
{
    for (size_t i = 0; i < o->n; i++)
        if (o->seen[i].cb == CB_AUDIO && o->seen[i].what == (int)who && index-- == 0)
            return &o->seen[i];
    return NULL;
}

static size_t count(const observer *o, enum cb cb)
{
    size_t n = 0;
    for (size_t i = 0; i < o->n; i++) n += o->seen[i].cb == cb;
    return n;
}

static size_t count_events(const observer *o, enum cs_event_type type)
{
    size_t n = 0;
    for (size_t i = 0; i < o->n; i++)
        n += o->seen[i].cb == CB_EVENT && o->seen[i].what == (int)type;
    return n;
}

static const seen *last_event(const observer *o, enum cs_event_type type)
{
    for (size_t i = o->n; i-- > 0;)
        if (o->seen[i].cb == CB_EVENT && o->seen[i].what == (int)type) return &o->seen[i];
    fail_msg("no %s event", cs_event_label(type));
    return NULL;
}

/* ---- reading event details ---- */

static cJSON *parse(const char *text)
{
    cJSON *j = cJSON_Parse(text);
    if (!cJSON_IsObject(j)) fail_msg("not a JSON object: %s", text);
    return j;
}

static const char *jstr(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsString(v)) fail_msg("\"%s\" is not a string", key);
    return v->valuestring;
}

static double jnum(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v)) fail_msg("\"%s\" is not a number", key);
    return v->valuedouble;
}

static const cJSON *jobj(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsObject(v)) fail_msg("\"%s\" is not an object", key);
    return v;
}

/* ---- a fake socket ---- */

typedef struct sink {
    size_t media, media_bytes, marks, clears, closes;
    cs_stream *stream; /* ended by close, when the test sets it */
    char last_mark[CS_MARK_NAME_MAX + 1];
    int fail; /* returned by every call when set */
} sink;

static int sink_media(void *data, const uint8_t *ulaw, size_t n)
{
    sink *k = data;
    (void)ulaw;
    if (k->fail) return k->fail;
    k->media++;
    k->media_bytes += n;
    return 0;
}

static int sink_mark(void *data, cs_str name)
{
    sink *k = data;
    if (k->fail) return k->fail;
    k->marks++;
    cs_str_copy(k->last_mark, sizeof k->last_mark, name);
    return 0;
}

static void sink_close(void *data)
{
    sink *k = data;
    k->closes++;
    if (k->stream) cs_stream_end(k->stream, CS_END_HANGUP);
    k->stream = NULL;
}

static int sink_clear(void *data)
{
    sink *k = data;
    if (k->fail) return k->fail;
    k->clears++;
    return 0;
}

/* ---- a test agent: it notes what it is told; tests speak through the stream ---- */

static struct talk_log {
    int opened, closed, played, cleared, marks, timers, speech_on, speech_off;
    int fail_open;                 /* open returns it when set */
    bool defer_close;              /* close leaves the agent to the test (in `deferred`) */
    bool end_on_clear;             /* cleared ends the utterance, as a voice stopping does */
    bool not_interruptible;
    cs_agent *deferred;
    uint32_t utt;                  /* the test's current utterance */
    size_t audio_bytes;
    char digits[16], transcript[64], heard[256];
    uint64_t heard_ms, last_mark_pos;
    bool cut, last_mark_played;
    int why;
} talk_log;

static int ta_open(cs_agent **out, cs_stream *s, const cs_agent_env *env)
{
    (void)s;
    (void)env;
    if (talk_log.fail_open) return talk_log.fail_open;
    *out = calloc(1, sizeof **out);
    talk_log.opened++;
    return *out ? 0 : -ENOMEM;
}

static void ta_audio(cs_agent *a, uint64_t pos, const uint8_t *ulaw, size_t n)
{
    (void)a, (void)pos, (void)ulaw;
    talk_log.audio_bytes += n;
}

static void ta_speech(cs_agent *a, bool started, uint64_t pos)
{
    (void)a, (void)pos;
    if (started)
        talk_log.speech_on++;
    else
        talk_log.speech_off++;
}

static void ta_transcript(cs_agent *a, const cs_transcript *t)
{
    (void)a;
    snprintf(talk_log.transcript, sizeof talk_log.transcript, "%s", t->text);
}

static void ta_dtmf(cs_agent *a, char digit)
{
    (void)a;
    size_t n = strlen(talk_log.digits);
    if (n + 1 < sizeof talk_log.digits) talk_log.digits[n] = digit;
}

static void ta_mark(cs_agent *a, const cs_mark_echo *m)
{
    (void)a;
    talk_log.marks++;
    talk_log.last_mark_pos = m->pos;
    talk_log.last_mark_played = m->played;
}

static void note_heard(const cs_heard *h)
{
    snprintf(talk_log.heard, sizeof talk_log.heard, "%s", h->text);
    talk_log.heard_ms = h->heard_ms;
    talk_log.cut = h->cut;
}

static void ta_played(cs_agent *a, const cs_heard *h)
{
    (void)a;
    talk_log.played++;
    note_heard(h);
}

static void ta_cleared(cs_agent *a, const cs_heard *h, enum cs_clear_why why)
{
    talk_log.cleared++;
    talk_log.why = (int)why;
    note_heard(h);
    if (talk_log.end_on_clear && a->stream) cs_stream_say_end(a->stream, h->utt);
}

static void ta_timer(cs_agent *a)
{
    (void)a;
    talk_log.timers++;
}

static void ta_close(cs_agent *a)
{
    talk_log.closed++;
    if (talk_log.defer_close) {
        talk_log.deferred = a;
        return;
    }
    cs_agent_closed(a);
    free(a);
}

#define TEST_AGENT_OPS(interrupt)                                                                  \
    {                                                                                              \
        .name = "test", .speaks_text = true, .interruptible = interrupt, .open = ta_open,          \
        .audio = ta_audio, .speech = ta_speech, .transcript = ta_transcript, .dtmf = ta_dtmf,      \
        .mark = ta_mark, .played = ta_played, .cleared = ta_cleared, .timer = ta_timer,            \
        .close = ta_close,                                                                         \
    }
static const cs_agent_ops test_agent = TEST_AGENT_OPS(true);
static const cs_agent_ops stubborn_agent = TEST_AGENT_OPS(false);

static const cs_agent_ops *agent_for(void *data, const cs_pevent *start)
{
    (void)data, (void)start;
    return talk_log.not_interruptible ? &stubborn_agent : &test_agent;
}

/* ---- fixture ---- */

/* The calls' monotonic clock, in the tests' hands: it stands still unless moved. */
static uint64_t now_ms;

static uint64_t test_clock(void)
{
    return now_ms;
}

typedef struct fixture {
    cs_calls calls;
    observer obs;
    sink sink;
    cs_stream_sink stream_sink;
    uv_loop_t loop;
    cs_mailbox *mb;
    char *dir;
    cs_recorders *recorders;
} fixture;

static int setup_with(void **state, bool record)
{
    fixture *f = calloc(1, sizeof *f);
    *state = f;
    if (!f || uv_loop_init(&f->loop) < 0 || cs_mailbox_open(&f->mb, &f->loop) < 0) return -1;
    if (record) {
        f->dir = tu_mkdtemp("cs-test-call");
        if (!f->dir || cs_recorders_new(&f->recorders, f->mb, f->dir, 1) < 0) return -1;
    }
    cs_calls_init(&f->calls, f->recorders);
    now_ms = 1000000;
    f->calls.clock_ms = test_clock;
    memset(&talk_log, 0, sizeof talk_log);
    f->calls.talk.agent_for = agent_for;
    cs_call_observer o = {
        .call_started = on_call_started,
        .call_ended = on_call_ended,
        .stream_started = on_stream_started,
        .stream_ended = on_stream_ended,
        .event = on_event,
        .audio = on_audio,
        .recording = on_recording,
        .said = on_said,
        .data = &f->obs,
    };
    f->stream_sink = (cs_stream_sink){sink_media, sink_mark, sink_clear, sink_close, &f->sink};
    return cs_calls_observe(&f->calls, &o);
}

static int setup(void **state)
{
    return setup_with(state, false);
}

static int setup_recording(void **state)
{
    return setup_with(state, true);
}

static int teardown(void **state)
{
    fixture *f = *state;
    tu_limit_file_size(-1); /* if a test failed while it limited them */
    tu_limit_open_files(-1);
    cs_calls_free(&f->calls, CS_END_SHUTDOWN);
    cs_recorders_free(f->recorders);
    cs_mailbox_close(f->mb);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    int rc = uv_loop_close(&f->loop);
    if (f->dir) tu_rmtree(f->dir);
    free(f->dir);
    free(f);
    return rc;
}

/* ---- driving streams ---- */

static const cs_kv from_to[] = {
    {CS_STR("From"), CS_STR("+15550001")},
    {CS_STR("To"), CS_STR("+15550002")},
    {CS_STR("lang"), CS_STR("en \"US\"")},
};

static cs_pevent start_of(const char *call_sid, const char *stream_sid, unsigned tracks)
{
    return (cs_pevent){
        .type = CS_PEV_START,
        .seq = 1,
        .stream_id = cs_str_of(stream_sid),
        .start = {.account_id = CS_STR("AC1"),
                  .call_id = cs_str_of(call_sid),
                  .stream_id = cs_str_of(stream_sid),
                  .tracks = tracks,
                  .encoding = CS_STR("audio/x-mulaw"),
                  .sample_rate = 8000,
                  .channels = 1,
                  .params = from_to,
                  .nparams = sizeof from_to / sizeof *from_to},
    };
}

static int try_begin(fixture *f, const cs_pevent *start, enum cs_stream_mode mode, cs_stream **s)
{
    return cs_stream_begin(&f->calls, start, mode, true, &f->stream_sink, f, NULL, s);
}

static cs_stream *begin(fixture *f, const char *call_sid, const char *stream_sid,
                        enum cs_stream_mode mode)
{
    cs_pevent start = start_of(call_sid, stream_sid, CS_TRACK_BIT(CS_TRACK_INBOUND));
    cs_stream *s = NULL;
    assert_int_equal(try_begin(f, &start, mode, &s), 0);
    assert_non_null(s);
    return s;
}

static void media(cs_stream *s, enum cs_track track, int64_t seq, uint64_t ts_ms,
                  const uint8_t *ulaw, size_t n)
{
    cs_pevent ev = {.type = CS_PEV_MEDIA,
                    .seq = seq,
                    .media = {.track = track, .timestamp_ms = ts_ms, .payload = ulaw, .len = n}};
    assert_int_equal(cs_stream_event(s, &ev, NULL), 0);
}

static int echo(cs_stream *s, const char *name, bool *played)
{
    cs_pevent ev = {.type = CS_PEV_MARK, .seq = -1, .mark = {.name = cs_str_of(name)}};
    cs_stream_outcome out = {0};
    int rc = cs_stream_event(s, &ev, &out);
    if (rc == 0 && played) *played = out.played;
    return rc;
}

static const uint8_t frame[160]; /* 20 ms of μ-law, where the content does not matter */

/* ---- starting ---- */

static void begin_creates_the_call(void **state)
{
    fixture *f = *state;
    cs_stream *s = begin(f, "CA1", "MZ1", CS_MODE_TWO_WAY);
    cs_call *call = cs_calls_call(&f->calls, cs_str_of("CA1"));
    assert_non_null(call);
    assert_ptr_equal(s->call, call);
    assert_ptr_equal(cs_calls_stream(&f->calls, cs_str_of("MZ1")), s);
    assert_int_equal(cs_calls_active(&f->calls), 1);
    assert_int_equal(cs_calls_streams(&f->calls), 1);
    assert_string_equal(call->sid, "CA1");
    assert_string_equal(call->account_sid, "AC1");
    assert_string_equal(call->from, "+15550001");
    assert_string_equal(call->to, "+15550002");
    assert_int_equal(call->nparams, 3);
    assert_true(cs_str_eqz(call->params[2].value, "en \"US\""));
    assert_int_equal(s->offset_ms, 0); /* the first stream starts the call's timeline */
    assert_int_equal(f->calls.stats.calls_total, 1);
    assert_int_equal(f->calls.stats.streams_total, 1);

    assert_int_equal(f->obs.n, 4); /* and the agent's start, after */
    assert_int_equal(f->obs.seen[3].what, CS_EVENT_AGENT);
    assert_int_equal(f->obs.seen[0].cb, CB_CALL_STARTED);
    assert_ptr_equal(f->obs.seen[0].call, call);
    assert_int_equal(f->obs.seen[1].cb, CB_STREAM_STARTED);
    assert_string_equal(f->obs.seen[1].stream_sid, "MZ1");
    const seen *e = &f->obs.seen[2];
    assert_int_equal(e->cb, CB_EVENT);
    assert_int_equal(e->what, CS_EVENT_START);
    assert_string_equal(e->stream_sid, "MZ1");
    cJSON *j = parse(e->text);
    assert_string_equal(jstr(j, "streamSid"), "MZ1");
    assert_string_equal(jstr(j, "mode"), "two-way");
    const cJSON *tracks = cJSON_GetObjectItemCaseSensitive(j, "tracks");
    assert_int_equal(cJSON_GetArraySize(tracks), 1);
    assert_string_equal(cJSON_GetArrayItem(tracks, 0)->valuestring, "inbound");
    const cJSON *fmt = jobj(j, "mediaFormat");
    assert_string_equal(jstr(fmt, "encoding"), "audio/x-mulaw");
    assert_int_equal(jnum(fmt, "sampleRate"), 8000);
    assert_int_equal(jnum(fmt, "channels"), 1);
    const cJSON *params = jobj(j, "customParameters");
    assert_int_equal(cJSON_GetArraySize(params), 3);
    assert_string_equal(jstr(params, "From"), "+15550001");
    assert_string_equal(jstr(params, "To"), "+15550002");
    assert_string_equal(jstr(params, "lang"), "en \"US\"");
    cJSON_Delete(j);

    cs_pevent start =
        start_of("CA2", "MZ2", CS_TRACK_BIT(CS_TRACK_INBOUND) | CS_TRACK_BIT(CS_TRACK_OUTBOUND));
    start.start.nparams = 0;
    assert_int_equal(try_begin(f, &start, CS_MODE_ONE_WAY, &s), 0);
    assert_null(s->call->from);
    j = parse(last_event(&f->obs, CS_EVENT_START)->text);
    assert_string_equal(jstr(j, "mode"), "one-way");
    tracks = cJSON_GetObjectItemCaseSensitive(j, "tracks");
    assert_int_equal(cJSON_GetArraySize(tracks), 2);
    assert_string_equal(cJSON_GetArrayItem(tracks, 1)->valuestring, "outbound");
    assert_int_equal(cJSON_GetArraySize(jobj(j, "customParameters")), 0);
    cJSON_Delete(j);
    assert_int_equal(cs_calls_active(&f->calls), 2);
}

static void streams_of_a_call_share_it(void **state)
{
    fixture *f = *state;
    cs_stream *s[CS_CALL_MAX_STREAMS];
    char sid[16];
    for (int i = 0; i < CS_CALL_MAX_STREAMS; i++) {
        snprintf(sid, sizeof sid, "MZ%d", i);
        s[i] = begin(f, "CA1", sid, CS_MODE_ONE_WAY);
        assert_ptr_equal(s[i]->call, s[0]->call);
        assert_true(s[i]->offset_ms >= 0);
    }
    assert_int_equal(s[0]->call->nstreams, CS_CALL_MAX_STREAMS);
    assert_int_equal(cs_calls_active(&f->calls), 1);
    assert_int_equal(cs_calls_streams(&f->calls), CS_CALL_MAX_STREAMS);
    assert_int_equal(count(&f->obs, CB_CALL_STARTED), 1);
    assert_int_equal(count(&f->obs, CB_STREAM_STARTED), CS_CALL_MAX_STREAMS);

    size_t seen_before = f->obs.n;
    cs_pevent start = start_of("CA1", "MZ9", CS_TRACK_BIT(CS_TRACK_INBOUND));
    cs_stream *extra = NULL;
    assert_int_equal(try_begin(f, &start, CS_MODE_ONE_WAY, &extra), CS_ELIMIT);
    assert_null(extra);
    assert_null(cs_calls_stream(&f->calls, cs_str_of("MZ9")));
    assert_int_equal(f->obs.n, seen_before);
    assert_int_equal(f->calls.stats.streams_total, CS_CALL_MAX_STREAMS);
}

static void refused_starts_change_nothing(void **state)
{
    fixture *f = *state;
    begin(f, "CA1", "MZ1", CS_MODE_TWO_WAY);
    size_t seen_before = f->obs.n;
    cs_stream *s = NULL;
    /* The StreamSid is live already, whichever call it names. */
    cs_pevent start = start_of("CA1", "MZ1", CS_TRACK_BIT(CS_TRACK_INBOUND));
    assert_int_equal(try_begin(f, &start, CS_MODE_TWO_WAY, &s), CS_ESTATE);
    start = start_of("CA2", "MZ1", CS_TRACK_BIT(CS_TRACK_INBOUND));
    assert_int_equal(try_begin(f, &start, CS_MODE_TWO_WAY, &s), CS_ESTATE);

    char long_sid[CS_SID_MAX + 2];
    memset(long_sid, 'M', sizeof long_sid - 1);
    long_sid[sizeof long_sid - 1] = '\0';
    start = start_of("CA2", "", CS_TRACK_BIT(CS_TRACK_INBOUND));
    assert_int_equal(try_begin(f, &start, CS_MODE_TWO_WAY, &s), -EINVAL);
    start = start_of("CA2", long_sid, CS_TRACK_BIT(CS_TRACK_INBOUND));
    assert_int_equal(try_begin(f, &start, CS_MODE_TWO_WAY, &s), -EINVAL);
    start = start_of(long_sid, "MZ2", CS_TRACK_BIT(CS_TRACK_INBOUND));
    assert_int_equal(try_begin(f, &start, CS_MODE_TWO_WAY, &s), -EINVAL);
    assert_null(s);

    assert_int_equal(f->obs.n, seen_before);
    assert_int_equal(cs_calls_active(&f->calls), 1);
    assert_int_equal(cs_calls_streams(&f->calls), 1);
    assert_null(cs_calls_call(&f->calls, cs_str_of("CA2")));
}

static void too_many_observers_are_refused(void **state)
{
    fixture *f = *state;
    cs_call_observer quiet = {0}; /* every callback may be NULL */
    for (int i = 1; i < CS_CALL_MAX_OBSERVERS; i++)
        assert_int_equal(cs_calls_observe(&f->calls, &quiet), 0);
    assert_int_equal(cs_calls_observe(&f->calls, &quiet), CS_ELIMIT);
    cs_stream *s = begin(f, "CA1", "MZ1", CS_MODE_TWO_WAY);
    media(s, CS_TRACK_INBOUND, 2, 0, frame, sizeof frame);
    cs_stream_end(s, CS_END_STOP);
    assert_int_equal(count(&f->obs, CB_CALL_ENDED), 1);
}

/* ---- media ---- */

static void media_is_counted_per_track(void **state)
{
    fixture *f = *state;
    cs_pevent start =
        start_of("CA1", "MZ1", CS_TRACK_BIT(CS_TRACK_INBOUND) | CS_TRACK_BIT(CS_TRACK_OUTBOUND));
    cs_stream *s;
    assert_int_equal(try_begin(f, &start, CS_MODE_ONE_WAY, &s), 0);
    media(s, CS_TRACK_INBOUND, 2, 0, frame, 160);
    media(s, CS_TRACK_OUTBOUND, 3, 0, frame, 80);
    media(s, CS_TRACK_INBOUND, 4, 20, frame, 160);
    media(s, CS_TRACK_INBOUND, 5, 40, frame, 100);
    assert_int_equal(s->stats.frames[CS_TRACK_INBOUND], 3);
    assert_int_equal(s->stats.bytes[CS_TRACK_INBOUND], 420);
    assert_int_equal(s->stats.frames[CS_TRACK_OUTBOUND], 1);
    assert_int_equal(s->stats.bytes[CS_TRACK_OUTBOUND], 80);
    assert_int_equal(s->stats.messages, 4);
    assert_int_equal(f->calls.stats.frames_in[CS_TRACK_INBOUND], 3);
    assert_int_equal(f->calls.stats.bytes_in[CS_TRACK_INBOUND], 420);
    assert_int_equal(f->calls.stats.frames_in[CS_TRACK_OUTBOUND], 1);
    assert_int_equal(f->calls.stats.bytes_in[CS_TRACK_OUTBOUND], 80);
    assert_int_equal(s->stats.seq_gaps, 0);
    assert_int_equal(s->stats.ts_gaps, 0);
}

static void sequence_gaps_and_reordering(void **state)
{
    fixture *f = *state;
    cs_stream *s = begin(f, "CA1", "MZ1", CS_MODE_ONE_WAY); /* start was sequence 1 */
    media(s, CS_TRACK_INBOUND, 2, 0, frame, sizeof frame);
    media(s, CS_TRACK_INBOUND, 3, 20, frame, sizeof frame);
    media(s, CS_TRACK_INBOUND, 6, 80, frame, sizeof frame);   /* 4 and 5 missing */
    media(s, CS_TRACK_INBOUND, 5, 60, frame, sizeof frame);   /* late */
    media(s, CS_TRACK_INBOUND, -1, 100, frame, sizeof frame); /* no sequence number */
    media(s, CS_TRACK_INBOUND, 7, 100, frame, sizeof frame);
    cs_pevent dtmf = {.type = CS_PEV_DTMF, .seq = 10, .dtmf = {.digit = '#'}};
    assert_int_equal(cs_stream_event(s, &dtmf, NULL), 0);
    assert_int_equal(s->stats.seq_gaps, 4);
    assert_int_equal(s->stats.seq_reordered, 1);
    assert_int_equal(f->calls.stats.seq_gaps, 4);
    assert_int_equal(s->stats.messages, 7);
}

static void timestamp_jumps_are_gaps(void **state)
{
    fixture *f = *state;
    cs_stream *s = begin(f, "CA1", "MZ1", CS_MODE_ONE_WAY);
    media(s, CS_TRACK_INBOUND, 2, 0, frame, sizeof frame);
    media(s, CS_TRACK_INBOUND, 3, 20, frame, sizeof frame);
    media(s, CS_TRACK_INBOUND, 4, 41, frame, sizeof frame); /* jitter, not a gap */
    assert_int_equal(s->stats.ts_gaps, 0);
    media(s, CS_TRACK_INBOUND, 5, 200, frame, sizeof frame);
    assert_int_equal(s->stats.ts_gaps, 1);
    media(s, CS_TRACK_INBOUND, 6, 220, frame, sizeof frame);
    media(s, CS_TRACK_INBOUND, 3, 100, frame, sizeof frame); /* very late */
    media(s, CS_TRACK_INBOUND, 7, 240, frame, sizeof frame); /* in step with 220 */
    media(s, CS_TRACK_INBOUND, 8, 260, frame, sizeof frame);
    assert_int_equal(s->stats.ts_gaps, 1);
    assert_int_equal(s->heard_end, 280 * CS_FRAMES_PER_MS);
}

static void caller_audio_is_placed_by_timestamp(void **state)
{
    fixture *f = *state;
    cs_stream *s = begin(f, "CA1", "MZ1", CS_MODE_ONE_WAY);
    media(s, CS_TRACK_INBOUND, 2, 0, frame, 160);
    media(s, CS_TRACK_INBOUND, 3, 100, frame, 160);
    media(s, CS_TRACK_INBOUND, 4, 60, frame, 80); /* late: heard_end stays */
    assert_int_equal(s->heard_end, 960);
    assert_int_equal(count(&f->obs, CB_AUDIO), 3);
    static const uint64_t pos[] = {0, 800, 480};
    for (size_t i = 0; i < 3; i++) {
        const seen *a = nth(&f->obs, CB_AUDIO, i);
        assert_int_equal(a->what, CS_SPEAKER_CALLER);
        assert_int_equal(a->pos, pos[i]);
        assert_string_equal(a->stream_sid, "MZ1");
    }
    assert_int_equal(nth(&f->obs, CB_AUDIO, 2)->n, 80);

    /* A later stream of the call sits on the call's timeline at its own offset. */
    cs_pevent start = start_of("CA1", "MZ2", CS_TRACK_BIT(CS_TRACK_OUTBOUND));
    cs_stream *s2;
    assert_int_equal(try_begin(f, &start, CS_MODE_ONE_WAY, &s2), 0);
    media(s2, CS_TRACK_OUTBOUND, 2, 40, frame, 160);
    const seen *a = nth(&f->obs, CB_AUDIO, 3);
    assert_int_equal(a->what, CS_SPEAKER_AGENT);
    assert_int_equal(a->pos, (40 + (uint64_t)s2->offset_ms) * CS_FRAMES_PER_MS);
    assert_int_equal(s2->heard_end, 0); /* only the caller's audio moves "now" */
}

static void dtmf_becomes_an_event(void **state)
{
    fixture *f = *state;
    cs_stream *s = begin(f, "CA1", "MZ1", CS_MODE_ONE_WAY);
    cs_pevent dtmf = {.type = CS_PEV_DTMF, .seq = 2, .dtmf = {.digit = '7'}};
    assert_int_equal(cs_stream_event(s, &dtmf, NULL), 0);
    assert_int_equal(s->stats.dtmf, 1);
    assert_int_equal(f->calls.stats.dtmf, 1);
    const seen *e = last_event(&f->obs, CS_EVENT_DTMF);
    assert_string_equal(e->stream_sid, "MZ1");
    cJSON *j = parse(e->text);
    assert_string_equal(jstr(j, "digit"), "7");
    cJSON_Delete(j);
}

/* ---- talking back ---- */

/* Says `n` bytes of `code` in the test's current utterance (one is begun when there is
 * none, or the last was cleared). */
static int say_code(cs_stream *s, uint8_t code, size_t n)
{
    static uint8_t ulaw[16000];
    assert_true(n <= sizeof ulaw);
    memset(ulaw, code, n);
    if (!talk_log.utt) {
        int rc = cs_stream_say_begin(s, &talk_log.utt);
        if (rc < 0) return rc;
    }
    int rc = cs_stream_say_audio(s, talk_log.utt, ulaw, n);
    if (rc == CS_ECLOSED) {
        talk_log.utt = 0;
        return say_code(s, code, n);
    }
    return rc;
}

static void say(cs_stream *s, uint8_t code, size_t n)
{
    assert_int_equal(say_code(s, code, n), 0);
}

static void ms_pass(cs_calls *calls, uint64_t ms)
{
    for (uint64_t t = 0; t < ms; t += 20) {
        now_ms += ms - t < 20 ? ms - t : 20;
        cs_calls_tick(calls);
    }
}

static void two_way_streams_get_their_agent(void **state)
{
    fixture *f = *state;
    cs_stream *s = begin(f, "CA1", "MZ1", CS_MODE_TWO_WAY);
    assert_non_null(s->agent);
    assert_int_equal(talk_log.opened, 1);
    assert_int_equal(f->calls.talk.ntalkers, 1);
    cJSON *j = parse(last_event(&f->obs, CS_EVENT_AGENT)->text);
    assert_string_equal(jstr(j, "state"), "started");
    assert_string_equal(jstr(j, "agent"), "test");
    cJSON_Delete(j);
    /* The agent hears the caller, keys, and what the transcript says. */
    media(s, CS_TRACK_INBOUND, 2, 0, frame, 160);
    assert_int_equal(talk_log.audio_bytes, 160);
    cs_pevent dtmf = {.type = CS_PEV_DTMF, .seq = -1, .dtmf = {.digit = '7'}};
    assert_int_equal(cs_stream_event(s, &dtmf, NULL), 0);
    assert_string_equal(talk_log.digits, "7");
    cs_transcript t = {.id = 3, .text = "hello", .final = true, .confidence = -1};
    cs_stream_transcript(s, &t);
    assert_string_equal(talk_log.transcript, "hello");
    /* One-way streams listen only. */
    cs_stream *one = begin(f, "CA2", "MZ2", CS_MODE_ONE_WAY);
    assert_null(one->agent);
    uint32_t utt;
    assert_int_equal(cs_stream_say_begin(one, &utt), CS_ESTATE);
    assert_int_equal(cs_stream_clear(one, CS_CLEAR_AGENT), CS_ESTATE);
    cs_stream_end(s, CS_END_STOP);
    assert_int_equal(talk_log.closed, 1);
    assert_int_equal(f->calls.talk.ntalkers, 0);
    assert_int_equal(f->calls.talk.closing, 0);
}

static void an_agent_that_fails_to_start_leaves_the_call_listening(void **state)
{
    fixture *f = *state;
    talk_log.fail_open = -ENOMEM;
    tu_log_capture_start();
    cs_stream *s = begin(f, "CA1", "MZ1", CS_MODE_TWO_WAY);
    tu_log_capture_stop();
    assert_true(tu_log_contains("agent test failed to start"));
    assert_null(s->agent);
    assert_int_equal(f->calls.stats.agent_failures, 1);
    cJSON *j = parse(last_event(&f->obs, CS_EVENT_AGENT)->text);
    assert_string_equal(jstr(j, "state"), "failed");
    cJSON_Delete(j);
    media(s, CS_TRACK_INBOUND, 2, 0, frame, 160);
    assert_int_equal(talk_log.audio_bytes, 0);
}

static void agent_audio_is_paced_ahead_of_playback(void **state)
{
    fixture *f = *state;
    cs_stream *s = begin(f, "CA1", "MZ1", CS_MODE_TWO_WAY);
    say(s, 0x20, 8000); /* one second */
    /* PLAYOUT_LEAD_MS (100 ms) goes at once, in 20 ms frames; the rest stays ours. */
    assert_int_equal(f->sink.media, 5);
    assert_int_equal(f->sink.media_bytes, 800);
    assert_int_equal(cs_stream_unplayed(s), 800);
    assert_int_equal(cs_playout_pending(&s->playout), 7200);
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(nth_audio(&f->obs, CS_SPEAKER_AGENT, i)->pos, i * 160);
    ms_pass(&f->calls, 400);
    assert_int_equal(f->sink.media_bytes, 4000); /* played 400 ms, 100 ms ahead */
    assert_int_equal(cs_stream_unplayed(s), 800);
    ms_pass(&f->calls, 1000);
    assert_int_equal(f->sink.media_bytes, 8000);
    assert_int_equal(cs_playout_pending(&s->playout), 0);
    assert_int_equal(nth_audio(&f->obs, CS_SPEAKER_AGENT, 49)->pos, 49 * 160);
    assert_int_equal(s->stats.frames_out, 50);
    assert_int_equal(s->stats.underruns, 0);
    /* Audio that comes late starts when it is sent: a gap inside the utterance. */
    ms_pass(&f->calls, 500);
    say(s, 0x21, 160);
    assert_int_equal(nth_audio(&f->obs, CS_SPEAKER_AGENT, 50)->pos, 1900 * CS_FRAMES_PER_MS);
    assert_int_equal(s->stats.underruns, 1);
    assert_int_equal(f->calls.stats.underruns, 1);
}

static void marks_follow_sentences_and_utterances(void **state)
{
    fixture *f = *state;
    cs_stream *s = begin(f, "CA1", "MZ1", CS_MODE_TWO_WAY);
    uint32_t u;
    assert_int_equal(cs_stream_say_begin(s, &u), 0);
    static const uint8_t a[320];
    assert_int_equal(cs_stream_say_audio(s, u, a, 320), 0);
    assert_int_equal(cs_stream_say_sentence(s, u, "Hello there.", 12, NULL, 0), 0);
    assert_string_equal(f->sink.last_mark, "u1-s1");
    assert_int_equal(cs_stream_say_audio(s, u, a, 160), 0);
    assert_int_equal(cs_stream_say_sentence(s, u, "How are you?", 12, NULL, 0), 0);
    assert_int_equal(cs_stream_say_end(s, u), 0);
    assert_string_equal(f->sink.last_mark, "u1-end");
    assert_int_equal(f->sink.marks, 3);
    assert_int_equal(cs_stream_say_audio(s, u, a, 160), CS_ECLOSED); /* ended */
    bool played = false;
    assert_int_equal(echo(s, "u1-s1", &played), 0);
    assert_true(played);
    cJSON *j = parse(last_event(&f->obs, CS_EVENT_MARK)->text);
    assert_int_equal(jnum(j, "utterance"), 1);
    assert_int_equal(jnum(j, "atMs"), 40);
    cJSON_Delete(j);
    assert_int_equal(talk_log.marks, 1);
    assert_int_equal(talk_log.last_mark_pos, 320);
    assert_int_equal(talk_log.played, 0);
    assert_int_equal(echo(s, "u1-s2", NULL), 0);
    assert_int_equal(echo(s, "u1-end", NULL), 0);
    /* Heard to its end: the agent and the observers are told, with all of its text. */
    assert_int_equal(talk_log.played, 1);
    assert_string_equal(talk_log.heard, "Hello there. How are you?");
    assert_int_equal(talk_log.heard_ms, 60);
    assert_false(talk_log.cut);
    const seen *said = nth(&f->obs, CB_SAID, 0);
    assert_non_null(said);
    assert_string_equal(said->text, "Hello there. How are you?");
    assert_true(cs_stream_talking(s)); /* as far as the clock says, it still plays */
    ms_pass(&f->calls, 60);
    assert_false(cs_stream_talking(s));
}

static void an_utterance_whose_end_mark_is_lost_ends_after_the_grace(void **state)
{
    fixture *f = *state;
    cs_stream *s = begin(f, "CA1", "MZ1", CS_MODE_TWO_WAY);
    say(s, 0x20, 160);
    assert_int_equal(cs_stream_say_end(s, talk_log.utt), 0);
    ms_pass(&f->calls, 20 + f->calls.talk.mark_grace_ms - 40);
    assert_int_equal(talk_log.played, 0);
    ms_pass(&f->calls, 40);
    assert_int_equal(talk_log.played, 1);
    assert_false(cs_stream_talking(s));
}

/* Words of "one two three four" 250 ms apart in one second of audio. */
static const cs_word four_words[] = {{0, 3, 0}, {4, 3, 250}, {8, 5, 500}, {14, 4, 750}};

static void clear_reports_what_was_heard(void **state)
{
    fixture *f = *state;
    cs_stream *s = begin(f, "CA1", "MZ1", CS_MODE_TWO_WAY);
    say(s, 0x20, 8000);
    assert_int_equal(cs_stream_say_sentence(s, talk_log.utt, "one two three four", 18, four_words,
                                            4),
                     0);
    say(s, 0x21, 8000);
    assert_int_equal(
        cs_stream_say_sentence(s, talk_log.utt, "five six seven eight", 20, NULL, 0), 0);
    ms_pass(&f->calls, 600); /* "three" started at 500 ms */
    assert_true(cs_stream_talking(s));
    assert_int_equal(cs_stream_clear(s, CS_CLEAR_AGENT), 0);
    assert_int_equal(f->sink.clears, 1);
    assert_int_equal(talk_log.cleared, 1);
    assert_int_equal(talk_log.why, CS_CLEAR_AGENT);
    assert_int_equal(talk_log.heard_ms, 600);
    assert_string_equal(talk_log.heard, "one two three");
    assert_true(talk_log.cut);
    assert_string_equal(nth(&f->obs, CB_SAID, 0)->text, "one two three");
    cJSON *j = parse(last_event(&f->obs, CS_EVENT_CLEAR)->text);
    assert_string_equal(jstr(j, "reason"), "agent");
    assert_int_equal(jnum(j, "discardedMs"), 1400); /* 100 ms at the provider, the rest ours */
    const cJSON *u = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "utterances"), 0);
    assert_int_equal(jnum(u, "heardMs"), 600);
    assert_int_equal(jnum(u, "totalMs"), 2000);
    assert_string_equal(jstr(u, "heardText"), "one two three");
    cJSON_Delete(j);
    /* Nothing more of it goes out; the next turn does. */
    size_t sent = f->sink.media;
    assert_int_equal(cs_stream_say_audio(s, talk_log.utt, frame, 160), CS_ECLOSED);
    ms_pass(&f->calls, 100);
    assert_int_equal(f->sink.media, sent);
    assert_false(cs_stream_talking(s));
    assert_int_equal(cs_stream_unplayed(s), 0);
    talk_log.utt = 0;
    say(s, 0x22, 160);
    assert_int_equal(f->sink.media, sent + 1);
    assert_int_equal(nth_audio(&f->obs, CS_SPEAKER_AGENT, sent)->pos, 700 * CS_FRAMES_PER_MS);
}

static void text_without_word_timings_is_heard_in_proportion(void **state)
{
    fixture *f = *state;
    cs_stream *s = begin(f, "CA1", "MZ1", CS_MODE_TWO_WAY);
    say(s, 0x20, 8000);
    assert_int_equal(cs_stream_say_sentence(s, talk_log.utt, "five six seven eight", 20, NULL,
                                            0),
                     0);
    ms_pass(&f->calls, 500); /* half: 10 of 20 characters, "five six s" → "five six" */
    assert_int_equal(cs_stream_clear(s, CS_CLEAR_AGENT), 0);
    assert_string_equal(talk_log.heard, "five six");
    assert_int_equal(talk_log.heard_ms, 500);
    /* Nothing heard: no text. */
    talk_log.utt = 0;
    say(s, 0x20, 800);
    assert_int_equal(cs_stream_say_sentence(s, talk_log.utt, "nine", 4, NULL, 0), 0);
    assert_int_equal(cs_stream_clear(s, CS_CLEAR_AGENT), 0);
    assert_string_equal(talk_log.heard, "");
    assert_int_equal(talk_log.heard_ms, 0);
}

static void caller_speech_barges_in(void **state)
{
    fixture *f = *state;
    cs_stream *s = begin(f, "CA1", "MZ1", CS_MODE_TWO_WAY);
    /* Speech while the agent is silent: the agent hears it; nothing is cleared. */
    cs_stream_speech(s, true, 0);
    assert_int_equal(talk_log.speech_on, 1);
    assert_int_equal(f->sink.clears, 0);
    cs_stream_speech(s, false, 800);
    assert_int_equal(talk_log.speech_off, 1);

    say(s, 0x20, 8000);
    ms_pass(&f->calls, 300);
    cs_stream_speech(s, true, 240 * CS_FRAMES_PER_MS); /* confirmed 60 ms after onset */
    assert_int_equal(f->sink.clears, 1);
    assert_int_equal(talk_log.why, CS_CLEAR_SPEECH);
    assert_int_equal(s->stats.barge_ins, 1);
    assert_int_equal(f->calls.stats.barge_ins, 1);
    cJSON *j = parse(last_event(&f->obs, CS_EVENT_BARGE_IN)->text);
    assert_string_equal(jstr(j, "reason"), "speech");
    assert_int_equal(jnum(j, "onsetMs"), 240);
    assert_int_equal(jnum(j, "latencyMs"), 60);
    cJSON_Delete(j);
    assert_false(cs_stream_talking(s));

    /* A key barges in too. */
    say(s, 0x20, 800);
    cs_pevent dtmf = {.type = CS_PEV_DTMF, .seq = -1, .dtmf = {.digit = '#'}};
    assert_int_equal(cs_stream_event(s, &dtmf, NULL), 0);
    assert_int_equal(f->sink.clears, 2);
    assert_int_equal(talk_log.why, CS_CLEAR_DTMF);
    assert_string_equal(talk_log.digits, "#");

    /* BARGE_IN=0: the agent cannot be interrupted. */
    f->calls.talk.barge_in = false;
    say(s, 0x20, 800);
    cs_stream_speech(s, true, cs_stream_now(s));
    assert_int_equal(f->sink.clears, 2);
    assert_true(cs_stream_talking(s));
}

static void a_turn_is_timed_from_the_end_of_speech(void **state)
{
    fixture *f = *state;
    cs_stream *s = begin(f, "CA1", "MZ1", CS_MODE_TWO_WAY);
    cs_stream_speech(s, true, 0);
    now_ms += 700;
    cs_stream_speech(s, false, 100 * CS_FRAMES_PER_MS); /* ended at 100 ms, detected at 700 */
    now_ms += 100;
    cs_transcript t = {.id = 1, .text = "hi", .final = true, .confidence = -1};
    cs_stream_transcript(s, &t);
    now_ms += 50;
    cs_agent_note(s->agent, CS_TURN_REPLY);
    now_ms += 50;
    say(s, 0x20, 160);
    cJSON *j = parse(last_event(&f->obs, CS_EVENT_TURN)->text);
    assert_int_equal(jnum(j, "speechEndMs"), 100);
    assert_int_equal(jnum(j, "detectedMs"), 600);
    assert_int_equal(jnum(j, "finalMs"), 700);
    assert_int_equal(jnum(j, "replyMs"), 750);
    assert_int_equal(jnum(j, "firstAudioMs"), 800);
    assert_int_equal(jnum(j, "voiceToVoiceMs"), 800);
    cJSON_Delete(j);
    assert_int_equal(f->calls.stats.voice_to_voice.count, 1);
    /* One event per turn: more audio of the answer is not another. */
    say(s, 0x20, 160);
    assert_int_equal(count_events(&f->obs, CS_EVENT_TURN), 1);
    /* A barge-in is timed from the onset. */
    cs_stream_speech(s, true, cs_stream_now(s) - 40 * CS_FRAMES_PER_MS);
    assert_int_equal(f->calls.stats.barge_in_seconds.count, 1);
    assert_true(f->calls.stats.barge_in_seconds.sum > 0.039 &&
                f->calls.stats.barge_in_seconds.sum < 0.041);
}

/* An answer begun on a final transcript that came before the detector declared the end
 * of speech (its hangover): the answer's first frame after that end measures the turn
 * once the end is known. */
static void an_answer_begun_before_the_end_is_declared_is_timed(void **state)
{
    fixture *f = *state;
    cs_stream *s = begin(f, "CA1", "MZ1", CS_MODE_TWO_WAY);
    cs_stream_speech(s, true, cs_stream_now(s));
    now_ms += 1000;
    uint64_t end = cs_stream_now(s);
    now_ms += 200;
    cs_transcript t = {.id = 1, .text = "stop", .final = true, .confidence = -1};
    cs_stream_transcript(s, &t);
    now_ms += 50;
    say(s, 0x20, 160);
    assert_int_equal(count_events(&f->obs, CS_EVENT_TURN), 0);
    now_ms += 350;
    cs_stream_speech(s, false, end); /* declared 600 ms after the end */
    assert_int_equal(count_events(&f->obs, CS_EVENT_TURN), 1);
    cJSON *j = parse(last_event(&f->obs, CS_EVENT_TURN)->text);
    assert_int_equal(jnum(j, "voiceToVoiceMs"), 250);
    assert_int_equal(jnum(j, "finalMs"), 200);
    assert_int_equal(jnum(j, "firstAudioMs"), 250);
    assert_int_equal(jnum(j, "detectedMs"), 600);
    cJSON_Delete(j);
    say(s, 0x20, 160);
    assert_int_equal(count_events(&f->obs, CS_EVENT_TURN), 1);
    /* An utterance that began before the caller spoke (it could not be cut) is no answer,
     * however long it goes on: the next utterance is. */
    f->calls.talk.barge_in = false;
    assert_int_equal(cs_stream_say_end(s, talk_log.utt), 0);
    talk_log.utt = 0;
    ms_pass(&f->calls, 1000);
    say(s, 0x20, 1600);
    ms_pass(&f->calls, 20);
    cs_stream_speech(s, true, cs_stream_now(s));
    now_ms += 100;
    end = cs_stream_now(s);
    now_ms += 600;
    cs_stream_speech(s, false, end);
    ms_pass(&f->calls, 400);
    assert_int_equal(count_events(&f->obs, CS_EVENT_TURN), 1);
    assert_int_equal(cs_stream_say_end(s, talk_log.utt), 0);
    talk_log.utt = 0;
    say(s, 0x20, 160);
    ms_pass(&f->calls, 1500);
    assert_int_equal(count_events(&f->obs, CS_EVENT_TURN), 2);
    j = parse(last_event(&f->obs, CS_EVENT_TURN)->text);
    assert_true(jnum(j, "voiceToVoiceMs") >= 1000); /* after the 1.6 s utterance played */
    cJSON_Delete(j);
}

/* The caller's real speech, through the stream's voice activity detector: a barge-in
 * at its onset, a turn at its end. */
static void the_detector_hears_the_caller(void **state)
{
    fixture *f = *state;
    int16_t *pcm;
    size_t n;
    unsigned rate;
    assert_int_equal(cs_wav_load(tu_data_path("speech/ulaw8k/pocketsphinx_goforward.wav"), &pcm,
                                 &n, &rate),
                     0);
    assert_int_equal(rate, 8000);
    uint8_t *ulaw = malloc(n + 16000);
    assert_non_null(ulaw);
    memset(ulaw, 0xFF, 8000); /* a second of line silence first, and after */
    cs_ulaw_encode(ulaw + 8000, pcm, n);
    memset(ulaw + 8000 + n, 0xFF, 8000);
    free(pcm);
    n += 16000;
    cs_stream *s = begin(f, "CA1", "MZ1", CS_MODE_TWO_WAY);
    say(s, 0x20, 16000); /* the agent talks for two seconds */
    int64_t seq = 2;
    for (size_t at = 0; at + 160 <= n; at += 160) {
        now_ms += 20;
        media(s, CS_TRACK_INBOUND, seq++, at / CS_FRAMES_PER_MS, ulaw + at, 160);
        cs_calls_tick(&f->calls);
    }
    free(ulaw);
    assert_int_equal(talk_log.speech_on, 1);
    assert_int_equal(talk_log.speech_off, 1);
    assert_int_equal(f->sink.clears, 1);
    assert_int_equal(talk_log.why, CS_CLEAR_SPEECH);
    cJSON *j = parse(last_event(&f->obs, CS_EVENT_BARGE_IN)->text);
    /* "go forward ten meters" starts half a second into its clip, after our second. */
    double onset = jnum(j, "onsetMs");
    assert_true(onset >= 1300 && onset < 1700);
    assert_true(jnum(j, "latencyMs") < 400); /* BARGE_IN_MIN_MS of speech, and a frame */
    cJSON_Delete(j);
    assert_true(talk_log.heard_ms >= 1300 && talk_log.heard_ms < 2000);
}

static void the_agent_hangs_up_after_its_last_words(void **state)
{
    fixture *f = *state;
    cs_stream *s = begin(f, "CA1", "MZ1", CS_MODE_TWO_WAY);
    f->sink.stream = s;
    say(s, 0x20, 1600); /* "goodbye": 200 ms */
    assert_int_equal(cs_stream_say_end(s, talk_log.utt), 0);
    assert_int_equal(cs_stream_hangup(s, true), 0);
    assert_int_equal(f->sink.closes, 0); /* never inside the agent's own call */
    ms_pass(&f->calls, 220);
    assert_int_equal(f->sink.closes, 0); /* played by the clock: its echo says so */
    assert_int_equal(echo(s, "u1-end", NULL), 0);
    cs_calls_tick(&f->calls);
    assert_int_equal(f->sink.closes, 1);
    assert_int_equal(count(&f->obs, CB_CALL_ENDED), 1);
    assert_int_equal(talk_log.closed, 1);
    /* At once: on the next tick. */
    s = begin(f, "CA2", "MZ2", CS_MODE_TWO_WAY);
    f->sink.stream = s;
    say(s, 0x20, 1600);
    assert_int_equal(cs_stream_hangup(s, false), 0);
    cs_calls_tick(&f->calls);
    assert_int_equal(f->sink.closes, 2);
    assert_int_equal(count(&f->obs, CB_CALL_ENDED), 2);
}

/* The answer began before the detector declared the end of speech (its hangover): the
 * turn is timed from the answer's first frame, not from the next one. */
static void an_answer_before_the_hangover_is_timed_from_its_start(void **state)
{
    fixture *f = *state;
    cs_stream *s = begin(f, "CA1", "MZ1", CS_MODE_TWO_WAY);
    cs_stream_speech(s, true, 0);
    now_ms += 1100; /* the words ended at 1000 ms; the answer starts at 1100 */
    say(s, 0x20, 8000);
    now_ms += 500;  /* the end of speech is declared at 1600 */
    cs_stream_speech(s, false, 1000 * CS_FRAMES_PER_MS);
    cJSON *j = parse(last_event(&f->obs, CS_EVENT_TURN)->text);
    assert_int_equal(jnum(j, "speechEndMs"), 1000);
    assert_int_equal(jnum(j, "voiceToVoiceMs"), 100);
    cJSON_Delete(j);
    ms_pass(&f->calls, 100);
    assert_int_equal(count_events(&f->obs, CS_EVENT_TURN), 1);
}

static void an_agent_may_refuse_interruption(void **state)
{
    fixture *f = *state;
    talk_log.not_interruptible = true;
    cs_stream *s = begin(f, "CA1", "MZ1", CS_MODE_TWO_WAY);
    say(s, 0x20, 800);
    cs_stream_speech(s, true, 0);
    assert_int_equal(f->sink.clears, 0);
    assert_int_equal(talk_log.speech_on, 1);
}

static void the_queue_is_bounded(void **state)
{
    fixture *f = *state;
    f->calls.talk.max_ms = 1000;
    cs_stream *s = begin(f, "CA1", "MZ1", CS_MODE_TWO_WAY);
    say(s, 0x20, 8000); /* 100 ms went out at once: 900 ms queued */
    assert_int_equal(say_code(s, 0x20, 1000), CS_EFULL);
    assert_int_equal(f->calls.stats.playout_full, 1);
    say(s, 0x20, 800);
    /* Utterances in flight are bounded too. */
    for (int i = 1; i < CS_PLAYOUT_UTTS_MAX; i++) {
        uint32_t u;
        assert_int_equal(cs_stream_say_begin(s, &u), 0);
    }
    uint32_t u;
    assert_int_equal(cs_stream_say_begin(s, &u), CS_ELIMIT);
}

static void agent_timer_runs_on_the_tick(void **state)
{
    fixture *f = *state;
    cs_stream *s = begin(f, "CA1", "MZ1", CS_MODE_TWO_WAY);
    cs_agent_timer(s->agent, 100);
    ms_pass(&f->calls, 80);
    assert_int_equal(talk_log.timers, 0);
    ms_pass(&f->calls, 40);
    assert_int_equal(talk_log.timers, 1);
    ms_pass(&f->calls, 200);
    assert_int_equal(talk_log.timers, 1); /* once */
    cs_agent_timer(s->agent, 100);
    cs_agent_timer(s->agent, 0); /* cancelled */
    ms_pass(&f->calls, 200);
    assert_int_equal(talk_log.timers, 1);
}

static void a_stream_ending_mid_sentence_reports_and_closes_later(void **state)
{
    fixture *f = *state;
    talk_log.defer_close = true;
    cs_stream *s = begin(f, "CA1", "MZ1", CS_MODE_TWO_WAY);
    say(s, 0x20, 8000);
    assert_int_equal(cs_stream_say_sentence(s, talk_log.utt, "one two three four", 18, four_words,
                                            4),
                     0);
    ms_pass(&f->calls, 300);
    cs_stream_end(s, CS_END_STOP);
    /* What was heard is reported as cut; nothing is sent to a closing socket. */
    assert_int_equal(f->sink.clears, 0);
    assert_int_equal(talk_log.why, CS_CLEAR_END);
    assert_string_equal(talk_log.heard, "one two");
    assert_string_equal(nth(&f->obs, CB_SAID, 0)->text, "one two");
    assert_int_equal(talk_log.closed, 1);
    assert_int_equal(f->calls.talk.closing, 1); /* a request still in flight */
    cs_agent_closed(talk_log.deferred);
    free(talk_log.deferred);
    assert_int_equal(f->calls.talk.closing, 0);
}

/* The agent ends what it was saying when told it was cut (a voice stopping does): the
 * utterance, with no audio yet, is not finished a second time. */
static void an_agent_ending_a_cut_utterance_does_not_finish_it_again(void **state)
{
    fixture *f = *state;
    talk_log.end_on_clear = true;
    cs_stream *s = begin(f, "CA1", "MZ1", CS_MODE_TWO_WAY);
    uint32_t utt;
    assert_int_equal(cs_stream_say_begin(s, &utt), 0); /* its speech is still being made */
    cs_stream_end(s, CS_END_STOP);
    assert_int_equal(talk_log.cleared, 1);
    assert_int_equal(talk_log.why, CS_CLEAR_END);
    assert_int_equal(count(&f->obs, CB_SAID), 1);
}

static void socket_errors_are_returned(void **state)
{
    fixture *f = *state;
    cs_stream *s = begin(f, "CA1", "MZ1", CS_MODE_TWO_WAY);
    f->sink.fail = -EPIPE;
    say(s, 0x20, 160); /* queued; sending failed: the socket is closing */
    assert_int_equal(cs_stream_clear(s, CS_CLEAR_AGENT), -EPIPE);
    assert_int_equal(s->stats.frames_out + s->stats.marks_sent + s->stats.clears, 0);
    assert_int_equal(count(&f->obs, CB_AUDIO), 0);
    assert_int_equal(count_events(&f->obs, CS_EVENT_CLEAR), 0);
}

static void marks_echo_in_order(void **state)
{
    fixture *f = *state;
    cs_stream *s = begin(f, "CA1", "MZ1", CS_MODE_TWO_WAY);
    say(s, 0x20, 160);
    for (int i = 0; i < 3; i++)
        assert_int_equal(cs_stream_say_sentence(s, talk_log.utt, "", 0, NULL, 0), 0);
    assert_int_equal(s->stats.marks_sent, 3);
    /* An echo out of order is matched by name; the others stay pending. */
    bool played = false;
    assert_int_equal(echo(s, "u1-s3", &played), 0);
    assert_true(played);
    assert_int_equal(echo(s, "u1-s1", &played), 0);
    assert_int_equal(echo(s, "u1-s2", &played), 0);
    assert_int_equal(s->marks_len, 0);
    tu_log_capture_start();
    assert_int_equal(echo(s, "u1-s2", NULL), CS_ENOTFOUND); /* echoed already */
    tu_log_capture_stop();
    assert_int_equal(s->stats.marks_played, 3);
    assert_int_equal(count_events(&f->obs, CS_EVENT_MARK), 3);
}

static void marks_discarded_by_a_clear_echo_as_cleared(void **state)
{
    fixture *f = *state;
    cs_stream *s = begin(f, "CA1", "MZ1", CS_MODE_TWO_WAY);
    say(s, 0x20, 160);
    assert_int_equal(cs_stream_say_sentence(s, talk_log.utt, "a", 1, NULL, 0), 0);
    assert_int_equal(cs_stream_clear(s, CS_CLEAR_AGENT), 0);
    cJSON *j = parse(last_event(&f->obs, CS_EVENT_CLEAR)->text);
    assert_int_equal(jnum(j, "pendingMarks"), 1);
    cJSON_Delete(j);
    bool played = true;
    assert_int_equal(echo(s, "u1-s1", &played), 0);
    assert_false(played);
    assert_int_equal(talk_log.marks, 1);
    assert_false(talk_log.last_mark_played);
    assert_int_equal(s->stats.marks_cleared, 1);
    assert_int_equal(f->calls.stats.marks_cleared, 1);
}

static void unknown_mark_echoes_are_bad_fields(void **state)
{
    fixture *f = *state;
    cs_stream *s = begin(f, "CA1", "MZ1", CS_MODE_TWO_WAY);
    tu_log_capture_start();
    bool played = true;
    assert_int_equal(echo(s, "never-sent", &played), CS_ENOTFOUND);
    assert_true(played); /* untouched */
    assert_true(tu_log_contains("bad_field"));
    tu_log_capture_start();
    assert_int_equal(echo(s, "nor-this", &played), CS_ENOTFOUND);
    assert_false(tu_log_contains("bad_field"));
    tu_log_capture_stop();
    assert_int_equal(s->stats.marks_unknown, 2);
    assert_int_equal(s->stats.bad[CS_BAD_FIELD], 2);
    assert_int_equal(count_events(&f->obs, CS_EVENT_ERROR), 1);
    assert_int_equal(count_events(&f->obs, CS_EVENT_MARK), 0);
    cJSON *j = parse(last_event(&f->obs, CS_EVENT_ERROR)->text);
    assert_string_equal(jstr(j, "kind"), "bad_field");
    cJSON_Delete(j);
}

static void mark_ring_keeps_order_as_it_grows(void **state)
{
    fixture *f = *state;
    cs_stream *s = begin(f, "CA1", "MZ1", CS_MODE_TWO_WAY);
    say(s, 0x20, 160);
    int sent = 0, echoed = 0;
    char name[16];
    /* Echo some, then send more than the ring holds, so it grows while wrapped. */
    for (; sent < 8; sent++)
        assert_int_equal(cs_stream_say_sentence(s, talk_log.utt, "", 0, NULL, 0), 0);
    for (; echoed < 5; echoed++) {
        snprintf(name, sizeof name, "u1-s%d", echoed + 1);
        assert_int_equal(echo(s, name, NULL), 0);
    }
    for (; sent < 20; sent++)
        assert_int_equal(cs_stream_say_sentence(s, talk_log.utt, "", 0, NULL, 0), 0);
    for (uint32_t i = 0; i < s->marks_len; i++) {
        snprintf(name, sizeof name, "u1-s%d", echoed + (int)i + 1);
        assert_string_equal(s->marks[(s->marks_head + i) % s->marks_cap].name, name);
    }
    for (; echoed < sent; echoed++) {
        snprintf(name, sizeof name, "u1-s%d", echoed + 1);
        assert_int_equal(echo(s, name, NULL), 0);
    }
    assert_int_equal(s->stats.marks_played, 20);
    assert_int_equal(s->stats.marks_unknown, 0);
}

/* ---- bad messages ---- */

static void bad_messages_are_counted_and_logged_once(void **state)
{
    fixture *f = *state;
    cs_pevent start = start_of("CA1", "MZ1", CS_TRACK_BIT(CS_TRACK_INBOUND));
    cs_stream_stats pre = {.bad[CS_BAD_JSON] = 2};
    cs_stream *s;
    assert_int_equal(
        cs_stream_begin(&f->calls, &start, CS_MODE_TWO_WAY, false, &f->stream_sink, f, &pre, &s),
        0);
    assert_int_equal(s->stats.bad[CS_BAD_JSON], 2);

    tu_log_capture_start();
    cs_stream_bad(s, CS_BAD_BASE64, "payload is not base64");
    assert_true(tu_log_contains("skipped a bad message (base64): payload is not base64"));
    assert_true(tu_log_contains("call=CA1 stream=MZ1"));
    tu_log_capture_start();
    cs_stream_bad(s, CS_BAD_BASE64, "again");
    cs_stream_bad(s, CS_BAD_BASE64, "and again");
    assert_false(tu_log_contains("base64"));
    cs_stream_bad(s, CS_BAD_RATE, "too fast");
    assert_true(tu_log_contains("rate_limited"));
    /* A second start on a live stream is out of order. */
    assert_int_equal(cs_stream_event(s, &start, NULL), CS_ESTATE);
    cs_pevent connected = {.type = CS_PEV_CONNECTED, .seq = -1};
    assert_int_equal(cs_stream_event(s, &connected, NULL), CS_ESTATE);
    tu_log_capture_stop();

    assert_int_equal(s->stats.bad[CS_BAD_BASE64], 3);
    assert_int_equal(s->stats.bad[CS_BAD_RATE], 1);
    assert_int_equal(s->stats.bad[CS_BAD_ORDER], 2);
    assert_int_equal(f->calls.stats.bad[CS_BAD_BASE64], 3);
    assert_int_equal(count_events(&f->obs, CS_EVENT_ERROR), 3);
    cJSON *j = parse(nth(&f->obs, CB_EVENT, 2)->text); /* after start and the agent's */
    assert_string_equal(jstr(j, "kind"), "base64");
    assert_string_equal(jstr(j, "message"), "payload is not base64");
    cJSON_Delete(j);
    j = parse(last_event(&f->obs, CS_EVENT_ERROR)->text);
    assert_string_equal(jstr(j, "kind"), "out_of_order");
    cJSON_Delete(j);
}

/* ---- ending ---- */

static void call_ends_with_its_last_stream(void **state)
{
    fixture *f = *state;
    cs_stream *s1 = begin(f, "CA1", "MZ1", CS_MODE_TWO_WAY);
    cs_stream *s2 = begin(f, "CA1", "MZ2", CS_MODE_ONE_WAY);
    cs_pevent stop = {.type = CS_PEV_STOP, .seq = 2};
    assert_int_equal(cs_stream_event(s1, &stop, NULL), 0);
    assert_int_equal(s1->stats.messages, 1);

    size_t first = f->obs.n;
    cs_stream_end(s1, CS_END_STOP);
    assert_null(cs_calls_stream(&f->calls, cs_str_of("MZ1")));
    assert_non_null(cs_calls_call(&f->calls, cs_str_of("CA1")));
    assert_int_equal(s2->call->nstreams, 1);
    assert_int_equal(f->obs.n, first + 2);
    const seen *e = &f->obs.seen[first];
    assert_int_equal(e->what, CS_EVENT_STOP);
    cJSON *j = parse(e->text);
    assert_string_equal(jstr(j, "streamSid"), "MZ1");
    assert_string_equal(jstr(j, "reason"), "stop");
    assert_true(jnum(j, "durationMs") >= 0);
    cJSON_Delete(j);
    assert_int_equal(f->obs.seen[first + 1].cb, CB_STREAM_ENDED);
    assert_int_equal(f->obs.seen[first + 1].what, CS_END_STOP);

    cs_stream_end(s2, CS_END_ABNORMAL);
    assert_int_equal(f->obs.seen[f->obs.n - 2].cb, CB_STREAM_ENDED);
    assert_int_equal(f->obs.seen[f->obs.n - 2].what, CS_END_ABNORMAL);
    assert_int_equal(f->obs.seen[f->obs.n - 1].cb, CB_CALL_ENDED);
    assert_string_equal(f->obs.seen[f->obs.n - 1].call_sid, "CA1");
    assert_null(cs_calls_call(&f->calls, cs_str_of("CA1")));
    assert_null(cs_calls_stream(&f->calls, cs_str_of("MZ2")));
    assert_int_equal(cs_calls_active(&f->calls), 0);
    assert_int_equal(cs_calls_streams(&f->calls), 0);
    assert_int_equal(f->calls.stats.ended[CS_END_STOP], 1);
    assert_int_equal(f->calls.stats.ended[CS_END_ABNORMAL], 1);
    j = parse(last_event(&f->obs, CS_EVENT_STOP)->text);
    assert_string_equal(jstr(j, "reason"), "abnormal");
    cJSON_Delete(j);
}

static void freeing_the_registry_ends_leftovers(void **state)
{
    fixture *f = *state;
    begin(f, "CA1", "MZ1", CS_MODE_TWO_WAY);
    begin(f, "CA1", "MZ2", CS_MODE_ONE_WAY);
    begin(f, "CA2", "MZ3", CS_MODE_ONE_WAY);
    cs_calls_free(&f->calls, CS_END_SHUTDOWN);
    assert_int_equal(count(&f->obs, CB_STREAM_ENDED), 3);
    assert_int_equal(count(&f->obs, CB_CALL_ENDED), 2);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(nth(&f->obs, CB_STREAM_ENDED, i)->what, CS_END_SHUTDOWN);
    assert_int_equal(f->calls.stats.ended[CS_END_SHUTDOWN], 3);
    assert_int_equal(cs_calls_active(&f->calls), 0);
    assert_int_equal(cs_calls_streams(&f->calls), 0);
}

static void call_level_events(void **state)
{
    fixture *f = *state;
    cs_stream *s = begin(f, "CA1", "MZ1", CS_MODE_TWO_WAY);
    cs_calls_event(&f->calls, "CA1", CS_EVENT_STATUS, "{\"CallStatus\":\"in-progress\"}");
    const seen *e = last_event(&f->obs, CS_EVENT_STATUS);
    assert_ptr_equal(e->call, s->call);
    assert_string_equal(e->stream_sid, "");
    assert_string_equal(e->text, "{\"CallStatus\":\"in-progress\"}");

    /* Not live here: a stand-in carries the sid. */
    cs_calls_event(&f->calls, "CA9", CS_EVENT_WEBHOOK, NULL);
    e = last_event(&f->obs, CS_EVENT_WEBHOOK);
    assert_string_equal(e->call_sid, "CA9");
    assert_string_equal(e->text, "");
    assert_null(cs_calls_call(&f->calls, cs_str_of("CA9")));
}

static void labels(void **state)
{
    (void)state;
    assert_string_equal(cs_end_label(CS_END_IDLE), "idle_timeout");
    assert_string_equal(cs_end_label(CS_END_HANGUP), "closed_by_us");
    assert_string_equal(cs_end_label(CS_END_COUNT), "unknown");
    assert_string_equal(cs_event_label(CS_EVENT_START), "start");
    assert_string_equal(cs_event_label(CS_EVENT_RECORDING), "recording");
    assert_string_equal(cs_event_label(CS_EVENT_COUNT), "unknown");
}

/* ---- stats ---- */

static void stats_json_has_every_field(void **state)
{
    fixture *f = *state;
    cs_stream *s = begin(f, "CA1", "MZ1", CS_MODE_TWO_WAY);
    media(s, CS_TRACK_INBOUND, 3, 0, frame, 160);
    media(s, CS_TRACK_INBOUND, 2, 100, frame, 160);
    say(s, 0x20, 80);
    assert_int_equal(cs_stream_say_sentence(s, talk_log.utt, "", 0, NULL, 0), 0);
    assert_int_equal(cs_stream_say_sentence(s, talk_log.utt, "", 0, NULL, 0), 0);
    assert_int_equal(echo(s, "u1-s1", NULL), 0);
    assert_int_equal(cs_stream_clear(s, CS_CLEAR_AGENT), 0);
    assert_int_equal(echo(s, "u1-s2", NULL), 0);
    tu_log_capture_start();
    assert_int_equal(echo(s, "x", NULL), CS_ENOTFOUND);
    cs_stream_bad(s, CS_BAD_JSON, "not json");
    tu_log_capture_stop();
    cs_pevent dtmf = {.type = CS_PEV_DTMF, .seq = -1, .dtmf = {.digit = '1'}};
    assert_int_equal(cs_stream_event(s, &dtmf, NULL), 0);

    cs_buf out = CS_BUF_INIT(1 << 16);
    assert_int_equal(cs_stream_stats_json(s, &out), 0);
    cJSON *j = parse(out.data);
    const cJSON *frames = jobj(j, "frames"), *bytes = jobj(j, "bytes");
    assert_int_equal(jnum(frames, "inbound"), 2);
    assert_int_equal(jnum(frames, "outbound"), 0);
    assert_int_equal(jnum(bytes, "inbound"), 320);
    assert_int_equal(jnum(bytes, "outbound"), 0);
    assert_int_equal(jnum(j, "messages"), 6);
    assert_int_equal(jnum(j, "sequenceGaps"), 1);
    assert_int_equal(jnum(j, "sequenceReordered"), 1);
    assert_int_equal(jnum(j, "timestampGaps"), 1);
    const cJSON *bad = jobj(j, "badFrames");
    assert_int_equal(cJSON_GetArraySize(bad), CS_BAD_COUNT);
    for (int k = 0; k < CS_BAD_COUNT; k++)
        assert_int_equal(jnum(bad, cs_bad_label(k)), s->stats.bad[k]);
    assert_int_equal(jnum(bad, "json"), 1);
    assert_int_equal(jnum(bad, "bad_field"), 1);
    assert_int_equal(jnum(j, "framesOut"), 1);
    assert_int_equal(jnum(j, "bytesOut"), 80);
    assert_int_equal(jnum(j, "marksSent"), 2);
    assert_int_equal(jnum(j, "marksPlayed"), 1);
    assert_int_equal(jnum(j, "marksCleared"), 1);
    assert_int_equal(jnum(j, "marksUnknown"), 1);
    assert_int_equal(jnum(j, "clears"), 1);
    assert_int_equal(jnum(j, "bargeIns"), 0); /* the key came after the clear */
    assert_int_equal(jnum(j, "underruns"), 0);
    assert_int_equal(jnum(j, "utterances"), 1);
    assert_int_equal(jnum(j, "dtmf"), 1);
    assert_true(jnum(j, "durationMs") >= 0);
    assert_int_equal(cJSON_GetArraySize(j), 19);
    cJSON_Delete(j);
    cs_buf_free(&out);
}

/* ---- timestamps against the stream's clock ---- */

static cs_stream_outcome media_at(cs_stream *s, int64_t seq, uint64_t ts_ms)
{
    cs_pevent ev = {.type = CS_PEV_MEDIA,
                    .seq = seq,
                    .media = {.track = CS_TRACK_INBOUND,
                              .timestamp_ms = ts_ms,
                              .payload = frame,
                              .len = sizeof frame}};
    cs_stream_outcome out = {0};
    assert_int_equal(cs_stream_event(s, &ev, &out), 0);
    return out;
}

static void wild_timestamps_are_bad_frames_placed_by_arrival(void **state)
{
    fixture *f = *state;
    f->calls.max_ts_ms = 3600 * 1000;
    cs_stream *s = begin(f, "CA1", "MZ1", CS_MODE_ONE_WAY);
    assert_int_equal(media_at(s, 2, 0).pos, 0);
    assert_int_equal(media_at(s, 3, 20).pos, 160);
    /* From the future: right after the audio before it. */
    tu_log_capture_start();
    assert_int_equal(media_at(s, 4, 100000000).pos, 320);
    tu_log_capture_stop();
    assert_true(tu_log_contains("bad_timestamp"));
    assert_int_equal(media_at(s, 5, 1ull << 40).pos, 480); /* past MAX_CALL_S */
    assert_int_equal(media_at(s, 6, UINT64_MAX).pos, 640);
    assert_int_equal(media_at(s, 7, 100).pos, 800); /* back on the stream's clock */
    assert_int_equal(s->stats.bad[CS_BAD_TIMESTAMP], 3);
    assert_int_equal(f->calls.stats.bad[CS_BAD_TIMESTAMP], 3);
    assert_int_equal(s->stats.ts_gaps, 0);
    assert_int_equal(s->heard_end, 960);
    /* One error event for the kind, as for every bad frame. */
    assert_int_equal(count_events(&f->obs, CS_EVENT_ERROR), 1);
    cJSON *j = parse(last_event(&f->obs, CS_EVENT_ERROR)->text);
    assert_string_equal(jstr(j, "kind"), "bad_timestamp");
    assert_non_null(strstr(jstr(j, "message"), "100000000"));
    cJSON_Delete(j);

    /* A stall: frames arrive late, in order: their timestamps are right. */
    now_ms += 30000;
    assert_int_equal(media_at(s, 8, 120).pos, 960);
    assert_int_equal(media_at(s, 9, 140).pos, 1120);
    /* Lost packets: a jump ahead, up to the time of arrival, is a gap of silence. */
    assert_int_equal(media_at(s, 10, 29000).pos, 29000 * 8);
    assert_int_equal(s->stats.ts_gaps, 1);
    /* A jump back past the tolerance: after the previous audio instead. */
    assert_int_equal(media_at(s, 11, 5000).pos, 29020 * 8);
    /* Within the tolerance, a late frame fills its hole. */
    assert_int_equal(media_at(s, 12, 28000).pos, 28000 * 8);
    assert_int_equal(s->stats.bad[CS_BAD_TIMESTAMP], 4);
    /* The track paused longer than the tolerance: a bad frame goes at its arrival. */
    now_ms += 60000;
    assert_int_equal(media_at(s, 13, 1ull << 50).pos, 90000 * 8);
    assert_int_equal(s->stats.bad[CS_BAD_TIMESTAMP], 5);

    /* The tolerance is the owner's to set. */
    f->calls.ts_tolerance_ms = 1000;
    assert_int_equal(media_at(s, 14, 91500).pos, 90020 * 8);
    assert_int_equal(media_at(s, 15, 90900).pos, 90900 * 8);
    assert_int_equal(s->stats.bad[CS_BAD_TIMESTAMP], 6);
}

/* Bad timestamps sent faster than real time: each is "placed by arrival", so the track's
 * audio may not run ahead of its arrival by more than the tolerance, nor past MAX_CALL_S,
 * however many come. */
static void bad_timestamps_cannot_run_ahead_of_arrival(void **state)
{
    fixture *f = *state;
    f->calls.max_ts_ms = 60 * 1000;
    f->calls.ts_tolerance_ms = 1000;
    cs_stream *s = begin(f, "CA1", "MZ1", CS_MODE_ONE_WAY);
    uint64_t pos = 0;
    /* 200 frames (4 s of audio) at the same instant of the stream's clock */
    for (int i = 0; i < 200; i++) pos = media_at(s, 2 + i, 1ull << 40).pos;
    uint64_t limit_ms = 1 /* arrival */ + f->calls.ts_tolerance_ms + 20 /* the frame */;
    assert_true(pos / CS_FRAMES_PER_MS <= limit_ms);
    assert_true(s->heard_end / CS_FRAMES_PER_MS <= f->calls.max_ts_ms);
}

/* Audio the timeline has no room for (bad timestamps outrunning arrival, audio past
 * MAX_CALL_S) is counted as audio_overrun and skipped by everyone: the recording, the
 * observers (transcription, listeners) and the agent (out.skipped). */
static void audio_with_no_room_is_skipped(void **state)
{
    fixture *f = *state;
    f->calls.max_ts_ms = 3000;
    f->calls.ts_tolerance_ms = 1000;
    cs_stream *s = begin(f, "CA1", "MZ1", CS_MODE_ONE_WAY);
    /* 60 bad frames at one instant: 51 fill the tolerance (0 to 1000 ms), 9 have no room. */
    tu_log_capture_start();
    for (int i = 0; i < 60; i++) {
        cs_stream_outcome got = media_at(s, 2 + i, 1ull << 40);
        assert_int_equal(got.skipped, i > 50);
        if (!got.skipped) assert_int_equal(got.pos, (uint64_t)i * 160);
    }
    tu_log_capture_stop();
    assert_int_equal(s->stats.frames[CS_TRACK_INBOUND], 60);
    assert_int_equal(s->stats.bad[CS_BAD_TIMESTAMP], 51);
    assert_int_equal(s->stats.bad[CS_BAD_OVERRUN], 9);
    assert_int_equal(f->calls.stats.bad[CS_BAD_OVERRUN], 9);
    assert_int_equal(count(&f->obs, CB_AUDIO), 51);
    assert_int_equal(nth(&f->obs, CB_AUDIO, 50)->pos, 1000 * 8);
    assert_int_equal(s->heard_end, 1020 * 8);
    assert_true(tu_log_contains("audio_overrun"));
    assert_int_equal(count_events(&f->obs, CS_EVENT_ERROR), 2); /* one per kind */
    cJSON *j = parse(last_event(&f->obs, CS_EVENT_ERROR)->text);
    assert_string_equal(jstr(j, "kind"), "audio_overrun");
    assert_non_null(strstr(jstr(j, "message"), "ahead of arrival"));
    cJSON_Delete(j);

    /* Arrival catches up: room again, right after the track's audio. */
    now_ms += 500;
    assert_int_equal(media_at(s, 62, 1ull << 40).pos, 1020 * 8);
    now_ms += 1490; /* 1990 ms into the stream */
    assert_int_equal(media_at(s, 63, 1990).pos, 1990 * 8);

    /* MAX_CALL_S: audio may end at it, not pass it, whatever its timestamp. */
    now_ms += 1000;
    assert_int_equal(media_at(s, 64, 2980).pos, 2980 * 8);
    assert_true(media_at(s, 65, 2990).skipped);
    assert_true(media_at(s, 66, 1ull << 40).skipped);
    now_ms += 10000;
    assert_true(media_at(s, 67, 12990).skipped);
    assert_int_equal(s->heard_end, 3000 * 8);
    assert_int_equal(s->stats.bad[CS_BAD_OVERRUN], 12);
    assert_int_equal(s->stats.bad[CS_BAD_TIMESTAMP], 52);
    assert_int_equal(count(&f->obs, CB_AUDIO), 54);
    j = parse(last_event(&f->obs, CS_EVENT_ERROR)->text);
    assert_string_equal(jstr(j, "kind"), "audio_overrun"); /* still the first one */
    cJSON_Delete(j);
}

/* A later stream's clock starts at its own start. */
static void each_stream_has_its_own_clock(void **state)
{
    fixture *f = *state;
    cs_stream *s1 = begin(f, "CA1", "MZ1", CS_MODE_ONE_WAY);
    now_ms += 60000;
    cs_stream *s2 = begin(f, "CA1", "MZ2", CS_MODE_ONE_WAY);
    assert_int_equal(media_at(s1, 2, 59980).pos, 59980 * 8);
    assert_int_equal(media_at(s2, 2, 0).pos, (uint64_t)s2->offset_ms * 8);
    assert_int_equal(media_at(s2, 3, 59980).pos, ((uint64_t)s2->offset_ms + 20) * 8); /* ahead */
    assert_int_equal(s1->stats.bad[CS_BAD_TIMESTAMP], 0);
    assert_int_equal(s2->stats.bad[CS_BAD_TIMESTAMP], 1);
}

/* What the agent is told: each frame's own place, also for late and reordered ones. */
static void each_frame_is_told_its_own_position(void **state)
{
    fixture *f = *state;
    cs_stream *s = begin(f, "CA1", "MZ1", CS_MODE_TWO_WAY);
    static const struct {
        int64_t seq;
        uint64_t ts;
    } order[] = {{2, 0}, {4, 40}, {3, 20}, {6, 80}, {7, 100}, {5, 60}, {8, 120}};
    for (size_t i = 0; i < sizeof order / sizeof *order; i++) {
        cs_stream_outcome got = media_at(s, order[i].seq, order[i].ts);
        assert_int_equal(got.pos, order[i].ts * CS_FRAMES_PER_MS);
        assert_int_equal(nth_audio(&f->obs, CS_SPEAKER_CALLER, i)->pos, got.pos);
    }
    assert_int_equal(s->heard_end, 140 * CS_FRAMES_PER_MS);
    assert_int_equal(s->stats.seq_reordered, 2);
}

/* ---- recordings ---- */

static bool recorded(void *data)
{
    return count(data, CB_RECORDING) > 0;
}

/* Reads a finished stereo recording: frames × 2 samples. Caller frees. */
static int16_t *read_stereo(const char *path, size_t *frames)
{
    size_t len;
    uint8_t *file = tu_read_file(path, &len);
    assert_non_null(file);
    cs_wav_info info;
    assert_int_equal(cs_wav_parse(file, len, &info), 0);
    assert_int_equal(info.channels, 2);
    assert_int_equal(info.rate, 8000);
    assert_int_equal(info.bits, 16);
    assert_int_equal(info.data_offset + info.data_len, len);
    *frames = info.data_len / 4;
    int16_t *pcm = malloc(info.data_len);
    assert_non_null(pcm);
    for (size_t i = 0; i < info.data_len / 2; i++) {
        const uint8_t *p = file + info.data_offset + 2 * i;
        pcm[i] = (int16_t)(p[0] | p[1] << 8);
    }
    free(file);
    return pcm;
}

/* Audio made of one μ-law code (never 0x7F or 0xFF, which decode to silence). */
static void hear(cs_stream *s, enum cs_track track, int64_t seq, uint64_t ts_ms, uint8_t code,
                 size_t n)
{
    uint8_t ulaw[320];
    assert_true(n <= sizeof ulaw);
    memset(ulaw, code, n);
    media(s, track, seq, ts_ms, ulaw, n);
}

/* Channel `ch` of frames [from, to) holds `code`'s sample (-1: silence). */
static void assert_run(const int16_t *pcm, unsigned ch, size_t from, size_t to, int code)
{
    int16_t want = code < 0 ? 0 : cs_ulaw_to_pcm[code];
    for (size_t i = from; i < to; i++)
        if (pcm[i * 2 + ch] != want)
            fail_msg("channel %u frame %zu is %d, expected %d", ch, i, pcm[i * 2 + ch], want);
}

static void two_way_call_is_recorded_in_stereo(void **state)
{
    fixture *f = *state;
    cs_stream *s = begin(f, "CA1", "MZ1", CS_MODE_TWO_WAY);
    hear(s, CS_TRACK_INBOUND, 2, 0, 0x10, 160);
    hear(s, CS_TRACK_INBOUND, 3, 20, 0x11, 160);
    hear(s, CS_TRACK_INBOUND, 4, 100, 0x12, 160); /* 40–100 ms lost */
    now_ms += 120;                                /* now is 960 */
    say(s, 0x20, 320);                            /* frames 960–1280 */
    say(s, 0x21, 160);                            /* 1280–1440 */
    hear(s, CS_TRACK_INBOUND, 5, 140, 0x13, 160);
    now_ms += 40;                                 /* now is 1280 */
    assert_int_equal(cs_stream_clear(s, CS_CLEAR_AGENT), 0); /* cuts 1280– */
    say(s, 0x22, 80);                             /* 1280–1360 */
    now_ms += 10; /* the stream ends at 1360: the rest is never heard, nor recorded */
    cs_stream_end(s, CS_END_STOP);

    assert_true(tu_run_until(&f->loop, recorded, &f->obs, TU_WAIT_MS));
    const seen *r = nth(&f->obs, CB_RECORDING, 0);
    assert_string_equal(r->call_sid, "CA1");
    char want[PATH_MAX];
    snprintf(want, sizeof want, "%s/CA1.wav", f->dir);
    assert_string_equal(r->text, want);
    assert_int_equal(r->frames, 1440);
    size_t frames;
    int16_t *pcm = read_stereo(r->text, &frames);
    assert_int_equal(frames, 1440);
    assert_run(pcm, 0, 0, 160, 0x10);
    assert_run(pcm, 0, 160, 320, 0x11);
    assert_run(pcm, 0, 320, 800, -1);
    assert_run(pcm, 0, 800, 960, 0x12);
    assert_run(pcm, 0, 960, 1120, -1);
    assert_run(pcm, 0, 1120, 1280, 0x13);
    assert_run(pcm, 0, 1280, 1440, -1);
    assert_run(pcm, 1, 0, 960, -1);
    assert_run(pcm, 1, 960, 1280, 0x20);
    assert_run(pcm, 1, 1280, 1360, 0x22);
    assert_run(pcm, 1, 1360, 1440, -1);
    free(pcm);
}

static void one_way_stereo_records_the_other_party(void **state)
{
    fixture *f = *state;
    cs_pevent start =
        start_of("CA1", "MZ1", CS_TRACK_BIT(CS_TRACK_INBOUND) | CS_TRACK_BIT(CS_TRACK_OUTBOUND));
    cs_stream *s;
    assert_int_equal(try_begin(f, &start, CS_MODE_ONE_WAY, &s), 0);
    hear(s, CS_TRACK_INBOUND, 2, 0, 0x10, 160);
    hear(s, CS_TRACK_OUTBOUND, 3, 10, 0x20, 160);
    cs_stream_end(s, CS_END_STOP);
    assert_true(tu_run_until(&f->loop, recorded, &f->obs, TU_WAIT_MS));
    size_t frames;
    int16_t *pcm = read_stereo(nth(&f->obs, CB_RECORDING, 0)->text, &frames);
    assert_int_equal(frames, 240);
    assert_run(pcm, 0, 0, 160, 0x10);
    assert_run(pcm, 0, 160, 240, -1);
    assert_run(pcm, 1, 0, 80, -1);
    assert_run(pcm, 1, 80, 240, 0x20);
    free(pcm);
}

static void a_call_that_cannot_be_recorded_goes_on(void **state)
{
    fixture *f = *state;
    tu_log_capture_start();
    cs_stream *s = begin(f, "CA-1", "MZ1", CS_MODE_TWO_WAY); /* not a valid file name */
    tu_log_capture_stop();
    assert_true(tu_log_contains("call: cannot record"));
    assert_null(s->call->rec);
    media(s, CS_TRACK_INBOUND, 2, 0, frame, sizeof frame);
    say(s, 0x20, 160);
    assert_int_equal(cs_stream_clear(s, CS_CLEAR_AGENT), 0);
    cs_stream_end(s, CS_END_STOP);
    assert_int_equal(count(&f->obs, CB_CALL_ENDED), 1);
    cs_recorders_stats st;
    cs_recorders_stats_get(f->recorders, &st);
    assert_int_equal(st.opened, 0);
}

static bool recording_event(void *data, const char *state)
{
    const observer *o = data;
    for (size_t i = 0; i < o->n; i++) {
        const seen *e = &o->seen[i];
        if (e->cb != CB_EVENT || e->what != CS_EVENT_RECORDING) continue;
        cJSON *j = parse(e->text);
        bool found = strcmp(jstr(j, "state"), state) == 0;
        cJSON_Delete(j);
        if (found) return true;
    }
    return false;
}

static bool recording_failed(void *data)
{
    return recording_event(data, "failed");
}

static bool recording_resumed(void *data)
{
    return recording_event(data, "resumed");
}

/* The detail of the first `recording` event in `state`. Caller frees. */
static cJSON *recording_detail(const observer *o, const char *state)
{
    for (size_t i = 0; i < o->n; i++) {
        const seen *e = &o->seen[i];
        if (e->cb != CB_EVENT || e->what != CS_EVENT_RECORDING) continue;
        cJSON *j = parse(e->text);
        if (strcmp(jstr(j, "state"), state) == 0) return j;
        cJSON_Delete(j);
    }
    fail_msg("no recording event \"%s\"", state);
    return NULL;
}

/* 20 ms of caller audio, the clock moving with it. */
static void speak(cs_stream *s, uint64_t *ts)
{
    now_ms += 20;
    hear(s, CS_TRACK_INBOUND, -1, *ts, 0x10, 160);
    *ts += 20;
}

/* The disk fills mid-call (a file-size limit fails writes the same way) and empties
 * again: the call goes on, hears of it as events, and keeps what was written. */
static void a_failing_recording_is_told_and_kept(void **state)
{
    fixture *f = *state;
    cs_stream *s = begin(f, "CA1", "MZ1", CS_MODE_TWO_WAY);
    uint64_t ts = 0;
    /* Room for 2 s: the caller's channel and ours. */
    tu_limit_file_size(CS_WAV_HEADER_LEN + 2 * 8000 * 4);
    tu_log_capture_start();
    for (int i = 0; i < 150 && !recording_failed(&f->obs); i++) {
        speak(s, &ts);
        tu_run_until(&f->loop, recording_failed, &f->obs, 5);
    }
    assert_true(tu_run_until(&f->loop, recording_failed, &f->obs, TU_WAIT_MS));
    tu_log_capture_stop();
    cJSON *j = recording_detail(&f->obs, "failed");
    assert_string_equal(jstr(j, "error"), "File too large");
    assert_string_equal(jstr(j, "code"), "EFBIG");
    double at_ms = jnum(j, "atMs");
    assert_true(at_ms > 0 && at_ms <= 2000);
    cJSON_Delete(j);
    assert_true(tu_log_contains("recorder: writing"));
    assert_int_equal(count(&f->obs, CB_CALL_ENDED), 0); /* the call goes on */

    tu_limit_file_size(-1);
    for (int i = 0; i < 500 && !recording_resumed(&f->obs); i++) {
        speak(s, &ts);
        cs_recording_flush(s->call->rec);
        tu_run_until(&f->loop, recording_resumed, &f->obs, 10);
    }
    j = recording_detail(&f->obs, "resumed");
    double lost_from = jnum(j, "lostFromMs"), lost_to = jnum(j, "lostToMs");
    assert_true(lost_from == at_ms);
    assert_true(lost_to > lost_from && lost_to <= (double)ts);
    assert_true(jnum(j, "lostMs") == lost_to - lost_from);
    cJSON_Delete(j);
    for (int i = 0; i < 10; i++) speak(s, &ts);
    cs_stream_end(s, CS_END_STOP);

    assert_true(tu_run_until(&f->loop, recorded, &f->obs, TU_WAIT_MS));
    const seen *r = nth(&f->obs, CB_RECORDING, 0);
    assert_int_equal(r->frames, ts * CS_FRAMES_PER_MS);
    j = recording_detail(&f->obs, "finished");
    assert_true(jnum(j, "durationMs") == (double)ts);
    assert_true(jnum(j, "lostMs") == lost_to - lost_from);
    assert_null(cJSON_GetObjectItemCaseSensitive(j, "error"));
    cJSON_Delete(j);
    size_t frames;
    int16_t *pcm = read_stereo(r->text, &frames);
    assert_int_equal(frames, ts * CS_FRAMES_PER_MS);
    size_t from = (size_t)lost_from * CS_FRAMES_PER_MS, to = (size_t)lost_to * CS_FRAMES_PER_MS;
    assert_run(pcm, 0, 0, from, 0x10);
    assert_run(pcm, 0, from, to, -1);
    assert_run(pcm, 0, to, frames, 0x10);
    free(pcm);
}

/* Nothing could be written: no recording is attached, and the event says why. */
static void a_recording_without_a_file_says_so(void **state)
{
    fixture *f = *state;
    tu_limit_file_size(0);
    cs_stream *s = begin(f, "CA1", "MZ1", CS_MODE_TWO_WAY);
    uint64_t ts = 0;
    speak(s, &ts);
    assert_true(tu_run_until(&f->loop, recording_failed, &f->obs, TU_WAIT_MS));
    cs_stream_end(s, CS_END_STOP);
    bool finished = false;
    for (int i = 0; i < 100 && !finished; i++) {
        tu_run_until(&f->loop, recorded, &f->obs, 10);
        finished = recording_event(&f->obs, "none");
    }
    tu_limit_file_size(-1);
    assert_true(finished);
    assert_int_equal(count(&f->obs, CB_RECORDING), 0);
    cJSON *j = recording_detail(&f->obs, "none");
    assert_string_equal(jstr(j, "code"), "EFBIG");
    assert_true(jnum(j, "lostMs") == 20);
    cJSON_Delete(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(begin_creates_the_call, setup, teardown),
        cmocka_unit_test_setup_teardown(streams_of_a_call_share_it, setup, teardown),
        cmocka_unit_test_setup_teardown(refused_starts_change_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(too_many_observers_are_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(media_is_counted_per_track, setup, teardown),
        cmocka_unit_test_setup_teardown(sequence_gaps_and_reordering, setup, teardown),
        cmocka_unit_test_setup_teardown(timestamp_jumps_are_gaps, setup, teardown),
        cmocka_unit_test_setup_teardown(caller_audio_is_placed_by_timestamp, setup, teardown),
        cmocka_unit_test_setup_teardown(dtmf_becomes_an_event, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_timestamps_cannot_run_ahead_of_arrival, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(audio_with_no_room_is_skipped, setup, teardown),
        cmocka_unit_test_setup_teardown(wild_timestamps_are_bad_frames_placed_by_arrival, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(each_stream_has_its_own_clock, setup, teardown),
        cmocka_unit_test_setup_teardown(each_frame_is_told_its_own_position, setup, teardown),
        cmocka_unit_test_setup_teardown(two_way_streams_get_their_agent, setup, teardown),
        cmocka_unit_test_setup_teardown(an_agent_that_fails_to_start_leaves_the_call_listening,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(agent_audio_is_paced_ahead_of_playback, setup, teardown),
        cmocka_unit_test_setup_teardown(marks_follow_sentences_and_utterances, setup, teardown),
        cmocka_unit_test_setup_teardown(an_utterance_whose_end_mark_is_lost_ends_after_the_grace,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(clear_reports_what_was_heard, setup, teardown),
        cmocka_unit_test_setup_teardown(text_without_word_timings_is_heard_in_proportion, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(caller_speech_barges_in, setup, teardown),
        cmocka_unit_test_setup_teardown(an_agent_may_refuse_interruption, setup, teardown),
        cmocka_unit_test_setup_teardown(an_answer_before_the_hangover_is_timed_from_its_start,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(the_agent_hangs_up_after_its_last_words, setup, teardown),
        cmocka_unit_test_setup_teardown(the_detector_hears_the_caller, setup, teardown),
        cmocka_unit_test_setup_teardown(a_turn_is_timed_from_the_end_of_speech, setup, teardown),
        cmocka_unit_test_setup_teardown(an_answer_begun_before_the_end_is_declared_is_timed, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(the_queue_is_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(agent_timer_runs_on_the_tick, setup, teardown),
        cmocka_unit_test_setup_teardown(a_stream_ending_mid_sentence_reports_and_closes_later,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(an_agent_ending_a_cut_utterance_does_not_finish_it_again,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(socket_errors_are_returned, setup, teardown),
        cmocka_unit_test_setup_teardown(marks_echo_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(marks_discarded_by_a_clear_echo_as_cleared, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(unknown_mark_echoes_are_bad_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(mark_ring_keeps_order_as_it_grows, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_messages_are_counted_and_logged_once, setup, teardown),
        cmocka_unit_test_setup_teardown(call_ends_with_its_last_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(freeing_the_registry_ends_leftovers, setup, teardown),
        cmocka_unit_test_setup_teardown(call_level_events, setup, teardown),
        cmocka_unit_test(labels),
        cmocka_unit_test_setup_teardown(stats_json_has_every_field, setup, teardown),
        cmocka_unit_test_setup_teardown(two_way_call_is_recorded_in_stereo, setup_recording,
                                        teardown),
        cmocka_unit_test_setup_teardown(one_way_stereo_records_the_other_party, setup_recording,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_failing_recording_is_told_and_kept, setup_recording,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_recording_without_a_file_says_so, setup_recording,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_call_that_cannot_be_recorded_goes_on, setup_recording,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
