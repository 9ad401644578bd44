/* A local server on a thread of its own, the ground the threaded fakes of cloud APIs
 * (through fake_server.h, and realtime_fake) stand on: a loop, our own server listening on 127.0.0.1 (a
 * free port), a way to wake the loop from other threads, and an orderly stop that closes
 * every connection before the thread ends. */
#ifndef CS_TEST_FAKE_THREAD_H
#define CS_TEST_FAKE_THREAD_H

#include <pthread.h>
#include <stdbool.h>
#include <uv.h>

#include "net/server.h"

/* Runs `stmt` holding `f->lock`, the mutex guarding what a fake shares with the test. */
#define FAKE_LOCKED(f, stmt)                                                                       \
    do {                                                                                           \
        pthread_mutex_lock(&(f)->lock);                                                            \
        stmt;                                                                                      \
        pthread_mutex_unlock(&(f)->lock);                                                          \
    } while (0)

typedef struct fake_thread fake_thread;

struct fake_thread {
    /* Set before fake_thread_start; each may be NULL. All run on the loop thread. */
    void (*on_wake)(fake_thread *t); /* fake_thread_wake was called */
    void (*on_stop)(fake_thread *t); /* stopping: before the connections are closed */
    bool (*busy)(fake_thread *t);    /* stopping: something still closes (wait for it) */
    void *data;
    int port; /* before the start: where to listen (0: a free port); then where it does */
    /* Its own; loop, net and server are the fake's to use on the loop thread. */
    uv_loop_t loop;
    cs_net *net;
    cs_server *server;
    uv_async_t async;
    pthread_t thread;
    int stop;      /* __atomic */
    bool stopping; /* loop thread */
};

/* Listens with `routes` (`app` for the handlers) and starts the thread. 0 or a negative
 * code (a test that fails here stops: nothing is tidied). */
int fake_thread_start(fake_thread *t, const cs_route *routes, size_t nroutes,
                      const cs_server_limits *lim, void *app);
/* Any thread: on_wake runs soon on the loop thread. */
void fake_thread_wake(fake_thread *t);
/* Any thread but the loop's: closes everything, joins the thread, closes the loop. */
void fake_thread_stop(fake_thread *t);

#endif
