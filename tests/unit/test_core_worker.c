#include "testutil.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "core/err.h"
#include "core/worker.h"

/* ---- fixture: a loop and its mailbox, on the test's thread ---- */

typedef struct fixture {
    uv_loop_t loop;
    cs_mailbox *mb;
} fixture;

static pthread_t loop_thread;
static int works, dones; /* calls so far: `works` on the worker, `dones` on the loop */

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f || uv_loop_init(&f->loop) != 0 || cs_mailbox_open(&f->mb, &f->loop) != 0) return -1;
    loop_thread = pthread_self();
    works = dones = 0;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    cs_mailbox_close(f->mb);
    uv_run(&f->loop, UV_RUN_DEFAULT); /* the close callbacks free the mailboxes */
    int rc = uv_loop_close(&f->loop);
    free(f);
    return rc;
}

/* ---- jobs that record where and in which order they ran ---- */

typedef struct tjob {
    cs_job job;
    int id;
    pthread_t work_thread, done_thread;
    int work_order, done_order; /* -1: not run */
    char thread_name[16];
    bool work_seen;    /* by `done`: what `work` wrote */
    int batches_ended; /* when `done` ran */
} tjob;

static atomic_int batches_ended;

static void record_work(cs_job *job)
{
    tjob *t = (tjob *)job;
    t->work_thread = pthread_self();
    t->work_order = works++;
    pthread_getname_np(pthread_self(), t->thread_name, sizeof t->thread_name);
}

static void record_done(cs_job *job)
{
    tjob *t = (tjob *)job;
    t->work_seen = t->work_order >= 0;
    t->done_thread = pthread_self();
    t->done_order = dones++;
    t->batches_ended = atomic_load(&batches_ended);
}

static void init_jobs(tjob *jobs, int n)
{
    for (int i = 0; i < n; i++)
        jobs[i] = (tjob){{record_work, record_done, NULL}, i, .work_order = -1, .done_order = -1};
}

static bool dones_reach(void *n)
{
    return dones >= *(int *)n;
}

/* Runs the loop until `n` `done` callbacks have run in all. */
static void run_until_done(fixture *f, int n)
{
    assert_true(tu_run_until(&f->loop, dones_reach, &n, TU_WAIT_MS));
}

/* ---- a gate: a job that holds the worker until the test lets it go ---- */

typedef struct gate {
    cs_job job;
    sem_t started, release;
} gate;

static void wait_sem(sem_t *s)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += TU_WAIT_MS / 1000;
    int rc;
    while ((rc = sem_timedwait(s, &deadline)) != 0 && errno == EINTR) continue;
    assert_int_equal(rc, 0);
}

static void hold(cs_job *job)
{
    gate *g = (gate *)job;
    sem_post(&g->started);
    while (sem_wait(&g->release) != 0) continue; /* EINTR */
}

/* Posts the gate and returns once the worker is inside it, its queue empty. */
static void close_gate(gate *g, cs_worker *w)
{
    *g = (gate){{hold, NULL, NULL}};
    sem_init(&g->started, 0, 0);
    sem_init(&g->release, 0, 0);
    assert_int_equal(cs_worker_post(w, &g->job), 0);
    wait_sem(&g->started);
    assert_int_equal(cs_worker_depth(w), 0);
}

static void open_gate(gate *g)
{
    sem_post(&g->release);
}

static void destroy_gate(gate *g)
{
    sem_destroy(&g->started);
    sem_destroy(&g->release);
}

/* ---- tests ---- */

static void jobs_run_in_order_then_done_on_the_loop(void **state)
{
    fixture *f = *state;
    enum { N = 200 };
    static tjob jobs[N];
    init_jobs(jobs, N);
    cs_worker *w;
    assert_int_equal(cs_worker_start(&w, "a-long-worker-name", N, f->mb, NULL), 0);
    for (int i = 0; i < N; i++) assert_int_equal(cs_worker_post(w, &jobs[i].job), 0);
    run_until_done(f, N);
    cs_worker_stop(w);

    for (int i = 0; i < N; i++) {
        assert_int_equal(jobs[i].work_order, i);
        assert_int_equal(jobs[i].done_order, i);
        assert_true(jobs[i].work_seen);
        assert_true(pthread_equal(jobs[i].work_thread, jobs[0].work_thread));
        assert_false(pthread_equal(jobs[i].work_thread, loop_thread));
        assert_true(pthread_equal(jobs[i].done_thread, loop_thread));
        assert_string_equal(jobs[i].thread_name, "a-long-worker-n"); /* 15 characters */
    }
}

