/* The Redis backend of the bus (REDIS_URL): topics as pub/sub channels, the call directory
 * and the nodes in keys, all through hiredis's async API on the loop (two connections: one
 * subscribed, one for commands). It never blocks the loop: a host name is resolved with
 * uv_getaddrinfo and hiredis is given the address. No TLS (hiredis 0.14 has none).
 *
 * Keys and channels, under CS_REDIS_PREFIX (docs/cluster.md):
 *   t:<topic>   channel: a topic's encoded messages
 *   cmd:<node>/<loop>  channel: "<from node/loop> <json>": commands to one loop of a node
 *   in          channel: "<node> +<topic>" or "-<topic>": it subscribed or left (`elsewhere`)
 *   call:<sid>  hash node, loop, summary                ev:<sid>    list: its last events
 *   nc:<node>/<loop>  set: a loop's calls        loops:<node>  set: its loops that beat
 *   node:<node> hash: its heartbeat's fields
 *   alive:<node> string with a TTL (node_ttl_ms), set every heartbeat
 *   nodes       set: every node not yet declared lost
 * Scripts (EVAL) make the multi-key steps atomic: the reaping of a lost node runs as one
 * script, so exactly one survivor finds it (the first removes it from `nodes`). */
#include "bus/bus.h"

#include <errno.h>
#include <pthread.h>
#include <hiredis/adapters/libuv.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/backoff.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "net/url.h"

#define CS_REDIS_PREFIX           "cs:"
#define CS_REDIS_CONNECT_MS       5000 /* connecting and the handshake, each attempt */
#define CS_REDIS_RETRY_MIN        250  /* backoff between attempts (core/backoff.h) */
#define CS_REDIS_RETRY_MAX        10000
#define CS_REDIS_INFLIGHT         10000 /* commands sent and not yet answered; past it publishes drop */
#define CS_REDIS_INTEREST_MS      250 /* how stale a topic's count of listeners elsewhere may be */
#define CS_REDIS_INTEREST_IDLE_MS 10000 /* the count of a topic not published here: refreshed */
#define CS_REDIS_INTEREST_MAX     10000 /* topics heard elsewhere known; more: all assumed heard */
#define CS_REDIS_NUMSUB_BATCH     500   /* channels per PUBSUB NUMSUB */
#define CS_REDIS_LIST_MAX         10000 /* calls a LIST returns */
#define CS_REDIS_PEERS_MAX        1024  /* nodes known alive (commands check the name) */
/* hiredis 0.14 keeps whatever a server sends (its reader has no bound but `maxbuf`, which only
 * says when an idle buffer is freed): a reply is refused past these, the connection dropped.
 * The largest of ours are a LIST (4 elements a call, CS_REDIS_LIST_MAX calls, its results
 * under bus.c's 64 MiB) and a lost node's calls (3 elements each). */
#define CS_REDIS_REPLY_MAX        (64u << 20) /* bytes buffered, read and not yet parsed */
#define CS_REDIS_ELEMENTS_MAX     (1u << 20)  /* elements of one array */

enum rstate { R_DOWN = 0, R_RESOLVING, R_CONNECTING, R_UP, R_CLOSED };

/* What this node knows of a topic's listeners on other nodes. */
typedef struct interest {
    char topic[CS_BUS_TOPIC_MAX + 1];
    int others;          /* subscribers elsewhere; -1 not counted yet (assumed some) */
    uint64_t asked_ms;   /* last published to here */
    uint64_t checked_ms; /* its count last came */
    unsigned gen;        /* bumped by announcements: an older count does not undo them */
    bool asking;
} interest;

/* A directory request on its way, known by its seq: a cancelled one is no longer among
 * the bus's pending requests when its reply comes, and the reply is dropped. */
typedef struct ticket {
    struct rbus *r;
    uint64_t seq;
    bool local; /* to be answered from this node's own entries (the server is away) */
    struct ticket *prev, *next;
} ticket;

typedef struct resolve {
    uv_getaddrinfo_t req;
    struct rbus *r; /* NULL once the bus closed */
} resolve;

typedef struct rbus {
    cs_bus *b;
    char host[256];
    int port;
    char user[256], pass[256]; /* AUTH's, decoded */
    int db;
    enum rstate state;
    redisAsyncContext *cmd, *sub;
    bool cmd_ready, sub_ready, in_ready;
    bool ever_up, told_down, rewrite;
    bool beating; /* a heartbeat is on its way: the next waits (they never pile up) */
    unsigned attempt;
    size_t inflight;
    uv_timer_t retry, beat, interest_timer, answer;
    uv_check_t guard; /* after each read: a reply past CS_REDIS_REPLY_MAX ends the connection */
    unsigned handles; /* open timers: freed when the last closes */
    resolve *resolving;
    cs_map interest;    /* topic → interest: the topics subscribed elsewhere */
    bool interest_full; /* some are not in it: every topic counts as heard */
    ticket *tickets;    /* every request on its way */
    bool orphans;       /* a request got no ticket (out of memory): answer it locally */
    cs_map peers;       /* node id → peer: alive at the last heartbeat */
    bool peers_known;   /* a heartbeat was answered: `peers` holds the nodes */
    int64_t started_ms;
    char why[256];
} rbus;

/* A node alive at the last heartbeat, and how many loops it runs (commands check both). */
typedef struct peer {
    uint32_t loops;
    char id[];
} peer;

/* ---- Lua scripts: one round trip, atomic ---- */

/* ARGV: prefix, me, ttl, url, run, loops, calls, streams, monitors, started, seen, loop.
 * → {fresh (this loop was not in `loops:<me>`: its entries must be rewritten), lost nodes
 *    ({id, url, run, loops, started, seen, sid, loop, summary, ...}), alive {id, loops, ...}}.
 * A node reaps others only if its own previous beat is still alive: when it was silent too
 * (the server stalled, or its link), their silence proves nothing, and it waits a beat. */
static const char beat_lua[] =
    "local p, me, ttl = ARGV[1], ARGV[2], ARGV[3]\n"
    "local was = redis.call('EXISTS', p..'alive:'..me)\n"
    "redis.call('HSET', p..'node:'..me, 'url', ARGV[4], 'run', ARGV[5], 'loops', ARGV[6],\n"
    "  'calls', ARGV[7], 'streams', ARGV[8], 'monitors', ARGV[9], 'started', ARGV[10],\n"
    "  'seen', ARGV[11])\n"
    "redis.call('SET', p..'alive:'..me, ARGV[5], 'PX', ttl)\n"
    "redis.call('SADD', p..'nodes', me)\n"
    "local fresh = redis.call('SADD', p..'loops:'..me, ARGV[12])\n"
    "local lost, alive = {}, {}\n"
    "for _, id in ipairs(redis.call('SMEMBERS', p..'nodes')) do\n"
    "  if redis.call('EXISTS', p..'alive:'..id) == 1 then\n"
    "    table.insert(alive, id)\n"
    "    table.insert(alive, redis.call('HGET', p..'node:'..id, 'loops') or '0')\n"
    "  elseif was == 1 then\n"
    "    local n = redis.call('HMGET', p..'node:'..id, 'url', 'run', 'loops', 'started', 'seen')\n"
    "    local out = {id, n[1] or '', n[2] or '', n[3] or '0', n[4] or '0', n[5] or '0'}\n"
    "    for _, loop in ipairs(redis.call('SMEMBERS', p..'loops:'..id)) do\n"
    "      for _, sid in ipairs(redis.call('SMEMBERS', p..'nc:'..id..'/'..loop)) do\n"
    "        local c = redis.call('HMGET', p..'call:'..sid, 'node', 'loop', 'summary')\n"
    "        if c[1] == id then\n"
    "          table.insert(out, sid); table.insert(out, c[2] or '0');\n"
    "          table.insert(out, c[3] or '{}')\n"
    "          redis.call('DEL', p..'call:'..sid, p..'ev:'..sid)\n"
    "        end\n"
    "      end\n"
    "      redis.call('DEL', p..'nc:'..id..'/'..loop)\n"
    "    end\n"
    "    redis.call('DEL', p..'loops:'..id, p..'node:'..id)\n"
    "    redis.call('SREM', p..'nodes', id)\n"
    "    table.insert(lost, out)\n"
    "  end\n"
    "end\n"
    "return {fresh, lost, alive}\n";

