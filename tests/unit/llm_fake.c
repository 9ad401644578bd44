#include "llm_fake.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "core/crypto.h"
#include "core/err.h"
#include "core/json.h"
#include "fake_server.h"

#define FAKE_PIECE       4       /* bytes of text per chunk, by default */
#define FAKE_ARGS_PIECE  5       /* bytes of a tool call's arguments per chunk */
#define FAKE_GATE_POLL   5       /* ms between looks at llm_fake_release */
#define FAKE_CUT_PROMISE 1000000 /* Content-Length promised by an answer that is cut */
#define NO_GATE          ((size_t)-1)

typedef struct feed feed;

struct llm_fake {
    fake_server srv; /* its lock guards what follows `feeds` */
    llm_fake_opts o;
    char url[64];
    int port;
    int released; /* __atomic */
    feed *feeds;  /* answers in progress (and stalls), loop thread */
    llm_fake_stats st;
    fake_bodies bodies;      /* streamed requests' */
    fake_bodies json_bodies; /* JSON mode's */
    char *tool_bodies[FAKE_KEEP];
    char tool_names[FAKE_KEEP][64];
    size_t ntools;
};

/* An answer being written: its pieces, one every `every_ms`. */
struct feed {
    llm_fake *f;
    cs_request *req;
    char **pieces;
    size_t n, next;
    size_t gate;    /* wait for the release before this piece; NO_GATE */
    bool chunked;   /* else a Content-Length never reached: the end cuts the connection */
    bool stall;     /* held: no answer at all */
    bool keepalive; /* a head, then only keep-alive comments, every every_ms */
    unsigned every_ms;
    uv_timer_t timer;
    feed *prev, *next_feed;
};

#define LOCKED(f, stmt) FAKE_LOCKED(&(f)->srv, stmt)

/* ---- answers ---- */

static void feed_closed(uv_handle_t *h)
{
    feed *fd = h->data;
    for (size_t i = 0; i < fd->n; i++) free(fd->pieces[i]);
    free(fd->pieces);
    free(fd);
}

/* An answer to `r`, in the list of those in progress (ended by feed_end). */
static feed *feed_new(llm_fake *f, cs_request *r)
{
    feed *fd = calloc(1, sizeof *fd);
    *fd = (feed){.f = f, .req = r, .gate = NO_GATE, .next_feed = f->feeds};
    if (f->feeds) f->feeds->prev = fd;
    f->feeds = fd;
    uv_timer_init(&f->srv.t.loop, &fd->timer);
    fd->timer.data = fd;
    return fd;
}

/* The answer is over: whole (`whole`), or the client left, or the fake stops. */
static void feed_end(feed *fd, bool whole)
{
    llm_fake *f = fd->f;
    if (fd->prev)
        fd->prev->next_feed = fd->next_feed;
    else
        f->feeds = fd->next_feed;
    if (fd->next_feed) fd->next_feed->prev = fd->prev;
    if (whole && fd->chunked) cs_respond_write(fd->req, "0\r\n\r\n", 5);
    cs_respond_end(fd->req);
    uv_close((uv_handle_t *)&fd->timer, feed_closed);
}

static int write_piece(feed *fd, const char *p)
{
    size_t n = strlen(p);
    if (!fd->chunked) return cs_respond_write(fd->req, p, n);
    char head[32];
    int k = snprintf(head, sizeof head, "%zx\r\n", n);
    int rc = cs_respond_write(fd->req, head, (size_t)k);
    if (rc == 0) rc = cs_respond_write(fd->req, p, n);
    if (rc == 0) rc = cs_respond_write(fd->req, "\r\n", 2);
    return rc;
}

