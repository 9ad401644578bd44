/* AGENT=openai-realtime (agent/realtime_int.h): one Realtime WebSocket per call.
 *
 * Audio. The caller's μ-law goes out as input_audio_buffer.append as it comes (held,
 * bounded, while the socket is not up); the model's response.output_audio.delta bytes go
 * into the playout queue as they are, one utterance per response item, whose sentences
 * are cut from the item's audio transcript (no word timings: what was heard of a
 * sentence is proportional).
 *
 * Interruption. The model's turn detection says input_audio_buffer.speech_started; if
 * its audio is queued or playing, the stream is cleared at once (the call's own VAD may
 * have done it first: barge-in). Each utterance cut becomes conversation.item.truncate
 * with audio_end_ms = what the caller heard of that item, never past what was received,
 * and a response still being made is cancelled, so the model does not believe the caller
 * heard words that never played.
 *
 * A lost connection is opened again with the one backoff, the session sent again, and
 * the caller hears REALTIME_RECONNECT_MESSAGE in the local voice rather than silence. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "agent/agent.h"
#include "agent/realtime_int.h"
#include "agent/tools.h"
#include "agent/voice.h"
#include "core/backoff.h"
#include "core/base64.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "core/prom.h"
#include "net/form.h"
#include "net/url.h"
#include "net/wsconn.h"

#define RT_PENDING_MAX   (3u * 8000) /* caller audio held while the socket is not up: 3 s */
#define RT_RETRY_MIN_MS  250
#define RT_RETRY_MAX_MS  8000
#define RT_ITEMS_MAX     CS_PLAYOUT_UTTS_MAX /* items with audio in flight */
#define RT_NAME          "openai-realtime"
#define RT_CALLS_MAX     8                   /* tool calls in flight per call; more fail */
#define RT_PREPARED_MAX  256 /* connections opened at the webhook, waiting for their stream */
#define RT_SPEECHES      8                   /* the caller's recent turns, for their times */
#define RT_CALLER_IDS    (1u << 30) /* caller segments' ids: apart from a recognizer's */

/* Counters for /metrics (loop thread). */
typedef struct rt_stats {
    uint64_t connects, connect_failures, drops, malformed, errors;
    uint64_t barge_ins, truncates, cancels;
    uint64_t audio_in, audio_out;       /* bytes: to the model, from the model */
    uint64_t audio_held_dropped;        /* caller bytes dropped: socket down past the bound */
    uint64_t send_failures;             /* events the socket's output refused */
    uint64_t tool_calls, tool_failures, hangups;
    uint64_t tokens_in, tokens_out;
    uint64_t prepared, adopted, expired, prepare_skipped; /* connections opened early */
    uint64_t missed; /* streams that found none prepared on their loop */
} rt_stats;

typedef struct cs_rt {
    const cs_config *cfg;
    cs_net *net;
    char *url;     /* with ?model= */
    char *auth;    /* "Authorization: Bearer …\r\n" */
    char *session; /* the session.update message */
    cs_tools tools;
    struct rt *prepared; /* opened at the webhook, no stream yet (newest first) */
    size_t nprepared;
    rt_stats st;
} cs_rt;

/* An item of the model's whose audio is in the playout queue. */
typedef struct rt_item {
    char id[RT_ID_MAX + 1];
    uint32_t utt;
    uint64_t received; /* bytes of its audio received */
    bool cut;          /* cleared: the rest of its audio is dropped */
    bool ended;        /* its utterance was ended */
    bool audio_done, text_done;
} rt_item;

typedef struct rt rt;

/* An operator tool's POST in flight. */
typedef struct rt_call {
    rt *a;
    cs_fetch_req *req; /* NULL: free */
    char id[RT_ID_MAX + 1];
    char name[CS_TOOL_NAME_MAX + 1];
    char *args;
} rt_call;

struct rt {
    cs_agent base;
    cs_rt *k;
    bool adopted;       /* a stream has it (else prepared at the webhook, or expired) */
    rt *prev, *next;    /* k->prepared */
    cs_fetch *fetch;
    rt_call calls[RT_CALLS_MAX];
    rt_call transfer;    /* the model's transfer while call control puts it through (args set) */
    unsigned calls_out;  /* posts in flight */
    bool want_response;  /* tool outputs were given: response.create once nothing runs */
    cs_wsconn ws;
    bool ws_live; /* a socket exists (until its on_close) */
    bool up;      /* open, session sent */
    bool closed;  /* the call ended */
    bool timer_closed;
    unsigned attempt; /* reconnections since the last success */
    bool lost;        /* the connection was lost: the caller was told */
    char refusal[200]; /* the server's message when it refused the upgrade */
    uv_timer_t retry;
    cs_voice voice;
    bool has_voice;
    char call_sid[CS_SID_MAX + 1], stream_sid[CS_SID_MAX + 1];
    cs_log_ctx log;
    cs_buf held; /* caller audio while not up */
    cs_buf out;  /* the event being built */
    uint8_t *pcm; /* a delta decoded */
    size_t pcm_cap;
    /* the model's answer */
    char response_id[RT_ID_MAX + 1];
    bool responding, cancel_sent;
    rt_item items[RT_ITEMS_MAX];
    size_t nitems;
    char text_item[RT_ID_MAX + 1]; /* the item `text` belongs to */
    cs_buf text;                   /* its transcript not given as a sentence yet */
    int64_t tokens_in, tokens_out; /* this call's */
    /* the caller's turns: where the audio on this connection began on the call's timeline
     * (ms), and the model's times of the latest turns, for the transcript */
    bool based;
    uint64_t base_ms, held_ms;
    struct {
        char item[RT_ID_MAX + 1];
        int64_t start_ms, end_ms;
    } speeches[RT_SPEECHES];
    unsigned nspeeches, heard;
};

