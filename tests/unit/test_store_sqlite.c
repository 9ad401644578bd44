/* The SQLite store: migrations, rows and their upserts, queries and their pages, users,
 * sessions and tokens, transcripts, and the reader that never waits behind failing
 * writes. The spill files have test_store_spill.c. */
#include "store_harness.h"

#include <errno.h>

#include "dblock.h"

/* Opens `url` expecting failure `want` with `message` in the error. */
static void refused(fixture *f, const char *url, int want, const char *message)
{
    cs_buf err = CS_BUF_INIT(4096);
    cs_store *s = NULL;
    assert_int_equal(cs_store_open(&s, url, f->env.mb, 16, f->env.dir, &err), want);
    assert_null(s);
    assert_non_null(err.data);
    if (!strstr(err.data, message)) fail_msg("'%s' does not say '%s'", err.data, message);
    if (strstr(err.data, "secret")) fail_msg("'%s' tells the password", err.data);
    cs_buf_free(&err);
}

#ifndef CS_TEST_PG
static void exec_at(const char *path, const char *sql)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) fail_msg("%s: %s", sql, msg);
    sqlite3_close(db);
}
#endif

static void open_runs_migrations_once(void **state)
{
    fixture *f = *state;
    open_store(f, 16);
    assert_string_equal(cs_store_backend(f->store), STORE_BACKEND);
    close_store(f);
    int64_t n = side_int(f, "SELECT COUNT(*) FROM schema_migrations");
    assert_true(n >= 2);
    assert_int_equal(side_int(f, "SELECT MAX(version) FROM schema_migrations"), n);
    int64_t applied = side_int(f, "SELECT MAX(applied_at) FROM schema_migrations");

    open_store(f, 16);
    close_store(f);
    assert_int_equal(side_int(f, "SELECT COUNT(*) FROM schema_migrations"), n);
    assert_int_equal(side_int(f, "SELECT MAX(applied_at) FROM schema_migrations"), applied);

    side_exec(f, "INSERT INTO schema_migrations VALUES (1000, 0)");
    refused(f, f->url, CS_EBACKEND, "newer than this build");
}

#ifndef CS_TEST_PG
static void url_forms(void **state)
{
    fixture *f = *state;
    cs_buf err = CS_BUF_INIT(4096);
    cs_store *s;
    assert_int_equal(
        cs_store_open(&s, tu_path_in(&f->env, "bare.db"), f->env.mb, 16, f->env.dir, &err), 0);
    assert_string_equal(cs_store_backend(s), "sqlite");
    cs_store_close(s);
    assert_true(file_exists(tu_path_in(&f->env, "bare.db")));
    cs_buf_free(&err);

    refused(f, "mysql://ann:secret@db.example/calls", CS_ECONFIG, "no store speaks 'mysql:'");
    /* PostgreSQL's URLs, both forms (nothing listens on port 1) */
    refused(f, "postgresql://ann:secret@127.0.0.1:1/calls", CS_EBACKEND,
            "cannot open the PostgreSQL database");
    refused(f, "postgres://ann:secret@127.0.0.1:1/calls?connect_timeout=2", CS_EBACKEND,
            "cannot open the PostgreSQL database");
    char url[PATH_MAX + 16];
    snprintf(url, sizeof url, "sqlite:%s/missing/cs.db", f->env.dir);
    refused(f, url, CS_EBACKEND, "cannot open");
}
#endif

#ifndef CS_TEST_PG
static void broken_databases_are_refused(void **state)
{
    fixture *f = *state;
    char url[PATH_MAX + 16];
    FILE *junk = fopen(tu_path_in(&f->env, "junk.db"), "wb");
    assert_non_null(junk);
    for (int i = 0; i < 4096; i++) fputc('x', junk);
    assert_int_equal(fclose(junk), 0);
    snprintf(url, sizeof url, "sqlite:%s", tu_path_in(&f->env, "junk.db"));
    refused(f, url, CS_EBACKEND, "cannot set up");

    /* A table that migration 1 creates is there already. */
    exec_at(tu_path_in(&f->env, "taken.db"), "CREATE TABLE calls (sid TEXT)");
    snprintf(url, sizeof url, "sqlite:%s", tu_path_in(&f->env, "taken.db"));
    refused(f, url, CS_EBACKEND, "migration 1 failed");

    /* Marked as migrated, yet the tables are missing. */
    exec_at(tu_path_in(&f->env, "bare.db"),
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY,"
            " applied_at INTEGER NOT NULL);"
            "INSERT INTO schema_migrations VALUES (1, 0)");
    snprintf(url, sizeof url, "sqlite:%s", tu_path_in(&f->env, "bare.db"));
    refused(f, url, CS_EBACKEND, "no such table");
}
#endif

static void call_upsert_keeps_what_is_not_said(void **state)
{
    fixture *f = *state;
    open_store(f, 64);
    write_call(f->store, &(cs_call_row){.sid = "CA1",
                                        .account_sid = "AC1",
                                        .from = "+15550001",
                                        .to = "+15550002",
                                        .direction = "inbound",
                                        .status = "ringing",
                                        .params = "{\"a\":\"1\"}",
                                        .created_at = 1000});
    write_call(f->store,
               &(cs_call_row){
                   .sid = "CA1", .status = "in-progress", .created_at = 1500, .started_at = 2000});
    write_call(f->store, &(cs_call_row){.sid = "CA1",
                                        .started_at = 3000,
                                        .created_at = 500,
                                        .summary = "asked for a refund",
                                        .recording = "/rec/CA1.wav",
                                        .recording_ms = 1234,
                                        .ended_at = 4000,
                                        .status = "completed",
                                        .updated_at = 9999});
    write_call(f->store, &(cs_call_row){.sid = "CA1", .ended_at = 5000, .updated_at = 10000});
    cs_store_query *q = ask_call(f, "CA1");
    const cs_call_row *c = &q->calls[0];
    assert_string_equal(c->sid, "CA1");
    assert_string_equal(c->account_sid, "AC1");
    assert_string_equal(c->from, "+15550001");
    assert_string_equal(c->to, "+15550002");
    assert_string_equal(c->direction, "inbound");
    assert_string_equal(c->status, "completed");
    assert_string_equal(c->params, "{\"a\":\"1\"}");
    assert_string_equal(c->summary, "asked for a refund");
    assert_string_equal(c->recording, "/rec/CA1.wav");
    assert_int_equal(c->recording_ms, 1234);
    assert_int_equal(c->created_at, 500);
    assert_int_equal(c->started_at, 2000);
    assert_int_equal(c->ended_at, 5000);
    assert_int_equal(c->updated_at, 10000);
    assert_int_equal(q->nstreams, 0);
    assert_int_equal(q->nevents, 0);
    cs_store_query_free(q);

    /* Unknown times are stamped when the row is new. */
    write_call(f->store, &(cs_call_row){.sid = "CA2"});
    q = ask_call(f, "CA2");
    assert_true(q->calls[0].created_at > 0);
    assert_true(q->calls[0].updated_at > 0);
    assert_int_equal(q->calls[0].started_at, 0);
    assert_null(q->calls[0].status);
    cs_store_query_free(q);
}

