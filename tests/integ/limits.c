/* Named limits and what happens past them: connections per address, and in total when no
 * connection waits for a request it could replace, are closed at once and counted; with two
 * loops (WORKERS=2) MAX_CONNECTIONS and MAX_CALLS are the process's, whichever loop a
 * connection or a webhook lands on; a stream over
 * MAX_MESSAGES_PER_S has the excess counted and skipped; a silent media socket ends as
 * idle_timeout; a stream past MAX_CALL_S is ended; an idle keep-alive connection is closed. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <unistd.h>

#include "integ_util.h"
#include "provider/twilio.h"

#define ACCT "AC33333333333333333333333333333333"

static int num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valueint : -1;
}

static int tcp(int port)
{
    return it_tcp(port, NULL, 0);
}

/* Whether the server closed `fd` within timeout_ms. */
static bool closed_by_server(int fd, int timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    char c;
    return poll(&p, 1, timeout_ms) == 1 && recv(fd, &c, 1, 0) <= 0;
}

static void connection_limits(void)
{
    it_server s;
    const char *args[] = {"--max-connections-per-ip", "5", NULL};
    if (!it_server_up(&s, args)) return;
    int fds[5];
    for (int i = 0; i < 5; i++) fds[i] = tcp(s.port);
    it_sleep_ms(100);
    int extra = tcp(s.port);
    IT_CHECK(closed_by_server(extra, 2000), "a sixth connection from one address was kept");
    close(extra);
    for (int i = 0; i < 5; i++) IT_CHECK(!closed_by_server(fds[i], 50), "connection %d closed", i);
    close(fds[0]);
    it_sleep_ms(100);
    /* room again: this one is served */
    for (int i = 1; i < 5; i++) close(fds[i]);
    it_sleep_ms(100);
    IT_CHECK(it_metric(s.port, "callstream_connections_rejected_total{limit=\"max_per_ip\"}") == 1,
             "the refusal was not counted");
    it_server_stop(&s, SIGTERM, 5000);
    it_server_cleanup(&s);

    /* All slots taken by connections waiting for a request: the oldest makes room. The one
     * closed is the oldest of the loop the new connection lands on; one loop shows which. */
    const char *total[] = {"--max-connections", "3", "--workers", "1", NULL};
    if (!it_server_up(&s, total)) return;
    int a = tcp(s.port);
    it_sleep_ms(100);
    int b = tcp(s.port), c = tcp(s.port);
    it_sleep_ms(100);
    int d = tcp(s.port);
    IT_CHECK(closed_by_server(a, 2000), "the oldest idle connection was kept for a new one");
    IT_CHECK(!closed_by_server(d, 200), "the new connection was refused");
    close(a);
    close(b);
    close(c);
    close(d);
    it_sleep_ms(100);
    IT_CHECK(it_metric(s.port, "callstream_http_slow_closed_total{reason=\"head_evicted\"}") == 1,
             "the eviction was not counted");
    /* All slots taken by sockets in use: a new connection is refused. */
    it_ws w[3];
    for (int i = 0; i < 3; i++)
        IT_CHECK(it_ws_connect(&w[i], s.port, "/twilio/media", NULL) == 0, "upgrade refused");
    it_sleep_ms(100);
    d = tcp(s.port);
    IT_CHECK(closed_by_server(d, 2000), "a fourth connection past MAX_CONNECTIONS was kept");
    close(d);
    for (int i = 0; i < 3; i++) it_ws_close(&w[i]);
    it_sleep_ms(200);
    IT_CHECK(
        it_metric(s.port, "callstream_connections_rejected_total{limit=\"max_connections\"}") == 1,
        "the refusal was not counted");
    it_server_stop(&s, SIGTERM, 5000);
    it_server_cleanup(&s);
}

static void start_stream(it_ws *w, const char *stream, const char *call)
{
    cs_buf b = CS_BUF_INIT(1 << 16);
    cs_twilio_start st = {ACCT, call, stream, CS_TRACK_BIT(CS_TRACK_INBOUND), NULL, 0};
    cs_twilio_peer_start(&b, 1, &st);
    it_ws_send_text(w, b.data);
    cs_buf_free(&b);
}

/* ---- the process's limits over two loops ---- */

#define SPREAD_TRIES 20
#define PAST         6 /* tries past the limit */

static double loop_streams(int port, int loop)
{
    char series[64];
    snprintf(series, sizeof series, "callstream_loop_active_streams{loop=\"%d\"}", loop);
    return it_metric(port, series);
}

/* Polls the metric until it is `want`: whether it came. */
static bool metric_becomes(int port, const char *series, double want)
{
    for (int i = 0; i < 100; i++) {
        if (it_metric(port, series) == want) return true;
        it_sleep_ms(100);
    }
    return false;
}

