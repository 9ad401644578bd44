/* The cross-loop bus: the event loops of one process (WORKERS > 1 without REDIS_URL), one
 * node. A process-wide hub, under one lock, holds which loops listen to which topic, the
 * directory of every loop's calls, and each loop's mailbox; what one loop sends another is
 * a copy posted to that mailbox, never a pointer into the sender's memory. A mailbox is
 * bounded: a slow loop loses listen-in audio first, then text past a larger bound; both
 * are counted as the sender's `dropped`. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "bus/bus.h"
#include "core/err.h"
#include "core/log.h"
#include "core/worker.h"

#define XL_AUDIO_MAX (1u << 20)  /* bytes waiting for a loop past which its audio is dropped */
#define XL_QUEUE_MAX (16u << 20) /* … and its text too */

/* Which loops listen to a topic. The key points at `topic`. */
typedef struct listeners {
    char topic[CS_BUS_TOPIC_MAX + 1];
    uint64_t loops; /* bit i: loop i */
} listeners;

typedef struct xl xl;

struct cs_bus_hub {
    pthread_mutex_t lock;
    uint32_t loops;
    xl *slot[CS_BUS_LOOPS_MAX]; /* NULL: that loop's bus is not open */
    cs_map topics;              /* topic → listeners */
    atomic_size_t ntopics;      /* its size, read without the lock: none, no one to ask */
    cs_map calls;               /* sid → cs_bus_own: every loop's calls */
};

/* One loop's side. Others touch it only under the hub's lock while it is in its slot. */
struct xl {
    cs_bus *bus; /* NULL once closing: what arrives then is dropped */
    cs_bus_hub *hub;
    uint32_t index;
    cs_mailbox *mb;
    atomic_size_t queued; /* bytes in `mb`, not yet delivered */
    uv_timer_t beat;      /* publishes `load` */
    cs_bus_node load;     /* this loop's load, as it last beat (hub's lock) */
    cs_job answer;        /* answers the requests asked so far, from the loop */
    bool answer_posted;
};

enum job_kind { JOB_MESSAGE = 1, JOB_COMMAND };

/* A copy on its way to another loop (or this one, for commands). */
typedef struct xjob {
    cs_job job;
    xl *to;
    enum job_kind kind;
    char name[CS_BUS_NODE_MAX + 16]; /* the topic, or the sender's address (node/loop) */
    size_t n;
    uint8_t data[];
} xjob;

int cs_bus_hub_new(cs_bus_hub **out, uint32_t loops)
{
    if (loops < 1 || loops > CS_BUS_LOOPS_MAX) return -EINVAL;
    cs_bus_hub *h = calloc(1, sizeof *h);
    if (!h) return -ENOMEM;
    pthread_mutex_init(&h->lock, NULL);
    h->loops = loops;
    atomic_init(&h->ntopics, 0);
    *out = h;
    return 0;
}

void cs_bus_hub_free(cs_bus_hub *h)
{
    if (!h) return;
    void *v;
    for (size_t pos = 0; cs_map_next(&h->topics, &pos, NULL, &v);) free(v);
    cs_map_free(&h->topics);
    for (size_t pos = 0; cs_map_next(&h->calls, &pos, NULL, &v);) cs_bus__own_free(v);
    cs_map_free(&h->calls);
    pthread_mutex_destroy(&h->lock);
    free(h);
}

static void job_done(cs_job *job)
{
    xjob *j = (xjob *)job;
    xl *x = j->to;
    atomic_fetch_sub(&x->queued, j->n);
    cs_bus *b = x->bus;
    if (b && j->kind == JOB_MESSAGE) {
        cs_bus__arrived(b, j->name, j->data, j->n);
    } else if (b && j->kind == JOB_COMMAND) {
        b->stats.commands_in++;
        if (b->cfg.on_command) b->cfg.on_command(b->cfg.data, j->name, (char *)j->data, j->n);
    }
    free(j);
}

/* Under the hub's lock: a copy to loop `x`, unless its mailbox holds `max` bytes already.
 * 0, CS_EFULL or -ENOMEM. */
