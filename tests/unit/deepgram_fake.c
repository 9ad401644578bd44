#include "deepgram_fake.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audio/g711.h"
#include "core/json.h"
#include "net/form.h"
#include "net/server.h"

#define FAKE_FRAME            160 /* 20 ms of audio */
#define FAKE_BYTES_PER_S      8000
#define FAKE_BYTES_PER_MS     8
#define FAKE_SPEECH_LEVEL     1000 /* mean |sample| of a speech frame */
#define FAKE_INTERIM_MS       200
#define FAKE_SILENCE_FINAL_MS 1000
#define FAKE_ENDPOINTING_MS   10    /* Deepgram's default */
#define FAKE_IDLE_MS          10000 /* NET-0001 (docs/audio-keep-alive) */
#define FAKE_TICK_MS          20    /* pacing and the NET-0001 sweep */
#define FAKE_RATE_NUM         5     /* paced: at most 5/4 of real time */
#define FAKE_RATE_DEN         4
#define FAKE_MAX_PENDING      (60u * FAKE_BYTES_PER_S) /* paced audio waiting, at most */
#define FAKE_MAX_TERMS        100 /* keywords or keyterms (docs/keywords, docs/keyterm) */
#define FAKE_MAX_MESSAGE      (64u << 10)
#define FAKE_MAX_ANSWER       (1u << 20)

typedef struct fake_conn fake_conn;

struct dg_fake {
    uv_loop_t *loop;
    cs_net *net;
    cs_server *server;
    uv_timer_t tick;
    bool tick_closed;
    dg_fake_opts o;
    dg_fake_stats st;
    char url[64];
    unsigned requests;    /* upgrade requests seen (the first `faulty` misbehave) */
    unsigned request_ids; /* given so far */
    unsigned utterances;  /* transcribed so far over all connections: the script's place */
    fake_conn *conns;
};

struct fake_conn {
    cs_wsconn ws;
    dg_fake *f;
    fake_conn *prev, *next;
    dg_fake_fault fault;
    char request_id[16];
    bool interim;           /* interim_results=true */
    uint64_t endpointing;   /* bytes of silence that end an utterance */
    uint64_t utterance_end; /* bytes after the last word for UtteranceEnd; 0: not asked */
    bool done;              /* closing, or misbehaving: takes nothing more */
    bool close_requested;   /* CloseStream came: close once the pending audio is taken */
    uint64_t opened_ms, first_audio_ms;
    uint64_t last_rx_ms; /* audio or KeepAlive */
    uint64_t received;   /* audio bytes that came */
    uint64_t taken;      /* audio bytes taken (all of them, unless paced) */
    cs_buf pending;      /* paced: received, not taken yet */
    uint64_t pos;        /* audio bytes segmented (whole frames) */
    uint8_t frame[FAKE_FRAME];
    size_t nframe;
    uint64_t final_pos; /* finalized up to here */
    bool in_speech;
    uint64_t speech_start, speech_end, interim_pos;
    unsigned shown; /* words shown so far by interims */
    bool utterance_end_due;
};

/* ---- answers ---- */

static double seconds(uint64_t bytes)
{
    return (double)bytes / FAKE_BYTES_PER_S;
}

/* Sends `out` as a text message and frees it. */
static void send_json(fake_conn *fc, cs_buf *out)
{
    cs_wsconn_send(&fc->ws, CS_WS_OP_TEXT, out->data, out->len);
    cs_buf_free(out);
}

static const char *utterance_text(const dg_fake *f, char *buf, size_t cap)
{
    if (f->utterances < f->o.nscript) return f->o.script[f->utterances];
    snprintf(buf, cap, "utterance %u", f->utterances + 1);
    return buf;
}

/* The next space-separated word of *p, or false at the end. */
static bool next_word(const char **p, cs_str *w)
{
    while (**p == ' ') (*p)++;
    const char *start = *p;
    while (**p && **p != ' ') (*p)++;
    *w = (cs_str){start, (size_t)(*p - start)};
    return w->n > 0;
}

