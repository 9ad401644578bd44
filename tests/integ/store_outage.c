/* The database fails in the middle of a call: first another process holds its write lock
 * (writes fail, reads go on), then its readers' locks too (reads stall inside SQLite).
 * Throughout, the API, /status and /health answer (503 with a reason where the answer
 * needs the store), sign-in answers, a sign-in whose client left is dropped, calls go on
 * and are recorded, writes queue and spill; once the database is back every row arrives,
 * in order, spilled ones too; the outage is an event of the live call and a metric.
 * An idle gateway whose queries fail is degraded too, and /status says why.
 * Then `callstream user …` and `token …` run while the database cannot be written: each
 * says the change was not made and exits 1, touches none of the gateway's spill files,
 * and the change indeed never happens; once the database is back, it works.
 * Last, the disk fills while records spill (DATA_DIR on a small tmpfs; mounting needs
 * root, and a refusal fails the test): the spill file keeps whole lines, every record is
 * either stored or counted as lost, and the log says so once, with a summary. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dblock.h"
#include "integ_util.h"

#define WAV        "wav/jfk_inaugural_1961.wav"
#define CALL_S     20
#define WAIT_MS    20000
#define LOGIN_FORM "username=admin&password=%s"
#define JSON_FORM  "Content-Type: application/x-www-form-urlencoded\r\nAccept: application/json\r\n"

static it_server srv;
static char db[1024];

/* GET `target` with `headers` (a browser's cookie) instead of the test's token. */
static int get_as(const char *target, const char *headers)
{
    it_resp r;
    int status = it_http_browser(srv.port, "GET", target, headers, NULL, &r) == 0 ? r.status : -1;
    it_resp_free(&r);
    return status;
}

/* GET `target`: its status, and its message when it is an error. */
static int get(const char *target, char *message, size_t cap)
{
    it_resp r;
    int status = it_http(srv.port, "GET", target, NULL, NULL, &r) == 0 ? r.status : -1;
    if (message)
        snprintf(message, cap, "%s", it_str(cJSON_GetObjectItem(r.json, "error"), "message"));
    it_resp_free(&r);
    return status;
}

/* POST /login as admin (JSON): its status, and the error message if any. */
static int sign_in(char *message, size_t cap)
{
    char pw[64], body[256];
    it_admin_password(&srv, pw, sizeof pw);
    snprintf(body, sizeof body, LOGIN_FORM, pw);
    it_resp r;
    int status = it_http(srv.port, "POST", "/login", JSON_FORM, body, &r) == 0 ? r.status : -1;
    if (message)
        snprintf(message, cap, "%s", it_str(cJSON_GetObjectItem(r.json, "error"), "message"));
    it_resp_free(&r);
    return status;
}

static bool health_is(void *want)
{
    return it_health_is(srv.port, want);
}

/* The CallSid of a live call other than `other` ("" for any). */
static bool live_call(char *sid, const char *other)
{
    cJSON *j = it_get_json(srv.port, "/streams");
    const cJSON *st;
    bool found = false;
    cJSON_ArrayForEach(st, cJSON_GetObjectItem(j, "streams"))
    {
        if (!found && strcmp(it_str(st, "call_sid"), other) != 0) {
            snprintf(sid, 64, "%s", it_str(st, "call_sid"));
            found = true;
        }
    }
    cJSON_Delete(j);
    return found;
}

typedef struct want_call {
    char sid[64];   /* the call found */
    char other[64]; /* one it is not */
    int status;     /* call_status: the answer awaited */
} want_call;

static bool new_call(void *data)
{
    want_call *w = data;
    return live_call(w->sid, w->other);
}

static bool call_status(void *data)
{
    want_call *w = data;
    char target[128];
    snprintf(target, sizeof target, "/api/v1/calls/%s", w->sid);
    return get(target, NULL, 0) == w->status;
}

