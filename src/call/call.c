#include "call/call.h"

#include "call/call_int.h"
#include "call/talk.h"

#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/json.h"


static const char *const end_labels[] = {
#define CS_END_LABEL(name, label) label,
    CS_END_MAP(CS_END_LABEL)
#undef CS_END_LABEL
};

static const char *const event_labels[] = {
#define CS_EVENT_LABEL(name, label) label,
    CS_EVENT_MAP(CS_EVENT_LABEL)
#undef CS_EVENT_LABEL
};

const char *cs_end_label(enum cs_end_reason r)
{
    return (unsigned)r < CS_END_COUNT ? end_labels[r] : "unknown";
}

const char *cs_stream_mode_label(enum cs_stream_mode m)
{
    static const char *const labels[] = {"one-way", "two-way", "relay", "gather"};
    return (unsigned)m < sizeof labels / sizeof *labels ? labels[m] : "unknown";
}

const char *cs_event_label(enum cs_event_type t)
{
    return (unsigned)t < CS_EVENT_COUNT ? event_labels[t] : "unknown";
}

/* ---- observers ---- */

static void emit(cs_call *call, cs_stream *s, enum cs_event_type type, const cs_buf *detail)
{
    NOTIFY(call->calls, event, call, s, type, cs_wall_ms(), detail ? detail->data : NULL);
}

void cs_calls_event(cs_calls *calls, const char *call_sid, enum cs_event_type type,
                    const char *detail)
{
    cs_call *call = cs_calls_call(calls, cs_str_of(call_sid));
    if (call) {
        NOTIFY(calls, event, call, NULL, type, cs_wall_ms(), detail);
        return;
    }
    /* Not live here: observers get a stand-in carrying the sid. */
    cs_call standin = {.calls = calls, .sid = call_sid};
    NOTIFY(calls, event, &standin, NULL, type, cs_wall_ms(), detail);
}

/* ---- registry ---- */

void cs_calls_init(cs_calls *calls, cs_recorders *recorders)
{
    memset(calls, 0, sizeof *calls);
    calls->recorders = recorders;
    calls->max_ts_ms = UINT64_MAX;
    calls->ts_tolerance_ms = CS_TS_TOLERANCE_MS;
    calls->clock_ms = cs_mono_ms;
    calls->talk.lead_ms = 100;
    calls->talk.max_ms = 120000;
    calls->talk.mark_grace_ms = 2000;
    calls->talk.barge_in = true;
    calls->talk.vad = (cs_vad_opts){.min_speech_ms = 100, .hangover_ms = 600, .threshold_db = 8};
    cs_hist_init(&calls->stats.frame_seconds, cs_hist_bounds_frame, cs_hist_nbounds_frame);
    cs_hist_init(&calls->stats.voice_to_voice, cs_hist_bounds_latency, cs_hist_nbounds_latency);
    cs_hist_init(&calls->stats.barge_in_seconds, cs_hist_bounds_latency,
                 cs_hist_nbounds_latency);
}

void cs_calls_free(cs_calls *calls, enum cs_end_reason why)
{
    /* Owners end their streams first; whatever is left goes now. Ending a stream
     * changes the map, so iteration starts over each time. */
    for (;;) {
        size_t pos = 0;
        void *s;
        if (!cs_map_next(&calls->by_stream, &pos, NULL, &s)) break;
        cs_stream_end(s, why);
    }
    cs_map_free(&calls->by_stream);
    cs_map_free(&calls->by_call);
    cs_talk_free(calls);
}

int cs_calls_observe(cs_calls *calls, const cs_call_observer *o)
{
    if (calls->nobservers == CS_CALL_MAX_OBSERVERS) return CS_ELIMIT;
    calls->observers[calls->nobservers++] = *o;
    return 0;
}

size_t cs_calls_active(const cs_calls *calls)
{
    return calls->by_call.len;
}

size_t cs_calls_streams(const cs_calls *calls)
{
    return calls->by_stream.len;
}

cs_stream *cs_calls_stream(const cs_calls *calls, cs_str sid)
{
    return cs_map_get(&calls->by_stream, sid);
}

cs_call *cs_calls_call(const cs_calls *calls, cs_str sid)
{
    return cs_map_get(&calls->by_call, sid);
}

/* ---- calls ---- */

