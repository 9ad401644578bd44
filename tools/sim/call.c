/* One simulated call, doing what Twilio does: the signed webhook, then its TwiML followed
 * verb by verb (flow.c says what each step is; here it is done: a signed fetch of the next
 * document, a wait, or a stream). A stream is the signed upgrade, connected and start with
 * the TwiML's parameters, media paced on an absolute clock, DTMF, then stop. What the
 * server sends back goes through an emulation of Twilio's playback buffer: audio plays in
 * order in real time, a mark is echoed once the audio queued before it has played, and
 * clear drops what is queued and echoes every pending mark. With --say the media is a
 * caller taking turns (turns.c); in a replay, a stored call's caller audio and keys
 * (replay_export.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audio/g711.h"
#include "audio/wav.h"
#include "core/crypto.h"
#include "core/err.h"
#include "core/log.h"
#include "net/form.h"
#include "provider/twilio.h"
#include "provider/twiml.h"
#include "provider/twilio_sig.h"
#include "sim/sim_int.h"

#define MAX_PENDING_MARKS 1024
#define NS_PER_BYTE       125000u /* 8 kHz μ-law */
#define RTT_RING          4096    /* send times kept for round trips: 82 s of frames */

enum state { C_IDLE, C_FETCH, C_WAIT, C_UPGRADE, C_STREAMING, C_STOPPED, C_DONE };

typedef struct pending_mark {
    char name[128];
    uint64_t due_ns;
} pending_mark;

/* Audio placed on the call's timeline, for --out. */
typedef struct tape {
    uint8_t *data;
    size_t len, cap;
} tape;

struct sim_call {
    sim *sim;
    unsigned idx;
    enum state state;
    char call_sid[CS_TWILIO_SID_LEN + 1];
    char stream_sid[CS_TWILIO_SID_LEN + 1];
    sim_flow *flow;    /* its TwiML */
    sim_step step;     /* the step waited for (C_WAIT) */
    sim_stream stream; /* the current stream (strings in flow's document) */
    uint64_t *fail;    /* a failure already known (a stream that ended badly), or NULL */
    cs_fetch_req *req; /* while fetching a document */
    cs_wsconn ws;
    uv_timer_t timer;
    bool timer_open;
    uint64_t t0_ns; /* when streaming started */
    uint64_t next;  /* next frame to send */
    uint64_t seq;
    uint64_t *sent_ns; /* when the last RTT_RING frames went out */
    uint64_t media_rx;
    size_t dtmf_next;
    /* playback emulation */
    sim_playback play;
    pending_mark *marks;
    size_t mark_head, nmarks;
    sim_turns turns; /* --say */
    /* for --out: what was played, and what we said */
    tape heard, said;
};

size_t sim_call_size(void)
{
    return sizeof(sim_call);
}

sim_call *sim_call_at(sim *s, unsigned i)
{
    return &s->calls[i];
}

uint64_t sim_call_t0(const sim_call *c)
{
    return c->t0_ns;
}

const char *sim_call_sid(const sim_call *c)
{
    return c->call_sid;
}

/* ---- ending ---- */

/* The call's TwiML: its counts added up, its hops kept for the report (one call). */
static void flow_done(sim_call *c)
{
    sim *s = c->sim;
    sim_flow *f = c->flow;
    if (!f) return;
#define SIM_STAT_ADD(field, name) s->n.twiml.field += f->n.field;
    SIM_FLOW_STATS(SIM_STAT_ADD)
#undef SIM_STAT_ADD
    if (s->o.calls == 1) {
        size_t len;
        const char *hops = sim_flow_report(f, &len);
        free(s->hops);
        s->hops = strndup(hops, len);
        s->end = f->end;
    }
    sim_flow_free(f);
    free(f);
    c->flow = NULL;
}

static void timer_closed(uv_handle_t *h)
{
    sim_call *c = h->data;
    sim_call_finished(c->sim);
}

/* ---- what was heard (--out) ---- */

static void tape_put(tape *t, size_t pos, const uint8_t *ulaw, size_t n)
{
    if (pos + n > t->cap) {
        size_t cap = t->cap ? t->cap : 8000 * 8;
        while (cap < pos + n) cap *= 2;
        uint8_t *p = realloc(t->data, cap);
        if (!p) return;
        memset(p + t->cap, CS_ULAW_SILENCE, cap - t->cap);
        t->data = p;
        t->cap = cap;
    }
    memcpy(t->data + pos, ulaw, n);
    if (pos + n > t->len) t->len = pos + n;
}

