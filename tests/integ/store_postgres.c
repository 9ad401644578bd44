/* The gateway on PostgreSQL (DATABASE_URL=postgresql://…, a private server: pg_server.h):
 * a call is recorded and read back through the API; the server is stopped mid-call and
 * started again: the call goes on and is recorded, writes queue and spill while it is
 * away and are replayed, nothing is lost, every event stored in order. Sign-in and the
 * test's API token live in PostgreSQL too. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "integ_util.h"
#include "pg_server.h"

#define WAV     "wav/jfk_inaugural_1961.wav"
#define CALL_S  16
#define AWAY_MS 3000 /* how long the database is away mid-call */
#define WAIT_MS 30000

static it_server srv;
static pg_server pg;
static char url[256];

static long long pg_int(const char *sql)
{
    PGconn *c = PQconnectdb(url);
    PGresult *r = PQstatus(c) == CONNECTION_OK ? PQexec(c, sql) : NULL;
    long long v = r && PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1
                      ? strtoll(PQgetvalue(r, 0, 0), NULL, 10)
                      : -1;
    if (v < 0) fprintf(stderr, "%s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
    return v;
}

static bool health_is(void *want)
{
    return it_health_is(srv.port, want);
}

static bool live_call(void *sid)
{
    cJSON *j = it_get_json(srv.port, "/streams");
    const cJSON *st = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "streams"), 0);
    if (st) snprintf(sid, 64, "%s", it_str(st, "call_sid"));
    cJSON_Delete(j);
    return st != NULL;
}

static bool call_stored(void *sid)
{
    char target[128];
    snprintf(target, sizeof target, "/api/v1/calls/%s", (char *)sid);
    cJSON *j = it_get_json(srv.port, target);
    bool ok = j != NULL;
    cJSON_Delete(j);
    return ok;
}

static bool recorded(void *sid)
{
    char target[128];
    snprintf(target, sizeof target, "/api/v1/calls/%s", (char *)sid);
    cJSON *j = it_get_json(srv.port, target);
    const cJSON *call = cJSON_GetObjectItem(j, "call");
    bool ok = cJSON_IsObject(cJSON_GetObjectItem(call, "recording")) &&
              strcmp(it_str(call, "status"), "completed") == 0;
    cJSON_Delete(j);
    return ok;
}

static bool spilled(void *data)
{
    (void)data;
    return it_store_spilled(srv.port);
}

static bool caught_up(void *data)
{
    (void)data;
    return it_store_caught_up(srv.port);
}

static void outage(void)
{
    IT_CHECK(pg_server_start(&pg) == 0, "no PostgreSQL server");
    IT_CHECK(pg_server_database(&pg, url, sizeof url) == 0, "no database");
    if (it_failures) return;
    setenv("DATABASE_URL", url, 1); /* the server, and the commands that make its token */
    const char *args[] = {"--agent", "echo", "--echo-mark-ms", "20", "--store-queue-max",
                          "100",     NULL};
    if (!it_server_up(&srv, args)) return;
    cJSON *st = it_get_json(srv.port, "/status");
    IT_CHECK(strcmp(it_str(st, "store"), "postgresql") == 0, "store %s", it_str(st, "store"));
    cJSON_Delete(st);
    char cookie[512];
    IT_CHECK(it_session(&srv, cookie, sizeof cookie) == 0, "cannot sign in");
    IT_CHECK(pg_int("SELECT COUNT(*) FROM api_tokens") == 1, "the API token is not in PostgreSQL");

    pid_t sim =
        it_sim_spawn(&srv, "--calls 1 --duration %d --dtmf 1234 --wav %s", CALL_S, it_corpus(WAV));
    char sid[64] = "";
    IT_CHECK(it_until(live_call, sid, WAIT_MS), "the call did not start");
    IT_CHECK(it_until(call_stored, sid, WAIT_MS), "the call's row is not read back");

    /* the database goes away mid-call, and comes back */
    pg_server_stop_now(&pg);
    IT_CHECK(it_until(health_is, "degraded", WAIT_MS), "/health does not say degraded");
    IT_CHECK(it_until(spilled, NULL, WAIT_MS), "nothing spilled");
    it_sleep_ms(AWAY_MS);
    IT_CHECK(pg_server_start_again(&pg) == 0, "PostgreSQL did not start again");

    int exit_status;
    cJSON *sum = it_sim_wait(sim, &exit_status);
    IT_CHECK(exit_status == 0 && it_num(sum, "completed") == 1 && it_num(sum, "missing") == 0,
             "the call did not go on through the outage");
    cJSON_Delete(sum);
    IT_CHECK(it_until(caught_up, NULL, WAIT_MS), "the store did not catch up");
    IT_CHECK(it_metric(srv.port, "callstream_store_lost_total") == 0, "records lost");
    IT_CHECK(it_until(recorded, sid, WAIT_MS), "the call is not read back completed, recorded");

    double marks = it_metric(srv.port, "callstream_marks_total{state=\"played\"}") +
                   it_metric(srv.port, "callstream_marks_total{state=\"cleared\"}");
    long long stored = pg_int("SELECT COUNT(*) FROM events WHERE type = 'mark'");
    IT_CHECK(marks > 100 && stored == (long long)marks, "%lld mark events stored of %.0f", stored,
             marks);
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM events WHERE type = 'dtmf' AND call_sid = '%s'",
             sid);
    IT_CHECK(pg_int(sql) == 4, "dtmf events");
    /* each call's, through the API: more than one loop writes them (the webhook's, the
     * stream's) */
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM events WHERE call_sid = '%s'", sid);
    long long read = it_events_in_order(srv.port, sid);
    long long events = pg_int(sql);
    IT_CHECK(events > 0 && read == events, "events out of order: %lld read of %lld", read, events);
    IT_CHECK(pg_int("SELECT COUNT(*) FROM sessions") == 1, "the session is not stored");
    IT_CHECK(it_server_stop(&srv, SIGTERM, 10000) == 0, "the server did not exit cleanly");
    it_server_cleanup(&srv);
}

int main(void)
{
    outage();
    pg_server_destroy(&pg);
    return it_done("store_postgres");
}