/* ARGV: prefix, origin ("node/loop"), node: the calls this loop listed before (an earlier
 * run's, or ones that ended while the server was away) are forgotten, unless another node
 * holds them now; then the loop's set is empty, for its own calls to be written again. */
static const char forget_lua[] =
    "local p, origin, me = ARGV[1], ARGV[2], ARGV[3]\n"
    "for _, sid in ipairs(redis.call('SMEMBERS', p..'nc:'..origin)) do\n"
    "  if redis.call('HGET', p..'call:'..sid, 'node') == me then\n"
    "    redis.call('DEL', p..'call:'..sid, p..'ev:'..sid)\n"
    "  end\n"
    "end\n"
    "redis.call('DEL', p..'nc:'..origin)\n"
    "return 0\n";

/* ARGV: prefix, max → {sid, node, loop, summary, ...} of every call of every node. */
static const char list_lua[] =
    "local p, max, out = ARGV[1], tonumber(ARGV[2]), {}\n"
    "for _, id in ipairs(redis.call('SMEMBERS', p..'nodes')) do\n"
    "  for _, loop in ipairs(redis.call('SMEMBERS', p..'loops:'..id)) do\n"
    "    for _, sid in ipairs(redis.call('SMEMBERS', p..'nc:'..id..'/'..loop)) do\n"
    "      if #out >= max * 4 then return out end\n"
    "      local c = redis.call('HMGET', p..'call:'..sid, 'node', 'loop', 'summary')\n"
    "      if c[1] then\n"
    "        table.insert(out, sid); table.insert(out, c[1]); table.insert(out, c[2] or '0')\n"
    "        table.insert(out, c[3] or '{}')\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "end\n"
    "return out\n";

/* ARGV: prefix, sid → {} or {node, loop, summary, {events}}. */
static const char get_lua[] =
    "local p, sid = ARGV[1], ARGV[2]\n"
    "local c = redis.call('HMGET', p..'call:'..sid, 'node', 'loop', 'summary')\n"
    "if not c[1] then return {} end\n"
    "return {c[1], c[2] or '0', c[3] or '{}', redis.call('LRANGE', p..'ev:'..sid, 0, -1)}\n";

/* ARGV: prefix → {{id, url, run, loops, calls, streams, monitors, started, seen}, ...}. */
static const char nodes_lua[] =
    "local p, out = ARGV[1], {}\n"
    "for _, id in ipairs(redis.call('SMEMBERS', p..'nodes')) do\n"
    "  if redis.call('EXISTS', p..'alive:'..id) == 1 then\n"
    "    local n = redis.call('HMGET', p..'node:'..id, 'url', 'run', 'loops', 'calls',\n"
    "      'streams', 'monitors', 'started', 'seen')\n"
    "    local row = {id}\n"
    "    for i = 1, 8 do row[i + 1] = n[i] or '' end\n"
    "    table.insert(out, row)\n"
    "  end\n"
    "end\n"
    "return out\n";

/* ---- helpers ---- */

static rbus *R(const cs_bus *b)
{
    return b->impl;
}

/* A key or channel name: prefix, kind, name. */
static const char *key(char *out, size_t cap, const char *kind, const char *name)
{
    snprintf(out, cap, CS_REDIS_PREFIX "%s%s", kind, name);
    return out;
}
#define KEY_MAX (sizeof CS_REDIS_PREFIX + 8 + CS_BUS_URL_MAX)

static const char *reply_str(const redisReply *rep)
{
    return rep && (rep->type == REDIS_REPLY_STRING || rep->type == REDIS_REPLY_STATUS) ? rep->str
                                                                                       : "";
}

static bool is_str(const redisReply *rep)
{
    return rep->type == REDIS_REPLY_STRING;
}

static long long reply_ll(const redisReply *rep)
{
    if (!rep) return 0;
    if (rep->type == REDIS_REPLY_INTEGER) return rep->integer;
    if (rep->type == REDIS_REPLY_STRING) return strtoll(rep->str, NULL, 10);
    return 0;
}

static void copy_str(char *dst, size_t cap, const redisReply *rep)
{
    snprintf(dst, cap, "%s", reply_str(rep));
}

/* The connection `ac` belongs to a live attempt (not one being torn down). */
static rbus *attached(const redisAsyncContext *ac)
{
    return ac ? ac->data : NULL;
}

static void fail(rbus *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A command on the command connection, counted in flight until its reply. 0, or -1 (not
 * sent: the connection is away or full; `force` ignores the cap). */
static int send_argv(rbus *r, redisCallbackFn *fn, void *priv, int argc, const char **argv,
                     const size_t *lens, bool force)
{
    if (r->state != R_UP || !r->cmd) return -1;
    if (!force && r->inflight >= CS_REDIS_INFLIGHT) return -1;
    if (redisAsyncCommandArgv(r->cmd, fn, priv, argc, argv, lens) != REDIS_OK) return -1;
    r->inflight++;
    return 0;
}

/* Its reply counted, unless it comes from a torn-down connection (counts restart there). */
static void done_one(redisAsyncContext *ac)
{
    rbus *r = attached(ac);
    if (r && r->inflight) r->inflight--;
}

static void on_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)priv;
    done_one(ac);
    const redisReply *rep = reply;
    rbus *r = attached(ac);
    if (r && rep && rep->type == REDIS_REPLY_ERROR) cs_warn("bus: redis: %s", rep->str);
}

static int send_cmd(rbus *r, bool force, int argc, const char **argv, const size_t *lens)
{
    return send_argv(r, on_reply, NULL, argc, argv, lens, force);
}

/* Rewrites this node's calls in Redis from the local copy (after an outage, a FLUSHALL, or
 * when declared lost): what the cluster sees heals. */
static void rewrite_own(rbus *r);

/* ---- connection ---- */

static void teardown(rbus *r)
{
    if (r->resolving) { /* its answer is for an attempt that is over */
        r->resolving->r = NULL;
        uv_cancel((uv_req_t *)&r->resolving->req);
        r->resolving = NULL;
    }
    redisAsyncContext *acs[2] = {r->cmd, r->sub};
    r->cmd = r->sub = NULL;
    r->cmd_ready = r->sub_ready = r->in_ready = r->beating = false;
    r->inflight = 0; /* and the counts asked for will not come: ask again when back */
    void *v;
    for (size_t pos = 0; cs_map_next(&r->interest, &pos, NULL, &v);)
        ((interest *)v)->asking = false;
    for (int i = 0; i < 2; i++) {
        if (!acs[i]) continue;
        acs[i]->data = NULL; /* its callbacks, run now with no reply, see it detached */
        redisAsyncFree(acs[i]);
    }
}

