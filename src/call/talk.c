#include "call/talk.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "call/call_int.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"

#define TICK_MS 20 /* pacing and agent timers */

static const char *const clear_labels[] = {"speech", "dtmf", "agent", "end"};

const char *cs_clear_label(enum cs_clear_why why)
{
    return (unsigned)why < sizeof clear_labels / sizeof *clear_labels ? clear_labels[why]
                                                                      : "unknown";
}

static bool can_talk(const cs_stream *s)
{
    return s->mode != CS_MODE_ONE_WAY && s->agent;
}

/* Audio goes back: a two-way media stream with an agent. */
static bool can_play(const cs_stream *s)
{
    return s->mode == CS_MODE_TWO_WAY && s->agent;
}

bool cs_stream_relay(const cs_stream *s)
{
    return s->mode == CS_MODE_RELAY || s->mode == CS_MODE_GATHER;
}

/* ---- sending ---- */

static int send_frame(cs_stream *s, uint64_t at, const uint8_t *ulaw, size_t n)
{
    int rc = s->sink.media(s->sink.data, ulaw, n);
    if (rc < 0) return rc;
    cs_calls *calls = s->calls;
    s->stats.frames_out++;
    s->stats.bytes_out += n;
    calls->stats.frames_out++;
    calls->stats.bytes_out += n;
    if (s->call->rec) cs_recording_audio(s->call->rec, 1, at, ulaw, n);
    NOTIFY(calls, audio, s, CS_SPEAKER_AGENT, at, ulaw, n);
    return 0;
}

/* Keeps the mark in the ring of marks awaiting their echo, and sends it. */
static int send_mark(cs_stream *s, const cs_playout_mark *pm)
{
    if (s->marks_len == CS_MARKS_MAX) return CS_ELIMIT;
    if (s->marks_len == s->marks_cap) {
        uint32_t cap = s->marks_cap ? s->marks_cap * 2 : 8;
        cs_mark *m = malloc(cap * sizeof *m);
        if (!m) return -ENOMEM;
        for (uint32_t i = 0; i < s->marks_len; i++)
            m[i] = s->marks[(s->marks_head + i) % s->marks_cap];
        free(s->marks);
        s->marks = m;
        s->marks_cap = cap;
        s->marks_head = 0;
    }
    cs_mark *m = &s->marks[(s->marks_head + s->marks_len) % s->marks_cap];
    int n = pm->kind == CS_MARK_END
                ? snprintf(m->name, sizeof m->name, "u%u-end", pm->utt)
                : snprintf(m->name, sizeof m->name, "u%u-s%u", pm->utt, pm->seq);
    int rc = s->sink.mark(s->sink.data, (cs_str){m->name, (size_t)n});
    if (rc < 0) return rc;
    m->sent_ns = cs_mono_ns();
    m->clear_epoch = s->clear_epoch;
    m->what = *pm;
    m->pos = s->play_end;
    s->marks_len++;
    s->stats.marks_sent++;
    s->calls->stats.marks_sent++;
    return 0;
}

/* ---- what was heard ---- */

static void said(cs_stream *s, const cs_heard *h)
{
    NOTIFY(s->calls, said, s, h);
}

static void report_played(void *data, const cs_heard *h)
{
    cs_stream *s = data;
    said(s, h);
    if (s->agent && s->agent->ops->played) s->agent->ops->played(s->agent, h);
}

/* A clear in progress: its reason and the event it becomes. */
typedef struct clearing {
    cs_stream *s;
    enum cs_clear_why why;
    cs_json *j;
} clearing;

static void report_cut(void *data, const cs_heard *h)
{
    clearing *c = data;
    cs_json *j = c->j;
    cs_json_obj(j);
    cs_json_kuint(j, "utterance", h->utt);
    cs_json_kuint(j, "heardMs", h->heard_ms);
    cs_json_kuint(j, "totalMs", h->total_ms);
    cs_json_kstr(j, "heardText", h->text);
    cs_json_kbool(j, "cut", h->cut);
    cs_json_obj_end(j);
    said(c->s, h);
    cs_agent *a = c->s->agent;
    if (a && a->ops->cleared) a->ops->cleared(a, h, c->why);
}

/* ---- turns ---- */

static void note(cs_stream *s, enum cs_turn_stage stage)
{
    if (!s->turn.armed || (s->turn.noted & (1u << stage))) return;
    s->turn.noted |= 1u << stage;
    s->turn.at[stage] = cs_stream_now(s);
}