static int post(xl *x, enum job_kind kind, const char *name, const void *p, size_t n,
                size_t max)
{
    if (atomic_load(&x->queued) + n > max) return CS_EFULL;
    xjob *j = malloc(sizeof *j + n + 1);
    if (!j) return -ENOMEM;
    j->job = (cs_job){.done = job_done};
    j->to = x;
    j->kind = kind;
    snprintf(j->name, sizeof j->name, "%s", name);
    j->n = n;
    memcpy(j->data, p, n);
    j->data[n] = '\0';
    atomic_fetch_add(&x->queued, n);
    cs_mailbox_post(x->mb, &j->job);
    return 0;
}

/* ---- the directory's answers, from this loop ---- */

/* The node: this loop's load as it is now, the others' as they last beat. */
static void node_locked(xl *x, cs_bus_node *self)
{
    for (uint32_t i = 0; i < x->hub->loops; i++) {
        xl *o = x->hub->slot[i];
        if (!o || o == x) continue;
        self->calls += o->load.calls;
        self->streams += o->load.streams;
        self->monitors += o->load.monitors;
        if (o->load.started_ms && o->load.started_ms < self->started_ms)
            self->started_ms = o->load.started_ms;
    }
}

static void answer_now(cs_job *job)
{
    xl *x = (xl *)((char *)job - offsetof(xl, answer));
    x->answer_posted = false;
    cs_bus *b = x->bus;
    if (!b) return;
    /* Oldest first; what answering asks meanwhile waits for the next post. */
    uint64_t last = b->asked_seq;
    while (b->asked && b->asked->seq <= last) {
        cs_dir_req *q = b->asked;
        cs_bus_node self;
        if (q->what == CS_DIR_NODES) cs_bus__self(b, &self); /* asks the gateway: unlocked */
        pthread_mutex_lock(&x->hub->lock);
        if (q->what != CS_DIR_NODES) {
            cs_bus__answer_dir(b, q, &x->hub->calls);
        } else if ((q->nodes = cs_pool_alloc(&q->pool, sizeof *q->nodes)) != NULL) {
            node_locked(x, &self);
            q->nodes[0] = self;
            q->nnodes = 1;
        } else {
            q->rc = -ENOMEM;
        }
        pthread_mutex_unlock(&x->hub->lock);
        cs_dir__answer(q);
    }
}

static void beat(uv_timer_t *t)
{
    xl *x = t->data;
    cs_bus_node self;
    cs_bus__self(x->bus, &self);
    pthread_mutex_lock(&x->hub->lock);
    x->load = self;
    pthread_mutex_unlock(&x->hub->lock);
}

/* ---- ops ---- */

static void xl_freed(uv_handle_t *h)
{
    free(h->data);
}

static int xl_open(cs_bus *b, cs_buf *err)
{
    cs_bus_hub *h = b->cfg.hub;
    uint32_t i = b->cfg.loop_index;
    if (i >= h->loops) {
        cs_buf_printf(err, "loop %u of %u", (unsigned)i, (unsigned)h->loops);
        return CS_ECONFIG;
    }
    xl *x = calloc(1, sizeof *x);
    if (!x) return -ENOMEM;
    int rc = cs_mailbox_open(&x->mb, b->cfg.loop);
    if (rc < 0) {
        free(x);
        return rc;
    }
    x->bus = b;
    x->hub = h;
    x->index = i;
    x->answer.done = answer_now;
    atomic_init(&x->queued, 0);
    uv_timer_init(b->cfg.loop, &x->beat);
    x->beat.data = x;
    pthread_mutex_lock(&h->lock);
    bool taken = h->slot[i] != NULL;
    if (!taken) h->slot[i] = x;
    pthread_mutex_unlock(&h->lock);
    if (taken) {
        cs_buf_printf(err, "loop %u has a bus already", (unsigned)i);
        x->bus = NULL;
        cs_mailbox_close(x->mb);
        uv_close((uv_handle_t *)&x->beat, xl_freed);
        return CS_ECONFIG;
    }
    b->impl = x;
    if (b->cfg.heartbeat_ms) uv_timer_start(&x->beat, beat, 0, b->cfg.heartbeat_ms);
    return 0;
}