static bool recorded(void *data)
{
    want_call *w = data;
    char target[128];
    snprintf(target, sizeof target, "/api/v1/calls/%s", w->sid);
    cJSON *j = it_get_json(srv.port, target);
    const cJSON *rec = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "call"), "recording");
    bool ok = cJSON_IsNumber(cJSON_GetObjectItem(rec, "duration_ms")); /* finished */
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

/* Written: nothing queued, nothing spilled that was not replayed. */
static bool settled(void *data)
{
    (void)data;
    return it_health_is(srv.port, "ok") &&
           it_metric(srv.port, "callstream_store_queue_depth") == 0 &&
           it_metric(srv.port, "callstream_store_spill_queue_depth") == 0 &&
           it_metric(srv.port, "callstream_store_replayed_total") ==
               it_metric(srv.port, "callstream_store_spilled_total");
}

/* Every loop's store has written what it was given. */
static bool nothing_queued(void *data)
{
    (void)data;
    return it_metric(srv.port, "callstream_store_queue_depth") == 0 && it_health_is(srv.port, "ok");
}

/* /status names the last failure. */
static bool status_says_locked(void *data)
{
    (void)data;
    cJSON *st = it_get_json(srv.port, "/status");
    const cJSON *err = cJSON_GetObjectItem(cJSON_GetObjectItem(st, "store_stats"), "last_error");
    bool ok = strstr(it_str(err, "message"), "database is locked") != NULL;
    cJSON_Delete(st);
    return ok;
}

static bool client_left_logged(void *data)
{
    (void)data;
    return it_log_count(&srv, "dropped: the client left") > 0;
}

/* A call's events, read through the API in small pages: all of them, in time order. */
static bool events_in_order(const char *sid)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM events WHERE call_sid = '%s'", sid);
    long long stored = it_sql(db, sql), n = it_events_in_order(srv.port, sid);
    if (n != stored) fprintf(stderr, "%s: %lld events read in order of %lld\n", sid, n, stored);
    return n == stored && n > 0;
}

/* Writes fail: reads, sign-in and calls go on; what needs a row not written yet is a 503
 * that says why. The call made then is `other`. */
static void writes_fail(const char *sid, want_call *other)
{
    pid_t holder = db_hold(db, DB_HOLD_WRITES);
    IT_CHECK(holder > 0, "cannot lock %s", db);
    IT_CHECK(it_until(health_is, "degraded", WAIT_MS), "/health does not say degraded");

    IT_CHECK(it_until(status_says_locked, NULL, WAIT_MS), "/status does not say why");
    cJSON *st = it_get_json(srv.port, "/status");
    const cJSON *store = cJSON_GetObjectItem(st, "store_stats");
    IT_CHECK(strcmp(it_str(st, "status"), "degraded") == 0, "/status says %s",
             it_str(st, "status"));
    IT_CHECK(strcmp(it_str(store, "state"), "failing") == 0, "store state %s",
             it_str(store, "state"));
    IT_CHECK(it_str(store, "failing_since")[0] != '\0', "no failing_since");
    cJSON_Delete(st);
    IT_CHECK(it_metric(srv.port, "callstream_store_failing") == 1, "metric store_failing");

    /* reads go on, from the database as it is */
    cJSON *calls = it_get_json(srv.port, "/api/v1/calls");
    IT_CHECK(
        strcmp(it_str(cJSON_GetArrayItem(cJSON_GetObjectItem(calls, "calls"), 0), "sid"), sid) == 0,
        "the call made before is not listed");
    cJSON_Delete(calls);
    char msg[512];
    IT_CHECK(sign_in(msg, sizeof msg) == 200, "sign-in while writes fail: %s", msg);

    /* a call made now: it goes on; its row waits, and the API says so */
    want_call w = {.status = 0};
    snprintf(w.other, sizeof w.other, "%s", sid);
    pid_t sim = it_sim_spawn(&srv, "--calls 1 --duration 2");
    IT_CHECK(it_until(new_call, &w, WAIT_MS), "the second call did not start");
    int exit_status;
    cJSON *sum = it_sim_wait(sim, &exit_status);
    IT_CHECK(exit_status == 0 && it_num(sum, "completed") == 1 && it_num(sum, "missing") == 0,
             "a call during the outage did not complete");
    cJSON_Delete(sum);
    char target[128];
    snprintf(target, sizeof target, "/api/v1/calls/%s", w.sid);
    IT_CHECK(get(target, msg, sizeof msg) == 503 && strstr(msg, "writes fail since"),
             "GET %s during the outage: %s", target, msg);
    IT_CHECK(it_until(spilled, NULL, WAIT_MS), "nothing spilled");
    *other = w;
    db_release(holder);
}

