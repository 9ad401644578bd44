#include "store/store.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/crypto.h"
#include "core/err.h"
#include "core/log.h"

#define SPILL_NAME     "store-spill.jsonl"
#define SPILL_LINE_MAX (1u << 20)

static const cs_store_ops *const backends[] = {&cs_store_sqlite};

struct cs_store {
    const cs_store_ops *ops;
    void *db;
    cs_worker *worker;
    cs_mailbox *mb;
    char url[4096];
    /* the current batch (store thread) */
    cs_store_rec **batch;
    size_t nbatch, batch_cap;
    /* spill file, shared by the loop (append) and the store thread (replay) */
    pthread_mutex_t spill_lock;
    char spill_path[4096];
    atomic_bool spill_pending;
    atomic_int_fast64_t closing_since_ms; /* 0 until cs_store_close */
    /* counters: loop and store thread */
    pthread_mutex_t stats_lock;
    cs_store_stats stats;
    /* start-up handshake */
    pthread_mutex_t open_lock;
    pthread_cond_t open_cond;
    bool opened;
    int open_rc;
    cs_buf open_err;
};

/* ---- records ---- */

cs_store_rec *cs_store_rec_new(enum cs_rec_kind kind)
{
    cs_store_rec *rec = calloc(1, sizeof *rec);
    if (rec) rec->kind = kind;
    return rec;
}

static void rec_free(cs_store_rec *rec)
{
    cs_pool_free(&rec->pool);
    free(rec);
}

/* ---- the store thread ---- */

