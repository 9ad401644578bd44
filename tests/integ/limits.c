/* Named limits and what happens past them: connections per address, and in total when no
 * connection waits for a request it could replace, are closed at once and counted; a stream over
 * MAX_MESSAGES_PER_S has the excess counted and skipped; a silent media socket ends as
 * idle_timeout; a stream past MAX_CALL_S is ended; an idle keep-alive connection is closed. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
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

    /* All slots taken by connections waiting for a request: the oldest makes room. */
    const char *total[] = {"--max-connections", "3", NULL};
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
    message_rate();
    idle_and_duration();
    return it_done("limits");
}