static void connect_now(rt *a);
static void maybe_respond(rt *a);

#define LOG(a, level, ...) CS_AGENT_LOG(&(a)->log, level, __VA_ARGS__)

/* ---- events ---- */

static void event_begin(cs_json *j, cs_buf *b, const char *state)
{
    cs_buf_init(b, 16384);
    cs_json_init(j, b);
    cs_json_obj(j);
    cs_json_kstr(j, "state", state);
    cs_json_kstr(j, "agent", RT_NAME);
}

static void event_text(cs_json *j, const char *key, const char *s)
{
    cs_agent_event_text(j, key, s, strlen(s));
}

static void event_end(rt *a, cs_json *j, cs_buf *b)
{
    cs_json_obj_end(j);
    if (cs_json_end(j) == 0 && a->adopted) cs_agent_event(&a->base, b->data); /* else no call */
    cs_buf_free(b);
}

/* ---- sending ---- */

/* Sends what a->out holds (built by `rc`'s builder), then empties it. */
static int send_out(rt *a, int rc)
{
    if (rc == 0 && a->up) rc = cs_wsconn_send(&a->ws, CS_WS_OP_TEXT, a->out.data, a->out.len);
    else if (rc == 0) rc = CS_ECLOSED;
    if (rc < 0 && rc != CS_ECLOSED) {
        a->k->st.send_failures++;
        LOG(a, CS_LOG_WARN, RT_NAME ": an event could not be sent: %s", cs_strerror(rc));
    }
    cs_buf_reset(&a->out);
    return rc;
}

static void send_audio(rt *a, const uint8_t *ulaw, size_t n)
{
    if (send_out(a, rt_build_append(&a->out, ulaw, n)) == 0) a->k->st.audio_in += n;
}

/* ---- the model's items ---- */

static rt_item *item_by_id(rt *a, const char *id)
{
    for (size_t i = 0; i < a->nitems; i++)
        if (strcmp(a->items[i].id, id) == 0) return &a->items[i];
    return NULL;
}

static rt_item *item_by_utt(rt *a, uint32_t utt)
{
    for (size_t i = 0; i < a->nitems; i++)
        if (a->items[i].utt == utt) return &a->items[i];
    return NULL;
}

static void item_drop(rt *a, rt_item *it)
{
    size_t i = (size_t)(it - a->items);
    memmove(it, it + 1, (a->nitems - i - 1) * sizeof *it);
    a->nitems--;
}

/* Lets go of the items that were cut and that the model is done with (no delta comes for
 * them any more); the others go when they have played. */
static void items_sweep(rt *a)
{
    size_t keep = 0;
    for (size_t i = 0; i < a->nitems; i++)
        if (!(a->items[i].cut && a->items[i].ended)) a->items[keep++] = a->items[i];
    a->nitems = keep;
}

/* Gives the item's transcript so far as sentences of its utterance: the complete ones,
 * or all of it (`all`). */
static void give_text(rt *a, rt_item *it, bool all)
{
    if (!a->base.stream || it->cut || it->ended || strcmp(a->text_item, it->id) != 0) return;
    size_t end = rt_sentence_end(a->text.data ? a->text.data : "", a->text.len, all);
    if (!end) return;
    cs_stream_say_sentence(a->base.stream, it->utt, a->text.data, end, NULL, 0);
    cs_buf_consume(&a->text, end);
}

/* No more audio for the item: its last text, then the end of its utterance. */
static void item_end(rt *a, rt_item *it)
{
    if (it->ended) return;
    give_text(a, it, true);
    it->ended = true;
    if (a->base.stream && !it->cut) cs_stream_say_end(a->base.stream, it->utt);
}

/* The item an audio delta belongs to: its utterance is begun at its first delta. */
static rt_item *item_for_audio(rt *a, const char *id)
{
    rt_item *it = item_by_id(a, id);
    if (it) return it;
    for (size_t i = 0; i < a->nitems; i++) item_end(a, &a->items[i]); /* one item plays at once */
    items_sweep(a);
    if (a->nitems == RT_ITEMS_MAX) return NULL;
    uint32_t utt;
    if (!a->base.stream || cs_stream_say_begin(a->base.stream, &utt) < 0) return NULL;
    it = &a->items[a->nitems++];
    *it = (rt_item){.utt = utt};
    snprintf(it->id, sizeof it->id, "%s", id);
    return it;
}

/* ---- server events ---- */

static void on_error_event(rt *a, const rt_event *ev)
{
    /* A cancel that crossed the server's own (turn detection cancels too): harmless. */
    if (strcmp(ev->err_code, "response_cancel_not_active") == 0) return;
    a->k->st.errors++;
    LOG(a, CS_LOG_WARN, RT_NAME ": the server says %s (%s): %s", ev->err_type, ev->err_code,
        ev->err_message);
    cs_json j;
    cs_buf b;
    event_begin(&j, &b, "error");
    cs_json_kstr(&j, "kind", ev->err_type);
    cs_json_kstr(&j, "code", ev->err_code);
    event_text(&j, "message", ev->err_message);
    event_end(a, &j, &b);
}

/* The caller's turn `item` on the model's clock (a new one at its start). */
static void speech_times(rt *a, const char *item, int64_t start_ms, int64_t end_ms)
{
    for (unsigned i = 0; i < RT_SPEECHES; i++) {
        if (strcmp(a->speeches[i].item, item) != 0) continue;
        if (end_ms >= 0) a->speeches[i].end_ms = end_ms;
        return;
    }
    if (start_ms < 0) return;
    unsigned i = a->nspeeches++ % RT_SPEECHES;
    snprintf(a->speeches[i].item, sizeof a->speeches[i].item, "%s", item);
    a->speeches[i].start_ms = start_ms;
    a->speeches[i].end_ms = -1;
}

static void on_speech_stopped(rt *a, const rt_event *ev)
{
    speech_times(a, ev->item_id, -1, ev->audio_end_ms);
}