/* `n` media streams held on both loops (the kernel picks the loop: they are opened again
 * until each loop has some). Whether they are. */
static bool streams_on_both_loops(int port, it_ws *w, int n)
{
    for (int t = 0; t < SPREAD_TRIES; t++) {
        for (int i = 0; i < n; i++) {
            char call[40], stream[40];
            snprintf(call, sizeof call, "CA%032x", t * 100 + i + 1);
            snprintf(stream, sizeof stream, "MZ%032x", t * 100 + i + 1);
            if (it_ws_connect(&w[i], port, "/twilio/media", NULL) != 0) {
                for (int k = 0; k <= i; k++) it_ws_close(&w[k]);
                return false;
            }
            start_stream(&w[i], stream, call);
        }
        double l0 = -1, l1 = -1;
        for (int k = 0; k < 100 && l0 + l1 != n; k++) {
            it_sleep_ms(50);
            l0 = loop_streams(port, 0);
            l1 = loop_streams(port, 1);
        }
        if (l0 > 0 && l1 > 0 && l0 + l1 == n) return true;
        for (int i = 0; i < n; i++) it_ws_close(&w[i]);
        if (!metric_becomes(port, "callstream_active_streams", 0)) return false;
    }
    return false;
}

/* MAX_CONNECTIONS=4 over two loops: 4 held across both, every next one refused (each loop
 * holds fewer than 4: a per-loop count would let them in), and counted. */
static void process_connections(void)
{
    it_server s;
    const char *args[] = {"--workers", "2", "--max-connections", "4", NULL};
    if (!it_server_up(&s, args)) return;
    it_ws w[4];
    bool spread = streams_on_both_loops(s.port, w, 3);
    IT_CHECK(spread, "3 streams were not held on both loops");
    if (spread) {
        /* the last slot: /metrics's connection may not have been given back yet */
        int refused = 0;
        while (it_ws_connect(&w[3], s.port, "/twilio/media", NULL) != 0 && refused < 20) {
            it_ws_close(&w[3]);
            refused++;
            it_sleep_ms(100);
        }
        IT_CHECK(refused < 20, "the fourth connection was never taken");
        int kept = 0;
        for (int i = 0; i < PAST; i++) {
            int fd = tcp(s.port);
            kept += !closed_by_server(fd, 2000);
            close(fd);
        }
        IT_CHECK(kept == 0, "%d of %d connections past MAX_CONNECTIONS=4 were kept", kept, PAST);
        for (int i = 0; i < 4; i++) it_ws_close(&w[i]);
        /* each of the PAST was refused; an attempt at the fourth may have failed before it
         * reached the server's limit (counted or not) */
        const char *name = "callstream_connections_rejected_total{limit=\"max_connections\"}";
        double counted = -1;
        for (int k = 0; k < 100 && !(counted >= PAST && counted <= PAST + refused); k++) {
            counted = it_metric(s.port, name);
            it_sleep_ms(50);
        }
        IT_CHECK(counted >= PAST && counted <= PAST + refused,
                 "%.0f refusals counted, %d to %d expected", counted, PAST, PAST + refused);
    }
    it_server_stop(&s, SIGTERM, 5000);
    it_server_cleanup(&s);
}

static int voice(const it_server *s, const char *call, char *twiml, size_t cap)
{
    const char *names[] = {"AccountSid", "CallSid", "CallStatus", "From", "To"};
    const char *values[] = {ACCT, call, "ringing", "+15550100", "+15550101"};
    return it_twilio_post(s, NULL, "/twilio/voice", names, values, 5, twiml, cap);
}

/* MAX_CALLS=2 over two loops: with a stream on each, every next call talks in <Gather>
 * turns whichever loop its webhook reaches, counted; one stream gone, a call streams. */
static void process_calls(void)
{
    it_server s;
    char menu[512];
    snprintf(menu, sizeof menu, "%s/ivr/relay.json", getenv("CS_TEST_DATA"));
    const char *args[] = {"--workers", "2",          "--max-calls", "2", "--agent",
                          "ivr",       "--ivr-file", menu,          NULL};
    if (!it_server_up(&s, args)) return;
    it_ws w[2];
    bool spread = streams_on_both_loops(s.port, w, 2);
    IT_CHECK(spread, "2 streams were not held on both loops");
    if (spread) {
        char twiml[8192];
        int streamed = 0;
        for (int i = 0; i < PAST; i++) {
            char call[40];
            snprintf(call, sizeof call, "CA%032x", 0xf000 + i);
            IT_CHECK(voice(&s, call, twiml, sizeof twiml) == 200, "call %d's webhook", i);
            streamed += strstr(twiml, "<Stream") != NULL;
        }
        IT_CHECK(streamed == 0, "%d of %d calls past MAX_CALLS=2 were given a stream", streamed,
                 PAST);
        IT_CHECK(it_metric(s.port, "callstream_gather_begun_total{reason=\"max_calls\"}") == PAST,
                 "the calls past MAX_CALLS were not counted");
        it_ws_close(&w[0]);
        IT_CHECK(metric_becomes(s.port, "callstream_active_streams", 1), "the stream did not end");
        IT_CHECK(voice(&s, "CA0000000000000000000000000000ffff", twiml, sizeof twiml) == 200 &&
                     strstr(twiml, "<Stream"),
                 "with a call's room free, the next call was not given a stream: %s", twiml);
        it_ws_close(&w[1]);
    }
    it_server_stop(&s, SIGTERM, 5000);
    it_server_cleanup(&s);
}

