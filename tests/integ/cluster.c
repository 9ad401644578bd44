/* Nodes of a cluster. What acts on a live call happens on the node that holds it: a final
 * status callback ends its streams. After kill -9 a node's calls are repaired by that
 * node alone, when it starts again under the same NODE_ID: another node sharing the
 * store leaves them (their recordings are not on its disk).
 * Two gateways sharing a private Redis and a private PostgreSQL (redis_server.h,
 * pg_server.h): a call streamed to node a is listed live, followed and heard through node
 * b; a status callback posted to b reaches a's call, and a final one ends it; /say through
 * b gets a's answer; <Gather> turns posted to b are answered from a; kill -9 of a → b ends
 * a's call as abnormal, and a started again repairs its recording; Redis killed and
 * restarted mid-call → the call goes on and is recorded whole, b lists it again, the outage
 * is an event and a metric. An API stream created on a is connected to through b and
 * completed through a; its source at b is answered 504 while a is dead and not yet lost,
 * 503 while Redis is away (and connects once it is back). A call that ends while Redis is
 * away → b's followers get its end when Redis is back; a call transcribed on a → b's
 * follower gets the same transcript as a's, stored once. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "integ_util.h"
#include "pg_server.h"
#include "redis_server.h"
#include "twilio_rest_fake.h"

#define ACCOUNT "AC00000000000000000000000000000000"
#define KEY     "SK00000000000000000000000000000001"
#define SECRET  "api-secret"

#define WAV     "wav/jfk_inaugural_1961.wav"
#define WAIT_MS 30000

/* The sid of the one live call in /streams, polling. */
static bool live_call(const it_server *s, char sid[64])
{
    for (int i = 0; i < 1500; i++) {
        cJSON *j = it_get_json(s->port, "/streams");
        const char *call =
            it_str(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "streams"), 0), "call_sid");
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

/* ---- two nodes ---- */

static rs_server redis;
static pg_server pg;
static it_server na, nb; /* nodes a and b */

static twilio_fake *fake; /* Twilio's REST API, for node b's call control */
static bool stt_on;       /* node a transcribes its calls (pocketsphinx) */
static const char *const *agent_args; /* NULL-ended: the nodes' agent (NULL: echo) */
static bool one_loop;                 /* the nodes run one loop each */

/* Node `id`'s flags: b has call control (against the fake). */
static const char *const *node_args(const char *id)
{
    static const char *args[2][40];
    static const char *const echo[] = {"--agent", "echo", NULL};
    bool b = id[0] == 'b';
    const char **out = args[b];
    const char *const common[] = {"--node-id",           id,    "--redis-url",   redis.url,
                                  "--node-heartbeat-ms", "200", "--node-ttl-ms", "2000"};
    size_t n = 0;
    for (size_t i = 0; i < sizeof common / sizeof *common; i++) out[n++] = common[i];
    for (const char *const *a = agent_args ? agent_args : echo; *a && n < 30; a++) out[n++] = *a;
    if (b && fake) {
        const char *const control[] = {
            "--twilio-account-sid", ACCOUNT, "--twilio-api-key", KEY,
            "--twilio-api-secret",  SECRET,  "--twilio-api-url", twilio_fake_url(fake)};
        for (size_t i = 0; i < sizeof control / sizeof *control; i++) out[n++] = control[i];
    }
    if (one_loop) {
        out[n++] = "--workers";
        out[n++] = "1";
    }
    if (!b && stt_on) {
        const char *const stt[] = {"--stt", "pocketsphinx", "--stt-max-sessions", "1"};
        for (size_t i = 0; i < sizeof stt / sizeof *stt; i++) out[n++] = stt[i];
    }
    out[n] = NULL;
    return out;
}

typedef struct call_wait {
    int port;
    const char *sid;
    bool live;            /* wanted live (or not) … */
    const char *status;   /* … and this status, when set */
    const char *event;    /* … and an event of this type, when set */
    long long rec_ms_min; /* … and a recording at least this long, when > 0 */
} call_wait;

static bool call_is(void *data)
{
    call_wait *w = data;
    cJSON *c = it_call(w->port, w->sid);
    bool ok = c && cJSON_IsTrue(cJSON_GetObjectItem(c, "live")) == w->live &&
              (!w->status || strcmp(it_str(c, "status"), w->status) == 0) &&
              (!w->event || it_events(c, w->event, NULL) > 0);
    if (ok && w->rec_ms_min > 0) {
        const cJSON *d = cJSON_GetObjectItem(cJSON_GetObjectItem(c, "recording"), "duration_ms");
        ok = cJSON_IsNumber(d) && d->valuedouble >= (double)w->rec_ms_min;
    }
    cJSON_Delete(c);
    return ok;
}

static bool b_lists_live(void *sid)
{
    cJSON *j = it_get_json(nb.port, "/api/v1/calls");
    bool ok = false;
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(j, "calls")) ok |=
        strcmp(it_str(c, "sid"), sid) == 0 && cJSON_IsTrue(cJSON_GetObjectItem(c, "live"));
    cJSON_Delete(j);
    return ok;
}