static void on_speech_started(rt *a, const rt_event *ev)
{
    speech_times(a, ev->item_id, ev->audio_start_ms, -1);
    cs_stream *s = a->base.stream;
    if (!s || !cs_stream_talking(s)) return;
    a->k->st.barge_ins++;
    cs_stream_clear(s, CS_CLEAR_SPEECH); /* `cleared` truncates each item cut */
}

static void on_response_created(rt *a, const rt_event *ev)
{
    a->responding = true;
    a->cancel_sent = false;
    snprintf(a->response_id, sizeof a->response_id, "%s", ev->response_id ? ev->response_id : "");
}

static void on_response_done(rt *a, const rt_event *ev)
{
    a->responding = false;
    for (size_t i = 0; i < a->nitems; i++) item_end(a, &a->items[i]);
    if (ev->tokens_in >= 0) {
        a->tokens_in += ev->tokens_in;
        a->k->st.tokens_in += (uint64_t)ev->tokens_in;
    }
    if (ev->tokens_out >= 0) {
        a->tokens_out += ev->tokens_out;
        a->k->st.tokens_out += (uint64_t)ev->tokens_out;
    }
    cs_json j;
    cs_buf b;
    event_begin(&j, &b, "response");
    cs_json_kstr(&j, "status", ev->status);
    if (ev->tokens_in >= 0) cs_json_kint(&j, "inputTokens", ev->tokens_in);
    if (ev->tokens_out >= 0) cs_json_kint(&j, "outputTokens", ev->tokens_out);
    cs_json_kint(&j, "callInputTokens", a->tokens_in);
    cs_json_kint(&j, "callOutputTokens", a->tokens_out);
    event_end(a, &j, &b);
    maybe_respond(a);
}

static void on_audio_delta(rt *a, const rt_event *ev)
{
    rt_item *it = item_for_audio(a, ev->item_id);
    if (!it || it->cut || it->ended) return;
    size_t cap = CS_BASE64_DECODED_MAX(ev->delta_len);
    if (cap > a->pcm_cap) {
        uint8_t *p = realloc(a->pcm, cap);
        if (!p) return;
        a->pcm = p;
        a->pcm_cap = cap;
    }
    int n = cs_base64_decode(a->pcm, ev->delta, ev->delta_len);
    if (n < 0) {
        a->k->st.malformed++;
        LOG(a, CS_LOG_WARN, RT_NAME ": an audio delta that is not base64");
        return;
    }
    if (it->received == 0) {
        cs_agent_note(&a->base, CS_TURN_REPLY);
        cs_agent_note(&a->base, CS_TURN_AUDIO);
    }
    int rc = cs_stream_say_audio(a->base.stream, it->utt, a->pcm, (size_t)n);
    if (rc == CS_ECLOSED) {
        it->cut = true;
        return;
    }
    if (rc < 0) {
        LOG(a, CS_LOG_WARN, RT_NAME ": the model's audio is dropped: %s", cs_strerror(rc));
        return;
    }
    it->received += (uint64_t)n;
    a->k->st.audio_out += (uint64_t)n;
    give_text(a, it, false);
}

/* The item's audio, or its transcript, is complete: with both, its utterance ends. */
static void on_part_done(rt *a, const rt_event *ev)
{
    rt_item *it = item_by_id(a, ev->item_id);
    if (!it) return;
    if (ev->type == RT_EV_AUDIO_DONE)
        it->audio_done = true;
    else
        it->text_done = true;
    if (it->audio_done && it->text_done) item_end(a, it);
}

static void on_transcript_delta(rt *a, const rt_event *ev)
{
    if (strcmp(a->text_item, ev->item_id) != 0) {
        snprintf(a->text_item, sizeof a->text_item, "%s", ev->item_id);
        cs_buf_reset(&a->text);
    }
    if (cs_buf_append(&a->text, ev->delta, ev->delta_len) < 0) return; /* past RT_TEXT_MAX */
    rt_item *it = item_by_id(a, ev->item_id);
    if (it) give_text(a, it, false);
}

/* The caller's words, as the model's transcription heard them: the caller's line of the
 * transcript, placed where the model heard the turn. */
static void on_input_transcript(rt *a, const rt_event *ev)
{
    cs_transcript t = {.id = RT_CALLER_IDS + ++a->heard, .text = ev->text, .final = true,
                       .confidence = -1};
    for (unsigned i = 0; i < RT_SPEECHES; i++) {
        if (strcmp(a->speeches[i].item, ev->item_id) != 0) continue;
        t.start_ms = (uint32_t)(a->base_ms + (uint64_t)a->speeches[i].start_ms);
        int64_t end = a->speeches[i].end_ms >= 0 ? a->speeches[i].end_ms : a->speeches[i].start_ms;
        t.end_ms = (uint32_t)(a->base_ms + (uint64_t)end);
    }
    cs_agent_heard(&a->base, &t);
    cs_json j;
    cs_buf b;
    event_begin(&j, &b, "user");
    event_text(&j, "text", ev->text);
    event_end(a, &j, &b);
}

/* After tool outputs, the model answers once no tool runs and no response is on. */
static void maybe_respond(rt *a)
{
    if (!a->want_response || a->calls_out || a->responding || !a->up) return;
    a->want_response = false;
    send_out(a, rt_build_response_create(&a->out));
}

static void tool_done(rt *a, const char *name, const char *call_id, const char *args,
                      const char *output, size_t len, bool ok)
{
    send_out(a, rt_build_tool_output(&a->out, call_id, output, len));
    cs_json j;
    cs_buf b;
    event_begin(&j, &b, "tool");
    cs_json_kstr(&j, "tool", name);
    event_text(&j, "arguments", args);
    event_text(&j, "result", output);
    cs_json_kbool(&j, "ok", ok);
    event_end(a, &j, &b);
}

