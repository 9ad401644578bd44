/* What every backend of the bus shares: this loop's subscribers and their fan-out, the
 * wire form of messages, the requests waiting for an answer, and this loop's own
 * directory entries (what a backend rewrites when its server comes back, and what it
 * answers from while the server is away). */
#include "bus/bus.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"

#define RESULT_POOL_MAX (64u << 20) /* bytes of one request's results */

/* The backends, by the scheme of their URL ("" for none). */
static const struct {
    const char *scheme;
    const cs_bus_ops *ops;
} backends[] = {
    {"", &cs_bus_inproc_ops},
    {"redis://", &cs_bus_redis_ops},
};

static void held_pop(cs_bus *b);

/* ---- topics ---- */

/* The subscribers of one topic. The key points at `topic`. */
typedef struct subscribers {
    char topic[CS_BUS_TOPIC_MAX + 1];
    cs_bus_sub *head;
    cs_bus_sub *cursor; /* the next one delivery will visit: unsubscribe moves it on */
    bool walking;       /* a delivery is visiting: the topic stays until it is done */
} subscribers;

static void copy_string(char *out, size_t cap, const char *s, const char **field)
{
    snprintf(out, cap, "%s", s ? s : "");
    *field = out;
}

int cs_bus_open(cs_bus **out, const cs_bus_config *cfg, cs_buf *err)
{
    const char *url = cfg->url ? cfg->url : "";
    const cs_bus_ops *ops = !url[0] && cfg->hub ? &cs_bus_crossloop_ops : NULL;
    for (size_t i = 0; i < sizeof backends / sizeof *backends && !ops; i++) {
        size_t n = strlen(backends[i].scheme);
        if (n ? strncmp(url, backends[i].scheme, n) == 0 : !url[0]) ops = backends[i].ops;
    }
    if (!ops) {
        cs_buf_printf(err, "the bus cannot use %.40s: REDIS_URL takes redis://host[:port][/db]",
                      url);
        return CS_ECONFIG;
    }
    const char *node = cfg->node ? cfg->node : "";
    if (strlen(node) > CS_BUS_NODE_MAX ||
        strspn(node, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                     "0123456789._-") != strlen(node)) {
        cs_buf_printf(err, "NODE_ID is at most %d of A-Z a-z 0-9 . _ -", CS_BUS_NODE_MAX);
        return CS_ECONFIG;
    }
    cs_bus *b = calloc(1, sizeof *b);
    if (!b) return -ENOMEM;
    b->ops = ops;
    b->cfg = *cfg;
    copy_string(b->url, sizeof b->url, url, &b->cfg.url);
    copy_string(b->node, sizeof b->node, cfg->node && cfg->node[0] ? cfg->node : "local",
                &b->cfg.node);
    copy_string(b->node_url, sizeof b->node_url, cfg->node_url, &b->cfg.node_url);
    copy_string(b->run, sizeof b->run, cfg->run, &b->cfg.run);
    snprintf(b->origin, sizeof b->origin, "%s/%u", b->node, (unsigned)cfg->loop_index);
    b->scratch = (cs_buf)CS_BUF_INIT(CS_BUS_MSG_MAX + 64 + sizeof b->origin);
    b->held_tail = &b->held;
    b->up = true;
    int rc = ops->open(b, err);
    if (rc < 0) {
        cs_buf_free(&b->scratch);
        free(b);
        return rc;
    }
    *out = b;
    return 0;
}

void cs_bus__own_free(cs_bus_own *o)
{
    for (size_t i = 0; i < o->n; i++) free(o->events[(o->head + i) % CS_BUS_HISTORY_MAX]);
    free(o->events);
    free(o->lens);
    free(o->summary);
    free(o);
}

void cs_bus_close(cs_bus *b)
{
    if (!b) return;
    while (b->asked) cs_dir_cancel(b->asked);
    b->ops->close(b);
    void *v;
    for (size_t pos = 0; cs_map_next(&b->topics, &pos, NULL, &v);) free(v);
    cs_map_free(&b->topics);
    for (size_t pos = 0; cs_map_next(&b->own, &pos, NULL, &v);) cs_bus__own_free(v);
    cs_map_free(&b->own);
    while (b->held) held_pop(b);
    cs_buf_free(&b->scratch);
    free(b);
}

