/* The PostgreSQL store against real failures of its server: stopped and started again
 * mid-writes, its connections terminated, a table locked by another session; and two
 * nodes migrating one database at once. The suites both backends share are
 * test_store_{sqlite,search,spill} (built again as *_pg). */
#define CS_TEST_PG
#include "store_harness.h"

#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>

static bool failed_some(const cs_store_stats *st)
{
    return st->failures > 0 && st->failing_since_ms != 0;
}

static bool spilled_some(const cs_store_stats *st)
{
    return st->spilled > 0;
}

static bool all_back(const cs_store_stats *st)
{
    return st->written >= 42 && !st->queued && !st->spill_queued && !st->failing_since_ms &&
           st->replayed == st->spilled;
}

/* The server stops mid-call: writes fail, queue, spill; queries fail fast rather than
 * hang; when it is back everything is written, in order, nothing lost. */
static void a_stopped_server_loses_nothing(void **state)
{
    fixture *f = *state;
    open_store(f, 8);
    write_call(f->store, &(cs_call_row){.sid = "CA1", .status = "in-progress", .started_at = 1});
    wait_for(f, (cs_store_stats){.written = 1});

    pg_server_stop_now(&test_pg);
    for (int i = 1; i <= 40; i++) write_event(f->store, "CA1", "media", i);
    wait_stats(f, failed_some, "writes fail");
    wait_stats(f, spilled_some, "writes spill");
    cs_store_query *q = query(CS_Q_CALL, "CA1", f);
    ask(f, q);
    assert_true(q->status == CS_EBACKEND || q->status == -ETIMEDOUT);
    cs_store_query_free(q);
    assert_true(stats(f).reads_failed + stats(f).reads_timed_out >= 1);

    assert_int_equal(pg_server_start_again(&test_pg), 0);
    write_call(f->store, &(cs_call_row){.sid = "CA1", .status = "completed", .ended_at = 50});
    wait_stats(f, all_back, "everything written");
    cs_store_stats st = stats(f);
    if (st.written != 42)
        fail_msg("written %llu spilled %llu replayed %llu lost %llu queued %zu spillq %zu",
                 (unsigned long long)st.written, (unsigned long long)st.spilled,
                 (unsigned long long)st.replayed, (unsigned long long)st.lost, st.queued,
                 st.spill_queued);
    assert_int_equal(st.written, 42);
    assert_int_equal(st.lost, 0);
    assert_int_equal(st.replayed, st.spilled);
    assert_int_equal(st.failing_since_ms, 0);
    char at[4096];
    side_text(f, "SELECT " STRING_AGG("at") " FROM (SELECT at FROM events ORDER BY id) e", at,
              sizeof at);
    char want[4096] = "";
    for (int i = 1; i <= 40; i++)
        snprintf(want + strlen(want), sizeof want - strlen(want), "%s%d", i > 1 ? "," : "", i);
    assert_string_equal(at, want);
    q = ask_call(f, "CA1");
    assert_string_equal(q->calls[0].status, "completed");
    assert_int_equal(q->nevents, 40);
    cs_store_query_free(q);
}

/* The server ends the store's sessions (a failover, an admin): the next attempt connects
 * again, the writer's batch is retried, and a query is answered. */
static void terminated_connections_come_back(void **state)
{
    fixture *f = *state;
    open_store(f, 64);
    write_call(f->store, &(cs_call_row){.sid = "CA1", .status = "ringing"});
    cs_store_query *q = ask_call(f, "CA1"); /* the reader connects too */
    cs_store_query_free(q);
    assert_int_equal(side_int(f, "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity"
                                 " WHERE application_name = 'callstream'"),
                     2);
    write_call(f->store, &(cs_call_row){.sid = "CA1", .status = "in-progress"});
    wait_for(f, (cs_store_stats){.written = 2, .failures = 1});
    q = ask_call(f, "CA1");
    assert_string_equal(q->calls[0].status, "in-progress");
    cs_store_query_free(q);
    assert_int_equal(stats(f).lost, 0);
}

static bool is_failing_now(const cs_store_stats *st)
{
    return st->failing_since_ms != 0;
}

/* Another session holds a table locked: a query is answered -ETIMEDOUT by its deadline
 * (the statement cancelled, never waited out), writes stall and count as failing, and go
 * in once the lock is let go. */
static void a_locked_table_times_out_queries_and_stalls_writes(void **state)
{
    fixture *f = *state;
    open_store(f, 64);
    write_call(f->store, &(cs_call_row){.sid = "CA1", .status = "ringing"});
    wait_for(f, (cs_store_stats){.written = 1});
    side_exec(f, "BEGIN; LOCK TABLE calls IN ACCESS EXCLUSIVE MODE");

    cs_store_query *q = query(CS_Q_CALL, "CA1", f);
    ask(f, q);
    assert_int_equal(q->status, -ETIMEDOUT);
    cs_store_query_free(q);
    assert_int_equal(stats(f).reads_timed_out, 1);
    /* the reader is free again: it cancelled, and does not hold the lock queue */
    wait_stats(f, no_reads_pending, "the reader let go");

    write_call(f->store, &(cs_call_row){.sid = "CA1", .status = "in-progress"});
    wait_stats(f, is_failing_now, "writes count as failing");
    side_exec(f, "COMMIT");
    wait_for(f, (cs_store_stats){.written = 2});
    q = ask_call(f, "CA1");
    assert_string_equal(q->calls[0].status, "in-progress");
    cs_store_query_free(q);
}