static void count(cs_store *s, uint64_t *field, uint64_t n)
{
    pthread_mutex_lock(&s->stats_lock);
    *field += n;
    pthread_mutex_unlock(&s->stats_lock);
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Exponential backoff with ±25 % jitter. */
static unsigned backoff_ms(unsigned attempt)
{
    unsigned base = 50u << (attempt < 7 ? attempt : 7);
    if (base > CS_STORE_RETRY_MAX_MS) base = CS_STORE_RETRY_MAX_MS;
    uint32_t r;
    cs_random(&r, sizeof r);
    return base * 3 / 4 + r % (base / 2 + 1);
}

static size_t append_spill(cs_store *s, cs_store_rec **recs, size_t n);

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool closing_too_long(cs_store *s)
{
    int64_t since = atomic_load(&s->closing_since_ms);
    return since && mono_ms() - since > CS_STORE_CLOSE_WAIT_MS;
}

/* Writes the batch in one transaction, retrying until the database takes it (or, while
 * closing, until CS_STORE_CLOSE_WAIT_MS has passed). */
static void commit_batch(cs_store *s)
{
    if (s->nbatch == 0) return;
    for (unsigned attempt = 0;; attempt++) {
        int rc = s->ops->begin(s->db);
        for (size_t i = 0; rc == 0 && i < s->nbatch; i++) rc = s->ops->write(s->db, s->batch[i]);
        if (rc == 0) rc = s->ops->commit(s->db);
        if (rc == 0) {
            if (attempt) cs_info("store: writing again after %u failed attempt(s)", attempt);
            break;
        }
        s->ops->rollback(s->db);
        count(s, &s->stats.failures, 1);
        if (closing_too_long(s)) {
            /* Shutdown must end: what the database will not take waits in the spill file
             * for the next start. */
            pthread_mutex_lock(&s->spill_lock);
            size_t saved = append_spill(s, s->batch, s->nbatch);
            pthread_mutex_unlock(&s->spill_lock);
            cs_error("store: the database still fails at shutdown (%s); %zu record(s) kept in "
                     "%s for the next start",
                     cs_strerror(rc), saved, s->spill_path);
            s->nbatch = 0;
            return;
        }
        unsigned wait = backoff_ms(attempt);
        if (attempt == 0 || attempt % 20 == 0)
            cs_warn("store: a batch of %zu record(s) failed (%s); retrying in %u ms", s->nbatch,
                    cs_strerror(rc), wait);
        sleep_ms(wait);
    }
    pthread_mutex_lock(&s->stats_lock);
    s->stats.written += s->nbatch;
    s->stats.batches++;
    pthread_mutex_unlock(&s->stats_lock);
    for (size_t i = 0; i < s->nbatch; i++) rec_free(s->batch[i]);
    s->nbatch = 0;
}

static bool rec_has_keys(const cs_store_rec *rec);

/* A record without its keys could never be written, and retrying it would hold up every
 * record behind it: it is dropped with an error instead. */
static bool batch_add(cs_store *s, cs_store_rec *rec)
{
    if (!rec_has_keys(rec)) {
        cs_error("store: dropping a record (kind %d) without its keys", (int)rec->kind);
        rec_free(rec);
        return false;
    }
    if (s->nbatch == s->batch_cap) {
        cs_store_rec **b = realloc(s->batch, s->batch_cap * 2 * sizeof *b);
        if (b) {
            s->batch = b;
            s->batch_cap *= 2;
        } else {
            commit_batch(s); /* no room to grow: write what we have first */
        }
    }
    s->batch[s->nbatch++] = rec;
    return true;
}

static void rec_work(cs_job *job)
{
    cs_store_rec *rec = (cs_store_rec *)job;
    batch_add(rec->store, rec);
}

static void query_work(cs_job *job)
{
    cs_store_query *q = (cs_store_query *)job;
    cs_store *s = q->store;
    /* Reads see every write queued before them. */
    commit_batch(s);
    q->status = s->ops->query(s->db, q);
    count(s, &s->stats.queries, 1);
}

static void query_done(cs_job *job)
{
    cs_store_query *q = (cs_store_query *)job;
    q->cb(q, q->cb_data);
}

/* ---- spill ---- */

/* How each kind of record is laid out, for the spill file and the key check. */
typedef struct field {
    const char *name;
    size_t offset;
    bool is_int; /* int64_t, else const char * */
    bool key;    /* required: a record without it cannot be written */
} field;

#define S(row, member, k)                                                                          \
    {                                                                                              \
#member, offsetof(cs_store_rec, row.member), false, k                                      \
    }
#define I(row, member)                                                                             \
    {                                                                                              \
#member, offsetof(cs_store_rec, row.member), true, false                                   \
    }

static const field call_fields[] = {
    S(call, sid, true),     S(call, account_sid, false), S(call, from, false),
    S(call, to, false),     S(call, direction, false),   S(call, status, false),
    S(call, params, false), S(call, summary, false),     S(call, recording, false),
    I(call, created_at),    I(call, started_at),         I(call, ended_at),
    I(call, updated_at),    I(call, recording_ms),
};
static const field stream_fields[] = {
    S(stream, sid, true),   S(stream, call_sid, true),    S(stream, tracks, false),
    S(stream, mode, false), S(stream, end_reason, false), S(stream, stats, false),
    I(stream, started_at),  I(stream, ended_at),
};
static const field event_fields[] = {
    S(event, call_sid, true),
    S(event, stream_sid, false),
    S(event, type, true),
    S(event, detail, false),
    I(event, at),
};
static const field segment_fields[] = {
    S(segment, call_sid, true),
    S(segment, stream_sid, true),
    S(segment, speaker, true),
    S(segment, text, true),
    I(segment, seq),
    I(segment, start_ms),
    I(segment, end_ms),
    I(segment, confidence),
    I(segment, at),
};
static const field user_fields[] = {
    S(user, name, true),
    S(user, password_hash, true),
    I(user, created_at),
};
static const field user_key[] = {S(user, name, true)};
static const field session_fields[] = {
    S(session, token_hash, true), S(session, user, true),  I(session, created_at),
    I(session, expires_at),       I(session, password_at),
};
static const field session_key[] = {S(session, token_hash, true)};
static const field token_fields[] = {
    S(token, name, true),
    S(token, token_hash, true),
    I(token, created_at),
};
static const field token_key[] = {S(token, name, true)};

#undef S
#undef I

static const struct layout {
    const field *fields;
    size_t n;
} layouts[] = {
#define L(kind, f) [kind] = {f, sizeof f / sizeof *f}
    L(CS_REC_CALL, call_fields),       L(CS_REC_STREAM, stream_fields),
    L(CS_REC_EVENT, event_fields),     L(CS_REC_SEGMENT, segment_fields),
    L(CS_REC_USER, user_fields),       L(CS_REC_USER_DEL, user_key),
    L(CS_REC_SESSION, session_fields), L(CS_REC_SESSION_DEL, session_key),
    L(CS_REC_TOKEN, token_fields),     L(CS_REC_TOKEN_DEL, token_key),
#undef L
};

static const struct layout *layout_of(enum cs_rec_kind kind)
{
    return (unsigned)kind < sizeof layouts / sizeof *layouts && layouts[kind].fields
               ? &layouts[kind]
               : NULL;
}

static const char **str_at(const cs_store_rec *rec, const field *f)
{
    return (const char **)((char *)rec + f->offset);
}

static int64_t *int_at(const cs_store_rec *rec, const field *f)
{
    return (int64_t *)((char *)rec + f->offset);
}

static bool rec_has_keys(const cs_store_rec *rec)
{
    const struct layout *l = layout_of(rec->kind);
    if (!l) return false;
    for (size_t i = 0; i < l->n; i++)
        if (l->fields[i].key && !*str_at(rec, &l->fields[i])) return false;
    return true;
}

static char *rec_to_json(const cs_store_rec *rec)
{
    const struct layout *l = layout_of(rec->kind);
    if (!l) return NULL;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "kind", rec->kind);
    for (size_t i = 0; i < l->n; i++) {
        const field *f = &l->fields[i];
        if (f->is_int)
            cJSON_AddNumberToObject(o, f->name, (double)*int_at(rec, f));
        else if (*str_at(rec, f))
            cJSON_AddStringToObject(o, f->name, *str_at(rec, f));
    }
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

static cs_store_rec *rec_from_json(const char *line)
{
    cJSON *o = cJSON_Parse(line);
    cJSON *kind = cJSON_GetObjectItemCaseSensitive(o, "kind");
    const struct layout *l =
        cJSON_IsNumber(kind) ? layout_of((enum cs_rec_kind)kind->valueint) : NULL;
    cs_store_rec *rec = l ? cs_store_rec_new((enum cs_rec_kind)kind->valueint) : NULL;
    for (size_t i = 0; rec && i < l->n; i++) {
        const field *f = &l->fields[i];
        cJSON *v = cJSON_GetObjectItemCaseSensitive(o, f->name);
        if (f->is_int)
            *int_at(rec, f) = cJSON_IsNumber(v) ? (int64_t)v->valuedouble : 0;
        else
            *str_at(rec, f) = cJSON_IsString(v) ? cs_pool_strdup(&rec->pool, v->valuestring) : NULL;
    }
    cJSON_Delete(o);
    return rec;
}

/* Appends records to the spill file (page cache, no sync) and frees them; spill_lock
 * held. Returns how many were saved; the rest are lost, and said so. */
static size_t append_spill(cs_store *s, cs_store_rec **recs, size_t n)
{
    FILE *f = fopen(s->spill_path, "a");
    size_t saved = 0;
    for (size_t i = 0; i < n; i++) {
        char *line = f ? rec_to_json(recs[i]) : NULL;
        if (line && fprintf(f, "%s\n", line) > 0) saved++;
        free(line);
        rec_free(recs[i]);
    }
    if (f && fclose(f) != 0) saved = 0;
    if (saved < n)
        cs_error("store: cannot spill to %s: %zu record(s) lost", s->spill_path, n - saved);
    count(s, &s->stats.spilled, saved);
    return saved;
}

/* Loop thread, queue full, spill_lock held. */
static void spill(cs_store *s, cs_store_rec *rec)
{
    if (append_spill(s, &rec, 1)) atomic_store(&s->spill_pending, true);
}

/* Store thread: writes the records of a spill file, then removes it. */
static void replay_file(cs_store *s, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return;
    char *line = malloc(SPILL_LINE_MAX);
    uint64_t n = 0;
    while (line && fgets(line, SPILL_LINE_MAX, f)) {
        cs_store_rec *rec = rec_from_json(line);
        if (!rec) {
            cs_warn("store: skipping an unreadable line in %s", path);
            continue;
        }
        if (batch_add(s, rec)) n++;
    }
    free(line);
    fclose(f);
    commit_batch(s);
    unlink(path);
    if (n) {
        count(s, &s->stats.replayed, n);
        cs_info("store: %llu spilled record(s) written", (unsigned long long)n);
    }
}

/* Store thread, queue drained: takes the spill file away from the loop (a rename, so
 * the loop never waits on the database) and writes it. */
static void replay_spill(cs_store *s)
{
    char taken[sizeof s->spill_path + 8];
    snprintf(taken, sizeof taken, "%s.replay", s->spill_path);
    pthread_mutex_lock(&s->spill_lock);
    atomic_store(&s->spill_pending, false);
    int rc = rename(s->spill_path, taken);
    pthread_mutex_unlock(&s->spill_lock);
    if (rc == 0) replay_file(s, taken);
}

static void batch_end(void *data)
{
    cs_store *s = data;
    commit_batch(s);
    if (atomic_load(&s->spill_pending) && cs_worker_depth(s->worker) == 0) replay_spill(s);
}

/* ---- opening ---- */

typedef struct open_job {
    cs_job job;
    cs_store *s;
} open_job;

static void open_run(cs_job *job)
{
    cs_store *s = ((open_job *)job)->s;
    int rc = s->ops->open(&s->db, s->url, &s->open_err);
    pthread_mutex_lock(&s->open_lock);
    s->open_rc = rc;
    s->opened = true;
    pthread_cond_signal(&s->open_cond);
    pthread_mutex_unlock(&s->open_lock);
    /* Whatever an earlier run spilled and could not write goes in first. */
    if (rc == 0) {
        char taken[sizeof s->spill_path + 8];
        snprintf(taken, sizeof taken, "%s.replay", s->spill_path);
        replay_file(s, taken);
        replay_spill(s);
    }
}

typedef struct close_job {
    cs_job job;
    cs_store *s;
} close_job;

static void close_run(cs_job *job)
{
    cs_store *s = ((close_job *)job)->s;
    commit_batch(s);
    if (atomic_load(&s->spill_pending)) replay_spill(s);
    s->ops->close(s->db);
    s->db = NULL;
}

static const cs_store_ops *backend_for(const char *url, const char **rest)
{
    for (size_t i = 0; i < sizeof backends / sizeof *backends; i++) {
        size_t n = strlen(backends[i]->scheme);
        if (strncmp(url, backends[i]->scheme, n) == 0) {
            *rest = url + n;
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

int cs_store_open(cs_store **out, const char *url, cs_mailbox *mb, size_t queue_max,
                  const char *spill_dir, cs_buf *err)
{
    const char *rest;
    const cs_store_ops *ops = backend_for(url, &rest);
    if (!ops) {
        cs_buf_printf(err, "DATABASE_URL: no store speaks '%s'", url);
        return CS_ECONFIG;
    }
    cs_store *s = calloc(1, sizeof *s);
    if (!s) return -ENOMEM;
    s->ops = ops;
    s->mb = mb;
    snprintf(s->url, sizeof s->url, "%s", rest);
    snprintf(s->spill_path, sizeof s->spill_path, "%s/%s", spill_dir, SPILL_NAME);
    pthread_mutex_init(&s->spill_lock, NULL);
    pthread_mutex_init(&s->stats_lock, NULL);
    pthread_mutex_init(&s->open_lock, NULL);
    pthread_cond_init(&s->open_cond, NULL);
    cs_buf_init(&s->open_err, 4096);

    s->batch_cap = 256;
    s->batch = malloc(s->batch_cap * sizeof *s->batch);
    if (!s->batch) {
        free(s);
        return -ENOMEM;
    }
    cs_worker_hooks hooks = {.batch_end = batch_end, .data = s, .linger_ms = CS_STORE_LINGER_MS};
    int rc = cs_worker_start(&s->worker, "store", queue_max, mb, &hooks);
    if (rc < 0) {
        free(s->batch);
        free(s);
        return rc;
    }
    open_job oj = {.job = {.work = open_run}, .s = s};
    cs_worker_post_force(s->worker, &oj.job);
    pthread_mutex_lock(&s->open_lock);
    while (!s->opened) pthread_cond_wait(&s->open_cond, &s->open_lock);
    pthread_mutex_unlock(&s->open_lock);
    rc = s->open_rc;
    if (rc < 0) {
        cs_buf_printf(err, "%s", s->open_err.data ? s->open_err.data : "cannot open the store");
        cs_worker_stop(s->worker);
        cs_buf_free(&s->open_err);
        free(s->batch);
        free(s);
        return rc;
    }

    *out = s;
    return 0;
}

void cs_store_close(cs_store *s)
{
    if (!s) return;
    atomic_store(&s->closing_since_ms, mono_ms());
    close_job cj = {.job = {.work = close_run}, .s = s};
    cs_worker_post_force(s->worker, &cj.job);
    cs_worker_stop(s->worker);
    free(s->batch);
    cs_buf_free(&s->open_err);
    pthread_mutex_destroy(&s->spill_lock);
    pthread_mutex_destroy(&s->stats_lock);
    pthread_mutex_destroy(&s->open_lock);
    pthread_cond_destroy(&s->open_cond);
    free(s);
}

void cs_store_stats_get(cs_store *s, cs_store_stats *out)
{
    pthread_mutex_lock(&s->stats_lock);
    *out = s->stats;
    pthread_mutex_unlock(&s->stats_lock);
    out->queued = cs_worker_depth(s->worker);
}

const char *cs_store_backend(const cs_store *s)
{
    return s->ops->name;
}

void cs_store_write(cs_store *s, cs_store_rec *rec)
{
    rec->store = s;
    rec->job = (cs_job){.work = rec_work};
    /* Once a record spilled, later ones follow it into the file until the store thread
     * takes the file, so records reach the database in the order they were written. */
    pthread_mutex_lock(&s->spill_lock);
    if (atomic_load(&s->spill_pending) || cs_worker_post(s->worker, &rec->job) == CS_EFULL)
        spill(s, rec);
    pthread_mutex_unlock(&s->spill_lock);
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

void cs_store_query_run(cs_store *s, cs_store_query *q)
{
    q->store = s;
    q->job = (cs_job){.work = query_work, .done = query_done};
    /* Queries are few and small; they are not refused when writes fill the queue. */
    cs_worker_post_force(s->worker, &q->job);
}

void cs_store_query_free(cs_store_query *q)
{
    if (!q) return;
    cs_pool_free(&q->pool);
    free(q);
}

char *cs_store_strdup(cs_store_query *q, const char *str)
{
    return cs_pool_strdup(&q->pool, str);
}

void *cs_store_alloc(cs_store_query *q, size_t n)
{
    return cs_pool_alloc(&q->pool, n);
}