static void start_connect(rbus *r);

static void on_retry(uv_timer_t *t)
{
    start_connect(t->data);
}

static void fail(rbus *r, const char *fmt, ...)
{
    if (r->state == R_DOWN || r->state == R_CLOSED) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->why, sizeof r->why, fmt, ap);
    va_end(ap);
    bool was_up = r->state == R_UP;
    r->state = R_DOWN;
    teardown(r);
    uv_timer_stop(&r->beat);
    uint32_t ms = cs_backoff_ms(++r->attempt, CS_REDIS_RETRY_MIN, CS_REDIS_RETRY_MAX);
    uv_timer_start(&r->retry, on_retry, ms, 0);
    if (was_up || !r->told_down) {
        r->told_down = true;
        cs_warn("bus: redis %s:%d: %s (retrying in %u ms)", r->host, r->port, r->why, ms);
        cs_bus__health(r->b, false, r->why);
    }
}

static void on_connect_timeout(uv_timer_t *t)
{
    rbus *r = t->data;
    if (r->state == R_CONNECTING || r->state == R_RESOLVING) fail(r, "timed out connecting");
}

static void subscribe_topic(rbus *r, const char *topic);
static void read_channels(rbus *r);
static void beat(rbus *r);

static void on_beat_timer(uv_timer_t *t)
{
    beat(t->data);
}

static void go_up(rbus *r)
{
    r->state = R_UP;
    r->attempt = 0;
    uv_timer_stop(&r->retry);
    if (r->ever_up) r->b->stats.reconnects++;
    r->ever_up = true;
    r->told_down = false;
    r->rewrite = true;
    cs_info("bus: redis %s:%d: connected", r->host, r->port);
    /* Every topic with subscribers here, again (a restarted server has none). */
    cs_str k;
    for (size_t pos = 0; cs_map_next(&r->b->topics, &pos, &k, NULL);) {
        char topic[CS_BUS_TOPIC_MAX + 1];
        if (k.n > CS_BUS_TOPIC_MAX) continue;
        memcpy(topic, k.p, k.n);
        topic[k.n] = '\0';
        subscribe_topic(r, topic);
    }
    read_channels(r);
    beat(r);
    uv_timer_start(&r->beat, on_beat_timer, r->b->cfg.heartbeat_ms, r->b->cfg.heartbeat_ms);
    cs_bus__health(r->b, true, NULL);
}

/* Handshake replies (AUTH, SELECT, then PING): an error ends the attempt. */
static void on_hello(redisAsyncContext *ac, void *reply, void *priv)
{
    rbus *r = attached(ac);
    if (!r) return;
    const redisReply *rep = reply;
    const char *what = priv;
    if (!rep) return; /* the disconnect says why */
    if (rep->type == REDIS_REPLY_ERROR) {
        fail(r, "%s: %s", what, rep->str);
        return;
    }
    if (strcmp(what, "PING")) return;
    if (ac == r->cmd) r->cmd_ready = true;
    if (ac == r->sub) r->sub_ready = true;
    if (r->cmd_ready && r->sub_ready && r->state == R_CONNECTING) go_up(r);
}

static void on_sub_message(redisAsyncContext *ac, void *reply, void *priv);

/* Arrays past CS_REDIS_ELEMENTS_MAX are refused before hiredis allocates them: its reader
 * then fails as out of memory, which says why (`refused`: this thread's last refusal). */
static redisReplyObjectFunctions library_fn, guarded_fn;
static pthread_once_t guarded_once = PTHREAD_ONCE_INIT;
static _Thread_local int refused;

static void *create_array(const redisReadTask *task, int elements)
{
    if (elements < 0 || (unsigned)elements > CS_REDIS_ELEMENTS_MAX) {
        refused = elements;
        return NULL;
    }
    return library_fn.createArray(task, elements);
}

static void guard_init(void)
{
    redisReader *rd = redisReaderCreate(); /* the library's own functions */
    if (!rd) abort();
    library_fn = *rd->fn;
    redisReaderFree(rd);
    guarded_fn = library_fn;
    guarded_fn.createArray = create_array;
}

static void on_guard(uv_check_t *h)
{
    rbus *r = h->data;
    redisAsyncContext *acs[2] = {r->cmd, r->sub};
    for (int i = 0; i < 2 && r->state != R_DOWN; i++)
        if (acs[i] && acs[i]->c.reader && acs[i]->c.reader->len > CS_REDIS_REPLY_MAX)
            fail(r, "a reply of more than %u bytes: refused", CS_REDIS_REPLY_MAX);
}

static void on_connected(const redisAsyncContext *ac, int status)
{
    rbus *r = attached(ac);
    if (!r || status == REDIS_OK) return;
    /* hiredis frees `ac` after this returns */
    if (ac == r->cmd) r->cmd = NULL;
    if (ac == r->sub) r->sub = NULL;
    ((redisAsyncContext *)ac)->data = NULL;
    fail(r, "%s", ac->errstr[0] ? ac->errstr : "cannot connect");
}

static void on_disconnected(const redisAsyncContext *ac, int status)
{
    (void)status;
    rbus *r = attached(ac);
    if (!r) return;
    if (ac == r->cmd) r->cmd = NULL;
    if (ac == r->sub) r->sub = NULL;
    ((redisAsyncContext *)ac)->data = NULL;
    if (ac->err == REDIS_ERR_OOM && refused) {
        fail(r, "a reply of %d elements: refused (at most %u)", refused, CS_REDIS_ELEMENTS_MAX);
        refused = 0;
        return;
    }
    fail(r, "%s", ac->err && ac->errstr[0] ? ac->errstr : "connection closed");
}

static redisAsyncContext *open_conn(rbus *r, const char *ip, bool subscriber)
{
    redisAsyncContext *ac = redisAsyncConnect(ip, r->port);
    if (!ac) {
        fail(r, "out of memory");
        return NULL;
    }
    if (ac->err || redisLibuvAttach(ac, r->b->cfg.loop) != REDIS_OK) {
        char why[256];
        snprintf(why, sizeof why, "%s", ac->err ? ac->errstr : "cannot watch its socket");
        redisAsyncFree(ac);
        fail(r, "%s", why);
        return NULL;
    }
    ac->data = r;
    pthread_once(&guarded_once, guard_init);
    ac->c.reader->fn = &guarded_fn;
    redisAsyncSetConnectCallback(ac, on_connected);
    redisAsyncSetDisconnectCallback(ac, on_disconnected);
    /* Queued now, sent once connected. */
    if (r->pass[0]) {
        if (r->user[0])
            redisAsyncCommand(ac, on_hello, "AUTH", "AUTH %s %s", r->user, r->pass);
        else
            redisAsyncCommand(ac, on_hello, "AUTH", "AUTH %s", r->pass);
    }
    if (!subscriber && r->db) redisAsyncCommand(ac, on_hello, "SELECT", "SELECT %d", r->db);
    redisAsyncCommand(ac, on_hello, "PING", "PING");
    if (subscriber) {
        char ch[KEY_MAX], in[KEY_MAX];
        redisAsyncCommand(ac, on_sub_message, NULL, "SUBSCRIBE %s %s",
                          key(ch, sizeof ch, "cmd:", r->b->origin), key(in, sizeof in, "in", ""));
    }
    return ac;
}