/* The words of the utterance, `shown` of them (all when 0), evenly over its speech. */
static void write_words(cs_json *j, const fake_conn *fc, const char *text, unsigned shown)
{
    unsigned total = 0;
    cs_str w;
    for (const char *p = text; next_word(&p, &w);) total++;
    uint64_t span = fc->speech_end - fc->speech_start;
    unsigned i = 0;
    cs_json_key(j, "words");
    cs_json_arr(j);
    for (const char *p = text; next_word(&p, &w) && (!shown || i < shown); i++) {
        cs_json_obj(j);
        cs_json_key(j, "word");
        cs_json_strn(j, w.p, w.n);
        cs_json_kdouble(j, "start", seconds(fc->speech_start + span * i / total));
        cs_json_kdouble(j, "end", seconds(fc->speech_start + span * (i + 1) / total));
        cs_json_kdouble(j, "confidence", DG_FAKE_CONFIDENCE);
        cs_json_key(j, "punctuated_word");
        cs_json_strn(j, w.p, w.n);
        cs_json_obj_end(j);
    }
    cs_json_arr_end(j);
}

/* Length of the first `shown` words of text (all when 0). */
static size_t words_prefix(const char *text, unsigned shown)
{
    const char *p = text, *end = text;
    cs_str w;
    for (unsigned i = 0; (!shown || i < shown) && next_word(&p, &w); i++) end = w.p + w.n;
    return (size_t)(end - text);
}

/* A Results message for the audio since the last final; with `speech`, the current
 * utterance's text (`shown` words for an interim), else an empty transcript. */
static void send_results(fake_conn *fc, bool is_final, bool speech_final, bool speech,
                         unsigned shown)
{
    char buf[32];
    const char *text = speech ? utterance_text(fc->f, buf, sizeof buf) : "";
    cs_buf out = CS_BUF_INIT(FAKE_MAX_ANSWER);
    cs_json j;
    cs_json_init(&j, &out);
    cs_json_obj(&j);
    cs_json_kstr(&j, "type", "Results");
    cs_json_key(&j, "channel_index");
    cs_json_arr(&j);
    cs_json_int(&j, 0);
    cs_json_int(&j, 1);
    cs_json_arr_end(&j);
    cs_json_kdouble(&j, "duration", seconds(fc->pos - fc->final_pos));
    cs_json_kdouble(&j, "start", seconds(fc->final_pos));
    cs_json_kbool(&j, "is_final", is_final);
    cs_json_kbool(&j, "speech_final", speech_final);
    cs_json_key(&j, "channel");
    cs_json_obj(&j);
    cs_json_key(&j, "alternatives");
    cs_json_arr(&j);
    cs_json_obj(&j);
    cs_json_key(&j, "transcript");
    cs_json_strn(&j, text, words_prefix(text, shown));
    cs_json_kdouble(&j, "confidence", speech ? DG_FAKE_CONFIDENCE : 0);
    write_words(&j, fc, text, shown);
    cs_json_obj_end(&j);
    cs_json_arr_end(&j);
    cs_json_obj_end(&j);
    cs_json_key(&j, "metadata");
    cs_json_obj(&j);
    cs_json_kstr(&j, "request_id", fc->request_id);
    cs_json_kstr(&j, "model_uuid", "fake");
    cs_json_obj_end(&j);
    cs_json_kbool(&j, "from_finalize", false);
    cs_json_obj_end(&j);
    cs_json_end(&j);
    send_json(fc, &out);
}

/* At `last_word_end` seconds, or -1 when Deepgram knows of no word. */
static void send_utterance_end(fake_conn *fc, double last_word_end)
{
    cs_buf out = CS_BUF_INIT(256);
    cs_buf_printf(&out, "{\"type\":\"UtteranceEnd\",\"channel\":[0,1],\"last_word_end\":%.3f}",
                  last_word_end);
    send_json(fc, &out);
}