void cs_agent_heard(cs_agent *a, const cs_transcript *t)
{
    if (a->stream) NOTIFY(a->stream->calls, heard, a->stream, t);
}

void cs_agent_note(cs_agent *a, enum cs_turn_stage stage)
{
    if (a->stream) note(a->stream, stage);
}

/* The answer's first frame goes out at `pos`: the turn is measured. */
static void turn_answered(cs_stream *s, uint64_t pos)
{
    static const char *const keys[] = {"detectedMs", "finalMs", "replyMs", "firstAudioMs"};
    s->turn.armed = s->turn.open = false;
    uint64_t end = s->turn.end, v2v = pos > end ? pos - end : 0;
    cs_hist_observe(&s->calls->stats.voice_to_voice, (double)v2v / (CS_FRAMES_PER_MS * 1000.0));
    char detail[320];
    int n = snprintf(detail, sizeof detail, "{\"speechEndMs\":%llu,\"voiceToVoiceMs\":%llu",
                     (unsigned long long)(end / CS_FRAMES_PER_MS),
                     (unsigned long long)(v2v / CS_FRAMES_PER_MS));
    for (int k = 0; k < 4; k++) {
        uint64_t at = s->turn.at[k];
        if (s->turn.noted & (1u << k))
            n += snprintf(detail + n, sizeof detail - (size_t)n, ",\"%s\":%llu", keys[k],
                          (unsigned long long)((at > end ? at - end : 0) / CS_FRAMES_PER_MS));
    }
    snprintf(detail + n, sizeof detail - (size_t)n, "}");
    NOTIFY(s->calls, event, s->call, s, CS_EVENT_TURN, cs_wall_ms(), detail);
}

/* The caller's speech begins or ends. An answer may begin before the detector declares
 * the end (an agent answering on a final transcript that came first): its first frame
 * after the speech's end then measures the turn as soon as the end is known. */
static void turn_edge(cs_stream *s, bool started, uint64_t pos)
{
    if (started || !s->turn.armed) {
        s->turn.armed = true;
        s->turn.open = s->turn.began = false;
        s->turn.noted = 0;
    }
    if (started) return;
    s->turn.end = pos;
    note(s, CS_TURN_DETECTED);
    if (s->turn.began && s->turn.first >= pos) {
        turn_answered(s, s->turn.first);
        return;
    }
    s->turn.open = true;
}

/* ---- pacing ---- */

/* Sends what is due: everything up to PLAYOUT_LEAD_MS ahead of now, marks in place. */
static void pump(cs_stream *s)
{
    uint64_t now = cs_stream_now(s);
    uint64_t target = now + (uint64_t)s->calls->talk.lead_ms * CS_FRAMES_PER_MS;
    for (;;) {
        cs_playout_mark pm;
        if (cs_playout_mark_due(&s->playout, &pm)) {
            int rc = send_mark(s, &pm);
            if (rc < 0 && rc != CS_ELIMIT) return; /* the socket failed: the stream ends */
            cs_playout_mark_sent(&s->playout);
            if (pm.kind == CS_MARK_END) s->mid_utterance = false;
            continue;
        }
        uint64_t at = s->play_end > now ? s->play_end : now;
        if (at >= target) break;
        const uint8_t *data;
        size_t n = cs_playout_peek(&s->playout, &data, CS_PLAYOUT_FRAME);
        if (n == 0) break;
        if (s->mid_utterance && at > s->play_end) {
            s->stats.underruns++;
            s->calls->stats.underruns++;
        }
        if (send_frame(s, at, data, n) < 0) return;
        if (!s->mid_utterance) { /* an utterance begins: the answer, if a turn awaits one */
            if (s->turn.open) {
                turn_answered(s, at);
            } else if (s->turn.armed && !s->turn.began) {
                s->turn.began = true;
                s->turn.first = at;
            }
        }
        cs_playout_taken(&s->playout, n, at);
        s->play_end = at + n;
        s->mid_utterance = true;
    }
    cs_playout_expire(&s->playout, now, (uint64_t)s->calls->talk.mark_grace_ms * CS_FRAMES_PER_MS,
                      report_played, s);
}

/* ---- speaking ---- */

