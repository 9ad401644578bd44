/* A fake HTTP API on a thread of its own (fake_thread.h), for the fakes of cloud services
 * that the gateway (another process) or a test's own loop talks to, with what they share:
 * the request bodies kept, the Bearer check, OpenAI's error answer. The fake's handlers
 * run on that thread and find the fake in r->app; the fake guards what tests read with
 * `lock` (FAKE_LOCKED). */
#ifndef CS_TEST_FAKE_SERVER_H
#define CS_TEST_FAKE_SERVER_H

#include <pthread.h>
#include <stdbool.h>

#include "fake_thread.h"

typedef struct fake_server {
    fake_thread t; /* its loop (t.loop) runs the handlers */
    int port;
    pthread_mutex_t lock;
    void (*on_stop)(void *app); /* on the thread, before the connections close: end timers */
    void *app;
} fake_server;

#define FAKE_KEEP 1024 /* request bodies kept */

/* The bodies of a fake's requests, for tests to read. */
typedef struct fake_bodies {
    char *v[FAKE_KEEP];
    size_t n;
} fake_bodies;

/* Keeps r's body (the first FAKE_KEEP requests') under the lock. */
void fake_keep(fake_server *s, fake_bodies *b, const cs_request *r);
/* The k-th body into `out` (from any thread): false if there is none. */
bool fake_kept(fake_server *s, const fake_bodies *b, size_t k, cs_buf *out);
void fake_bodies_free(fake_bodies *b);
/* Whether `r` carries "Authorization: Bearer <key>". */
bool fake_bearer_ok(const cs_request *r, const char *key);

/* OpenAI's error answer: `status` with {"error": {"message", "type", "param": null,
 * "code"}} (code NULL: null). */
void fake_openai_error(cs_request *r, int status, const char *type, const char *code,
                       const char *msg);

/* Listens on 127.0.0.1 `port` (0: a free one) and starts the thread. 0 or a negative
 * code. */
int fake_server_start(fake_server *s, const cs_route *routes, size_t nroutes, void *app,
                      void (*on_stop)(void *app), int port);
/* Stops the thread (on_stop, then every connection closed) and frees what it held. */
void fake_server_stop(fake_server *s);

#endif