static void send_metadata(fake_conn *fc)
{
    cs_buf out = CS_BUF_INIT(512);
    cs_buf_printf(&out,
                  "{\"type\":\"Metadata\",\"transaction_key\":\"deprecated\","
                  "\"request_id\":\"%s\",\"sha256\":\"\",\"created\":\"2026-01-01T00:00:00Z\","
                  "\"duration\":%.3f,\"channels\":1}",
                  fc->request_id, seconds(fc->pos));
    send_json(fc, &out);
}

/* ---- segmenting ---- */

static void end_utterance(fake_conn *fc, bool speech_final)
{
    send_results(fc, true, speech_final, true, 0);
    if (fc->f->o.stray_utterance_end) send_utterance_end(fc, -1);
    fc->f->utterances++;
    fc->final_pos = fc->pos;
    fc->in_speech = false;
    fc->utterance_end_due = fc->f->o.noisy && fc->utterance_end;
}

static void take_frame(fake_conn *fc)
{
    int16_t pcm[FAKE_FRAME];
    cs_ulaw_decode(pcm, fc->frame, FAKE_FRAME);
    long sum = 0;
    for (size_t i = 0; i < FAKE_FRAME; i++) sum += pcm[i] < 0 ? -pcm[i] : pcm[i];
    bool speech = sum / FAKE_FRAME >= FAKE_SPEECH_LEVEL;
    fc->pos += FAKE_FRAME;
    if (speech) {
        if (!fc->in_speech) {
            fc->in_speech = true;
            fc->speech_start = fc->interim_pos = fc->pos - FAKE_FRAME;
            fc->shown = 0;
            fc->utterance_end_due = false;
        }
        fc->speech_end = fc->pos;
        if (fc->interim && fc->pos - fc->interim_pos >= FAKE_INTERIM_MS * FAKE_BYTES_PER_MS) {
            send_results(fc, false, false, true, ++fc->shown);
            fc->interim_pos = fc->pos;
        }
    } else if (fc->in_speech) {
        if (fc->pos - fc->speech_end >= fc->endpointing) end_utterance(fc, !fc->f->o.noisy);
    } else {
        if (fc->utterance_end_due && fc->pos - fc->speech_end >= fc->utterance_end) {
            send_utterance_end(fc, seconds(fc->speech_end));
            fc->utterance_end_due = false;
        }
        if (fc->pos - fc->final_pos >= FAKE_SILENCE_FINAL_MS * FAKE_BYTES_PER_MS) {
            send_results(fc, true, false, false, 0);
            fc->final_pos = fc->pos;
        }
    }
}

/* ---- misbehaving ---- */

static void misbehave(fake_conn *fc)
{
    fc->done = true;
    if (fc->fault == DG_FAKE_DROP) {
        cs_conn_close(fc->ws.conn, 0, true); /* flushes what was answered, no close frame */
        return;
    }
    if (fc->fault == DG_FAKE_CLOSE) {
        cs_wsconn_close(&fc->ws, fc->f->o.close_code, fc->f->o.close_reason);
        return;
    }
    cs_buf out = CS_BUF_INIT(512);
    cs_buf_puts(&out, "{\"type\":\"Error\",\"description\":\"fake internal error\","
                      "\"message\":\"the fake was told to fail\",\"variant\":\"fake\"}");
    send_json(fc, &out);
    cs_wsconn_close(&fc->ws, CS_WS_CLOSE_INTERNAL, "NET-0000");
}

/* What a client must survive: not JSON, binary, a type it did not ask for, Results
 * without times, and an empty interim (Deepgram sends many over silence). */
static void send_junk(fake_conn *fc)
{
    static const char bytes[] = {1, 2, 3};
    static const char *const texts[] = {
        "not json",
        "{\"type\":\"SpeechStarted\",\"channel\":[0,1],\"timestamp\":0.0}",
        "{\"type\":\"Results\",\"channel\":{\"alternatives\":[{\"transcript\":\"lost\"}]}}",
        ("{\"type\":\"Results\",\"start\":0,\"duration\":0.1,\"is_final\":false,"
         "\"channel\":{\"alternatives\":[{\"transcript\":\" \",\"confidence\":0}]}}"),
    };
    cs_wsconn_send(&fc->ws, CS_WS_OP_BINARY, bytes, sizeof bytes);
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++)
        cs_wsconn_send(&fc->ws, CS_WS_OP_TEXT, texts[i], strlen(texts[i]));
}