int cs_bus_subscribe(cs_bus *b, cs_bus_sub *s, const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > CS_BUS_TOPIC_MAX) return -EINVAL;
    if (s->active) cs_bus_unsubscribe(b, s);
    subscribers *t = cs_map_get(&b->topics, (cs_str){name, n});
    bool first = t == NULL;
    if (first) {
        t = calloc(1, sizeof *t);
        if (!t) return -ENOMEM;
        memcpy(t->topic, name, n + 1);
        if (cs_map_put(&b->topics, (cs_str){t->topic, n}, t) < 0) {
            free(t);
            return -ENOMEM;
        }
    }
    memcpy(s->topic, name, n + 1);
    s->prev = NULL;
    s->next = t->head;
    if (t->head) t->head->prev = s;
    t->head = s;
    s->active = true;
    if (first && b->ops->topic_on) b->ops->topic_on(b, t->topic);
    return 0;
}

static void topic_gone(cs_bus *b, subscribers *t)
{
    cs_map_del(&b->topics, cs_str_of(t->topic));
    if (b->ops->topic_off) b->ops->topic_off(b, t->topic);
    free(t);
}

void cs_bus_unsubscribe(cs_bus *b, cs_bus_sub *s)
{
    if (!s->active) return;
    s->active = false;
    subscribers *t = cs_map_get(&b->topics, cs_str_of(s->topic));
    if (!t) return;
    if (t->cursor == s) t->cursor = s->next;
    if (s->prev)
        s->prev->next = s->next;
    else
        t->head = s->next;
    if (s->next) s->next->prev = s->prev;
    s->prev = s->next = NULL;
    if (!t->head && !t->walking) topic_gone(b, t);
}

static subscribers *subscribers_of(const cs_bus *b, const char *topic, size_t n)
{
    return b->topics.len ? cs_map_get(&b->topics, (cs_str){topic, n}) : NULL;
}

bool cs_bus_has(cs_bus *b, const char *name, size_t n)
{
    if (subscribers_of(b, name, n)) return true;
    return b->ops->elsewhere && b->ops->elsewhere(b, name, n);
}

/* To this loop's subscribers `t` (NULL: none), in order. */
static void deliver(cs_bus *b, subscribers *t, const cs_bus_msg *m)
{
    if (!t) return;
    /* A subscriber may unsubscribe itself or others while we walk: the cursor keeps our
     * place, and the topic stays until the walk ends. A delivery nested in another one
     * (a subscriber publishing to another topic) walks that topic, never this one. */
    bool nested = t->walking;
    cs_bus_sub *saved = t->cursor;
    t->walking = true;
    t->cursor = t->head;
    while (t->cursor) {
        cs_bus_sub *s = t->cursor;
        t->cursor = s->next;
        b->stats.delivered++;
        s->deliver(s, m);
    }
    t->walking = nested;
    t->cursor = saved;
    if (!t->head && !nested) topic_gone(b, t);
}

/* ---- held messages: what must reach the other nodes though the server is away ---- */

typedef struct cs_bus_held {
    struct cs_bus_held *next;
    char topic[CS_BUS_TOPIC_MAX + 1];
    uint64_t sent_ms; /* loop time it went out once the server was back; 0: not yet */
    size_t n;
    uint8_t bytes[]; /* encoded, with this loop's origin */
} held;

static void held_pop(cs_bus *b)
{
    held *h = b->held;
    b->held = h->next;
    if (!b->held) b->held_tail = &b->held;
    b->nheld--;
    b->held_bytes -= h->n;
    free(h);
}

/* The encoded message in b->scratch, kept: the oldest go past the bounds (counted). */
static void hold(cs_bus *b, const char *topic)
{
    size_t n = b->scratch.len;
    while (b->held && (b->nheld >= CS_BUS_HOLD_MAX || b->held_bytes + n > CS_BUS_HOLD_BYTES)) {
        /* those sent already (kept for late subscribers) go first, unseen */
        if (!b->held->sent_ms && b->stats.held_dropped++ == 0)
            cs_warn("bus: more than %d messages held while %s is away: the oldest dropped",
                    CS_BUS_HOLD_MAX, b->ops->name);
        held_pop(b);
    }
    held *h = n <= CS_BUS_HOLD_BYTES ? malloc(sizeof *h + n) : NULL;
    if (!h) {
        b->stats.held_dropped++;
        return;
    }
    h->next = NULL;
    snprintf(h->topic, sizeof h->topic, "%s", topic);
    h->sent_ms = 0;
    h->n = n;
    memcpy(h->bytes, b->scratch.data, n);
    *b->held_tail = h;
    b->held_tail = &h->next;
    b->nheld++;
    b->held_bytes += n;
    b->stats.held++;
}

