#include "realtime_fake.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "core/base64.h"
#include "core/err.h"
#include "core/json.h"
#include "net/form.h"
#include "fake_thread.h"
#include "net/server.h"

#define FAKE_KEEP        4096        /* client events kept */
#define FAKE_CONNS       1024        /* connections whose audio is kept */
#define FAKE_AUDIO_MAX   (4u << 20)  /* caller audio kept per connection */
#define FAKE_ITEMS       64          /* items per connection known to truncate */
#define FAKE_MESSAGE_MAX (1u << 20)
#define FAKE_DELTA       800 /* 100 ms a delta: faster than real time, as the server sends */
#define FAKE_EVERY_MS    20

typedef struct fconn fconn;

typedef enum { CMD_RESPOND, CMD_SPEECH, CMD_ERROR, CMD_CALL, CMD_INPUT, CMD_RAW, CMD_DROP } cmd_kind;

typedef struct cmd {
    cmd_kind kind;
    int conn; /* -1: the newest */
    rt_fake_reply reply;
    char *a, *b, *c; /* text, code/message, name/call_id/args */
    struct cmd *next;
} cmd;

struct rt_fake {
    fake_thread t;
    rt_fake_opts o;
    char *on_create_text;
    char url[64];
    fconn *conns, *newest; /* loop thread */
    fconn *by_idx[FAKE_CONNS]; /* loop thread; NULL once gone */
    unsigned ids;          /* events, items, responses numbered */
    pthread_mutex_t lock;  /* what follows */
    cmd *cmds, **cmds_tail;
    rt_fake_stats st;
    char *types[FAKE_KEEP], *events[FAKE_KEEP];
    size_t nevents;
    cs_buf audio[FAKE_CONNS];
    uint64_t first_delta_ns[FAKE_CONNS], speech_ns[FAKE_CONNS];
    unsigned nconns, open;
    char auth[256], query[512];
    char last_item[32];
};

typedef struct fitem {
    char id[32];
    size_t bytes; /* its audio sent */
} fitem;

struct fconn {
    cs_wsconn ws;
    rt_fake *f;
    unsigned idx;
    bool gone;
    fconn *prev, *next;
    uv_timer_t timer;
    fitem items[FAKE_ITEMS];
    size_t nitems;
    char input_item[32]; /* the caller's turn speech_started began */
    /* the response streaming */
    bool streaming;
    char resp_id[32];
    fitem *item;
    size_t total, delta, text_len, text_sent;
    unsigned every_ms;
    char *text;
};

uint8_t rt_fake_audio_byte(size_t i)
{
    /* Loud μ-law codes (low magnitudes are loud), both signs, varying. */
    return (uint8_t)(((i & 1) ? 0x80 : 0x00) | ((i * 5 / 3) & 0x0F));
}

/* ---- sending ---- */

static void send_json(fconn *fc, cs_json *j, cs_buf *b)
{
    cs_json_obj_end(j);
    if (cs_json_end(j) == 0 && !fc->gone) cs_wsconn_send(&fc->ws, CS_WS_OP_TEXT, b->data, b->len);
    cs_buf_free(b);
}

/* {"type": type, "event_id": …: open for the rest. */
static void ev_begin(fconn *fc, cs_json *j, cs_buf *b, const char *type)
{
    char id[32];
    snprintf(id, sizeof id, "event_%u", ++fc->f->ids);
    cs_buf_init(b, 4u << 20);
    cs_json_init(j, b);
    cs_json_obj(j);
    cs_json_kstr(j, "type", type);
    cs_json_kstr(j, "event_id", id);
}

static void send_error(fconn *fc, const char *type, const char *code, const char *message)
{
    cs_json j;
    cs_buf b;
    ev_begin(fc, &j, &b, "error");
    cs_json_key(&j, "error");
    cs_json_obj(&j);
    cs_json_kstr(&j, "type", type);
    cs_json_kstr(&j, "code", code);
    cs_json_kstr(&j, "message", message);
    cs_json_key(&j, "param");
    cs_json_null(&j);
    cs_json_obj_end(&j);
    send_json(fc, &j, &b);
    FAKE_LOCKED(fc->f, fc->f->st.errors_sent++);
}

