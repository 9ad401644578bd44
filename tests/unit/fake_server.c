#include "fake_server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"

void fake_keep(fake_server *s, fake_bodies *b, const cs_request *r)
{
    char *body = strndup(r->body.data ? r->body.data : "", r->body.len);
    pthread_mutex_lock(&s->lock);
    if (b->n < FAKE_KEEP)
        b->v[b->n++] = body;
    else
        free(body);
    pthread_mutex_unlock(&s->lock);
}

bool fake_kept(fake_server *s, const fake_bodies *b, size_t k, cs_buf *out)
{
    bool ok;
    cs_buf_reset(out);
    FAKE_LOCKED(s, ok = k < b->n && cs_buf_puts(out, b->v[k]) == 0);
    return ok;
}

void fake_bodies_free(fake_bodies *b)
{
    for (size_t i = 0; i < b->n; i++) free(b->v[i]);
    b->n = 0;
}

bool fake_bearer_ok(const cs_request *r, const char *key)
{
    char want[256];
    snprintf(want, sizeof want, "Bearer %s", key ? key : "");
    const cs_str *auth = cs_request_header(r, "Authorization");
    return auth && cs_str_eqz(*auth, want);
}

void fake_openai_error(cs_request *r, int status, const char *type, const char *code,
                       const char *msg)
{
    cs_buf b = CS_BUF_INIT(1 << 16);
    cs_json j;
    cs_json_init(&j, &b);
    cs_json_obj(&j);
    cs_json_key(&j, "error");
    cs_json_obj(&j);
    cs_json_kstr(&j, "message", msg);
    cs_json_kstr(&j, "type", type);
    cs_json_key(&j, "param");
    cs_json_null(&j);
    cs_json_key(&j, "code");
    cs_json_str(&j, code);
    cs_json_obj_end(&j);
    cs_json_obj_end(&j);
    cs_json_end(&j);
    cs_respond_json(r, status, &b);
    cs_buf_free(&b);
}

static void stopping(fake_thread *t)
{
    fake_server *s = t->data;
    if (s->on_stop) s->on_stop(s->app);
}

int fake_server_start(fake_server *s, const cs_route *routes, size_t nroutes, void *app,
                      void (*on_stop)(void *app), int port)
{
    memset(s, 0, sizeof *s);
    s->app = app;
    s->on_stop = on_stop;
    pthread_mutex_init(&s->lock, NULL);
    cs_server_limits lim = {.max_connections = 4096,
                            .max_per_ip = 4096,
                            .max_head = 16384,
                            .max_body = 1u << 20,
                            .idle_ms = 60000};
    s->t.port = port;
    s->t.on_stop = stopping;
    s->t.data = s;
    int rc = fake_thread_start(&s->t, routes, nroutes, &lim, app);
    if (rc < 0) return rc; /* a test that fails here stops; nothing to tidy */
    s->port = s->t.port;
    return 0;
}

void fake_server_stop(fake_server *s)
{
    fake_thread_stop(&s->t);
    pthread_mutex_destroy(&s->lock);
}