/* Nothing from `pos` on. */
static void tape_cut(tape *t, size_t pos)
{
    if (t->len <= pos) return;
    memset(t->data + pos, CS_ULAW_SILENCE, t->len - pos);
    t->len = pos;
}

static void tape_free(tape *t)
{
    free(t->data);
    *t = (tape){0};
}

static int16_t tape_pcm(const tape *t, size_t i)
{
    return cs_ulaw_to_pcm[i < t->len ? t->data[i] : CS_ULAW_SILENCE];
}

static void save_out(sim_call *c)
{
    const char *out = c->sim->o.out;
    unsigned channels = c->sim->o.out_stereo ? 2 : 1;
    size_t len = c->heard.len;
    if (channels == 2 && c->said.len > len) len = c->said.len;
    if (!out || !len) return;
    char path[4096];
    size_t n = strlen(out);
    if (n > 4 && strcmp(out + n - 4, ".wav") == 0 && c->sim->o.calls == 1)
        snprintf(path, sizeof path, "%s", out);
    else
        snprintf(path, sizeof path, "%s/%s.wav", out, c->call_sid);
    int16_t *pcm = malloc(len * channels * sizeof *pcm);
    cs_wav_writer w;
    int rc = pcm ? cs_wav_writer_open(&w, path, 8000, channels) : -ENOMEM;
    if (rc == 0) {
        for (size_t i = 0; i < len; i++) { /* stereo: said left, heard right */
            if (channels == 2) pcm[2 * i] = tape_pcm(&c->said, i);
            pcm[channels * i + channels - 1] = tape_pcm(&c->heard, i);
        }
        rc = cs_wav_writer_write(&w, 0, pcm, len);
        int rc2 = cs_wav_writer_close(&w, false);
        if (rc == 0) rc = rc2;
    }
    if (rc < 0) fprintf(stderr, "sim: cannot write %s: %s\n", path, cs_strerror(rc));
    free(pcm);
}

static void finish(sim_call *c, bool ok, uint64_t *reason)
{
    if (c->state == C_DONE) return;
    c->state = C_DONE;
    if (ok)
        c->sim->n.completed++;
    else {
        c->sim->n.failed++;
        if (reason) (*reason)++;
    }
    if (c->turns.o) sim_turns_finish(&c->turns, uv_hrtime()); /* it streamed */
    c->sim->n.play_merged += c->play.merged;
    save_out(c);
    flow_done(c);
    free(c->sent_ns);
    free(c->marks);
    tape_free(&c->heard);
    tape_free(&c->said);
    c->sent_ns = NULL;
    c->marks = NULL;
    cs_fetch_cancel(c->req);
    c->req = NULL;
    if (c->ws.conn) cs_wsconn_abort(&c->ws, 0);
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, timer_closed);
}

/* ---- sending ---- */

static int send_msg(sim_call *c)
{
    sim *s = c->sim;
    int rc = cs_wsconn_send(&c->ws, CS_WS_OP_TEXT, s->msg.data, s->msg.len);
    cs_buf_reset(&s->msg);
    return rc;
}

/* Frame `k`, to send at `now`: the WAV looped, or the caller's turns. false when the
 * conversation is over. */
static bool next_frame(sim_call *c, uint64_t k, uint64_t now, uint8_t frame[SIM_FRAME_BYTES])
{
    sim *s = c->sim;
    if (s->nclips) return sim_turns_frame(&c->turns, now, frame);
    if (s->replay) {
        sim_replay_frame(s->replay, k, frame);
        return true;
    }
    for (size_t i = 0; i < SIM_FRAME_BYTES; i++)
        frame[i] = s->ulaw[(k * SIM_FRAME_BYTES + i) % s->nulaw];
    return true;
}

static void send_frame(sim_call *c, uint64_t k, uint8_t frame[SIM_FRAME_BYTES])
{
    sim *s = c->sim;
    if (s->o.out_stereo) tape_put(&c->said, k * SIM_FRAME_BYTES, frame, SIM_FRAME_BYTES);
    uint64_t ts = k * SIM_FRAME_MS;
    cs_twilio_peer_media(&s->msg, c->stream_sid, ++c->seq, CS_TRACK_INBOUND, k + 1, ts, frame,
                         SIM_FRAME_BYTES);
    if (send_msg(c) == 0) s->n.frames_sent++;
    if (c->stream.both_tracks) { /* Twilio's own side of the call: silence here */
        memset(frame, CS_ULAW_SILENCE, SIM_FRAME_BYTES);
        cs_twilio_peer_media(&s->msg, c->stream_sid, ++c->seq, CS_TRACK_OUTBOUND, k + 1, ts, frame,
                             SIM_FRAME_BYTES);
        send_msg(c);
    }
}

