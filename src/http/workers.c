/* Several event loops in one process (WORKERS): each loop is a whole gateway on its own
 * thread — listener (SO_REUSEPORT on the same address), connections, calls, store — and
 * the loops meet through the cross-loop bus like the nodes of a cluster. What is the
 * process's stays here: starting the loops one after the other (the first's failure is
 * said once and stops the rest), the run they share, and each loop's counters, published
 * by the loop that owns them: /metrics asks every loop for its own (through its mailbox)
 * and answers with their sum once all have; /status shows each loop's load as it last
 * published it, under a lock. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"
#include "core/prom.h"
#include "http/gateway.h"

/* What /status and the per-loop series show of a loop. */
typedef struct loop_load {
    uint64_t calls, streams, connections;
    uint64_t connections_total, requests_total;
} loop_load;

typedef struct gather gather;

typedef struct loop_slot {
    cs_gateway gw;
    gather *gathers; /* /metrics answers it is gathering (its own thread's) */
    pthread_t thread;
    bool thread_made;
    /* on the loop: made when it started, closed when it ends */
    uv_timer_t beat; /* publishes its load */
    uv_async_t stop;
    /* under the lock */
    bool open;      /* started and not drained: its mailbox takes jobs, `stop` may be sent */
    loop_load load; /* as it last published it */
} loop_slot;

struct cs_workers {
    const cs_config *cfg;
    uint32_t n;
    cs_bus_hub *hub;
    cs_gateway_shared shared; /* every loop's limits are the process's */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    uint32_t started; /* loops whose start-up has ended */
    bool stopping;    /* a loop has drained: the others drain too */
    int rc;           /* the first failed start-up's */
    char run[64];     /* the first loop's store run */
    int port;         /* the first loop's port */
    loop_slot *loops;
};

uint32_t cs_workers_wanted(const cs_config *cfg)
{
    long n = cfg->workers ? (long)cfg->workers : sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1) n = 1;
    return n > CS_BUS_LOOPS_MAX ? CS_BUS_LOOPS_MAX : (uint32_t)n;
}

cs_bus_hub *cs_workers_hub(const cs_workers *w)
{
    return w->hub;
}

uint32_t cs_workers_count(const cs_workers *w)
{
    return w->n;
}

/* Set before loop 1 starts and never after: the start-up's wait orders them. */
const char *cs_workers_run(const cs_workers *w)
{
    return w->run;
}

int cs_workers_port(const cs_workers *w)
{
    return w->port;
}

static loop_slot *slot_of(cs_gateway *gw)
{
    return &gw->workers->loops[gw->loop_index];
}

static void load_of(cs_gateway *gw, loop_load *out)
{
    *out = (loop_load){
        .calls = cs_calls_active(&gw->calls),
        .streams = cs_calls_streams(&gw->calls),
        .connections = cs_net_count(gw->net),
        .connections_total = cs_net_stats_get(gw->net)->accepted,
        .requests_total = cs_server_stats_get(gw->server)->requests,
    };
}

/* This loop's load, for the others' /status. */
static void publish(uv_timer_t *t)
{
    cs_gateway *gw = t->data;
    loop_load load;
    load_of(gw, &load);
    pthread_mutex_lock(&gw->workers->lock);
    slot_of(gw)->load = load;
    pthread_mutex_unlock(&gw->workers->lock);
}

static void on_stop(uv_async_t *a)
{
    cs_gateway *gw = a->data;
    cs_gateway_drain(gw, SIGTERM); /* a drain, not a signal: it never cuts the grace */
}

/* Tells every open loop to drain (the lock held). */
static void stop_all_locked(cs_workers *w)
{
    w->stopping = true;
    for (uint32_t i = 0; i < w->n; i++)
        if (w->loops[i].open) uv_async_send(&w->loops[i].stop);
}