static void optional_callbacks(void **state)
{
    fixture *f = *state;
    tjob only_done, neither;
    init_jobs(&only_done, 1);
    only_done.job.work = NULL;
    init_jobs(&neither, 1);
    neither.job = (cs_job){NULL, NULL, NULL};
    cs_worker *w;
    assert_int_equal(cs_worker_start(&w, "optional", 10, f->mb, NULL), 0);
    assert_int_equal(cs_worker_post(w, &neither.job), 0);
    assert_int_equal(cs_worker_post(w, &only_done.job), 0);
    cs_worker_stop(w);
    cs_mailbox_run(f->mb);
    assert_int_equal(dones, 1);
    assert_int_equal(only_done.done_order, 0);
    assert_int_equal(works, 0);
    cs_worker_stop(NULL);
}

/* What the batch hooks saw; written on the worker (where cmocka cannot fail a test), read
 * once it has stopped. */
static struct {
    int begins, ends;
    size_t sizes[2];
    bool wrong; /* other data, nested or unbalanced calls, or more batches than expected */
} batches;

static void batch_begin(void *data, size_t jobs)
{
    if (data != &batches || batches.begins != batches.ends || batches.begins == 2) {
        batches.wrong = true;
        return;
    }
    batches.sizes[batches.begins++] = jobs;
}

static void batch_end(void *data)
{
    if (data != &batches || batches.ends + 1 != batches.begins) batches.wrong = true;
    batches.ends++;
    atomic_store(&batches_ended, batches.ends);
}

static void batch_hooks_wrap_each_batch(void **state)
{
    fixture *f = *state;
    memset(&batches, 0, sizeof batches);
    atomic_store(&batches_ended, 0);
    cs_worker_hooks hooks = {batch_begin, batch_end, &batches};
    cs_worker *w;
    assert_int_equal(cs_worker_start(&w, "batches", 10, f->mb, &hooks), 0);
    memset(&hooks, 0, sizeof hooks); /* the worker keeps its own copy */

    gate g;
    close_gate(&g, w);
    tjob jobs[3];
    init_jobs(jobs, 3);
    for (int i = 0; i < 3; i++) assert_int_equal(cs_worker_post(w, &jobs[i].job), 0);
    assert_int_equal(cs_worker_depth(w), 3);
    open_gate(&g);
    run_until_done(f, 3);
    cs_worker_stop(w);
    destroy_gate(&g);

    assert_false(batches.wrong);
    assert_int_equal(batches.begins, 2);
    assert_int_equal(batches.ends, 2);
    assert_int_equal(batches.sizes[0], 1); /* the gate alone */
    assert_int_equal(batches.sizes[1], 3); /* all that waited behind it */
    for (int i = 0; i < 3; i++) assert_int_equal(jobs[i].batches_ended, 2); /* after the end */
}

static atomic_int counted;

static void count(cs_job *job)
{
    (void)job;
    atomic_fetch_add(&counted, 1);
}

static void the_bound_refuses_all_but_forced_jobs(void **state)
{
    fixture *f = *state;
    atomic_store(&counted, 0);
    cs_worker *w;
    assert_int_equal(cs_worker_start(&w, "bounded", 3, f->mb, NULL), 0);
    gate g;
    close_gate(&g, w);
    cs_job jobs[3], refused = {count, NULL, NULL}, forced = {count, NULL, NULL};
    for (int i = 0; i < 3; i++) {
        jobs[i] = (cs_job){count, NULL, NULL};
        assert_int_equal(cs_worker_post(w, &jobs[i]), 0);
    }
    assert_int_equal(cs_worker_depth(w), 3);
    assert_int_equal(cs_worker_post(w, &refused), CS_EFULL);
    assert_int_equal(cs_worker_depth(w), 3);
    assert_int_equal(cs_worker_post_force(w, &forced), 0);
    assert_int_equal(cs_worker_depth(w), 4);
    assert_int_equal(cs_worker_post(w, &refused), CS_EFULL);
    open_gate(&g);
    cs_worker_stop(w);
    destroy_gate(&g);
    assert_int_equal(atomic_load(&counted), 4);

    /* With no room at all only forced jobs get in. */
    atomic_store(&counted, 0);
    assert_int_equal(cs_worker_start(&w, "no-room", 0, f->mb, NULL), 0);
    assert_int_equal(cs_worker_post(w, &refused), CS_EFULL);
    assert_int_equal(cs_worker_post_force(w, &forced), 0);
    cs_worker_stop(w);
    assert_int_equal(atomic_load(&counted), 1);
}