static cs_call *call_new(cs_calls *calls, const cs_pevent *start)
{
    cs_call *call = calloc(1, sizeof *call);
    if (!call) return NULL;
    call->calls = calls;
    cs_pool *p = &call->pool;
    call->sid = cs_pool_strndup(p, start->start.call_id);
    call->account_sid = cs_pool_strndup(p, start->start.account_id);
    size_t n = start->start.nparams;
    cs_kv *params = n ? cs_pool_alloc(p, n * sizeof *params) : NULL;
    bool ok = call->sid && call->account_sid && (n == 0 || params);
    for (size_t i = 0; ok && i < n; i++) {
        cs_str name = start->start.params[i].name, value = start->start.params[i].value;
        char *nm = cs_pool_strndup(p, name), *val = cs_pool_strndup(p, value);
        ok = nm && val;
        if (!ok) break;
        params[i] = (cs_kv){{nm, name.n}, {val, value.n}};
        /* From/To are not in a media `start`: our TwiML passes them as parameters. */
        if (strcmp(nm, "From") == 0) call->from = val;
        if (strcmp(nm, "To") == 0) call->to = val;
    }
    /* A relay's setup has them itself. */
    if (ok && start->start.from.n) ok = (call->from = cs_pool_strndup(p, start->start.from));
    if (ok && start->start.to.n) ok = (call->to = cs_pool_strndup(p, start->start.to));
    if (!ok || cs_map_put(&calls->by_call, cs_str_of(call->sid), call) < 0) {
        cs_pool_free(p);
        free(call);
        return NULL;
    }
    call->params = params;
    call->nparams = n;
    call->started_ms = cs_wall_ms();
    call->log.call = call->sid;
    calls->stats.calls_total++;
    NOTIFY(calls, call_started, call);
    return call;
}

/* ---- recordings ---- */

/* What a recording's callbacks need: it outlives the call until the file is done. */
typedef struct rec_ctx {
    cs_calls *calls;
    char sid[CS_SID_MAX + 1];
} rec_ctx;

static void rec_event(rec_ctx *x, cs_buf *detail, cs_json *j, int err)
{
    if (err) {
        cs_json_kstr(j, "error", cs_strerror(err));
        const char *code = err > -4096 ? strerrorname_np(-err) : NULL;
        if (code) cs_json_kstr(j, "code", code);
    }
    cs_json_obj_end(j);
    if (cs_json_end(j) == 0) cs_calls_event(x->calls, x->sid, CS_EVENT_RECORDING, detail->data);
    cs_buf_free(detail);
}

/* The file failed, or writes again: a `recording` event says so while the call goes on. */
static void recording_news(void *data, enum cs_recording_news what, int err, uint64_t from,
                           uint64_t to)
{
    rec_ctx *x = data;
    if (what == CS_REC_CREATED) { /* where it is, for whoever serves it while the call runs */
        const cs_call *call = cs_calls_call(x->calls, cs_str_of(x->sid));
        const char *path = call && call->rec ? cs_recording_path(call->rec) : NULL;
        if (path) NOTIFY(x->calls, recording_started, x->sid, path);
        return;
    }
    cs_buf detail = CS_BUF_INIT(DETAIL_MAX);
    cs_json j;
    cs_json_init(&j, &detail);
    cs_json_obj(&j);
    cs_json_kstr(&j, "state", cs_recording_news_label(what));
    if (what == CS_REC_FAILED) {
        cs_json_kuint(&j, "atMs", from / CS_FRAMES_PER_MS);
    } else {
        cs_json_kuint(&j, "lostFromMs", from / CS_FRAMES_PER_MS);
        cs_json_kuint(&j, "lostToMs", to / CS_FRAMES_PER_MS);
        cs_json_kuint(&j, "lostMs", (to - from) / CS_FRAMES_PER_MS);
    }
    rec_event(data, &detail, &j, err);
}

/* What was written is kept and attached to the call, even if writing failed part way. */
static void recording_done(void *data, const cs_recording_result *res)
{
    rec_ctx *x = data;
    if (res->path) NOTIFY(x->calls, recording, x->sid, res->path, res->frames);
    cs_buf detail = CS_BUF_INIT(DETAIL_MAX);
    cs_json j;
    cs_json_init(&j, &detail);
    cs_json_obj(&j);
    cs_json_kstr(&j, "state", res->path ? "finished" : "none");
    if (res->path) cs_json_kuint(&j, "durationMs", res->frames / CS_FRAMES_PER_MS);
    if (res->lost_frames) cs_json_kuint(&j, "lostMs", res->lost_frames / CS_FRAMES_PER_MS);
    rec_event(x, &detail, &j, res->err);
    free(x);
}

