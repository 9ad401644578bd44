#include "store/store_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/crypto.h"
#include "core/backoff.h"
#include "core/err.h"
#include "core/log.h"

#define WATCH_MS 100 /* the loop looks for overdue queries this often */

static const cs_store_ops *const backends[] = {&cs_store_sqlite, &cs_store_postgres};

static void set_error(char *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_error(char *out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out, CS_STORE_ERROR_MAX, fmt, ap);
    va_end(ap);
}

/* ---- records ---- */

cs_store_rec *cs_store_rec_new(enum cs_rec_kind kind)
{
    cs_store_rec *rec = calloc(1, sizeof *rec);
    if (rec) rec->kind = kind;
    return rec;
}

void cs_store_rec_free(cs_store_rec *rec)
{
    if (!rec) return;
    cs_pool_free(&rec->pool);
    free(rec);
}

/* ---- health ---- */

void cs_store__count(cs_store *s, uint64_t *field, uint64_t n)
{
    pthread_mutex_lock(&s->lock);
    *field += n;
    pthread_mutex_unlock(&s->lock);
}

/* Writes fail, or the attempt under way has run too long. Lock held. */
static bool failing(const cs_store *s, uint64_t now)
{
    return s->stats.failing_since_ms != 0 ||
           (s->attempt_since_ms && now - s->attempt_since_ms >= CS_STORE_STALL_MS);
}

/* Lock held; `out` gets the shared part. */
static void snapshot(const cs_store *s, cs_store_stats *out)
{
    *out = s->stats;
    uint64_t now = cs_mono_ms();
    if (!out->failing_since_ms && failing(s, now))
        out->failing_since_ms = cs_wall_ms() - (int64_t)(now - s->attempt_since_ms);
    if (now - s->read_failed_ms > CS_STORE_READ_WINDOW_MS) out->reads_failing_since_ms = 0;
}

/* Why a query may miss writes made before it. */
static void describe_behind(cs_store *s, char *out)
{
    cs_store_stats st;
    pthread_mutex_lock(&s->lock);
    snapshot(s, &st);
    pthread_mutex_unlock(&s->lock);
    size_t waiting = cs_worker_depth(s->worker) + cs_worker_depth(s->spiller);
    if (st.failing_since_ms) {
        char since[25];
        cs_iso8601(since, st.failing_since_ms);
        set_error(out, "writes fail since %s (%s); %zu wait, so this may not be stored yet", since,
                  st.last_error[0] ? st.last_error : "stalled", waiting);
    } else {
        set_error(out, "writes are behind (%zu wait), so this may not be stored yet", waiting);
    }
}

/* ---- the writer ---- */

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static bool closing_too_long(cs_store *s)
{
    int64_t since = atomic_load(&s->closing_since_ms);
    return since && (int64_t)cs_mono_ms() - since > CS_STORE_CLOSE_WAIT_MS;
}

static void attempt_begins(cs_store *s)
{
    pthread_mutex_lock(&s->lock);
    s->attempt_since_ms = cs_mono_ms();
    pthread_mutex_unlock(&s->lock);
}

static void attempt_ends(cs_store *s, int rc)
{
    const char *msg = rc < 0 ? s->ops->errmsg(s->db) : NULL;
    pthread_mutex_lock(&s->lock);
    if (rc < 0) {
        int64_t now = cs_wall_ms();
        if (!s->stats.failing_since_ms)
            s->stats.failing_since_ms = now - (int64_t)(cs_mono_ms() - s->attempt_since_ms);
        s->stats.failures++;
        s->stats.last_error_ms = now;
        set_error(s->stats.last_error, "%s", msg && *msg ? msg : cs_strerror(rc));
    } else {
        s->stats.failing_since_ms = 0;
    }
    s->attempt_since_ms = 0;
    pthread_cond_broadcast(&s->changed);
    pthread_mutex_unlock(&s->lock);
}