static void *stop_worker(void *w)
{
    cs_worker_stop(w);
    return NULL;
}

static void stop_runs_what_is_queued_and_refuses_more(void **state)
{
    fixture *f = *state;
    enum { N = 50 };
    atomic_store(&counted, 0);
    tjob jobs[N];
    init_jobs(jobs, N);
    cs_worker *w;
    assert_int_equal(cs_worker_start(&w, "stopping", N, f->mb, NULL), 0);
    gate g;
    close_gate(&g, w);
    for (int i = 0; i < N; i++) assert_int_equal(cs_worker_post(w, &jobs[i].job), 0);

    /* Stop while the gate holds the worker; the queue is full, so posts are refused as
     * full until the stop begins, then as closed. */
    pthread_t stopper;
    assert_int_equal(pthread_create(&stopper, NULL, stop_worker, w), 0);
    cs_job probe = {count, NULL, NULL};
    int rc;
    while ((rc = cs_worker_post(w, &probe)) == CS_EFULL) sched_yield();
    assert_int_equal(rc, CS_ECLOSED);
    assert_int_equal(cs_worker_post_force(w, &probe), CS_ECLOSED);
    open_gate(&g);
    pthread_join(stopper, NULL);
    destroy_gate(&g);

    assert_int_equal(works, N);
    assert_int_equal(atomic_load(&counted), 0); /* the probe never ran */
    assert_int_equal(dones, 0);                 /* the loop has not run yet */
    cs_mailbox_run(f->mb);                      /* but every `done` is in the mailbox */
    assert_int_equal(dones, N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(jobs[i].done_order, i);
        assert_true(pthread_equal(jobs[i].done_thread, loop_thread));
    }
}

/* A job that owns itself: `work` frees it, so nothing may touch it afterwards (ASan). */
typedef struct one_shot {
    cs_job job;
    char payload[40];
} one_shot;

static void run_and_free(cs_job *job)
{
    one_shot *o = (one_shot *)job;
    memset(o->payload, 'x', sizeof o->payload);
    atomic_fetch_add(&counted, 1);
    free(o);
}

static void a_job_without_done_may_free_itself(void **state)
{
    fixture *f = *state;
    enum { N = 500 };
    atomic_store(&counted, 0);
    static tjob kept[N];
    init_jobs(kept, N);
    cs_worker *w;
    assert_int_equal(cs_worker_start(&w, "one-shots", 2 * N, f->mb, NULL), 0);
    for (int i = 0; i < N; i++) {
        one_shot *o = malloc(sizeof *o);
        assert_non_null(o);
        o->job = (cs_job){run_and_free, NULL, NULL};
        assert_int_equal(cs_worker_post(w, &o->job), 0);
        assert_int_equal(cs_worker_post(w, &kept[i].job), 0); /* linked behind a freed job */
    }
    cs_worker_stop(w);
    assert_int_equal(atomic_load(&counted), N);
    cs_mailbox_run(f->mb);
    assert_int_equal(dones, N);
    for (int i = 0; i < N; i++) assert_int_equal(kept[i].done_order, i);
}

enum { POSTERS = 8, PER_POSTER = 1000 };

typedef struct poster {
    pthread_t thread;
    cs_mailbox *mb;
    tjob jobs[PER_POSTER];
} poster;

static void *post_all(void *arg)
{
    poster *p = arg;
    for (int i = 0; i < PER_POSTER; i++) cs_mailbox_post(p->mb, &p->jobs[i].job);
    return NULL;
}

