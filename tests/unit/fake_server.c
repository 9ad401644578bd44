#include "fake_server.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "core/err.h"

struct fake_server {
    uv_loop_t loop;
    uv_async_t quit;
    pthread_t thread;
    bool quitting; /* loop thread */
    cs_net *net;
    cs_server *server;
    fake_server_opts o;
    int port;
};

static void on_quit(uv_async_t *a)
{
    fake_server *s = a->data;
    s->quitting = true;
}

static void *run(void *arg)
{
    fake_server *s = arg;
    while (!s->quitting) uv_run(&s->loop, UV_RUN_ONCE);
    cs_server_stop_listening(s->server);
    if (s->o.on_stop) s->o.on_stop(s->o.app);
    cs_net_close_all(s->net, false);
    while (cs_net_count(s->net)) uv_run(&s->loop, UV_RUN_ONCE);
    cs_server_free(s->server);
    cs_net_free(s->net);
    uv_close((uv_handle_t *)&s->quit, NULL);
    uv_run(&s->loop, UV_RUN_DEFAULT);
    return NULL;
}

int fake_server_start(fake_server **out, const fake_server_opts *o)
{
    fake_server *s = calloc(1, sizeof *s);
    if (!s) return -ENOMEM;
    s->o = *o;
    cs_server_limits lim = {.max_connections = 1024,
                            .max_per_ip = 1024,
                            .max_head = 16384,
                            .max_body = o->max_body ? o->max_body : 16u << 20,
                            .idle_ms = 60000};
    int rc = uv_loop_init(&s->loop);
    if (rc == 0) rc = cs_net_new(&s->net, &s->loop);
    if (rc == 0) rc = cs_server_new(&s->server, s->net, o->routes, o->nroutes, &lim, o->app);
    if (rc == 0) rc = cs_server_listen(s->server, "127.0.0.1", o->port, false);
    if (rc == 0) rc = uv_async_init(&s->loop, &s->quit, on_quit);
    if (rc < 0) return rc; /* a test that fails here stops; nothing to tidy */
    s->quit.data = s;
    s->port = cs_server_port(s->server);
    if (pthread_create(&s->thread, NULL, run, s) != 0) return -EAGAIN;
    *out = s;
    return 0;
}

int fake_server_port(const fake_server *s)
{
    return s->port;
}

uv_loop_t *fake_server_loop(fake_server *s)
{
    return &s->loop;
}

void fake_server_free(fake_server *s)
{
    uv_async_send(&s->quit);
    pthread_join(s->thread, NULL);
    uv_loop_close(&s->loop);
    free(s);
}