static void on_feed(uv_timer_t *t)
{
    feed *fd = t->data;
    llm_fake *f = fd->f;
    if (fd->keepalive) {
        if (write_piece(fd, ": keep-alive\n\n") < 0) {
            LOCKED(f, f->st.left++);
            feed_end(fd, false);
        } else {
            uv_timer_start(&fd->timer, on_feed, fd->every_ms, 0);
        }
        return;
    }
    while (fd->next < fd->n) {
        if (fd->next == fd->gate && !__atomic_load_n(&f->released, __ATOMIC_ACQUIRE)) {
            uv_timer_start(&fd->timer, on_feed, FAKE_GATE_POLL, 0);
            return;
        }
        if (write_piece(fd, fd->pieces[fd->next++]) < 0) {
            LOCKED(f, f->st.left++);
            feed_end(fd, false);
            return;
        }
        if (fd->every_ms && fd->next < fd->n) {
            uv_timer_start(&fd->timer, on_feed, fd->every_ms, 0);
            return;
        }
    }
    if (fd->chunked) LOCKED(f, f->st.answered++);
    feed_end(fd, true);
}

/* ---- the stream's chunks ---- */

typedef struct pieces {
    char **v;
    size_t n, cap;
    unsigned k; /* the request's number, in ids */
} pieces;

static void add(pieces *ps, cs_buf *b)
{
    if (ps->n == ps->cap) {
        ps->cap = ps->cap ? ps->cap * 2 : 16;
        ps->v = realloc(ps->v, ps->cap * sizeof *ps->v);
    }
    size_t len;
    ps->v[ps->n++] = cs_buf_detach(b, &len);
}

/* "data: {chunk}\n\n" with `delta` (a JSON object's text) and finish_reason. */
static void chunk(pieces *ps, const char *delta, const char *finish)
{
    cs_buf b = CS_BUF_INIT(1 << 20);
    cs_buf_printf(&b,
                  "data: {\"id\":\"chatcmpl-fake-%u\",\"object\":\"chat.completion.chunk\","
                  "\"created\":1700000000,\"model\":\"fake\",\"choices\":[{\"index\":0,"
                  "\"delta\":%s,\"logprobs\":null,\"finish_reason\":",
                  ps->k, delta);
    if (finish)
        cs_buf_printf(&b, "\"%s\"}]}\n\n", finish);
    else
        cs_buf_puts(&b, "null}]}\n\n");
    add(ps, &b);
}

/* A JSON string of s[0, n). */
static void quoted(cs_buf *out, const char *s, size_t n)
{
    cs_json_escape(out, s, n);
}

/* Where a piece of `s` starting at `at` ends: `want` bytes, not inside a UTF-8 sequence. */
static size_t piece_end(const char *s, size_t len, size_t at, size_t want)
{
    size_t e = at + want < len ? at + want : len;
    while (e < len && ((unsigned char)s[e] & 0xC0) == 0x80) e++;
    return e;
}

/* The text in pieces; the index of the piece after the first sentence's end in *gate. */
static void text_pieces(pieces *ps, const char *text, unsigned piece, size_t *gate)
{
    size_t len = text ? strlen(text) : 0;
    for (size_t at = 0; at < len;) {
        size_t e = piece_end(text, len, at, piece ? piece : FAKE_PIECE);
        cs_buf d = CS_BUF_INIT(1 << 20);
        cs_buf_puts(&d, "{\"content\":");
        quoted(&d, text + at, e - at);
        cs_buf_putc(&d, '}');
        chunk(ps, d.data, NULL);
        cs_buf_free(&d);
        /* The gate follows the piece holding the space after the first sentence's end. */
        for (size_t i = at; gate && *gate == NO_GATE && i < e; i++)
            if (text[i] == ' ' && i > 0 && strchr(".!?", text[i - 1])) *gate = ps->n;
        at = e;
    }
}