static void streams_and_events_come_with_their_call(void **state)
{
    fixture *f = *state;
    open_store(f, 64);
    write_call(f->store, &(cs_call_row){.sid = "CA1", .created_at = 1});
    write_stream(f->store, &(cs_stream_row){.sid = "MZ2",
                                            .call_sid = "CA1",
                                            .tracks = "[\"inbound\"]",
                                            .mode = "two-way",
                                            .started_at = 100});
    write_stream(f->store, &(cs_stream_row){.sid = "MZ1", .call_sid = "CA1", .started_at = 50});
    write_stream(f->store, &(cs_stream_row){.sid = "MZ2",
                                            .call_sid = "CA1",
                                            .started_at = 150,
                                            .ended_at = 200,
                                            .end_reason = "stop",
                                            .stats = "{\"frames\":3}"});
    write_stream(f->store, &(cs_stream_row){.sid = "MZ9", .call_sid = "CA9", .started_at = 1});
    write_event(f->store, "CA1", "start", 7);
    write_event(f->store, "CA9", "start", 8);
    write_event(f->store, "CA1", "stop", 0);

    cs_store_query *q = ask_call(f, "CA1");
    assert_int_equal(q->nstreams, 2);
    const cs_stream_row *t = &q->streams[0];
    assert_string_equal(t->sid, "MZ1");
    assert_null(t->tracks);
    t = &q->streams[1];
    assert_string_equal(t->sid, "MZ2");
    assert_string_equal(t->call_sid, "CA1");
    assert_string_equal(t->tracks, "[\"inbound\"]");
    assert_string_equal(t->mode, "two-way");
    assert_int_equal(t->started_at, 100);
    assert_int_equal(t->ended_at, 200);
    assert_string_equal(t->end_reason, "stop");
    assert_string_equal(t->stats, "{\"frames\":3}");
    static const char *const types[] = {"start", "stop"};
    assert_event_types(q, types, 2);
    const cs_event_row *e = &q->events[0];
    assert_string_equal(e->call_sid, "CA1");
    assert_string_equal(e->stream_sid, "MZ1");
    assert_string_equal(e->detail, "{\"at\":7}");
    assert_int_equal(e->at, 7);
    assert_true(q->events[1].at > 0); /* unknown: stamped when written */
    assert_false(q->more);
    cs_store_query_free(q);

    q = query(CS_Q_CALL, "CA404", f);
    ask(f, q);
    assert_int_equal(q->status, CS_ENOTFOUND);
    assert_int_equal(q->ncalls, 0);
    cs_store_query_free(q);
}

/* Pages through `sid`'s events `limit` at a time: they are `types`, in that order. */
static void page_events(fixture *f, const char *sid, int limit, const char *const *types, size_t n)
{
    int64_t after = 0;
    for (size_t seen = 0; seen < n;) {
        cs_store_query *q = query(CS_Q_EVENTS, sid, f);
        q->limit = limit;
        q->after_id = after;
        ask(f, q);
        assert_int_equal(q->status, 0);
        size_t page = n - seen < (size_t)limit ? n - seen : (size_t)limit;
        assert_event_types(q, types + seen, page);
        seen += page;
        assert_int_equal(q->more, seen < n);
        after = q->events[page - 1].id;
        cs_store_query_free(q);
    }
}

static void events_page_by_id(void **state)
{
    fixture *f = *state;
    open_store(f, 64);
    for (int i = 1; i <= 7; i++) {
        char type[16];
        snprintf(type, sizeof type, "e%d", i);
        write_event(f->store, "CA1", type, i);
        if (i <= 2) write_event(f->store, "CA2", "other", i);
    }
    static const char *const all[] = {"e1", "e2", "e3", "e4", "e5", "e6", "e7"};
    page_events(f, "CA1", 3, all, 7);
    cs_store_query *q = query(CS_Q_EVENTS, "CA404", f);
    ask(f, q);
    assert_int_equal(q->status, 0);
    assert_int_equal(q->nevents, 0);
    assert_false(q->more);
    cs_store_query_free(q);
}

/* Writers on several loops reach a call's row in any order (one's writes spilled and
 * replayed late): its status never goes back, its start only moves earlier, its end later;
 * but a call started again after its end is live again. */
static void a_call_never_goes_back(void **state)
{
    fixture *f = *state;
    open_store(f, 64);
    write_call(f->store, &(cs_call_row){.sid = "CA1", .status = "completed", .ended_at = 4000});
    write_call(f->store, &(cs_call_row){.sid = "CA1", .status = "ringing", .created_at = 1000});
    write_call(f->store, &(cs_call_row){.sid = "CA1", .status = "in-progress", .started_at = 2000});
    write_call(f->store, &(cs_call_row){.sid = "CA1", .started_at = 1500, .ended_at = 3000});
    cs_store_query *q = ask_call(f, "CA1");
    assert_string_equal(q->calls[0].status, "completed");
    assert_int_equal(q->calls[0].started_at, 1500);
    assert_int_equal(q->calls[0].ended_at, 4000);
    cs_store_query_free(q);

    /* started again after its end, then ended again, then a late ringing */
    write_call(f->store, &(cs_call_row){.sid = "CA1", .status = "in-progress", .started_at = 5000});
    q = ask_call(f, "CA1");
    assert_string_equal(q->calls[0].status, "in-progress");
    assert_int_equal(q->calls[0].started_at, 1500);
    cs_store_query_free(q);
    write_call(f->store, &(cs_call_row){.sid = "CA1", .status = "completed", .ended_at = 6000});
    write_call(f->store, &(cs_call_row){.sid = "CA1", .status = "ringing"});
    q = ask_call(f, "CA1");
    assert_string_equal(q->calls[0].status, "completed");
    assert_int_equal(q->calls[0].ended_at, 6000);
    cs_store_query_free(q);

    /* abnormal is final too; statuses go forward, and a final one replaces another */
    write_call(f->store, &(cs_call_row){.sid = "CA2", .status = "queued"});
    write_call(f->store, &(cs_call_row){.sid = "CA2", .status = "ringing"});
    write_call(f->store, &(cs_call_row){.sid = "CA2", .status = "initiated"});
    q = ask_call(f, "CA2");
    assert_string_equal(q->calls[0].status, "ringing");
    cs_store_query_free(q);
    write_call(f->store, &(cs_call_row){.sid = "CA2", .status = "abnormal", .ended_at = 900});
    write_call(f->store, &(cs_call_row){.sid = "CA2", .status = "in-progress", .started_at = 800});
    q = ask_call(f, "CA2");
    assert_string_equal(q->calls[0].status, "abnormal");
    cs_store_query_free(q);
    write_call(f->store, &(cs_call_row){.sid = "CA2", .status = "no-answer"});
    q = ask_call(f, "CA2");
    assert_string_equal(q->calls[0].status, "no-answer");
    cs_store_query_free(q);
}