static void recording_open(cs_call *call, cs_stream *s, bool stereo)
{
    cs_calls *calls = call->calls;
    call->rec_channels = stereo ? 2 : 1;
    rec_ctx *x = calloc(1, sizeof *x);
    int rc = x ? cs_recording_open(calls->recorders, call->sid, call->rec_channels, &call->rec)
               : -ENOMEM;
    if (rc < 0) {
        free(x);
        const cs_log_ctx *prev = cs_log_set_ctx(&s->log);
        cs_error("call: cannot record: %s", cs_strerror(rc));
        cs_log_set_ctx(prev);
        return;
    }
    x->calls = calls;
    snprintf(x->sid, sizeof x->sid, "%s", call->sid);
    call->rec_ctx = x;
    cs_recording_on_news(call->rec, recording_news, x);
}

static void call_end(cs_call *call)
{
    cs_calls *calls = call->calls;
    call->ended_ms = cs_wall_ms();
    if (call->rec) {
        cs_recording_close(call->rec, recording_done, call->rec_ctx);
        call->rec = NULL;
    }
    NOTIFY(calls, call_ended, call);
    cs_map_del(&calls->by_call, cs_str_of(call->sid));
    cs_pool_free(&call->pool);
    free(call);
}

/* ---- streams ---- */

static void log_ctx_set(cs_stream *s)
{
    s->log.call = s->call->sid;
    s->log.stream = s->sid;
}

static void start_detail(cs_buf *out, const cs_stream *s, const cs_pevent *ev)
{
    cs_json j;
    cs_json_init(&j, out);
    cs_json_obj(&j);
    cs_json_kstr(&j, "streamSid", s->sid);
    cs_json_key(&j, "tracks");
    cs_json_arr(&j);
    if (s->tracks & CS_TRACK_BIT(CS_TRACK_INBOUND)) cs_json_str(&j, "inbound");
    if (s->tracks & CS_TRACK_BIT(CS_TRACK_OUTBOUND)) cs_json_str(&j, "outbound");
    cs_json_arr_end(&j);
    cs_json_kstr(&j, "mode", cs_stream_mode_label(s->mode));
    if (cs_stream_relay(s)) {
        if (ev->start.from.n) {
            cs_json_key(&j, "from");
            cs_json_strn(&j, ev->start.from.p, ev->start.from.n);
        }
        if (ev->start.to.n) {
            cs_json_key(&j, "to");
            cs_json_strn(&j, ev->start.to.p, ev->start.to.n);
        }
    } else {
        cs_json_key(&j, "mediaFormat");
        cs_json_obj(&j);
        cs_json_key(&j, "encoding");
        cs_json_strn(&j, ev->start.encoding.p, ev->start.encoding.n);
        cs_json_kuint(&j, "sampleRate", ev->start.sample_rate);
        cs_json_kuint(&j, "channels", ev->start.channels);
        cs_json_obj_end(&j);
    }
    cs_json_key(&j, "customParameters");
    cs_json_obj(&j);
    for (size_t i = 0; i < ev->start.nparams; i++) {
        const cs_kv *kv = &ev->start.params[i];
        char name[256];
        cs_str_copy(name, sizeof name, kv->name);
        cs_json_key(&j, name);
        cs_json_strn(&j, kv->value.p, kv->value.n);
    }
    cs_json_obj_end(&j);
    cs_json_obj_end(&j);
}

