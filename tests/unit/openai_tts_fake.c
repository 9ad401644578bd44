#include "openai_tts_fake.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/json.h"
#include "core/str.h"
#include "fake_server.h"

typedef struct feed feed;

struct oa_fake {
    fake_server srv;
    oa_fake_opts o;
    char url[64];
    feed *feeds; /* loop thread */
    /* Under srv.lock. */
    oa_fake_stats st;
    fake_bodies bodies;
};

/* An answer being written, a piece every `every_ms`. */
struct feed {
    oa_fake *f;
    cs_request *req;
    uint8_t *pcm;
    size_t len, at, stop; /* bytes; the answer ends (whole or cut) at `stop` */
    bool cut, stall;
    unsigned every_ms;
    uv_timer_t timer;
    feed *prev, *next;
};

size_t oa_fake_samples(const char *input)
{
    size_t chars = 0;
    for (const char *p = input; *p; p++) chars += ((unsigned char)*p & 0xC0) != 0x80;
    return chars * OA_FAKE_SAMPLES_PER_CHAR;
}

static void feed_closed(uv_handle_t *h)
{
    feed *fd = h->data;
    free(fd->pcm);
    free(fd);
}

static void feed_end(feed *fd, bool whole)
{
    oa_fake *f = fd->f;
    if (fd->prev)
        fd->prev->next = fd->next;
    else
        f->feeds = fd->next;
    if (fd->next) fd->next->prev = fd->prev;
    if (whole && !fd->cut) cs_respond_write(fd->req, "0\r\n\r\n", 5);
    cs_respond_end(fd->req);
    FAKE_LOCKED(&f->srv, f->st.live--; if (whole && !fd->cut) f->st.answered++;
                else f->st.left += !whole);
    uv_close((uv_handle_t *)&fd->timer, feed_closed);
}

static void on_feed(uv_timer_t *t)
{
    feed *fd = t->data;
    while (fd->at < fd->stop) {
        size_t n = fd->stop - fd->at < OA_FAKE_PIECE ? fd->stop - fd->at : OA_FAKE_PIECE;
        char head[32];
        int k = fd->cut ? 0 : snprintf(head, sizeof head, "%zx\r\n", n);
        int rc = cs_respond_write(fd->req, head, (size_t)k);
        if (rc == 0) rc = cs_respond_write(fd->req, fd->pcm + fd->at, n);
        if (rc == 0 && !fd->cut) rc = cs_respond_write(fd->req, "\r\n", 2);
        if (rc < 0) {
            feed_end(fd, false);
            return;
        }
        fd->at += n;
        if (fd->every_ms && fd->at < fd->stop) {
            uv_timer_start(&fd->timer, on_feed, fd->every_ms, 0);
            return;
        }
    }
    feed_end(fd, true);
}

/* Whether the body asks for speech as OpenAI takes it; the input in *input. */
static bool request_ok(const cs_request *r, char **input)
{
    cJSON *j = cJSON_ParseWithLength(r->body.data ? r->body.data : "", r->body.len);
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(j, "model");
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(j, "input");
    const cJSON *voice = cJSON_GetObjectItemCaseSensitive(j, "voice");
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(j, "response_format");
    bool ok = cJSON_IsString(model) && model->valuestring[0] && cJSON_IsString(in) &&
              in->valuestring[0] && cJSON_IsString(voice) && voice->valuestring[0] &&
              cJSON_IsString(fmt) && strcmp(fmt->valuestring, "pcm") == 0;
    *input = ok ? strdup(in->valuestring) : NULL;
    cJSON_Delete(j);
    return ok;
}