static void tool_answered(void *data, const cs_fetch_result *res)
{
    rt_call *c = data;
    rt *a = c->a;
    c->req = NULL;
    a->calls_out--;
    cs_buf out = CS_BUF_INIT(CS_TOOL_RESULT_MAX + 512);
    bool ok = cs_tool_result(res, &out);
    if (!ok) {
        a->k->st.tool_failures++;
        LOG(a, CS_LOG_WARN, RT_NAME ": tool %s: %s", c->name, out.data);
    }
    tool_done(a, c->name, c->id, c->args, out.data, out.len, ok);
    cs_buf_free(&out);
    free(c->args);
    c->args = NULL;
    a->want_response = true;
    maybe_respond(a);
}

/* Call control's answer to the model's transfer: done, the call is on its way; failed,
 * the model is told why and answers (to say so). */
static void transferred(cs_agent *base, int err, const char *why)
{
    rt *a = (rt *)base;
    rt_call *c = &a->transfer;
    if (!c->args) return;
    cs_buf out = CS_BUF_INIT(1024);
    if (err == 0) {
        cs_buf_puts(&out, "{\"ok\":true,\"result\":\"the call is transferred\"}");
    } else {
        a->k->st.tool_failures++;
        LOG(a, CS_LOG_WARN, RT_NAME ": transfer failed: %s", why);
        cs_tool_error(&out, "the transfer failed: %s", why);
    }
    tool_done(a, c->name, c->id, c->args, out.data, out.len, err == 0);
    cs_buf_free(&out);
    free(c->args);
    c->args = NULL;
    if (err == 0) return;
    a->want_response = true;
    maybe_respond(a);
}

/* The model's transfer, to the target it names (never a number it wrote), once what it
 * is saying has played. */
static void transfer(rt *a, const rt_event *ev)
{
    cs_buf out = CS_BUF_INIT(1024);
    const cs_transfer_target *t =
        cs_tools_transfer_target(&a->k->tools, ev->text, strlen(ev->text), &out);
    int rc = CS_EPARSE;
    if (t) {
        char reason[CS_TOOL_NAME_MAX + 32];
        snprintf(reason, sizeof reason, RT_NAME " transfer to %s", t->name);
        rc = a->transfer.args ? CS_ESTATE
                              : cs_agent_transfer(&a->base, t->number, reason, transferred);
    }
    if (rc == 0) {
        a->transfer = (rt_call){.a = a, .args = strdup(ev->text)};
        snprintf(a->transfer.id, sizeof a->transfer.id, "%s", ev->call_id);
        snprintf(a->transfer.name, sizeof a->transfer.name, "%s", ev->name);
        LOG(a, CS_LOG_INFO, RT_NAME ": the model transfers the call to %s", t->name);
        cs_buf_free(&out);
        return;
    }
    if (t)
        cs_tool_error(&out, "the transfer could not be asked: %s",
                      rc == CS_ESTATE ? "call control is busy with this call" : cs_strerror(rc));
    a->k->st.tool_failures++;
    tool_done(a, ev->name, ev->call_id, ev->text, out.data, out.len, false);
    cs_buf_free(&out);
    a->want_response = true;
    maybe_respond(a);
}

/* The model called a tool: end_call hangs up once the goodbye has played; the operator's
 * are POSTed and their answers given back; the model answers once all are in. */
static void on_function_done(rt *a, const rt_event *ev)
{
    a->k->st.tool_calls++;
    if (strcmp(ev->name, CS_TOOL_END_CALL) == 0) {
        a->k->st.hangups++;
        LOG(a, CS_LOG_INFO, RT_NAME ": the model ends the call");
        tool_done(a, ev->name, ev->call_id, ev->text, CS_TOOL_END_CALL_RESULT,
                  strlen(CS_TOOL_END_CALL_RESULT), true);
        if (a->base.stream) cs_agent_end_call(&a->base, "end_call");
        return;
    }
    if (a->k->tools.ntargets && strcmp(ev->name, CS_TOOL_TRANSFER) == 0) return transfer(a, ev);
    cs_buf out = CS_BUF_INIT(1024);
    const cs_tool *tool = cs_tools_find(&a->k->tools, ev->name);
    rt_call *c = NULL;
    for (size_t i = 0; i < RT_CALLS_MAX && !c; i++)
        if (!a->calls[i].req) c = &a->calls[i];
    int rc = 0;
    if (!tool) {
        cs_tool_error(&out, "there is no tool named %s", ev->name);
    } else if (!c) {
        cs_tool_error(&out, "more than %d tool calls at once", RT_CALLS_MAX);
    } else {
        *c = (rt_call){.a = a};
        snprintf(c->id, sizeof c->id, "%s", ev->call_id);
        snprintf(c->name, sizeof c->name, "%s", ev->name);
        cs_tool_caller who = {a->call_sid, a->stream_sid};
        rc = cs_tool_post(a->fetch, &a->k->tools, tool, &who, ev->call_id, ev->text,
                          strlen(ev->text), tool_answered, c, &c->req);
        if (rc == 0) {
            c->args = strdup(ev->text);
            a->calls_out++;
            cs_buf_free(&out);
            return; /* its answer comes later */
        }
        c->req = NULL;
        if (rc == CS_EPARSE)
            cs_tool_error(&out, "the arguments are not a JSON object");
        else
            cs_tool_error(&out, "the tool could not be called: %s", cs_strerror(rc));
    }
    a->k->st.tool_failures++;
    tool_done(a, ev->name, ev->call_id, ev->text, out.data, out.len, false);
    cs_buf_free(&out);
    a->want_response = true;
    maybe_respond(a);
}