/* ---- the WebSocket ---- */

/* Audio as the recognizer hears it; the fault trips after fault_after bytes. */
static void hear(fake_conn *fc, const uint8_t *p, size_t n)
{
    dg_fake *f = fc->f;
    bool trips =
        (fc->fault == DG_FAKE_DROP || fc->fault == DG_FAKE_ERROR || fc->fault == DG_FAKE_CLOSE) &&
        fc->taken + n >= f->o.fault_after;
    if (trips) n = (size_t)(f->o.fault_after - fc->taken);
    fc->taken += n;
    f->st.audio_bytes += n;
    for (size_t i = 0; i < n; i++) {
        fc->frame[fc->nframe++] = p[i];
        if (fc->nframe == FAKE_FRAME) {
            take_frame(fc);
            fc->nframe = 0;
        }
    }
    if (trips) misbehave(fc);
}

static void close_stream(fake_conn *fc)
{
    if (fc->in_speech) end_utterance(fc, false);
    send_metadata(fc);
    cs_wsconn_close(&fc->ws, CS_WS_CLOSE_NORMAL, NULL);
    fc->done = true;
}

/* Paced: takes what 1.25× real time since the first audio allows. */
static void drain(fake_conn *fc)
{
    uint64_t elapsed = uv_now(fc->f->loop) - fc->first_audio_ms;
    uint64_t allowed = elapsed * FAKE_BYTES_PER_MS * FAKE_RATE_NUM / FAKE_RATE_DEN + FAKE_FRAME;
    uint64_t room = allowed > fc->taken ? allowed - fc->taken : 0;
    size_t n = fc->pending.len < room ? fc->pending.len : (size_t)room;
    if (n) {
        hear(fc, (const uint8_t *)fc->pending.data, n);
        cs_buf_consume(&fc->pending, n);
    }
    if (!fc->done && fc->close_requested && !fc->pending.len) close_stream(fc);
}

static void take_audio(fake_conn *fc, const uint8_t *p, size_t n)
{
    if (!fc->received) fc->first_audio_ms = uv_now(fc->f->loop);
    fc->received += n;
    if (!fc->f->o.paced) {
        hear(fc, p, n);
    } else if (cs_buf_append(&fc->pending, p, n) < 0) {
        fc->done = true; /* far behind: Deepgram would have given up on the stream too */
        cs_wsconn_close(&fc->ws, CS_WS_CLOSE_INTERNAL, "NET-0000");
    } else {
        drain(fc);
    }
}

static void on_message(cs_wsconn *ws, enum cs_ws_op op, char *data, size_t len)
{
    fake_conn *fc = ws->data;
    dg_fake *f = fc->f;
    uint64_t now = uv_now(f->loop);
    if (fc->received && !fc->close_requested && now - fc->last_rx_ms > f->st.max_gap_ms)
        f->st.max_gap_ms = now - fc->last_rx_ms;
    fc->last_rx_ms = now;
    if (op == CS_WS_OP_BINARY) {
        if (!fc->done) take_audio(fc, (const uint8_t *)data, len);
        return;
    }
    cJSON *msg = cJSON_ParseWithLength(data, len);
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(msg, "type");
    if (cJSON_IsString(type) && strcmp(type->valuestring, "KeepAlive") == 0) {
        f->st.keepalives++;
    } else if (cJSON_IsString(type) && strcmp(type->valuestring, "CloseStream") == 0) {
        f->st.close_streams++;
        fc->close_requested = true;
        if (!fc->done && !fc->pending.len) close_stream(fc);
    }
    cJSON_Delete(msg);
}