static void connect_to(rbus *r, const char *ip)
{
    r->state = R_CONNECTING;
    r->cmd = open_conn(r, ip, false);
    if (!r->cmd) return;
    r->sub = open_conn(r, ip, true);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    resolve *rv = (resolve *)req;
    rbus *r = rv->r;
    char ip[64] = "";
    if (status == 0 && res) {
        if (res->ai_family == AF_INET6)
            uv_ip6_name((const struct sockaddr_in6 *)res->ai_addr, ip, sizeof ip);
        else
            uv_ip4_name((const struct sockaddr_in *)res->ai_addr, ip, sizeof ip);
    }
    uv_freeaddrinfo(res);
    free(rv);
    if (!r) return; /* closed meanwhile */
    r->resolving = NULL;
    if (r->state != R_RESOLVING) return;
    if (status < 0)
        fail(r, "cannot resolve %s: %s", r->host, uv_strerror(status));
    else
        connect_to(r, ip);
}

static void start_connect(rbus *r)
{
    if (r->state != R_DOWN) return;
    r->state = R_RESOLVING;
    uv_timer_start(&r->retry, on_connect_timeout, CS_REDIS_CONNECT_MS, 0);
    unsigned char addr[16];
    if (uv_inet_pton(AF_INET, r->host, addr) == 0 || uv_inet_pton(AF_INET6, r->host, addr) == 0) {
        connect_to(r, r->host);
        return;
    }
    /* hiredis would call getaddrinfo on the loop: resolve on libuv's threads instead */
    resolve *rv = calloc(1, sizeof *rv);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    int rc = rv ? uv_getaddrinfo(r->b->cfg.loop, &rv->req, on_resolved, r->host, NULL, &hints)
                : UV_ENOMEM;
    if (rc < 0) {
        free(rv);
        fail(r, "cannot resolve %s: %s", r->host, uv_strerror(rc));
        return;
    }
    rv->r = r;
    r->resolving = rv;
}

/* ---- topics ---- */

static void on_announced(rbus *r, const char *topic, size_t n);
static void read_channels(rbus *r);

static void on_sub_message(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)priv;
    rbus *r = attached(ac);
    const redisReply *rep = reply;
    if (!r || !rep) return;
    cs_bus *b = r->b;
    if (rep->type == REDIS_REPLY_ERROR) {
        fail(r, "SUBSCRIBE: %s", rep->str);
        return;
    }
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 3 ||
        rep->element[0]->type != REDIS_REPLY_STRING || rep->element[1]->type != REDIS_REPLY_STRING)
        return;
    const char *kind = rep->element[0]->str, *ch = rep->element[1]->str;
    const redisReply *body = rep->element[2];
    size_t plen = sizeof CS_REDIS_PREFIX - 1;
    if (strncmp(ch, CS_REDIS_PREFIX, plen)) return;
    ch += plen;
    bool sub = !strcmp(kind, "subscribe");
    if (sub && !strcmp(ch, "in")) {
        r->in_ready = true;
        read_channels(r);
        return;
    }
    if (sub || !strcmp(kind, "unsubscribe")) {
        /* Publishers elsewhere learn it at once (see `elsewhere`): "<node> +topic|-topic". */
        if (!strncmp(ch, "t:", 2)) {
            char in[KEY_MAX], what[sizeof b->origin + 2 + CS_BUS_TOPIC_MAX];
            snprintf(what, sizeof what, "%s %c%s", b->origin, sub ? '+' : '-', ch + 2);
            const char *argv[] = {"PUBLISH", key(in, sizeof in, "in", ""), what};
            send_cmd(r, true, 3, argv, NULL);
        }
        return;
    }
    if (strcmp(kind, "message")) return;
    if (body->type != REDIS_REPLY_STRING) {
        b->stats.bad++;
        return;
    }
    if (!strncmp(ch, "t:", 2)) {
        cs_bus__arrived(b, ch + 2, (const uint8_t *)body->str, body->len);
    } else if (!strcmp(ch, "in")) {
        on_announced(r, body->str, body->len);
    } else if (!strncmp(ch, "cmd:", 4)) {
        /* "<from: node/loop> <json>" */
        const char *sp = memchr(body->str, ' ', body->len);
        char from[sizeof b->origin];
        if (!sp || sp == body->str || (size_t)(sp - body->str) >= sizeof from) {
            b->stats.bad++;
            return;
        }
        memcpy(from, body->str, (size_t)(sp - body->str));
        from[sp - body->str] = '\0';
        b->stats.commands_in++;
        if (b->cfg.on_command)
            b->cfg.on_command(b->cfg.data, from, sp + 1, body->len - (size_t)(sp + 1 - body->str));
    }
}

static void subscribe_topic(rbus *r, const char *topic)
{
    if (r->state != R_UP || !r->sub) return;
    char ch[KEY_MAX];
    redisAsyncCommand(r->sub, on_sub_message, NULL, "SUBSCRIBE %s",
                      key(ch, sizeof ch, "t:", topic));
}

static void r_topic_on(cs_bus *b, const char *topic)
{
    subscribe_topic(R(b), topic);
}

static void r_topic_off(cs_bus *b, const char *topic)
{
    rbus *r = R(b);
    if (r->state != R_UP || !r->sub) return;
    char ch[KEY_MAX];
    redisAsyncCommand(r->sub, on_sub_message, NULL, "UNSUBSCRIBE %s",
                      key(ch, sizeof ch, "t:", topic));
}

/* `elsewhere`: every frame of every call asks, so it is answered from a cache of the
 * topics subscribed on other nodes: per topic, their number of subscribers (PUBSUB NUMSUB
 * minus this node's own). The cache knows every such topic: a node that subscribes or
 * leaves announces it on `in` (publishers start at once, or count again), and on connecting
 * a node reads the channels subscribed so far (PUBSUB CHANNELS). A topic published here is
 * counted again every CS_REDIS_INTEREST_MS, one batch for all; the others every
 * CS_REDIS_INTEREST_IDLE_MS, and forgotten once nobody listens. A topic not in the cache
 * has no listener elsewhere: its audio never reaches Redis. */
static interest *interest_add(rbus *r, const char *topic, size_t n)
{
    interest *e = cs_map_get(&r->interest, (cs_str){topic, n});
    if (e || n == 0 || n > CS_BUS_TOPIC_MAX) return e;
    if (r->interest.len >= CS_REDIS_INTEREST_MAX || !(e = calloc(1, sizeof *e))) {
        r->interest_full = true; /* some topics are not known: every one counts as heard */
        return NULL;
    }
    memcpy(e->topic, topic, n);
    e->others = -1;
    if (cs_map_put(&r->interest, (cs_str){e->topic, n}, e) < 0) {
        free(e);
        r->interest_full = true;
        return NULL;
    }
    return e;
}

