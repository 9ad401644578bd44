#include "core/worker.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "core/err.h"

struct cs_mailbox {
    uv_async_t async;
    pthread_mutex_t lock;
    cs_job *head, *tail;
};

static void mailbox_drain(cs_mailbox *mb)
{
    for (;;) {
        pthread_mutex_lock(&mb->lock);
        cs_job *list = mb->head;
        mb->head = mb->tail = NULL;
        pthread_mutex_unlock(&mb->lock);
        if (!list) return;
        while (list) {
            cs_job *next = list->next;
            list->next = NULL;
            if (list->done) list->done(list);
            list = next;
        }
    }
}

void cs_mailbox_run(cs_mailbox *mb)
{
    mailbox_drain(mb);
}

uv_loop_t *cs_mailbox_loop(cs_mailbox *mb)
{
    return mb->async.loop;
}

static void mailbox_wake(uv_async_t *a)
{
    mailbox_drain(a->data);
}

int cs_mailbox_open(cs_mailbox **out, uv_loop_t *loop)
{
    cs_mailbox *mb = calloc(1, sizeof *mb);
    if (!mb) return -ENOMEM;
    pthread_mutex_init(&mb->lock, NULL);
    int rc = uv_async_init(loop, &mb->async, mailbox_wake);
    if (rc < 0) {
        pthread_mutex_destroy(&mb->lock);
        free(mb);
        return rc;
    }
    mb->async.data = mb;
    *out = mb;
    return 0;
}

void cs_mailbox_post(cs_mailbox *mb, cs_job *job)
{
    job->next = NULL;
    pthread_mutex_lock(&mb->lock);
    if (mb->tail)
        mb->tail->next = job;
    else
        mb->head = job;
    mb->tail = job;
    pthread_mutex_unlock(&mb->lock);
    uv_async_send(&mb->async);
}

static void mailbox_free(uv_handle_t *h)
{
    cs_mailbox *mb = h->data;
    pthread_mutex_destroy(&mb->lock);
    free(mb);
}

void cs_mailbox_close(cs_mailbox *mb)
{
    if (!mb) return;
    mailbox_drain(mb);
    uv_close((uv_handle_t *)&mb->async, mailbox_free);
}

struct cs_worker {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    cs_job *head, *tail;
    size_t depth, max_jobs;
    bool stopping;
    cs_mailbox *mb;
    cs_worker_hooks hooks;
    char name[16];
};

static void *worker_main(void *arg)
{
    cs_worker *w = arg;
    pthread_setname_np(pthread_self(), w->name);
    /* Linux: a thread id names one thread, so only this one moves, from the niceness it
     * inherited. */
    if (w->hooks.nice) {
        id_t self = (id_t)gettid();
        setpriority(PRIO_PROCESS, self, getpriority(PRIO_PROCESS, self) + w->hooks.nice);
    }
    for (;;) {
        pthread_mutex_lock(&w->lock);
        while (!w->head && !w->stopping) pthread_cond_wait(&w->cond, &w->lock);
        if (w->hooks.linger_ms && !w->stopping) {
            /* Posts meanwhile find no waiter, so they cost no system call. */
            pthread_mutex_unlock(&w->lock);
            struct timespec ts = {w->hooks.linger_ms / 1000,
                                  (long)(w->hooks.linger_ms % 1000) * 1000000L};
            nanosleep(&ts, NULL);
            pthread_mutex_lock(&w->lock);
        }
        cs_job *list = w->head;
        size_t n = w->depth;
        w->head = w->tail = NULL;
        w->depth = 0;
        bool stop = w->stopping;
        pthread_mutex_unlock(&w->lock);
        if (!list && stop) break;

        if (w->hooks.batch_begin) w->hooks.batch_begin(w->hooks.data, n);
        /* A job without `done` may be freed or reused by its own `work`, so its link is
         * read first and it is not touched afterwards. */
        cs_job *done = NULL, **tail = &done;
        for (cs_job *j = list, *next; j; j = next) {
            next = j->next;
            bool reply = j->done != NULL;
            if (j->work) j->work(j);
            if (reply) {
                *tail = j;
                tail = &j->next;
            }
        }
        *tail = NULL;
        if (w->hooks.batch_end) w->hooks.batch_end(w->hooks.data);
        /* Hand back only after the batch is complete (committed, for the store). */
        while (done) {
            cs_job *next = done->next;
            cs_mailbox_post(w->mb, done);
            done = next;
        }
    }
    return NULL;
}

int cs_worker_start(cs_worker **out, const char *name, size_t max_jobs, cs_mailbox *mb,
                    const cs_worker_hooks *hooks)
{
    cs_worker *w = calloc(1, sizeof *w);
    if (!w) return -ENOMEM;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
    w->max_jobs = max_jobs;
    w->mb = mb;
    if (hooks) w->hooks = *hooks;
    snprintf(w->name, sizeof w->name, "%s", name);
    int rc = pthread_create(&w->thread, NULL, worker_main, w);
    if (rc != 0) {
        pthread_cond_destroy(&w->cond);
        pthread_mutex_destroy(&w->lock);
        free(w);
        return -rc;
    }
    *out = w;
    return 0;
}

static int post(cs_worker *w, cs_job *job, bool force)
{
    job->next = NULL;
    pthread_mutex_lock(&w->lock);
    int rc = 0;
    if (w->stopping)
        rc = CS_ECLOSED;
    else if (!force && w->depth >= w->max_jobs)
        rc = CS_EFULL;
    else {
        if (w->tail)
            w->tail->next = job;
        else
            w->head = job;
        w->tail = job;
        w->depth++;
        pthread_cond_signal(&w->cond);
    }
    pthread_mutex_unlock(&w->lock);
    return rc;
}

int cs_worker_post(cs_worker *w, cs_job *job)
{
    return post(w, job, false);
}

int cs_worker_post_force(cs_worker *w, cs_job *job)
{
    return post(w, job, true);
}

size_t cs_worker_depth(const cs_worker *w)
{
    pthread_mutex_lock((pthread_mutex_t *)&w->lock);
    size_t d = w->depth;
    pthread_mutex_unlock((pthread_mutex_t *)&w->lock);
    return d;
}

void cs_worker_stop(cs_worker *w)
{
    if (!w) return;
    pthread_mutex_lock(&w->lock);
    w->stopping = true;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->lock);
    free(w);
}