static void on_close(cs_wsconn *ws, uint16_t code, int err)
{
    (void)code;
    (void)err;
    fake_conn *fc = ws->data;
    if (fc->prev)
        fc->prev->next = fc->next;
    else
        fc->f->conns = fc->next;
    if (fc->next) fc->next->prev = fc->prev;
    cs_buf_free(&fc->pending);
    free(fc);
}

static const cs_wsconn_ops fake_ops = {
    .on_message = on_message,
    .on_close = on_close,
};

/* Paced audio, and Deepgram's NET-0001: no audio and no KeepAlive for 10 s
 * (docs/audio-keep-alive), or no audio within 10 s of the upgrade, KeepAlive or not
 * (docs/recovering-from-connection-errors-and-timeouts-when-live-streaming-audio). */
static void on_tick(uv_timer_t *t)
{
    dg_fake *f = t->data;
    uint64_t now = uv_now(f->loop), idle = f->o.idle_ms ? f->o.idle_ms : FAKE_IDLE_MS;
    for (fake_conn *fc = f->conns; fc; fc = fc->next) {
        if (!fc->done && fc->pending.len) drain(fc);
        if (fc->done || fc->pending.len) continue; /* still working through the audio */
        if (now - fc->last_rx_ms < idle && (fc->received || now - fc->opened_ms < idle)) continue;
        f->st.net0001++;
        fc->done = true;
        cs_wsconn_close(&fc->ws, CS_WS_CLOSE_INTERNAL, "NET-0001");
    }
}

/* ---- the upgrade ---- */

/* As Deepgram refuses: a JSON body, the request id in dg-request-id and the reason in
 * dg-error (docs/stt-troubleshooting-websocket-data-and-net-errors). */
static void refuse(cs_request *r, int status, const char *code, const char *msg)
{
    dg_fake *f = r->app;
    f->st.refused++;
    char body[320], extra[256];
    unsigned id = ++f->request_ids;
    int n = snprintf(body, sizeof body,
                     "{\"err_code\":\"%s\",\"err_msg\":\"%s\",\"request_id\":\"fake-%u\"}", code,
                     msg, id);
    snprintf(extra, sizeof extra, "dg-request-id: fake-%u\r\ndg-error: %s\r\n", id, msg);
    cs_respond(r, status, "application/json", body, (size_t)n, extra);
}

static uint64_t ms_param(const cs_form *q, const char *name, unsigned def)
{
    const char *v = cs_form_get(q, name);
    return (uint64_t)(v ? strtoul(v, NULL, 10) : def) * FAKE_BYTES_PER_MS;
}

/* A new stream with the client's options; false if the format is not Twilio's or the
 * request boosts more terms than Deepgram takes. */
static bool read_options(fake_conn *fc, cs_str query)
{
    cs_form q;
    if (cs_form_parse(&q, query.p ? query.p : "", query.n) < 0) return false;
    const char *enc = cs_form_get(&q, "encoding"), *rate = cs_form_get(&q, "sample_rate");
    const char *interim = cs_form_get(&q, "interim_results");
    size_t terms = 0;
    for (size_t i = 0; i < q.n; i++)
        terms += !strcmp(q.pairs[i].name, "keywords") || !strcmp(q.pairs[i].name, "keyterm");
    bool ok = enc && strcmp(enc, "mulaw") == 0 && rate && strcmp(rate, "8000") == 0 &&
              terms <= FAKE_MAX_TERMS;
    fc->interim = interim && strcmp(interim, "true") == 0;
    fc->endpointing = ms_param(&q, "endpointing", FAKE_ENDPOINTING_MS);
    fc->utterance_end = ms_param(&q, "utterance_end_ms", 0);
    cs_form_free(&q);
    return ok;
}

static bool key_matches(const dg_fake *f, const cs_str *auth)
{
    char want[256];
    snprintf(want, sizeof want, "Token %s", f->o.api_key);
    return auth && cs_str_eqz(*auth, want);
}

