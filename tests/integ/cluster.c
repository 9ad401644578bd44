/* Nodes of a cluster. What acts on a live call happens on the node that holds it: a final
 * status callback ends its streams. After kill -9 a node's calls are repaired by that
 * node alone, when it starts again under the same NODE_ID: another node sharing the
 * store leaves them (their recordings are not on its disk). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "integ_util.h"

#define WAV     "wav/jfk_inaugural_1961.wav"
#define WAIT_MS 30000

/* The sid of the one live call in /streams, polling. */
static bool live_call(const it_server *s, char sid[64])
{
    for (int i = 0; i < 1500; i++) {
        cJSON *j = it_get_json(s->port, "/streams");
        const char *call = it_str(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "streams"), 0),
                                  "call_sid");
        snprintf(sid, 64, "%s", call);
        cJSON_Delete(j);
        if (sid[0]) return true;
        it_sleep_ms(20);
    }
    return false;
}

static void status_callback(const it_server *s, const char *sid, const char *status)
{
    char body[256];
    snprintf(body, sizeof body, "CallSid=%s&CallStatus=%s", sid, status);
    it_resp r;
    IT_CHECK(it_http(s->port, "POST", "/twilio/status",
                     "Content-Type: application/x-www-form-urlencoded\r\n", body, &r) == 0 &&
                 r.status == 204,
             "status callback %s: %d", status, r.status);
    it_resp_free(&r);
}

typedef struct sql_wait {
    const char *db;
    char sql[512];
    long long want;
} sql_wait;

static bool sql_is(void *data)
{
    sql_wait *w = data;
    return it_sql(w->db, w->sql) == w->want;
}

/* A final CallStatus ends the live call's streams (closed from our side). */
static void final_status_ends_call(void)
{
    it_server s;
    const char *args[] = {"--agent", "echo", "--node-id", "a", NULL};
    if (!it_server_up(&s, args)) return;
    pid_t sim = it_sim_spawn(&s, "--calls 1 --duration 60 --wav %s", it_corpus(WAV));
    char sid[64];
    IT_CHECK(live_call(&s, sid), "the call did not start");
    status_callback(&s, sid, "in-progress");
    status_callback(&s, sid, "completed");
    sql_wait w = {.db = it_db(&s), .want = 1};
    snprintf(w.sql, sizeof w.sql,
             "SELECT COUNT(*) FROM streams WHERE call_sid = '%s' AND end_reason = 'closed_by_us'",
             sid);
    IT_CHECK(it_until(sql_is, &w, WAIT_MS), "the call's stream was not ended by its status");
    snprintf(w.sql, sizeof w.sql,
             "SELECT COUNT(*) FROM calls WHERE sid = '%s' AND status = 'completed' AND node = 'a'",
             sid);
    IT_CHECK(it_until(sql_is, &w, WAIT_MS), "the call is not stored completed, held by node a");
    snprintf(w.sql, sizeof w.sql,
             "SELECT COUNT(*) FROM events WHERE call_sid = '%s' AND type = 'status'", sid);
    w.want = 2;
    IT_CHECK(it_until(sql_is, &w, WAIT_MS), "the status events are not stored, once each");
    cJSON_Delete(it_sim_wait(sim, NULL));
    IT_CHECK(it_server_stop(&s, SIGTERM, 10000) == 0, "the server did not exit cleanly");
    it_server_cleanup(&s);
}

static bool log_says(const it_server *s, const char *needle)
{
    for (int i = 0; i < WAIT_MS / 50; i++) {
        if (it_log_count(s, needle) > 0) return true;
        it_sleep_ms(50);
    }
    return false;
}

/* kill -9 of node a mid-call: node b, sharing its store, does not repair a's call at its
 * start; a, started again, does, with its recording. */
static void repair_own_calls(void)
{
    it_server s;
    const char *as_a[] = {"--agent", "echo", "--node-id", "a", NULL};
    const char *as_b[] = {"--agent", "echo", "--node-id", "b", NULL};
    if (!it_server_up(&s, as_a)) return;
    pid_t sim = it_sim_spawn(&s, "--calls 1 --duration 30 --wav %s", it_corpus(WAV));
    char sid[64];
    IT_CHECK(live_call(&s, sid), "the call did not start");
    it_sleep_ms(1500);
    it_server_stop(&s, SIGKILL, 5000);
    cJSON_Delete(it_sim_wait(sim, NULL));

    IT_CHECK(it_server_restart(&s, as_b) == 0, "node b did not start");
    IT_CHECK(log_says(&s, "start-up repair done: 0 call(s) of node b"),
             "node b's start-up repair did not finish, or ended a call of node a");
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT COUNT(*) FROM calls WHERE sid = '%s' AND ended_at IS NULL AND node = 'a'",
             sid);
    IT_CHECK(it_sql(it_db(&s), sql) == 1, "node b ended node a's call");
    IT_CHECK(it_server_stop(&s, SIGTERM, 10000) == 0, "node b did not exit cleanly");

    IT_CHECK(it_server_restart(&s, as_a) == 0, "node a did not start again");
    IT_CHECK(log_says(&s, "start-up repair done: 1 call(s) of node a"),
             "node a did not repair its call");
    sql_wait w = {.db = it_db(&s), .want = 1};
    snprintf(w.sql, sizeof w.sql,
             "SELECT COUNT(*) FROM calls WHERE sid = '%s' AND status = 'abnormal' AND recording "
             "IS NOT NULL AND recording_ms > 0",
             sid);
    IT_CHECK(it_until(sql_is, &w, WAIT_MS), "node a's call is not ended with its recording");
    IT_CHECK(it_server_stop(&s, SIGTERM, 10000) == 0, "node a did not exit cleanly");
    it_server_cleanup(&s);
}

int main(int argc, char **argv)
{
    static const it_case cases[] = {
        {"final_status_ends_call", final_status_ends_call},
        {"repair_own_calls", repair_own_calls},
    };
    return it_run("cluster", cases, sizeof cases / sizeof *cases, argc, argv);
}