typedef void (*rt_handler)(rt *a, const rt_event *ev);
static const rt_handler handlers[RT_EV_COUNT] = {
    [RT_EV_ERROR] = on_error_event,
    [RT_EV_SPEECH_STARTED] = on_speech_started,
    [RT_EV_SPEECH_STOPPED] = on_speech_stopped,
    [RT_EV_RESPONSE_CREATED] = on_response_created,
    [RT_EV_RESPONSE_DONE] = on_response_done,
    [RT_EV_AUDIO_DELTA] = on_audio_delta,
    [RT_EV_AUDIO_DONE] = on_part_done,
    [RT_EV_TRANSCRIPT_DELTA] = on_transcript_delta,
    [RT_EV_TRANSCRIPT_DONE] = on_part_done,
    [RT_EV_FUNCTION_DONE] = on_function_done,
    [RT_EV_INPUT_TRANSCRIPT] = on_input_transcript,
};

/* ---- the socket ---- */

static void maybe_free(rt *a)
{
    if (!a->closed || a->ws_live || !a->timer_closed) return;
    cs_buf_free(&a->held);
    cs_buf_free(&a->out);
    cs_buf_free(&a->text);
    free(a->pcm);
    if (a->adopted) cs_agent_closed(&a->base);
    free(a);
}

static void on_ws_open(cs_wsconn *ws)
{
    rt *a = ws->data;
    a->up = true;
    a->k->st.connects++;
    if (a->attempt) LOG(a, CS_LOG_INFO, RT_NAME ": connected again");
    a->attempt = 0;
    a->lost = false;
    cs_buf_puts(&a->out, a->k->session);
    send_out(a, 0);
    /* The model's clock starts with the audio of this connection. */
    a->based = a->held.len > 0;
    a->base_ms = a->held_ms;
    if (a->held.len) send_audio(a, (const uint8_t *)a->held.data, a->held.len);
    cs_buf_reset(&a->held);
}

static void on_ws_message(cs_wsconn *ws, enum cs_ws_op op, char *data, size_t len)
{
    rt *a = ws->data;
    if (a->closed) return;
    char why[160];
    rt_event ev;
    int rc = op == CS_WS_OP_TEXT ? rt_event_parse(&ev, data, len, why, sizeof why) : CS_EPARSE;
    if (rc < 0) {
        a->k->st.malformed++;
        LOG(a, CS_LOG_WARN, RT_NAME ": a server event is skipped: %s",
            op == CS_WS_OP_TEXT ? why : "a binary message");
        return;
    }
    if (rc == 0) return;
    if (handlers[ev.type]) handlers[ev.type](a, &ev);
    rt_event_free(&ev);
    items_sweep(a);
}

static void on_retry(uv_timer_t *t)
{
    connect_now(t->data);
}

static void retry_later(rt *a, const char *why)
{
    uint32_t ms = cs_backoff_ms(++a->attempt, RT_RETRY_MIN_MS, RT_RETRY_MAX_MS);
    LOG(a, CS_LOG_WARN, RT_NAME ": %s; connecting again in %u ms", why, ms);
    uv_timer_start(&a->retry, on_retry, ms, 0);
}

/* The connection went: what the model was saying ends there, and the caller hears
 * why the line went quiet. */
static void let_go(rt *a);

/* An upgrade refused with a 4xx other than 408 and 429 will be refused again (a wrong key,
 * an unknown model): nothing is retried. */
static bool refusal_is_final(int status)
{
    return status >= 400 && status < 500 && status != 408 && status != 429;
}

/* The connection went (or never came): what the model was saying ends there, and the
 * caller hears why the line went quiet; then it is opened again, or, when that is futile,
 * the call ends once the message has played. */
static void lost(rt *a, const char *why, bool final)
{
    if (!a->adopted) { /* prepared: the stream connects anew when it comes */
        LOG(a, CS_LOG_WARN, RT_NAME ": the connection opened early failed: %s", why);
        let_go(a);
        return;
    }
    for (size_t i = 0; i < a->nitems; i++) item_end(a, &a->items[i]);
    items_sweep(a);
    a->responding = false;
    if (!a->lost || final) {
        if (!a->lost) a->k->st.drops++;
        a->lost = true;
        cs_json j;
        cs_buf b;
        event_begin(&j, &b, "error");
        cs_json_kstr(&j, "kind", final ? "refused" : "connection");
        event_text(&j, "message", why);
        event_end(a, &j, &b);
        const char *msg = a->k->cfg->realtime_reconnect_message;
        if (a->has_voice && msg[0] && a->base.stream) cs_voice_say(&a->voice, msg, strlen(msg));
    }
    if (!final) {
        retry_later(a, why);
        return;
    }
    LOG(a, CS_LOG_ERROR, RT_NAME ": %s; the call ends", why);
    if (a->base.stream) cs_stream_hangup(a->base.stream, true);
}

/* A refused upgrade's body: OpenAI's {"error": {"message"}}, else its start. */
static void on_ws_upgrade(cs_wsconn *ws, const cs_http_resp *resp, const char *body, size_t len)
{
    rt *a = ws->data;
    if (resp->status == 101 || !body || !len) return; /* opened, or no body to read */
    cJSON *j = cJSON_ParseWithLength(body, len);
    const char *m =
        cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "error"), "message"));
    size_t n = m ? strlen(m) : len;
    if (n >= sizeof a->refusal) n = sizeof a->refusal - 1;
    memcpy(a->refusal, m ? m : body, n);
    a->refusal[n] = '\0';
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)a->refusal[i] < ' ') a->refusal[i] = ' ';
    cJSON_Delete(j);
}

