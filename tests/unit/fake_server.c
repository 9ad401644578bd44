#include "fake_server.h"

#include <errno.h>
#include <string.h>

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
    if (s->on_stop) s->on_stop(s->app);
    cs_net_close_all(s->net, false);
    while (cs_net_count(s->net)) uv_run(&s->loop, UV_RUN_ONCE);
    cs_server_free(s->server);
    cs_net_free(s->net);
    uv_close((uv_handle_t *)&s->quit, NULL);
    uv_run(&s->loop, UV_RUN_DEFAULT);
    return NULL;
}

int fake_server_start(fake_server *s, const cs_route *routes, size_t nroutes, void *app,
                      void (*on_stop)(void *app))
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
    int rc = uv_loop_init(&s->loop);
    if (rc == 0) rc = cs_net_new(&s->net, &s->loop);
    if (rc == 0) rc = cs_server_new(&s->server, s->net, routes, nroutes, &lim, app);
    if (rc == 0) rc = cs_server_listen(s->server, "127.0.0.1", 0, false);
    if (rc == 0) rc = uv_async_init(&s->loop, &s->quit, on_quit);
    if (rc < 0) return rc; /* a test that fails here stops; nothing to tidy */
    s->quit.data = s;
    s->port = cs_server_port(s->server);
    return pthread_create(&s->thread, NULL, run, s) == 0 ? 0 : -EAGAIN;
}

void fake_server_stop(fake_server *s)
{
    uv_async_send(&s->quit);
    pthread_join(s->thread, NULL);
    uv_loop_close(&s->loop);
    pthread_mutex_destroy(&s->lock);
}