int cs_stream_begin(cs_calls *calls, const cs_pevent *start, enum cs_stream_mode mode, bool stereo,
                    const cs_stream_sink *sink, void *owner, const cs_stream_stats *pre,
                    cs_stream **out)
{
    cs_str sid = start->start.stream_id;
    if (sid.n == 0 || sid.n > CS_SID_MAX || start->start.call_id.n > CS_SID_MAX) return -EINVAL;
    if (cs_calls_stream(calls, sid)) return CS_ESTATE;
    const cs_agent_ops *agent = mode != CS_MODE_ONE_WAY && calls->talk.agent_for
                                    ? calls->talk.agent_for(calls->talk.agent_data, start)
                                    : NULL;
    cs_call *call = cs_calls_call(calls, start->start.call_id);
    bool fresh = !call;
    if (fresh && !(call = call_new(calls, start))) return -ENOMEM;
    if (call->nstreams == CS_CALL_MAX_STREAMS) return CS_ELIMIT;

    cs_stream *s = calloc(1, sizeof *s);
    if (!s) {
        if (fresh) call_end(call);
        return -ENOMEM;
    }
    s->call = call;
    s->calls = calls;
    cs_str_copy(s->sid, sizeof s->sid, sid);
    s->tracks = start->start.tracks;
    s->mode = mode;
    s->sink = *sink;
    s->owner = owner;
    /* The first stream starts the call's timeline: its offset is exactly 0. */
    s->started_ms = fresh ? call->started_ms : cs_wall_ms();
    s->clock_origin_ms = calls->clock_ms();
    s->offset_ms = s->started_ms - call->started_ms;
    s->last_seq = start->seq;
    cs_playout_init(&s->playout, (uint64_t)calls->talk.max_ms * CS_FRAMES_PER_MS);
    s->agent_ops = agent;
    if (pre) s->stats = *pre;
    log_ctx_set(s);
    if (cs_map_put(&calls->by_stream, cs_str_of(s->sid), s) < 0) {
        cs_playout_free(&s->playout);
        free(s);
        if (fresh) call_end(call);
        return -ENOMEM;
    }
    call->streams[call->nstreams++] = s;
    calls->stats.streams_total++;

    /* A relay's audio never reaches us (nor a gather's): its provider records the call if
     * asked. */
    if (calls->recorders && !call->rec && !cs_stream_relay(s))
        recording_open(call, s, stereo || agent);
    if (cs_stream_relay(s)) cs_talk_relay_begin(s);
    NOTIFY(calls, stream_started, s);
    cs_buf detail = CS_BUF_INIT(DETAIL_MAX);
    start_detail(&detail, s, start);
    emit(call, s, CS_EVENT_START, &detail);
    cs_buf_free(&detail);
    if (agent) cs_talk_open(s, agent);
    *out = s;
    return 0;
}

static void track_seq(cs_stream *s, int64_t seq)
{
    if (seq < 0) return;
    if (s->last_seq >= 0) {
        if (seq > s->last_seq + 1) {
            uint64_t gap = (uint64_t)(seq - s->last_seq - 1);
            s->stats.seq_gaps += gap;
            s->calls->stats.seq_gaps += gap;
        } else if (seq <= s->last_seq) {
            s->stats.seq_reordered++;
            return;
        }
    }
    s->last_seq = seq;
}

/* Whether `n` bytes of audio from `at` ms end by `max_ms` (a part of a millisecond
 * counts whole). */
static bool ends_by(uint64_t at, size_t n, uint64_t max_ms)
{
    return at <= max_ms && max_ms - at >= (n + CS_FRAMES_PER_MS - 1) / CS_FRAMES_PER_MS;
}

/* Where `n` bytes of media of track `t` stamped `ts` go on the stream's clock (ms), in
 * *at; false if nowhere (counted and skipped). See cs_stream_event. */
static bool place_ms(cs_stream *s, enum cs_track t, uint64_t ts, size_t n, uint64_t *at)
{
    cs_calls *calls = s->calls;
    uint64_t now = calls->clock_ms() - s->clock_origin_ms, tol = calls->ts_tolerance_ms;
    uint64_t expected = s->next_ts[t], max = calls->max_ts_ms;
    const char *why = !ends_by(ts, n, max)  ? "past MAX_CALL_S"
                      : ts > now + tol      ? "ahead of its arrival by more than the tolerance"
                      : ts + tol < expected ? "a jump back by more than the tolerance"
                                            : NULL;
    if (!why) {
        *at = ts;
        return true;
    }
    /* By arrival: after the track's audio, or at arrival after a pause. Audio sent faster
     * than real time may not run the track more than the tolerance ahead of arrival. */
    uint64_t by_arrival = expected + tol >= now ? expected : now;
    char msg[200];
    if (by_arrival > now + tol || !ends_by(by_arrival, n, max)) {
        snprintf(msg, sizeof msg,
                 "media timestamp %llu ms is %s, and by arrival its audio would %s; skipped",
                 (unsigned long long)ts, why,
                 by_arrival > now + tol ? "run its track ahead of arrival by more than the "
                                          "tolerance"
                                        : "pass MAX_CALL_S");
        cs_stream_bad(s, CS_BAD_OVERRUN, msg);
        return false;
    }
    snprintf(msg, sizeof msg, "media timestamp %llu ms is %s; placed by arrival",
             (unsigned long long)ts, why);
    cs_stream_bad(s, CS_BAD_TIMESTAMP, msg);
    *at = by_arrival;
    return true;
}