static bool b_lists_ended(void *sid)
{
    return !b_lists_live(sid);
}

static bool command_refused(void *data)
{
    (void)data;
    return it_metric(na.port, "callstream_cluster_commands_refused_total") == 1;
}

/* Both status callbacks' events are stored (writes are queued), once each. */
static bool status_events_stored(void *sid)
{
    cJSON *c = it_call(nb.port, sid);
    bool ok = c && it_events(c, "status", NULL) == 2;
    cJSON_Delete(c);
    return ok;
}

/* The next JSON message of `type` on a monitor socket (others skipped); NULL past the
 * deadline. `frames` counts the binary (audio) ones seen meanwhile. */
static cJSON *next_json(it_ws *w, const char *type, int timeout_ms, int *frames)
{
    long long deadline = it_now_ms() + timeout_ms;
    cs_ws_event ev;
    while (it_now_ms() < deadline) {
        if (it_ws_next(w, &ev, (int)(deadline - it_now_ms())) <= 0) return NULL;
        if (ev.type != CS_WS_EV_MESSAGE) continue;
        if (ev.opcode == CS_WS_OP_BINARY) {
            if (frames) ++*frames;
            continue;
        }
        cJSON *j = cJSON_ParseWithLength(ev.data, ev.len);
        if (j && strcmp(it_str(j, "type"), type) == 0) return j;
        cJSON_Delete(j);
    }
    return NULL;
}

/* b's list of calls, followed from its first answer on. */
static void watch_list(it_ws *list)
{
    IT_CHECK(it_ws_connect(list, nb.port, "/monitor", it_auth) == 0, "b's monitor refused");
    it_ws_send_text(list, "{\"type\":\"watch_calls\"}");
    cJSON_Delete(next_json(list, "calls", WAIT_MS, NULL));
}

/* Call `sid` followed through `s`'s monitor, with `audio` ("none", "both"…). */
static void watch_call(it_ws *w, const it_server *s, const char *sid, const char *audio)
{
    IT_CHECK(it_ws_connect(w, s->port, "/monitor", it_auth) == 0, "a monitor refused");
    char msg[256];
    snprintf(msg, sizeof msg, "{\"type\":\"subscribe\",\"call\":\"%s\",\"audio\":\"%s\"}", sid,
             audio);
    it_ws_send_text(w, msg);
}

/* An event message for the call with an event of `type` on the subscribed socket. */
static bool event_seen(it_ws *w, const char *type, int *frames)
{
    long long deadline = it_now_ms() + WAIT_MS;
    while (it_now_ms() < deadline) {
        cJSON *m = next_json(w, "event", (int)(deadline - it_now_ms()), frames);
        if (!m) return false;
        bool ok = strcmp(it_str(cJSON_GetObjectItem(m, "event"), "type"), type) == 0;
        cJSON_Delete(m);
        if (ok) return true;
    }
    return false;
}

static bool up(void)
{
    memset(&redis, 0, sizeof redis);
    IT_CHECK(rs_start(&redis) == 0, "no Redis server");
    char url[256];
    IT_CHECK(pg_server_start(&pg) == 0 && pg_server_database(&pg, url, sizeof url) == 0,
             "no PostgreSQL server");
    setenv("DATABASE_URL", url, 1); /* both nodes, and the command making the API token */
    twilio_fake_opts fo = {.account_sid = ACCOUNT, .user = KEY, .pass = SECRET};
    IT_CHECK(twilio_fake_start(&fake, &fo) == 0, "no fake of Twilio's API");
    if (!redis.pid || !pg.up) return false;
    if (!it_server_up(&na, node_args("a"))) return false;
    bool ok = it_server_join(&nb, &na, node_args("b")) == 0;
    IT_CHECK(ok, "node b did not start");
    return ok;
}

static void down(void)
{
    it_server_stop(&nb, SIGTERM, 10000);
    it_server_stop(&na, SIGTERM, 10000);
    it_server_cleanup(&nb);
    it_server_cleanup(&na);
    unsetenv("DATABASE_URL");
    pg_server_destroy(&pg);
    rs_stop(&redis);
    twilio_fake_free(fake);
    fake = NULL;
}

/* Both nodes up, b's list followed, and a call streamed to a (40 s): live there, and b's
 * list told it started. The simulator's pid, or -1 (the nodes did not start: down). */
static pid_t up_with_call(it_ws *list, char sid[64])
{
    if (!up()) {
        down();
        return -1;
    }
    watch_list(list);
    pid_t sim = it_sim_spawn(&na, "--calls 1 --duration 40 --wav %s", it_corpus(WAV));
    IT_CHECK(live_call(&na, sid), "the call did not start on a");
    cJSON *started = next_json(list, "call_started", WAIT_MS, NULL);
    IT_CHECK(started && strcmp(it_str(cJSON_GetObjectItem(started, "call"), "sid"), sid) == 0,
             "b's list feed did not get call_started");
    cJSON_Delete(started);
    return sim;
}