static void mailbox_posts_from_many_threads(void **state)
{
    fixture *f = *state;
    static poster posters[POSTERS];
    for (int t = 0; t < POSTERS; t++) {
        posters[t].mb = f->mb;
        init_jobs(posters[t].jobs, PER_POSTER);
    }
    for (int t = 0; t < POSTERS; t++)
        assert_int_equal(pthread_create(&posters[t].thread, NULL, post_all, &posters[t]), 0);
    run_until_done(f, POSTERS * PER_POSTER);
    for (int t = 0; t < POSTERS; t++) pthread_join(posters[t].thread, NULL);

    assert_int_equal(dones, POSTERS * PER_POSTER);
    for (int t = 0; t < POSTERS; t++) {
        const tjob *jobs = posters[t].jobs;
        for (int i = 0; i < PER_POSTER; i++) {
            assert_true(pthread_equal(jobs[i].done_thread, loop_thread));
            if (i) assert_true(jobs[i].done_order > jobs[i - 1].done_order); /* per poster */
        }
    }
}

/* A `done` that posts one more job to the mailbox it runs from. */
static cs_mailbox *successor_mb;
static tjob *successor;

static void post_successor(cs_job *job)
{
    record_done(job);
    cs_mailbox_post(successor_mb, &successor->job);
}

static void mailbox_run_and_close_deliver_what_is_pending(void **state)
{
    fixture *f = *state;
    tjob jobs[6];
    init_jobs(jobs, 6);
    jobs[2].job.done = post_successor;
    successor_mb = f->mb;
    successor = &jobs[3];
    for (int i = 0; i < 3; i++) cs_mailbox_post(f->mb, &jobs[i].job);
    assert_int_equal(dones, 0);
    cs_mailbox_run(f->mb);
    assert_int_equal(dones, 4); /* what a `done` posts runs in the same call */
    cs_mailbox_run(f->mb);
    assert_int_equal(dones, 4);
    cs_job silent = {NULL, NULL, NULL};
    cs_mailbox_post(f->mb, &silent);
    cs_mailbox_run(f->mb);
    assert_int_equal(dones, 4);

    cs_mailbox *other;
    assert_int_equal(cs_mailbox_open(&other, &f->loop), 0);
    cs_mailbox_post(other, &jobs[4].job);
    cs_mailbox_post(other, &jobs[5].job);
    cs_mailbox_close(other);
    assert_int_equal(dones, 6);
    for (int i = 0; i < 6; i++) assert_int_equal(jobs[i].done_order, i);
    cs_mailbox_close(NULL);
}

static int seen_nice;

static void read_nice(cs_job *job)
{
    (void)job;
    errno = 0;
    seen_nice = getpriority(PRIO_PROCESS, (id_t)gettid());
}

/* A worker given a niceness runs its jobs that much nicer than the thread that started
 * it (at most 19); that thread keeps its own. */
static void a_worker_runs_at_its_niceness(void **state)
{
    fixture *f = *state;
    id_t self = (id_t)gettid();
    int start = getpriority(PRIO_PROCESS, self);
    for (int up = 0; up <= 2; up += 2) {
        assert_int_equal(setpriority(PRIO_PROCESS, self, start + up), 0); /* 19 at most */
        int mine = getpriority(PRIO_PROCESS, self);
        cs_worker_hooks low = {.nice = 5};
        cs_worker *w;
        assert_int_equal(cs_worker_start(&w, "t-nice", 4, f->mb, &low), 0);
        cs_job job = {read_nice, NULL, NULL};
        seen_nice = -100;
        assert_int_equal(cs_worker_post(w, &job), 0);
        cs_worker_stop(w);
        assert_int_equal(seen_nice, mine + 5 > 19 ? 19 : mine + 5);
        assert_int_equal(getpriority(PRIO_PROCESS, self), mine);
    }
    (void)setpriority(PRIO_PROCESS, self, start); /* back, where allowed (root) */
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(jobs_run_in_order_then_done_on_the_loop),
        T(optional_callbacks),
        T(batch_hooks_wrap_each_batch),
        T(the_bound_refuses_all_but_forced_jobs),
        T(stop_runs_what_is_queued_and_refuses_more),
        T(a_job_without_done_may_free_itself),
        T(mailbox_posts_from_many_threads),
        T(mailbox_run_and_close_deliver_what_is_pending),
        T(a_worker_runs_at_its_niceness),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