/* Reads stall too: answers still come, as 503s with the reason, and /status does not
 * wait at all. */
static void reads_stall(void)
{
    pid_t holder = db_hold(db, DB_HOLD_READS);
    IT_CHECK(holder > 0, "cannot lock the readers of %s", db);
    char msg[512];
    IT_CHECK(get("/api/v1/calls", msg, sizeof msg) == 503 && strstr(msg, "no answer within"),
             "GET /api/v1/calls while reads stall: %s", msg);
    IT_CHECK(get("/status", NULL, 0) == 200, "/status");
    IT_CHECK(it_until(health_is, "degraded", WAIT_MS), "/health does not say degraded");
    IT_CHECK(sign_in(msg, sizeof msg) == 503 && strstr(msg, "the store cannot answer"),
             "sign-in while reads stall: %s", msg);

    /* a client that gives up: nothing is done for it */
    char pw[64], body[256], req[1024];
    it_admin_password(&srv, pw, sizeof pw);
    snprintf(body, sizeof body, LOGIN_FORM, pw);
    int n =
        snprintf(req, sizeof req,
                 "POST /login HTTP/1.1\r\nHost: x\r\n" JSON_FORM "Content-Length: %zu\r\n\r\n%s",
                 strlen(body), body);
    int before = it_log_count(&srv, "signed in");
    IT_CHECK(it_http_leave(srv.port, req, (size_t)n) == 0, "cannot send a sign-in");
    IT_CHECK(it_until(client_left_logged, NULL, WAIT_MS), "the sign-in of a client that left "
                                                          "was not dropped");
    IT_CHECK(it_log_count(&srv, "signed in") == before, "a client that left was signed in");
    db_release(holder);
}