/* A call on a, seen and acted on through b. */
static void across_nodes(void)
{
    it_ws list, call;
    char sid[64];
    pid_t sim = up_with_call(&list, sid);
    if (sim < 0) return;
    call_wait live = {.port = nb.port, .sid = sid, .live = true};
    IT_CHECK(it_until(call_is, &live, WAIT_MS), "b's API does not say a's call is live");
    IT_CHECK(it_until(b_lists_live, sid, WAIT_MS), "b's API does not list a's call as live");

    /* Listen-in through b: the call's events so far, then its audio. */
    watch_call(&call, &nb, sid, "both");
    char msg[256];
    int frames = 0;
    cJSON *sub = next_json(&call, "subscribed", WAIT_MS, &frames);
    IT_CHECK(sub && cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(sub, "call"), "live")),
             "not subscribed live through b");
    cJSON_Delete(sub);
    cJSON_Delete(next_json(&call, "never", 3000, &frames));
    IT_CHECK(frames > 20, "%d audio frames of a's call reached b's monitor", frames);

    /* A status callback reaching b: its event is a's live call's (listeners get it), once. */
    status_callback(&nb, sid, "in-progress");
    IT_CHECK(event_seen(&call, "status", &frames), "the status event did not reach a's call");
    /* /say through b: a's answer (its call's agent cannot speak), not b's "not live". */
    it_resp r;
    snprintf(msg, sizeof msg, "/api/v1/calls/%s/say", sid);
    char headers[256];
    snprintf(headers, sizeof headers, "%sContent-Type: application/json\r\n", it_auth);
    IT_CHECK(it_http(nb.port, "POST", msg, headers, "{\"text\":\"hello\"}", &r) == 0 &&
                 r.status == 409 && strstr(r.body, "no agent that speaks"),
             "say through b: %d %s", r.status, r.body);
    it_resp_free(&r);

    /* A final status through b ends a's call. */
    status_callback(&nb, sid, "completed");
    call_wait ended = {.port = nb.port, .sid = sid, .live = false, .status = "completed"};
    IT_CHECK(it_until(call_is, &ended, WAIT_MS), "a's call did not end on the final status");
    cJSON *end = next_json(&call, "call_ended", WAIT_MS, NULL);
    IT_CHECK(end != NULL, "b's monitor did not see the call end");
    cJSON_Delete(end);
    IT_CHECK(it_until(status_events_stored, sid, WAIT_MS),
             "the status events are not stored, once each");
    IT_CHECK(it_metric(na.port, "callstream_bus_commands_in_total") >= 3 &&
                 it_metric(nb.port, "callstream_bus_commands_out_total") >= 3 &&
                 it_metric(na.port, "callstream_cluster_commands_refused_total") == 0,
             "the commands are not counted");
    it_ws_close(&call);
    it_ws_close(&list);
    cJSON_Delete(it_sim_wait(sim, NULL));

    /* A malformed command reaching a (its channel is Redis's): counted and skipped. */
    redisReply *pub = rs_cmd(&redis, "PUBLISH cs:cmd:a/0 %s", "b/0 {\"v\":9,\"op\":\"say\"}");
    IT_CHECK(pub && pub->type == REDIS_REPLY_INTEGER && pub->integer == 1, "not published");
    if (pub) freeReplyObject(pub);
    IT_CHECK(it_until(command_refused, NULL, WAIT_MS), "a malformed command was not counted");
    IT_CHECK(log_says(&na, "a command from node b/0 refused (not version 1)"), "nor logged");

    /* A hang-up through b: Twilio is asked from b, a closes its side of the streams, and
     * the control event is the call's, once. */
    sim = it_sim_spawn(&na, "--calls 1 --duration 40 --wav %s", it_corpus(WAV));
    IT_CHECK(live_call(&na, sid), "the second call did not start on a");
    IT_CHECK(it_until(call_is, &live, WAIT_MS), "b's API does not say a's call is live");
    snprintf(msg, sizeof msg, "/api/v1/calls/%s/hangup", sid);
    IT_CHECK(it_http(nb.port, "POST", msg, headers, "{}", &r) == 0 && r.status == 200,
             "hang-up through b: %d %s", r.status, r.body);
    it_resp_free(&r);
    twilio_fake_stats st;
    twilio_fake_stats_get(fake, &st);
    IT_CHECK(st.calls_updated == 1, "Twilio was not asked to hang up");
    call_wait hung = {.port = nb.port, .sid = sid, .live = false, .event = "control"};
    IT_CHECK(it_until(call_is, &hung, WAIT_MS), "a's call did not end on the hang-up");
    cJSON *c = it_call(nb.port, sid);
    const cJSON *t = cJSON_GetArrayItem(cJSON_GetObjectItem(c, "streams"), 0);
    IT_CHECK(c && it_call_events(c, "control", "done") == 1 &&
                 strcmp(it_str(t, "end_reason"), "closed_by_us") == 0,
             "the hang-up's event or a's side of the stream: %d, %s",
             it_call_events(c, "control", "done"), it_str(t, "end_reason"));
    cJSON_Delete(c);
    cJSON_Delete(it_sim_wait(sim, NULL));
    down();
}