static void send_dtmf_due(sim_call *c, uint64_t k)
{
    sim *s = c->sim;
    if (s->replay) { /* the stored call's keys, at their times */
        for (char d; (d = sim_replay_key(s->replay, &c->dtmf_next, k));) {
            cs_twilio_peer_dtmf(&s->msg, c->stream_sid, ++c->seq, d);
            if (send_msg(c) == 0) s->n.dtmf_sent++;
        }
        return;
    }
    const char *digits = s->o.dtmf;
    if (!digits) return;
    size_t nd = strlen(digits);
    while (c->dtmf_next < nd && k >= (c->dtmf_next + 1) * s->frames / (nd + 1)) {
        cs_twilio_peer_dtmf(&s->msg, c->stream_sid, ++c->seq, digits[c->dtmf_next++]);
        if (send_msg(c) == 0) s->n.dtmf_sent++;
    }
}

/* ---- Twilio's playback buffer ---- */

static void echo_due_marks(sim_call *c, uint64_t now, bool all)
{
    sim *s = c->sim;
    while (c->nmarks) {
        pending_mark *m = &c->marks[c->mark_head];
        if (!all && m->due_ns > now) break;
        cs_twilio_peer_mark(&s->msg, c->stream_sid, ++c->seq, cs_str_of(m->name));
        if (send_msg(c) == 0) s->n.marks_echoed++;
        c->mark_head = (c->mark_head + 1) % MAX_PENDING_MARKS;
        c->nmarks--;
    }
}

static size_t out_pos(const sim_call *c, uint64_t at_ns)
{
    return at_ns > c->t0_ns ? (size_t)((at_ns - c->t0_ns) / NS_PER_BYTE) : 0;
}

static void play(sim_call *c, const uint8_t *ulaw, size_t n, uint64_t now)
{
    uint64_t start = c->sim->nclips ? sim_turns_media(&c->turns, now, ulaw, n)
                                    : sim_playback_add(&c->play, now, n, false);
    if (c->sim->o.out) tape_put(&c->heard, out_pos(c, start), ulaw, n);
}

static void clear(sim_call *c, uint64_t now)
{
    if (c->sim->nclips)
        sim_turns_clear(&c->turns, now);
    else
        sim_playback_clear(&c->play, now);
    tape_cut(&c->heard, out_pos(c, now)); /* what had not played yet is never heard */
    echo_due_marks(c, now, true);
}

static void on_message(cs_wsconn *ws, enum cs_ws_op op, char *data, size_t len)
{
    sim_call *c = ws->data;
    sim *s = c->sim;
    uint64_t now = uv_hrtime();
    cs_twilio_out m;
    if (op != CS_WS_OP_TEXT || cs_twilio_peer_parse(data, len, &m, s->rx, sizeof s->rx) < 0) {
        s->n.bad_rx++;
        return;
    }
    switch (m.type) {
    case CS_TWOUT_MEDIA:
        s->n.media_rx++;
        s->n.bytes_rx += m.len;
        /* Against the echo agent the k-th media back answers the k-th frame sent. */
        if (c->media_rx < c->next && c->next - c->media_rx <= RTT_RING)
            sim_hist_add(&s->rtt, (now - c->sent_ns[c->media_rx % RTT_RING]) / 1000);
        c->media_rx++;
        play(c, m.payload, m.len, now);
        break;
    case CS_TWOUT_MARK:
        s->n.marks_rx++;
        if (c->nmarks == MAX_PENDING_MARKS) break;
        pending_mark *pm = &c->marks[(c->mark_head + c->nmarks++) % MAX_PENDING_MARKS];
        cs_str_copy(pm->name, sizeof pm->name, m.mark_name);
        /* echoed immediately when nothing is queued (documented) */
        pm->due_ns = c->play.end > now ? c->play.end : now;
        break;
    case CS_TWOUT_CLEAR:
        s->n.clears_rx++;
        clear(c, now);
        break;
    }
    echo_due_marks(c, now, false);
}