static void on_numsub(redisAsyncContext *ac, void *reply, void *priv)
{
    done_one(ac);
    rbus *r = attached(ac);
    unsigned *gens = priv; /* gens[0]: how many; then each topic's gen when asked */
    const redisReply *rep = reply;
    const size_t skip = strlen(CS_REDIS_PREFIX "t:");
    for (size_t i = 0; r && rep && rep->type == REDIS_REPLY_ARRAY && i + 1 < rep->elements;
         i += 2) {
        const redisReply *ch = rep->element[i];
        if (!is_str(ch) || ch->len < skip) continue;
        cs_str topic = {ch->str + skip, ch->len - skip};
        interest *e = cs_map_get(&r->interest, topic);
        if (!e) continue;
        e->asking = false;
        e->checked_ms = uv_now(r->b->cfg.loop);
        if (i / 2 < gens[0] && e->gen != gens[1 + i / 2]) continue; /* announced since */
        long long subs = reply_ll(rep->element[i + 1]);
        if (cs_map_get(&r->b->topics, topic)) subs--; /* ours */
        e->others = subs > 0 ? (int)subs : 0;
    }
    free(gens);
}

/* One PUBSUB NUMSUB for up to CS_REDIS_NUMSUB_BATCH topics. */
static void ask_numsub(rbus *r, interest **es, size_t n)
{
    if (!n) return;
    const char **argv = malloc((n + 2) * sizeof *argv);
    char(*chans)[KEY_MAX] = malloc(n * sizeof *chans);
    unsigned *gens = malloc((n + 1) * sizeof *gens);
    if (!argv || !chans || !gens) goto out;
    argv[0] = "PUBSUB";
    argv[1] = "NUMSUB";
    gens[0] = (unsigned)n;
    for (size_t i = 0; i < n; i++) {
        argv[i + 2] = key(chans[i], sizeof chans[i], "t:", es[i]->topic);
        gens[i + 1] = es[i]->gen;
    }
    if (send_argv(r, on_numsub, gens, (int)n + 2, argv, NULL, false) == 0) {
        for (size_t i = 0; i < n; i++) es[i]->asking = true;
        gens = NULL; /* the reply's */
    }
out:
    free(argv);
    free(chans);
    free(gens);
}

/* The channels subscribed anywhere when this node connected (the `in` channel was already
 * ours: what comes after is announced). */
static void on_channels(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)priv;
    done_one(ac);
    rbus *r = attached(ac);
    const redisReply *rep = reply;
    if (!r || !rep || rep->type != REDIS_REPLY_ARRAY) return;
    const size_t skip = strlen(CS_REDIS_PREFIX "t:");
    bool full = false;
    for (size_t i = 0; i < rep->elements; i++) {
        const redisReply *ch = rep->element[i];
        if (!is_str(ch) || ch->len <= skip) continue;
        if (!interest_add(r, ch->str + skip, ch->len - skip)) full = true;
    }
    r->interest_full = full; /* counted at the timer's next turn */
}

/* Once connected and subscribed to `in`. */
static void read_channels(rbus *r)
{
    if (r->state != R_UP || !r->in_ready) return;
    char pattern[KEY_MAX];
    const char *argv[] = {"PUBSUB", "CHANNELS", key(pattern, sizeof pattern, "t:", "*")};
    send_argv(r, on_channels, NULL, 3, argv, NULL, true);
}

static void on_interest_timer(uv_timer_t *t)
{
    rbus *r = t->data;
    uint64_t now = uv_now(r->b->cfg.loop);
    /* nobody listens elsewhere and nothing is published here: forget it (the map cannot
     * change while iterated) */
    interest **idle = malloc(r->interest.len * sizeof *idle + 1);
    size_t nidle = 0;
    void *v;
    for (size_t pos = 0; idle && cs_map_next(&r->interest, &pos, NULL, &v);) {
        interest *e = v;
        if (!e->others && !e->asking && now - e->asked_ms > CS_REDIS_INTEREST_IDLE_MS)
            idle[nidle++] = e;
    }
    for (size_t i = 0; i < nidle; i++) {
        cs_map_del(&r->interest, cs_str_of(idle[i]->topic));
        free(idle[i]);
    }
    free(idle);
    interest *batch[CS_REDIS_NUMSUB_BATCH];
    size_t n = 0;
    for (size_t pos = 0; cs_map_next(&r->interest, &pos, NULL, &v);) {
        interest *e = v;
        bool published = now - e->asked_ms <= CS_REDIS_INTEREST_MS;
        if (e->asking ||
            now - e->checked_ms < (published ? CS_REDIS_INTEREST_MS : CS_REDIS_INTEREST_IDLE_MS))
            continue;
        batch[n++] = e;
        if (n == CS_REDIS_NUMSUB_BATCH) {
            ask_numsub(r, batch, n);
            n = 0;
        }
    }
    ask_numsub(r, batch, n);
}

static bool r_elsewhere(cs_bus *b, const char *topic, size_t n)
{
    rbus *r = R(b);
    interest *e = cs_map_get(&r->interest, (cs_str){topic, n});
    if (!e) return r->interest_full;
    uint64_t now = uv_now(b->cfg.loop);
    /* published again after a pause: its count may be a slow refresh old (while it is
     * published, the timer counts it, in one batch with the others) */
    if (now - e->asked_ms > CS_REDIS_INTEREST_MS && now - e->checked_ms > CS_REDIS_INTEREST_MS &&
        !e->asking)
        ask_numsub(r, &e, 1);
    e->asked_ms = now;
    return e->others != 0;
}

/* "<origin> +<topic>" or "-<topic>": a loop (node/loop) subscribed to `topic`, or left it. */
static void on_announced(rbus *r, const char *what, size_t len)
{
    const char *sp = memchr(what, ' ', len);
    if (!sp || len - (size_t)(sp - what) < 3 || (sp[1] != '+' && sp[1] != '-')) {
        r->b->stats.bad++;
        return;
    }
    size_t id = (size_t)(sp - what);
    if (id == strlen(r->b->origin) && !memcmp(what, r->b->origin, id)) return; /* ours */
    const char *topic = sp + 2;
    size_t n = len - id - 2;
    if (sp[1] == '+') {
        interest *e = interest_add(r, topic, n);
        if (!e) return;
        e->gen++; /* a count asked before this is older than it */
        if (e->others < 1) e->others = 1;
        cs_bus__heard(r->b, topic, n); /* a node back after us: what we held, again */
        return;
    }
    interest *e = cs_map_get(&r->interest, (cs_str){topic, n});
    if (!e) return;
    e->gen++;
    if (!e->asking) ask_numsub(r, &e, 1); /* others may still listen: count them */
}

static void r_publish(cs_bus *b, const char *topic, const uint8_t *msg, size_t n)
{
    rbus *r = R(b);
    char ch[KEY_MAX];
    const char *argv[] = {"PUBLISH", key(ch, sizeof ch, "t:", topic), (const char *)msg};
    size_t lens[] = {7, strlen(ch), n};
    if (send_cmd(r, false, 3, argv, lens) < 0) b->stats.dropped++;
}

/* ---- the directory ---- */

static void r_dir_put(cs_bus *b, const char *sid, const char *summary, size_t n)
{
    rbus *r = R(b);
    char k[KEY_MAX], nc[KEY_MAX], loop[16];
    snprintf(loop, sizeof loop, "%u", b->cfg.loop_index);
    const char *hset[] = {
        "HSET", key(k, sizeof k, "call:", sid), "node", b->node, "loop", loop, "summary", summary};
    size_t hlens[] = {4, strlen(k), 4, strlen(b->node), 4, strlen(loop), 7, n};
    const char *sadd[] = {"SADD", key(nc, sizeof nc, "nc:", b->origin), sid};
    if (send_cmd(r, false, 8, hset, hlens) < 0 || send_cmd(r, false, 3, sadd, NULL) < 0)
        r->rewrite = true; /* the next heartbeat writes it all */
}