/* Sends what waits (`topic` NULL), or again what was sent of `topic`; forgets what went
 * out more than CS_BUS_HOLD_MS ago (the oldest first: they went out in order). */
static void held_send(cs_bus *b, const char *topic, size_t tn)
{
    uint64_t now = uv_now(b->cfg.loop);
    while (b->held && b->held->sent_ms && now - b->held->sent_ms > CS_BUS_HOLD_MS)
        held_pop(b);
    for (held *h = b->held; h; h = h->next) {
        bool again = topic && h->sent_ms && strlen(h->topic) == tn && !memcmp(h->topic, topic, tn);
        if (!(topic ? again : !h->sent_ms)) continue;
        if (!h->sent_ms) h->sent_ms = now ? now : 1;
        b->stats.sent++;
        b->ops->publish(b, h->topic, h->bytes, h->n);
    }
}

void cs_bus__heard(cs_bus *b, const char *topic, size_t n)
{
    if (b->held && cs_bus_ready(b)) held_send(b, topic, n);
}

/* Every audio frame of every call comes here: who listens is asked once, and a frame
 * nobody wants costs two lookups. */
void cs_bus_publish(cs_bus *b, const cs_bus_msg *in)
{
    size_t n = strlen(in->topic);
    subscribers *t = subscribers_of(b, in->topic, n);
    /* Away, nobody is known to listen elsewhere: held, it goes to whoever does when back. */
    bool keep = in->hold && b->ops->publish && !cs_bus_ready(b);
    bool away =
        keep || (b->ops->publish && (!b->ops->elsewhere || b->ops->elsewhere(b, in->topic, n)));
    if (!t && !away) return;
    b->stats.published++; /* those someone listens to */
    cs_bus_msg stamped;
    const cs_bus_msg *m = in;
    if (in->kind == CS_BUS_AUDIO && !in->at_ms) {
        stamped = *in;
        stamped.at_ms = cs_wall_ms();
        m = &stamped;
    }
    deliver(b, t, m);
    if (!away) return;
    if (cs_bus_msg_encode(&b->scratch, m, b->origin) < 0) {
        b->stats.dropped++;
        return;
    }
    if (keep) {
        hold(b, m->topic);
        return;
    }
    b->stats.sent++;
    b->ops->publish(b, m->topic, (const uint8_t *)b->scratch.data, b->scratch.len);
}

/* ---- the wire form: kind, flags, origin's length, origin, then
 *   text:  the JSON
 *   audio: track, position (ms, big-endian u32), published at (wall ms, big-endian u64),
 *          the μ-law bytes ---- */

#define AUDIO_HEAD 13

#define WIRE_TEXT  'T'
#define WIRE_AUDIO 'A'
#define WIRE_FINAL 1u

int cs_bus_msg_encode(cs_buf *out, const cs_bus_msg *m, const char *origin)
{
    size_t olen = origin ? strlen(origin) : 0;
    size_t body = m->kind == CS_BUS_TEXT ? m->len : AUDIO_HEAD + m->n;
    if (olen > 255 || body > CS_BUS_MSG_MAX) return -EINVAL;
    cs_buf_reset(out);
    uint8_t head[3] = {m->kind == CS_BUS_TEXT ? WIRE_TEXT : WIRE_AUDIO, m->final ? WIRE_FINAL : 0,
                       (uint8_t)olen};
    if (cs_buf_append(out, head, sizeof head) < 0 || cs_buf_append(out, origin, olen) < 0)
        return -ENOMEM;
    if (m->kind == CS_BUS_TEXT) return cs_buf_append(out, m->text, m->len) < 0 ? -ENOMEM : 0;
    uint8_t a[AUDIO_HEAD] = {(uint8_t)(m->track & 1)};
    for (int i = 0; i < 4; i++) a[1 + i] = (uint8_t)(m->pos_ms >> (24 - 8 * i));
    for (int i = 0; i < 8; i++) a[5 + i] = (uint8_t)((uint64_t)m->at_ms >> (56 - 8 * i));
    if (cs_buf_append(out, a, sizeof a) < 0 || cs_buf_append(out, m->ulaw, m->n) < 0)
        return -ENOMEM;
    return 0;
}