static bool knows_b(void *data)
{
    (void)data;
    cJSON *st = it_get_json(na.port, "/status");
    bool ok =
        strcmp(it_str(cJSON_GetArrayItem(cJSON_GetObjectItem(st, "peers"), 0), "id"), "b") == 0;
    cJSON_Delete(st);
    return ok;
}

typedef struct waiting_on_a {
    const char *id;
    char state[256];
} waiting_on_a;

static bool waiting_through_b(void *data)
{
    waiting_on_a *w = data;
    return strcmp(it_call_stream_status(nb.port, w->id, w->state, sizeof w->state), "waiting") == 0;
}

/* An API stream created on a: its source connects to b, a answers for it, and a
 * completes it. */
static void stream_across_nodes(void)
{
    if (!up()) {
        down();
        return;
    }
    char id[64], path[128], token[128], state[64];
    IT_CHECK(it_call_stream_create(na.port, "{\"format\":\"mulaw\",\"from\":\"+15550100007\"}", id,
                                   path, token) == 201,
             "a did not create the stream");
    /* a replies to b once a heartbeat has told it of b */
    IT_CHECK(it_until(knows_b, NULL, WAIT_MS), "a does not list b among its peers");
    waiting_on_a w8 = {.id = id};
    IT_CHECK(it_until(waiting_through_b, &w8, WAIT_MS), "b says the stream waiting on a is %s",
             w8.state);
    it_ws w;
    int code = it_call_stream_connect(&w, nb.port, path, "0123456789abcdef0123456789abcdef");
    it_ws_close(&w);
    IT_CHECK(code == 403, "a wrong token through b: %d", code);
    code = it_call_stream_connect(&w, nb.port, path, token);
    IT_CHECK(code == 0, "the source cannot connect to b: %d", code);
    uint8_t frame[160];
    memset(frame, 0x55, sizeof frame);
    for (int f = 0; f < 50; f++) {
        it_ws_send(&w, CS_WS_OP_BINARY, frame, sizeof frame);
        it_sleep_ms(20);
    }
    IT_CHECK(it_metric(na.port, "callstream_call_streams_total{event=\"handed\"}") == 1 &&
                 it_metric(nb.port, "callstream_call_streams_total{event=\"connected\"}") == 1,
             "a did not hand the stream to b");
    IT_CHECK(it_metric(nb.port, "callstream_call_streams_bad_token_total") == 1,
             "b did not count the wrong token");
    call_wait live = {.port = na.port, .sid = id, .live = true};
    IT_CHECK(it_until(call_is, &live, WAIT_MS), "a's API does not say b's stream is live");
    IT_CHECK(strcmp(it_call_stream_status(na.port, id, state, sizeof state), "in-progress") == 0,
             "a says the stream live on b is %s", state);
    it_ws again;
    code = it_call_stream_connect(&again, na.port, path, token);
    it_ws_close(&again);
    IT_CHECK(code == 409, "the token again, through a: %d", code);
    char target[128];
    snprintf(target, sizeof target, "/api/v1/call_streams/%s/complete", id);
    it_resp r;
    IT_CHECK(it_http(na.port, "POST", target, "Content-Type: application/json\r\n", "", &r) == 0 &&
                 r.status == 200 && strcmp(it_str(r.json, "status"), "completed") == 0,
             "complete through a: %d %s", r.status, r.body ? r.body : "");
    it_resp_free(&r);
    IT_CHECK(it_ws_close_code(&w, WAIT_MS) == 1000, "b did not close the source with 1000");
    it_ws_close(&w);
    call_wait done = {.port = na.port, .sid = id, .status = "completed", .rec_ms_min = 800};
    IT_CHECK(it_until(call_is, &done, WAIT_MS), "the stream is not completed and recorded");
    down();
}

/* A follower of one call: the transcript's finals it saw ("id refined text" lines), until
 * the call ended. */
typedef struct follower {
    it_ws ws;
    char finals[64][256];
    int nfinal, interims;
    bool ended;
} follower;

static void follow(follower *f, const it_server *s, const char *sid)
{
    memset(f, 0, sizeof *f);
    watch_call(&f->ws, s, sid, "none");
}

/* What came within `timeout_ms`, taken in. */
static void follower_read(follower *f, const char *sid, int timeout_ms)
{
    cs_ws_event ev;
    if (f->ended || it_ws_next(&f->ws, &ev, timeout_ms) != 1 || ev.type != CS_WS_EV_MESSAGE ||
        ev.opcode != CS_WS_OP_TEXT)
        return;
    cJSON *m = cJSON_ParseWithLength(ev.data, ev.len);
    const char *type = it_str(m, "type");
    f->ended = !strcmp(type, "call_ended");
    const cJSON *seg = cJSON_GetObjectItem(m, "segment");
    if (!strcmp(type, "transcript") && !strcmp(it_str(m, "call"), sid)) {
        if (!cJSON_IsTrue(cJSON_GetObjectItem(seg, "final")))
            f->interims++;
        else if (it_str(seg, "text")[0] && f->nfinal < 64)
            snprintf(f->finals[f->nfinal++], sizeof f->finals[0], "%s %d %s", it_str(seg, "id"),
                     cJSON_IsTrue(cJSON_GetObjectItem(seg, "refined")), it_str(seg, "text"));
    }
    cJSON_Delete(m);
}