static void on_listen(cs_request *r)
{
    dg_fake *f = r->app;
    bool faulty = f->o.faulty < 0 || f->requests++ < (unsigned)f->o.faulty;
    dg_fake_fault fault = faulty ? f->o.fault : DG_FAKE_NONE;
    const cs_str *auth = cs_request_header(r, "Authorization");
    cs_str_copy(f->st.authorization, sizeof f->st.authorization, auth ? *auth : CS_STR(""));
    cs_str_copy(f->st.query, sizeof f->st.query, r->head.query);
    if (fault == DG_FAKE_REFUSE) {
        static const char text[] = "The fake was told to refuse.";
        f->st.refused++;
        cs_respond(r, f->o.refuse_status, "text/plain", text, sizeof text - 1, NULL);
        return;
    }
    if (!key_matches(f, auth) || (f->o.key_uses && f->st.upgrades >= f->o.key_uses)) {
        refuse(r, 401, "INVALID_AUTH", "Invalid credentials.");
        return;
    }
    fake_conn *fc = calloc(1, sizeof *fc);
    if (!fc || !read_options(fc, r->head.query)) {
        free(fc);
        refuse(r, 400, "Bad Request", "Unsupported audio format or too many keywords.");
        return;
    }
    fc->f = f;
    fc->fault = fault;
    cs_buf_init(&fc->pending, FAKE_MAX_PENDING);
    snprintf(fc->request_id, sizeof fc->request_id, "fake-%u", ++f->request_ids);
    if (cs_request_upgrade(r, &fc->ws, FAKE_MAX_MESSAGE, &fake_ops, fc) < 0) {
        free(fc);
        return;
    }
    fc->next = f->conns;
    if (f->conns) f->conns->prev = fc;
    f->conns = fc;
    f->st.upgrades++;
    fc->opened_ms = fc->last_rx_ms = uv_now(f->loop);
    if (fault == DG_FAKE_STALL) fc->done = true;
    if (fault == DG_FAKE_JUNK) send_junk(fc);
    if (fault == DG_FAKE_DROP && f->o.fault_after == 0) misbehave(fc);
}

static const cs_route routes[] = {
    {CS_HTTP_GET, "/v1/listen", on_listen},
};

int dg_fake_start(dg_fake **out, uv_loop_t *loop, const dg_fake_opts *o)
{
    dg_fake *f = calloc(1, sizeof *f);
    if (!f) return -ENOMEM;
    f->loop = loop;
    f->o = *o;
    cs_server_limits lim = {.max_connections = 64,
                            .max_per_ip = 64,
                            .max_head = 16384,
                            .max_body = 4096,
                            .idle_ms = 30000};
    int rc = cs_net_new(&f->net, loop);
    if (rc == 0) rc = cs_server_new(&f->server, f->net, routes, 1, &lim, f);
    if (rc == 0) rc = cs_server_listen(f->server, "127.0.0.1", 0, false);
    if (rc < 0) {
        if (f->server) cs_server_free(f->server);
        if (f->net) cs_net_free(f->net);
        free(f);
        return rc;
    }
    snprintf(f->url, sizeof f->url, "ws://127.0.0.1:%d/v1/listen", cs_server_port(f->server));
    uv_timer_init(loop, &f->tick);
    f->tick.data = f;
    uv_timer_start(&f->tick, on_tick, FAKE_TICK_MS, FAKE_TICK_MS);
    *out = f;
    return 0;
}

const char *dg_fake_url(const dg_fake *f)
{
    return f->url;
}

const dg_fake_stats *dg_fake_stats_get(const dg_fake *f)
{
    return &f->st;
}

static void on_tick_closed(uv_handle_t *h)
{
    dg_fake *f = h->data;
    f->tick_closed = true;
}

void dg_fake_free(dg_fake *f)
{
    cs_server_stop_listening(f->server);
    cs_net_close_all(f->net, false);
    uv_close((uv_handle_t *)&f->tick, on_tick_closed);
    while (cs_net_count(f->net) || !f->tick_closed) uv_run(f->loop, UV_RUN_ONCE);
    cs_server_free(f->server);
    cs_net_free(f->net);
    free(f);
}