/* Events written out of their time order are read in it, a page's cursor (the last id)
 * standing for its (at, id). */
static void events_read_in_time_order(void **state)
{
    fixture *f = *state;
    open_store(f, 64);
    static const struct {
        const char *type;
        int64_t at;
    } written[] = {{"e3", 30}, {"e1", 10}, {"e4", 40}, {"e2", 10}, {"e5", 50}, {"e0", 5}};
    for (size_t i = 0; i < sizeof written / sizeof *written; i++)
        write_event(f->store, "CA1", written[i].type, written[i].at);
    static const char *const all[] = {"e0", "e1", "e2", "e3", "e4", "e5"};
    page_events(f, "CA1", 2, all, 6); /* e1 and e2 (both at 10) on two pages */
    page_events(f, "CA1", 4, all, 6);
    /* the call's page of events too; and a cursor that is no event's starts from the first */
    write_call(f->store, &(cs_call_row){.sid = "CA1"});
    cs_store_query *q = ask_call(f, "CA1");
    assert_event_types(q, all, 6);
    cs_store_query_free(q);
    q = query(CS_Q_EVENTS, "CA1", f);
    q->after_id = 1000000;
    ask(f, q);
    assert_int_equal(q->status, 0);
    assert_event_types(q, all, 6);
    cs_store_query_free(q);
}

static void calls_page_newest_first(void **state)
{
    fixture *f = *state;
    open_store(f, 64);
    static const struct {
        const char *sid;
        int64_t at;
    } calls[] = {{"CA1", 100}, {"CA2", 200}, {"CA4", 300}, {"CA3", 200}, {"CA5", 400}};
    for (size_t i = 0; i < sizeof calls / sizeof *calls; i++)
        write_call(f->store, &(cs_call_row){.sid = calls[i].sid, .created_at = calls[i].at});
    /* Ties in created_at are ordered by sid, so the cursor never skips or repeats one. */
    static const char *const pages[][2] = {{"CA5", "CA4"}, {"CA3", "CA2"}, {"CA1"}};
    static const size_t sizes[] = {2, 2, 1};
    int64_t before_at = 0;
    char before_sid[65] = "";
    for (int page = 0; page < 3; page++) {
        cs_store_query *q = query(CS_Q_CALLS, NULL, f);
        q->limit = 2;
        q->before_at = before_at;
        snprintf(q->before_sid, sizeof q->before_sid, "%s", before_sid);
        ask(f, q);
        assert_int_equal(q->status, 0);
        assert_int_equal(q->ncalls, sizes[page]);
        for (size_t i = 0; i < q->ncalls; i++) assert_string_equal(q->calls[i].sid, pages[page][i]);
        assert_int_equal(q->more, page < 2);
        before_at = q->calls[q->ncalls - 1].created_at;
        snprintf(before_sid, sizeof before_sid, "%s", q->calls[q->ncalls - 1].sid);
        cs_store_query_free(q);
    }
}

static void limits_are_clamped(void **state)
{
    fixture *f = *state;
    open_store(f, 1024);
    for (int i = 0; i <= CS_STORE_PAGE_MAX; i++) {
        char sid[16];
        snprintf(sid, sizeof sid, "CA%04d", i);
        write_call(f->store, &(cs_call_row){.sid = sid, .created_at = 1 + i});
    }
    static const int limits[] = {0, -1, CS_STORE_PAGE_MAX + 1, 1 << 30};
    for (size_t i = 0; i < sizeof limits / sizeof *limits; i++) {
        cs_store_query *q = query(CS_Q_CALLS, NULL, f);
        q->limit = limits[i];
        ask(f, q);
        assert_int_equal(q->ncalls, CS_STORE_PAGE_MAX);
        assert_true(q->more);
        assert_string_equal(q->calls[0].sid, "CA0500");
        cs_store_query_free(q);
    }
    cs_store_query *q = query(CS_Q_CALLS, NULL, f);
    q->limit = CS_STORE_PAGE_MAX;
    q->before_at = 2;
    ask(f, q);
    assert_int_equal(q->ncalls, 1);
    assert_false(q->more);
    cs_store_query_free(q);
}

static void call_query_caps_streams_and_events(void **state)
{
    fixture *f = *state;
    open_store(f, 1 << 14);
    write_call(f->store, &(cs_call_row){.sid = "CA1"});
    for (int i = 0; i <= CS_CALL_STREAMS_MAX; i++) {
        char sid[16];
        snprintf(sid, sizeof sid, "MZ%03d", i);
        write_stream(f->store,
                     &(cs_stream_row){.sid = sid, .call_sid = "CA1", .started_at = i + 1});
    }
    for (int i = 0; i <= CS_STORE_EVENTS_MAX; i++) write_event(f->store, "CA1", "dtmf", i + 1);
    wait_for(f, (cs_store_stats){.written = 1 + CS_CALL_STREAMS_MAX + 1 + CS_STORE_EVENTS_MAX + 1});
    cs_store_query *q = ask_call(f, "CA1");
    assert_int_equal(q->nstreams, CS_CALL_STREAMS_MAX);
    assert_int_equal(q->nevents, CS_STORE_EVENTS_MAX);
    assert_true(q->more);
    cs_store_query_free(q);
}

static void queries_read_their_writes(void **state)
{
    fixture *f = *state;
    open_store(f, 1024);
    for (int i = 0; i < 300; i++) write_event(f->store, "CA1", "mark", i + 1);
    write_call(f->store, &(cs_call_row){.sid = "CA1", .status = "completed"});
    cs_store_query *q = ask_call(f, "CA1"); /* queued right behind the writes */
    assert_string_equal(q->calls[0].status, "completed");
    assert_int_equal(q->nevents, 300);
    cs_store_query_free(q);
    cs_store_stats st = stats(f);
    assert_int_equal(st.written, 301);
    assert_int_equal(st.queries, 1);
    assert_int_equal(st.spilled, 0);
    assert_int_equal(st.failures, 0);
    assert_true(st.batches >= 1);
}