static void on_ws_close(cs_wsconn *ws, uint16_t code, int err)
{
    rt *a = ws->data;
    bool was_up = a->up;
    a->ws_live = a->up = false;
    if (a->closed) {
        maybe_free(a);
        return;
    }
    char why[320];
    bool refused = ws->http_status && ws->http_status != 101;
    if (refused)
        snprintf(why, sizeof why, "the server refused the connection with HTTP %d%s%s",
                 ws->http_status, a->refusal[0] ? ": " : "", a->refusal);
    else if (err)
        snprintf(why, sizeof why, "the connection failed: %s", cs_strerror(err));
    else
        snprintf(why, sizeof why, "the server closed the connection (%u %s)", code,
                 ws->close_reason);
    if (!was_up) a->k->st.connect_failures++;
    a->refusal[0] = '\0';
    lost(a, why, refused && refusal_is_final(ws->http_status));
}

static const cs_wsconn_ops ws_ops = {
    .on_open = on_ws_open,
    .on_upgrade = on_ws_upgrade,
    .on_message = on_ws_message,
    .on_close = on_ws_close,
};

static void connect_now(rt *a)
{
    if (a->closed || a->ws_live) return;
    a->ws_live = true;
    int rc = cs_wsconn_connect(&a->ws, a->k->net, a->k->url, a->k->auth, RT_MESSAGE_MAX, &ws_ops, a);
    if (rc < 0 && a->ws.conn) {
        cs_wsconn_abort(&a->ws, rc); /* on_ws_close takes it from here */
    } else if (rc < 0) {
        a->ws_live = false;
        a->k->st.connect_failures++;
        char why[128];
        snprintf(why, sizeof why, "cannot connect: %s", cs_strerror(rc));
        lost(a, why, false);
    }
}

/* ---- the call's side ---- */

/* A new instance, not yet of any stream; NULL without memory. */
static rt *rt_new(cs_rt *k, const cs_agent_env *env, const char *call_sid)
{
    rt *a = calloc(1, sizeof *a);
    if (!a) return NULL;
    a->k = k;
    a->fetch = env->fetch;
    if (env->tts_ops) {
        cs_voice_init(&a->voice, &a->base, env->tts_ops, env->tts);
        a->has_voice = true;
    }
    snprintf(a->call_sid, sizeof a->call_sid, "%s", call_sid);
    a->log = (cs_log_ctx){a->call_sid, NULL};
    cs_buf_init(&a->held, RT_PENDING_MAX);
    cs_buf_init(&a->out, RT_EVENT_MAX);
    cs_buf_init(&a->text, RT_TEXT_MAX);
    uv_timer_init(env->loop, &a->retry);
    a->retry.data = a;
    return a;
}

static void unlink_prepared(rt *a)
{
    cs_rt *k = a->k;
    if (a->prev)
        a->prev->next = a->next;
    else if (k->prepared == a)
        k->prepared = a->next;
    else
        return; /* not on the list */
    if (a->next) a->next->prev = a->prev;
    a->prev = a->next = NULL;
    k->nprepared--;
}

static void timer_closed(uv_handle_t *h)
{
    rt *a = h->data;
    a->timer_closed = true;
    maybe_free(a);
}

/* Ends an instance: its tool calls, its voice, its socket and its timer; freed once they
 * are gone, never inside this call. */
static void rt_end(rt *a)
{
    a->closed = true;
    unlink_prepared(a);
    for (size_t i = 0; i < RT_CALLS_MAX; i++) {
        if (a->calls[i].req) cs_fetch_cancel(a->calls[i].req);
        a->calls[i].req = NULL;
        free(a->calls[i].args);
        a->calls[i].args = NULL;
    }
    free(a->transfer.args);
    a->transfer.args = NULL;
    if (a->has_voice) cs_voice_free(&a->voice);
    if (a->ws_live) cs_wsconn_close(&a->ws, CS_WS_CLOSE_NORMAL, NULL);
    uv_close((uv_handle_t *)&a->retry, timer_closed);
}

/* A prepared connection no stream took. */
static void let_go(rt *a)
{
    if (a->closed) return;
    a->k->st.expired++;
    rt_end(a);
}

static void on_expired(uv_timer_t *t)
{
    rt *a = t->data;
    LOG(a, CS_LOG_INFO, RT_NAME ": no stream came for the connection opened early");
    let_go(a);
}

static void rt_prepare(void *state, const cs_agent_env *env, const char *call_sid)
{
    cs_rt *k = state;
    for (rt *p = k->prepared; p; p = p->next)
        if (strcmp(p->call_sid, call_sid) == 0) return; /* the webhook again: one is open */
    if (k->nprepared == RT_PREPARED_MAX) {
        k->st.prepare_skipped++;
        return;
    }
    rt *a = rt_new(k, env, call_sid);
    if (!a) return;
    a->next = k->prepared;
    if (k->prepared) k->prepared->prev = a;
    k->prepared = a;
    k->nprepared++;
    k->st.prepared++;
    uv_timer_start(&a->retry, on_expired, (uint64_t)k->cfg->realtime_prepare_ms, 0);
    connect_now(a);
}

static void rt_stop(void *state)
{
    cs_rt *k = state;
    while (k->prepared) let_go(k->prepared);
}

static int rt_open(cs_agent **out, cs_stream *s, const cs_agent_env *env)
{
    cs_rt *k = cs_agent_state(env, &cs_agent_realtime);
    if (!k) return CS_ECONFIG; /* checked at start-up for AGENT=openai-realtime */
    rt *a = k->prepared;
    while (a && strcmp(a->call_sid, s->call->sid) != 0) a = a->next;
    if (a) {
        unlink_prepared(a);
        uv_timer_stop(&a->retry);
        k->st.adopted++;
    } else if (!(a = rt_new(k, env, s->call->sid))) {
        return -ENOMEM;
    } else {
        /* the webhook was answered on another loop or node (whose connection waits out
         * REALTIME_PREPARE_MS), or found the list full */
        k->st.missed++;
    }
    a->adopted = true;
    snprintf(a->stream_sid, sizeof a->stream_sid, "%s", s->sid);
    a->log.stream = a->stream_sid;
    *out = &a->base;
    if (!a->ws_live) connect_now(a);
    return 0;
}