void cs_workers_started(cs_gateway *gw, int rc)
{
    cs_workers *w = gw->workers;
    loop_slot *sl = slot_of(gw);
    if (rc == 0) {
        uv_timer_init(gw->loop, &sl->beat);
        uv_async_init(gw->loop, &sl->stop, on_stop);
        sl->beat.data = sl->stop.data = gw;
        uv_timer_start(&sl->beat, publish, 0, CS_WORKERS_LOAD_MS);
    }
    pthread_mutex_lock(&w->lock);
    if (rc == 0 && gw->loop_index == 0) {
        snprintf(w->run, sizeof w->run, "%s", cs_store_run(gw->store));
        w->port = cs_server_port(gw->server);
    }
    if (rc < 0 && w->rc == 0) w->rc = rc;
    sl->open = rc == 0;
    if (rc == 0 && w->stopping) uv_async_send(&sl->stop); /* a signal came while it started */
    w->started++;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

void cs_workers_loop_end(cs_gateway *gw)
{
    cs_workers *w = gw->workers;
    loop_slot *sl = slot_of(gw);
    pthread_mutex_lock(&w->lock);
    bool open = sl->open;
    sl->open = false;
    stop_all_locked(w); /* one loop drained (a signal, a failure): the process stops */
    pthread_mutex_unlock(&w->lock);
    if (!open) return;
    uv_close((uv_handle_t *)&sl->beat, NULL);
    uv_close((uv_handle_t *)&sl->stop, NULL);
}

static void *loop_main(void *arg)
{
    cs_gateway *gw = arg;
    char name[16];
    snprintf(name, sizeof name, "loop-%u", (unsigned)gw->loop_index);
    pthread_setname_np(pthread_self(), name);
    cs_gateway_serve(gw);
    return NULL;
}

int cs_workers_main(const cs_config *cfg, uint32_t n)
{
    cs_workers w = {.cfg = cfg, .n = n};
    int rc = cs_bus_hub_new(&w.hub, n);
    if (rc == 0 && !(w.loops = calloc(n, sizeof *w.loops))) rc = -ENOMEM;
    if (rc < 0) {
        cs_error("callstream: cannot set up %u loops: %s", (unsigned)n, cs_strerror(rc));
        cs_bus_hub_free(w.hub);
        return rc;
    }
    pthread_mutex_init(&w.lock, NULL);
    pthread_cond_init(&w.cond, NULL);
    cs_gateway_shared_init(&w.shared, cfg);
    /* One after the other: the first makes the database and the first admin, and gives
     * the others its run and its port. */
    for (uint32_t i = 0; i < n && rc == 0; i++) {
        loop_slot *sl = &w.loops[i];
        sl->gw = (cs_gateway){.cfg = cfg, .shared = &w.shared, .workers = &w, .loop_index = i};
        if ((rc = -pthread_create(&sl->thread, NULL, loop_main, &sl->gw)) < 0) {
            cs_error("callstream: cannot start loop %u: %s", (unsigned)i, cs_strerror(rc));
            break;
        }
        sl->thread_made = true;
        pthread_mutex_lock(&w.lock);
        while (w.started <= i) pthread_cond_wait(&w.cond, &w.lock);
        rc = w.rc;
        pthread_mutex_unlock(&w.lock);
    }
    if (rc < 0) { /* those running drain (they have no calls yet) */
        pthread_mutex_lock(&w.lock);
        stop_all_locked(&w);
        pthread_mutex_unlock(&w.lock);
    }
    for (uint32_t i = 0; i < n; i++)
        if (w.loops[i].thread_made) pthread_join(w.loops[i].thread, NULL);
    if (rc == 0) cs_info("callstream: stopped");
    free(w.loops);
    cs_bus_hub_free(w.hub);
    cs_gateway_shared_free(&w.shared);
    pthread_cond_destroy(&w.cond);
    pthread_mutex_destroy(&w.lock);
    return rc;
}

/* ---- the sum of every loop's counters ---- */

/* Series that are the process's, not each loop's: the largest, not the sum. Every loop
 * sees each outage of the bus and the store they share: the node's count is the largest. */
static bool process_wide(cs_str key)
{
    static const char *const names[] = {
        "callstream_up", "callstream_draining", "callstream_uptime_seconds",
        "callstream_accept_paused", "callstream_recordings_disk_free_bytes",
        "callstream_recordings_disk_low", "callstream_recordings_failing",
        "callstream_store_failing", "callstream_store_failing_seconds",
        "callstream_store_reads_failing", "callstream_bus_up", "callstream_bus_outages_total",
        "callstream_cluster_store_outages_total", "callstream_cluster_health_events_total",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
    };
    size_t n = key.n;
    for (size_t i = 0; i < key.n; i++)
        if (key.p[i] == '{') n = i;
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (cs_str_eqz((cs_str){key.p, n}, names[i])) return true;
    return false;
}

/* Each sample line of `text` ("series value"): the series into `key`, its value. */
static bool next_sample(cs_str *text, cs_str *key, double *value)
{
    while (text->n) {
        const char *nl = memchr(text->p, '\n', text->n);
        size_t len = nl ? (size_t)(nl - text->p) : text->n;
        cs_str line = {text->p, len};
        text->p += len + (nl != NULL);
        text->n -= len + (nl != NULL);
        if (!len || line.p[0] == '#') continue;
        const char *sp = NULL;
        for (size_t i = len; i-- > 0;)
            if (line.p[i] == ' ') {
                sp = line.p + i;
                break;
            }
        if (!sp) continue;
        *key = (cs_str){line.p, (size_t)(sp - line.p)};
        char num[64];
        cs_str_copy(num, sizeof num, (cs_str){sp + 1, len - (size_t)(sp + 1 - line.p)});
        *value = strtod(num, NULL);
        return true;
    }
    return false;
}

/* Adds every sample of `text` to the value `sums` holds for its series (the largest for
 * the process's own). */
static void add_samples(cs_map *sums, const char *text, size_t n)
{
    cs_str rest = {text, n}, key;
    double v;
    while (next_sample(&rest, &key, &v)) {
        double *at = cs_map_get(sums, key);
        if (!at) continue; /* a series the first text does not have */
        if (!process_wide(key))
            *at += v;
        else if (v > *at)
            *at = v;
    }
}

void cs_workers_sum(const cs_buf *first, const cs_buf *texts, size_t n, cs_buf *out)
{
    /* The first text's series, in its order, each with its value; then the others' added. */
    size_t cap = 0;
    for (size_t i = 0; i < first->len; i++) cap += first->data[i] == '\n';
    double *values = calloc(cap + 1, sizeof *values);
    cs_map sums = CS_MAP_INIT;
    cs_str rest = {first->data, first->len}, key;
    size_t nv = 0;
    double v;
    while (values && nv < cap + 1 && next_sample(&rest, &key, &v)) {
        values[nv] = v;
        if (cs_map_put(&sums, key, &values[nv]) == 0) nv++;
    }
    for (size_t i = 0; values && i < n; i++)
        if (&texts[i] != first && texts[i].len) add_samples(&sums, texts[i].data, texts[i].len);
    /* The first text again, each sample's value replaced by the sum. */
    rest = (cs_str){first->data, first->len};
    while (rest.n) {
        const char *nl = memchr(rest.p, '\n', rest.n);
        size_t len = nl ? (size_t)(nl - rest.p) : rest.n;
        cs_str line = {rest.p, len}, one = line, k;
        double *at;
        if (values && len && line.p[0] != '#' && next_sample(&one, &k, &v) &&
            (at = cs_map_get(&sums, k)) != NULL) {
            cs_buf_append(out, k.p, k.n);
            cs_buf_printf(out, " %.15g\n", *at); /* as cs_prom_value writes */
        } else {
            cs_buf_append(out, line.p, line.n);
            cs_buf_puts(out, "\n");
        }
        rest.p += len + (nl != NULL);
        rest.n -= len + (nl != NULL);
    }
    cs_map_free(&sums);
    free(values);
}

static void loop_series(cs_buf *out, const char *name, const char *help, const char *type,
                        const loop_load *loads, size_t n, size_t field)
{
    cs_prom_header(out, name, type, help);
    for (size_t i = 0; i < n; i++) {
        char label[32];
        snprintf(label, sizeof label, "loop=\"%zu\"", i);
        uint64_t v;
        memcpy(&v, (const char *)&loads[i] + field, sizeof v);
        cs_prom_value(out, name, label, (double)v);
    }
}

/* Every loop's load: this one's now, the others' as they last published it. */
static loop_load *loads_of(cs_gateway *gw)
{
    cs_workers *w = gw->workers;
    loop_load *loads = calloc(w->n, sizeof *loads);
    if (!loads) return NULL;
    pthread_mutex_lock(&w->lock);
    for (uint32_t i = 0; i < w->n; i++) loads[i] = w->loops[i].load;
    pthread_mutex_unlock(&w->lock);
    load_of(gw, &loads[gw->loop_index]);
    return loads;
}

/* What an answer gathered from every loop is made of: each loop's part, rendered on that
 * loop (`render`), then the answer, on the asking loop once every part has come. */
typedef struct gather_kind {
    void (*render)(cs_gateway *gw, cs_buf *out);
    void (*answer)(gather *g);
    size_t max; /* bytes of a part */
} gather_kind;

/* One answer (/metrics, /streams) being gathered, on the asking loop. */
struct gather {
    gather *prev, *next;
    const gather_kind *kind;
    cs_request *r;
    cs_gateway *gw;
    uint32_t waiting;
    cs_buf *texts;    /* each loop's part */
    loop_load *loads; /* each loop's load, as it rendered them */
};

/* A loop's part: asked on its loop, answered on the asker's. */
typedef struct part {
    cs_job job;
    gather *g;
    cs_gateway *at; /* the loop asked */
    cs_buf text;
    loop_load load;
} part;

static void gather_free(gather *g)
{
    loop_slot *sl = slot_of(g->gw);
    if (g->prev)
        g->prev->next = g->next;
    else
        sl->gathers = g->next;
    if (g->next) g->next->prev = g->prev;
    for (uint32_t i = 0; i < g->gw->workers->n; i++) cs_buf_free(&g->texts[i]);
    free(g->texts);
    free(g->loads);
    free(g);
}

static void metrics_answer(gather *g)
{
    cs_gateway *gw = g->gw;
    cs_workers *w = gw->workers;
    cs_buf out = CS_BUF_INIT(1 << 22);
    cs_workers_sum(&g->texts[gw->loop_index], g->texts, w->n, &out);
    cs_prom_gauge(&out, "callstream_loops", "event loops (WORKERS)", (double)w->n);
    loop_series(&out, "callstream_loop_connections_total", "TCP connections each loop accepted",
                "counter", g->loads, w->n, offsetof(loop_load, connections_total));
    loop_series(&out, "callstream_loop_http_requests_total", "HTTP requests each loop routed",
                "counter", g->loads, w->n, offsetof(loop_load, requests_total));
    loop_series(&out, "callstream_loop_connections", "open TCP connections on each loop", "gauge",
                g->loads, w->n, offsetof(loop_load, connections));
    loop_series(&out, "callstream_loop_active_streams", "live media streams on each loop",
                "gauge", g->loads, w->n, offsetof(loop_load, streams));
    cs_respond(g->r, 200, "text/plain; version=0.0.4; charset=utf-8", out.data, out.len, NULL);
    cs_buf_free(&out);
}

/* Every loop's array of streams, joined into one. */
static void streams_answer(gather *g)
{
    cs_workers *w = g->gw->workers;
    cs_buf all = CS_BUF_INIT(64u << 20);
    uint64_t count = 0;
    bool first = true, whole = cs_buf_putc(&all, '[') == 0;
    for (uint32_t i = 0; i < w->n; i++) {
        const cs_buf *t = &g->texts[i];
        count += g->loads[i].streams;
        if (t->len <= 2) continue; /* [], or nothing from a loop that had drained */
        whole = whole && (first || cs_buf_putc(&all, ',') == 0) &&
                cs_buf_append(&all, t->data + 1, t->len - 2) == 0;
        first = false;
    }
    whole = whole && cs_buf_putc(&all, ']') == 0;
    if (!whole) cs_buf_free(&all); /* too large */
    cs_streams_answer(g->r, &all, count);
    cs_buf_free(&all);
}

static const gather_kind metrics_kind = {cs_metrics_render, metrics_answer, 1u << 20};
static const gather_kind streams_kind = {cs_streams_render, streams_answer, 64u << 20};

/* Posts `p` to loop `to` if it is open: whether it was (the lock held). */
static bool post_locked(cs_workers *w, uint32_t to, part *p)
{
    if (!w->loops[to].open) return false;
    cs_mailbox_post(w->loops[to].gw.mb, &p->job);
    return true;
}

static void part_back(cs_job *job)
{
    part *p = (part *)job;
    gather *g = p->g;
    uint32_t i = p->at->loop_index;
    g->texts[i] = p->text;
    g->loads[i] = p->load;
    free(p);
    if (--g->waiting == 0) {
        g->kind->answer(g);
        gather_free(g);
    }
}

static void part_render(cs_job *job)
{
    part *p = (part *)job;
    cs_workers *w = p->at->workers;
    pthread_mutex_lock(&w->lock);
    bool open = slot_of(p->at)->open; /* a loop draining has nothing to count any more */
    pthread_mutex_unlock(&w->lock);
    if (open) {
        p->g->kind->render(p->at, &p->text);
        load_of(p->at, &p->load);
    }
    p->job = (cs_job){.done = part_back};
    pthread_mutex_lock(&w->lock);
    bool sent = post_locked(w, p->g->gw->loop_index, p);
    pthread_mutex_unlock(&w->lock);
    if (!sent) { /* the asker is gone, and its request with it */
        cs_buf_free(&p->text);
        free(p);
    }
}

static void gather_start(cs_request *r, cs_buf *mine, const gather_kind *kind)
{
    cs_gateway *gw = r->app;
    cs_workers *w = gw->workers;
    gather *g = calloc(1, sizeof *g);
    if (g) {
        g->texts = calloc(w->n, sizeof *g->texts);
        g->loads = calloc(w->n, sizeof *g->loads);
    }
    if (!g || !g->texts || !g->loads) {
        if (g) free(g->texts);
        if (g) free(g->loads);
        free(g);
        cs_respond_error(r, 503, "no memory to gather the loops' answers");
        return;
    }
    g->kind = kind;
    g->r = r;
    g->gw = gw;
    loop_slot *sl = slot_of(gw);
    g->next = sl->gathers;
    if (g->next) g->next->prev = g;
    sl->gathers = g;
    g->texts[gw->loop_index] = *mine;
    *mine = (cs_buf)CS_BUF_INIT(0);
    load_of(gw, &g->loads[gw->loop_index]);
    g->waiting = 1; /* this call's own, until every part is asked */
    pthread_mutex_lock(&w->lock);
    for (uint32_t i = 0; i < w->n; i++) {
        if (i == gw->loop_index) continue;
        part *p = calloc(1, sizeof *p);
        if (!p) break; /* that loop's part is missing */
        *p = (part){.job = {.done = part_render}, .g = g, .at = &w->loops[i].gw};
        p->text = (cs_buf)CS_BUF_INIT(kind->max);
        if (post_locked(w, i, p))
            g->waiting++;
        else
            free(p);
    }
    pthread_mutex_unlock(&w->lock);
    if (--g->waiting == 0) { /* the other loops had all drained */
        kind->answer(g);
        gather_free(g);
    }
}

void cs_workers_metrics(cs_request *r, cs_buf *mine)
{
    gather_start(r, mine, &metrics_kind);
}

void cs_workers_streams(cs_request *r, cs_buf *mine)
{
    gather_start(r, mine, &streams_kind);
}

void cs_workers_loop_free(cs_gateway *gw)
{
    /* Its mailbox is closed: a part that came too late was dropped by the loop that made
     * it, so what still waits is answered now (its peer has left) and freed. */
    loop_slot *sl = slot_of(gw);
    while (sl->gathers) {
        cs_respond_error(sl->gathers->r, 503, "the gateway stopped");
        gather_free(sl->gathers);
    }
}

/* An earlier failure's start (0: none). */
static void earliest(int64_t *at, int64_t other)
{
    if (other && (!*at || other < *at)) *at = other;
}

/* Adds another loop's store to `st`; `reads_since` gets the latest burst of failing
 * queries begun on any loop. */
static void store_add(cs_store_stats *st, const cs_store_stats *o, int64_t *reads_since)
{
    st->written += o->written;
    st->batches += o->batches;
    st->failures += o->failures;
    st->spilled += o->spilled;
    st->replayed += o->replayed;
    st->lost += o->lost;
    st->queries += o->queries;
    st->reads_failed += o->reads_failed;
    st->reads_timed_out += o->reads_timed_out;
    st->reads_refused += o->reads_refused;
    st->queued += o->queued;
    st->spill_queued += o->spill_queued;
    st->reads_pending += o->reads_pending;
    earliest(&st->failing_since_ms, o->failing_since_ms);
    if (o->reads_failing_since_ms > *reads_since) *reads_since = o->reads_failing_since_ms;
    if (o->last_error_ms > st->last_error_ms) {
        st->last_error_ms = o->last_error_ms;
        memcpy(st->last_error, o->last_error, sizeof st->last_error);
    }
    if (o->last_read_error_ms > st->last_read_error_ms) {
        st->last_read_error_ms = o->last_read_error_ms;
        memcpy(st->last_read_error, o->last_read_error, sizeof st->last_read_error);
    }
    if (o->last_read_ok_ms > st->last_read_ok_ms) st->last_read_ok_ms = o->last_read_ok_ms;
}

void cs_workers_store_stats(cs_gateway *gw, cs_store_stats *st)
{
    cs_workers *w = gw->workers;
    int64_t reads_since = st->reads_failing_since_ms;
    /* Read now, not as last published: a failure one loop has just seen is the node's.
     * An open loop's store is closed only after it is no longer open (the lock held). */
    pthread_mutex_lock(&w->lock);
    for (uint32_t i = 0; i < w->n; i++) {
        if (i == gw->loop_index || !w->loops[i].open) continue;
        cs_store_stats o;
        cs_store_stats_peek(w->loops[i].gw.store, &o);
        store_add(st, &o, &reads_since);
    }
    pthread_mutex_unlock(&w->lock);
    /* Queries fail for the node until one is answered again, on any loop. */
    st->reads_failing_since_ms = reads_since > st->last_read_ok_ms ? reads_since : 0;
}

void cs_workers_totals(cs_gateway *gw, uint64_t *calls, uint64_t *streams, uint64_t *conns)
{
    loop_load *loads = loads_of(gw);
    if (!loads) return; /* this loop's alone */
    *calls = *streams = *conns = 0;
    for (uint32_t i = 0; i < gw->workers->n; i++) {
        *calls += loads[i].calls;
        *streams += loads[i].streams;
        *conns += loads[i].connections;
    }
    free(loads);
}

void cs_workers_status(cs_gateway *gw, cs_json *j)
{
    cs_workers *w = gw->workers;
    loop_load *loads = loads_of(gw);
    if (!loads) return;
    cs_json_kuint(j, "loop", gw->loop_index);
    cs_json_key(j, "loops");
    cs_json_arr(j);
    for (uint32_t i = 0; i < w->n; i++) {
        cs_json_obj(j);
        cs_json_kuint(j, "loop", i);
        cs_json_kuint(j, "calls", loads[i].calls);
        cs_json_kuint(j, "streams", loads[i].streams);
        cs_json_kuint(j, "connections", loads[i].connections);
        cs_json_kuint(j, "connections_total", loads[i].connections_total);
        cs_json_kuint(j, "requests_total", loads[i].requests_total);
        cs_json_obj_end(j);
    }
    cs_json_arr_end(j);
    free(loads);
}