static void query_failures_are_reported(void **state)
{
    fixture *f = *state;
    open_store(f, 16);
    write_call(f->store, &(cs_call_row){.sid = "CA1"});
    cs_store_query_free(ask_call(f, "CA1"));
    side_exec(f, "DROP TABLE events");
    cs_store_query *q = query(CS_Q_EVENTS, "CA1", f);
    ask(f, q);
    assert_int_equal(q->status, CS_EBACKEND);
    cs_store_query_free(q);
    q = query(CS_Q_CALL, "CA1", f);
    ask(f, q);
    assert_int_equal(q->status, CS_EBACKEND);
    cs_store_query_free(q);
    assert_true(tu_log_contains(NO_TABLE_EVENTS));
    assert_int_equal(stats(f).queries, 3);
}

static void records_without_keys_are_dropped(void **state)
{
    fixture *f = *state;
    open_store(f, 64);
    write_call(f->store, &(cs_call_row){.status = "completed"});
    write_stream(f->store, &(cs_stream_row){.sid = "MZ1"});
    write_stream(f->store, &(cs_stream_row){.call_sid = "CA1"});
    write_event(f->store, "CA1", NULL, 1);
    write_event(f->store, NULL, "start", 2);
    cs_store_write(f->store, cs_store_rec_new((enum cs_rec_kind)99));
    write_event(f->store, "CA1", "start", 3);
    wait_for(f, (cs_store_stats){.written = 1});
    cs_store_query *q = query(CS_Q_EVENTS, "CA1", f);
    ask(f, q);
    static const char *const types[] = {"start"};
    assert_event_types(q, types, 1);
    cs_store_query_free(q);
    cs_store_stats st = stats(f);
    assert_int_equal(st.written, 1);
    assert_int_equal(st.failures, 0);
    assert_int_equal(side_int(f, "SELECT COUNT(*) FROM calls"), 0);
    assert_int_equal(side_int(f, "SELECT COUNT(*) FROM streams"), 0);
    assert_true(tu_log_contains("without its keys"));
}

static void failing_batches_are_retried(void **state)
{
    fixture *f = *state;
    open_store(f, 64);
    hold_types(f, "('held')");
    write_event(f->store, "CA1", "held", 1);
    wait_for(f, (cs_store_stats){.failures = 3});
    assert_int_equal(stats(f).written, 0);
    assert_int_equal(side_int(f, "SELECT COUNT(*) FROM events"), 0);
    write_call(f->store, &(cs_call_row){.sid = "CA1", .status = "completed"});

    side_exec(f, "DELETE FROM hold");
    wait_for(f, (cs_store_stats){.written = 2});
    assert_true(tu_log_contains("held by the test"));
    assert_true(tu_log_contains("store: a batch of 1 record(s) failed"));
    assert_true(tu_log_contains("retrying in"));
    assert_true(tu_log_contains("failed attempt(s)"));
    cs_store_query *q = ask_call(f, "CA1");
    assert_string_equal(q->calls[0].status, "completed");
    static const char *const types[] = {"held"};
    assert_event_types(q, types, 1);
    cs_store_query_free(q);
    assert_true(stats(f).failures >= 3);
}

static void fill_user2(cs_store_rec *r)
{
    r->user = (cs_user_row){.name = "bob", .password_hash = "h2"};
}

static void fill_user_del(cs_store_rec *r)
{
    r->user.name = "bob";
}

static void fill_session_del(cs_store_rec *r)
{
    r->session.token_hash = "s1";
}

static void fill_token_del(cs_store_rec *r)
{
    r->token.name = "ci";
}

static cs_store_query *ask_key(fixture *f, enum cs_query_kind kind, const char *key)
{
    cs_store_query *q = query(kind, NULL, f);
    snprintf(q->key, sizeof q->key, "%s", key);
    ask(f, q);
    assert_int_equal(q->status, 0);
    return q;
}

/* A session of `user` opened with the password set at `password_at`. */
static void write_session(fixture *f, const char *hash, const char *user, int64_t password_at,
                          int64_t expires_at)
{
    cs_store_rec *rec = cs_store_rec_new(CS_REC_SESSION);
    assert_non_null(rec);
    rec->session = (cs_session_row){.token_hash = cs_pool_strdup(&rec->pool, hash),
                                    .user = cs_pool_strdup(&rec->pool, user),
                                    .expires_at = expires_at,
                                    .password_at = password_at};
    cs_store_write(f->store, rec);
}

static void write_user(fixture *f, const char *name, const char *password_hash)
{
    cs_store_rec *rec = cs_store_rec_new(CS_REC_USER);
    assert_non_null(rec);
    rec->user = (cs_user_row){.name = cs_pool_strdup(&rec->pool, name),
                              .password_hash = cs_pool_strdup(&rec->pool, password_hash)};
    cs_store_write(f->store, rec);
}

static void delete_user(fixture *f, const char *name)
{
    cs_store_rec *rec = cs_store_rec_new(CS_REC_USER_DEL);
    assert_non_null(rec);
    rec->user.name = cs_pool_strdup(&rec->pool, name);
    cs_store_write(f->store, rec);
}

/* When `user`'s password was set, as a sign-in reads it. */
static int64_t password_at(fixture *f, const char *user)
{
    cs_store_query *q = ask_key(f, CS_Q_USERS, user);
    assert_int_equal(q->nusers, 1);
    int64_t at = q->users[0].password_at;
    cs_store_query_free(q);
    return at;
}

static bool session_found(fixture *f, const char *hash)
{
    cs_store_query *q = ask_key(f, CS_Q_SESSION, hash);
    bool found = q->nsessions == 1;
    cs_store_query_free(q);
    return found;
}