static int relay_begin(cs_stream *s, uint32_t *utt);
static int relay_end(cs_stream *s, uint32_t utt);

int cs_stream_say_begin(cs_stream *s, uint32_t *utt)
{
    if (!can_talk(s)) return CS_ESTATE;
    int rc = cs_stream_relay(s) ? relay_begin(s, utt) : cs_playout_begin(&s->playout, utt);
    if (rc < 0) return rc;
    s->stats.utterances++;
    s->calls->stats.utterances++;
    return 0;
}

int cs_stream_say_audio(cs_stream *s, uint32_t utt, const uint8_t *ulaw, size_t n)
{
    if (!can_play(s)) return CS_ESTATE;
    int rc = cs_playout_push(&s->playout, utt, ulaw, n);
    if (rc == CS_EFULL) s->calls->stats.playout_full++;
    if (rc < 0) return rc;
    note(s, CS_TURN_AUDIO);
    pump(s); /* the first frames go at once */
    return 0;
}

int cs_stream_say_sentence(cs_stream *s, uint32_t utt, const char *text, size_t len,
                           const cs_word *words, size_t nwords)
{
    if (!can_play(s)) return CS_ESTATE;
    int rc = cs_playout_sentence(&s->playout, utt, text, len, words, nwords);
    if (rc == 0) pump(s);
    return rc;
}

int cs_stream_say_end(cs_stream *s, uint32_t utt)
{
    if (!can_talk(s)) return CS_ESTATE;
    if (cs_stream_relay(s)) return relay_end(s, utt);
    int rc = cs_playout_end(&s->playout, utt);
    if (rc == 0) pump(s);
    return rc;
}

bool cs_stream_talking(const cs_stream *s)
{
    if (cs_stream_relay(s)) return can_talk(s) && s->relay.utt && !s->relay.ended;
    return can_talk(s) && (cs_playout_busy(&s->playout) || cs_stream_unplayed(s) > 0);
}

/* Drops our queue and tells whom it concerns; `send` says whether the provider is told
 * (not when the stream is ending). */
static int clear(cs_stream *s, enum cs_clear_why why, bool send)
{
    if (send) {
        int rc = s->sink.clear(s->sink.data);
        if (rc < 0) return rc;
        s->clear_epoch++;
        s->stats.clears++;
        s->calls->stats.clears++;
    }
    uint64_t now = cs_stream_now(s);
    uint64_t pending = cs_playout_pending(&s->playout);
    cs_buf detail = CS_BUF_INIT(DETAIL_MAX);
    cs_json j;
    cs_json_init(&j, &detail);
    cs_json_obj(&j);
    cs_json_kstr(&j, "reason", cs_clear_label(why));
    cs_json_key(&j, "utterances");
    cs_json_arr(&j);
    clearing c = {s, why, &j};
    uint64_t beyond = cs_playout_cut(&s->playout, now, report_cut, &c);
    cs_json_arr_end(&j);
    /* What was sent to play after now is never heard: out of the recording too. */
    if (s->play_end > now) {
        if (s->call->rec) cs_recording_cut(s->call->rec, 1, now);
        s->play_end = now;
    }
    s->mid_utterance = false;
    cs_json_kuint(&j, "discardedMs", (beyond + pending) / CS_FRAMES_PER_MS);
    cs_json_kuint(&j, "pendingMarks", s->marks_len);
    cs_json_obj_end(&j);
    if (send && cs_json_end(&j) == 0)
        NOTIFY(s->calls, event, s->call, s, CS_EVENT_CLEAR, cs_wall_ms(), detail.data);
    cs_buf_free(&detail);
    return 0;
}

int cs_stream_agent_say(cs_stream *s, const char *text, size_t len)
{
    if (!can_talk(s) || !s->agent->ops->say) return CS_ESTATE;
    return s->agent->ops->say(s->agent, text, len);
}

int cs_stream_hangup(cs_stream *s, bool after_playout)
{
    if (!can_talk(s)) return CS_ESTATE;
    s->hangup = after_playout ? 2 : 1;
    return 0;
}

static void relay_heard(cs_stream *s, bool cut, enum cs_clear_why why, const char *text, size_t len,
                        uint64_t heard_ms);

int cs_stream_clear(cs_stream *s, enum cs_clear_why why)
{
    if (!can_talk(s)) return CS_ESTATE;
    if (cs_stream_relay(s)) {
        if (s->relay.utt) relay_heard(s, true, why, s->relay.text.data, s->relay.text.len, 0);
        return 0;
    }
    return clear(s, why, true);
}

