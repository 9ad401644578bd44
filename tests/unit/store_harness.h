/* What the store's tests share: a store on a fresh SQLite file in a temp dir (or, built
 * with CS_TEST_PG, a fresh database of a private PostgreSQL server: pg_server.h), the
 * test's own connection to it (checks and injected faults), writes of each kind of row,
 * queries run to their answer, and waits on the store's counters. */
#ifndef CS_TEST_STORE_HARNESS_H
#define CS_TEST_STORE_HARNESS_H

#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/err.h"
#include "store/store.h"

#ifdef CS_TEST_PG
#include "pg_server.h"
#define STORE_BACKEND   "postgresql"
#define STRING_AGG(x)   "string_agg(" x "::text, ',')"
#define NO_TABLE_EVENTS "relation \"events\" does not exist"
/* the transcript lines the search index finds a word in */
#define SEARCH_COUNT(word)                                                                         \
    "SELECT COUNT(*) FROM transcripts WHERE words @@ to_tsquery('cs_text', '" word "')"
#else
#define STRING_AGG(x)      "GROUP_CONCAT(" x ")"
#define NO_TABLE_EVENTS    "no such table: events"
#define SEARCH_COUNT(word) "SELECT COUNT(*) FROM transcripts_fts WHERE text MATCH '" word "'"
#define STORE_BACKEND      "sqlite"
#endif

typedef struct fixture {
    tu_env env;
    char db_path[PATH_MAX];
    char url[PATH_MAX + 8];
    cs_store *store;
#ifdef CS_TEST_PG
    PGconn *side;
#else
    sqlite3 *side; /* the test's own connection: checks and injected faults */
#endif
    unsigned answers;     /* query callbacks run */
    cs_store_query *last; /* the last answer, for callbacks that keep it */
    int side_fd;
    char fifo[PATH_MAX];   /* a FIFO the spill writer may be blocked opening */
    unsigned by_status[4]; /* answers freed by on_answer_free: 0, -ETIMEDOUT, CS_EFULL, other */
    cs_store_stats want;   /* what wait_for is waiting for */
} fixture;

#ifdef CS_TEST_PG
/* The process's server: started by the first test, stopped at exit. */
static pg_server test_pg;

static inline void test_pg_stop(void)
{
    pg_server_destroy(&test_pg);
}

static inline int test_pg_database(fixture *f)
{
    if (!test_pg.port) {
        if (pg_server_start(&test_pg) < 0) {
            pg_server_destroy(&test_pg);
            return -1;
        }
        atexit(test_pg_stop);
    }
    if (pg_server_start_again(&test_pg) < 0) return -1; /* a test that stopped it failed */
    return pg_server_database(&test_pg, f->url, sizeof f->url);
}

static inline void side_close(fixture *f)
{
    PQfinish(f->side);
    f->side = NULL;
}
#else
static inline void side_close(fixture *f)
{
    sqlite3_close(f->side);
    f->side = NULL;
}
#endif

static inline int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    *state = f;
    /* the log is captured: failed attempts are logged on purpose */
    if (!f || tu_env_open(&f->env, "cs-test-store") < 0) return -1;
    snprintf(f->db_path, sizeof f->db_path, "%s", tu_path_in(&f->env, "cs.db"));
#ifdef CS_TEST_PG
    if (test_pg_database(f) < 0) return -1;
#else
    snprintf(f->url, sizeof f->url, "sqlite:%s", f->db_path);
#endif
    return 0;
}

static inline int teardown(void **state)
{
    fixture *f = *state;
    side_close(f);
    tu_limit_file_size(-1); /* what a test limited */
    if (f->fifo[0]) {
        /* A spill writer blocked opening it goes on (and fails: nobody reads), and a new
         * file takes the name: a failed test cannot hang the close. */
        signal(SIGPIPE, SIG_IGN);
        int fd = open(f->fifo, O_RDONLY | O_NONBLOCK);
        unlink(f->fifo);
        if (fd >= 0) close(fd);
    }
    cs_store_close(f->store);
    int rc = tu_env_close(&f->env);
    free(f);
    return rc;
}

/* Its spill files in `spill_dir` (NULL: none). */
static inline void open_store_in(fixture *f, size_t queue_max, const char *spill_dir)
{
    cs_buf err = CS_BUF_INIT(4096);
    int rc = cs_store_open(&f->store, f->url, f->env.mb, queue_max, spill_dir, &err);
    if (rc < 0) fail_msg("cs_store_open: %s", err.data);
    cs_buf_free(&err);
}