static bool failed_once(const cs_store_stats *st)
{
    return st->failures >= 1;
}

/* A transaction stuck past its budget (10 s) is cancelled and fails, the connection is
 * dropped (the server's statement cancelled: it does not keep the lock queue), and the
 * batch is retried on a new one until the lock goes. */
static void a_stuck_transaction_is_cancelled_and_retried(void **state)
{
    fixture *f = *state;
    open_store(f, 64);
    write_event(f->store, "CA1", "first", 1);
    wait_for(f, (cs_store_stats){.written = 1});
    side_exec(f, "BEGIN; LOCK TABLE events IN ACCESS EXCLUSIVE MODE");
    write_event(f->store, "CA1", "stuck", 2);
    poll_stat p = {f, failed_once};
    if (!tu_run_until(&f->env.loop, stat_holds, &p, 3 * TU_WAIT_MS)) fail_msg("never cancelled");
    cs_store_stats st = stats(f);
    if (!strstr(st.last_error, "timed out")) fail_msg("'%s'", st.last_error);
    assert_true(tu_log_contains("timed out"));
    side_exec(f, "COMMIT");
    wait_for(f, (cs_store_stats){.written = 2});
    assert_int_equal(side_int(f, "SELECT COUNT(*) FROM events"), 2);
}

/* A server that takes the connection and never says a word (a hung host, a black-holed
 * port): opening gives up by its deadline, saying so, rather than waiting forever. */
static void a_server_that_never_answers_is_given_up_on(void **state)
{
    fixture *f = *state;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(fd, 8), 0); /* the kernel completes the handshake; nobody reads */
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    char url[128];
    snprintf(url, sizeof url, "postgresql://ann:secret@127.0.0.1:%d/calls", ntohs(a.sin_port));
    cs_buf err = CS_BUF_INIT(4096);
    cs_store *s = NULL;
    assert_int_equal(cs_store_open(&s, url, f->env.mb, 16, f->env.dir, &err), CS_EBACKEND);
    if (!strstr(err.data, "timed out") || strstr(err.data, "secret")) fail_msg("'%s'", err.data);
    cs_buf_free(&err);
    close(fd);
}

typedef struct opener {
    const char *url;
    int rc;
    void *db;
    char err[256];
} opener;

static void *open_db(void *data)
{
    opener *o = data;
    cs_buf err = CS_BUF_INIT(256);
    o->rc = cs_store_postgres.open(&o->db, o->url, &err);
    if (o->rc < 0) snprintf(o->err, sizeof o->err, "%s", err.data ? err.data : "");
    cs_buf_free(&err);
    return NULL;
}

/* Two nodes start on a new database at once: one migrates, the other waits for it (the
 * advisory lock) and finds the schema done. */
static void nodes_starting_together_migrate_once(void **state)
{
    fixture *f = *state;
    opener o[2] = {{.url = f->url}, {.url = f->url}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++) assert_int_equal(pthread_create(&t[i], NULL, open_db, &o[i]), 0);
    for (int i = 0; i < 2; i++) {
        pthread_join(t[i], NULL);
        if (o[i].rc < 0) fail_msg("open %d: %s", i, o[i].err);
        cs_store_postgres.close(o[i].db);
    }
    assert_int_equal(side_int(f, "SELECT COUNT(*) FROM schema_migrations"), 12);
    assert_int_equal(tu_log_contains("store(postgresql): migrated to schema 12"), 1);
}

/* A database newer than this build, or one whose tables are in the way, is refused at
 * open, saying why (and never the URL's password). */
static void broken_databases_are_refused(void **state)
{
    fixture *f = *state;
    side_exec(f, "CREATE TABLE calls (sid TEXT)");
    cs_buf err = CS_BUF_INIT(4096);
    cs_store *s = NULL;
    assert_int_equal(cs_store_open(&s, f->url, f->env.mb, 16, f->env.dir, &err), CS_EBACKEND);
    if (!strstr(err.data, "migration 1 failed")) fail_msg("'%s'", err.data);
    side_exec(f, "DROP TABLE calls");
    open_store(f, 16);
    close_store(f);
    side_exec(f, "INSERT INTO schema_migrations VALUES (1000, 0)");
    cs_buf_reset(&err);
    assert_int_equal(cs_store_open(&s, f->url, f->env.mb, 16, f->env.dir, &err), CS_EBACKEND);
    if (!strstr(err.data, "newer than this build")) fail_msg("'%s'", err.data);
    cs_buf_free(&err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(a_stopped_server_loses_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(terminated_connections_come_back, setup, teardown),
        cmocka_unit_test_setup_teardown(a_locked_table_times_out_queries_and_stalls_writes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_stuck_transaction_is_cancelled_and_retried, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_server_that_never_answers_is_given_up_on, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(nodes_starting_together_migrate_once, setup, teardown),
        cmocka_unit_test_setup_teardown(broken_databases_are_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