/* The caller cut in (speech starting at `pos`, or a key): the agent stops talking. */
static void barge_in(cs_stream *s, enum cs_clear_why why, uint64_t pos)
{
    /* A relay's provider stops its own speech and says so (interrupt). */
    if (!s->calls->talk.barge_in || !s->agent->ops->interruptible || !cs_stream_talking(s) ||
        cs_stream_relay(s))
        return;
    uint64_t now = cs_stream_now(s);
    if (clear(s, why, true) < 0) return;
    s->stats.barge_ins++;
    s->calls->stats.barge_ins++;
    cs_hist_observe(&s->calls->stats.barge_in_seconds,
                    (double)(now > pos ? now - pos : 0) / (CS_FRAMES_PER_MS * 1000.0));
    char detail[128];
    snprintf(detail, sizeof detail, "{\"reason\":\"%s\",\"onsetMs\":%llu,\"latencyMs\":%llu}",
             cs_clear_label(why), (unsigned long long)(pos / CS_FRAMES_PER_MS),
             (unsigned long long)(now > pos ? (now - pos) / CS_FRAMES_PER_MS : 0));
    NOTIFY(s->calls, event, s->call, s, CS_EVENT_BARGE_IN, cs_wall_ms(), detail);
}

/* ---- what the agent hears ---- */

void cs_stream_speech(cs_stream *s, bool started, uint64_t pos)
{
    if (!s->agent) return;
    if (started) barge_in(s, CS_CLEAR_SPEECH, pos);
    if (s->agent->ops->speaks_text) turn_edge(s, started, pos);
    if (s->agent && s->agent->ops->speech) s->agent->ops->speech(s->agent, started, pos);
}

void cs_stream_transcript(cs_stream *s, const cs_transcript *t)
{
    if (t->final) note(s, CS_TURN_FINAL);
    if (s->agent && s->agent->ops->transcript) s->agent->ops->transcript(s->agent, t);
}

void cs_talk_audio(cs_stream *s, uint64_t pos, const uint8_t *ulaw, size_t n)
{
    cs_agent *a = s->agent;
    if (a->ops->audio) a->ops->audio(a, pos, ulaw, n);
    /* Speech edges after the agent heard the audio they end in; in pieces small enough
     * that no edge is lost. */
    enum { PIECE = 1024 };
    cs_vad_edge edges[CS_VAD_EDGES_MAX(PIECE)];
    for (size_t at = 0; at < n && s->agent; at += PIECE) {
        size_t len = n - at < PIECE ? n - at : PIECE;
        size_t k =
            cs_vad_feed(&s->vad, pos + at, ulaw + at, len, edges, sizeof edges / sizeof *edges);
        for (size_t i = 0; i < k && s->agent; i++)
            cs_stream_speech(s, edges[i].speech, edges[i].pos);
    }
}

static void relay_settle(cs_stream *s);

void cs_talk_dtmf(cs_stream *s, char digit)
{
    relay_settle(s);
    barge_in(s, CS_CLEAR_DTMF, cs_stream_now(s));
    if (s->agent->ops->dtmf) s->agent->ops->dtmf(s->agent, digit);
}

void cs_talk_mark(cs_stream *s, const cs_mark *m, bool played)
{
    if (!m->what.utt) return;
    if (played) {
        cs_playout_played(&s->playout, m->what.utt, m->pos);
        if (m->what.kind == CS_MARK_END)
            cs_playout_finish(&s->playout, m->what.utt, report_played, s);
    }
    cs_mark_echo e = {m->what.utt, m->what.seq, m->what.kind, played, m->pos};
    if (s->agent && s->agent->ops->mark) s->agent->ops->mark(s->agent, &e);
}

/* ---- relay streams ---- */

static bool relay_interruptible(const cs_stream *s)
{
    return s->calls->talk.barge_in && s->agent && s->agent->ops->interruptible;
}

static int relay_send(cs_stream *s, const cs_relay_out *m)
{
    int rc = s->sink.relay(s->sink.data, m);
    if (rc < 0) return rc;
    s->stats.texts_out++;
    s->calls->stats.relay_texts_out++;
    return 0;
}