static bool frames_settled(const cJSON *stream)
{
    const cJSON *st = cJSON_GetObjectItem(stream, "stats");
    return num(st, "messages") + num(cJSON_GetObjectItem(st, "badFrames"), "rate_limited") >= 199;
}

static void message_rate(void)
{
    it_server s;
    const char *args[] = {"--max-messages-per-s", "50", NULL};
    if (!it_server_up(&s, args)) return;
    it_ws w;
    IT_CHECK(it_ws_connect(&w, s.port, "/twilio/media", NULL) == 0, "upgrade refused");
    const char *stream = "MZ55555555555555555555555555555555";
    start_stream(&w, stream, "CA55555555555555555555555555555555");
    cs_buf b = CS_BUF_INIT(1 << 16);
    uint8_t audio[160];
    memset(audio, 0x7f, sizeof audio);
    for (uint64_t k = 0; k < 199; k++) { /* a burst far over 50 per second */
        cs_twilio_peer_media(&b, stream, k + 2, CS_TRACK_INBOUND, k + 1, k * 20, audio, 160);
        it_ws_send_text(&w, b.data);
        cs_buf_reset(&b);
    }
    cJSON *live = it_live_stream(s.port, stream, frames_settled, 5000);
    const cJSON *st = cJSON_GetObjectItem(live, "stats");
    int taken = num(cJSON_GetObjectItem(st, "frames"), "inbound");
    int limited = num(cJSON_GetObjectItem(st, "badFrames"), "rate_limited");
    IT_CHECK(limited >= 100 && taken + limited == 199 && taken >= 40,
             "burst of 199: %d taken, %d rate limited", taken, limited);
    cJSON_Delete(live);
    it_ws_close(&w);
    cs_buf_free(&b);
    it_server_stop(&s, SIGTERM, 5000);
    it_server_cleanup(&s);
}

static void idle_and_duration(void)
{
    it_server s;
    const char *args[] = {"--idle-timeout-s",
                          "1",
                          "--max-call-s",
                          "2",
                          "--http-idle-s",
                          "1",
                          "--agent",
                          "echo",
                          NULL};
    if (!it_server_up(&s, args)) return;
    /* a media socket that goes quiet after start */
    it_ws w;
    IT_CHECK(it_ws_connect(&w, s.port, "/twilio/media", NULL) == 0, "upgrade refused");
    start_stream(&w, "MZ66666666666666666666666666666666", "CA66666666666666666666666666666666");
    int code = it_ws_close_code(&w, 5000);
    IT_CHECK(code == -1 || code >= 1000, "quiet socket: %d", code);
    it_ws_close(&w);
    it_sleep_ms(200);
    IT_CHECK(it_metric(s.port, "callstream_streams_ended_total{reason=\"idle_timeout\"}") == 1,
             "a quiet media socket did not end as idle_timeout");

    /* a call longer than MAX_CALL_S */
    int exit_status;
    cJSON *sum = it_sim(&s, &exit_status, "--duration 4");
    /* The stream ends; Twilio asks the <Connect action>, and the call is hung up there. */
    IT_CHECK(strcmp(it_str(sum, "hangup_by"), "twiml_hangup") == 0,
             "a call past MAX_CALL_S was not hung up: '%s'", it_str(sum, "hangup_by"));
    IT_CHECK(num(sum, "frames_sent") >= 90 && num(sum, "frames_sent") <= 130,
             "it ran %d frames, about 2 s expected", num(sum, "frames_sent"));
    cJSON_Delete(sum);
    IT_CHECK(it_metric(s.port, "callstream_streams_ended_total{reason=\"max_duration\"}") == 1,
             "not counted as max_duration");

    /* an idle keep-alive HTTP connection */
    int fd = tcp(s.port);
    IT_CHECK(closed_by_server(fd, 4000), "an idle HTTP connection was kept past HTTP_IDLE_S");
    close(fd);
    it_server_stop(&s, SIGTERM, 5000);
    it_server_cleanup(&s);
}

int main(void)
{
    connection_limits();
    process_connections();
    process_calls();
    message_rate();
    idle_and_duration();
    return it_done("limits");
}
