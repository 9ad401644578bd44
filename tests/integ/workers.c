/* Several event loops in one process (WORKERS=2): connections spread over both loops and
 * /metrics sums their counters; a call streamed to one loop is listed and heard by monitor
 * sockets on the other; /status and /streams count both loops' streams; a conversation in
 * <Gather> turns is answered whichever loop its turns reach, and a stream's <Connect
 * action> on the other loop knows how it ended; API streams are created, connected, asked
 * after and completed through either loop; SIGTERM drains both; a start-up error is said
 * once; the default is a loop per core, and WORKERS=1 has no loops to show. Which loop a
 * connection lands on is the kernel's choice (SO_REUSEPORT): the test opens connections
 * until each loop has some, as the per-loop series tell. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "integ_util.h"

#define CALL_A   "CA00000000000000000000000000000a01"
#define STREAM_A "MZ00000000000000000000000000000a01"
#define CALL_B   "CA00000000000000000000000000000b02"
#define STREAM_B "MZ00000000000000000000000000000b02"
#define MONITORS_MAX 16
#define WAIT_MS      15000

static const char *const two[] = {"--workers", "2", NULL};

/* One loop's value of a per-loop series, from one /metrics answer. */
static double loop_value(const char *text, size_t len, const char *name, int loop)
{
    char series[128];
    snprintf(series, sizeof series, "%s{loop=\"%d\"}", name, loop);
    return it_metric_in(text, len, series);
}

typedef struct metrics {
    it_resp r;
    bool ok;
} metrics;

static bool get_metrics(const it_server *s, metrics *m)
{
    m->ok = it_http(s->port, "GET", "/metrics", NULL, NULL, &m->r) == 0 && m->r.status == 200;
    return m->ok;
}

static double in(const metrics *m, const char *series)
{
    return m->ok ? it_metric_in(m->r.body, m->r.body_len, series) : -1;
}

static double per_loop(const metrics *m, const char *name, int loop)
{
    return m->ok ? loop_value(m->r.body, m->r.body_len, name, loop) : -1;
}

/* Connections spread over both loops; /metrics says each loop's and their sum, /status
 * each loop's load. */
static void spread_and_summed(void)
{
    it_server s;
    if (!it_server_up(&s, two)) return;
    metrics m = {0};
    bool both = false;
    for (int i = 0; i < 200 && !both; i++) {
        it_resp r;
        if (it_http(s.port, "GET", "/health", NULL, NULL, &r) == 0) it_resp_free(&r);
        if (i % 10 != 9) continue;
        it_resp_free(&m.r);
        both = get_metrics(&s, &m) &&
               per_loop(&m, "callstream_loop_http_requests_total", 0) > 0 &&
               per_loop(&m, "callstream_loop_http_requests_total", 1) > 0;
    }
    IT_CHECK(both, "200 connections all went to one loop");
    double l0 = per_loop(&m, "callstream_loop_http_requests_total", 0),
           l1 = per_loop(&m, "callstream_loop_http_requests_total", 1),
           sum = in(&m, "callstream_http_requests_total");
    IT_CHECK(sum == l0 + l1 && sum >= 10, "requests: %.0f in all, %.0f + %.0f by loop", sum, l0, l1);
    double c0 = per_loop(&m, "callstream_loop_connections_total", 0),
           c1 = per_loop(&m, "callstream_loop_connections_total", 1);
    IT_CHECK(c0 > 0 && c1 > 0 && in(&m, "callstream_connections_total") == c0 + c1,
             "connections: %.0f in all, %.0f + %.0f by loop", in(&m, "callstream_connections_total"),
             c0, c1);
    IT_CHECK(in(&m, "callstream_loops") == 2, "callstream_loops %.0f", in(&m, "callstream_loops"));
    IT_CHECK(in(&m, "callstream_up") == 1, "callstream_up is the process's: %.0f",
             in(&m, "callstream_up"));
    it_resp_free(&m.r);
    cJSON *st = it_get_json(s.port, "/status");
    const cJSON *loops = cJSON_GetObjectItem(st, "loops");
    IT_CHECK(cJSON_GetArraySize(loops) == 2, "/status does not list 2 loops");
    IT_CHECK(it_num(st, "loop") == 0 || it_num(st, "loop") == 1, "/status: no answering loop");
    cJSON_Delete(st);
    IT_CHECK(it_log_count(&s, "(plain, 2 loops)") == 1, "the log does not say 2 loops once");
    IT_CHECK(it_server_stop(&s, SIGTERM, 20000) == 0, "no clean exit");
    IT_CHECK(it_log_count(&s, "callstream: stopped") == 1, "stopped said %d times",
             it_log_count(&s, "callstream: stopped"));
    it_server_cleanup(&s);
}