static void relay_event(cs_stream *s, const char *type, const cs_heard *h, const char *more_key,
                        const char *more)
{
    cs_buf detail = CS_BUF_INIT(DETAIL_MAX);
    cs_json j;
    cs_json_init(&j, &detail);
    cs_json_obj(&j);
    cs_json_kstr(&j, "type", type);
    if (h) {
        cs_json_kuint(&j, "utterance", h->utt);
        cs_json_kstr(&j, "heardText", h->text);
        cs_json_kuint(&j, "heardMs", h->heard_ms);
    }
    if (more_key) cs_json_kstr(&j, more_key, more);
    cs_json_obj_end(&j);
    if (cs_json_end(&j) == 0)
        NOTIFY(s->calls, event, s->call, s, CS_EVENT_RELAY, cs_wall_ms(), detail.data);
    cs_buf_free(&detail);
}

/* The utterance in flight was heard: whole, or `cut` with `text` and `heard_ms`. It is
 * over before anyone hears of it, so what they do next (say more) starts afresh. */
static void relay_heard(cs_stream *s, bool cut, enum cs_clear_why why, const char *text, size_t len,
                        uint64_t heard_ms)
{
    cs_buf full = s->relay.text;
    cs_buf_init(&s->relay.text, CS_PLAYOUT_TEXT_MAX);
    cs_buf heard = CS_BUF_INIT(CS_PLAYOUT_TEXT_MAX + 1);
    cs_buf_append(&heard, text ? text : "", text ? len : 0);
    cs_buf_putc(&heard, '\0');
    cs_heard h = {
        .utt = s->relay.utt,
        .start_pos = s->relay.start_pos,
        .heard_ms = heard_ms,
        .text = heard.data ? heard.data : "",
        .text_len = heard.len ? heard.len - 1 : 0,
        .full = full.data ? full.data : "",
        .full_len = full.len,
        .cut = cut,
    };
    s->relay.utt = 0;
    s->relay.ended = false;
    if (cut) relay_event(s, "interrupt", &h, "reason", cs_clear_label(why));
    said(s, &h);
    cs_agent *a = s->agent;
    if (a && cut && a->ops->cleared) a->ops->cleared(a, &h, why);
    if (a && !cut && a->ops->played) a->ops->played(a, &h);
    cs_buf_free(&heard);
    cs_buf_free(&full);
}

/* An utterance whose last token went, and that no interrupt cut, was heard whole by the
 * time the caller does something else. */
static void relay_settle(cs_stream *s)
{
    if (cs_stream_relay(s) && s->relay.utt && s->relay.ended)
        relay_heard(s, false, CS_CLEAR_END, s->relay.text.data, s->relay.text.len, 0);
}

static int relay_token(cs_stream *s, const char *text, size_t len, bool last)
{
    cs_relay_out m = {.type = CS_RELAY_TEXT,
                      .text = {text, len},
                      .last = last,
                      .interruptible = relay_interruptible(s)};
    return relay_send(s, &m);
}

static int relay_begin(cs_stream *s, uint32_t *utt)
{
    if (s->relay.utt && !s->relay.ended) relay_end(s, s->relay.utt);
    relay_settle(s);
    s->relay.utt = *utt = ++s->relay.next_id;
    s->relay.ended = false;
    /* The provider says it once its first token arrived: a frame from now at the least,
     * after the caller's words it answers. */
    s->relay.start_pos = cs_stream_now(s) + CS_PLAYOUT_FRAME;
    return 0;
}

static int relay_end(cs_stream *s, uint32_t utt)
{
    if (utt != s->relay.utt || s->relay.ended) return CS_ECLOSED;
    s->relay.ended = true;
    return relay_token(s, "", 0, true);
}

int cs_stream_say_text(cs_stream *s, uint32_t utt, const char *text, size_t len)
{
    if (!can_talk(s) || !cs_stream_relay(s)) return CS_ESTATE;
    if (utt != s->relay.utt || s->relay.ended) return CS_ECLOSED;
    if (len == 0) return 0;
    if (cs_buf_append(&s->relay.text, text, len) < 0) return CS_EFULL;
    return relay_token(s, text, len, false);
}

int cs_stream_play(cs_stream *s, const char *url, unsigned loop)
{
    if (!can_talk(s) || !cs_stream_relay(s)) return CS_ESTATE;
    if (!url || !*url) return -EINVAL;
    cs_relay_out m = {.type = CS_RELAY_PLAY,
                      .text = cs_str_of(url),
                      .loop = loop,
                      .interruptible = relay_interruptible(s)};
    return relay_send(s, &m);
}