static inline void open_store(fixture *f, size_t queue_max)
{
    open_store_in(f, queue_max, f->env.dir);
}

static inline void close_store(fixture *f)
{
    cs_store_close(f->store);
    f->store = NULL;
    cs_mailbox_run(f->env.mb);
}

#ifdef CS_TEST_PG
static inline PGconn *side(fixture *f)
{
    if (!f->side) {
        f->side = PQconnectdb(f->url);
        if (PQstatus(f->side) != CONNECTION_OK) fail_msg("side: %s", PQerrorMessage(f->side));
    }
    return f->side;
}

/* The text of the first column of the first row `sql` returns (NULL for NULL), kept in
 * `out`. */
static inline const char *side_text(fixture *f, const char *sql, char *out, size_t cap)
{
    PGresult *r = PQexec(side(f), sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK && PQresultStatus(r) != PGRES_COMMAND_OK)
        fail_msg("%s: %s", sql, PQresultErrorMessage(r));
    const char *v = NULL;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0 && !PQgetisnull(r, 0, 0)) {
        snprintf(out, cap, "%s", PQgetvalue(r, 0, 0));
        v = out;
    }
    PQclear(r);
    return v;
}

static inline void side_exec(fixture *f, const char *sql)
{
    char none[1];
    side_text(f, sql, none, sizeof none);
}

/* Events whose type is listed in `hold` fail to insert until the test deletes the row:
 * the store thread then retries its batch, and its queue fills up behind it. */
static inline void hold_types(fixture *f, const char *types)
{
    char sql[1024];
    snprintf(sql, sizeof sql,
             "CREATE TABLE hold (type TEXT PRIMARY KEY);"
             "INSERT INTO hold VALUES %s;"
             "CREATE FUNCTION held() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
             " IF NEW.type IN (SELECT type FROM hold) THEN RAISE 'held by the test'; END IF;"
             " RETURN NEW; END $$;"
             "CREATE TRIGGER held BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION held();",
             types);
    side_exec(f, sql);
}

/* Deleting from `table` fails until release_deletes. */
static inline void hold_deletes(fixture *f, const char *table)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "CREATE FUNCTION held_delete() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
             " RAISE 'held by the test'; END $$;"
             "CREATE TRIGGER held_delete BEFORE DELETE ON %s FOR EACH ROW"
             " EXECUTE FUNCTION held_delete();",
             table);
    side_exec(f, sql);
}

static inline void release_deletes(fixture *f, const char *table)
{
    char sql[256];
    snprintf(sql, sizeof sql, "DROP TRIGGER held_delete ON %s; DROP FUNCTION held_delete()", table);
    side_exec(f, sql);
}
#else
static inline sqlite3 *side(fixture *f)
{
    if (!f->side) {
        assert_int_equal(sqlite3_open(f->db_path, &f->side), SQLITE_OK);
        sqlite3_busy_timeout(f->side, TU_WAIT_MS);
    }
    return f->side;
}

static inline void side_exec(fixture *f, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(side(f), sql, NULL, NULL, &msg) != SQLITE_OK) fail_msg("%s: %s", sql, msg);
}

static inline const char *side_text(fixture *f, const char *sql, char *out, size_t cap)
{
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(side(f), sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    const char *v = (const char *)sqlite3_column_text(st, 0);
    if (v) snprintf(out, cap, "%s", v);
    sqlite3_finalize(st);
    return v ? out : NULL;
}

/* Events whose type is listed in `hold` fail to insert until the test deletes the row:
 * the store thread then retries its batch, and its queue fills up behind it. */
static inline void hold_types(fixture *f, const char *types)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "CREATE TABLE hold (type TEXT PRIMARY KEY);"
             "INSERT INTO hold VALUES %s;"
             "CREATE TRIGGER held BEFORE INSERT ON events"
             " WHEN NEW.type IN (SELECT type FROM hold)"
             " BEGIN SELECT RAISE(ABORT, 'held by the test'); END;",
             types);
    side_exec(f, sql);
}