static void ids(fconn *fc, cs_json *j, bool content)
{
    cs_json_kstr(j, "response_id", fc->resp_id);
    cs_json_kstr(j, "item_id", fc->item->id);
    cs_json_kuint(j, "output_index", 0);
    if (content) cs_json_kuint(j, "content_index", 0);
}

static void send_response_obj(fconn *fc, const char *type, const char *status, bool usage)
{
    cs_json j;
    cs_buf b;
    ev_begin(fc, &j, &b, type);
    cs_json_key(&j, "response");
    cs_json_obj(&j);
    cs_json_kstr(&j, "object", "realtime.response");
    cs_json_kstr(&j, "id", fc->resp_id);
    cs_json_kstr(&j, "status", status);
    if (usage) {
        cs_json_key(&j, "usage");
        cs_json_obj(&j);
        cs_json_kuint(&j, "total_tokens", 150);
        cs_json_kuint(&j, "input_tokens", 100);
        cs_json_kuint(&j, "output_tokens", 50);
        cs_json_obj_end(&j);
    }
    cs_json_obj_end(&j);
    send_json(fc, &j, &b);
}

static fitem *new_item(fconn *fc)
{
    if (fc->nitems == FAKE_ITEMS) fc->nitems = 0; /* the oldest are forgotten */
    fitem *it = &fc->items[fc->nitems++];
    snprintf(it->id, sizeof it->id, "item_%u", ++fc->f->ids);
    it->bytes = 0;
    FAKE_LOCKED(fc->f, snprintf(fc->f->last_item, sizeof fc->f->last_item, "%s", it->id));
    return it;
}

static void response_begin(fconn *fc)
{
    snprintf(fc->resp_id, sizeof fc->resp_id, "resp_%u", ++fc->f->ids);
    FAKE_LOCKED(fc->f, fc->f->st.responses++);
    send_response_obj(fc, "response.created", "in_progress", false);
}

static void stream_end(fconn *fc, const char *status)
{
    fc->streaming = false;
    uv_timer_stop(&fc->timer);
    if (strcmp(status, "completed") == 0) {
        cs_json j;
        cs_buf b;
        ev_begin(fc, &j, &b, "response.output_audio.done");
        ids(fc, &j, true);
        send_json(fc, &j, &b);
        ev_begin(fc, &j, &b, "response.output_audio_transcript.done");
        ids(fc, &j, true);
        cs_json_key(&j, "transcript");
        cs_json_strn(&j, fc->text ? fc->text : "", fc->text_len);
        send_json(fc, &j, &b);
    }
    send_response_obj(fc, "response.done", status, true);
    free(fc->text);
    fc->text = NULL;
}

/* One delta of audio, and the transcript in proportion before it. */
static void on_tick(uv_timer_t *t)
{
    fconn *fc = t->data;
    if (!fc->streaming || fc->gone) return;
    size_t at = fc->item->bytes, n = fc->total - at < fc->delta ? fc->total - at : fc->delta;
    size_t upto = fc->total ? fc->text_len * (at + n) / fc->total : fc->text_len;
    cs_json j;
    cs_buf b;
    if (upto > fc->text_sent) {
        ev_begin(fc, &j, &b, "response.output_audio_transcript.delta");
        ids(fc, &j, true);
        cs_json_key(&j, "delta");
        cs_json_strn(&j, fc->text + fc->text_sent, upto - fc->text_sent);
        send_json(fc, &j, &b);
        fc->text_sent = upto;
    }
    if (n && at == 0 && fc->idx < FAKE_CONNS) FAKE_LOCKED(fc->f, fc->f->first_delta_ns[fc->idx] = uv_hrtime());
    if (n) {
        uint8_t *pcm = malloc(n);
        char *b64 = malloc(CS_BASE64_ENCODED_LEN(n));
        for (size_t i = 0; i < n; i++) pcm[i] = rt_fake_audio_byte(at + i);
        size_t len = cs_base64_encode(b64, pcm, n);
        ev_begin(fc, &j, &b, "response.output_audio.delta");
        ids(fc, &j, true);
        cs_json_key(&j, "delta");
        cs_json_strn(&j, b64, len);
        send_json(fc, &j, &b);
        free(pcm);
        free(b64);
        fc->item->bytes += n;
    }
    if (fc->item->bytes >= fc->total) stream_end(fc, "completed");
}