int cs_stream_send_digits(cs_stream *s, const char *digits)
{
    if (!can_talk(s) || !cs_stream_relay(s)) return CS_ESTATE;
    size_t n = strlen(digits);
    if (n == 0 || n > 64 || strspn(digits, "0123456789*#w") != n) return -EINVAL;
    cs_relay_out m = {.type = CS_RELAY_DIGITS, .text = {digits, n}};
    return relay_send(s, &m);
}

int cs_stream_handoff(cs_stream *s, const char *data)
{
    if (!can_talk(s)) return CS_ESTATE;
    char *copy = strdup(data ? data : "");
    if (!copy) return -ENOMEM;
    free(s->relay.handoff);
    s->relay.handoff = copy;
    return 0;
}

uint32_t cs_stream_greeting(const cs_stream *s)
{
    return cs_stream_relay(s) ? s->relay.greeting : 0;
}

/* The agent hangs up: the provider is told to end the session, with the hand-off. */
static void relay_send_end(cs_stream *s)
{
    const char *data = s->relay.handoff ? s->relay.handoff : "";
    cs_relay_out m = {.type = CS_RELAY_END, .text = cs_str_of(data)};
    relay_send(s, &m);
    relay_event(s, "end", NULL, "handoffData", data);
}

void cs_talk_relay_begin(cs_stream *s)
{
    cs_buf_init(&s->relay.text, CS_PLAYOUT_TEXT_MAX);
    /* The provider says the greeting our answer gave it: the agent's first utterance. */
    const char *g = cs_stream_param(s, "Greeting");
    if (!g || !*g) return;
    s->relay.utt = s->relay.greeting = ++s->relay.next_id;
    s->relay.ended = true;
    cs_buf_puts(&s->relay.text, g);
}

void cs_talk_prompt(cs_stream *s, const char *text, bool last)
{
    s->stats.prompts++;
    s->calls->stats.relay_prompts++;
    if (last) relay_settle(s);
    /* The words span from their first version to the final, as far as we can tell. */
    uint32_t now_ms = (uint32_t)(cs_stream_now(s) / CS_FRAMES_PER_MS);
    if (!s->relay.prompt_open) s->relay.prompt_at = now_ms;
    s->relay.prompt_open = !last;
    cs_transcript t = {s->relay.prompt_id, s->relay.prompt_at, now_ms, text, last, -1};
    if (last) s->relay.prompt_id++;
    NOTIFY(s->calls, heard, s, &t);
    if (s->agent) cs_stream_transcript(s, &t);
}

void cs_talk_interrupt(cs_stream *s, const char *heard, uint64_t heard_ms)
{
    s->stats.interrupts++;
    s->stats.barge_ins++;
    s->calls->stats.relay_interrupts++;
    s->calls->stats.barge_ins++;
    if (!s->relay.utt) {
        cs_heard h = {.text = heard, .heard_ms = heard_ms};
        relay_event(s, "interrupt", &h, "reason", "nothing in flight");
        return;
    }
    relay_heard(s, true, CS_CLEAR_SPEECH, heard, strlen(heard), heard_ms);
}

/* ---- agent services ---- */

static void schedule(cs_calls *calls);

void cs_agent_timer(cs_agent *a, uint32_t ms)
{
    a->timer_due_ms = ms ? a->calls->clock_ms() + ms : 0;
}

void cs_agent_closed(cs_agent *a)
{
    if (a->calls->talk.closing) a->calls->talk.closing--;
}

void cs_agent_event(cs_agent *a, const char *json)
{
    if (a->stream)
        NOTIFY(a->calls, event, a->stream->call, a->stream, CS_EVENT_AGENT, cs_wall_ms(), json);
    else
        cs_calls_event(a->calls, a->call_sid, CS_EVENT_AGENT, json);
}

/* ---- agents, from the call's side ---- */

static void agent_event(cs_stream *s, const char *state, const char *name, int err)
{
    char detail[256];
    if (err)
        snprintf(detail, sizeof detail, "{\"state\":\"%s\",\"agent\":\"%s\",\"error\":\"%s\"}",
                 state, name, cs_strerror(err));
    else
        snprintf(detail, sizeof detail, "{\"state\":\"%s\",\"agent\":\"%s\"}", state, name);
    NOTIFY(s->calls, event, s->call, s, CS_EVENT_AGENT, cs_wall_ms(), detail);
}

