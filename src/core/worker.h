/* Worker threads and the way back to the loop.
 *
 * A job is embedded in its owner's struct: `work` runs on a worker thread, then `done`
 * runs on the loop thread. Workers never touch sockets; they hand jobs back through a
 * mailbox (a locked list plus a uv_async_t wake-up). Queues are bounded: posting to a
 * full worker fails with CS_EFULL and the caller applies its own drop or spill policy. */
#ifndef CS_WORKER_H
#define CS_WORKER_H

#include <stddef.h>
#include <uv.h>

typedef struct cs_job cs_job;
typedef void (*cs_job_fn)(cs_job *job);

struct cs_job {
    cs_job_fn work; /* on the worker; may be NULL. A job without `done` may free itself here */
    cs_job_fn done; /* on the loop, after `work`; may be NULL (then nothing runs) */
    cs_job *next;   /* owned by whichever queue holds the job */
};

/* ---- mailbox: any thread → one loop ---- */

typedef struct cs_mailbox cs_mailbox;

/* Creates a mailbox on `loop`. Must be called on the loop thread. */
int cs_mailbox_open(cs_mailbox **out, uv_loop_t *loop);
/* From any thread: `job->done` will run on the loop. Never fails, never blocks long. */
void cs_mailbox_post(cs_mailbox *mb, cs_job *job);
/* Runs the `done` callbacks pending now (loop thread). */
void cs_mailbox_run(cs_mailbox *mb);
/* The loop it delivers to (for timers of the mailbox's users). */
uv_loop_t *cs_mailbox_loop(cs_mailbox *mb);
/* Runs what is pending, then closes; freed after the loop's close callbacks. */
void cs_mailbox_close(cs_mailbox *mb);

/* ---- worker: one thread with a bounded input queue ---- */

/* Optional hooks, run on the worker around each batch of jobs it takes at once (the
 * SQLite writer wraps a batch in one transaction). */
typedef struct cs_worker_hooks {
    void (*batch_begin)(void *data, size_t jobs);
    void (*batch_end)(void *data);
    void *data;
    /* Once a job arrives, wait this long for more before running them: one wake-up and
     * one batch instead of one per job, at the price of that much delay. 0: none. */
    unsigned linger_ms;
    /* Added to the thread's niceness (0: the process's): work that must not slow the
     * others. */
    int nice;
} cs_worker_hooks;

typedef struct cs_worker cs_worker;

/* Starts a thread named `name` (≤ 15 chars). Results come back through `mb`.
 * `hooks` may be NULL; it is copied. */
int cs_worker_start(cs_worker **out, const char *name, size_t max_jobs, cs_mailbox *mb,
                    const cs_worker_hooks *hooks);
/* Queues `job`; CS_EFULL when `max_jobs` are waiting, CS_ECLOSED after stop. */
int cs_worker_post(cs_worker *w, cs_job *job);
/* Like cs_worker_post but ignores the bound: for the few jobs that must not be refused
 * (closing a recording). */
int cs_worker_post_force(cs_worker *w, cs_job *job);
/* Jobs waiting (not counting the batch being run). */
size_t cs_worker_depth(const cs_worker *w);
/* Runs every queued job, joins the thread and frees the worker. Their `done` callbacks
 * are in the mailbox when this returns. */
void cs_worker_stop(cs_worker *w);

#endif