int cs_bus_msg_decode(cs_bus_msg *m, const char **origin, size_t *origin_len, const uint8_t *p,
                      size_t n)
{
    if (n < 3 || (p[0] != WIRE_TEXT && p[0] != WIRE_AUDIO) || (p[1] & ~WIRE_FINAL) || n < 3u + p[2])
        return -EPROTO;
    const char *name = m->topic;
    memset(m, 0, sizeof *m);
    m->topic = name;
    m->final = p[1] & WIRE_FINAL;
    bool text = p[0] == WIRE_TEXT;
    *origin = (const char *)p + 3;
    *origin_len = p[2];
    p += 3u + p[2];
    n -= 3u + (size_t)*origin_len;
    if (text) {
        if (n == 0 || n > CS_BUS_MSG_MAX) return -EPROTO;
        m->kind = CS_BUS_TEXT;
        m->text = (const char *)p;
        m->len = n;
        return 0;
    }
    if (n < AUDIO_HEAD || p[0] > 1 || n - AUDIO_HEAD > CS_BUS_MSG_MAX) return -EPROTO;
    m->kind = CS_BUS_AUDIO;
    m->track = p[0];
    for (int i = 0; i < 4; i++) m->pos_ms = m->pos_ms << 8 | p[1 + i];
    uint64_t at = 0;
    for (int i = 0; i < 8; i++) at = at << 8 | p[5 + i];
    m->at_ms = (int64_t)at;
    m->ulaw = p + AUDIO_HEAD;
    m->n = n - AUDIO_HEAD;
    return 0;
}

void cs_bus__arrived(cs_bus *b, const char *name, const uint8_t *p, size_t n)
{
    cs_bus_msg m = {.topic = name};
    const char *origin;
    size_t olen;
    if (cs_bus_msg_decode(&m, &origin, &olen, p, n) < 0) {
        if (b->stats.bad++ == 0) cs_warn("bus: a message on %.64s is not one: skipped", name);
        return;
    }
    if (olen == strlen(b->origin) && memcmp(origin, b->origin, olen) == 0) return;
    b->stats.received++;
    deliver(b, subscribers_of(b, name, strlen(name)), &m);
}

void cs_bus__health(cs_bus *b, bool up, const char *why)
{
    if (up && b->held) held_send(b, NULL, 0); /* on its first connection too */
    if (b->up == up) return;
    b->up = up;
    if (!up) b->stats.outages++;
    if (up)
        cs_info("bus: %s is back", b->ops->name);
    else
        cs_warn("bus: %s is away: %s", b->ops->name, why ? why : "?");
    if (b->cfg.on_health) b->cfg.on_health(b->cfg.data, up, why);
}

bool cs_bus_ready(const cs_bus *b)
{
    return b->ops->ready ? b->ops->ready(b) : true;
}

const cs_bus_stats *cs_bus_stats_get(const cs_bus *b)
{
    return &b->stats;
}

int cs_bus_command(cs_bus *b, const char *to, const char *json, size_t n)
{
    char node[CS_BUS_NODE_MAX + 1];
    const char *slash = to ? strchr(to, '/') : NULL;
    size_t len = to ? (slash ? (size_t)(slash - to) : strlen(to)) : 0;
    unsigned long loop = 0;
    if (slash) {
        char *end;
        loop = strtoul(slash + 1, &end, 10);
        if (end == slash + 1 || *end || loop > UINT32_MAX) return -EINVAL;
    }
    if (len == 0 || len > CS_BUS_NODE_MAX || n > CS_BUS_MSG_MAX) return -EINVAL;
    memcpy(node, to, len);
    node[len] = '\0';
    int rc = b->ops->command(b, node, (uint32_t)loop, json, n);
    if (rc == 0) b->stats.commands_out++;
    if (rc == CS_ENOTFOUND && b->stats.commands_unknown++ == 0)
        cs_warn("bus: a command to %.80s refused: no such node or loop", to);
    return rc;
}