void cs_talk_open(cs_stream *s, const cs_agent_ops *ops)
{
    cs_calls *calls = s->calls;
    cs_agent *a = NULL;
    int rc = ops->open(&a, s, calls->talk.env);
    if (rc < 0) {
        calls->stats.agent_failures++;
        const cs_log_ctx *prev = cs_log_set_ctx(&s->log);
        cs_error("call: agent %s failed to start: %s; listening only", ops->name, cs_strerror(rc));
        cs_log_set_ctx(prev);
        agent_event(s, "failed", ops->name, rc);
        return;
    }
    a->ops = ops;
    a->stream = s;
    a->calls = calls;
    snprintf(a->call_sid, sizeof a->call_sid, "%s", s->call->sid);
    s->agent = a;
    cs_vad_init(&s->vad, &calls->talk.vad);
    s->talk_next = calls->talk.talkers;
    if (calls->talk.talkers) calls->talk.talkers->talk_prev = s;
    calls->talk.talkers = s;
    calls->talk.ntalkers++;
    agent_event(s, "started", ops->name, 0);
    schedule(calls);
    if (ops->start) ops->start(a);
}

void cs_talk_close(cs_stream *s)
{
    cs_calls *calls = s->calls;
    cs_agent *a = s->agent;
    /* What was in flight is reported as heard so far; nothing is sent any more. */
    if (cs_stream_relay(s)) {
        relay_settle(s);
        if (s->relay.utt)
            relay_heard(s, true, CS_CLEAR_END, s->relay.text.data, s->relay.text.len, 0);
    } else {
        clear(s, CS_CLEAR_END, false);
    }
    s->agent = NULL;
    cs_talk_control_detach(s);
    if (s->talk_prev)
        s->talk_prev->talk_next = s->talk_next;
    else
        calls->talk.talkers = s->talk_next;
    if (s->talk_next) s->talk_next->talk_prev = s->talk_prev;
    s->talk_prev = s->talk_next = NULL;
    calls->talk.ntalkers--;
    a->stream = NULL;
    a->timer_due_ms = 0;
    calls->talk.closing++;
    a->ops->close(a);
    schedule(calls);
}

/* ---- the calls' side ---- */

void cs_calls_tick(cs_calls *calls)
{
    uint64_t now = calls->clock_ms();
    for (cs_stream *s = calls->talk.talkers, *next; s; s = next) {
        next = s->talk_next;
        pump(s);
        cs_talk_control_due(s);
        if (s->hangup && (s->hangup == 1 || !cs_stream_talking(s))) {
            s->hangup = 0;
            if (cs_stream_relay(s)) relay_send_end(s);
            if (s->sink.close) s->sink.close(s->sink.data); /* may end `s` */
            continue;
        }
        cs_agent *a = s->agent;
        if (a && a->timer_due_ms && now >= a->timer_due_ms) {
            a->timer_due_ms = 0;
            if (a->ops->timer) a->ops->timer(a);
        }
    }
}

static void on_tick(uv_timer_t *t)
{
    cs_calls_tick(t->data);
}

/* The tick runs while any stream has an agent. */
static void schedule(cs_calls *calls)
{
    uv_timer_t *t = calls->talk.timer;
    if (!t) return;
    if (calls->talk.ntalkers && !uv_is_active((uv_handle_t *)t))
        uv_timer_start(t, on_tick, TICK_MS, TICK_MS);
    else if (!calls->talk.ntalkers)
        uv_timer_stop(t);
}

int cs_calls_talk_start(cs_calls *calls, void *loop)
{
    uv_timer_t *t = calloc(1, sizeof *t);
    if (!t) return -ENOMEM;
    int rc = uv_timer_init(loop, t);
    if (rc < 0) {
        free(t);
        return rc;
    }
    t->data = calls;
    calls->talk.timer = t;
    schedule(calls);
    return 0;
}

static void free_handle(uv_handle_t *h)
{
    free(h);
}

void cs_talk_free(cs_calls *calls)
{
    uv_timer_t *t = calls->talk.timer;
    if (!t) return;
    calls->talk.timer = NULL;
    uv_close((uv_handle_t *)t, free_handle);
}