/* The loop holding call `sid`'s stream (-1: none yet). */
static int stream_loop(const it_server *s)
{
    metrics m;
    get_metrics(s, &m);
    int at = -1;
    for (int i = 0; i < 2; i++)
        if (per_loop(&m, "callstream_loop_active_streams", i) > 0) at = i;
    it_resp_free(&m.r);
    return at;
}

static bool monitor_on(const it_server *s, int loop)
{
    /* open: the media stream, the monitors, this request; with 2 on `loop`, where the
     * stream is not, at least one monitor is there */
    metrics m;
    get_metrics(s, &m);
    bool on = per_loop(&m, "callstream_loop_connections", loop) >= 2;
    it_resp_free(&m.r);
    return on;
}

/* What a monitor socket got of the call. */
typedef struct heard {
    it_ws ws;
    bool subscribed, listed;
    int audio;
    int statuses; /* status callbacks' events */
} heard;

static void read_monitor(heard *h, int timeout_ms)
{
    cs_ws_event ev;
    while (it_ws_next(&h->ws, &ev, timeout_ms) > 0) {
        timeout_ms = 1; /* then what has come already */
        if (ev.type != CS_WS_EV_MESSAGE) continue;
        if (ev.opcode == CS_WS_OP_BINARY) {
            h->audio++;
            continue;
        }
        cJSON *j = cJSON_ParseWithLength(ev.data, ev.len);
        const char *type = it_str(j, "type");
        if (strcmp(type, "subscribed") == 0) h->subscribed = true;
        if (strcmp(type, "event") == 0 &&
            strcmp(it_str(cJSON_GetObjectItem(j, "event"), "type"), "status") == 0)
            h->statuses++;
        if (strcmp(type, "calls") == 0 || strcmp(type, "call_started") == 0) {
            char *text = cJSON_PrintUnformatted(j);
            h->listed |= text && strstr(text, CALL_A) != NULL;
            free(text);
        }
        cJSON_Delete(j);
    }
}

/* A call streamed to one loop is listed and heard on the other: monitors are opened until
 * one is there, and every one of them must hear it. */