static inline void hold_deletes(fixture *f, const char *table)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "CREATE TRIGGER held_delete BEFORE DELETE ON %s"
             " BEGIN SELECT RAISE(ABORT, 'held by the test'); END;",
             table);
    side_exec(f, sql);
}

static inline void release_deletes(fixture *f, const char *table)
{
    (void)table;
    side_exec(f, "DROP TRIGGER held_delete");
}
#endif

static inline int64_t side_int(fixture *f, const char *sql)
{
    char v[32];
    if (!side_text(f, sql, v, sizeof v)) fail_msg("%s: NULL", sql);
    return strtoll(v, NULL, 10);
}

static inline void write_call(cs_store *s, const cs_call_row *row)
{
    cs_store_rec *rec = cs_store_rec_new(CS_REC_CALL);
    assert_non_null(rec);
    cs_pool *p = &rec->pool;
    rec->call = *row;
    rec->call.sid = cs_pool_strdup(p, row->sid);
    rec->call.account_sid = cs_pool_strdup(p, row->account_sid);
    rec->call.from = cs_pool_strdup(p, row->from);
    rec->call.to = cs_pool_strdup(p, row->to);
    rec->call.direction = cs_pool_strdup(p, row->direction);
    rec->call.status = cs_pool_strdup(p, row->status);
    rec->call.params = cs_pool_strdup(p, row->params);
    rec->call.summary = cs_pool_strdup(p, row->summary);
    rec->call.recording = cs_pool_strdup(p, row->recording);
    rec->call.node = cs_pool_strdup(p, row->node);
    cs_store_write(s, rec);
}

static inline void write_stream(cs_store *s, const cs_stream_row *row)
{
    cs_store_rec *rec = cs_store_rec_new(CS_REC_STREAM);
    assert_non_null(rec);
    cs_pool *p = &rec->pool;
    rec->stream = *row;
    rec->stream.sid = cs_pool_strdup(p, row->sid);
    rec->stream.call_sid = cs_pool_strdup(p, row->call_sid);
    rec->stream.tracks = cs_pool_strdup(p, row->tracks);
    rec->stream.mode = cs_pool_strdup(p, row->mode);
    rec->stream.end_reason = cs_pool_strdup(p, row->end_reason);
    rec->stream.stats = cs_pool_strdup(p, row->stats);
    cs_store_write(s, rec);
}

static inline void write_event(cs_store *s, const char *call_sid, const char *type, int64_t at)
{
    cs_store_rec *rec = cs_store_rec_new(CS_REC_EVENT);
    assert_non_null(rec);
    cs_pool *p = &rec->pool;
    char detail[64];
    snprintf(detail, sizeof detail, "{\"at\":%lld}", (long long)at);
    rec->event = (cs_event_row){
        .call_sid = cs_pool_strdup(p, call_sid),
        .stream_sid = cs_pool_strdup(p, "MZ1"),
        .type = cs_pool_strdup(p, type),
        .detail = cs_pool_strdup(p, detail),
        .at = at,
    };
    cs_store_write(s, rec);
}

/* A transcript segment of a call's stream MZ1 (strings must outlive the write). */
static inline void write_segment_of(cs_store *s, const char *call_sid, const char *speaker,
                                    int64_t seq, int64_t start, const char *text,
                                    int64_t confidence, bool refined)
{
    cs_store_rec *rec = cs_store_rec_new(CS_REC_SEGMENT);
    assert_non_null(rec);
    rec->segment = (cs_segment_row){.call_sid = call_sid,
                                    .stream_sid = "MZ1",
                                    .speaker = speaker,
                                    .seq = seq,
                                    .start_ms = start,
                                    .end_ms = start + 900,
                                    .text = text,
                                    .confidence = confidence,
                                    .refined = refined};
    cs_store_write(s, rec);
}

/* ... of call CA1 */
static inline void write_segment(cs_store *s, const char *speaker, int64_t seq, int64_t start,
                                 const char *text, int64_t confidence, bool refined)
{
    write_segment_of(s, "CA1", speaker, seq, start, text, confidence, refined);
}

static inline cs_store_stats stats(fixture *f)
{
    cs_store_stats st;
    cs_store_stats_get(f->store, &st);
    return st;
}

static inline bool reached(void *data)
{
    fixture *f = data;
    cs_store_stats st = stats(f);
    return st.written >= f->want.written && st.failures >= f->want.failures &&
           st.replayed >= f->want.replayed && st.queued == 0;
}