static void tool_pieces(pieces *ps, const char *tool, const char *args)
{
    cs_buf d = CS_BUF_INIT(1 << 20);
    cs_buf_printf(&d,
                  "{\"tool_calls\":[{\"index\":0,\"id\":\"call_fake_%u\",\"type\":\"function\","
                  "\"function\":{\"name\":",
                  ps->k);
    quoted(&d, tool, strlen(tool));
    cs_buf_puts(&d, ",\"arguments\":\"\"}}]}");
    chunk(ps, d.data, NULL);
    size_t len = strlen(args);
    for (size_t at = 0; at < len;) {
        size_t e = piece_end(args, len, at, FAKE_ARGS_PIECE);
        cs_buf_reset(&d);
        cs_buf_puts(&d, "{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":");
        quoted(&d, args + at, e - at);
        cs_buf_puts(&d, "}}]}");
        chunk(ps, d.data, NULL);
        at = e;
    }
    cs_buf_free(&d);
}

static void raw(pieces *ps, const char *s)
{
    cs_buf b = CS_BUF_INIT(1 << 16);
    cs_buf_puts(&b, s);
    add(ps, &b);
}

/* ---- routes ---- */

/* Whether it is a streamed chat completion; *usage: stream_options.include_usage. */
static bool request_ok(const cs_request *r, bool *usage)
{
    cJSON *j = cJSON_ParseWithLength(r->body.data ? r->body.data : "", r->body.len);
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(j, "model");
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(j, "messages");
    const cJSON *opts = cJSON_GetObjectItemCaseSensitive(j, "stream_options");
    bool ok = cJSON_IsString(model) && cJSON_IsArray(msgs) && cJSON_GetArraySize(msgs) > 0 &&
              cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "stream"));
    *usage = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(opts, "include_usage"));
    cJSON_Delete(j);
    return ok;
}

/* JSON mode (response_format {"type":"json_object"}, not streamed): whether it is one,
 * and whether it is well formed — OpenAI refuses one whose messages never say "JSON". */
static bool json_mode(const cs_request *r, bool *ok)
{
    cJSON *j = cJSON_ParseWithLength(r->body.data ? r->body.data : "", r->body.len);
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(j, "response_format");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(fmt, "type");
    bool is = cJSON_IsString(type) && strcmp(type->valuestring, "json_object") == 0;
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(j, "messages");
    bool says_json = false;
    const cJSON *m;
    cJSON_ArrayForEach(m, msgs)
    {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(m, "content");
        says_json = says_json || (cJSON_IsString(c) && strstr(c->valuestring, "JSON"));
    }
    *ok = is && cJSON_IsString(cJSON_GetObjectItemCaseSensitive(j, "model")) && says_json &&
          !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "stream"));
    cJSON_Delete(j);
    return is;
}

/* A whole chat.completion whose message's content is `text`. */
static void completion(cs_request *r, unsigned k, const char *text)
{
    cs_buf b = CS_BUF_INIT(1 << 22);
    cs_buf_printf(&b,
                  "{\"id\":\"chatcmpl-fake-%u\",\"object\":\"chat.completion\","
                  "\"created\":1700000000,\"model\":\"fake\",\"choices\":[{\"index\":0,"
                  "\"message\":{\"role\":\"assistant\",\"content\":",
                  k);
    quoted(&b, text ? text : "", text ? strlen(text) : 0);
    cs_buf_puts(&b, ",\"refusal\":null},\"logprobs\":null,\"finish_reason\":\"stop\"}],"
                    "\"usage\":{\"prompt_tokens\":120,\"completion_tokens\":40,"
                    "\"total_tokens\":160}}");
    cs_respond_json(r, 200, &b);
    cs_buf_free(&b);
}

/* The k-th reply of the script to a JSON-mode request. */
static void json_reply(llm_fake *f, cs_request *r, size_t k, const llm_fake_reply *rp)
{
    if (rp->kind == LLM_FAKE_STALL) {
        feed_new(f, r)->stall = true; /* never answered */
        return;
    }
    if (rp->kind == LLM_FAKE_ERROR) {
        char extra[64] = "";
        if (rp->retry_after_s)
            snprintf(extra, sizeof extra, "Retry-After: %u\r\n", rp->retry_after_s);
        cs_buf b = CS_BUF_INIT(1 << 16);
        cs_buf_puts(&b, "{\"error\":{\"message\":");
        const char *msg = rp->text ? rp->text : "fake error";
        quoted(&b, msg, strlen(msg));
        cs_buf_puts(&b, ",\"type\":\"server_error\",\"param\":null,\"code\":null}}");
        cs_respond(r, rp->status, "application/json", b.data, b.len, extra[0] ? extra : NULL);
        cs_buf_free(&b);
    } else if (rp->kind == LLM_FAKE_MALFORMED) {
        static const char junk[] = "<html><body>502 Bad Gateway</body>";
        cs_respond(r, 200, "application/json", junk, sizeof junk - 1, NULL);
    } else {
        completion(r, (unsigned)k, rp->text);
    }
}

