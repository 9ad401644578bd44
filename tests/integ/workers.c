/* Several event loops in one process (WORKERS=2): connections spread over both loops and
 * /metrics sums their counters; a call streamed to one loop is listed and heard by monitor
 * sockets on the other; /status and /streams count both loops' streams; SIGTERM drains
 * both; a start-up error is said once; the default is a loop per core, and WORKERS=1 has no loops to show. Which loop a connection lands on is the kernel's choice (SO_REUSEPORT):
 * the test opens connections until each loop has some, as the per-loop series tell. */
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
    IT_CHECK(it_server_stop(&s, SIGTERM, WAIT_MS) == 0, "no clean exit");
    IT_CHECK(it_log_count(&s, "Terminated: no new calls") == 2, "not both loops drained");
    IT_CHECK(it_log_count(&s, "callstream: stopped") == 1, "no clean stop in the log");
    for (int i = 0; i < n; i++) it_ws_close(&media[i]);
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
        {"once_and_one", once_and_one},
    };
    return it_run("workers", cases, sizeof cases / sizeof *cases, argc, argv);
}