static void heard_across_loops(void)
{
    it_server s;
    if (!it_server_up(&s, two)) return;
    it_ws media;
    IT_CHECK(it_media_start(&media, s.port, CALL_A, STREAM_A) == 0, "no media stream");
    uint64_t seq = 2;
    int at = -1;
    for (int i = 0; i < 200 && at < 0; i++) {
        it_media_frame(&media, STREAM_A, seq, (seq - 2) * 20, 0x20, 160);
        seq++;
        at = stream_loop(&s);
        it_sleep_ms(20);
    }
    IT_CHECK(at >= 0, "the stream is on no loop");
    heard mon[MONITORS_MAX];
    int n = 0;
    bool other = false;
    while (at >= 0 && n < MONITORS_MAX && !other) {
        heard *h = &mon[n];
        memset(h, 0, sizeof *h);
        if (it_ws_connect(&h->ws, s.port, "/monitor", it_auth) != 0) break;
        n++;
        it_ws_send_text(&h->ws, "{\"type\":\"watch_calls\"}");
        char sub[128];
        snprintf(sub, sizeof sub, "{\"type\":\"subscribe\",\"call\":\"%s\",\"audio\":\"both\"}",
                 CALL_A);
        it_ws_send_text(&h->ws, sub);
        other = monitor_on(&s, 1 - at);
    }
    IT_CHECK(other, "%d monitor sockets all landed on the stream's loop", n);
    /* the call keeps streaming; every monitor hears it, the one on the other loop too */
    long long deadline = it_now_ms() + WAIT_MS;
    bool all = false;
    while (!all && it_now_ms() < deadline) {
        it_media_frame(&media, STREAM_A, seq, (seq - 2) * 20, 0x20, 160);
        seq++;
        all = n > 0;
        for (int i = 0; i < n; i++) {
            read_monitor(&mon[i], 1);
            all = all && mon[i].subscribed && mon[i].listed && mon[i].audio > 0;
        }
        it_sleep_ms(20);
    }
    for (int i = 0; i < n; i++)
        IT_CHECK(mon[i].subscribed && mon[i].listed && mon[i].audio > 0,
                 "monitor %d: subscribed %d, listed %d, audio frames %d", i, mon[i].subscribed,
                 mon[i].listed, mon[i].audio);
    /* status callbacks land on either loop (a connection each): every one reaches the
     * loop holding the call, so every listener has each one's event */
    static const char *const names[] = {"CallSid", "CallStatus"};
    static const char *const values[] = {CALL_A, "in-progress"};
    enum { CALLBACKS = 8 };
    for (int i = 0; i < CALLBACKS; i++)
        IT_CHECK(it_twilio_post(&s, NULL, "/twilio/status", names, values, 2, NULL, 0) == 204,
                 "status callback %d not taken", i);
    deadline = it_now_ms() + WAIT_MS;
    all = false;
    while (!all && it_now_ms() < deadline) {
        it_media_frame(&media, STREAM_A, seq, (seq - 2) * 20, 0x20, 160);
        seq++;
        all = true;
        for (int i = 0; i < n; i++) {
            read_monitor(&mon[i], 1);
            all = all && mon[i].statuses >= CALLBACKS;
        }
        it_sleep_ms(20);
    }
    for (int i = 0; i < n; i++)
        IT_CHECK(mon[i].statuses == CALLBACKS, "monitor %d heard %d of %d status callbacks", i,
                 mon[i].statuses, CALLBACKS);
    metrics m;
    get_metrics(&s, &m);
    IT_CHECK(in(&m, "callstream_bus_sent_total") > 0 &&
                 in(&m, "callstream_bus_received_total") > 0,
             "nothing went from loop to loop");
    IT_CHECK(in(&m, "callstream_bus_commands_in_total") > 0,
             "no status callback went to the call's loop");
    it_resp_free(&m.r);
    IT_CHECK(it_media_stop(&media, CALL_A, STREAM_A, seq) >= 0, "the stream did not stop");
    it_ws_close(&media);
    for (int i = 0; i < n; i++) it_ws_close(&mon[i].ws);
    it_server_stop(&s, SIGTERM, 20000);
    it_server_cleanup(&s);
}

/* ---- <Gather> turns ---- */

#define GO_ON "Turn taken."

/* A menu that takes "again" turn after turn, in the server's dir; false if not written. */
static bool loop_menu(const it_server *s, char *path, size_t cap)
{
    snprintf(path, cap, "%s/loop.json", s->dir);
    FILE *f = fopen(path, "w");
    if (!f) return false;
    fputs("{\"start\": \"loop\", \"defaults\": {\"timeout_s\": 5, \"retries\": 1,"
          " \"no_input\": \"Nothing?\", \"no_match\": \"Pardon?\", \"goodbye\": \"Goodbye.\"},"
          " \"nodes\": {\"loop\": {\"say\": \"" GO_ON "\", \"choices\": [{\"key\": \"1\","
          " \"phrases\": [\"again\"], \"value\": \"again\", \"goto\": \"loop\"}],"
          " \"fallback\": \"bye\"}, \"bye\": {\"say\": \"Goodbye.\", \"hangup\": true}}}\n",
          f);
    return fclose(f) == 0;
}

/* The server in `dir` with `args` after --workers 2 and the loop menu. */
static bool gather_server(it_server *s, const char *const *args)
{
    static char menu[512];
    if (it_server_prepare(s) < 0 || !loop_menu(s, menu, sizeof menu)) {
        IT_CHECK(false, "no test dir");
        return false;
    }
    const char *all[24] = {"--workers", "2", "--agent", "ivr", "--ivr-file", menu, "--stt", "none"};
    size_t n = 8;
    for (size_t i = 0; args[i] && n + 1 < 24; i++) all[n++] = args[i];
    bool up = it_server_restart(s, all) == 0;
    IT_CHECK(up, "the server did not start");
    return up;
}

/* A <Gather> request of `call` to `target`: SpeechResult `speech` when not NULL. */
static int gather_post(const it_server *s, const char *target, const char *call, const char *speech,
                       char *twiml, size_t cap)
{
    const char *names[] = {"CallSid", "CallStatus", "From", "To", "SpeechResult", "Confidence"};
    const char *values[] = {call, "in-progress", "+15550100", "+15550101", speech, "0.9"};
    return it_twilio_post(s, NULL, target, names, values, speech ? 6 : 4, twiml, cap);
}