static void outage(void)
{
    const char *args[] = {"--agent", "echo", "--echo-mark-ms", "20", "--store-queue-max",
                          "100",     NULL};
    if (it_server_start(&srv, args) < 0) {
        IT_CHECK(0, "the server did not start");
        return;
    }
    snprintf(db, sizeof db, "%s", it_db(&srv));
    char msg[512];
    IT_CHECK(sign_in(msg, sizeof msg) == 200, "sign-in: %s", msg);
    pid_t sim =
        it_sim_spawn(&srv, "--calls 1 --duration %d --dtmf 1234 --wav %s", CALL_S, it_corpus(WAV));
    want_call first = {.status = 200};
    const char *sid = first.sid;
    IT_CHECK(it_until(new_call, &first, WAIT_MS), "the call did not start");
    IT_CHECK(it_until(call_status, &first, WAIT_MS), "the call's row is not stored");

    want_call other = {.status = 0};
    writes_fail(sid, &other);
    reads_stall();

    int exit_status;
    cJSON *sum = it_sim_wait(sim, &exit_status);
    IT_CHECK(exit_status == 0 && it_num(sum, "completed") == 1 && it_num(sum, "missing") == 0,
             "the call did not go on through the outage");
    int frames = it_num(sum, "frames_per_call");
    cJSON_Delete(sum);

    /* everything arrives */
    IT_CHECK(it_until(caught_up, NULL, WAIT_MS), "the store did not catch up");
    IT_CHECK(it_metric(srv.port, "callstream_store_lost_total") == 0, "records lost");
    IT_CHECK(it_until(recorded, &first, WAIT_MS), "no recording attached");
    IT_CHECK(it_sql(db,
                    "SELECT COUNT(*) FROM calls WHERE status = 'completed' AND recording IS NOT "
                    "NULL") == 2,
             "both calls are not stored complete");
    double marks = it_metric(srv.port, "callstream_marks_total{state=\"played\"}") +
                   it_metric(srv.port, "callstream_marks_total{state=\"cleared\"}");
    long long stored = it_sql(db, "SELECT COUNT(*) FROM events WHERE type = 'mark'");
    IT_CHECK(marks > 100 && stored == (long long)marks, "%lld mark events stored of %.0f", stored,
             marks);
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM events WHERE type = 'dtmf' AND call_sid = '%s'",
             sid);
    IT_CHECK(it_sql(db, sql) == 4, "dtmf events");
    /* The outage is an event of the call live through it, and a metric. */
    snprintf(sql, sizeof sql,
             "SELECT COUNT(*) FROM events WHERE type = 'store_outage' AND call_sid = '%s'", sid);
    IT_CHECK(it_sql(db, sql) >= 1, "no store_outage event on the live call");
    IT_CHECK(it_metric(srv.port, "callstream_cluster_store_outages_total") >= 1 &&
                 it_metric(srv.port, "callstream_cluster_health_events_total") >= 2,
             "the outage and its end are not counted");
    /* each call's, through the API: its events are written by more than one loop (the
     * webhook's, the stream's), each through its own connection and spill */
    IT_CHECK(events_in_order(sid), "events of %s out of order", sid);
    IT_CHECK(events_in_order(other.sid), "events of %s out of order", other.sid);
    IT_CHECK(it_sql(db, "SELECT COUNT(*) FROM sessions") == 2, "the sessions are not all stored");
    unsigned ch;
    long hdr, size;
    const char *path = it_recording(&srv, sid);
    /* The echo plays from when each frame arrived: under load it may trail the caller's
     * last timestamp by the frames' lateness, within the playout lead (100 ms). */
    IT_CHECK(it_wav_info(path, &ch, &hdr, &size) == 0 && hdr == size &&
                 size >= (long)frames * 160 && size <= (long)frames * 160 + 320 + 800,
             "%s: %ld frames (header %ld) for %d sent", path, size, hdr, frames * 160);
    IT_CHECK(it_server_stop(&srv, SIGTERM, 10000) == 0, "the server did not exit cleanly");
    it_server_cleanup(&srv);
}

static bool user_gone(void *cookie)
{
    return get_as("/api/v1/me", cookie) == 401;
}

static bool calls_answered(void *data)
{
    (void)data;
    return get("/api/v1/calls", NULL, 0) == 200;
}

/* An idle gateway whose queries fail (nothing writes, so writes look fine): /health is
 * degraded and /status says why, until a query is answered again. */