/* Runs `attempt` until it succeeds, with backoff while the database fails; while closing,
 * gives up for good once CS_STORE_CLOSE_WAIT_MS has passed. 0, or CS_ECLOSED. */
int cs_store__retry(cs_store *s, int (*attempt)(cs_store *s, void *arg), void *arg,
                    const char *what)
{
    for (unsigned n = 0;; n++) {
        if (s->gave_up) return CS_ECLOSED;
        attempt_begins(s);
        int rc = attempt(s, arg);
        attempt_ends(s, rc);
        if (rc == 0) {
            if (n) cs_info("store: writing again after %u failed attempt(s)", n);
            return 0;
        }
        if (closing_too_long(s)) {
            s->gave_up = true;
            return CS_ECLOSED;
        }
        unsigned wait = cs_backoff_ms(n + 1, CS_STORE_RETRY_MIN_MS, CS_STORE_RETRY_MAX_MS);
        if (n == 0 || n % 20 == 0) {
            char why[CS_STORE_ERROR_MAX];
            pthread_mutex_lock(&s->lock);
            memcpy(why, s->stats.last_error, sizeof why);
            pthread_mutex_unlock(&s->lock);
            cs_warn("store: %s failed (%s); retrying in %u ms", what, why, wait);
        }
        sleep_ms(wait);
    }
}

/* A record without its keys could never be written, and retrying it would hold up every
 * record behind it: it is dropped with an error instead. The caller keeps the batch
 * under CS_STORE_BATCH_MAX. */
void cs_store__batch_add(cs_store *s, cs_store_rec *rec)
{
    if (rec->seq > s->batch_seq) s->batch_seq = rec->seq;
    if (!cs_store__rec_has_keys(rec)) {
        cs_error("store: dropping a record (kind %d) without its keys", (int)rec->kind);
        cs_store__count(s, &s->stats.lost, 1);
        cs_store_rec_free(rec);
        return;
    }
    s->batch[s->nbatch++] = rec;
}

static int commit_attempt(cs_store *s, void *arg)
{
    const progress *p = arg;
    int rc = s->ops->begin(s->db);
    for (size_t i = 0; rc == 0 && i < s->nbatch; i++) rc = s->ops->write(s->db, s->batch[i]);
    if (rc == 0 && p) {
        char mark[96];
        snprintf(mark, sizeof mark, "%s %ld", p->id, p->offset);
        rc = s->ops->meta_put(s->db, REPLAY_KEY, mark);
    }
    if (rc == 0) rc = s->ops->commit(s->db);
    if (rc < 0) s->ops->rollback(s->db);
    return rc;
}

/* Every write up to `seq` is settled: readers waiting for it may go. */
void cs_store__settle(cs_store *s, uint64_t seq, size_t written)
{
    pthread_mutex_lock(&s->lock);
    if (written) {
        s->stats.written += written;
        s->stats.batches++;
    }
    if (seq > s->settled) s->settled = seq;
    pthread_cond_broadcast(&s->changed);
    pthread_mutex_unlock(&s->lock);
}

/* Writes the batch, and `p` if given, in one transaction. 0, or CS_ECLOSED if it gave up:
 * the records are then still in the batch. */
int cs_store__commit_batch(cs_store *s, const progress *p)
{
    if (s->nbatch) {
        char what[64];
        snprintf(what, sizeof what, "a batch of %zu record(s)", s->nbatch);
        if (cs_store__retry(s, commit_attempt, (void *)p, what) < 0) return CS_ECLOSED;
    }
    cs_store__settle(s, s->batch_seq, s->nbatch);
    for (size_t i = 0; i < s->nbatch; i++) cs_store_rec_free(s->batch[i]);
    s->nbatch = 0;
    return 0;
}

/* Writes the queued records batched so far. When closing gave up on the database, they
 * join the replay file, behind what is left of it, for the next start; a process that
 * does not own the spill files loses them, and says so. */