static bool goes_on(const char *twiml)
{
    return strstr(twiml, "<Gather") && strstr(twiml, "<Say language=\"en-US\">" GO_ON "</Say>") &&
           !strstr(twiml, "<Hangup");
}

/* A conversation in turns whose turns land on either loop (a connection each): every one
 * is taken by the loop holding the conversation and answered by its agent. */
static void gather_turns_follow(void)
{
    static const char *const args[] = {"--stream-mode", "gather", "--tts", "none", NULL};
    it_server s;
    if (!gather_server(&s, args)) return;
    const char *call = "CA00000000000000000000000000000c03";
    char twiml[8192] = "";
    IT_CHECK(gather_post(&s, "/twilio/voice", call, NULL, twiml, sizeof twiml) == 200 &&
                 goes_on(twiml),
             "the webhook does not begin a conversation: %s", twiml);
    enum { TURNS = 8, TURNS_MAX = 40 };
    int i = 0;
    bool crossed = false;
    for (; i < TURNS_MAX && (i < TURNS || !crossed); i++) {
        int st = gather_post(&s, "/twilio/gather", call, "again", twiml, sizeof twiml);
        IT_CHECK(st == 200 && goes_on(twiml), "turn %d: %d %s", i, st, twiml);
        if (st != 200 || !goes_on(twiml)) break;
        crossed = it_metric(s.port, "callstream_bus_commands_in_total") > 0;
    }
    IT_CHECK(crossed, "%d turns all landed on the conversation's loop", i);
    IT_CHECK(it_metric(s.port, "callstream_gather_refused_total{reason=\"unknown_call\"}") == 0,
             "a turn was refused");
    cJSON *c = it_call(s.port, call);
    IT_CHECK(c && it_events(c, "gather", "turn") == i, "turn events: %d of %d",
             c ? it_events(c, "gather", "turn") : -1, i);
    cJSON_Delete(c);
    /* The call's end, on either loop, ends the conversation where it lives. */
    const char *names[] = {"CallSid", "CallStatus"}, *values[] = {call, "completed"};
    for (int k = 0; k < 4; k++)
        IT_CHECK(it_twilio_post(&s, NULL, "/twilio/gather", names, values, 2, twiml,
                                sizeof twiml) == 200 &&
                     strstr(twiml, "<Hangup/>"),
                 "the call's end: %s", twiml);
    bool over = false;
    for (int k = 0; k < 200 && !over; k++) {
        over = it_metric(s.port, "callstream_gather_conversations") == 0;
        if (!over) it_sleep_ms(50);
    }
    IT_CHECK(over, "the conversation did not end");
    IT_CHECK(it_server_stop(&s, SIGTERM, 20000) == 0, "no clean exit");
    it_server_cleanup(&s);
}

static bool call_over(const it_server *s, const char *call)
{
    cJSON *c = it_call(s->port, call);
    bool done = c && cJSON_IsString(cJSON_GetObjectItem(c, "ended_at"));
    cJSON_Delete(c);
    return done;
}

/* Whether call `sid` has a `gather` event of `type` with `reason`. */
static bool gather_event(const it_server *s, const char *sid, const char *type, const char *reason)
{
    cJSON *c = it_call(s->port, sid);
    bool found = false;
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(c, "events"))
    {
        const cJSON *d = cJSON_GetObjectItem(e, "detail");
        found |= !strcmp(it_str(e, "type"), "gather") && !strcmp(it_str(d, "type"), type) &&
                 !strcmp(it_str(d, "reason"), reason);
    }
    cJSON_Delete(c);
    return found;
}

/* Call `i` of series `series` streams, then stops (`stop`) or drops its socket; once the
 * call has ended, its stream's <Connect action> is posted: its status, the TwiML in
 * `twiml`. */
static int stream_then_action(const it_server *s, char series, int i, bool stop, char *call,
                              char *twiml, size_t cap)
{
    char stream[64];
    snprintf(call, 64, "CA000000000000000000000000000%c%04d", series, i);
    snprintf(stream, sizeof stream, "MZ000000000000000000000000000%c%04d", series, i);
    it_phone p;
    if (it_phone_start(&p, s->port, call, stream, NULL) != 0) return -1;
    if (stop) it_phone_hangup(&p);
    it_phone_free(&p);
    for (int k = 0; k < 200 && !call_over(s, call); k++) it_sleep_ms(50);
    return gather_post(s, "/twilio/gather?fallback=stream", call, NULL, twiml, cap);
}

