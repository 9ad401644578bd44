#include "elevenlabs_fake.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base64.h"
#include "core/err.h"
#include "core/json.h"
#include "core/str.h"
#include "fake_server.h"
#include "net/form.h"
#include "net/wsconn.h"

#define SOCKETS_KEPT     256
#define FAKE_MAX_MESSAGE (1u << 20)
#define CHAR_MS          (EL_FAKE_BYTES_PER_CHAR / 8)
#define CLOSE_MARK       "" /* in the queue: close 1000 here */

typedef struct conn conn;

struct el_fake {
    fake_server srv;
    el_fake_opts o;
    char url[64];
    conn *conns;      /* loop thread */
    unsigned sockets; /* loop thread: sockets so far */
    /* Under srv.lock. */
    el_fake_stats st;
    cs_buf msgs[SOCKETS_KEPT];
};

struct conn {
    el_fake *f;
    cs_wsconn ws;
    size_t k; /* which socket */
    el_fake_fault fault;
    bool opened;    /* the opening message came */
    bool ended;     /* the end of input came */
    cs_buf pending; /* text not yet spoken */
    size_t spoken;  /* characters spoken so far */
    char **queue;   /* messages to send, in order */
    size_t nq, at, cap;
    uv_timer_t timer;
    conn *prev, *next;
};

void el_fake_audio(const char *text, size_t len, cs_buf *out)
{
    cs_buf_reset(out);
    size_t i = 0;
    for (size_t at = 0; at < len; i++) {
        at++;
        while (at < len && ((unsigned char)text[at] & 0xC0) == 0x80) at++;
        for (size_t b = 0; b < EL_FAKE_BYTES_PER_CHAR; b++)
            cs_buf_putc(out, (char)(0x80 | ((i * 7 + b) & 0x7F)));
    }
}

static void push(conn *c, char *m)
{
    if (c->nq == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 16;
        c->queue = realloc(c->queue, c->cap * sizeof *c->queue);
    }
    c->queue[c->nq++] = m;
}

static void alignment(cs_json *j, const char *key, const char *s, size_t n)
{
    cs_json_key(j, key);
    cs_json_obj(j);
    cs_json_key(j, "chars");
    cs_json_arr(j);
    size_t count = 0;
    for (size_t at = 0; at < n; count++) {
        size_t e = at + 1;
        while (e < n && ((unsigned char)s[e] & 0xC0) == 0x80) e++;
        cs_json_strn(j, s + at, e - at);
        at = e;
    }
    cs_json_arr_end(j);
    cs_json_key(j, "charStartTimesMs");
    cs_json_arr(j);
    for (size_t i = 0; i < count; i++) cs_json_uint(j, i * CHAR_MS);
    cs_json_arr_end(j);
    cs_json_key(j, "charsDurationsMs");
    cs_json_arr(j);
    for (size_t i = 0; i < count; i++) cs_json_uint(j, CHAR_MS);
    cs_json_arr_end(j);
    cs_json_obj_end(j);
}

/* The pending text as audio messages of EL_FAKE_CHARS_PER_MSG characters. */
static void speak(conn *c)
{
    const char *s = c->pending.data;
    size_t n = c->pending.len;
    cs_buf audio = CS_BUF_INIT(64u << 20);
    for (size_t at = 0; at < n;) {
        size_t e = at, chars = 0;
        while (e < n && chars < EL_FAKE_CHARS_PER_MSG) {
            e++;
            while (e < n && ((unsigned char)s[e] & 0xC0) == 0x80) e++;
            chars++;
        }
        /* Audio of these characters, continuing the socket's. */
        cs_buf_reset(&audio);
        for (size_t i = 0; i < chars; i++)
            for (size_t b = 0; b < EL_FAKE_BYTES_PER_CHAR; b++)
                cs_buf_putc(&audio, (char)(0x80 | (((c->spoken + i) * 7 + b) & 0x7F)));
        c->spoken += chars;
        char *b64 = malloc(CS_BASE64_ENCODED_LEN(audio.len) + 1);
        b64[cs_base64_encode(b64, (const uint8_t *)audio.data, audio.len)] = '\0';
        cs_buf m = CS_BUF_INIT(64u << 20);
        cs_json j;
        cs_json_init(&j, &m);
        cs_json_obj(&j);
        cs_json_kstr(&j, "audio", b64);
        cs_json_key(&j, "isFinal");
        cs_json_null(&j);
        alignment(&j, "normalizedAlignment", s + at, e - at);
        alignment(&j, "alignment", s + at, e - at);
        cs_json_obj_end(&j);
        cs_json_end(&j);
        push(c, cs_buf_detach(&m, NULL));
        free(b64);
        at = e;
    }
    cs_buf_free(&audio);
    cs_buf_reset(&c->pending);
}

