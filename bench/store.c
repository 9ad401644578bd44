/* The store's writes on SQLite and on PostgreSQL (a private server, as the tests start
 * one: tests/unit/pg_server.h; or PG_URL), through cs_store_write as the gateway makes
 * them, one line per backend:
 *   - throughput: EVENTS events, then SEGMENTS transcript segments, handed over at once
 *     (a queue that holds them all), rows per second until the last is committed;
 *   - load: CALLS calls (1,000) for SECONDS (20), each writing its call and stream rows,
 *     EVENTS_PER_S events (2: marks, DTMF, state) and a transcript line every
 *     SEGMENT_EVERY_S seconds (3) of each speaker, started evenly over the first second,
 *     with the gateway's queue (STORE_QUEUE_MAX, 10,000): the writer's queue depth p50,
 *     p99 and max (sampled every 10 ms), what spilled, and how long the queue took to
 *     drain after the last write.
 * BACKENDS ("sqlite postgresql") chooses. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "bench.h"
#include "core/clock.h"
#include "pg_server.h"
#include "stats.h"
#include "store/store.h"

#define TICK_MS 10

static long env_long(const char *name, long def)
{
    const char *v = getenv(name);
    return v && *v ? strtol(v, NULL, 10) : def;
}

static double env_double(const char *name, double def)
{
    const char *v = getenv(name);
    return v && *v ? strtod(v, NULL) : def;
}

typedef struct bench {
    uv_loop_t loop;
    cs_mailbox *mb;
    cs_store *store;
    char dir[64];
} bench;

static void call_rec(cs_store *s, const char *sid, const char *status, int64_t started,
                     int64_t ended)
{
    cs_store_rec *rec = cs_store_rec_new(CS_REC_CALL);
    rec->call = (cs_call_row){.sid = cs_pool_strdup(&rec->pool, sid),
                              .status = cs_pool_strdup(&rec->pool, status),
                              .from = "+14155550101",
                              .to = "+18005550000",
                              .started_at = started,
                              .ended_at = ended};
    cs_store_write(s, rec);
}

static void stream_rec(cs_store *s, const char *sid, int64_t started)
{
    cs_store_rec *rec = cs_store_rec_new(CS_REC_STREAM);
    char mz[40];
    snprintf(mz, sizeof mz, "MZ%s", sid + 2);
    rec->stream = (cs_stream_row){.sid = cs_pool_strdup(&rec->pool, mz),
                                  .call_sid = cs_pool_strdup(&rec->pool, sid),
                                  .tracks = "[\"inbound\"]",
                                  .started_at = started};
    cs_store_write(s, rec);
}

static void event_rec(cs_store *s, const char *sid, int64_t at)
{
    cs_store_rec *rec = cs_store_rec_new(CS_REC_EVENT);
    rec->event = (cs_event_row){.call_sid = cs_pool_strdup(&rec->pool, sid),
                                .stream_sid = "MZ1",
                                .type = "mark",
                                .detail = "{\"name\":\"m\",\"state\":\"played\"}",
                                .at = at};
    cs_store_write(s, rec);
}

static void segment_rec(cs_store *s, const char *sid, const char *speaker, int64_t seq, int64_t at)
{
    cs_store_rec *rec = cs_store_rec_new(CS_REC_SEGMENT);
    rec->segment =
        (cs_segment_row){.call_sid = cs_pool_strdup(&rec->pool, sid),
                         .stream_sid = "MZ1",
                         .speaker = speaker,
                         .text = "I would like to know where my order is, it was due on Monday",
                         .seq = seq,
                         .start_ms = seq * 3000,
                         .end_ms = seq * 3000 + 2500,
                         .confidence = 900,
                         .at = at};
    cs_store_write(s, rec);
}

static int open_store(bench *b, const char *url, size_t queue_max)
{
    cs_buf err = CS_BUF_INIT(1024);
    int rc = cs_store_open(&b->store, url, b->mb, queue_max, b->dir, &err);
    if (rc < 0) fprintf(stderr, "bench_store: %s\n", err.data);
    cs_buf_free(&err);
    return rc;
}

static void close_store(bench *b)
{
    cs_store_close(b->store);
    b->store = NULL;
    cs_mailbox_run(b->mb);
}

static cs_store_stats stats_of(bench *b)
{
    cs_store_stats st;
    cs_store_stats_get(b->store, &st);
    return st;
}

/* Runs the loop until `n` records are committed: ms taken. */
static double until_written(bench *b, uint64_t n)
{
    uint64_t t0 = cs_mono_ms();
    while (stats_of(b).written < n) {
        uv_run(&b->loop, UV_RUN_NOWAIT);
        uv_sleep(1);
    }
    return (double)(cs_mono_ms() - t0);
}

static int throughput(bench *b, const char *url, double *events_s, double *segments_s)
{
    long events = env_long("EVENTS", 50000), segments = env_long("SEGMENTS", 20000);
    if (open_store(b, url, (size_t)(events + segments + 16)) < 0) return -1;
    call_rec(b->store, "CA0", "in-progress", cs_wall_ms(), 0);
    until_written(b, 1);
    int64_t now = cs_wall_ms();
    for (long i = 0; i < events; i++) event_rec(b->store, "CA0", now + i);
    *events_s = (double)events / (until_written(b, 1 + (uint64_t)events) / 1e3);
    for (long i = 0; i < segments; i++)
        segment_rec(b->store, "CA0", i % 2 ? "agent" : "caller", i / 2, now + i);
    *segments_s = (double)segments / (until_written(b, 1 + (uint64_t)(events + segments)) / 1e3);
    close_store(b);
    return 0;
}