/* <Connect action> after a stream, on whichever loop it ran: one that ended normally
 * (stop) hangs up rather than going on in turns; one that failed, or never started, goes
 * on in turns, and the event says which (the store says, when the other loop held it). */
static void stream_end_followed(void)
{
    static const char *const none[] = {NULL};
    it_server s;
    if (!gather_server(&s, none)) return;
    enum { CALLS = 8 };
    char call[64], twiml[8192] = "";
    for (int i = 0; i < CALLS; i++) {
        int st = stream_then_action(&s, 'd', i, true, call, twiml, sizeof twiml);
        IT_CHECK(st == 200 && strstr(twiml, "<Hangup/>") && !strstr(twiml, "<Gather"),
                 "call %d, after its stream stopped: %d %s", i, st, twiml);
    }
    IT_CHECK(it_metric(s.port, "callstream_gather_conversations") == 0, "a call went on in turns");
    /* Streams whose socket dropped without stop: failed, wherever they ran. */
    for (int i = 0; i < CALLS; i++) {
        int st = stream_then_action(&s, 'e', i, false, call, twiml, sizeof twiml);
        IT_CHECK(st == 200 && goes_on(twiml), "call %d, after its stream failed: %d %s", i, st,
                 twiml);
        IT_CHECK(gather_event(&s, call, "begin", "stream_failed"),
                 "call %d's conversation does not say its stream failed", i);
    }
    /* Streams still live (Twilio ended them first): the action goes to the stream's loop,
     * which knows it failed; the conversation is begun there, and its turns follow it. */
    for (int i = 0; i < CALLS / 2; i++) {
        char stream[64];
        snprintf(call, sizeof call, "CA000000000000000000000000000f%04d", i);
        snprintf(stream, sizeof stream, "MZ000000000000000000000000000f%04d", i);
        it_phone p;
        bool started = it_phone_start(&p, s.port, call, stream, NULL) == 0;
        IT_CHECK(started, "call %d's stream", i);
        if (!started) break;
        bool live = false;
        for (int k = 0; k < 200 && !live; k++) {
            it_phone_run(&p, 20);
            cJSON *c = it_call(s.port, call);
            live = c && cJSON_IsTrue(cJSON_GetObjectItem(c, "live"));
            cJSON_Delete(c);
        }
        IT_CHECK(live, "call %d is not live", i);
        int st = gather_post(&s, "/twilio/gather?fallback=stream", call, NULL, twiml, sizeof twiml);
        IT_CHECK(st == 200 && goes_on(twiml), "call %d, its stream live: %d %s", i, st, twiml);
        IT_CHECK(gather_event(&s, call, "begin", "stream_failed"),
                 "call %d's conversation does not say its stream failed", i);
        for (int k = 0; k < 3; k++) {
            st = gather_post(&s, "/twilio/gather", call, "again", twiml, sizeof twiml);
            IT_CHECK(st == 200 && goes_on(twiml), "call %d, turn %d: %d %s", i, k, st, twiml);
        }
        it_phone_free(&p);
    }
    /* A stream that never started: the store is read a while, then the call talks. */
    const char *never = "CA000000000000000000000000000b0001";
    IT_CHECK(gather_post(&s, "/twilio/voice", never, NULL, twiml, sizeof twiml) == 200,
             "the webhook");
    int st = gather_post(&s, "/twilio/gather?fallback=stream", never, NULL, twiml, sizeof twiml);
    IT_CHECK(st == 200 && goes_on(twiml), "after a stream that never started: %d %s", st, twiml);
    IT_CHECK(gather_event(&s, never, "begin", "stream_never_started"),
             "its conversation does not say its stream never started");
    IT_CHECK(it_server_stop(&s, SIGTERM, 20000) == 0, "no clean exit");
    it_server_cleanup(&s);
}

typedef struct action {
    const it_server *s;
    int status;
    char twiml[8192];
} action;

static void *post_action(void *data)
{
    action *t = data;
    t->status = gather_post(t->s, "/twilio/gather?fallback=stream",
                            "CA000000000000000000000000000b0002", NULL, t->twiml, sizeof t->twiml);
    return NULL;
}