/* Places the audio on the timeline and hands it to the recording and the observers;
 * false if it could not be placed. */
static bool on_media(cs_stream *s, const cs_pevent *ev, uint64_t *pos_out)
{
    enum cs_track t = ev->media.track;
    size_t n = ev->media.len;
    s->stats.frames[t]++;
    s->stats.bytes[t] += n;
    s->calls->stats.frames_in[t]++;
    s->calls->stats.bytes_in[t] += n;
    uint64_t ts;
    if (!place_ms(s, t, ev->media.timestamp_ms, n, &ts)) return false;
    /* A jump of more than a frame means lost packets: the gap stays silent. */
    if (s->next_ts[t] && ts > s->next_ts[t] + 20) s->stats.ts_gaps++;
    /* A late frame fills a hole behind; it does not move the expected time back. */
    if (ts + n / CS_FRAMES_PER_MS > s->next_ts[t]) s->next_ts[t] = ts + n / CS_FRAMES_PER_MS;
    uint64_t pos = (ts + (uint64_t)s->offset_ms) * CS_FRAMES_PER_MS;
    cs_call *call = s->call;
    /* Twilio's own outbound track (one-way streams) is the other party: channel 1. */
    unsigned channel = t == CS_TRACK_INBOUND ? 0 : 1;
    if (call->rec) cs_recording_audio(call->rec, channel, pos, ev->media.payload, n);
    if (t == CS_TRACK_INBOUND && pos + n > s->heard_end) s->heard_end = pos + n;
    NOTIFY(s->calls, audio, s, t == CS_TRACK_INBOUND ? CS_SPEAKER_CALLER : CS_SPEAKER_AGENT, pos,
           ev->media.payload, n);
    if (t == CS_TRACK_INBOUND && s->agent) cs_talk_audio(s, pos, ev->media.payload, n);
    *pos_out = pos;
    return true;
}

static int on_mark(cs_stream *s, cs_str name, bool *played)
{
    uint32_t k = 0;
    for (; k < s->marks_len; k++) {
        cs_mark *m = &s->marks[(s->marks_head + k) % s->marks_cap];
        if (cs_str_eqz(name, m->name)) break;
    }
    if (k == s->marks_len) {
        s->stats.marks_unknown++;
        cs_stream_bad(s, CS_BAD_FIELD, "mark echo for a name we did not send");
        return CS_ENOTFOUND;
    }
    cs_mark m = s->marks[(s->marks_head + k) % s->marks_cap];
    /* Echoes come in order; close the hole if one did not. */
    for (uint32_t i = k; i > 0; i--)
        s->marks[(s->marks_head + i) % s->marks_cap] =
            s->marks[(s->marks_head + i - 1) % s->marks_cap];
    s->marks_head = (s->marks_head + 1) % s->marks_cap;
    s->marks_len--;

    /* A clear makes Twilio echo every pending mark: those were discarded, not played. */
    bool was_played = m.clear_epoch == s->clear_epoch;
    *played = was_played;
    if (was_played) {
        s->stats.marks_played++;
        s->calls->stats.marks_played++;
    } else {
        s->stats.marks_cleared++;
        s->calls->stats.marks_cleared++;
    }
    cs_buf detail = CS_BUF_INIT(DETAIL_MAX);
    cs_json j;
    cs_json_init(&j, &detail);
    cs_json_obj(&j);
    cs_json_kstr(&j, "name", m.name);
    cs_json_kstr(&j, "outcome", was_played ? "played" : "cleared");
    cs_json_kdouble(&j, "ms", (double)(cs_mono_ns() - m.sent_ns) / 1e6);
    if (m.what.utt) {
        cs_json_kuint(&j, "utterance", m.what.utt);
        cs_json_kuint(&j, "atMs", m.pos / CS_FRAMES_PER_MS);
    }
    cs_json_obj_end(&j);
    emit(s->call, s, CS_EVENT_MARK, &detail);
    cs_buf_free(&detail);
    if (s->agent) cs_talk_mark(s, &m, was_played);
    return 0;
}