static void stop_stream(sim_call *c)
{
    sim *s = c->sim;
    cs_twilio_peer_stop(&s->msg, c->stream_sid, ++c->seq, s->o.account_sid, c->call_sid);
    send_msg(c);
    c->state = C_STOPPED;
}

static void do_step(sim_call *c);

static void on_tick(uv_timer_t *t)
{
    sim_call *c = t->data;
    sim *s = c->sim;
    if (c->state == C_WAIT) { /* the verbs before the step have taken their time */
        do_step(c);
        return;
    }
    if (c->state == C_STOPPED) { /* the server never closed: do it ourselves */
        cs_wsconn_close(&c->ws, CS_WS_CLOSE_NORMAL, NULL);
        return;
    }
    if (c->state != C_STREAMING) { /* the upgrade took too long */
        finish(c, false, &s->n.fail_timeout);
        return;
    }
    uint64_t now = uv_hrtime();
    bool over = false;
    while (c->next < s->frames) {
        uint64_t due = c->t0_ns + c->next * SIM_FRAME_MS * 1000000ull;
        if (due > now) break;
        uint8_t frame[SIM_FRAME_BYTES];
        if (!next_frame(c, c->next, now, frame)) {
            over = true;
            break;
        }
        sim_hist_add(&s->lag, (now - due) / 1000);
        c->sent_ns[c->next % RTT_RING] = now;
        send_frame(c, c->next, frame);
        send_dtmf_due(c, c->next);
        c->next++;
    }
    echo_due_marks(c, now, false);
    if (over || c->next == s->frames) {
        if (s->nclips) sim_turns_finish(&c->turns, now);
        stop_stream(c);
        uv_timer_start(&c->timer, on_tick, SIM_CLOSE_WAIT_MS, 0);
        return;
    }
    uint64_t due = c->t0_ns + c->next * SIM_FRAME_MS * 1000000ull;
    uv_update_time(s->loop);
    now = uv_hrtime();
    uint64_t wait_ms = due > now ? (due - now + 999999) / 1000000 : 0;
    uv_timer_start(&c->timer, on_tick, wait_ms, 0);
}

/* ---- the media socket ---- */

static void on_open(cs_wsconn *ws)
{
    sim_call *c = ws->data;
    sim *s = c->sim;
    cs_twilio_peer_connected(&s->msg);
    send_msg(c);
    unsigned tracks = CS_TRACK_BIT(CS_TRACK_INBOUND);
    if (c->stream.both_tracks) tracks |= CS_TRACK_BIT(CS_TRACK_OUTBOUND);
    cs_twilio_start st = {
        .account_sid = s->o.account_sid,
        .call_sid = c->call_sid,
        .stream_sid = c->stream_sid,
        .tracks = tracks,
        .params = c->stream.params,
        .nparams = c->stream.nparams,
    };
    cs_twilio_peer_start(&s->msg, ++c->seq, &st);
    send_msg(c);
    c->state = C_STREAMING;
    c->t0_ns = uv_hrtime();
    c->next = c->media_rx = 0;
    c->dtmf_next = c->mark_head = c->nmarks = 0;
    c->play = (sim_playback){.end = c->t0_ns, .played_to = c->t0_ns};
    if (s->nclips)
        sim_turns_init(&c->turns, &s->turn, &c->play, &s->turns[c->idx * s->nclips], c->t0_ns);
    uv_timer_stop(&c->timer);
    on_tick(&c->timer);
}

static void next_step(sim_call *c);

/* The stream is over: ended by us (the caller hung up) or by the server (closed, or never
 * opened). The server's end is a failure (`fail`) unless a <Connect action> takes the call
 * back, as Twilio does; the TwiML goes on either way. */
static void stream_over(sim_call *c, bool by_server, const char *why, uint64_t *fail)
{
    if (by_server && !sim_flow_connect_action(c->flow) && !c->fail) c->fail = fail;
    sim_flow_stream_end(c->flow, by_server, why);
    next_step(c);
}