static void xl_close(cs_bus *b)
{
    xl *x = b->impl;
    cs_bus_hub *h = x->hub;
    uint64_t bit = 1ull << x->index;
    pthread_mutex_lock(&h->lock);
    h->slot[x->index] = NULL; /* from here on nobody posts to it */
    void *v;
    for (size_t pos = 0; cs_map_next(&h->topics, &pos, NULL, &v);) {
        listeners *l = v;
        l->loops &= ~bit;
        if (!l->loops && cs_map_del(&h->topics, cs_str_of(l->topic))) {
            free(l);
            atomic_store(&h->ntopics, h->topics.len);
            pos = 0; /* the map changed: from the start again */
        }
    }
    /* Its calls died with it. */
    for (size_t pos = 0; cs_map_next(&h->calls, &pos, NULL, &v);) {
        cs_bus_own *o = v;
        if (o->loop != x->index) continue;
        cs_map_del(&h->calls, cs_str_of(o->sid));
        cs_bus__own_free(o);
        pos = 0;
    }
    pthread_mutex_unlock(&h->lock);
    x->bus = NULL;
    cs_mailbox_close(x->mb); /* what waits in it is dropped now */
    uv_close((uv_handle_t *)&x->beat, xl_freed);
    b->impl = NULL;
}

static void xl_topic_on(cs_bus *b, const char *topic)
{
    xl *x = b->impl;
    pthread_mutex_lock(&x->hub->lock);
    listeners *l = cs_map_get(&x->hub->topics, cs_str_of(topic));
    if (!l && (l = calloc(1, sizeof *l)) != NULL) {
        snprintf(l->topic, sizeof l->topic, "%s", topic);
        if (cs_map_put(&x->hub->topics, cs_str_of(l->topic), l) < 0) {
            free(l);
            l = NULL;
        }
        atomic_store(&x->hub->ntopics, x->hub->topics.len);
    }
    if (l) l->loops |= 1ull << x->index;
    pthread_mutex_unlock(&x->hub->lock);
    if (!l) cs_warn("bus: out of memory: the other loops' %.64s is not heard here", topic);
}

static void xl_topic_off(cs_bus *b, const char *topic)
{
    xl *x = b->impl;
    pthread_mutex_lock(&x->hub->lock);
    listeners *l = cs_map_get(&x->hub->topics, cs_str_of(topic));
    if (l) l->loops &= ~(1ull << x->index);
    if (l && !l->loops) {
        cs_map_del(&x->hub->topics, cs_str_of(l->topic));
        free(l);
        atomic_store(&x->hub->ntopics, x->hub->topics.len);
    }
    pthread_mutex_unlock(&x->hub->lock);
}

/* The loops other than this one listening to `topic` (hub's lock). */
static uint64_t others_locked(xl *x, const char *topic, size_t n)
{
    listeners *l = cs_map_get(&x->hub->topics, (cs_str){topic, n});
    return l ? l->loops & ~(1ull << x->index) : 0;
}

static bool xl_elsewhere(cs_bus *b, const char *topic, size_t n)
{
    xl *x = b->impl;
    /* Every frame of every call asks: with no listener anywhere, the lock is not taken (one
     * that has just come is heard from the next frame). */
    if (atomic_load(&x->hub->ntopics) == 0) return false;
    pthread_mutex_lock(&x->hub->lock);
    bool any = others_locked(x, topic, n) != 0;
    pthread_mutex_unlock(&x->hub->lock);
    return any;
}