static void write_queued(cs_store *s)
{
    if (cs_store__commit_batch(s, NULL) == 0) return;
    size_t n = s->nbatch, saved = 0;
    const char *why;
    bool own = cs_spill__own(s, &why);
    appender a = {.fd = -1, .path = s->replay_path};
    for (size_t i = 0; i < n; i++) {
        if (own)
            cs_spill__append(&a, s->batch[i]);
        else
            cs_store_rec_free(s->batch[i]);
    }
    s->nbatch = 0;
    if (own)
        saved = cs_spill__close(s, &a); /* counts what it lost */
    else
        cs_store__count(s, &s->stats.lost, n);
    if (own)
        cs_error("store: the database still fails at shutdown; %zu record(s) kept in %s for the "
                 "next start, %zu lost",
                 saved, s->replay_path, n - saved);
    else
        cs_error("store: the database still fails at shutdown; %zu record(s) lost (%s)", n, why);
}

static void rec_work(cs_job *job)
{
    cs_store_rec *rec = (cs_store_rec *)job;
    cs_store *s = rec->store;
    if (s->nbatch == CS_STORE_BATCH_MAX) write_queued(s);
    cs_store__batch_add(s, rec);
}

/* ---- queries in order with the writes ---- */

static int in_order_attempt(cs_store *s, void *arg)
{
    cs_store_query *q = arg;
    cs_pool_free(&q->pool); /* what a failed attempt left */
    q->ncalls = q->nstreams = q->nevents = q->nsegments = q->nusers = q->nsessions = 0;
    q->ntokens = 0;
    q->more = false;
    q->status = s->ops->query(s->db, q);
    return q->status == CS_ENOTFOUND ? 0 : q->status;
}

static void in_order_done(cs_job *job)
{
    cs_store_query *q = (cs_store_query *)job;
    q->cb(q, q->cb_data);
}

static void answer_in_order(cs_store *s, cs_store_query *q)
{
    q->job = (cs_job){.done = in_order_done};
    cs_store__count(s, &s->stats.queries, 1);
    cs_mailbox_post(s->mb, &q->job);
}

/* Runs the queries whose writes are settled, in the order they came. */
static void run_in_order(cs_store *s)
{
    while (s->in_order) {
        cs_store_query *q = s->in_order;
        pthread_mutex_lock(&s->lock);
        bool ready = s->settled >= q->after_seq;
        pthread_mutex_unlock(&s->lock);
        if (!ready && !s->gave_up && !s->closed) return;
        if (!(s->in_order = q->next)) s->in_order_tail = &s->in_order;
        q->next = NULL;
        q->behind = !ready;
        if (!ready) {
            q->status = CS_ECLOSED;
            pthread_mutex_lock(&s->lock);
            set_error(q->error, "not committed: %s",
                      s->stats.last_error[0] ? s->stats.last_error : "the store closed first");
            pthread_mutex_unlock(&s->lock);
        } else if (cs_store__retry(s, in_order_attempt, q, "a query") < 0) {
            q->status = CS_ECLOSED;
            set_error(q->error, "the store closed first");
        }
        answer_in_order(s, q);
    }
}

static void in_order_work(cs_job *job)
{
    cs_store_query *q = (cs_store_query *)job;
    cs_store *s = q->store;
    q->next = NULL;
    *s->in_order_tail = q;
    s->in_order_tail = &q->next;
}

static void batch_end(void *data)
{
    cs_store *s = data;
    write_queued(s);
    cs_spill__take(s);
    run_in_order(s);
}

/* ---- the reader ---- */

/* Waits until the writes up to `seq` are settled, but not past `until` nor while writes
 * fail. Whether they are. */