int cs_stream_event(cs_stream *s, const cs_pevent *ev, cs_stream_outcome *out)
{
    cs_stream_outcome ignored;
    if (!out) out = &ignored;
    s->stats.messages++;
    track_seq(s, ev->seq);
    switch (ev->type) {
    case CS_PEV_MEDIA:
        out->skipped = !on_media(s, ev, &out->pos);
        return 0;
    case CS_PEV_DTMF: {
        s->stats.dtmf++;
        s->calls->stats.dtmf++;
        char detail[32];
        snprintf(detail, sizeof detail, "{\"digit\":\"%c\"}", ev->dtmf.digit);
        NOTIFY(s->calls, event, s->call, s, CS_EVENT_DTMF, cs_wall_ms(), detail);
        if (s->agent) cs_talk_dtmf(s, ev->dtmf.digit);
        return 0;
    }
    case CS_PEV_MARK:
        return on_mark(s, ev->mark.name, &out->played);
    case CS_PEV_STOP:
        return 0;
    case CS_PEV_PROMPT:
        cs_talk_prompt(s, ev->prompt.text.p, ev->prompt.last);
        return 0;
    case CS_PEV_INTERRUPT:
        cs_talk_interrupt(s, ev->interrupt.heard.p, ev->interrupt.heard_ms);
        return 0;
    case CS_PEV_PEER_ERROR: {
        const cs_log_ctx *prev = cs_log_set_ctx(&s->log);
        cs_warn("call: the provider reports an error: %.*s", (int)ev->peer_error.description.n,
                ev->peer_error.description.p);
        cs_log_set_ctx(prev);
        cs_buf detail = CS_BUF_INIT(DETAIL_MAX);
        cs_json j;
        cs_json_init(&j, &detail);
        cs_json_obj(&j);
        cs_json_kstr(&j, "type", "error");
        cs_json_key(&j, "description");
        cs_json_strn(&j, ev->peer_error.description.p, ev->peer_error.description.n);
        cs_json_obj_end(&j);
        if (cs_json_end(&j) == 0) emit(s->call, s, CS_EVENT_RELAY, &detail);
        cs_buf_free(&detail);
        return 0;
    }
    case CS_PEV_CONNECTED:
    case CS_PEV_START:
        break;
    }
    cs_stream_bad(s, CS_BAD_ORDER, "connected or start after the stream started");
    return CS_ESTATE;
}

void cs_stream_bad(cs_stream *s, enum cs_bad kind, const char *why)
{
    s->stats.bad[kind]++;
    s->calls->stats.bad[kind]++;
    if (s->bad_logged & (1u << kind)) return;
    s->bad_logged |= 1u << kind;
    const cs_log_ctx *prev = cs_log_set_ctx(&s->log);
    cs_warn("media: skipped a bad message (%s): %s; further ones are only counted",
            cs_bad_label(kind), why);
    cs_log_set_ctx(prev);
    cs_buf detail = CS_BUF_INIT(DETAIL_MAX);
    cs_json j;
    cs_json_init(&j, &detail);
    cs_json_obj(&j);
    cs_json_kstr(&j, "kind", cs_bad_label(kind));
    cs_json_kstr(&j, "message", why);
    cs_json_obj_end(&j);
    emit(s->call, s, CS_EVENT_ERROR, &detail);
    cs_buf_free(&detail);
}