static void users_sessions_and_tokens(void **state)
{
    fixture *f = *state;
    open_store(f, 100);
    write_rec(f->store, CS_REC_USER, fill_user);
    write_rec(f->store, CS_REC_USER, fill_user2);
    int64_t ann = password_at(f, "ann");
    assert_true(ann > 0);
    write_session(f, "s0", "ann", ann, 1); /* expired */
    write_session(f, "s1", "ann", ann, INT64_MAX);
    write_rec(f->store, CS_REC_TOKEN, fill_token);

    cs_store_query *q = ask_key(f, CS_Q_USERS, "");
    assert_int_equal(q->nusers, 2);
    assert_string_equal(q->users[0].name, "ann");
    assert_string_equal(q->users[0].password_hash, "$argon2id$v=19$x");
    assert_true(q->users[0].created_at > 0);
    cs_store_query_free(q);
    q = ask_key(f, CS_Q_USERS, "bob");
    assert_int_equal(q->nusers, 1);
    cs_store_query_free(q);
    /* an unexpired session is found; an expired one is not, and was purged */
    q = ask_key(f, CS_Q_SESSION, "s1");
    assert_int_equal(q->nsessions, 1);
    assert_string_equal(q->sessions[0].user, "ann");
    cs_store_query_free(q);
    q = ask_key(f, CS_Q_SESSION, "s0");
    assert_int_equal(q->nsessions, 0);
    cs_store_query_free(q);
    assert_int_equal(side_int(f, "SELECT COUNT(*) FROM sessions WHERE token_hash = 's0'"), 0);
    q = ask_key(f, CS_Q_TOKENS, "t1");
    assert_int_equal(q->ntokens, 1);
    assert_string_equal(q->tokens[0].name, "ci");
    cs_store_query_free(q);

    write_rec(f->store, CS_REC_USER_DEL, fill_user_del);
    write_rec(f->store, CS_REC_SESSION_DEL, fill_session_del);
    write_rec(f->store, CS_REC_TOKEN_DEL, fill_token_del);
    q = ask_key(f, CS_Q_USERS, "bob");
    assert_int_equal(q->nusers, 0);
    cs_store_query_free(q);
    q = ask_key(f, CS_Q_SESSION, "s1");
    assert_int_equal(q->nsessions, 0);
    cs_store_query_free(q);
    q = ask_key(f, CS_Q_TOKENS, "");
    assert_int_equal(q->ntokens, 0);
    cs_store_query_free(q);
}

/* A new password ends the user's sessions; so does deleting the user. A session written
 * late (a sign-in that checked the old password, or the deleted user's) is not found. */
static void a_new_password_or_a_deleted_user_ends_sessions(void **state)
{
    fixture *f = *state;
    open_store(f, 100);
    write_user(f, "ann", "h1");
    write_user(f, "bob", "h1");
    int64_t ann = password_at(f, "ann"), bob = password_at(f, "bob");
    write_session(f, "a1", "ann", ann, INT64_MAX);
    write_session(f, "a2", "ann", ann, INT64_MAX);
    write_session(f, "b1", "bob", bob, INT64_MAX);
    assert_true(session_found(f, "a1") && session_found(f, "a2") && session_found(f, "b1"));

    write_user(f, "ann", "h2"); /* a new password */
    /* (a query waits for the writes before it, so the side connection sees them next) */
    assert_false(session_found(f, "a1"));
    assert_false(session_found(f, "a2"));
    assert_int_equal(side_int(f, "SELECT COUNT(*) FROM sessions WHERE user_name = 'ann'"), 0);
    int64_t ann2 = password_at(f, "ann");
    assert_true(ann2 > ann);
    write_session(f, "a3", "ann", ann, INT64_MAX); /* checked against the old password */
    assert_false(session_found(f, "a3"));
    write_session(f, "a4", "ann", ann2, INT64_MAX);
    assert_true(session_found(f, "a4"));
    assert_true(session_found(f, "b1")); /* other users keep theirs */

    /* changed twice within a millisecond, it still moves on */
    write_user(f, "ann", "h3");
    write_user(f, "ann", "h4");
    assert_true(password_at(f, "ann") >= ann2 + 2);

    delete_user(f, "bob");
    assert_false(session_found(f, "b1"));
    assert_int_equal(side_int(f, "SELECT COUNT(*) FROM sessions WHERE user_name = 'bob'"), 0);
    write_session(f, "b2", "bob", bob, INT64_MAX); /* a sign-in that finished after */
    assert_false(session_found(f, "b2"));
    write_user(f, "bob", "h1"); /* the name again: a new user, not the old sessions */
    assert_false(session_found(f, "b2"));
}

/* The user and the user's sessions go in one transaction: when ending the sessions
 * fails, the user stays too, and both go when the batch is retried. */
static void a_user_and_the_sessions_go_together(void **state)
{
    fixture *f = *state;
    open_store(f, 100);
    write_user(f, "ann", "h1");
    write_session(f, "a1", "ann", password_at(f, "ann"), INT64_MAX);
    wait_for(f, (cs_store_stats){.written = 2});
    hold_deletes(f, "sessions");
    delete_user(f, "ann");
    wait_for(f, (cs_store_stats){.failures = 1});
    assert_int_equal(side_int(f, "SELECT COUNT(*) FROM users WHERE name = 'ann'"), 1);
    release_deletes(f, "sessions");
    wait_for(f, (cs_store_stats){.written = 3});
    assert_int_equal(side_int(f, "SELECT COUNT(*) FROM users WHERE name = 'ann'"), 0);
    assert_int_equal(side_int(f, "SELECT COUNT(*) FROM sessions"), 0);
}

static void transcripts_in_time_order(void **state)
{
    fixture *f = *state;
    open_store(f, 100);
    write_call(f->store, &(cs_call_row){.sid = "CA1", .transcription = "on"});
    write_segment(f->store, "caller", 2, 3000, "second", 900, false);
    write_segment(f->store, "agent", 1, 1500, "answer", -1, false);
    write_segment(f->store, "caller", 1, 1000, "first draft", 500, false);
    write_segment(f->store, "caller", 1, 1000, "first", 800, false); /* the same again */
    cs_store_query *q = query(CS_Q_TRANSCRIPT, "CA1", f);
    ask(f, q);
    assert_int_equal(q->status, 0);
    assert_int_equal(q->nsegments, 3);
    assert_string_equal(q->segments[0].text, "first");
    assert_int_equal(q->segments[0].confidence, 800);
    assert_string_equal(q->segments[1].speaker, "agent");
    assert_int_equal(q->segments[1].confidence, -1);
    assert_string_equal(q->segments[2].text, "second");
    assert_int_equal(q->segments[2].end_ms, 3900);
    cs_store_query_free(q);
    q = ask_call(f, "CA1");
    assert_string_equal(q->calls[0].transcription, "on");
    cs_store_query_free(q);
}

/* A refined final replaces the fast one of the same id, whichever is written first: one
 * row, the refined text. */