static void respond(fconn *fc, const rt_fake_reply *r)
{
    if (fc->streaming) {
        send_error(fc, "invalid_request_error", "conversation_already_has_active_response",
                   "Conversation already has an active response in progress.");
        return;
    }
    response_begin(fc);
    fc->item = new_item(fc);
    cs_json j;
    cs_buf b;
    ev_begin(fc, &j, &b, "response.output_item.added"); /* a type the client skips */
    cs_json_kstr(&j, "response_id", fc->resp_id);
    cs_json_kuint(&j, "output_index", 0);
    cs_json_key(&j, "item");
    cs_json_obj(&j);
    cs_json_kstr(&j, "id", fc->item->id);
    cs_json_kstr(&j, "type", "message");
    cs_json_kstr(&j, "role", "assistant");
    cs_json_obj_end(&j);
    send_json(fc, &j, &b);
    fc->streaming = true;
    fc->total = r->bytes;
    fc->delta = r->delta ? r->delta : FAKE_DELTA;
    fc->every_ms = r->every_ms ? r->every_ms : FAKE_EVERY_MS;
    fc->text = strdup(r->text ? r->text : "");
    fc->text_len = strlen(fc->text);
    fc->text_sent = 0;
    on_tick(&fc->timer);
    if (fc->streaming) uv_timer_start(&fc->timer, on_tick, fc->every_ms, fc->every_ms);
}

static void function_call(fconn *fc, const char *name, const char *call_id, const char *args)
{
    response_begin(fc);
    fc->item = new_item(fc);
    cs_json j;
    cs_buf b;
    ev_begin(fc, &j, &b, "response.function_call_arguments.done");
    ids(fc, &j, false);
    cs_json_kstr(&j, "call_id", call_id);
    cs_json_kstr(&j, "name", name);
    cs_json_kstr(&j, "arguments", args);
    send_json(fc, &j, &b);
    send_response_obj(fc, "response.done", "completed", true);
}

/* ---- what the client sends ---- */

/* NULL if `s` (the session object) has the GA shape, else what is wrong. */
static const char *check_session(const cJSON *s)
{
    static const char *const beta[] = {"voice", "modalities", "input_audio_format",
                                       "output_audio_format", "turn_detection",
                                       "input_audio_transcription"};
    for (size_t i = 0; i < sizeof beta / sizeof *beta; i++)
        if (cJSON_GetObjectItemCaseSensitive(s, beta[i])) return beta[i];
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(s, "type");
    if (!cJSON_IsString(type) || strcmp(type->valuestring, "realtime") != 0) return "session.type";
    const cJSON *audio = cJSON_GetObjectItemCaseSensitive(s, "audio");
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(audio, "input");
    const cJSON *out = cJSON_GetObjectItemCaseSensitive(audio, "output");
    const char *fin = cJSON_GetStringValue(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(in, "format"), "type"));
    const char *fout = cJSON_GetStringValue(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(out, "format"), "type"));
    if (!fin || strcmp(fin, "audio/pcmu") != 0) return "audio.input.format";
    if (!fout || strcmp(fout, "audio/pcmu") != 0) return "audio.output.format";
    if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(out, "voice"))) return "audio.output.voice";
    const char *td = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(in, "turn_detection"), "type"));
    if (!td || (strcmp(td, "server_vad") != 0 && strcmp(td, "semantic_vad") != 0))
        return "audio.input.turn_detection";
    return NULL;
}

static void on_session_update(fconn *fc, const cJSON *msg)
{
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(msg, "session");
    const char *bad = cJSON_IsObject(s) ? check_session(s) : "session";
    if (bad) {
        FAKE_LOCKED(fc->f, fc->f->st.bad_sessions++);
        char why[128];
        snprintf(why, sizeof why, "Unknown or invalid parameter: '%s'.", bad);
        send_error(fc, "invalid_request_error", "unknown_parameter", why);
        return;
    }
    FAKE_LOCKED(fc->f, fc->f->st.sessions++);
    cs_json j;
    cs_buf b;
    ev_begin(fc, &j, &b, "session.updated");
    char *text = cJSON_PrintUnformatted(s);
    cs_json_key(&j, "session");
    cs_json_raw(&j, text, strlen(text));
    free(text);
    send_json(fc, &j, &b);
}