static void rt_audio(cs_agent *base, uint64_t pos, const uint8_t *ulaw, size_t n)
{
    rt *a = (rt *)base;
    uint64_t ms = pos / CS_FRAMES_PER_MS;
    if (a->up) {
        if (!a->based) a->base_ms = ms;
        a->based = true;
        send_audio(a, ulaw, n);
        return;
    }
    if (!a->held.len) a->held_ms = ms;
    size_t room = RT_PENDING_MAX - a->held.len, take = n < room ? n : room;
    cs_buf_append(&a->held, ulaw, take);
    a->k->st.audio_held_dropped += n - take;
}

static void rt_played(cs_agent *base, const cs_heard *h)
{
    rt *a = (rt *)base;
    rt_item *it = item_by_utt(a, h->utt);
    if (it) item_drop(a, it); /* played to its end mark: it had ended */
}

static void rt_cleared(cs_agent *base, const cs_heard *h, enum cs_clear_why why)
{
    rt *a = (rt *)base;
    rt_item *it = item_by_utt(a, h->utt);
    if (!it) {
        if (a->has_voice) cs_voice_stop(&a->voice); /* the local message */
        return;
    }
    it->cut = true;
    if (why != CS_CLEAR_END && a->up) {
        uint64_t end_ms = rt_audio_end_ms(h->heard_ms, it->received);
        if (send_out(a, rt_build_truncate(&a->out, it->id, end_ms)) == 0) a->k->st.truncates++;
        cs_json j;
        cs_buf b;
        event_begin(&j, &b, "truncated");
        cs_json_kstr(&j, "item", it->id);
        cs_json_kuint(&j, "audioEndMs", end_ms);
        cs_json_kuint(&j, "receivedMs", it->received / 8);
        event_text(&j, "heardText", h->text);
        event_end(a, &j, &b);
        if (a->responding && !a->cancel_sent) {
            a->cancel_sent = true;
            if (send_out(a, rt_build_cancel(&a->out, a->response_id)) == 0) a->k->st.cancels++;
        }
    }
    items_sweep(a); /* gone now if the model was done with it */
}

static void rt_close(cs_agent *base)
{
    rt_end((rt *)base);
}

/* ---- start-up ---- */

static int settings(cs_rt *k, const cs_config *cfg, bool control, cs_buf *err)
{
    const char *key = cfg->openai_api_key;
    if (strpbrk(key, "\r\n")) {
        cs_buf_puts(err, "OPENAI_API_KEY must be one line");
        return CS_ECONFIG;
    }
    cs_buf b = CS_BUF_INIT(8192);
    if (cs_buf_printf(&b, "Authorization: Bearer %s\r\n", key) < 0) {
        cs_buf_free(&b);
        cs_buf_puts(err, "OPENAI_API_KEY: too long");
        return CS_ECONFIG;
    }
    k->auth = cs_buf_detach(&b, NULL);
    const char *url = cfg->openai_realtime_url;
    cs_buf u = CS_BUF_INIT(CS_URL_MAX - 1);
    int rc = cs_buf_printf(&u, "%s%cmodel=", url, strchr(url, '?') ? '&' : '?');
    if (rc == 0) rc = cs_form_encode(&u, cfg->openai_realtime_model, strlen(cfg->openai_realtime_model));
    cs_url parsed;
    if (rc < 0 || cs_url_parse(&parsed, u.data) < 0 ||
        (strcmp(parsed.scheme, "ws") != 0 && strcmp(parsed.scheme, "wss") != 0)) {
        cs_buf_free(&u);
        cs_buf_printf(err, "OPENAI_REALTIME_URL must be a ws:// or wss:// URL, not \"%s\"", url);
        return CS_ECONFIG;
    }
    k->url = cs_buf_detach(&u, NULL);
    if (parsed.tls && cs_net_tls_client(k->net, NULL, true) < 0) {
        cs_buf_puts(err, "cannot load the system's CA certificates for OPENAI_REALTIME_URL");
        return CS_ECONFIG;
    }
    rt_session s = {
        .model = cfg->openai_realtime_model,
        .instructions = cfg->system_prompt,
        .voice = cfg->openai_realtime_voice,
        .prefix_ms = (unsigned)cfg->realtime_vad_prefix_ms,
        .silence_ms = (unsigned)cfg->realtime_vad_silence_ms,
        .eagerness = cfg->realtime_eagerness,
        .transcribe_model = cfg->realtime_transcribe_model,
    };
    if ((rc = cs_tools_load(&k->tools, cfg, control, err)) < 0) return rc;
    s.tools = k->tools.realtime_json;
    const char *td = cfg->realtime_turn_detection;
    if (strcmp(td, "semantic_vad") == 0) {
        s.turns = RT_SEMANTIC_VAD;
    } else if (strcmp(td, "server_vad") != 0) {
        cs_buf_printf(err, "REALTIME_TURN_DETECTION: '%s' is not server_vad or semantic_vad", td);
        return CS_ECONFIG;
    }
    char *end;
    s.threshold = strtod(cfg->realtime_vad_threshold, &end);
    if (*end || end == cfg->realtime_vad_threshold || !(s.threshold >= 0 && s.threshold <= 1)) {
        cs_buf_printf(err, "REALTIME_VAD_THRESHOLD: '%s' is not a number from 0 to 1",
                      cfg->realtime_vad_threshold);
        return CS_ECONFIG;
    }
    static const char *const eagerness[] = {"low", "medium", "high", "auto"};
    bool known = false;
    for (size_t i = 0; i < 4; i++) known = known || strcmp(s.eagerness, eagerness[i]) == 0;
    if (!known) {
        cs_buf_printf(err, "REALTIME_EAGERNESS: '%s' is not low, medium, high or auto", s.eagerness);
        return CS_ECONFIG;
    }
    if (!cfg->openai_realtime_voice[0] || !cfg->openai_realtime_model[0]) {
        cs_buf_puts(err, "OPENAI_REALTIME_MODEL and OPENAI_REALTIME_VOICE cannot be empty");
        return CS_ECONFIG;
    }
    cs_buf sess = CS_BUF_INIT(RT_EVENT_MAX);
    if (rt_build_session(&sess, &s) < 0) {
        cs_buf_free(&sess);
        cs_buf_puts(err, "SYSTEM_PROMPT: too long for the session");
        return CS_ECONFIG;
    }
    k->session = cs_buf_detach(&sess, NULL);
    return 0;
}