/* A call transcribed on a, followed on a and through b: b's follower gets the same
 * transcript segments as a's, and each final is stored once (by a: the store is shared). */
static void transcripts_across_nodes(void)
{
    stt_on = true;
    bool ok = up();
    stt_on = false;
    if (!ok) {
        down();
        return;
    }
    it_ws list;
    watch_list(&list);
    pid_t sim = it_sim_spawn(&na, "--wav %s", it_corpus(WAV));
    cJSON *started = next_json(&list, "call_started", WAIT_MS, NULL);
    char sid[64];
    snprintf(sid, sizeof sid, "%s", it_str(cJSON_GetObjectItem(started, "call"), "sid"));
    cJSON_Delete(started);
    it_ws_close(&list);
    IT_CHECK(sid[0], "b's list feed did not get call_started");
    static follower fa, fb;
    follow(&fa, &na, sid);
    follow(&fb, &nb, sid);
    for (long long deadline = it_now_ms() + 60000;
         !(fa.ended && fb.ended) && it_now_ms() < deadline;) {
        follower_read(&fa, sid, 20);
        follower_read(&fb, sid, 20);
    }
    it_ws_close(&fa.ws);
    it_ws_close(&fb.ws);
    int exit_status;
    cJSON_Delete(it_sim_wait(sim, &exit_status));
    IT_CHECK(exit_status == 0, "the call failed");
    printf("cluster: a's follower saw %d interim and %d final segments, b's %d and %d\n",
           fa.interims, fa.nfinal, fb.interims, fb.nfinal);
    IT_CHECK(fa.ended && fb.ended, "a follower did not see the call end");
    IT_CHECK(fb.nfinal >= 1 && fb.interims >= 1, "b's follower saw %d interim and %d finals",
             fb.interims, fb.nfinal);
    IT_CHECK(fa.nfinal == fb.nfinal, "a's follower saw %d finals, b's %d", fa.nfinal, fb.nfinal);
    for (int i = 0; i < fa.nfinal && i < fb.nfinal; i++)
        IT_CHECK(!strcmp(fa.finals[i], fb.finals[i]), "final %d: a saw \"%s\", b \"%s\"", i,
                 fa.finals[i], fb.finals[i]);
    /* Each final id once in the store, through either node (a writes them through its
     * queue, a little after the call). */
    char target[128];
    snprintf(target, sizeof target, "/api/v1/calls/%s/transcript", sid);
    int rows = 0, missing = 0;
    for (long long end = it_now_ms() + WAIT_MS; it_now_ms() < end; it_sleep_ms(200)) {
        cJSON *j = it_get_json(nb.port, target);
        const cJSON *segs = cJSON_GetObjectItem(j, "segments");
        rows = cJSON_GetArraySize(segs);
        missing = 0;
        for (int i = 0; i < fb.nfinal; i++) {
            int n = 0;
            const cJSON *g;
            cJSON_ArrayForEach(g, segs)
            {
                size_t len = strlen(it_str(g, "id"));
                n += !strncmp(fb.finals[i], it_str(g, "id"), len) && fb.finals[i][len] == ' ';
            }
            missing += n != 1;
        }
        cJSON_Delete(j);
        if (!missing) break;
    }
    IT_CHECK(missing == 0, "%d of b's %d finals are not stored once (%d rows)", missing, fb.nfinal,
             rows);
    down();
}