/* A <Connect action> still reading the store when the gateway stops hangs up. */
static void action_reading_at_shutdown(void)
{
    static const char *const args[] = {"--shutdown-grace-s", "1", NULL};
    it_server s;
    if (!gather_server(&s, args)) return;
    action t = {&s, -1, ""};
    pthread_t th;
    pthread_create(&th, NULL, post_action, &t);
    bool reading = false;
    for (int k = 0; k < 400 && !reading; k++) {
        reading = it_metric(s.port, "callstream_gather_stream_reads") == 1;
        if (!reading) it_sleep_ms(5);
    }
    IT_CHECK(reading, "the action is not reading the store");
    IT_CHECK(it_server_stop(&s, SIGTERM, 20000) == 0, "no clean exit");
    pthread_join(th, NULL);
    IT_CHECK(t.status == 200 && strstr(t.twiml, "<Hangup/>") && !strstr(t.twiml, "<Gather"),
             "the action at shutdown: %d %s", t.status, t.twiml);
    IT_CHECK(it_log_count(&s, "1 <Connect action>(s) reading how their stream ended hang up") == 1,
             "the log does not say the reading action hung up");
    it_server_cleanup(&s);
}

/* Calls live on both loops; one SIGTERM drains both: each stream is closed with 1001 after
 * the grace period, and the process exits cleanly. */
static void sigterm_drains_both(void)
{
    static const char *const args[] = {"--workers", "2", "--shutdown-grace-s", "1", NULL};
    it_server s;
    if (!it_server_up(&s, args)) return;
    static const char *const calls[] = {CALL_A, CALL_B}, *const streams[] = {STREAM_A, STREAM_B};
    it_ws media[24]; /* all on one loop: one chance in 2^23 */
    int n = 0;
    bool both = false;
    /* streams until each loop holds one (a call per socket) */
    char call[64], stream[64];
    while (n < 24 && !both) {
        snprintf(call, sizeof call, "%.30s%04d", calls[n % 2], n);
        snprintf(stream, sizeof stream, "%.30s%04d", streams[n % 2], n);
        if (it_media_start(&media[n], s.port, call, stream) != 0) break;
        n++;
        metrics m;
        for (int k = 0; k < 50; k++) {
            get_metrics(&s, &m);
            double live = per_loop(&m, "callstream_loop_active_streams", 0) +
                          per_loop(&m, "callstream_loop_active_streams", 1);
            both = per_loop(&m, "callstream_loop_active_streams", 0) > 0 &&
                   per_loop(&m, "callstream_loop_active_streams", 1) > 0;
            it_resp_free(&m.r);
            if (live >= n) break;
            it_sleep_ms(20);
        }
    }
    IT_CHECK(both, "%d streams all went to one loop", n);
    /* /status counts every loop's streams (the others' as published each second) */
    bool counted = false;
    for (int k = 0; k < 100 && !counted; k++) {
        cJSON *st = it_get_json(s.port, "/status");
        counted = it_num(st, "active_streams") == n;
        cJSON_Delete(st);
        if (!counted) it_sleep_ms(50);
    }
    IT_CHECK(counted, "/status does not count the %d streams of both loops", n);
    cJSON *live = it_get_json(s.port, "/streams"); /* gathered from every loop: exact */
    IT_CHECK(live && it_num(live, "count") == n &&
                 cJSON_GetArraySize(cJSON_GetObjectItem(live, "streams")) == n,
             "/streams does not list the %d streams of both loops", n);
    cJSON_Delete(live);
    kill(s.pid, SIGTERM);
    for (int i = 0; i < n; i++)
        IT_CHECK(it_ws_close_code(&media[i], WAIT_MS) == 1001, "stream %d not closed with 1001",
                 i);
    /* one signal, heard by both loops, while one loop's drain also tells the other */
    IT_CHECK(it_log_count(&s, "again: closing calls now") == 0, "one SIGTERM taken for two");
    IT_CHECK(it_server_stop(&s, SIGTERM, WAIT_MS) == 0, "no clean exit");
    IT_CHECK(it_log_count(&s, "Terminated: no new calls") == 2, "not both loops drained");
    IT_CHECK(it_log_count(&s, "callstream: stopped") == 1, "no clean stop in the log");
    for (int i = 0; i < n; i++) it_ws_close(&media[i]);
    it_server_cleanup(&s);
}