static void rt_cleanup(void *state)
{
    cs_rt *k = state;
    if (k->net) cs_net_free(k->net);
    free(k->url);
    free(k->auth);
    free(k->session);
    cs_tools_free(&k->tools);
    free(k);
}

static int rt_setup(const cs_agent_env *env, void **state, cs_buf *err)
{
    const cs_config *cfg = env->cfg;
    if (!cfg->openai_api_key[0]) {
        if (strcmp(cfg->agent, RT_NAME) != 0) return 0; /* no call can have it */
        cs_buf_puts(err, "AGENT=" RT_NAME " needs OPENAI_API_KEY");
        return CS_ECONFIG;
    }
    cs_rt *k = calloc(1, sizeof *k);
    if (!k) return -ENOMEM;
    k->cfg = cfg;
    int rc = cs_net_new(&k->net, env->loop);
    if (rc == 0) rc = settings(k, cfg, env->control, err);
    if (rc < 0) {
        rt_cleanup(k);
        return rc;
    }
    *state = k;
    cs_info(RT_NAME ": %s, voice %s, %s", cfg->openai_realtime_url, cfg->openai_realtime_voice,
            cfg->realtime_turn_detection);
    return 0;
}

static void rt_metrics(void *state, cs_buf *out)
{
    if (!state) return;
    const rt_stats *s = &((const cs_rt *)state)->st;
    cs_prom_counter(out, "callstream_realtime_connects_total",
                    "Realtime connections opened (reconnections included)", (double)s->connects);
    cs_prom_counter(out, "callstream_realtime_connect_failures_total",
                    "Realtime connections that failed before opening", (double)s->connect_failures);
    cs_prom_counter(out, "callstream_realtime_drops_total",
                    "calls whose Realtime connection was lost (the caller told, then reconnected)",
                    (double)s->drops);
    cs_prom_counter(out, "callstream_realtime_malformed_total",
                    "server events skipped: not JSON, or without the fields of their type",
                    (double)s->malformed);
    cs_prom_counter(out, "callstream_realtime_errors_total", "error events from the server",
                    (double)s->errors);
    cs_prom_counter(out, "callstream_realtime_barge_ins_total",
                    "the model heard the caller start speaking over its audio: cleared",
                    (double)s->barge_ins);
    cs_prom_counter(out, "callstream_realtime_truncates_total",
                    "items truncated to what the caller heard", (double)s->truncates);
    cs_prom_counter(out, "callstream_realtime_cancels_total", "responses cancelled by a cut",
                    (double)s->cancels);
    static const char *const dirs[] = {"in", "out"};
    uint64_t bytes[] = {s->audio_in, s->audio_out};
    cs_prom_family(out, "callstream_realtime_audio_bytes_total", "counter",
                   "μ-law bytes to the model (in) and from it (out)", "direction", dirs, bytes, 2);
    cs_prom_counter(out, "callstream_realtime_audio_dropped_bytes_total",
                    "caller audio dropped while the connection was down, past 3 s held",
                    (double)s->audio_held_dropped);
    cs_prom_counter(out, "callstream_realtime_send_failures_total",
                    "events the connection's output refused", (double)s->send_failures);
    cs_prom_counter(out, "callstream_realtime_tool_calls_total", "function calls by the model",
                    (double)s->tool_calls);
    cs_prom_counter(out, "callstream_realtime_tool_failures_total",
                    "tool calls that failed (no such tool, no 2xx answer in time): the model is "
                    "told", (double)s->tool_failures);
    cs_prom_counter(out, "callstream_realtime_hangups_total", "calls the model ended (end_call)",
                    (double)s->hangups);
    static const char *const fates[] = {"opened", "adopted", "expired", "skipped", "missed"};
    uint64_t early[] = {s->prepared, s->adopted, s->expired, s->prepare_skipped, s->missed};
    cs_prom_family(out, "callstream_realtime_prepared_total", "counter",
                   "connections opened at the voice webhook; of those taken by their stream, let "
                   "go (no stream in REALTIME_PREPARE_MS, a failure, shutdown); webhooks that "
                   "found 256 waiting (their stream connects at start); streams that found none "
                   "prepared on their loop (connected at start: the webhook was answered on "
                   "another loop or node, or skipped)",
                   "outcome", fates, early, 5);
    static const char *const kinds[] = {"input", "output"};
    uint64_t tokens[] = {s->tokens_in, s->tokens_out};
    cs_prom_family(out, "callstream_realtime_tokens_total", "counter",
                   "tokens used, from response.done", "kind", kinds, tokens, 2);
}

const cs_agent_ops cs_agent_realtime = {
    .name = RT_NAME,
    .needs = "OPENAI_API_KEY",
    .help = "bridges the call to OpenAI's Realtime API (speech to speech)",
    .speaks_text = true,
    .interruptible = true,
    .open = rt_open,
    .setup = rt_setup,
    .prepare = rt_prepare,
    .stop = rt_stop,
    .cleanup = rt_cleanup,
    .metrics = rt_metrics,
    .audio = rt_audio,
    .played = rt_played,
    .cleared = rt_cleared,
    .close = rt_close,
};