/* kill -9 of a mid-call: b ends the call; a, back, repairs its recording. */
static void node_death(void)
{
    if (!up()) {
        down();
        return;
    }
    it_ws call;
    pid_t sim = it_sim_spawn(&na, "--calls 1 --duration 40 --wav %s", it_corpus(WAV));
    char sid[64];
    IT_CHECK(live_call(&na, sid), "the call did not start on a");
    call_wait live = {.port = nb.port, .sid = sid, .live = true};
    IT_CHECK(it_until(call_is, &live, WAIT_MS), "b's API does not say a's call is live");
    watch_call(&call, &nb, sid, "none");
    cJSON_Delete(next_json(&call, "subscribed", WAIT_MS, NULL));
    char cs[64], path[128], token[128];
    IT_CHECK(it_call_stream_create(na.port, "{\"format\":\"mulaw\"}", cs, path, token) == 201,
             "a did not create an API stream");
    it_sleep_ms(2000);
    it_server_stop(&na, SIGKILL, 5000);
    /* The stream's source at b before a is found lost: a is asked, and never answers. */
    pid_t source = fork();
    if (source == 0) {
        it_ws w;
        _exit(it_call_stream_connect(&w, nb.port, path, token) == 504 ? 0 : 1);
    }
    cJSON_Delete(it_sim_wait(sim, NULL));
    /* /say through b before a is found lost: sent, never answered. */
    char target[128], headers[256];
    snprintf(target, sizeof target, "/api/v1/calls/%s/say", sid);
    snprintf(headers, sizeof headers, "%sContent-Type: application/json\r\n", it_auth);
    it_resp r;
    IT_CHECK(it_http(nb.port, "POST", target, headers, "{\"text\":\"hello\"}", &r) == 0 &&
                 r.status == 504,
             "say to a dead node: %d %s", r.status, r.body);
    it_resp_free(&r);
    int st = 0;
    IT_CHECK(waitpid(source, &st, 0) == source && WIFEXITED(st) && WEXITSTATUS(st) == 0,
             "the source at b, its stream on a dead node: not answered 504");
    IT_CHECK(it_metric(nb.port, "callstream_cluster_replies_late_total") == 2,
             "the late replies are not counted");

    call_wait lost = {
        .port = nb.port, .sid = sid, .live = false, .status = "abnormal", .event = "node_lost"};
    IT_CHECK(it_until(call_is, &lost, WAIT_MS), "b did not end a's call as abnormal");
    cJSON *end = next_json(&call, "call_ended", WAIT_MS, NULL);
    IT_CHECK(end && strcmp(it_str(cJSON_GetObjectItem(end, "call"), "status"), "abnormal") == 0,
             "b's monitor did not see the lost call end");
    cJSON_Delete(end);
    it_ws_close(&call);
    IT_CHECK(it_metric(nb.port, "callstream_bus_nodes_lost_total") == 1 &&
                 it_metric(nb.port, "callstream_cluster_calls_lost_total") == 1,
             "the lost node and call are not counted");
    it_ws gone;
    int code = it_call_stream_connect(&gone, nb.port, path, token);
    it_ws_close(&gone);
    IT_CHECK(code == 404, "the source of a lost node's stream: %d", code);

    IT_CHECK(it_server_restart(&na, node_args("a")) == 0, "a did not start again");
    IT_CHECK(log_says(&na, "start-up repair done: 1 call(s) of node a"), "a did not repair");
    call_wait repaired = {.port = nb.port, .sid = sid, .status = "abnormal", .rec_ms_min = 1000};
    IT_CHECK(it_until(call_is, &repaired, WAIT_MS), "a's recording is not attached");
    down();
}

static bool bus_out(void *server)
{
    return it_metric(((it_server *)server)->port, "callstream_bus_outages_total") >= 1;
}

typedef struct source_try {
    const char *path, *token;
    it_ws ws;
    int code;
} source_try;

/* An API stream's source connects to b (the socket in t->ws). */
static bool source_connects(void *data)
{
    source_try *t = data;
    t->code = it_call_stream_connect(&t->ws, nb.port, t->path, t->token);
    if (t->code != 0) it_ws_close(&t->ws);
    return t->code == 0;
}

/* A <Gather> request of `call` to node `s`: SpeechResult or Digits (a final '#' sent as
 * FinishedOnKey) when not NULL. */
static int gather_post(const it_server *s, const char *target, const char *call, const char *speech,
                       const char *digits, char *twiml, size_t cap)
{
    const char *names[6] = {"CallSid", "CallStatus", "From", "To"};
    const char *values[6] = {call, "in-progress", "+15550100", "+15550101"};
    size_t n = 4;
    char keys[32];
    if (speech) names[n] = "SpeechResult", values[n++] = speech;
    if (digits) {
        snprintf(keys, sizeof keys, "%.*s", (int)strlen(digits) - 1, digits);
        names[n] = "Digits", values[n++] = keys;
        names[n] = "FinishedOnKey", values[n++] = "#";
    }
    return it_twilio_post(s, NULL, target, names, values, n, twiml, cap);
}

static bool says(const char *twiml, const char *text, bool listens)
{
    char say[256];
    snprintf(say, sizeof say, "<Say language=\"en-US\">%s</Say>", text);
    return strstr(twiml, say) &&
           (listens ? strstr(twiml, "<Gather") && !strstr(twiml, "<Hangup")
                    : strstr(twiml, "<Hangup/>") && !strstr(twiml, "<Gather"));
}

/* A conversation in <Gather> turns begun on a: its turns posted to b are answered from a
 * (its agent goes on through the menu); with a silent, b hangs up and says why; a turn of
 * a call that is nowhere hangs up. */