/* API streams whose requests land on either loop (a connection each): a stream waits in
 * its creator loop's memory and another loop asks for it (claim, peek, cancel). */
#define API_STREAMS     8
#define API_STREAMS_MAX 24 /* until one source has landed on the other loop */
#define FRAME           160
#define FRAMES          50 /* 1 s of mulaw */

typedef struct api_stream {
    char id[64], path[128], token[128];
    it_ws ws;
} api_stream;

static int complete(int port, const char *id, char *status, size_t cap)
{
    char target[128];
    snprintf(target, sizeof target, "/api/v1/call_streams/%s/complete", id);
    it_resp r;
    if (it_http(port, "POST", target, "Content-Type: application/json\r\n", "", &r) < 0) return -1;
    snprintf(status, cap, "%s", it_str(r.json, "status"));
    int code = r.status;
    it_resp_free(&r);
    return code;
}

static int connect_code(int port, const char *path, const char *token)
{
    it_ws w;
    int code = it_call_stream_connect(&w, port, path, token);
    it_ws_close(&w);
    return code;
}

static double stream_count(int port, const char *event)
{
    char series[96];
    snprintf(series, sizeof series, "callstream_call_streams_total{event=\"%s\"}", event);
    return it_metric(port, series);
}

static void api_streams_across_loops(void)
{
    it_server s;
    if (!it_server_up(&s, two)) return;
    static api_stream st[API_STREAMS_MAX];
    int n = 0, refused = 0;
    char state[64];
    while (n < API_STREAMS_MAX && (n < API_STREAMS || stream_count(s.port, "handed") < 1)) {
        api_stream *x = &st[n];
        int code = it_call_stream_create(s.port, "{\"format\":\"mulaw\",\"from\":\"+15550100009\"}",
                                         x->id, x->path, x->token);
        IT_CHECK(code == 201, "create %d: %d", n, code);
        if (code != 201) break;
        /* where it stands, asked of either loop */
        for (int k = 0; k < 4; k++)
            IT_CHECK(strcmp(it_call_stream_status(s.port, x->id, state, sizeof state), "waiting") ==
                         0,
                     "stream %d, asked %d: %s", n, k, state);
        code = connect_code(s.port, x->path, "0123456789abcdef0123456789abcdef");
        IT_CHECK(code == 403, "stream %d, a wrong token: %d", n, code);
        refused++;
        code = it_call_stream_connect(&x->ws, s.port, x->path, x->token);
        IT_CHECK(code == 0, "stream %d: its source cannot connect: %d", n, code);
        if (code != 0) break;
        n++;
    }
    IT_CHECK(stream_count(s.port, "handed") >= 1, "%d sources all landed on their stream's loop",
             n);
    IT_CHECK(stream_count(s.port, "connected") == n, "connected: %g of %d",
             stream_count(s.port, "connected"), n);
    IT_CHECK(it_metric(s.port, "callstream_call_streams_bad_token_total") == refused,
             "wrong tokens counted: %g of %d",
             it_metric(s.port, "callstream_call_streams_bad_token_total"), refused);
    uint8_t frame[FRAME];
    memset(frame, 0x55, sizeof frame);
    for (int f = 0; f < FRAMES; f++) {
        for (int i = 0; i < n; i++) it_ws_send(&st[i].ws, CS_WS_OP_BINARY, frame, sizeof frame);
        it_sleep_ms(20);
    }
    for (int i = 0; i < n; i++) {
        /* live: where it stands and its token reused, on either loop */
        IT_CHECK(strcmp(it_call_stream_status(s.port, st[i].id, state, sizeof state),
                        "in-progress") == 0,
                 "stream %d while live: %s", i, state);
        for (int k = 0; k < 2; k++) {
            int code = connect_code(s.port, st[i].path, st[i].token);
            IT_CHECK(code == 409, "stream %d: its token reused: %d", i, code);
        }
    }
    /* every other one completed through the API (either loop), the rest closed by their
     * source */
    for (int i = 0; i < n; i++) {
        if (i % 2) {
            it_ws_close(&st[i].ws);
            continue;
        }
        int code = complete(s.port, st[i].id, state, sizeof state);
        IT_CHECK(code == 200 && strcmp(state, "completed") == 0, "complete %d: %d %s", i, code,
                 state);
        IT_CHECK(it_ws_close_code(&st[i].ws, WAIT_MS) == 1000, "source %d not closed with 1000", i);
        it_ws_close(&st[i].ws);
    }
    for (int i = 0; i < n; i++) {
        cJSON *call = it_call_recorded(s.port, st[i].id, WAIT_MS);
        const cJSON *rec = cJSON_GetObjectItem(call, "recording");
        IT_CHECK(call && it_num(rec, "duration_ms") >= FRAMES * 20 - 100,
                 "stream %d: recording of %d ms", i, it_num(rec, "duration_ms"));
        IT_CHECK(call && strcmp(it_str(call, "from"), "+15550100009") == 0, "stream %d: from '%s'",
                 i, it_str(call, "from"));
        cJSON_Delete(call);
    }
    /* streams never connected, completed through either loop: canceled once */
    for (int i = 0; i < 4; i++) {
        api_stream x;
        IT_CHECK(it_call_stream_create(s.port, "{\"format\":\"mulaw\"}", x.id, x.path, x.token) ==
                     201,
                 "create a stream to cancel");
        int code = complete(s.port, x.id, state, sizeof state);
        IT_CHECK(code == 200 && strcmp(state, "canceled") == 0, "cancel %d: %d %s", i, code, state);
        /* then the store answers, on either loop, once its row is written */
        cJSON_Delete(it_call_ended(s.port, x.id, WAIT_MS));
        code = complete(s.port, x.id, state, sizeof state);
        IT_CHECK(code == 409, "cancel %d again: %d", i, code);
        code = connect_code(s.port, x.path, x.token);
        IT_CHECK(code == 404, "cancel %d, then its source: %d", i, code);
    }
    IT_CHECK(stream_count(s.port, "canceled") == 4, "canceled %g",
             stream_count(s.port, "canceled"));
    IT_CHECK(it_metric(s.port, "callstream_call_streams_pending") == 0, "streams still wait");
    IT_CHECK(it_server_stop(&s, SIGTERM, 20000) == 0, "no clean exit");
    it_server_cleanup(&s);
}