static void on_truncate(fconn *fc, const cJSON *msg)
{
    const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(msg, "item_id"));
    const cJSON *end = cJSON_GetObjectItemCaseSensitive(msg, "audio_end_ms");
    const fitem *it = NULL;
    for (size_t i = 0; id && i < fc->nitems; i++)
        if (strcmp(fc->items[i].id, id) == 0) it = &fc->items[i];
    if (!it || !cJSON_IsNumber(end) || end->valuedouble < 0 ||
        end->valuedouble > (double)(it->bytes / 8)) {
        FAKE_LOCKED(fc->f, fc->f->st.bad_truncates++);
        send_error(fc, "invalid_request_error", "invalid_value",
                   it ? "Audio content of 'audio_end_ms' is already shorter than the end"
                      : "Item not found");
        return;
    }
    cs_json j;
    cs_buf b;
    ev_begin(fc, &j, &b, "conversation.item.truncated");
    cs_json_kstr(&j, "item_id", id);
    cs_json_kuint(&j, "content_index", 0);
    cs_json_kuint(&j, "audio_end_ms", (uint64_t)end->valuedouble);
    send_json(fc, &j, &b);
}

static void on_append(fconn *fc, const cJSON *msg)
{
    const char *audio = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(msg, "audio"));
    size_t n = audio ? strlen(audio) : 0;
    uint8_t *pcm = malloc(CS_BASE64_DECODED_MAX(n) + 1);
    int got = audio ? cs_base64_decode(pcm, audio, n) : -1;
    if (got < 0) {
        send_error(fc, "invalid_request_error", "invalid_value", "Invalid base64 audio");
    } else {
        rt_fake *f = fc->f;
        FAKE_LOCKED(f, {
            f->st.appends++;
            if (fc->idx < FAKE_CONNS) {
                cs_buf *a = &f->audio[fc->idx];
                size_t room = FAKE_AUDIO_MAX - a->len;
                cs_buf_append(a, pcm, (size_t)got < room ? (size_t)got : room);
            }
        });
    }
    free(pcm);
}

static void record(rt_fake *f, const char *type, const char *data, size_t len)
{
    FAKE_LOCKED(f, {
        if (f->nevents < FAKE_KEEP) {
            f->types[f->nevents] = strdup(type);
            f->events[f->nevents] = strndup(data, len);
            f->nevents++;
        }
    });
}

static void on_message(cs_wsconn *ws, enum cs_ws_op op, char *data, size_t len)
{
    fconn *fc = ws->data;
    cJSON *msg = op == CS_WS_OP_TEXT ? cJSON_ParseWithLength(data, len) : NULL;
    const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(msg, "type"));
    if (!type) {
        send_error(fc, "invalid_request_error", "invalid_json", "The event is not JSON");
    } else if (strcmp(type, "input_audio_buffer.append") == 0) {
        on_append(fc, msg);
    } else {
        record(fc->f, type, data, len);
        if (strcmp(type, "session.update") == 0) {
            on_session_update(fc, msg);
        } else if (strcmp(type, "conversation.item.truncate") == 0) {
            on_truncate(fc, msg);
        } else if (strcmp(type, "response.cancel") == 0) {
            if (fc->streaming) {
                FAKE_LOCKED(fc->f, fc->f->st.cancelled++);
                stream_end(fc, "cancelled");
            } else {
                send_error(fc, "invalid_request_error", "response_cancel_not_active",
                           "Cancellation failed: no active response found");
            }
        } else if (strcmp(type, "response.create") == 0) {
            rt_fake_reply r = fc->f->o.on_create;
            r.text = fc->f->on_create_text;
            respond(fc, &r);
        }
    }
    cJSON_Delete(msg);
}

static void conn_freed(uv_handle_t *h)
{
    fconn *fc = h->data;
    free(fc->text);
    free(fc);
}