static void xl_publish(cs_bus *b, const char *topic, const uint8_t *msg, size_t n)
{
    xl *x = b->impl;
    cs_bus_msg m = {.topic = topic};
    const char *origin;
    size_t olen;
    bool audio = cs_bus_msg_decode(&m, &origin, &olen, msg, n) == 0 && m.kind == CS_BUS_AUDIO;
    size_t max = audio ? XL_AUDIO_MAX : XL_QUEUE_MAX;
    unsigned text_lost = 0;
    pthread_mutex_lock(&x->hub->lock);
    uint64_t to = others_locked(x, topic, strlen(topic));
    for (uint32_t i = 0; to && i < x->hub->loops; i++) {
        if (!(to & (1ull << i)) || !x->hub->slot[i]) continue;
        if (post(x->hub->slot[i], JOB_MESSAGE, topic, msg, n, max) < 0) {
            b->stats.dropped++;
            text_lost += !audio;
        }
    }
    pthread_mutex_unlock(&x->hub->lock);
    if (text_lost)
        cs_warn("bus: a loop is %u MB behind: a message on %.64s is lost to it",
                XL_QUEUE_MAX >> 20, topic);
}

static void xl_dir_put(cs_bus *b, const char *sid, const char *summary, size_t n)
{
    xl *x = b->impl;
    pthread_mutex_lock(&x->hub->lock);
    cs_bus_own *o = cs_map_get(&x->hub->calls, cs_str_of(sid));
    if (!o && (o = cs_bus__own_new(sid, x->index)) != NULL &&
        cs_map_put(&x->hub->calls, cs_str_of(o->sid), o) < 0) {
        cs_bus__own_free(o);
        o = NULL;
    }
    /* A call with streams on two loops: the first to put it owns the entry; the other's
     * next put takes it over once the first has ended it. */
    int rc = !o ? -ENOMEM : o->loop == x->index ? cs_bus__own_summary(o, summary, n) : 0;
    pthread_mutex_unlock(&x->hub->lock);
    if (rc < 0) cs_warn("bus: out of memory: call %s is not in the other loops' directory", sid);
}

static void xl_dir_event(cs_bus *b, const char *sid, const char *event, size_t n)
{
    xl *x = b->impl;
    pthread_mutex_lock(&x->hub->lock);
    cs_bus_own *o = cs_map_get(&x->hub->calls, cs_str_of(sid));
    if (o && o->loop == x->index) cs_bus__own_event(o, event, n);
    pthread_mutex_unlock(&x->hub->lock);
}

static void xl_dir_end(cs_bus *b, const char *sid)
{
    xl *x = b->impl;
    pthread_mutex_lock(&x->hub->lock);
    cs_bus_own *o = cs_map_get(&x->hub->calls, cs_str_of(sid));
    if (o && o->loop == x->index) {
        cs_map_del(&x->hub->calls, cs_str_of(sid));
        cs_bus__own_free(o);
    }
    pthread_mutex_unlock(&x->hub->lock);
}

static void xl_ask(cs_bus *b, cs_dir_req *q)
{
    (void)q;
    xl *x = b->impl;
    if (x->answer_posted) return;
    x->answer_posted = true;
    cs_mailbox_post(x->mb, &x->answer);
}

/* One of this node's loops. */
static int xl_command(cs_bus *b, const char *node, uint32_t i, const char *json, size_t n)
{
    xl *x = b->impl;
    if (strcmp(node, b->node) != 0 || i >= x->hub->loops) return CS_ENOTFOUND;
    pthread_mutex_lock(&x->hub->lock);
    int rc = x->hub->slot[i] ? post(x->hub->slot[i], JOB_COMMAND, b->origin, json, n, XL_QUEUE_MAX)
                             : CS_ENOTFOUND;
    pthread_mutex_unlock(&x->hub->lock);
    return rc;
}

const cs_bus_ops cs_bus_crossloop_ops = {
    .name = "cross-loop",
    .open = xl_open,
    .close = xl_close,
    .topic_on = xl_topic_on,
    .topic_off = xl_topic_off,
    .elsewhere = xl_elsewhere,
    .publish = xl_publish,
    .dir_put = xl_dir_put,
    .dir_event = xl_dir_event,
    .dir_end = xl_dir_end,
    .ask = xl_ask,
    .command = xl_command,
};