static void idle_reads_fail(void)
{
    IT_CHECK(get("/status", NULL, 0) == 200, "/status"); /* the token is cached from here */
    IT_CHECK(health_is("ok"), "/health is not ok to begin with");
    pid_t holder = db_hold(db, DB_HOLD_READS);
    IT_CHECK(holder > 0, "cannot lock the readers of %s", db);
    char msg[512];
    IT_CHECK(get("/api/v1/calls", msg, sizeof msg) == 503, "GET /api/v1/calls: %s", msg);
    IT_CHECK(health_is("degraded"), "/health does not say degraded while queries fail");
    cJSON *st = it_get_json(srv.port, "/status");
    const cJSON *store = cJSON_GetObjectItem(st, "store_stats");
    IT_CHECK(strcmp(it_str(store, "state"), "ok") == 0, "writes said to fail");
    IT_CHECK(strcmp(it_str(store, "reads_state"), "failing") == 0, "reads_state %s",
             it_str(store, "reads_state"));
    IT_CHECK(strstr(it_str(cJSON_GetObjectItem(store, "last_read_error"), "message"),
                    "no answer within"),
             "/status does not say why queries fail");
    cJSON_Delete(st);
    IT_CHECK(it_metric(srv.port, "callstream_store_reads_failing") == 1, "metric reads_failing");
    /* a command too: it ends, failing, and says why (here SQLite refuses its opening
     * already; a query left unanswered would be refused in time) */
    char out[256];
    int rc = it_cli(&srv, "user list", NULL, out, sizeof out);
    IT_CHECK(rc == 1 && !out[0], "user list while queries fail: exit %d, said '%s'", rc, out);
    IT_CHECK(it_log_count(&srv, "callstream: cannot set up") +
                     it_log_count(&srv, "callstream: the store failed: ") ==
                 1,
             "user list did not say why it failed");
    db_release(holder);
    IT_CHECK(it_until(calls_answered, NULL, WAIT_MS), "queries are not answered again");
    IT_CHECK(health_is("ok"), "/health still degraded once queries are answered");
}

static void commands_during_outage(void)
{
    const char *args[] = {"--auth-cache-s", "2", "--store-queue-max", "100", NULL};
    if (!it_server_up(&srv, args)) return;
    snprintf(db, sizeof db, "%s", it_db(&srv));
    char out[256], cookie[256];
    IT_CHECK(it_cli(&srv, "user add ann --password-stdin", "hunter2hunter2\n", NULL, 0) == 0,
             "user add failed");
    IT_CHECK(it_cli(&srv, "token create ci", NULL, out, sizeof out) == 0 && out[0], "no token");
    IT_CHECK(it_sign_in(&srv, "ann", "hunter2hunter2", cookie, sizeof cookie) == 0,
             "ann cannot sign in");
    /* her session is written by the loop she signed in on; the next request may find
     * another loop, which does not wait for that write: nothing may be left to write */
    IT_CHECK(it_until(nothing_queued, NULL, WAIT_MS), "the sign-in was not stored");
    idle_reads_fail();

    pid_t holder = db_hold(db, DB_HOLD_WRITES);
    IT_CHECK(holder > 0, "cannot lock %s", db);
    /* the gateway spills meanwhile: its files must stay its own */
    it_resp r;
    for (int i = 0; i < 150; i++) {
        char body[128];
        snprintf(body, sizeof body, "CallSid=CA%032d&From=%%2B1&To=%%2B2", i + 1);
        it_http(srv.port, "POST", "/twilio/voice",
                "Content-Type: application/x-www-form-urlencoded\r\n", body, &r);
        it_resp_free(&r);
    }
    IT_CHECK(it_cli(&srv, "user delete ann", NULL, out, sizeof out) == 1 && !out[0],
             "user delete during the outage: said '%s'", out);
    IT_CHECK(it_log_count(&srv, "user ann was NOT deleted: the database did not take the change") ==
                 1,
             "user delete did not say it failed");
    IT_CHECK(it_cli(&srv, "token revoke ci", NULL, out, sizeof out) == 1 && !out[0],
             "token revoke during the outage: said '%s'", out);
    IT_CHECK(it_log_count(&srv, "token ci was NOT revoked") == 1, "revoke did not say it failed");
    IT_CHECK(it_cli(&srv, "token create cd", NULL, out, sizeof out) == 1 && !out[0],
             "token create during the outage printed '%s'", out);
    IT_CHECK(it_log_count(&srv, "token cd was NOT created") == 1, "create did not say it failed");
    char replay[400];
    snprintf(replay, sizeof replay, "%s/store-spill.jsonl.replay", srv.data);
    IT_CHECK(access(replay, F_OK) != 0, "a command wrote the gateway's replay file");
    db_release(holder);

    /* nothing of the three happened, and nothing of the gateway's was lost (its loops may
     * have held the calls in their queues without spilling) */
    IT_CHECK(it_until(settled, NULL, WAIT_MS), "the store did not catch up");
    IT_CHECK(it_metric(srv.port, "callstream_store_lost_total") == 0, "records lost");
    IT_CHECK(it_sql(db, "SELECT COUNT(*) FROM calls") == 150, "the gateway's calls are not all in");
    IT_CHECK(it_sql(db, "SELECT COUNT(*) FROM users WHERE name = 'ann'") == 1, "ann was deleted");
    IT_CHECK(it_sql(db, "SELECT COUNT(*) FROM api_tokens") == 2, "tokens changed");
    it_sleep_ms(2500); /* past AUTH_CACHE_S: a deletion would show */
    IT_CHECK(get_as("/api/v1/me", cookie) == 200, "ann's session ended");

    /* the database back: the same command works, and ends the session */
    IT_CHECK(it_cli(&srv, "user delete ann", NULL, out, sizeof out) == 0 &&
                 strcmp(out, "deleted user ann and ended its sessions") == 0,
             "user delete said '%s'", out);
    IT_CHECK(it_until(user_gone, cookie, WAIT_MS), "ann's session outlived the deletion");
    IT_CHECK(it_sql(db, "SELECT COUNT(*) FROM users WHERE name = 'ann'") == 0,
             "ann is still there");
    IT_CHECK(it_server_stop(&srv, SIGTERM, 10000) == 0, "the server did not exit cleanly");
    it_server_cleanup(&srv);
}