static void on_close(cs_wsconn *ws, uint16_t code, int err)
{
    (void)code;
    (void)err;
    fconn *fc = ws->data;
    rt_fake *f = fc->f;
    fc->gone = true;
    if (fc->prev)
        fc->prev->next = fc->next;
    else
        f->conns = fc->next;
    if (fc->next) fc->next->prev = fc->prev;
    if (f->newest == fc) f->newest = f->conns;
    if (fc->idx < FAKE_CONNS) f->by_idx[fc->idx] = NULL;
    FAKE_LOCKED(f, {
        f->st.closed++;
        f->open--;
    });
    uv_close((uv_handle_t *)&fc->timer, conn_freed);
}

static const cs_wsconn_ops fake_ops = {
    .on_message = on_message,
    .on_close = on_close,
};

/* ---- the upgrade ---- */

static void on_realtime(cs_request *r)
{
    rt_fake *f = r->app;
    const cs_str *auth = cs_request_header(r, "Authorization");
    char want[256];
    snprintf(want, sizeof want, "Bearer %s", f->o.api_key);
    FAKE_LOCKED(f, {
        cs_str_copy(f->auth, sizeof f->auth, auth ? *auth : CS_STR(""));
        cs_str_copy(f->query, sizeof f->query, r->head.query);
    });
    if (!auth || !cs_str_eqz(*auth, want)) {
        static const char body[] = "{\"error\":{\"type\":\"invalid_request_error\",\"code\":"
                                   "\"invalid_api_key\",\"message\":\"Incorrect API key.\"}}";
        FAKE_LOCKED(f, f->st.bad_auth++);
        cs_respond(r, 401, "application/json", body, sizeof body - 1, NULL);
        return;
    }
    cs_form q;
    const char *model = NULL;
    bool parsed = cs_form_parse(&q, r->head.query.p ? r->head.query.p : "", r->head.query.n) == 0;
    if (parsed) model = cs_form_get(&q, "model");
    bool model_ok = model && (!f->o.model || strcmp(model, f->o.model) == 0);
    if (parsed) cs_form_free(&q);
    if (!model_ok) {
        static const char body[] = "{\"error\":{\"type\":\"invalid_request_error\",\"code\":"
                                   "\"model_not_found\",\"message\":\"Unknown model.\"}}";
        cs_respond(r, 400, "application/json", body, sizeof body - 1, NULL);
        return;
    }
    bool beta = cs_request_header(r, "OpenAI-Beta") != NULL;
    fconn *fc = calloc(1, sizeof *fc);
    fc->f = f;
    if (cs_request_upgrade(r, &fc->ws, FAKE_MESSAGE_MAX, &fake_ops, fc) < 0) {
        free(fc);
        return;
    }
    uv_timer_init(&f->t.loop, &fc->timer);
    fc->timer.data = fc;
    fc->next = f->conns;
    if (f->conns) f->conns->prev = fc;
    f->conns = f->newest = fc;
    FAKE_LOCKED(f, {
        fc->idx = f->nconns++;
        f->st.upgrades++;
        f->open++;
    });
    if (fc->idx < FAKE_CONNS) f->by_idx[fc->idx] = fc;
    if (beta) {
        FAKE_LOCKED(f, f->st.beta_refused++);
        send_error(fc, "invalid_request_error", "beta_api_shape_disabled",
                   "The beta shape of the Realtime API is disabled for this model.");
        cs_wsconn_close(&fc->ws, CS_WS_CLOSE_POLICY, "beta_api_shape_disabled");
        return;
    }
    cs_json j;
    cs_buf b;
    ev_begin(fc, &j, &b, "session.created");
    cs_json_key(&j, "session");
    cs_json_obj(&j);
    cs_json_kstr(&j, "type", "realtime");
    cs_json_kstr(&j, "object", "realtime.session");
    cs_json_kstr(&j, "model", model ? "gpt-realtime" : "");
    cs_json_obj_end(&j);
    send_json(fc, &j, &b);
}

static const cs_route routes[] = {
    {CS_HTTP_GET, "/v1/realtime", on_realtime},
};

/* ---- commands ---- */