void cs_stream_end(cs_stream *s, enum cs_end_reason why)
{
    cs_call *call = s->call;
    cs_calls *calls = s->calls;
    if (s->agent) cs_talk_close(s);
    s->ended_ms = cs_wall_ms();
    calls->stats.ended[why]++;

    cs_buf detail = CS_BUF_INIT(DETAIL_MAX);
    cs_json j;
    cs_json_init(&j, &detail);
    cs_json_obj(&j);
    cs_json_kstr(&j, "streamSid", s->sid);
    cs_json_kstr(&j, "reason", cs_end_label(why));
    cs_json_kint(&j, "durationMs", s->ended_ms - s->started_ms);
    cs_json_obj_end(&j);
    emit(call, s, CS_EVENT_STOP, &detail);
    cs_buf_free(&detail);
    NOTIFY(calls, stream_ended, s, why);

    cs_map_del(&calls->by_stream, cs_str_of(s->sid));
    for (size_t i = 0; i < call->nstreams; i++) {
        if (call->streams[i] == s) {
            call->streams[i] = call->streams[--call->nstreams];
            break;
        }
    }
    if (call->rec) cs_recording_flush(call->rec);
    cs_playout_free(&s->playout);
    cs_buf_free(&s->relay.text);
    free(s->relay.handoff);
    free(s->marks);
    free(s);
    if (call->nstreams == 0) call_end(call);
}

/* ---- talking back (the rest is in talk.c) ---- */

const char *cs_stream_param(const cs_stream *s, const char *name)
{
    const cs_call *call = s->call;
    for (size_t i = 0; i < call->nparams; i++)
        if (cs_str_eqz(call->params[i].name, name)) return call->params[i].value.p;
    return NULL;
}

uint64_t cs_stream_now(const cs_stream *s)
{
    uint64_t ms = s->calls->clock_ms() - s->clock_origin_ms + (uint64_t)s->offset_ms;
    return ms * CS_FRAMES_PER_MS;
}

uint64_t cs_stream_unplayed(const cs_stream *s)
{
    uint64_t now = cs_stream_now(s);
    return s->play_end > now ? s->play_end - now : 0;
}

int cs_stream_stats_json(const cs_stream *s, cs_buf *out)
{
    const cs_stream_stats *st = &s->stats;
    cs_json j;
    cs_json_init(&j, out);
    cs_json_obj(&j);
    cs_json_key(&j, "frames");
    cs_json_obj(&j);
    cs_json_kuint(&j, "inbound", st->frames[CS_TRACK_INBOUND]);
    cs_json_kuint(&j, "outbound", st->frames[CS_TRACK_OUTBOUND]);
    cs_json_obj_end(&j);
    cs_json_key(&j, "bytes");
    cs_json_obj(&j);
    cs_json_kuint(&j, "inbound", st->bytes[CS_TRACK_INBOUND]);
    cs_json_kuint(&j, "outbound", st->bytes[CS_TRACK_OUTBOUND]);
    cs_json_obj_end(&j);
    cs_json_kuint(&j, "messages", st->messages);
    cs_json_kuint(&j, "sequenceGaps", st->seq_gaps);
    cs_json_kuint(&j, "sequenceReordered", st->seq_reordered);
    cs_json_kuint(&j, "timestampGaps", st->ts_gaps);
    cs_json_key(&j, "badFrames");
    cs_json_obj(&j);
    for (int k = 0; k < CS_BAD_COUNT; k++) cs_json_kuint(&j, cs_bad_label(k), st->bad[k]);
    cs_json_obj_end(&j);
    cs_json_kuint(&j, "framesOut", st->frames_out);
    cs_json_kuint(&j, "bytesOut", st->bytes_out);
    cs_json_kuint(&j, "marksSent", st->marks_sent);
    cs_json_kuint(&j, "marksPlayed", st->marks_played);
    cs_json_kuint(&j, "marksCleared", st->marks_cleared);
    cs_json_kuint(&j, "marksUnknown", st->marks_unknown);
    cs_json_kuint(&j, "clears", st->clears);
    cs_json_kuint(&j, "bargeIns", st->barge_ins);
    cs_json_kuint(&j, "underruns", st->underruns);
    cs_json_kuint(&j, "utterances", st->utterances);
    cs_json_kuint(&j, "dtmf", st->dtmf);
    if (cs_stream_relay(s)) {
        cs_json_kuint(&j, "prompts", st->prompts);
        cs_json_kuint(&j, "interrupts", st->interrupts);
        cs_json_kuint(&j, "textsOut", st->texts_out);
    }
    int64_t end = s->ended_ms ? s->ended_ms : cs_wall_ms();
    cs_json_kint(&j, "durationMs", end - s->started_ms);
    cs_json_obj_end(&j);
    return cs_json_end(&j);
}