static void a_refined_final_replaces_the_fast_one(void **state)
{
    fixture *f = *state;
    open_store(f, 100);
    write_segment(f->store, "caller", 1, 1000, "then by all my problem", -1, false);
    write_segment(f->store, "caller", 1, 1100, "then not my problem", -1, true);
    write_segment(f->store, "caller", 2, 3000, "refined first", -1, true);
    write_segment(f->store, "caller", 2, 3000, "fast after", -1, false); /* out of order */
    wait_for(f, (cs_store_stats){.written = 4});
    assert_int_equal(side_int(f, "SELECT COUNT(*) FROM transcripts"), 2);
    cs_store_query *q = query(CS_Q_TRANSCRIPT, "CA1", f);
    ask(f, q);
    assert_int_equal(q->status, 0);
    assert_int_equal(q->nsegments, 2);
    assert_string_equal(q->segments[0].text, "then not my problem");
    assert_int_equal(q->segments[0].start_ms, 1100);
    assert_int_equal(q->segments[0].refined, 1);
    assert_string_equal(q->segments[1].text, "refined first");
    assert_int_equal(q->segments[1].refined, 1);
    cs_store_query_free(q);
}

/* An agent line the caller cut short keeps that mark: what was heard of it. */
static void a_cut_agent_line_says_so(void **state)
{
    fixture *f = *state;
    open_store(f, 100);
    write_segment(f->store, "caller", 1, 1000, "what time is it", -1, false);
    cs_store_rec *rec = cs_store_rec_new(CS_REC_SEGMENT);
    assert_non_null(rec);
    rec->segment = (cs_segment_row){.call_sid = "CA1",
                                    .stream_sid = "MZ1",
                                    .speaker = "agent",
                                    .seq = 1,
                                    .start_ms = 2000,
                                    .end_ms = 2600,
                                    .text = "It is half past",
                                    .confidence = -1,
                                    .cut = 1};
    cs_store_write(f->store, rec);
    wait_for(f, (cs_store_stats){.written = 2});
    cs_store_query *q = query(CS_Q_TRANSCRIPT, "CA1", f);
    ask(f, q);
    assert_int_equal(q->nsegments, 2);
    assert_int_equal(q->segments[0].cut, 0);
    assert_string_equal(q->segments[1].speaker, "agent");
    assert_int_equal(q->segments[1].cut, 1);
    cs_store_query_free(q);
}

/* While writes fail, queries answer from what the database holds and say they may be
 * behind; not found is then no proof. */
static void reads_do_not_wait_behind_failing_writes(void **state)
{
    fixture *f = *state;
    open_store(f, 64);
    write_call(f->store, &(cs_call_row){.sid = "CA1", .status = "ringing"});
    wait_for(f, (cs_store_stats){.written = 1});
    cs_store_query *q = ask_call(f, "CA1");
    assert_false(q->behind);
    assert_string_equal(q->error, "");
    cs_store_query_free(q);

    hold_types(f, "('held')");
    write_event(f->store, "CA1", "held", 1);
    write_call(f->store, &(cs_call_row){.sid = "CA2", .status = "ringing"});
    wait_for(f, (cs_store_stats){.written = 1, .failures = 2});
    q = ask_call(f, "CA1");
    assert_true(q->behind);
    assert_string_equal(q->calls[0].status, "ringing");
    assert_int_equal(q->nevents, 0);
    if (!strstr(q->error, "writes fail since") || !strstr(q->error, "held by the test"))
        fail_msg("'%s' does not say why", q->error);
    cs_store_query_free(q);
    q = query(CS_Q_CALL, "CA2", f);
    ask(f, q);
    assert_int_equal(q->status, CS_ENOTFOUND);
    assert_true(q->behind);
    cs_store_query_free(q);
    cs_store_stats st = stats(f);
    assert_true(st.failing_since_ms > 0 && st.failing_since_ms <= st.last_error_ms);
    assert_non_null(strstr(st.last_error, "held by the test"));

    side_exec(f, "DELETE FROM hold");
    wait_for(f, (cs_store_stats){.written = 3});
    assert_int_equal(stats(f).failing_since_ms, 0);
    q = ask_call(f, "CA2");
    assert_false(q->behind);
    cs_store_query_free(q);
}

#ifndef CS_TEST_PG
/* A reader stuck in the database (here SQLite waiting out another process's WAL locks,
 * which no busy handler shortens) does not hold its callers past the budget: they get a
 * stand-in answer, and the query is freed when the reader lets go of it. Writes stall
 * too, and count as failing. */
static void a_stuck_reader_is_answered_for(void **state)
{
    fixture *f = *state;
    open_store(f, 64);
    write_call(f->store, &(cs_call_row){.sid = "CA1", .status = "ringing"});
    wait_for(f, (cs_store_stats){.written = 1});
    pid_t holder = db_hold(f->db_path, DB_HOLD_READS);
    assert_true(holder > 0);

    cs_store_query *q = cs_store_query_new(CS_Q_CALL, on_answer_keep, f);
    snprintf(q->sid, sizeof q->sid, "CA1");
    cs_store_query_run(f->store, q);
    assert_true(tu_run_until(&f->env.loop, answered, f, TU_WAIT_MS));
    cs_store_query *a = f->last;
    assert_ptr_not_equal(a, q);
    assert_int_equal(a->status, -ETIMEDOUT);
    assert_string_equal(a->sid, "CA1");
    assert_non_null(strstr(a->error, "does not respond"));
    cs_store_query_free(a);
    cs_store_stats st = stats(f);
    assert_int_equal(st.reads_timed_out, 1);
    assert_int_equal(st.reads_pending, 1); /* the reader still has it */
    assert_int_equal(tu_log_contains("a query failed (no answer within 1000 ms"), 1);
    assert_true(st.reads_failing_since_ms > 0);

    write_event(f->store, "CA1", "stalled", 1);
    wait_stats(f, is_failing, "writes count as failing");
    assert_int_equal(stats(f).failures, 0);

    db_release(holder);
    wait_stats(f, no_reads_pending, "the reader let go");
    wait_for(f, (cs_store_stats){.written = 2});
    assert_int_equal(stats(f).failing_since_ms, 0);
    q = ask_call(f, "CA1");
    static const char *const types[] = {"stalled"};
    assert_event_types(q, types, 1);
    cs_store_query_free(q);
}
#endif

#ifndef CS_TEST_PG
/* Queries wait in a bounded queue: past CS_STORE_READS_MAX they are refused at once
 * (from the mailbox, never inside cs_store_query_run), and every one gets one answer. */