static void gather_across_nodes(void)
{
    char menu[512];
    snprintf(menu, sizeof menu, "%s/ivr/relay.json", getenv("CS_TEST_DATA"));
    const char *const ivr[] = {
        "--agent", "ivr",  "--ivr-file", menu,   "--stream-mode",     "gather",
        "--tts",   "none", "--stt",      "none", "--gather-reply-ms", "1000",
        NULL};
    agent_args = ivr;
    bool ok = up();
    agent_args = NULL;
    if (!ok) {
        down();
        return;
    }
    const char *call = "CA00000000000000000000000000000e01";
    char twiml[8192] = "";
    IT_CHECK(gather_post(&na, "/twilio/voice", call, NULL, NULL, twiml, sizeof twiml) == 200 &&
                 says(twiml, "Say sales or press one, say support or press two.", true),
             "a's webhook does not begin a conversation: %s", twiml);
    IT_CHECK(gather_post(&nb, "/twilio/gather", call, "sales", NULL, twiml, sizeof twiml) == 200 &&
                 says(twiml, "Key in your PIN, then the pound key.", true),
             "b does not answer the turn from a: %s", twiml);
    /* a's refusal comes back as a's: keys that are not keys. */
    IT_CHECK(gather_post(&nb, "/twilio/gather", call, NULL, "12x#", twiml, sizeof twiml) == 400 &&
                 strstr(twiml, "Digits"),
             "b does not answer a's refusal: %s", twiml);
    IT_CHECK(it_metric(na.port, "callstream_gather_refused_total{reason=\"bad_input\"}") == 1,
             "a did not refuse the keys");
    IT_CHECK(gather_post(&nb, "/twilio/gather", call, NULL, "2468#", twiml, sizeof twiml) == 200 &&
                 says(twiml, "Goodbye.", false),
             "b does not answer the keys from a: %s", twiml);
    IT_CHECK(it_metric(na.port, "callstream_gather_turns_total") == 2 &&
                 it_metric(nb.port, "callstream_gather_turns_total") == 0,
             "the turns were not taken by a: a %g, b %g",
             it_metric(na.port, "callstream_gather_turns_total"),
             it_metric(nb.port, "callstream_gather_turns_total"));

    /* A turn of a call that is nowhere: hung up by b. */
    const char *nowhere = "CA00000000000000000000000000000e09";
    IT_CHECK(gather_post(&nb, "/twilio/gather", nowhere, "sales", NULL, twiml, sizeof twiml) ==
                     200 &&
                 strstr(twiml, "<Hangup/>"),
             "a turn of a call nowhere: %s", twiml);
    IT_CHECK(it_metric(nb.port, "callstream_gather_refused_total{reason=\"unknown_call\"}") == 1,
             "the unknown call is not counted");

    /* a silent: b waits GATHER_REPLY_MS and a margin, then hangs up and says why. */
    const char *call2 = "CA00000000000000000000000000000e02";
    IT_CHECK(gather_post(&na, "/twilio/voice", call2, NULL, NULL, twiml, sizeof twiml) == 200,
             "a's second webhook");
    call_wait listed = {.port = nb.port, .sid = call2, .live = true};
    IT_CHECK(it_until(call_is, &listed, WAIT_MS), "b does not see a's conversation live");
    kill(na.pid, SIGSTOP);
    int st = gather_post(&nb, "/twilio/gather", call2, "sales", NULL, twiml, sizeof twiml);
    kill(na.pid, SIGCONT);
    IT_CHECK(st == 200 && strstr(twiml, "<Hangup/>"), "a turn a does not answer: %d %s", st, twiml);
    IT_CHECK(it_metric(nb.port, "callstream_gather_refused_total{reason=\"unanswered\"}") == 1 &&
                 it_metric(nb.port, "callstream_cluster_replies_late_total") == 1,
             "the unanswered turn is not counted");
    IT_CHECK(log_says(&nb, "not answered by its loop (the node holding the call did not answer"),
             "b's log does not say why it hung up");
    /* Redis away: b cannot know where a call lives, so it does not answer as if it lived
     * nowhere. */
    const char *call3 = "CA00000000000000000000000000000e03";
    IT_CHECK(gather_post(&na, "/twilio/voice", call3, NULL, NULL, twiml, sizeof twiml) == 200,
             "a's third webhook");
    rs_kill(&redis);
    IT_CHECK(gather_post(&nb, "/twilio/gather", call3, "sales", NULL, twiml, sizeof twiml) == 200 &&
                 strstr(twiml, "<Hangup/>"),
             "a turn with Redis away: %s", twiml);
    IT_CHECK(it_metric(nb.port, "callstream_gather_refused_total{reason=\"unanswered\"}") == 2 &&
                 it_metric(nb.port, "callstream_gather_refused_total{reason=\"unknown_call\"}") ==
                     1,
             "a turn with Redis away is not counted unanswered");
    IT_CHECK(log_says(&nb, "not answered by its loop (the call directory cannot be read"),
             "b's log does not say why it hung up");
    IT_CHECK(rs_start(&redis) == 0, "Redis did not start again");
    down();
}