/* Webhooks for calls first..last: each makes a call row and a `webhook` event. */
static void webhooks(int first, int last)
{
    for (int i = first; i <= last; i++) {
        char body[128];
        snprintf(body, sizeof body, "CallSid=CA%032d&From=%%2B1555%07d&To=%%2B15550000000", i, i);
        it_resp r;
        IT_CHECK(it_http(srv.port, "POST", "/twilio/voice",
                         "Content-Type: application/x-www-form-urlencoded\r\n", body, &r) == 0 &&
                     r.status == 200,
                 "webhook %d", i);
        it_resp_free(&r);
    }
}

/* The spill file holds whole JSON lines only; how many. */
static int whole_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    static char line[1 << 16];
    int n = 0, bad = 0;
    while (f && fgets(line, sizeof line, f)) {
        cJSON *j = strchr(line, '\n') ? cJSON_Parse(line) : NULL;
        bad += !j;
        n++;
        cJSON_Delete(j);
    }
    if (f) fclose(f);
    IT_CHECK(f && bad == 0, "%d of the %d lines of %s are cut or glued", bad, n, path);
    return n;
}

#define QUEUE      100 /* STORE_QUEUE_MAX */
#define DISK_BYTES (8u << 20)
#define FULL_CALLS 300 /* made while the disk is full */
#define MORE_CALLS 50  /* made after it has room again */

static bool store_failing(void *data)
{
    (void)data;
    return it_metric(srv.port, "callstream_store_failing") == 1;
}

/* Records the spill writer saved or lost. */
static double spill_settled(void)
{
    return it_metric(srv.port, "callstream_store_spilled_total") +
           it_metric(srv.port, "callstream_store_lost_total");
}

static bool spill_caught_up(void *want)
{
    return spill_settled() == *(double *)want;
}

/* Webhooks first..last (two records each), after the first: the writer holds what it
 * took of the first, `queued` of it wait in its queue, which takes QUEUE in all, and the
 * spill writer gets the rest. Waits until it has saved or lost them. */
static void spill_webhooks(int first, int last, double queued)
{
    webhooks(first, last);
    double want = 2.0 * (last - 1) - (QUEUE - queued);
    IT_CHECK(it_until(spill_caught_up, &want, WAIT_MS), "%.0f records spilled or lost, not %.0f",
             spill_settled(), want);
}

