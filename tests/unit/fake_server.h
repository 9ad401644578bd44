/* A test server on a thread of its own, for the fakes of cloud services that the
 * gateway (another process) or a test's own loop talks to: our server code on a private
 * loop, stopped and freed from any thread. The fake's handlers run on that thread and
 * find the fake in r->app; the fake guards what tests read with `lock`. */
#ifndef CS_TEST_FAKE_SERVER_H
#define CS_TEST_FAKE_SERVER_H

#include <pthread.h>
#include <stdbool.h>
#include <uv.h>

#include "net/server.h"

typedef struct fake_server {
    uv_loop_t loop;
    uv_async_t quit;
    pthread_t thread;
    bool quitting; /* loop thread */
    cs_net *net;
    cs_server *server;
    int port;
    pthread_mutex_t lock;
    void (*on_stop)(void *app); /* on the thread, before the connections close: end timers */
    void *app;
} fake_server;

#define FAKE_LOCKED(s, stmt)                                                                       \
    do {                                                                                           \
        pthread_mutex_lock(&(s)->lock);                                                            \
        stmt;                                                                                      \
        pthread_mutex_unlock(&(s)->lock);                                                          \
    } while (0)

/* Listens on 127.0.0.1 (a free port) and starts the thread. 0 or a negative code. */
int fake_server_start(fake_server *s, const cs_route *routes, size_t nroutes, void *app,
                      void (*on_stop)(void *app));
/* Stops the thread (on_stop, then every connection closed) and frees what it held. */
void fake_server_stop(fake_server *s);

#endif