static void r_dir_event(cs_bus *b, const char *sid, const char *event, size_t n)
{
    rbus *r = R(b);
    char k[KEY_MAX], from[16];
    snprintf(from, sizeof from, "-%d", CS_BUS_HISTORY_MAX);
    const char *push[] = {"RPUSH", key(k, sizeof k, "ev:", sid), event};
    size_t plens[] = {5, strlen(k), n};
    const char *trim[] = {"LTRIM", k, from, "-1"};
    if (send_cmd(r, false, 3, push, plens) < 0 || send_cmd(r, false, 4, trim, NULL) < 0)
        r->rewrite = true;
}

static void r_dir_end(cs_bus *b, const char *sid)
{
    rbus *r = R(b);
    char k[KEY_MAX], ev[KEY_MAX], nc[KEY_MAX];
    const char *del[] = {"DEL", key(k, sizeof k, "call:", sid), key(ev, sizeof ev, "ev:", sid)};
    const char *srem[] = {"SREM", key(nc, sizeof nc, "nc:", b->origin), sid};
    if (send_cmd(r, true, 3, del, NULL) < 0 || send_cmd(r, true, 3, srem, NULL) < 0)
        r->rewrite = true;
}

/* One call of the local copy, rewritten: its hash, its events, its place in nc:<origin>. */
static void rewrite_call(rbus *r, const cs_bus_own *o)
{
    char k[KEY_MAX], ev[KEY_MAX];
    const char *del[] = {"DEL", key(k, sizeof k, "call:", o->sid),
                         key(ev, sizeof ev, "ev:", o->sid)};
    send_cmd(r, true, 3, del, NULL);
    if (o->summary) r_dir_put(r->b, o->sid, o->summary, o->summary_len);
    if (!o->n) return;
    const char **argv = malloc((o->n + 2) * sizeof *argv);
    size_t *lens = malloc((o->n + 2) * sizeof *lens);
    if (argv && lens) {
        argv[0] = "RPUSH";
        lens[0] = 5;
        argv[1] = ev;
        lens[1] = strlen(ev);
        for (size_t i = 0; i < o->n; i++) { /* the ring, oldest first */
            size_t at = (o->head + i) % CS_BUS_HISTORY_MAX;
            argv[i + 2] = o->events[at];
            lens[i + 2] = o->lens[at];
        }
        send_cmd(r, true, (int)o->n + 2, argv, lens);
    } else {
        r->rewrite = true;
    }
    free(argv);
    free(lens);
}

static void rewrite_own(rbus *r)
{
    if (r->state != R_UP) return;
    r->rewrite = false;
    const char *forget[] = {"EVAL", forget_lua, "0", CS_REDIS_PREFIX, r->b->origin, r->b->node};
    send_cmd(r, true, 6, forget, NULL);
    void *v;
    for (size_t pos = 0; cs_map_next(&r->b->own, &pos, NULL, &v);) rewrite_call(r, v);
}

/* ---- requests ---- */

static ticket *ticket_new(rbus *r, uint64_t seq)
{
    ticket *tk = calloc(1, sizeof *tk);
    if (!tk) return NULL;
    tk->r = r;
    tk->seq = seq;
    tk->next = r->tickets;
    if (r->tickets) r->tickets->prev = tk;
    r->tickets = tk;
    return tk;
}

static void ticket_drop(ticket *tk)
{
    rbus *r = tk->r;
    if (tk->prev)
        tk->prev->next = tk->next;
    else
        r->tickets = tk->next;
    if (tk->next) tk->next->prev = tk->prev;
    free(tk);
}

/* The pending request asked as `seq`, or NULL (cancelled, or answered). */
static cs_dir_req *pending(cs_bus *b, uint64_t seq)
{
    cs_dir_req *q = b->asked;
    while (q && q->seq != seq) q = q->next;
    return q;
}

static void answer_local(cs_bus *b, cs_dir_req *q)
{
    cs_bus__answer_local(b, q, true);
    cs_dir__answer(q);
}

/* Answers from this node's own entries what was asked before it started (what `done`
 * asks meanwhile waits for the next turn). */
static void on_answer_timer(uv_timer_t *t)
{
    rbus *r = t->data;
    cs_bus *b = r->b;
    uint64_t last = b->asked_seq;
    bool orphans = r->orphans;
    r->orphans = false;
    for (;;) {
        ticket *tk = r->tickets;
        while (tk && !(tk->local && tk->seq <= last)) tk = tk->next;
        cs_dir_req *q = NULL;
        if (tk) {
            q = pending(b, tk->seq);
            ticket_drop(tk);
            if (!q) continue;
        } else if (orphans) {
            for (q = b->asked; q && q->seq <= last; q = q->next) {
                for (tk = r->tickets; tk && tk->seq != q->seq; tk = tk->next) {
                }
                if (!tk) break;
            }
            if (!q || q->seq > last) break;
        } else {
            break;
        }
        answer_local(b, q);
    }
}

/* Answered on the loop's next turn from this node's own entries, marked partial. */
static void answer_later(rbus *r, ticket *tk)
{
    if (tk)
        tk->local = true;
    else
        r->orphans = true;
    uv_timer_start(&r->answer, on_answer_timer, 0, 0);
}

static void node_from(cs_bus_node *nd, const redisReply *const *f, bool full)
{
    /* id, url, run, loops, [calls, streams, monitors,] started, seen */
    memset(nd, 0, sizeof *nd);
    copy_str(nd->id, sizeof nd->id, f[0]);
    copy_str(nd->url, sizeof nd->url, f[1]);
    copy_str(nd->run, sizeof nd->run, f[2]);
    nd->loops = (uint32_t)reply_ll(f[3]);
    size_t i = 4;
    if (full) {
        nd->calls = (uint32_t)reply_ll(f[4]);
        nd->streams = (uint32_t)reply_ll(f[5]);
        nd->monitors = (uint32_t)reply_ll(f[6]);
        i = 7;
    }
    nd->started_ms = reply_ll(f[i]);
    nd->seen_ms = reply_ll(f[i + 1]);
}

/* A directory answer into `q`: arrays in its pool, strings viewing `rep` (valid while
 * `done` runs, from the reply's callback). 0, -ENOMEM or -EPROTO. */