/* ---- the directory ---- */

cs_bus_own *cs_bus__own_new(const char *sid, uint32_t loop)
{
    cs_bus_own *o = calloc(1, sizeof *o);
    if (!o) return NULL;
    snprintf(o->sid, sizeof o->sid, "%s", sid);
    o->loop = loop;
    return o;
}

static cs_bus_own *own_get(cs_bus *b, const char *sid, bool make)
{
    cs_bus_own *o = cs_map_get(&b->own, cs_str_of(sid));
    if (o || !make || strlen(sid) > CS_BUS_TOPIC_MAX) return o;
    o = cs_bus__own_new(sid, b->cfg.loop_index);
    if (o && cs_map_put(&b->own, cs_str_of(o->sid), o) < 0) {
        free(o);
        return NULL;
    }
    return o;
}

static char *dup_bytes(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

int cs_bus__own_summary(cs_bus_own *o, const char *summary, size_t n)
{
    char *copy = dup_bytes(summary, n);
    if (!copy) return -ENOMEM;
    free(o->summary);
    o->summary = copy;
    o->summary_len = n;
    return 0;
}

void cs_dir_put(cs_bus *b, const char *sid, const char *summary, size_t n)
{
    cs_bus_own *o = own_get(b, sid, true);
    if (!o || cs_bus__own_summary(o, summary, n) < 0) {
        cs_warn("bus: out of memory keeping call %s in the directory", sid);
        return;
    }
    if (b->ops->dir_put) b->ops->dir_put(b, sid, summary, n);
}

/* Keeps an event for those who join later, the oldest going first. The history grows as
 * the call has events (most have few), and wraps once it holds CS_BUS_HISTORY_MAX. */
void cs_bus__own_event(cs_bus_own *o, const char *event, size_t n)
{
    if (o->n == o->cap && o->cap < CS_BUS_HISTORY_MAX) {
        size_t cap = o->cap ? 2 * o->cap : 16;
        if (cap > CS_BUS_HISTORY_MAX) cap = CS_BUS_HISTORY_MAX;
        char **events = realloc(o->events, cap * sizeof *events);
        if (events) o->events = events;
        size_t *lens = events ? realloc(o->lens, cap * sizeof *lens) : NULL;
        if (!events || !lens) return;
        o->lens = lens;
        o->cap = cap;
    }
    char *copy = dup_bytes(event, n);
    if (!copy) return;
    if (o->n == CS_BUS_HISTORY_MAX) {
        free(o->events[o->head]);
        o->head = (o->head + 1) % CS_BUS_HISTORY_MAX;
        o->n--;
    }
    size_t at = (o->head + o->n++) % CS_BUS_HISTORY_MAX;
    o->events[at] = copy;
    o->lens[at] = n;
}

void cs_dir_event(cs_bus *b, const char *sid, const char *event, size_t n)
{
    cs_bus_own *o = own_get(b, sid, false);
    if (!o) return; /* not a call of this loop's */
    cs_bus__own_event(o, event, n);
    if (b->ops->dir_event) b->ops->dir_event(b, sid, event, n);
}

void cs_dir_end(cs_bus *b, const char *sid)
{
    cs_bus_own *o = cs_map_del(&b->own, cs_str_of(sid));
    if (!o) return;
    cs_bus__own_free(o);
    if (b->ops->dir_end) b->ops->dir_end(b, sid);
}

int cs_dir_ask(cs_bus *b, cs_dir_req *q)
{
    if (q->pending || !q->done || q->what < CS_DIR_LIST || q->what > CS_DIR_NODES) return -EINVAL;
    q->bus = b;
    q->rc = 0;
    q->partial = false;
    q->calls = NULL;
    q->ncalls = q->nevents = q->nnodes = 0;
    q->events = NULL;
    q->event_lens = NULL;
    q->nodes = NULL;
    q->pool = (cs_pool)CS_POOL_INIT;
    q->pool.max = RESULT_POOL_MAX;
    q->pending = true;
    q->seq = ++b->asked_seq;
    q->next = NULL;
    q->prev = b->asked_tail;
    if (b->asked_tail)
        b->asked_tail->next = q;
    else
        b->asked = q;
    b->asked_tail = q;
    b->ops->ask(b, q);
    return 0;
}

static void unlink_req(cs_dir_req *q)
{
    cs_bus *b = q->bus;
    if (q->prev)
        q->prev->next = q->next;
    else
        b->asked = q->next;
    if (q->next)
        q->next->prev = q->prev;
    else
        b->asked_tail = q->prev;
    q->prev = q->next = NULL;
    q->pending = false;
}

void cs_dir_cancel(cs_dir_req *q)
{
    if (!q->pending) return;
    if (q->bus->ops->cancel) q->bus->ops->cancel(q->bus, q);
    unlink_req(q);
    cs_pool_free(&q->pool);
}

void cs_dir__answer(cs_dir_req *q)
{
    if (!q->pending) return;
    unlink_req(q);
    /* `done` may free the request, or ask again with it: the bus does not touch it after. */
    cs_pool results = q->pool;
    q->pool = (cs_pool)CS_POOL_INIT;
    q->done(q);
    cs_pool_free(&results);
}

void cs_bus__self(cs_bus *b, cs_bus_node *out)
{
    memset(out, 0, sizeof *out);
    snprintf(out->id, sizeof out->id, "%s", b->node);
    snprintf(out->url, sizeof out->url, "%s", b->node_url);
    snprintf(out->run, sizeof out->run, "%s", b->run);
    out->loops = b->cfg.loops ? b->cfg.loops : 1;
    out->seen_ms = cs_wall_ms();
    out->self = true;
    if (b->cfg.load) b->cfg.load(b->cfg.data, out);
}

static void local_call(cs_bus *b, cs_dir_req *q, cs_dir_call *c, const cs_bus_own *o)
{
    snprintf(c->sid, sizeof c->sid, "%s", o->sid);
    snprintf(c->node, sizeof c->node, "%s", b->node);
    c->loop = o->loop;
    c->summary =
        o->summary ? cs_pool_strndup(&q->pool, (cs_str){o->summary, o->summary_len}) : NULL;
    c->summary_len = c->summary ? o->summary_len : 0;
}

void cs_bus__answer_local(cs_bus *b, cs_dir_req *q, bool partial)
{
    q->partial = partial;
    if (q->what == CS_DIR_NODES) {
        q->nodes = cs_pool_alloc(&q->pool, sizeof *q->nodes);
        if (!q->nodes) {
            q->rc = -ENOMEM;
            return;
        }
        cs_bus__self(b, q->nodes);
        q->nnodes = 1;
        return;
    }
    cs_bus__answer_dir(b, q, &b->own);
}

void cs_bus__answer_dir(cs_bus *b, cs_dir_req *q, const cs_map *own)
{
    if (q->what == CS_DIR_GET) {
        const cs_bus_own *o = cs_map_get(own, cs_str_of(q->sid));
        if (!o) return;
        q->calls = cs_pool_alloc(&q->pool, sizeof *q->calls);
        const char **events = o->n ? cs_pool_alloc(&q->pool, o->n * sizeof *events) : NULL;
        size_t *lens = o->n ? cs_pool_alloc(&q->pool, o->n * sizeof *lens) : NULL;
        if (!q->calls || (o->n && (!events || !lens))) {
            q->rc = -ENOMEM;
            return;
        }
        local_call(b, q, q->calls, o);
        q->ncalls = 1;
        for (size_t i = 0; i < o->n; i++) {
            size_t at = (o->head + i) % CS_BUS_HISTORY_MAX;
            events[i] = cs_pool_strndup(&q->pool, (cs_str){o->events[at], o->lens[at]});
            lens[i] = o->lens[at];
            if (!events[i]) {
                q->rc = -ENOMEM;
                return;
            }
        }
        q->events = events;
        q->event_lens = lens;
        q->nevents = o->n;
        return;
    }
    q->calls = own->len ? cs_pool_alloc(&q->pool, own->len * sizeof *q->calls) : NULL;
    if (own->len && !q->calls) {
        q->rc = -ENOMEM;
        return;
    }
    void *v;
    for (size_t pos = 0; cs_map_next(own, &pos, NULL, &v);)
        local_call(b, q, &q->calls[q->ncalls++], v);
}