static void chat(cs_request *r)
{
    llm_fake *f = r->app;
    size_t k;
    bool json_ok, json = json_mode(r, &json_ok);
    LOCKED(f, k = json ? f->st.json_requests++ : f->st.requests++);
    fake_keep(&f->srv, json ? &f->json_bodies : &f->bodies, r);
    if (f->o.api_key && !fake_bearer_ok(r, f->o.api_key)) {
        LOCKED(f, f->st.bad_auth++);
        fake_openai_error(r, 401, "invalid_request_error", "invalid_api_key",
                          "Incorrect API key provided.");
        return;
    }
    if (json) {
        if (!json_ok) {
            LOCKED(f, f->st.bad_requests++);
            fake_openai_error(r, 400, "invalid_request_error", NULL,
                              "JSON mode needs model, messages that say JSON, and no stream");
            return;
        }
        const llm_fake_reply *js = f->o.json_script ? f->o.json_script : f->o.script;
        size_t n = f->o.json_script ? f->o.njson_script : f->o.nscript;
        json_reply(f, r, k, &js[k < n ? k : n - 1]);
        return;
    }
    bool usage = false;
    if (!request_ok(r, &usage)) {
        LOCKED(f, f->st.bad_requests++);
        fake_openai_error(r, 400, "invalid_request_error", NULL,
                          "expected a JSON object with model, messages and stream: true");
        return;
    }
    const llm_fake_reply *rp = &f->o.script[k < f->o.nscript ? k : f->o.nscript - 1];
    if (rp->kind == LLM_FAKE_ERROR) {
        LOCKED(f, f->st.answered++);
        fake_openai_error(r, rp->status, "server_error", NULL, rp->text ? rp->text : "fake error");
        return;
    }
    feed *fd = feed_new(f, r);
    fd->chunked = rp->kind != LLM_FAKE_CUT;
    fd->stall = rp->kind == LLM_FAKE_STALL && !rp->every_ms;
    fd->keepalive = rp->kind == LLM_FAKE_STALL && rp->every_ms;
    fd->every_ms = rp->every_ms;
    pieces ps = {.k = (unsigned)k};
    if (rp->kind != LLM_FAKE_STALL) {
        chunk(&ps, "{\"role\":\"assistant\",\"content\":\"\"}", NULL);
        text_pieces(&ps, rp->text, rp->piece, rp->gate ? &fd->gate : NULL);
    }
    if (rp->kind == LLM_FAKE_TOOL) tool_pieces(&ps, rp->tool, rp->args ? rp->args : "{}");
    if (rp->kind == LLM_FAKE_MALFORMED) raw(&ps, "data: {\"choices\":[{\"delta\":{\"content\n\n");
    if (rp->kind == LLM_FAKE_TEXT || rp->kind == LLM_FAKE_TOOL || rp->kind == LLM_FAKE_MALFORMED) {
        chunk(&ps, "{}", rp->kind == LLM_FAKE_TOOL ? "tool_calls" : "stop");
        if (usage)
            raw(&ps, "data: {\"id\":\"chatcmpl-fake\",\"object\":\"chat.completion.chunk\","
                     "\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":7,"
                     "\"total_tokens\":19}}\n\n");
        raw(&ps, "data: [DONE]\n\n");
    }
    fd->pieces = ps.v;
    fd->n = ps.n;
    if (fd->stall) return; /* held until the end */
    int rc = fd->chunked ? cs_respond_begin(r, 200, "text/event-stream", -1,
                                            "Cache-Control: no-cache\r\nTransfer-Encoding: "
                                            "chunked\r\n")
                         : cs_respond_begin(r, 200, "text/event-stream", FAKE_CUT_PROMISE, NULL);
    if (rc < 0) {
        LOCKED(f, f->st.left++);
        feed_end(fd, false);
        return;
    }
    if (rp->first_ms)
        uv_timer_start(&fd->timer, on_feed, rp->first_ms, 0);
    else
        on_feed(&fd->timer);
}