static int parse_answer(cs_dir_req *q, const redisReply *rep, const char *self)
{
    if (rep->type != REDIS_REPLY_ARRAY) return -EPROTO;
    size_t n = rep->elements;
    if (q->what == CS_DIR_LIST) {
        if (!n) return 0;
        if (!(q->calls = cs_pool_alloc(&q->pool, (n / 4) * sizeof *q->calls))) return -ENOMEM;
        for (size_t i = 0; i + 3 < n; i += 4) {
            const redisReply *const *f = (const redisReply *const *)rep->element + i;
            if (!is_str(f[0]) || !is_str(f[3])) continue;
            cs_dir_call *c = &q->calls[q->ncalls++];
            copy_str(c->sid, sizeof c->sid, f[0]);
            copy_str(c->node, sizeof c->node, f[1]);
            c->loop = (uint32_t)reply_ll(f[2]);
            c->summary = f[3]->str;
            c->summary_len = f[3]->len;
        }
    } else if (q->what == CS_DIR_GET) {
        if (n == 0) return 0;
        if (n != 4 || !is_str(rep->element[2]) || rep->element[3]->type != REDIS_REPLY_ARRAY)
            return -EPROTO;
        const redisReply *evs = rep->element[3];
        q->calls = cs_pool_alloc(&q->pool, sizeof *q->calls);
        const char **texts = cs_pool_alloc(&q->pool, (evs->elements + 1) * sizeof *texts);
        size_t *lens = cs_pool_alloc(&q->pool, (evs->elements + 1) * sizeof *lens);
        if (!q->calls || !texts || !lens) return -ENOMEM;
        cs_dir_call *c = &q->calls[q->ncalls++];
        snprintf(c->sid, sizeof c->sid, "%s", q->sid);
        copy_str(c->node, sizeof c->node, rep->element[0]);
        c->loop = (uint32_t)reply_ll(rep->element[1]);
        c->summary = rep->element[2]->str;
        c->summary_len = rep->element[2]->len;
        for (size_t i = 0; i < evs->elements; i++) {
            if (!is_str(evs->element[i])) continue;
            texts[q->nevents] = evs->element[i]->str;
            lens[q->nevents++] = evs->element[i]->len;
        }
        q->events = texts;
        q->event_lens = lens;
    } else {
        if (!n) return 0;
        if (!(q->nodes = cs_pool_alloc(&q->pool, n * sizeof *q->nodes))) return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
            const redisReply *row = rep->element[i];
            if (row->type != REDIS_REPLY_ARRAY || row->elements != 9) continue;
            cs_bus_node *nd = &q->nodes[q->nnodes++];
            node_from(nd, (const redisReply *const *)row->element, true);
            nd->self = !strcmp(nd->id, self);
        }
    }
    return 0;
}

static void on_dir_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    done_one(ac);
    ticket *tk = priv;
    rbus *r = tk->r;
    cs_dir_req *q = r->state == R_CLOSED ? NULL : pending(r->b, tk->seq);
    ticket_drop(tk);
    const redisReply *rep = reply;
    if (!q) return;
    if (!attached(ac) || !rep || rep->type == REDIS_REPLY_ERROR) {
        /* the server went away meanwhile, or refused: what this node knows */
        if (rep && rep->type == REDIS_REPLY_ERROR) cs_warn("bus: redis: %s", rep->str);
        answer_local(r->b, q);
        return;
    }
    q->rc = parse_answer(q, rep, r->b->node);
    if (q->rc < 0) {
        q->ncalls = q->nevents = q->nnodes = 0;
        cs_warn("bus: redis: a directory answer could not be read: %s", cs_strerror(q->rc));
    }
    cs_dir__answer(q);
}

static void r_ask(cs_bus *b, cs_dir_req *q)
{
    rbus *r = R(b);
    ticket *tk = ticket_new(r, q->seq);
    if (!tk || r->state != R_UP) {
        answer_later(r, tk);
        return;
    }
    char max[16];
    snprintf(max, sizeof max, "%d", CS_REDIS_LIST_MAX);
    const char *argv[6] = {"EVAL", NULL, "0", CS_REDIS_PREFIX, NULL};
    int argc = 5;
    switch (q->what) {
    case CS_DIR_LIST:
        argv[1] = list_lua;
        argv[4] = max;
        break;
    case CS_DIR_GET:
        argv[1] = get_lua;
        argv[4] = q->sid;
        break;
    default:
        argv[1] = nodes_lua;
        argc = 4;
        break;
    }
    if (send_argv(r, on_dir_reply, tk, argc, argv, NULL, false) < 0) answer_later(r, tk);
}

/* ---- nodes ---- */

static void set_peers(rbus *r, const redisReply *alive)
{
    void *v;
    for (size_t pos = 0; cs_map_next(&r->peers, &pos, NULL, &v);) free(v);
    cs_map_free(&r->peers);
    r->peers = (cs_map)CS_MAP_INIT;
    for (size_t i = 0; i + 1 < alive->elements && r->peers.len < CS_REDIS_PEERS_MAX; i += 2) {
        const redisReply *id = alive->element[i];
        if (!is_str(id) || id->len > CS_BUS_NODE_MAX) continue;
        peer *p = malloc(sizeof *p + id->len + 1);
        if (!p) continue;
        memcpy(p->id, id->str, id->len + 1);
        p->loops = (uint32_t)reply_ll(alive->element[i + 1]);
        if (cs_map_put(&r->peers, (cs_str){p->id, id->len}, p) < 0) free(p);
    }
    r->peers_known = true;
}

/* A node this one reaped: {id, url, run, loops, started, seen, (sid, loop, summary)*}. */
static void tell_lost(rbus *r, const redisReply *row)
{
    cs_bus *b = r->b;
    if (row->type != REDIS_REPLY_ARRAY || row->elements < 6) return;
    cs_bus_node nd;
    node_from(&nd, (const redisReply *const *)row->element, false);
    size_t n = (row->elements - 6) / 3;
    cs_dir_call *calls = calloc(n + 1, sizeof *calls);
    if (!calls) n = 0;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const redisReply *const *f = (const redisReply *const *)row->element + 6 + 3 * i;
        if (!is_str(f[0]) || !is_str(f[2])) continue;
        cs_dir_call *c = &calls[k++];
        copy_str(c->sid, sizeof c->sid, f[0]);
        snprintf(c->node, sizeof c->node, "%s", nd.id);
        c->loop = (uint32_t)reply_ll(f[1]);
        c->summary = f[2]->str;
        c->summary_len = f[2]->len;
    }
    b->stats.nodes_lost++;
    cs_warn("bus: node %s lost (silent past %u ms): %zu calls", nd.id, b->cfg.node_ttl_ms, k);
    if (b->cfg.on_node_lost) b->cfg.on_node_lost(b->cfg.data, &nd, calls, k);
    free(calls);
}

static void on_beat(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)priv;
    done_one(ac);
    rbus *r = attached(ac);
    const redisReply *rep = reply;
    if (r) r->beating = false;
    if (!r || !rep) return;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 3 ||
        rep->element[1]->type != REDIS_REPLY_ARRAY || rep->element[2]->type != REDIS_REPLY_ARRAY) {
        cs_warn("bus: redis: heartbeat: %s",
                rep->type == REDIS_REPLY_ERROR ? rep->str : "bad reply");
        return;
    }
    set_peers(r, rep->element[2]);
    /* Not among the node's loops: its first beat, a server that lost its data, or the node
     * declared lost meanwhile. */
    if (reply_ll(rep->element[0]) == 1) r->rewrite = true;
    if (r->rewrite) rewrite_own(r);
    const redisReply *lost = rep->element[1];
    for (size_t i = 0; i < lost->elements && r->state == R_UP; i++) tell_lost(r, lost->element[i]);
}