static void run_cmd(rt_fake *f, cmd *c)
{
    fconn *fc = c->conn < 0 ? f->newest : c->conn < FAKE_CONNS ? f->by_idx[c->conn] : NULL;
    if (!fc || fc->gone) return;
    switch (c->kind) {
    case CMD_RESPOND:
        c->reply.text = c->a;
        respond(fc, &c->reply);
        break;
    case CMD_SPEECH: {
        cs_json j;
        cs_buf b;
        if (fc->idx < FAKE_CONNS) FAKE_LOCKED(f, f->speech_ns[fc->idx] = uv_hrtime());
        ev_begin(fc, &j, &b, "input_audio_buffer.speech_started");
        cs_json_kuint(&j, "audio_start_ms", 1000);
        snprintf(fc->input_item, sizeof fc->input_item, "item_%u", ++f->ids);
        cs_json_kstr(&j, "item_id", fc->input_item);
        send_json(fc, &j, &b);
        break;
    }
    case CMD_ERROR:
        send_error(fc, "invalid_request_error", c->a, c->b);
        break;
    case CMD_CALL:
        function_call(fc, c->a, c->b, c->c);
        break;
    case CMD_INPUT: {
        cs_json j;
        cs_buf b;
        ev_begin(fc, &j, &b, "conversation.item.input_audio_transcription.completed");
        if (!fc->input_item[0]) snprintf(fc->input_item, sizeof fc->input_item, "item_%u", ++f->ids);
        cs_json_kstr(&j, "item_id", fc->input_item);
        cs_json_kuint(&j, "content_index", 0);
        cs_json_kstr(&j, "transcript", c->a);
        send_json(fc, &j, &b);
        break;
    }
    case CMD_RAW:
        cs_wsconn_send(&fc->ws, CS_WS_OP_TEXT, c->a, strlen(c->a));
        break;
    case CMD_DROP:
        FAKE_LOCKED(f, f->st.drops++);
        cs_wsconn_abort(&fc->ws, 0);
        break;
    }
}

static void on_wake(fake_thread *t)
{
    rt_fake *f = t->data;
    for (;;) {
        pthread_mutex_lock(&f->lock);
        cmd *c = f->cmds;
        if (c) {
            f->cmds = c->next;
            if (!f->cmds) f->cmds_tail = &f->cmds;
        }
        pthread_mutex_unlock(&f->lock);
        if (!c) return;
        run_cmd(f, c);
        free(c->a);
        free(c->b);
        free(c->c);
        free(c);
    }
}

static void push_to(rt_fake *f, int conn, cmd_kind kind, const rt_fake_reply *r, const char *a,
                    const char *b, const char *c)
{
    cmd *m = calloc(1, sizeof *m);
    m->kind = kind;
    m->conn = conn;
    if (r) m->reply = *r;
    m->a = a ? strdup(a) : NULL;
    m->b = b ? strdup(b) : NULL;
    m->c = c ? strdup(c) : NULL;
    FAKE_LOCKED(f, {
        *f->cmds_tail = m;
        f->cmds_tail = &m->next;
    });
    fake_thread_wake(&f->t);
}

static void push(rt_fake *f, cmd_kind kind, const rt_fake_reply *r, const char *a, const char *b,
                 const char *c)
{
    push_to(f, -1, kind, r, a, b, c);
}

void rt_fake_respond_on(rt_fake *f, int conn, const rt_fake_reply *r)
{
    push_to(f, conn, CMD_RESPOND, r, r->text ? r->text : "", NULL, NULL);
}

void rt_fake_speech_started_on(rt_fake *f, int conn)
{
    push_to(f, conn, CMD_SPEECH, NULL, NULL, NULL, NULL);
}

void rt_fake_respond(rt_fake *f, const rt_fake_reply *r)
{
    push(f, CMD_RESPOND, r, r->text ? r->text : "", NULL, NULL);
}

void rt_fake_speech_started(rt_fake *f)
{
    push(f, CMD_SPEECH, NULL, NULL, NULL, NULL);
}

void rt_fake_error(rt_fake *f, const char *code, const char *message)
{
    push(f, CMD_ERROR, NULL, code, message, NULL);
}

void rt_fake_function_call(rt_fake *f, const char *name, const char *call_id, const char *args)
{
    push(f, CMD_CALL, NULL, name, call_id, args);
}

void rt_fake_input_transcript(rt_fake *f, const char *text)
{
    push(f, CMD_INPUT, NULL, text, NULL, NULL);
}

void rt_fake_raw(rt_fake *f, const char *text)
{
    push(f, CMD_RAW, NULL, text, NULL, NULL);
}

void rt_fake_drop(rt_fake *f)
{
    push(f, CMD_DROP, NULL, NULL, NULL, NULL);
}