static void too_many_queries_are_refused(void **state)
{
    fixture *f = *state;
    open_store(f, 64);
    pid_t holder = db_hold(f->db_path, DB_HOLD_READS);
    assert_true(holder > 0);
    /* Once the first is answered for, the reader is stuck in it and takes no more. */
    unsigned n = CS_STORE_READS_MAX + 2;
    for (unsigned i = 0; i < n; i++) {
        cs_store_query *q = cs_store_query_new(CS_Q_CALLS, on_answer_free, f);
        assert_non_null(q);
        cs_store_query_run(f->store, q);
        if (i > 0) continue;
        assert_int_equal(f->answers, 0);
        f->want.queries = 1;
        assert_true(tu_run_until(&f->env.loop, answered_all, f, TU_WAIT_MS));
    }
    assert_int_equal(f->answers, 1);
    f->want.queries = n;
    assert_true(tu_run_until(&f->env.loop, answered_all, f, TU_WAIT_MS));
    assert_int_equal(f->answers, n);
    assert_int_equal(f->by_status[2], 1);
    assert_int_equal(f->by_status[1], n - 1);
    cs_store_stats st = stats(f);
    assert_int_equal(st.reads_refused, f->by_status[2]);
    assert_int_equal(st.reads_timed_out, f->by_status[1]);
    db_release(holder);
    wait_stats(f, no_reads_pending, "the reader let go");
    assert_int_equal(f->answers, n); /* nothing answered twice */
}
#endif

static bool reads_look_fine(const cs_store_stats *st)
{
    return st->reads_failing_since_ms == 0;
}

/* Queries failing in a row count against the store's health (answered ones are no proof
 * of anything) and are logged once, with a summary once one is answered again; with no
 * query for CS_STORE_READ_WINDOW_MS, an old failure no longer counts. */
static void failing_reads_are_a_health_matter_logged_once(void **state)
{
    fixture *f = *state;
    open_store(f, 16);
    write_call(f->store, &(cs_call_row){.sid = "CA1"});
    cs_store_query_free(ask_call(f, "CA1"));
    assert_int_equal(stats(f).reads_failing_since_ms, 0);
    side_exec(f, "DROP TABLE events");
    for (int i = 0; i < 5; i++) {
        cs_store_query *q = query(CS_Q_EVENTS, "CA1", f);
        ask(f, q);
        assert_int_equal(q->status, CS_EBACKEND);
        cs_store_query_free(q);
    }
    cs_store_stats st = stats(f);
    assert_true(st.reads_failing_since_ms > 0 &&
                st.reads_failing_since_ms <= st.last_read_error_ms);
    assert_non_null(strstr(st.last_read_error, NO_TABLE_EVENTS));
    assert_int_equal(st.reads_failed, 5);
    assert_int_equal(tu_log_contains("a query failed"), 1);

    cs_store_query *q = query(CS_Q_CALLS, NULL, f);
    ask(f, q);
    assert_int_equal(q->status, 0);
    cs_store_query_free(q);
    assert_int_equal(stats(f).reads_failing_since_ms, 0);
    assert_int_equal(tu_log_contains("5 queries failed since"), 1);
    assert_int_equal(tu_log_contains("answered again"), 1);

    q = query(CS_Q_EVENTS, "CA1", f);
    ask(f, q);
    cs_store_query_free(q);
    assert_true(stats(f).reads_failing_since_ms > 0);
    poll_stat p = {f, reads_look_fine};
    if (!tu_run_until(&f->env.loop, stat_holds, &p, CS_STORE_READ_WINDOW_MS + TU_WAIT_MS))
        fail_msg("an old failure still counts");
    assert_int_equal(tu_log_contains("a query failed"), 2);
    q = query(CS_Q_EVENTS, "CA1", f); /* another burst: the old one is told of first */
    ask(f, q);
    cs_store_query_free(q);
    assert_int_equal(tu_log_contains("1 query failed since"), 1);
    assert_int_equal(tu_log_contains("a query failed"), 3);
    assert_true(stats(f).reads_failing_since_ms > 0);
}

#ifndef CS_TEST_PG
static void unreadable_database_is_reported(void **state)
{
    fixture *f = *state;
    open_store(f, 16);
    assert_int_equal(unlink(f->db_path), 0); /* the writer keeps its handle */
    cs_store_query *q = query(CS_Q_CALLS, NULL, f);
    ask(f, q);
    assert_int_equal(q->status, CS_EBACKEND);
    if (!strstr(q->error, "cannot open")) fail_msg("'%s'", q->error);
    cs_store_query_free(q);
    assert_int_equal(stats(f).reads_failed, 1);
}
#endif

static void in_order_queries_wait_for_the_writes(void **state)
{
    fixture *f = *state;
    open_store(f, 64);
    hold_types(f, "('held')");
    write_event(f->store, "CA1", "held", 1);
    cs_store_query *q = query(CS_Q_EVENTS, "CA1", f);
    f->answers = 0;
    cs_store_query_run_in_order(f->store, q);
    wait_for(f, (cs_store_stats){.failures = 3});
    assert_int_equal(f->answers, 0);
    side_exec(f, "DELETE FROM hold");
    assert_true(tu_run_until(&f->env.loop, answered, f, TU_WAIT_MS));
    assert_int_equal(q->status, 0);
    static const char *const types[] = {"held"};
    assert_event_types(q, types, 1);
    cs_store_query_free(q);
}

static cs_store_query *unfinished_of(fixture *f, int limit, const char *node)
{
    cs_store_query *q = query(CS_Q_UNFINISHED, NULL, f);
    snprintf(q->key, sizeof q->key, "%s", cs_store_run(f->store));
    snprintf(q->node, sizeof q->node, "%s", node);
    q->limit = limit;
    f->answers = 0;
    cs_store_query_run_in_order(f->store, q);
    assert_true(tu_run_until(&f->env.loop, answered, f, TU_WAIT_MS));
    assert_int_equal(q->status, 0);
    return q;
}

static cs_store_query *unfinished(fixture *f, int limit)
{
    return unfinished_of(f, limit, "");
}

/* The calls an earlier run left live are told by the run that started them, not by the
 * clock (it may step back across a restart): this run's are never listed, whatever their
 * times, and a call written before runs were recorded is an earlier run's. */
