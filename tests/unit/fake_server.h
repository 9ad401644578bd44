/* What the tests' fake servers share: the project's HTTP server (net/server.h) on a loop
 * and thread of its own, listening on 127.0.0.1, with the fake's routes. The routes run
 * on that thread, with the fake as the request's app. */
#ifndef CS_TEST_FAKE_SERVER_H
#define CS_TEST_FAKE_SERVER_H

#include <stddef.h>
#include <uv.h>

#include "net/server.h"

typedef struct fake_server_opts {
    const cs_route *routes; /* must outlive the server */
    size_t nroutes;
    void *app;       /* each request's app */
    int port;        /* 0: any free port */
    size_t max_body; /* request bodies (0: 16 MB) */
    /* On the server's thread once it stops listening, before its connections close:
     * answer or end what the fake holds. May be NULL. */
    void (*on_stop)(void *app);
} fake_server_opts;

typedef struct fake_server fake_server;

/* Listens and starts the thread. 0 or a negative code. */
int fake_server_start(fake_server **out, const fake_server_opts *o);
int fake_server_port(const fake_server *s);
/* The server's loop, for the fake's timers (its thread only). */
uv_loop_t *fake_server_loop(fake_server *s);
/* Stops the thread (on_stop, then every connection closed) and frees the server. */
void fake_server_free(fake_server *s);

#endif
