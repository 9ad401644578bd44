/* bench_listen: many browsers listening in. Follows the list of calls on one monitor
 * socket and, for each call that starts, opens `per_call` more that subscribe to its
 * caller audio; after `seconds`, prints one line: frames delivered, frames the server
 * dropped for us (sequence gaps), and server-to-listener latency percentiles (send time
 * in each frame's header against our clock: same machine, same clock).
 *
 *   bench_listen URL TOKEN [per_call=5] [seconds=30]
 * prints: listen sockets=N frames=F dropped=D latency_p50_ms= latency_p99_ms= latency_max_ms= */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "net/wsconn.h"

#define MAX_SOCKETS 20000
#define HIST_US     10     /* latency resolution */
#define HIST_N      100000 /* up to 1 s */

typedef struct listener {
    cs_wsconn ws;
    char call[40]; /* empty: the list socket */
    unsigned last_seq;
    bool seen;
} listener;

static cs_net *net;
static char url[512], extra[512];
static int per_call = 5;
static listener *socks;
static int nsocks;
static uint64_t frames, dropped, lat_count, lat_max_us;
static uint32_t *hist;
static bool finishing; /* we close everything ourselves at the end */

static int64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static double quantile(double q)
{
    uint64_t rank = (uint64_t)ceil(q * (double)lat_count), seen = 0;
    for (size_t b = 0; b < HIST_N; b++) {
        seen += hist[b];
        if (seen >= rank && rank) return (double)(b + 1) * HIST_US / 1000.0;
    }
    return (double)lat_max_us / 1000.0;
}

static void on_audio(listener *l, const uint8_t *p, size_t n)
{
    if (n < 20 || p[0] != 1) return;
    unsigned seq = (unsigned)p[4] << 24 | (unsigned)p[5] << 16 | (unsigned)p[6] << 8 | p[7];
    if (l->seen && seq != l->last_seq + 1) dropped += seq - l->last_seq - 1;
    l->seen = true;
    l->last_seq = seq;
    frames++;
    int64_t sent_ms = 0;
    for (int i = 0; i < 8; i++) sent_ms = sent_ms << 8 | p[12 + i];
    int64_t us = wall_us() - sent_ms * 1000;
    if (us < 0) us = 0;
    size_t b = (size_t)us / HIST_US;
    hist[b < HIST_N ? b : HIST_N - 1]++;
    lat_count++;
    if ((uint64_t)us > lat_max_us) lat_max_us = (uint64_t)us;
}

static void open_listener(const char *call);

static void on_message(cs_wsconn *ws, enum cs_ws_op op, char *data, size_t len)
{
    listener *l = ws->data;
    if (op == CS_WS_OP_BINARY) {
        on_audio(l, (const uint8_t *)data, len);
        return;
    }
    if (l->call[0]) return;
    cJSON *j = cJSON_ParseWithLength(data, len);
    cJSON *type = cJSON_GetObjectItem(j, "type");
    if (cJSON_IsString(type) && strcmp(type->valuestring, "call_started") == 0) {
        cJSON *sid = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "call"), "sid");
        for (int i = 0; cJSON_IsString(sid) && i < per_call; i++) open_listener(sid->valuestring);
    }
    cJSON_Delete(j);
}

static void on_open(cs_wsconn *ws)
{
    listener *l = ws->data;
    char msg[160];
    if (l->call[0])
        snprintf(msg, sizeof msg, "{\"type\":\"subscribe\",\"call\":\"%s\",\"audio\":\"caller\"}", l->call);
    else
        snprintf(msg, sizeof msg, "{\"type\":\"watch_calls\"}");
    cs_wsconn_send(ws, CS_WS_OP_TEXT, msg, strlen(msg));
}

static void on_close(cs_wsconn *ws, uint16_t code, int err)
{
    (void)ws;
    if (!finishing && code != 1000) fprintf(stderr, "listen: a socket closed: %u %d\n", code, err);
}

static const cs_wsconn_ops ops = {.on_open = on_open, .on_message = on_message, .on_close = on_close};

static void open_listener(const char *call)
{
    if (nsocks == MAX_SOCKETS) return;
    listener *l = &socks[nsocks++];
    snprintf(l->call, sizeof l->call, "%s", call ? call : "");
    if (cs_wsconn_connect(&l->ws, net, url, extra, 1 << 20, &ops, l) < 0)
        fprintf(stderr, "listen: cannot connect\n");
}

static void on_done(uv_timer_t *t)
{
    (void)t;
    finishing = true;
    cs_net_close_all(net, false);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fputs("usage: bench_listen URL TOKEN [per_call] [seconds]\n", stderr);
        return 2;
    }
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    const char *base = argv[1];
    if (argc > 3) per_call = atoi(argv[3]);
    double seconds = argc > 4 ? atof(argv[4]) : 30;
    /* ws://host:port/monitor, with the origin of the http URL */
    snprintf(url, sizeof url, "ws%s/monitor", base + 4);
    snprintf(extra, sizeof extra, "Authorization: Bearer %s\r\nOrigin: %s\r\n", argv[2], base);
    socks = calloc(MAX_SOCKETS, sizeof *socks);
    hist = calloc(HIST_N, sizeof *hist);
    uv_loop_t loop;
    uv_loop_init(&loop);
    cs_net_new(&net, &loop);
    open_listener(NULL);
    uv_timer_t done;
    uv_timer_init(&loop, &done);
    uv_timer_start(&done, on_done, (uint64_t)(seconds * 1000), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    printf("listen sockets=%d frames=%llu dropped=%llu latency_p50_ms=%.2f latency_p99_ms=%.2f "
           "latency_max_ms=%.2f\n",
           nsocks - 1, (unsigned long long)frames, (unsigned long long)dropped, quantile(0.5),
           quantile(0.99), (double)lat_max_us / 1000.0);
    return 0;
}