static void unfinished_calls_are_listed(void **state)
{
    fixture *f = *state;
    open_store(f, 64);
    /* live when the run ended: a stream never ended */
    write_call(f->store, &(cs_call_row){.sid = "CA1", .status = "in-progress", .started_at = 100});
    write_stream(f->store, &(cs_stream_row){.sid = "MZ1", .call_sid = "CA1", .started_at = 100});
    write_event(f->store, "CA1", "mark", 700);
    /* ended */
    write_call(f->store, &(cs_call_row){.sid = "CA2", .started_at = 200, .ended_at = 900});
    write_stream(
        f->store,
        &(cs_stream_row){.sid = "MZ2", .call_sid = "CA2", .started_at = 200, .ended_at = 900});
    /* ended by a status callback, its stream never */
    write_call(f->store, &(cs_call_row){.sid = "CA3", .started_at = 300, .ended_at = 400});
    write_stream(f->store, &(cs_stream_row){.sid = "MZ3", .call_sid = "CA3", .started_at = 350});
    /* the webhook only: it starts in the next run */
    write_call(f->store, &(cs_call_row){.sid = "CA4", .status = "ringing"});
    close_store(f);
    side_exec(f, "UPDATE calls SET run = NULL WHERE sid = 'CA3'"); /* an older build's */

    open_store(f, 64); /* the next run, its clock stepped back */
    write_call(f->store, &(cs_call_row){.sid = "CA5", .status = "in-progress", .started_at = 50});
    write_stream(f->store, &(cs_stream_row){.sid = "MZ5", .call_sid = "CA5", .started_at = 50});
    write_call(f->store, &(cs_call_row){.sid = "CA4", .status = "in-progress", .started_at = 60});
    write_call(f->store, &(cs_call_row){.sid = "CA1", .summary = "touched after it started"});
    cs_store_query *q = unfinished(f, 1);
    assert_int_equal(q->ncalls, 1);
    assert_true(q->more);
    assert_string_equal(q->calls[0].sid, "CA1");
    assert_int_equal(q->calls[0].last_at, 700);
    assert_int_equal(q->nstreams, 2); /* of later calls too: the caller matches them */
    assert_string_equal(q->streams[0].sid, "MZ1");
    assert_string_equal(q->streams[1].sid, "MZ3");
    cs_store_query_free(q);

    q = unfinished(f, 10);
    assert_int_equal(q->ncalls, 2);
    assert_false(q->more);
    assert_string_equal(q->calls[1].sid, "CA3");
    assert_int_equal(q->calls[1].last_at, 350);
    assert_int_equal(q->nstreams, 2);
    cs_store_query_free(q);
}

/* A node recovering at start-up ends its own calls and those of no node, never the calls
 * live on other nodes; a write that does not say the node keeps it. */
static void unfinished_calls_of_a_node(void **state)
{
    fixture *f = *state;
    open_store(f, 64);
    static const struct {
        const char *sid, *node;
    } calls[] = {{"CA1", "a"}, {"CA2", "b"}, {"CA3", NULL}};
    for (int i = 0; i < 3; i++) {
        write_call(
            f->store,
            &(cs_call_row){.sid = calls[i].sid, .node = calls[i].node, .started_at = 100 + i});
        char mz[8];
        snprintf(mz, sizeof mz, "MZ%d", i + 1);
        write_stream(f->store,
                     &(cs_stream_row){.sid = mz, .call_sid = calls[i].sid, .started_at = 100 + i});
    }
    close_store(f);
    open_store(f, 64);
    write_call(f->store, &(cs_call_row){.sid = "CA1", .status = "in-progress"});
    cs_store_query *q = ask_call(f, "CA1");
    assert_string_equal(q->calls[0].node, "a");
    cs_store_query_free(q);

    q = unfinished_of(f, 10, "a");
    assert_int_equal(q->ncalls, 2);
    assert_string_equal(q->calls[0].sid, "CA1");
    assert_string_equal(q->calls[0].node, "a");
    assert_string_equal(q->calls[1].sid, "CA3");
    assert_null(q->calls[1].node);
    assert_int_equal(q->nstreams, 2);
    assert_string_equal(q->streams[0].sid, "MZ1");
    assert_string_equal(q->streams[1].sid, "MZ3");
    cs_store_query_free(q);

    q = unfinished(f, 10); /* no node: all of them */
    assert_int_equal(q->ncalls, 3);
    assert_int_equal(q->nstreams, 3);
    cs_store_query_free(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(open_runs_migrations_once, setup, teardown),
#ifndef CS_TEST_PG
        cmocka_unit_test_setup_teardown(url_forms, setup, teardown),
#endif
#ifndef CS_TEST_PG
        cmocka_unit_test_setup_teardown(broken_databases_are_refused, setup, teardown),
#endif
        cmocka_unit_test_setup_teardown(call_upsert_keeps_what_is_not_said, setup, teardown),
        cmocka_unit_test_setup_teardown(streams_and_events_come_with_their_call, setup, teardown),
        cmocka_unit_test_setup_teardown(events_page_by_id, setup, teardown),
        cmocka_unit_test_setup_teardown(a_call_never_goes_back, setup, teardown),
        cmocka_unit_test_setup_teardown(events_read_in_time_order, setup, teardown),
        cmocka_unit_test_setup_teardown(calls_page_newest_first, setup, teardown),
        cmocka_unit_test_setup_teardown(limits_are_clamped, setup, teardown),
        cmocka_unit_test_setup_teardown(call_query_caps_streams_and_events, setup, teardown),
        cmocka_unit_test_setup_teardown(queries_read_their_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(query_failures_are_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(records_without_keys_are_dropped, setup, teardown),
        cmocka_unit_test_setup_teardown(failing_batches_are_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(users_sessions_and_tokens, setup, teardown),
        cmocka_unit_test_setup_teardown(a_new_password_or_a_deleted_user_ends_sessions, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_user_and_the_sessions_go_together, setup, teardown),
        cmocka_unit_test_setup_teardown(transcripts_in_time_order, setup, teardown),
        cmocka_unit_test_setup_teardown(a_refined_final_replaces_the_fast_one, setup, teardown),
        cmocka_unit_test_setup_teardown(a_cut_agent_line_says_so, setup, teardown),
        cmocka_unit_test_setup_teardown(reads_do_not_wait_behind_failing_writes, setup, teardown),
#ifndef CS_TEST_PG
        cmocka_unit_test_setup_teardown(a_stuck_reader_is_answered_for, setup, teardown),
#endif
#ifndef CS_TEST_PG
        cmocka_unit_test_setup_teardown(too_many_queries_are_refused, setup, teardown),
#endif
#ifndef CS_TEST_PG
        cmocka_unit_test_setup_teardown(unreadable_database_is_reported, setup, teardown),
#endif
        cmocka_unit_test_setup_teardown(failing_reads_are_a_health_matter_logged_once, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(in_order_queries_wait_for_the_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(unfinished_calls_are_listed, setup, teardown),
        cmocka_unit_test_setup_teardown(unfinished_calls_of_a_node, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