static void speech(cs_request *r)
{
    oa_fake *f = r->app;
    size_t k;
    FAKE_LOCKED(&f->srv, k = f->st.requests++);
    fake_keep(&f->srv, &f->bodies, r);
    if (!fake_bearer_ok(r, f->o.api_key)) {
        const cs_str *auth = cs_request_header(r, "Authorization");
        FAKE_LOCKED(&f->srv, f->st.bad_auth++);
        char msg[160];
        size_t n = auth && auth->n > 7 ? auth->n - 7 : 0;
        snprintf(msg, sizeof msg,
                 "Incorrect API key provided: %.*s****%.*s. You can find your API key at "
                 "https://platform.openai.com/account/api-keys.",
                 (int)(n > 8 ? 3 : 0), auth ? auth->p + 7 : "", (int)(n > 8 ? 4 : 0),
                 auth && n > 8 ? auth->p + auth->n - 4 : "");
        fake_openai_error(r, 401, "invalid_request_error", "invalid_api_key", msg);
        return;
    }
    char *input;
    if (!request_ok(r, &input)) {
        FAKE_LOCKED(&f->srv, f->st.bad_requests++);
        fake_openai_error(r, 400, "invalid_request_error", NULL,
                          "expected model, input and voice, and response_format \"pcm\"");
        return;
    }
    oa_fake_reply def = {.kind = OA_FAKE_SPEAK};
    const oa_fake_reply *rp =
        f->o.nscript ? &f->o.script[k < f->o.nscript ? k : f->o.nscript - 1] : &def;
    if (rp->kind == OA_FAKE_ERROR) {
        free(input);
        FAKE_LOCKED(&f->srv, f->st.answered++);
        fake_openai_error(r, rp->status,
                          rp->status >= 500 ? "server_error" : "invalid_request_error", NULL,
                          rp->message ? rp->message : "fake error");
        return;
    }
    feed *fd = calloc(1, sizeof *fd);
    size_t n = oa_fake_samples(input);
    free(input);
    fd->f = f;
    fd->req = r;
    fd->len = n * 2;
    fd->pcm = malloc(fd->len ? fd->len : 1);
    for (size_t i = 0; i < n; i++) { /* a 440 Hz tone */
        int16_t v = (int16_t)(8000 * sin(2 * M_PI * 440 * (double)i / 24000));
        fd->pcm[2 * i] = (uint8_t)(v & 0xFF);
        fd->pcm[2 * i + 1] = (uint8_t)((uint16_t)v >> 8);
    }
    fd->cut = rp->kind == OA_FAKE_CUT;
    fd->stall = rp->kind == OA_FAKE_STALL;
    fd->stop = fd->cut ? fd->len / 2 + 1 : fd->stall ? 0 : fd->len;
    fd->every_ms = rp->every_ms;
    fd->next = f->feeds;
    if (f->feeds) f->feeds->prev = fd;
    f->feeds = fd;
    uv_timer_init(&f->srv.t.loop, &fd->timer);
    fd->timer.data = fd;
    FAKE_LOCKED(&f->srv, f->st.live++);
    /* A cut answer promises more than it sends: the end closes the connection. */
    int rc = fd->cut ? cs_respond_begin(r, 200, "audio/pcm", (int64_t)fd->len, NULL)
                     : cs_respond_begin(r, 200, "audio/pcm", -1, "Transfer-Encoding: chunked\r\n");
    if (rc < 0)
        feed_end(fd, false);
    else if (!fd->stall)
        on_feed(&fd->timer);
}

static const cs_route routes[] = {{CS_HTTP_POST, "/v1/audio/speech", speech}};

static void on_stop(void *app)
{
    oa_fake *f = app;
    while (f->feeds) feed_end(f->feeds, false);
}

int oa_fake_start(oa_fake **out, const oa_fake_opts *o)
{
    oa_fake *f = calloc(1, sizeof *f);
    if (!f) return -ENOMEM;
    f->o = *o;
    int rc = fake_server_start(&f->srv, routes, 1, f, on_stop, 0);
    if (rc < 0) return rc;
    snprintf(f->url, sizeof f->url, "http://127.0.0.1:%d/v1", f->srv.port);
    *out = f;
    return 0;
}

const char *oa_fake_url(const oa_fake *f)
{
    return f->url;
}

void oa_fake_stats_get(oa_fake *f, oa_fake_stats *out)
{
    FAKE_LOCKED(&f->srv, *out = f->st);
}

bool oa_fake_request(oa_fake *f, size_t k, cs_buf *out)
{
    return fake_kept(&f->srv, &f->bodies, k, out);
}

void oa_fake_free(oa_fake *f)
{
    fake_server_stop(&f->srv);
    fake_bodies_free(&f->bodies);
    free(f);
}