static void on_ws_close(cs_wsconn *ws, uint16_t code, int err)
{
    sim_call *c = ws->data;
    sim *s = c->sim;
    (void)err;
    if (c->state == C_STOPPED) {
        stream_over(c, false, NULL, NULL);
    } else if (c->state == C_UPGRADE) {
        fprintf(stderr, "sim: %s: upgrade to %s failed%s%d\n", c->call_sid, c->stream.url,
                ws->http_status ? " with HTTP " : ", code ",
                ws->http_status ? ws->http_status : code);
        stream_over(c, true, "upgrade failed",
                    ws->http_status ? &s->n.fail_upgrade : &s->n.fail_connect);
    } else if (c->state == C_STREAMING) {
        fprintf(stderr, "sim: %s: the server closed the stream early (code %u)\n", c->call_sid,
                code);
        stream_over(c, true, "closed by the server", &s->n.fail_closed);
    }
}

static const cs_wsconn_ops ws_ops = {
    .on_open = on_open,
    .on_message = on_message,
    .on_close = on_ws_close,
};

static void random_sid(char out[CS_TWILIO_SID_LEN + 1], const char prefix[2])
{
    uint8_t r[16];
    cs_random(r, sizeof r);
    out[0] = prefix[0];
    out[1] = prefix[1];
    cs_hex(out + 2, r, sizeof r);
}

static void sign(char out[CS_TWILIO_SIG_LEN + 1], const char *token, const char *url,
                 const cs_kv *params, size_t n)
{
    out[0] = '\0';
    if (token) cs_twilio_sig_compute(out, token, url, params, n);
}

/* ---- following the TwiML ---- */

/* Ends the call as its TwiML ended. */
static void ended(sim_call *c, sim_end e)
{
    sim *s = c->sim;
    const sim_flow *f = c->flow;
    if (f->error[0]) fprintf(stderr, "sim: %s: %s\n", c->call_sid, f->error);
    switch (e) {
    case SIM_END_HTTP:
        finish(c, false,
               c->fail              ? c->fail
               : f->n.documents > 1 ? &s->n.fail_fetch
                                    : &s->n.fail_webhook);
        break;
    case SIM_END_TWIML:
        finish(c, false, c->fail ? c->fail : &s->n.fail_twiml);
        break;
    case SIM_END_LIMIT:
        finish(c, false, c->fail ? c->fail : &s->n.fail_limit);
        break;
    default: /* hung up as the TwiML or the caller says */
        finish(c, c->fail == NULL, c->fail);
    }
}

static void on_document(void *data, const cs_fetch_result *res)
{
    sim_call *c = data;
    c->req = NULL;
    sim_flow_answer(c->flow, c->step.method, c->step.url, res->status, res->err, res->reason,
                    res->body, res->len);
    next_step(c);
}

/* Fetches a document as Twilio does: its parameters for the call (CallStatus `status`)
 * and the step's own, form-encoded in a POST or in a GET's query, signed. */
static void fetch_document(sim_call *c, const char *status)
{
    sim *s = c->sim;
    const sim_step *st = &c->step;
    const char *names[9 + SIM_EXTRA_MAX] = {"AccountSid", "ApiVersion", "CallSid",
                                            "CallStatus", "Called",     "Caller",
                                            "Direction",  "From",       "To"};
    const char *values[9 + SIM_EXTRA_MAX] = {s->o.account_sid, "2010-04-01", c->call_sid,
                                             status,           s->o.to,      s->o.from,
                                             "inbound",        s->o.from,    s->o.to};
    size_t n = 9;
    cs_kv params[9 + SIM_EXTRA_MAX];
    for (size_t k = 0; k < st->nextra; k++, n++) {
        names[n] = st->extra[k].name.p;
        values[n] = st->extra[k].value.p;
    }
    for (size_t k = 0; k < n; k++) params[k] = (cs_kv){cs_str_of(names[k]), cs_str_of(values[k])};
    bool get = strcmp(st->method, "GET") == 0;
    cs_buf form = CS_BUF_INIT(SIM_URL_MAX + 8192);
    cs_buf url = CS_BUF_INIT(2 * SIM_URL_MAX + 8192);
    cs_buf_append(&url, st->url, strlen(st->url));
    int rc = cs_form_write(&form, names, values, n);
    if (rc == 0 && get) { /* GET: the parameters in the query, signed as part of the URL */
        cs_buf_append(&url, strchr(st->url, '?') ? "&" : "?", 1);
        rc = cs_buf_append(&url, form.data, form.len);
    }
    if (rc == 0) rc = cs_buf_append(&url, "", 1) < 0 ? CS_ELIMIT : 0;
    char sig[CS_TWILIO_SIG_LEN + 1] = "";
    if (rc == 0) sign(sig, s->o.auth_token, url.data, get ? NULL : params, get ? 0 : n);
    char signature[128];
    snprintf(signature, sizeof signature, "X-Twilio-Signature: %s", sig);
    const char *headers[] = {signature, "Content-Type: application/x-www-form-urlencoded"};
    cs_fetch_opts o = {
        .method = st->method,
        .url = url.data,
        .headers = headers,
        .nheaders = (sig[0] ? 1 : 0) + (get ? 0 : 1),
        .body = get ? NULL : form.data,
        .len = get ? 0 : form.len,
        .timeout_ms = (uint32_t)(s->o.setup_timeout_s * 1000),
        .max_body = CS_TWIML_MAX_BYTES + 1, /* more is Twilio's error 11750 */
        .on_done = on_document,
        .data = c,
    };
    if (!sig[0]) o.headers++;
    c->state = C_FETCH;
    if (rc == 0) rc = cs_fetch_start(s->fetch, &o, &c->req);
    cs_buf_free(&form);
    cs_buf_free(&url);
    if (rc < 0) { /* an answer that never comes: the flow hears why */
        char why[128];
        snprintf(why, sizeof why, "cannot fetch: %s", cs_strerror(rc));
        cs_fetch_result res = {.err = rc, .reason = why};
        on_document(c, &res);
    }
}