static bool wait_settled(cs_store *s, uint64_t seq, uint64_t until)
{
    pthread_mutex_lock(&s->lock);
    for (;;) {
        uint64_t now = cs_mono_ms();
        if (s->settled >= seq || failing(s, now) || now >= until) break;
        uint64_t wake = until;
        if (s->attempt_since_ms && s->attempt_since_ms + CS_STORE_STALL_MS < wake)
            wake = s->attempt_since_ms + CS_STORE_STALL_MS;
        struct timespec ts = {(time_t)(wake / 1000), (long)(wake % 1000) * 1000000L};
        pthread_cond_timedwait(&s->changed, &s->lock, &ts);
    }
    bool ok = s->settled >= seq;
    pthread_mutex_unlock(&s->lock);
    return ok;
}

static void read_work(cs_job *job)
{
    cs_store_query *q = (cs_store_query *)job;
    cs_store *s = q->store;
    uint64_t now = cs_mono_ms();
    if (now >= q->deadline_ms) {
        q->status = -ETIMEDOUT;
        set_error(q->error, "no answer within %d ms: too many queries before it", CS_STORE_READ_MS);
        return;
    }
    uint64_t until = now + CS_STORE_READ_WAIT_MS;
    q->behind = !wait_settled(s, q->after_seq, until < q->deadline_ms ? until : q->deadline_ms);
    int rc = 0;
    if (!s->rdb) {
        cs_buf err = CS_BUF_INIT(CS_STORE_ERROR_MAX);
        rc = s->ops->open_read(&s->rdb, s->url, q->deadline_ms, &err);
        if (rc < 0) set_error(q->error, "%s", err.data ? err.data : cs_strerror(rc));
        cs_buf_free(&err);
    }
    if (rc == 0) {
        rc = s->ops->query(s->rdb, q);
        const char *msg = s->ops->errmsg(s->rdb);
        if (rc == -ETIMEDOUT)
            set_error(q->error, "no answer within %d ms", CS_STORE_READ_MS);
        else if (rc < 0 && rc != CS_ENOTFOUND)
            set_error(q->error, "reading failed: %s", *msg ? msg : cs_strerror(rc));
    }
    q->status = rc;
    if (q->behind && !q->error[0]) describe_behind(s, q->error);
}

typedef struct burst_lines {
    char ended[160], began[CS_STORE_ERROR_MAX + 128];
} burst_lines;

/* Queries failing in a row are a burst: its first failure is logged, and how many failed
 * once one is answered again (or once CS_STORE_READ_WINDOW_MS passed without one: the
 * next failure begins another). Lock held; the lines to log go to `out`. */
static void read_burst(cs_store *s, const cs_store_query *q, bool failed, burst_lines *out)
{
    uint64_t now = cs_mono_ms();
    uint64_t n = s->read_failures;
    if (n && (!failed || now - s->read_failed_ms > CS_STORE_READ_WINDOW_MS)) {
        char since[25];
        cs_iso8601(since, s->stats.reads_failing_since_ms);
        snprintf(out->ended, sizeof out->ended, "store: %llu quer%s failed since %s%s",
                 (unsigned long long)n, n == 1 ? "y" : "ies", since,
                 failed ? "" : "; answered again");
        s->read_failures = 0;
        s->stats.reads_failing_since_ms = 0;
    }
    if (!failed) {
        s->stats.last_read_ok_ms = cs_wall_ms();
        return;
    }
    if (s->read_failures++ == 0) {
        s->stats.reads_failing_since_ms = cs_wall_ms();
        snprintf(out->began, sizeof out->began,
                 "store: a query failed (%s); the next failures are counted until one is "
                 "answered",
                 q->error);
    }
    s->read_failed_ms = now;
    s->stats.last_read_error_ms = cs_wall_ms();
    set_error(s->stats.last_read_error, "%s", q->error);
}