/* POST /tools/{name}: the signature checked, the call kept, an answer by the name. */
static void tool(cs_request *r)
{
    llm_fake *f = r->app;
    const cs_str *ts = cs_request_header(r, "X-Callstream-Timestamp");
    const cs_str *sig = cs_request_header(r, "X-Callstream-Signature");
    bool good = false;
    if (ts && sig && f->o.tool_secret && ts->n < 24) {
        char t[24];
        snprintf(t, sizeof t, "%.*s", (int)ts->n, ts->p);
        cs_signed_headers want;
        cs_sign_body(&want, f->o.tool_secret, r->body.data ? r->body.data : "", r->body.len,
                     strtoll(t, NULL, 10));
        const char *v = strchr(want.signature, ':') + 2;
        good = strlen(v) == sig->n && memcmp(v, sig->p, sig->n) == 0;
    }
    char name[64];
    snprintf(name, sizeof name, "%.*s", (int)r->params[0].n, r->params[0].p);
    pthread_mutex_lock(&f->srv.lock);
    f->st.tool_calls++;
    if (!good) f->st.tool_bad_signatures++;
    if (f->ntools < FAKE_KEEP) {
        f->tool_bodies[f->ntools] = strndup(r->body.data ? r->body.data : "", r->body.len);
        snprintf(f->tool_names[f->ntools++], sizeof f->tool_names[0], "%s", name);
    }
    pthread_mutex_unlock(&f->srv.lock);
    if (!good) {
        fake_openai_error(r, 401, "invalid_request_error", "bad_signature", "bad signature");
    } else if (strcmp(name, "fail") == 0) {
        fake_openai_error(r, 500, "server_error", NULL, "the tool failed");
    } else if (strcmp(name, "slow") == 0) {
        feed_new(f, r)->stall = true; /* never answered */
    } else {
        const char *res = f->o.tool_result ? f->o.tool_result : "{\"result\":\"done\"}";
        cs_respond(r, 200, "application/json", res, strlen(res), NULL);
    }
}

static const cs_route routes[] = {
    {CS_HTTP_POST, "/v1/chat/completions", chat},
    {CS_HTTP_POST, "/tools/{}", tool},
};

/* ---- the thread ---- */

static void on_stop(void *app)
{
    llm_fake *f = app;
    while (f->feeds) feed_end(f->feeds, false);
}

int llm_fake_start(llm_fake **out, const llm_fake_opts *o)
{
    llm_fake *f = calloc(1, sizeof *f);
    if (!f) return -ENOMEM;
    f->o = *o;
    int rc = fake_server_start(&f->srv, routes, 2, f, on_stop, 0);
    if (rc < 0) return rc; /* a test that fails here stops; nothing to tidy */
    f->port = f->srv.port;
    snprintf(f->url, sizeof f->url, "http://127.0.0.1:%d/v1", f->port);
    *out = f;
    return 0;
}

const char *llm_fake_url(const llm_fake *f)
{
    return f->url;
}

void llm_fake_tool_url(const llm_fake *f, const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "http://127.0.0.1:%d/tools/%s", f->port, name);
}

void llm_fake_release(llm_fake *f)
{
    __atomic_store_n(&f->released, 1, __ATOMIC_RELEASE);
}

void llm_fake_stats_get(llm_fake *f, llm_fake_stats *out)
{
    LOCKED(f, *out = f->st);
}

bool llm_fake_request(llm_fake *f, size_t k, cs_buf *out)
{
    return fake_kept(&f->srv, &f->bodies, k, out);
}

bool llm_fake_json_request(llm_fake *f, size_t k, cs_buf *out)
{
    return fake_kept(&f->srv, &f->json_bodies, k, out);
}

bool llm_fake_tool_call(llm_fake *f, size_t k, cs_buf *out, char *name, size_t cap)
{
    bool ok;
    cs_buf_reset(out);
    pthread_mutex_lock(&f->srv.lock);
    ok = k < f->ntools && cs_buf_puts(out, f->tool_bodies[k]) == 0;
    if (ok) snprintf(name, cap, "%s", f->tool_names[k]);
    pthread_mutex_unlock(&f->srv.lock);
    return ok;
}

void llm_fake_free(llm_fake *f)
{
    fake_server_stop(&f->srv);
    fake_bodies_free(&f->bodies);
    fake_bodies_free(&f->json_bodies);
    for (size_t i = 0; i < f->ntools; i++) free(f->tool_bodies[i]);
    free(f);
}