static void open_stream(sim_call *c)
{
    sim *s = c->sim;
    c->stream = c->step.stream;
    random_sid(c->stream_sid, "MZ"); /* each stream its own */
    char sig[CS_TWILIO_SIG_LEN + 1];
    sign(sig, s->o.auth_token, c->stream.url, NULL, 0);
    char extra[128] = "";
    if (sig[0]) snprintf(extra, sizeof extra, "x-twilio-signature: %s\r\n", sig);
    c->state = C_UPGRADE;
    uv_timer_start(&c->timer, on_tick, (uint64_t)(s->o.setup_timeout_s * 1000), 0);
    int rc =
        cs_wsconn_connect(&c->ws, s->net, c->stream.url, extra, CS_PEV_MAX_PAYLOAD * 2, &ws_ops, c);
    if (rc < 0) {
        fprintf(stderr, "sim: %s: cannot open %s: %s\n", c->call_sid, c->stream.url,
                cs_strerror(rc));
        uv_timer_stop(&c->timer);
        stream_over(c, true, "cannot connect", &s->n.fail_connect);
    }
}

static void do_step(sim_call *c)
{
    switch (c->step.kind) {
    case SIM_STEP_FETCH:
        fetch_document(c, "in-progress");
        break;
    case SIM_STEP_STREAM:
        open_stream(c);
        break;
    case SIM_STEP_END:
        ended(c, c->step.end);
        break;
    }
}

/* What the TwiML does next, once the time its verbs take has passed (never from inside
 * a callback of what ended: always through the timer). */
static void next_step(sim_call *c)
{
    sim_flow_next(c->flow, &c->step);
    c->state = C_WAIT;
    uv_timer_start(&c->timer, on_tick, c->step.wait_ms, 0);
}

void sim_call_start(sim *s, unsigned i)
{
    sim_call *c = &s->calls[i];
    memset(c, 0, sizeof *c);
    c->sim = s;
    c->idx = i;
    random_sid(c->call_sid, "CA");
    uv_timer_init(s->loop, &c->timer);
    c->timer.data = c;
    c->sent_ns = calloc(RTT_RING, sizeof *c->sent_ns);
    c->marks = calloc(MAX_PENDING_MARKS, sizeof *c->marks);
    c->flow = malloc(sizeof *c->flow);
    char url[SIM_URL_MAX];
    snprintf(url, sizeof url, "%s/twilio/voice", s->o.url);
    if (!c->sent_ns || !c->marks || !c->flow || sim_flow_init(c->flow, &s->flow, url) < 0) {
        if (c->flow) sim_flow_free(c->flow);
        free(c->flow);
        c->flow = NULL;
        finish(c, false, &s->n.fail_webhook);
        return;
    }
    /* the voice webhook, as Twilio posts it when the call rings */
    c->step = (sim_step){.kind = SIM_STEP_FETCH, .method = "POST"};
    snprintf(c->step.url, sizeof c->step.url, "%s", url);
    fetch_document(c, "ringing");
}