static void count_answer(cs_store *s, const cs_store_query *q)
{
    int status = q->status;
    burst_lines lines = {.ended = ""};
    pthread_mutex_lock(&s->lock);
    read_burst(s, q, status < 0 && status != CS_ENOTFOUND, &lines);
    s->stats.queries++;
    if (status == -ETIMEDOUT)
        s->stats.reads_timed_out++;
    else if (status == CS_EFULL)
        s->stats.reads_refused++;
    else if (status < 0 && status != CS_ENOTFOUND)
        s->stats.reads_failed++;
    pthread_mutex_unlock(&s->lock);
    if (lines.ended[0]) cs_warn("%s", lines.ended);
    if (lines.began[0]) cs_error("%s", lines.began);
}

static void pending_del(cs_store *s, cs_store_query *q)
{
    if (q->prev)
        q->prev->next = q->next;
    else
        s->pending = q->next;
    if (q->next) q->next->prev = q->prev;
    q->prev = q->next = NULL;
    s->npending--;
    if (!s->pending && s->watch) uv_timer_stop(s->watch);
}

static void read_done(cs_job *job)
{
    cs_store_query *q = (cs_store_query *)job;
    cs_store *s = q->store; /* NULL once the store closed */
    if (s) pending_del(s, q);
    if (q->orphaned) {
        cs_store_query_free(q);
        return;
    }
    if (s) count_answer(s, q);
    q->cb(q, q->cb_data);
}

/* A reader stuck past a query's budget (a lock SQLite waits out on its own, a hung disk)
 * does not hold the caller: it gets a stand-in with the same parameters, and the query
 * is freed whenever the reader lets go of it. */
static void on_watch(uv_timer_t *t)
{
    cs_store *s = t->data;
    for (;;) {
        uint64_t now = cs_mono_ms();
        cs_store_query *q = s->pending;
        while (q && (q->orphaned || now < q->deadline_ms + CS_STORE_READ_GRACE_MS)) q = q->next;
        if (!q) return;
        cs_store_query *stand = cs_store_query_new(q->kind, q->cb, q->cb_data);
        if (!stand) return; /* next tick */
        memcpy(stand->sid, q->sid, sizeof q->sid);
        memcpy(stand->before_sid, q->before_sid, sizeof q->before_sid);
        memcpy(stand->key, q->key, sizeof q->key);
        stand->limit = q->limit;
        stand->before_at = q->before_at;
        stand->after_id = q->after_id;
        stand->filter = q->filter;
        stand->status = -ETIMEDOUT;
        set_error(stand->error, "no answer within %d ms: the database does not respond",
                  CS_STORE_READ_MS);
        q->orphaned = true;
        count_answer(s, stand);
        stand->cb(stand, stand->cb_data);
    }
}

static void pending_add(cs_store *s, cs_store_query *q)
{
    q->prev = NULL;
    q->next = s->pending;
    if (s->pending) s->pending->prev = q;
    s->pending = q;
    s->npending++;
    if (!s->watch && (s->watch = malloc(sizeof *s->watch))) {
        uv_timer_init(cs_mailbox_loop(s->mb), s->watch);
        s->watch->data = s;
    }
    if (s->watch && !uv_is_active((uv_handle_t *)s->watch))
        uv_timer_start(s->watch, on_watch, WATCH_MS, WATCH_MS);
}

/* ---- opening and closing ---- */

typedef struct open_job {
    cs_job job;
    cs_store *s;
} open_job;

static void open_run(cs_job *job)
{
    cs_store *s = ((open_job *)job)->s;
    int rc = s->ops->open(&s->db, s->url, &s->open_err);
    /* One process at a time writes and replays the spill files: the gateway (`callstream
     * user …` keeps none; a second gateway on the same DATA_DIR spills nothing). */
    const char *why;
    bool owner = cs_spill__own(s, &why);
    if (rc == 0 && !owner && s->lock_path[0])
        cs_warn("store: no spill files in %s for now (%s): this process takes them when it "
                "needs them and can",
                s->lock_path, why);
    /* What an earlier run left goes in first; until it has, writes follow it into the
     * spill file, so they keep their order behind it. */
    bool backlog =
        rc == 0 && owner && (access(s->replay_path, F_OK) == 0 || access(s->spill_path, F_OK) == 0);
    /* Nobody writes before `opened`. The backlog counts as write 1, so queries wait for
     * it (or say they are behind) as for any write made before them. */
    s->spill_pending = backlog;
    s->posted = s->spilled_seq = backlog;
    pthread_mutex_lock(&s->lock);
    s->open_rc = rc;
    s->opened = true;
    pthread_cond_broadcast(&s->changed);
    pthread_mutex_unlock(&s->lock);
    if (backlog && cs_spill__replay(s, s->replay_path)) cs_spill__take(s);
}

