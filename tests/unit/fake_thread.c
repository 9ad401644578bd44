#include "fake_thread.h"

#include "core/err.h"

static void on_async(uv_async_t *a)
{
    fake_thread *t = a->data;
    if (t->on_wake) t->on_wake(t);
    if (__atomic_load_n(&t->stop, __ATOMIC_ACQUIRE)) t->stopping = true;
}

static void *run(void *arg)
{
    fake_thread *t = arg;
    while (!t->stopping) uv_run(&t->loop, UV_RUN_ONCE);
    cs_server_stop_listening(t->server);
    if (t->on_stop) t->on_stop(t);
    cs_net_close_all(t->net, false);
    while (cs_net_count(t->net) || (t->busy && t->busy(t))) uv_run(&t->loop, UV_RUN_ONCE);
    cs_server_free(t->server);
    cs_net_free(t->net);
    uv_close((uv_handle_t *)&t->async, NULL);
    uv_run(&t->loop, UV_RUN_DEFAULT); /* every close callback */
    return NULL;
}

int fake_thread_start(fake_thread *t, const cs_route *routes, size_t nroutes,
                      const cs_server_limits *lim, void *app)
{
    int rc = uv_loop_init(&t->loop);
    if (rc == 0) rc = cs_net_new(&t->net, &t->loop);
    if (rc == 0) rc = cs_server_new(&t->server, t->net, routes, nroutes, lim, app);
    if (rc == 0) rc = cs_server_listen(t->server, "127.0.0.1", t->port, false);
    if (rc == 0) rc = uv_async_init(&t->loop, &t->async, on_async);
    if (rc < 0) return rc;
    t->async.data = t;
    t->port = cs_server_port(t->server);
    return pthread_create(&t->thread, NULL, run, t) == 0 ? 0 : -EAGAIN;
}

void fake_thread_wake(fake_thread *t)
{
    uv_async_send(&t->async);
}

void fake_thread_stop(fake_thread *t)
{
    __atomic_store_n(&t->stop, 1, __ATOMIC_RELEASE);
    uv_async_send(&t->async);
    pthread_join(t->thread, NULL);
    uv_loop_close(&t->loop);
}