static void send_some(uv_timer_t *t);

static void start_sending(conn *c)
{
    if (!uv_is_active((uv_handle_t *)&c->timer)) uv_timer_start(&c->timer, send_some, 0, 0);
}

static void send_some(uv_timer_t *t)
{
    conn *c = t->data;
    el_fake *f = c->f;
    while (c->at < c->nq && c->ws.conn) {
        char *m = c->queue[c->at++];
        if (m[0] == '\0') {
            cs_wsconn_close(&c->ws, 1000, NULL);
            return;
        }
        if (strstr(m, "\"isFinal\":true")) FAKE_LOCKED(&f->srv, f->st.finals++);
        cs_wsconn_send(&c->ws, CS_WS_OP_TEXT, m, strlen(m));
        if (c->fault == EL_FAKE_CUT && strstr(m, "\"audio\"")) {
            cs_conn_close(c->ws.conn, 0, true); /* flushes what was sent, no close frame */
            return;
        }
        if (f->o.every_ms && c->at < c->nq) {
            uv_timer_start(&c->timer, send_some, f->o.every_ms, 0);
            return;
        }
    }
}

static void on_message(cs_wsconn *ws, enum cs_ws_op op, char *data, size_t len)
{
    conn *c = ws->data;
    el_fake *f = c->f;
    if (c->k < SOCKETS_KEPT) {
        FAKE_LOCKED(&f->srv, cs_buf_append(&f->msgs[c->k], data, len);
                    cs_buf_putc(&f->msgs[c->k], '\n'));
    }
    if (op != CS_WS_OP_TEXT || c->fault == EL_FAKE_STALL || c->ended) return;
    cJSON *m = cJSON_ParseWithLength(data, len);
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(m, "text");
    if (!cJSON_IsString(text)) {
        static const char bad[] = "{\"message\":\"Invalid message: text is required\","
                                  "\"error\":\"invalid_request\",\"code\":1008}";
        cs_wsconn_send(ws, CS_WS_OP_TEXT, bad, sizeof bad - 1);
        cs_wsconn_close(ws, 1008, "invalid_request");
        cJSON_Delete(m);
        return;
    }
    if (!c->opened) { /* the opening message: a space and the settings */
        c->opened = true;
        cJSON_Delete(m);
        return;
    }
    if (c->fault == EL_FAKE_ERROR) {
        static const char err[] =
            "{\"message\":\"This request exceeds your quota of 10000. You have 3 credits "
            "remaining.\",\"error\":\"quota_exceeded\",\"code\":1008}";
        cs_wsconn_send(ws, CS_WS_OP_TEXT, err, sizeof err - 1);
        cs_wsconn_close(ws, 1008, "quota_exceeded");
        c->ended = true;
        cJSON_Delete(m);
        return;
    }
    const char *s = text->valuestring;
    if (s[0] == '\0') { /* the end of input */
        c->ended = true;
        speak(c);
        push(c, strdup("{\"audio\":null,\"isFinal\":true}"));
        push(c, strdup(CLOSE_MARK));
        start_sending(c);
    } else {
        cs_buf_puts(&c->pending, s);
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m, "try_trigger_generation")) ||
            cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m, "flush"))) {
            speak(c);
            start_sending(c);
        }
    }
    cJSON_Delete(m);
}

static void conn_free(uv_handle_t *h)
{
    conn *c = h->data;
    for (size_t i = 0; i < c->nq; i++) free(c->queue[i]);
    free(c->queue);
    cs_buf_free(&c->pending);
    free(c);
}

static void on_close(cs_wsconn *ws, uint16_t code, int err)
{
    (void)code;
    (void)err;
    conn *c = ws->data;
    el_fake *f = c->f;
    if (c->prev)
        c->prev->next = c->next;
    else
        f->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    FAKE_LOCKED(&f->srv, f->st.closed++; f->st.live--);
    uv_close((uv_handle_t *)&c->timer, conn_free);
}