typedef struct load {
    long calls, seconds;
    double events_per_s, segment_every_s;
    size_t queue_max;
    uint64_t posted;
} load;

/* One second of every call's writes, from `t0` (ms into the run) on, at the pace they
 * come: the calls' starts are spread over the first second, and so are their writes. */
static void load_tick(bench *b, load *l, long tick, long ticks_per_s)
{
    int64_t now = cs_wall_ms();
    long per_tick = (l->calls + ticks_per_s - 1) / ticks_per_s;
    long second = tick / ticks_per_s;
    for (long c = (tick % ticks_per_s) * per_tick; c < l->calls && per_tick-- > 0; c++) {
        char sid[40];
        snprintf(sid, sizeof sid, "CA%06ld", c);
        if (second == 0) {
            call_rec(b->store, sid, "in-progress", now, 0);
            stream_rec(b->store, sid, now);
            l->posted += 2;
        }
        /* events this second: the whole part, and the fraction every so often */
        long n = (long)l->events_per_s;
        double frac = l->events_per_s - (double)n;
        if (frac > 0 && (long)((double)(second + 1) * frac) > (long)((double)second * frac)) n++;
        for (long i = 0; i < n; i++) event_rec(b->store, sid, now + i);
        l->posted += (uint64_t)n;
        long every = (long)l->segment_every_s;
        if (every > 0 && second % every == 0) {
            segment_rec(b->store, sid, "caller", second / every, now);
            segment_rec(b->store, sid, "agent", second / every, now);
            l->posted += 2;
        }
        if (second == l->seconds - 1) {
            call_rec(b->store, sid, "completed", 0, now);
            l->posted++;
        }
    }
}

static int queue_under_load(bench *b, const char *url, char *out, size_t cap)
{
    load l = {.calls = env_long("CALLS", 1000),
              .seconds = env_long("SECONDS", 20),
              .events_per_s = env_double("EVENTS_PER_S", 2),
              .segment_every_s = env_double("SEGMENT_EVERY_S", 3),
              .queue_max = (size_t)env_long("STORE_QUEUE_MAX", 10000)};
    if (open_store(b, url, l.queue_max) < 0) return -1;
    long ticks_per_s = 1000 / TICK_MS, ticks = l.seconds * ticks_per_s;
    double *depth = malloc((size_t)ticks * sizeof *depth);
    uint64_t t0 = cs_mono_ms();
    for (long tick = 0; tick < ticks; tick++) {
        load_tick(b, &l, tick, ticks_per_s);
        uint64_t next = t0 + (uint64_t)(tick + 1) * TICK_MS;
        do uv_run(&b->loop, UV_RUN_NOWAIT);
        while (cs_mono_ms() < next && (uv_sleep(1), true));
        depth[tick] = (double)stats_of(b).queued;
    }
    double drain_ms = until_written(b, l.posted);
    cs_store_stats st = stats_of(b);
    snprintf(out, cap,
             "calls=%ld seconds=%ld writes_per_s=%.0f queue_p50=%.0f queue_p99=%.0f queue_max=%.0f"
             " spilled=%llu lost=%llu drain_ms=%.0f",
             l.calls, l.seconds, (double)l.posted / (double)l.seconds,
             stats_pct(depth, (size_t)ticks, 0.5), stats_pct(depth, (size_t)ticks, 0.99),
             stats_pct(depth, (size_t)ticks, 1), (unsigned long long)st.spilled,
             (unsigned long long)st.lost, drain_ms);
    free(depth);
    close_store(b);
    return 0;
}

static int run(bench *b, const char *backend, const char *url)
{
    double events_s, segments_s;
    char load_line[512];
    double cpu0 = bench_cpu_s();
    if (throughput(b, url, &events_s, &segments_s) < 0) return -1;
    if (queue_under_load(b, url, load_line, sizeof load_line) < 0) return -1;
    printf("store backend=%s events_per_s=%.0f segments_per_s=%.0f %s bench_cpu_s=%.1f\n", backend,
           events_s, segments_s, load_line, bench_cpu_s() - cpu0);
    fflush(stdout);
    return 0;
}

int main(void)
{
    bench b = {0};
    snprintf(b.dir, sizeof b.dir, "/tmp/cs-bench-store.XXXXXX");
    if (!mkdtemp(b.dir) || uv_loop_init(&b.loop) < 0 || cs_mailbox_open(&b.mb, &b.loop) < 0)
        return 1;
    const char *backends = getenv("BACKENDS");
    if (!backends || !*backends) backends = "sqlite postgresql";
    int rc = 0;
    pg_server pg = {0};
    if (strstr(backends, "sqlite")) {
        char url[128];
        snprintf(url, sizeof url, "sqlite:%s/bench.db", b.dir);
        rc |= run(&b, "sqlite", url);
    }
    if (strstr(backends, "postgresql")) {
        char url[256];
        const char *given = getenv("PG_URL");
        if (given && *given)
            snprintf(url, sizeof url, "%s", given);
        else if (pg_server_start(&pg) < 0 || pg_server_database(&pg, url, sizeof url) < 0)
            rc = 1;
        if (rc == 0) rc |= run(&b, "postgresql", url);
        pg_server_destroy(&pg);
    }
    cs_mailbox_close(b.mb);
    uv_run(&b.loop, UV_RUN_NOWAIT);
    uv_loop_close(&b.loop);
    char rm[128];
    snprintf(rm, sizeof rm, "rm -rf %s", b.dir);
    if (system(rm) != 0) rc = 1;
    return rc ? 1 : 0;
}