/* A start-up error is said once, not by every loop; WORKERS=1 shows no loops. */
static void once_and_one(void)
{
    static const char *const bad[] = {"--workers", "2", "--stream-mode", "sideways", NULL};
    it_refused(bad, "STREAM_MODE: 'sideways' is not one of");
    static const char *const range[] = {"--workers", "65", NULL};
    it_refused(range, "WORKERS");
    it_server s;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (cores > 1 && it_server_up(&s, NULL)) { /* the default: one loop per core */
        metrics d;
        get_metrics(&s, &d);
        IT_CHECK(in(&d, "callstream_loops") == (double)(cores < 64 ? cores : 64),
                 "by default %.0f loops on %ld cores", in(&d, "callstream_loops"), cores);
        it_resp_free(&d.r);
        it_server_stop(&s, SIGTERM, 20000);
        it_server_cleanup(&s);
    }
    static const char *const one[] = {"--workers", "1", NULL};
    if (!it_server_up(&s, one)) return;
    metrics m;
    get_metrics(&s, &m);
    IT_CHECK(m.ok && in(&m, "callstream_loops") < 0 && in(&m, "callstream_up") == 1,
             "one loop shows loops");
    it_resp_free(&m.r);
    cJSON *st = it_get_json(s.port, "/status");
    IT_CHECK(st && !cJSON_GetObjectItem(st, "loops"), "one loop lists loops in /status");
    cJSON_Delete(st);
    IT_CHECK(it_log_count(&s, "(plain), store") == 1, "the log does not say it listens as before");
    it_server_stop(&s, SIGTERM, 20000);
    it_server_cleanup(&s);
}

int main(int argc, char **argv)
{
    static const it_case cases[] = {
        {"spread_and_summed", spread_and_summed},
        {"heard_across_loops", heard_across_loops},
        {"sigterm_drains_both", sigterm_drains_both},
        {"api_streams_across_loops", api_streams_across_loops},
        {"gather_turns_follow", gather_turns_follow},
        {"stream_end_followed", stream_end_followed},
        {"action_reading_at_shutdown", action_reading_at_shutdown},
        {"once_and_one", once_and_one},
    };
    return it_run("workers", cases, sizeof cases / sizeof *cases, argc, argv);
}