/* Redis killed and restarted mid-call. */
static void redis_restart(void)
{
    if (!up()) {
        down();
        return;
    }
    pid_t sim = it_sim_spawn(&na, "--calls 1 --duration 12 --wav %s", it_corpus(WAV));
    char sid[64];
    IT_CHECK(live_call(&na, sid), "the call did not start on a");
    call_wait live = {.port = nb.port, .sid = sid, .live = true};
    IT_CHECK(it_until(call_is, &live, WAIT_MS), "b's API does not say a's call is live");
    char cs[64], path[128], token[128];
    IT_CHECK(it_call_stream_create(na.port, "{\"format\":\"mulaw\"}", cs, path, token) == 201,
             "a did not create an API stream");
    it_sleep_ms(1000);
    rs_kill(&redis);
    /* The stream's source at b meanwhile: the other nodes cannot be asked; its token stays
     * good. */
    IT_CHECK(it_until(bus_out, &nb, WAIT_MS), "b did not see Redis go");
    it_ws src;
    int code = it_call_stream_connect(&src, nb.port, path, token);
    it_ws_close(&src);
    IT_CHECK(code == 503, "the source at b, Redis away: %d", code);
    it_sleep_ms(1500);
    IT_CHECK(rs_start(&redis) == 0, "Redis did not start again");
    /* Redis came back empty: only a's rewrite makes b see the call again. */
    IT_CHECK(it_until(call_is, &live, WAIT_MS), "the directory did not heal");
    source_try t = {.path = path, .token = token};
    IT_CHECK(it_until(source_connects, &t, WAIT_MS), "the source at b, Redis back: %d", t.code);
    it_ws_close(&t.ws);
    int exit_status;
    cJSON *sum = it_sim_wait(sim, &exit_status);
    IT_CHECK(exit_status == 0 && it_num(sum, "completed") == 1 && it_num(sum, "missing") == 0,
             "the call did not go on through the outage");
    cJSON_Delete(sum);
    call_wait whole = {.port = nb.port,
                       .sid = sid,
                       .status = "completed",
                       .event = "bus_restored",
                       .rec_ms_min = 11000};
    IT_CHECK(it_until(call_is, &whole, WAIT_MS), "the call is not stored whole, with its events");
    cJSON *c = it_call(nb.port, sid);
    IT_CHECK(c && it_events(c, "bus_outage", NULL) == 1, "no bus_outage event");
    cJSON_Delete(c);
    IT_CHECK(it_metric(na.port, "callstream_bus_outages_total") == 1 &&
                 it_metric(na.port, "callstream_cluster_health_events_total") == 2,
             "the outage and its end are not counted");
    down();
}

/* A call that ends while Redis is away: when it is back, b's follower and b's list get its
 * end, and b no longer lists it live. */
static void end_during_outage(void)
{
    it_ws list, call;
    char sid[64];
    /* one loop a node: a held end sent by one of a node's several loops does not yet
     * reach another node's follower that subscribes anew every time */
    one_loop = true;
    pid_t sim = up_with_call(&list, sid);
    one_loop = false;
    if (sim < 0) return;
    watch_call(&call, &nb, sid, "none");
    cJSON *sub = next_json(&call, "subscribed", WAIT_MS, NULL);
    IT_CHECK(sub && cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(sub, "call"), "live")),
             "not subscribed live through b");
    cJSON_Delete(sub);

    rs_kill(&redis);
    /* ends it on a, while b cannot hear; with Redis away a's loops cannot reach each other
     * either: the callback ends the call when it lands on the call's loop (else it is
     * stored only), so it comes again until a holds no stream */
    bool over = false;
    for (long long end = it_now_ms() + WAIT_MS; !over && it_now_ms() < end; it_sleep_ms(200)) {
        status_callback(&na, sid, "completed");
        over = it_metric(na.port, "callstream_active_streams") == 0;
    }
    call_wait ended = {.port = na.port, .sid = sid, .live = false, .status = "completed"};
    IT_CHECK(over && it_until(call_is, &ended, WAIT_MS), "a's call did not end on its final status");
    cJSON_Delete(it_sim_wait(sim, NULL));
    IT_CHECK(rs_start(&redis) == 0, "Redis did not start again");
    cJSON *end = next_json(&call, "call_ended", WAIT_MS, NULL);
    IT_CHECK(end && !strcmp(it_str(cJSON_GetObjectItem(end, "call"), "sid"), sid),
             "b's follower did not see the call end");
    cJSON_Delete(end);
    end = next_json(&list, "call_ended", WAIT_MS, NULL);
    IT_CHECK(end && !strcmp(it_str(cJSON_GetObjectItem(end, "call"), "sid"), sid),
             "b's list did not see the call end");
    cJSON_Delete(end);
    IT_CHECK(it_until(b_lists_ended, sid, WAIT_MS), "b still lists the call live");
    IT_CHECK(it_metric(na.port, "callstream_bus_held_total") == 2, "the held end is not counted");
    it_ws_close(&call);
    it_ws_close(&list);
    down();
}

int main(int argc, char **argv)
{
    static const it_case cases[] = {
        {"final_status_ends_call", final_status_ends_call},
        {"repair_own_calls", repair_own_calls},
        {"across_nodes", across_nodes},
        {"stream_across_nodes", stream_across_nodes},
        {"transcripts_across_nodes", transcripts_across_nodes},
        {"node_death", node_death},
        {"gather_across_nodes", gather_across_nodes},
        {"redis_restart", redis_restart},
        {"end_during_outage", end_during_outage},
    };
    return it_run("cluster", cases, sizeof cases / sizeof *cases, argc, argv);
}