static void close_run(cs_job *job)
{
    cs_store *s = (cs_store *)((char *)job - offsetof(cs_store, close_job));
    write_queued(s);
    cs_spill__take(s);
    s->closed = true;
    run_in_order(s);
    s->ops->close(s->db);
    s->db = NULL;
}

static const cs_store_ops *backend_for(const char *url, const char **rest)
{
    for (size_t i = 0; i < sizeof backends / sizeof *backends; i++) {
        const char *schemes[] = {backends[i]->scheme, backends[i]->alias};
        for (size_t j = 0; j < 2 && schemes[j]; j++) {
            size_t n = strlen(schemes[j]);
            if (strncmp(url, schemes[j], n) != 0) continue;
            *rest = strstr(schemes[j], "://") ? url : url + n;
            return backends[i];
        }
    }
    /* A bare path is a SQLite file. */
    if (!strstr(url, "://")) {
        *rest = url;
        return &cs_store_sqlite;
    }
    return NULL;
}

static void store_free(cs_store *s)
{
    if (s->lock_fd >= 0) close(s->lock_fd);
    cs_buf_free(&s->open_err);
    pthread_mutex_destroy(&s->route_lock);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->changed);
    free(s->line);
    free(s);
}

int cs_store_open(cs_store **out, const char *url, cs_mailbox *mb, size_t queue_max,
                  const char *spill_dir, cs_buf *err)
{
    const char *rest;
    const cs_store_ops *ops = backend_for(url, &rest);
    if (!ops) {
        /* its scheme only: the rest may hold a password */
        cs_buf_printf(err, "DATABASE_URL: no store speaks '%.*s'", (int)strcspn(url, ":/") + 1,
                      url);
        return CS_ECONFIG;
    }
    cs_store *s = calloc(1, sizeof *s);
    char *line = malloc(CS_STORE_SPILL_LINE_MAX + 1);
    if (!s || !line) {
        free(s);
        free(line);
        return -ENOMEM;
    }
    s->ops = ops;
    s->mb = mb;
    s->line = line;
    s->in_order_tail = &s->in_order;
    snprintf(s->url, sizeof s->url, "%s", rest);
    uint8_t run[CS_STORE_RUN_BYTES];
    cs_random(run, sizeof run);
    cs_hex(s->run, run, sizeof run);
    if (spill_dir) {
        snprintf(s->spill_path, sizeof s->spill_path, "%s/%s", spill_dir, SPILL_NAME);
        snprintf(s->replay_path, sizeof s->replay_path, "%s%s", s->spill_path, REPLAY_SUFFIX);
        snprintf(s->lock_path, sizeof s->lock_path, "%s/%s", spill_dir, SPILL_LOCK);
    }
    s->lock_fd = -1;
    s->spill = (appender){.fd = -1, .path = s->spill_path};
    pthread_mutex_init(&s->route_lock, NULL);
    pthread_mutex_init(&s->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* wait_settled's deadlines */
    pthread_cond_init(&s->changed, &ca);
    pthread_condattr_destroy(&ca);
    cs_buf_init(&s->open_err, 4096);

    cs_worker_hooks writer = {.batch_end = batch_end, .data = s, .linger_ms = CS_STORE_LINGER_MS};
    cs_worker_hooks spiller = {.batch_end = cs_spill__batch_end, .data = s};
    size_t spill_max = queue_max > CS_STORE_SPILL_QUEUE_MIN ? queue_max : CS_STORE_SPILL_QUEUE_MIN;
    int rc = cs_worker_start(&s->spiller, "store-spill", spill_max, mb, &spiller);
    if (rc == 0 &&
        (rc = cs_worker_start(&s->reader, "store-read", CS_STORE_READS_MAX, mb, NULL)) < 0)
        cs_worker_stop(s->spiller);
    if (rc == 0 && (rc = cs_worker_start(&s->worker, "store", queue_max, mb, &writer)) < 0) {
        cs_worker_stop(s->reader);
        cs_worker_stop(s->spiller);
    }
    if (rc < 0) {
        store_free(s);
        return rc;
    }
    open_job oj = {.job = {.work = open_run}, .s = s};
    cs_worker_post_force(s->worker, &oj.job);
    pthread_mutex_lock(&s->lock);
    while (!s->opened) pthread_cond_wait(&s->changed, &s->lock);
    pthread_mutex_unlock(&s->lock);
    rc = s->open_rc;
    if (rc < 0) {
        cs_buf_printf(err, "%s", s->open_err.data ? s->open_err.data : "cannot open the store");
        cs_worker_stop(s->worker);
        cs_worker_stop(s->reader);
        cs_worker_stop(s->spiller);
        store_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

static void watch_closed(uv_handle_t *h)
{
    free(h);
}

void cs_store_close(cs_store *s)
{
    if (!s) return;
    atomic_store(&s->closing_since_ms, (int_fast64_t)cs_mono_ms());
    /* The reader first: what it holds is answered from the mailbox, without the store. */
    cs_worker_stop(s->reader);
    if (s->rdb) s->ops->close(s->rdb);
    for (cs_store_query *q = s->pending, *next; q; q = next) {
        next = q->next;
        q->store = NULL;
        q->prev = q->next = NULL;
    }
    if (s->watch) uv_close((uv_handle_t *)s->watch, watch_closed);
    /* Then the writer, which takes the spill file from the spill writer on its way out. */
    s->close_job = (cs_job){.work = close_run};
    cs_worker_post_force(s->worker, &s->close_job);
    cs_worker_stop(s->worker);
    cs_worker_stop(s->spiller);
    cs_spill__burst_end(&s->spill, "failed until the store closed");
    store_free(s);
}

void cs_store_stats_peek(cs_store *s, cs_store_stats *out)
{
    pthread_mutex_lock(&s->lock);
    snapshot(s, out);
    pthread_mutex_unlock(&s->lock);
    out->queued = cs_worker_depth(s->worker);
    out->spill_queued = cs_worker_depth(s->spiller);
    out->reads_pending = 0;
}

void cs_store_stats_get(cs_store *s, cs_store_stats *out)
{
    cs_store_stats_peek(s, out);
    out->reads_pending = s->npending;
}

const char *cs_store_backend(const cs_store *s)
{
    return s->ops->name;
}

const char *cs_store_run(const cs_store *s)
{
    return s->run;
}

void cs_store_join_run(cs_store *s, const char *run)
{
    snprintf(s->run, sizeof s->run, "%s", run);
}

void cs_store_write(cs_store *s, cs_store_rec *rec)
{
    rec->store = s;
    if (rec->kind == CS_REC_CALL && !rec->call.run)
        rec->call.run = cs_pool_strdup(&rec->pool, s->run);
    pthread_mutex_lock(&s->route_lock);
    rec->seq = ++s->posted;
    rec->job = (cs_job){.work = rec_work};
    /* Once a record spilled, later ones follow it until the writer takes the file, so
     * records reach the database in the order they were written. */
    bool queued = !s->spill_pending && cs_worker_post(s->worker, &rec->job) == 0, spilled = false;
    if (!queued) {
        s->spill_pending = true;
        s->spilled_seq = rec->seq;
        rec->job = (cs_job){.work = cs_spill__work};
        spilled = cs_worker_post(s->spiller, &rec->job) == 0;
    }
    /* Both queues full: the database and the disk cannot keep up. The first record lost is
     * logged, and how many were when records are taken again. */
    uint64_t dropped = s->dropped;
    s->dropped = queued || spilled ? 0 : dropped + 1;
    pthread_mutex_unlock(&s->route_lock);
    if (queued || spilled) {
        if (dropped)
            cs_warn("store: records are taken again; %llu lost while both queues were full",
                    (unsigned long long)dropped);
        return;
    }
    cs_store__count(s, &s->stats.lost, 1);
    if (!dropped)
        cs_error("store: the queue and the spill queue are full (STORE_QUEUE_MAX each): records "
                 "are lost until the spill file catches up");
    cs_store_rec_free(rec);
}

/* ---- queries ---- */

cs_store_query *cs_store_query_new(enum cs_query_kind kind, cs_store_query_fn cb, void *data)
{
    cs_store_query *q = calloc(1, sizeof *q);
    if (!q) return NULL;
    q->kind = kind;
    q->cb = cb;
    q->cb_data = data;
    q->limit = 50;
    q->pool.max = CS_STORE_RESULT_MAX;
    return q;
}

static uint64_t last_posted(cs_store *s)
{
    pthread_mutex_lock(&s->route_lock);
    uint64_t seq = s->posted;
    pthread_mutex_unlock(&s->route_lock);
    return seq;
}

void cs_store_query_run(cs_store *s, cs_store_query *q)
{
    q->store = s;
    q->after_seq = last_posted(s);
    q->deadline_ms = cs_mono_ms() + CS_STORE_READ_MS;
    q->job = (cs_job){.work = read_work, .done = read_done};
    pending_add(s, q);
    if (cs_worker_post(s->reader, &q->job) < 0) {
        /* Answered from the mailbox: never from inside this call. */
        q->status = CS_EFULL;
        set_error(q->error, "%d queries wait for the store already", CS_STORE_READS_MAX);
        q->job.work = NULL;
        cs_mailbox_post(s->mb, &q->job);
    }
}

void cs_store_query_run_in_order(cs_store *s, cs_store_query *q)
{
    q->store = s;
    q->after_seq = last_posted(s);
    q->deadline_ms = 0;
    q->job = (cs_job){.work = in_order_work};
    cs_worker_post_force(s->worker, &q->job);
}

void cs_store_query_free(cs_store_query *q)
{
    if (!q) return;
    cs_pool_free(&q->pool);
    free(q);
}

static bool word_byte(char c)
{
    unsigned char u = (unsigned char)c;
    return (u >= '0' && u <= '9') || (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || u >= 0x80;
}

int cs_call_filter_text(cs_call_filter *f, const char *q)
{
    f->text[0] = '\0';
    size_t len = strlen(q), o = 0;
    if (len > CS_CALLS_TEXT_MAX) return CS_ELIMIT;
    int words = 0;
    for (size_t i = 0; i < len;) {
        if (!word_byte(q[i])) {
            i++;
            continue;
        }
        if (words == CS_CALLS_WORDS_MAX) {
            f->text[0] = '\0';
            return CS_ELIMIT;
        }
        if (words++) f->text[o++] = ' '; /* stands for a separator: o stays <= i */
        while (i < len && word_byte(q[i])) f->text[o++] = q[i++];
        if (i < len && q[i] == '*' && (i + 1 == len || !word_byte(q[i + 1]))) f->text[o++] = q[i++];
    }
    f->text[o] = '\0';
    return words;
}

char *cs_store_strdup(cs_store_query *q, const char *str)
{
    return cs_pool_strdup(&q->pool, str);
}

void *cs_store_alloc(cs_store_query *q, size_t n)
{
    return cs_pool_alloc(&q->pool, n);
}