static const cs_wsconn_ops ops = {.on_message = on_message, .on_close = on_close};

static void refuse(cs_request *r, int status, const char *code, const char *msg)
{
    el_fake *f = r->app;
    FAKE_LOCKED(&f->srv, f->st.refused++);
    char body[256];
    int n = snprintf(body, sizeof body, "{\"detail\":{\"status\":\"%s\",\"message\":\"%s\"}}", code,
                     msg);
    cs_respond(r, status, "application/json", body, (size_t)n, NULL);
}

static void stream_input(cs_request *r)
{
    el_fake *f = r->app;
    const cs_str *key = cs_request_header(r, "xi-api-key");
    FAKE_LOCKED(&f->srv, cs_str_copy(f->st.key, sizeof f->st.key, key ? *key : CS_STR(""));
                snprintf(f->st.path, sizeof f->st.path, "%.*s?%.*s", (int)r->head.path.n,
                         r->head.path.p, (int)r->head.query.n,
                         r->head.query.p ? r->head.query.p : ""));
    if (!key || !cs_str_eqz(*key, f->o.api_key)) {
        refuse(r, 401, "invalid_api_key", "Invalid API key");
        return;
    }
    cs_form q;
    bool parsed = cs_form_parse(&q, r->head.query.p ? r->head.query.p : "", r->head.query.n) == 0;
    const char *fmt = parsed ? cs_form_get(&q, "output_format") : NULL;
    bool ok = fmt && strcmp(fmt, "ulaw_8000") == 0 && cs_form_get(&q, "model_id");
    if (parsed) cs_form_free(&q);
    if (!ok) {
        refuse(r, 400, "invalid_output_format", "this fake speaks output_format=ulaw_8000 only");
        return;
    }
    conn *c = calloc(1, sizeof *c);
    c->f = f;
    c->k = f->sockets++;
    c->fault = f->o.faulty < 0 || c->k < (size_t)f->o.faulty ? f->o.fault : EL_FAKE_NONE;
    cs_buf_init(&c->pending, 1u << 20);
    if (cs_request_upgrade(r, &c->ws, FAKE_MAX_MESSAGE, &ops, c) < 0) {
        cs_buf_free(&c->pending);
        free(c);
        return;
    }
    uv_timer_init(&f->srv.t.loop, &c->timer);
    c->timer.data = c;
    c->next = f->conns;
    if (f->conns) f->conns->prev = c;
    f->conns = c;
    FAKE_LOCKED(&f->srv, f->st.upgrades++; f->st.live++;
                if (f->st.live > f->st.max_live) f->st.max_live = f->st.live);
}

static const cs_route routes[] = {
    {CS_HTTP_GET, "/v1/text-to-speech/{}/stream-input", stream_input},
};

static void on_stop(void *app)
{
    el_fake *f = app;
    for (conn *c = f->conns; c; c = c->next) uv_timer_stop(&c->timer);
}

int el_fake_start(el_fake **out, const el_fake_opts *o)
{
    el_fake *f = calloc(1, sizeof *f);
    if (!f) return -ENOMEM;
    f->o = *o;
    for (size_t i = 0; i < SOCKETS_KEPT; i++) cs_buf_init(&f->msgs[i], 1u << 20);
    int rc = fake_server_start(&f->srv, routes, 1, f, on_stop, 0);
    if (rc < 0) return rc;
    snprintf(f->url, sizeof f->url, "ws://127.0.0.1:%d", f->srv.port);
    *out = f;
    return 0;
}

const char *el_fake_url(const el_fake *f)
{
    return f->url;
}

void el_fake_stats_get(el_fake *f, el_fake_stats *out)
{
    FAKE_LOCKED(&f->srv, *out = f->st);
}

bool el_fake_messages(el_fake *f, size_t k, cs_buf *out)
{
    bool ok;
    cs_buf_reset(out);
    FAKE_LOCKED(&f->srv, ok = k < SOCKETS_KEPT && f->msgs[k].len &&
                              cs_buf_append(out, f->msgs[k].data, f->msgs[k].len) == 0);
    return ok;
}

void el_fake_free(el_fake *f)
{
    fake_server_stop(&f->srv);
    for (size_t i = 0; i < SOCKETS_KEPT; i++) cs_buf_free(&f->msgs[i]);
    free(f);
}