static void beat(rbus *r)
{
    cs_bus *b = r->b;
    if (r->state != R_UP || r->beating) return;
    cs_bus_node self;
    cs_bus__self(b, &self);
    self.started_ms = r->started_ms;
    char ttl[16], loops[16], calls[16], streams[16], monitors[16], st[24], seen[24], loop[16];
    snprintf(ttl, sizeof ttl, "%u", b->cfg.node_ttl_ms);
    snprintf(loops, sizeof loops, "%u", self.loops);
    snprintf(calls, sizeof calls, "%u", self.calls);
    snprintf(streams, sizeof streams, "%u", self.streams);
    snprintf(monitors, sizeof monitors, "%u", self.monitors);
    snprintf(st, sizeof st, "%lld", (long long)self.started_ms);
    snprintf(seen, sizeof seen, "%lld", (long long)self.seen_ms);
    snprintf(loop, sizeof loop, "%u", b->cfg.loop_index);
    const char *argv[] = {"EVAL",   beat_lua, "0",   CS_REDIS_PREFIX, self.id, ttl,
                          self.url, self.run, loops, calls,           streams, monitors,
                          st,       seen,     loop};
    r->beating = send_argv(r, on_beat, NULL, 15, argv, NULL, true) == 0;
}

static int r_command(cs_bus *b, const char *node, uint32_t loop, const char *json, size_t n)
{
    rbus *r = R(b);
    if (r->state != R_UP) return CS_EBACKEND;
    /* Published to a channel nobody reads, it would be lost without a word: refused. Until
     * the first heartbeat is answered the other nodes are not known (not refused as absent:
     * the server is not ready for them yet). */
    if (!strcmp(node, b->node)) {
        if (loop >= (b->cfg.loops ? b->cfg.loops : 1)) return CS_ENOTFOUND;
    } else {
        const peer *p = cs_map_get(&r->peers, cs_str_of(node));
        if (!p && !r->peers_known) return CS_EBACKEND;
        if (!p || loop >= p->loops) return CS_ENOTFOUND;
    }
    cs_buf msg = CS_BUF_INIT(sizeof b->origin + 1 + CS_BUS_MSG_MAX);
    char ch[KEY_MAX], to[sizeof b->origin];
    snprintf(to, sizeof to, "%s/%u", node, (unsigned)loop);
    int rc = cs_buf_printf(&msg, "%s ", b->origin);
    if (rc >= 0) rc = cs_buf_append(&msg, json, n);
    if (rc >= 0) {
        const char *argv[] = {"PUBLISH", key(ch, sizeof ch, "cmd:", to), msg.data};
        size_t lens[] = {7, strlen(ch), msg.len};
        rc = send_cmd(r, false, 3, argv, lens) < 0 ? CS_EFULL : 0;
    }
    cs_buf_free(&msg);
    return rc;
}

static bool r_ready(const cs_bus *b)
{
    return R(b)->state == R_UP;
}

/* ---- open, close ---- */

/* redis://[[user]:password@]host[:port][/db] → r (net/url.h parses it; the user and the
 * password are percent-decoded). 0, or -1 with a message in `err`. */
static int parse_url(rbus *r, const char *url, cs_buf *err)
{
    cs_url u;
    /* never echoed: it may hold the password */
    if (cs_url_parse(&u, url) < 0 || strcmp(u.scheme, "redis") || u.query[0]) {
        cs_buf_printf(err, "REDIS_URL: want redis://[[user]:password@]host[:port][/db] (no TLS)");
        return -1;
    }
    int rc = !u.userinfo[0]             ? 0
             : !strchr(u.userinfo, ':') ? -1
                                        : cs_url_credentials(&u, r->user, r->pass, sizeof r->pass);
    if (rc == -1) {
        cs_buf_printf(err, "REDIS_URL: credentials are [user]:password@");
        return -1;
    }
    if (rc == CS_ELIMIT) {
        cs_buf_printf(err, "REDIS_URL: the user or the password is longer than %zu bytes",
                      sizeof r->pass - 1);
        return -1;
    }
    if (rc < 0) {
        cs_buf_printf(err, "REDIS_URL: the user or the password has a malformed percent-escape "
                           "(%%XX, not %%00; a %% itself is written %%25)");
        return -1;
    }
    snprintf(r->host, sizeof r->host, "%s", u.host);
    r->port = u.port;
    if (strcmp(u.path, "/") != 0) {
        char *e;
        long v = strtol(u.path + 1, &e, 10);
        if (*e || e == u.path + 1 || v < 0 || v > 1000000) {
            cs_buf_printf(err, "REDIS_URL: the database is a number (/0 … /1000000), not %.64s",
                          u.path);
            return -1;
        }
        r->db = (int)v;
    }
    return 0;
}

static int r_open(cs_bus *b, cs_buf *err)
{
    rbus *r = calloc(1, sizeof *r);
    if (!r) return -ENOMEM;
    r->b = b;
    if (parse_url(r, b->url, err) < 0) {
        free(r);
        return CS_ECONFIG;
    }
    /* a heartbeat late by a beat must not make the node lost */
    if (!b->cfg.heartbeat_ms || b->cfg.node_ttl_ms / 2 < b->cfg.heartbeat_ms) {
        cs_buf_printf(err, "NODE_TTL_MS (%u) must be at least twice NODE_HEARTBEAT_MS (%u)",
                      b->cfg.node_ttl_ms, b->cfg.heartbeat_ms);
        free(r);
        return CS_ECONFIG;
    }
    b->impl = r;
    r->started_ms = cs_wall_ms();
    uv_timer_t *timers[] = {&r->retry, &r->beat, &r->interest_timer, &r->answer};
    for (size_t i = 0; i < 4; i++) {
        uv_timer_init(b->cfg.loop, timers[i]);
        timers[i]->data = r;
        r->handles++;
    }
    uv_timer_start(&r->interest_timer, on_interest_timer, CS_REDIS_INTEREST_MS,
                   CS_REDIS_INTEREST_MS);
    uv_check_init(b->cfg.loop, &r->guard);
    r->guard.data = r;
    r->handles++;
    uv_check_start(&r->guard, on_guard);
    r->state = R_DOWN;
    uv_timer_start(&r->retry, on_retry, 0, 0); /* from the loop: on_health never runs in here */
    return 0;
}

static void on_timer_closed(uv_handle_t *h)
{
    rbus *r = h->data;
    if (--r->handles == 0) free(r);
}

static void r_close(cs_bus *b)
{
    rbus *r = R(b);
    if (!r) return;
    r->state = R_CLOSED;
    teardown(r); /* the callbacks of what was under way run now, and answer nothing */
    while (r->tickets) ticket_drop(r->tickets); /* those answered locally, not yet run */
    void *v;
    for (size_t pos = 0; cs_map_next(&r->interest, &pos, NULL, &v);) free(v);
    cs_map_free(&r->interest);
    for (size_t pos = 0; cs_map_next(&r->peers, &pos, NULL, &v);) free(v);
    cs_map_free(&r->peers);
    r->b = NULL;
    b->impl = NULL;
    uv_close((uv_handle_t *)&r->retry, on_timer_closed);
    uv_close((uv_handle_t *)&r->beat, on_timer_closed);
    uv_close((uv_handle_t *)&r->interest_timer, on_timer_closed);
    uv_close((uv_handle_t *)&r->answer, on_timer_closed);
    uv_close((uv_handle_t *)&r->guard, on_timer_closed);
}

const cs_bus_ops cs_bus_redis_ops = {
    .name = "redis",
    .open = r_open,
    .close = r_close,
    .topic_on = r_topic_on,
    .topic_off = r_topic_off,
    .elsewhere = r_elsewhere,
    .publish = r_publish,
    .dir_put = r_dir_put,
    .dir_event = r_dir_event,
    .dir_end = r_dir_end,
    .ask = r_ask,
    .command = r_command,
    .ready = r_ready,
};