/* Waits until the counters set in `want` are reached and the queue is empty. */
static inline void wait_for(fixture *f, cs_store_stats want)
{
    f->want = want;
    if (!tu_run_until(&f->env.loop, reached, f, TU_WAIT_MS)) {
        cs_store_stats st = stats(f);
        fail_msg("store stuck: written %llu, failures %llu, replayed %llu, queued %zu",
                 (unsigned long long)st.written, (unsigned long long)st.failures,
                 (unsigned long long)st.replayed, st.queued);
    }
}

static inline void on_answer(cs_store_query *q, void *data)
{
    (void)q;
    ((fixture *)data)->answers++;
}

static inline bool answered(void *data)
{
    fixture *f = data;
    return f->answers > 0;
}

static inline cs_store_query *query(enum cs_query_kind kind, const char *sid, fixture *f)
{
    cs_store_query *q = cs_store_query_new(kind, on_answer, f);
    assert_non_null(q);
    if (sid) snprintf(q->sid, sizeof q->sid, "%s", sid);
    return q;
}

/* Runs `q` and waits for its answer. */
static inline void ask(fixture *f, cs_store_query *q)
{
    f->answers = 0;
    cs_store_query_run(f->store, q);
    assert_true(tu_run_until(&f->env.loop, answered, f, TU_WAIT_MS));
}

static inline cs_store_query *ask_call(fixture *f, const char *sid)
{
    cs_store_query *q = query(CS_Q_CALL, sid, f);
    ask(f, q);
    assert_int_equal(q->status, 0);
    assert_int_equal(q->ncalls, 1);
    return q;
}

static inline void assert_event_types(const cs_store_query *q, const char *const *types, size_t n)
{
    assert_int_equal(q->nevents, n);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(q->events[i].type, types[i]);
        const cs_event_row *e = &q->events[i], *prev = &q->events[i ? i - 1 : 0];
        if (i) assert_true(e->at > prev->at || (e->at == prev->at && e->id > prev->id));
    }
}

static inline bool file_exists(const char *path)
{
    return access(path, F_OK) == 0;
}

static inline void write_rec(cs_store *s, enum cs_rec_kind kind, void (*fill)(cs_store_rec *))
{
    cs_store_rec *rec = cs_store_rec_new(kind);
    fill(rec);
    cs_store_write(s, rec);
}

static inline void fill_user(cs_store_rec *r)
{
    r->user = (cs_user_row){.name = "ann", .password_hash = "$argon2id$v=19$x"};
}

static inline void fill_session(cs_store_rec *r)
{
    r->session = (cs_session_row){
        .token_hash = "s1", .user = "ann", .expires_at = INT64_MAX, .password_at = 7};
}

static inline void fill_token(cs_store_rec *r)
{
    r->token = (cs_token_row){.name = "ci", .token_hash = "t1"};
}

typedef struct poll_stat {
    fixture *f;
    bool (*ok)(const cs_store_stats *st);
} poll_stat;

static inline bool stat_holds(void *data)
{
    poll_stat *p = data;
    cs_store_stats st = stats(p->f);
    return p->ok(&st);
}

/* Runs the loop until `ok` holds for the store's stats. */
static inline void wait_stats(fixture *f, bool (*ok)(const cs_store_stats *st), const char *what)
{
    poll_stat p = {f, ok};
    if (!tu_run_until(&f->env.loop, stat_holds, &p, TU_WAIT_MS)) fail_msg("never: %s", what);
}

static inline void on_answer_keep(cs_store_query *q, void *data)
{
    fixture *f = data;
    f->answers++;
    f->last = q;
}

static inline void on_answer_free(cs_store_query *q, void *data)
{
    fixture *f = data;
    f->answers++;
    f->by_status[q->status == 0            ? 0
                 : q->status == -ETIMEDOUT ? 1
                 : q->status == CS_EFULL   ? 2
                                           : 3]++;
    cs_store_query_free(q);
}

static inline bool answered_all(void *data)
{
    fixture *f = data;
    return f->answers >= f->want.queries;
}

static inline bool is_failing(const cs_store_stats *st)
{
    return st->failing_since_ms != 0;
}

static inline bool no_reads_pending(const cs_store_stats *st)
{
    return st->reads_pending == 0;
}

#endif