/* ---- what it saw ---- */

void rt_fake_stats_get(rt_fake *f, rt_fake_stats *out)
{
    FAKE_LOCKED(f, *out = f->st);
}

unsigned rt_fake_count(rt_fake *f, const char *type)
{
    unsigned n = 0;
    FAKE_LOCKED(f, {
        for (size_t i = 0; i < f->nevents; i++) n += strcmp(f->types[i], type) == 0;
    });
    return n;
}

bool rt_fake_event(rt_fake *f, const char *type, size_t k, cs_buf *out)
{
    bool found = false;
    cs_buf_reset(out);
    FAKE_LOCKED(f, {
        for (size_t i = 0; i < f->nevents && !found; i++)
            if (strcmp(f->types[i], type) == 0 && k-- == 0)
                found = cs_buf_puts(out, f->events[i]) == 0;
    });
    return found;
}

bool rt_fake_audio(rt_fake *f, size_t conn, cs_buf *out)
{
    bool ok = false;
    cs_buf_reset(out);
    FAKE_LOCKED(f, {
        if (conn < f->nconns && conn < FAKE_CONNS)
            ok = cs_buf_append(out, f->audio[conn].data, f->audio[conn].len) == 0;
    });
    return ok;
}

void rt_fake_request_info(rt_fake *f, char *auth, size_t auth_cap, char *query, size_t query_cap)
{
    FAKE_LOCKED(f, {
        snprintf(auth, auth_cap, "%s", f->auth);
        snprintf(query, query_cap, "%s", f->query);
    });
}

void rt_fake_times(rt_fake *f, size_t conn, uint64_t *first_delta_ns, uint64_t *speech_ns)
{
    *first_delta_ns = *speech_ns = 0;
    if (conn >= FAKE_CONNS) return;
    FAKE_LOCKED(f, {
        *first_delta_ns = f->first_delta_ns[conn];
        *speech_ns = f->speech_ns[conn];
    });
}

void rt_fake_last_item(rt_fake *f, char *out, size_t cap)
{
    FAKE_LOCKED(f, snprintf(out, cap, "%s", f->last_item));
}

unsigned rt_fake_open(rt_fake *f)
{
    unsigned n;
    FAKE_LOCKED(f, n = f->open);
    return n;
}

/* ---- the thread ---- */

static bool busy(fake_thread *t)
{
    return ((rt_fake *)t->data)->conns != NULL; /* their timers close after them */
}

int rt_fake_start(rt_fake **out, const rt_fake_opts *o)
{
    rt_fake *f = calloc(1, sizeof *f);
    if (!f) return -ENOMEM;
    f->o = *o;
    f->on_create_text = strdup(o->on_create.text ? o->on_create.text : "");
    f->cmds_tail = &f->cmds;
    pthread_mutex_init(&f->lock, NULL);
    for (size_t i = 0; i < FAKE_CONNS; i++) cs_buf_init(&f->audio[i], FAKE_AUDIO_MAX);
    cs_server_limits lim = {.max_connections = 2048,
                            .max_per_ip = 2048,
                            .max_head = 16384,
                            .max_body = 4096,
                            .idle_ms = 600000};
    f->t.on_wake = on_wake;
    f->t.busy = busy;
    f->t.data = f;
    int rc = fake_thread_start(&f->t, routes, 1, &lim, f);
    if (rc < 0) return rc;
    snprintf(f->url, sizeof f->url, "ws://127.0.0.1:%d/v1/realtime", f->t.port);
    *out = f;
    return 0;
}

const char *rt_fake_url(const rt_fake *f)
{
    return f->url;
}

void rt_fake_free(rt_fake *f)
{
    fake_thread_stop(&f->t);
    for (size_t i = 0; i < f->nevents; i++) {
        free(f->types[i]);
        free(f->events[i]);
    }
    for (size_t i = 0; i < FAKE_CONNS; i++) cs_buf_free(&f->audio[i]);
    while (f->cmds) {
        cmd *c = f->cmds;
        f->cmds = c->next;
        free(c->a);
        free(c->b);
        free(c->c);
        free(c);
    }
    free(f->on_create_text);
    pthread_mutex_destroy(&f->lock);
    free(f);
}
