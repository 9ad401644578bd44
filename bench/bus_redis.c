/* bench_bus_redis: listen-in across nodes through Redis, the bus alone. A private
 * redis-server (tests/unit/redis_server.h); node A on the main thread publishes a 20 ms
 * audio frame to each of `topics` topics every 20 ms; node B, on a thread and loop of its
 * own, has `per_topic` subscribers on each. Latency is A's publish to B's delivery (the
 * monotonic clock of one process), over every delivery.
 *
 *   bench_bus_redis [topics=200] [per_topic=5] [seconds=20]
 * prints: bus_redis topics= per_topic= seconds= published= sent= dropped= delivered=
 *         expected= latency_p50_ms= latency_p99_ms= latency_max_ms= */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/bus.h"
#include "core/clock.h"
#include "redis_server.h"
#include "stats.h"

typedef struct listener {
    cs_bus_sub sub;
} listener;

static int topics = 200, per_topic = 5, seconds = 20;
static rs_server rs;
static char (*names)[CS_BUS_TOPIC_MAX + 1];

/* node B (its thread) */
static uv_loop_t loop_b;
static uv_async_t stop_b;
static cs_bus *bus_b;
static listener *subs;
static double *lat_ms;
static size_t nlat, lat_cap;
static volatile int b_ready;

static cs_bus *open_bus(uv_loop_t *loop, const char *id)
{
    cs_bus_config cfg = {.loop = loop,
                         .url = rs.url,
                         .node = id,
                         .node_url = "",
                         .run = "bench",
                         .loops = 1,
                         .heartbeat_ms = 1000,
                         .node_ttl_ms = 5000};
    cs_buf err = CS_BUF_INIT(1024);
    cs_bus *b = NULL;
    if (cs_bus_open(&b, &cfg, &err) < 0) {
        fprintf(stderr, "bench_bus_redis: %s\n", err.data);
        exit(1);
    }
    cs_buf_free(&err);
    return b;
}

static void deliver(cs_bus_sub *s, const cs_bus_msg *m)
{
    (void)s;
    if (m->kind != CS_BUS_AUDIO || m->n < 8) return;
    uint64_t sent;
    memcpy(&sent, m->ulaw, sizeof sent);
    if (nlat < lat_cap) lat_ms[nlat++] = (double)(cs_mono_ns() - sent) / 1e6;
}

static void on_stop_b(uv_async_t *a)
{
    for (int i = 0; i < topics * per_topic; i++) cs_bus_unsubscribe(bus_b, &subs[i].sub);
    cs_bus_close(bus_b);
    uv_close((uv_handle_t *)a, NULL);
}

static void on_ready_b(uv_timer_t *t)
{
    if (!cs_bus_ready(bus_b)) return;
    b_ready = 1;
    uv_close((uv_handle_t *)t, NULL);
}

static void *node_b(void *arg)
{
    (void)arg;
    bus_b = open_bus(&loop_b, "benchB");
    for (int t = 0; t < topics; t++)
        for (int k = 0; k < per_topic; k++) {
            listener *l = &subs[t * per_topic + k];
            l->sub.deliver = deliver;
            cs_bus_subscribe(bus_b, &l->sub, names[t]);
        }
    uv_timer_t ready;
    uv_timer_init(&loop_b, &ready);
    uv_timer_start(&ready, on_ready_b, 10, 10);
    uv_run(&loop_b, UV_RUN_DEFAULT);
    return NULL;
}

/* node A (main thread) */
static uv_loop_t *loop_a;
static cs_bus *bus_a;
static uint64_t published, ticks, wait_ticks;

static void publish_all(void)
{
    uint8_t ulaw[160];
    memset(ulaw, 0xff, sizeof ulaw);
    for (int t = 0; t < topics; t++) {
        uint64_t now = cs_mono_ns();
        memcpy(ulaw, &now, sizeof now);
        cs_bus_msg m = {.kind = CS_BUS_AUDIO,
                        .topic = names[t],
                        .track = 0,
                        .pos_ms = (uint32_t)(ticks * 20),
                        .ulaw = ulaw,
                        .n = sizeof ulaw};
        cs_bus_publish(bus_a, &m);
        published++;
    }
}

static void on_tick(uv_timer_t *t)
{
    if (!b_ready || !cs_bus_ready(bus_a)) return;
    /* half a second for B's subscriptions to be in place everywhere */
    if (++wait_ticks < 25) return;
    publish_all();
    if (++ticks >= (uint64_t)seconds * 50) uv_close((uv_handle_t *)t, NULL);
}

static void on_grace(uv_timer_t *t)
{
    (void)t;
}

int main(int argc, char **argv)
{
    if (argc > 1) topics = atoi(argv[1]);
    if (argc > 2) per_topic = atoi(argv[2]);
    if (argc > 3) seconds = atoi(argv[3]);
    if (topics < 1 || per_topic < 1 || seconds < 1) {
        fprintf(stderr, "usage: bench_bus_redis [topics] [per_topic] [seconds]\n");
        return 2;
    }
    if (rs_start(&rs) < 0) return 1;
    names = calloc((size_t)topics, sizeof *names);
    subs = calloc((size_t)(topics * per_topic), sizeof *subs);
    lat_cap = (size_t)topics * per_topic * seconds * 50 + 1024;
    lat_ms = malloc(lat_cap * sizeof *lat_ms);
    for (int i = 0; i < topics; i++) snprintf(names[i], sizeof names[i], "CA%032d", i);

    uv_loop_init(&loop_b);
    uv_async_init(&loop_b, &stop_b, on_stop_b);
    pthread_t th;
    pthread_create(&th, NULL, node_b, NULL);

    loop_a = uv_default_loop();
    bus_a = open_bus(loop_a, "benchA");
    uv_timer_t tick;
    uv_timer_init(loop_a, &tick);
    uv_timer_start(&tick, on_tick, 20, 20);
    while (uv_is_active((uv_handle_t *)&tick)) uv_run(loop_a, UV_RUN_ONCE);
    /* the last frames arrive */
    uv_timer_t grace;
    uv_timer_init(loop_a, &grace);
    uv_timer_start(&grace, on_grace, 1000, 0);
    while (uv_is_active((uv_handle_t *)&grace)) uv_run(loop_a, UV_RUN_ONCE);
    uint64_t sent = cs_bus_stats_get(bus_a)->sent, dropped = cs_bus_stats_get(bus_a)->dropped;
    cs_bus_close(bus_a);
    uv_close((uv_handle_t *)&grace, NULL);
    uv_run(loop_a, UV_RUN_DEFAULT);

    uv_async_send(&stop_b);
    pthread_join(th, NULL);
    uv_loop_close(&loop_b);
    rs_stop(&rs);

    size_t n = nlat;
    double max = 0;
    for (size_t i = 0; i < n; i++)
        if (lat_ms[i] > max) max = lat_ms[i];
    double p50 = stats_pct(lat_ms, n, 0.50), p99 = stats_pct(lat_ms, n, 0.99);
    printf("bus_redis topics=%d per_topic=%d seconds=%d published=%llu sent=%llu dropped=%llu "
           "delivered=%zu expected=%llu latency_p50_ms=%.2f latency_p99_ms=%.2f "
           "latency_max_ms=%.2f\n",
           topics, per_topic, seconds, (unsigned long long)published, (unsigned long long)sent,
           (unsigned long long)dropped, n, (unsigned long long)published * per_topic, p50, p99,
           max);
    free(names);
    free(subs);
    free(lat_ms);
    return 0;
}