static void spill_on_a_full_disk(void)
{
    if (it_server_prepare(&srv) < 0) {
        IT_CHECK(0, "cannot prepare the server");
        return;
    }
    char disk[sizeof srv.data], filler[500], cmd[1200], spill[500];
    snprintf(disk, sizeof disk, "%s/disk", srv.dir);
    if (!it_tmpfs(disk, DISK_BYTES)) {
        it_server_cleanup(&srv);
        return;
    }
    /* DATA_DIR, with the database and the test's token, moves onto it */
    snprintf(cmd, sizeof cmd, "cp -a %s/. %s/", srv.data, disk);
    IT_CHECK(system(cmd) == 0, "cannot copy %s", srv.data);
    snprintf(srv.data, sizeof srv.data, "%s", disk);
    snprintf(db, sizeof db, "%s", it_db(&srv));
    snprintf(filler, sizeof filler, "%s/filler.bin", disk);
    snprintf(spill, sizeof spill, "%s/store-spill.jsonl", disk);
    /* STORE_QUEUE_MAX and the spill file are each loop's: one loop's store shows the sums */
    const char *args[] = {"--workers", "1", "--recordings", "0", "--store-queue-max",
                          "100",       NULL}; /* QUEUE */
    if (it_server_restart(&srv, args) < 0) {
        IT_CHECK(0, "the server did not start");
        it_tmpfs_unmount();
        it_server_cleanup(&srv);
        return;
    }
    pid_t holder = db_hold(db, DB_HOLD_WRITES);
    IT_CHECK(holder > 0, "cannot lock %s", db);
    webhooks(1, 1); /* the writer holds these two */
    IT_CHECK(it_until(store_failing, NULL, WAIT_MS), "writes do not fail");
    double queued = it_metric(srv.port, "callstream_store_queue_depth");
    it_fill_until(disk, filler, 64 << 10);
    spill_webhooks(2, FULL_CALLS, queued);
    double lost = it_metric(srv.port, "callstream_store_lost_total");
    IT_CHECK(lost > 0, "nothing was lost on a full disk");
    int lines = whole_lines(spill);
    IT_CHECK(lines - 1 == (int)it_metric(srv.port, "callstream_store_spilled_total"),
             "%d records in the file, %.0f counted spilled", lines - 1,
             it_metric(srv.port, "callstream_store_spilled_total"));
    IT_CHECK(it_log_count(&srv, "cannot spill to") == 1, "%d lines for one burst of failures",
             it_log_count(&srv, "cannot spill to"));

    unlink(filler);
    spill_webhooks(FULL_CALLS + 1, FULL_CALLS + MORE_CALLS, queued);
    char said[128];
    snprintf(said, sizeof said, "works again; %.0f record(s) lost since", lost);
    IT_CHECK(it_log_count(&srv, said) == 1, "no summary of the burst ('%s')", said);
    IT_CHECK(it_metric(srv.port, "callstream_store_lost_total") == lost, "lost after it worked");
    lines = whole_lines(spill);
    db_release(holder);

    IT_CHECK(it_until(caught_up, NULL, WAIT_MS), "the store did not catch up");
    long long stored = it_sql(db, "SELECT COUNT(*) FROM calls") +
                       it_sql(db, "SELECT COUNT(*) FROM events WHERE type = 'webhook'");
    IT_CHECK(stored + (long long)lost == 2 * (FULL_CALLS + MORE_CALLS),
             "%lld records stored and %.0f lost of %d", stored, lost,
             2 * (FULL_CALLS + MORE_CALLS));
    IT_CHECK(it_server_stop(&srv, SIGTERM, 10000) == 0, "the server did not exit cleanly");
    it_tmpfs_unmount();
    it_server_cleanup(&srv);
}

int main(void)
{
    outage();
    commands_during_outage();
    spill_on_a_full_disk();
    return it_done("store_outage");
}
