/* The bus: listen-in pub/sub, a call directory and the nodes of a cluster, behind one
 * interface whatever carries them (docs/deploy.md).
 *
 * - Topics: subscribers of a topic (a CallSid, or CS_BUS_ALL for the list of calls) receive
 *   what is published to it anywhere — on this loop synchronously, in order; from other loops
 *   or nodes as it arrives. Messages are owned and serialised (cs_bus_msg_encode): a backend
 *   carries bytes. A subscriber decides itself what to drop when it is slow; the publisher
 *   never waits.
 * - The directory: the calls live in the cluster (CallSid → node, loop, its summary JSON,
 *   its last events for late joiners), written by the loop that owns each call and read by
 *   anyone, asynchronously (cs_dir_ask).
 * - Nodes: each bus announces its node (id, URL peers reach it at, run, load) with a
 *   heartbeat; a node silent past its TTL is lost, and exactly one survivor is told, with
 *   the calls the directory still held for it. Commands reach one node's handler.
 *
 * Backends (one file each, an ops table): inproc.c (one loop, one node: today's),
 * crossloop.c (the loops of one process, joined by a cs_bus_hub), redis.c (REDIS_URL: many
 * nodes). A backend that loses its server keeps the local fan-out working,
 * says so through on_health, and heals the directory when it comes back; what was published
 * with `hold` meanwhile (a call's end) is sent then. */
#ifndef CS_BUS_H
#define CS_BUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/buf.h"
#include "core/map.h"
#include "core/pool.h"

#define CS_BUS_ALL         "*"
#define CS_BUS_TOPIC_MAX   64
#define CS_BUS_NODE_MAX    63   /* a node id: [A-Za-z0-9._-] */
#define CS_BUS_URL_MAX     1024 /* a node's URL (NODE_URL) */
#define CS_BUS_RUN_MAX     32   /* a run id (the store's, hex) */
#define CS_BUS_HISTORY_MAX 500  /* events kept per live call for late joiners */
#define CS_BUS_MSG_MAX     (1u << 20) /* largest encoded message */
#define CS_BUS_LOOPS_MAX   64   /* event loops of one process (WORKERS) */
#define CS_BUS_HOLD_MAX    1000 /* messages held while the server is away (cs_bus_msg.hold) */
#define CS_BUS_HOLD_BYTES  (16u << 20) /* … and their bytes */
#define CS_BUS_HOLD_MS     30000 /* once back, a held message goes again to who subscribes */

enum cs_bus_kind { CS_BUS_TEXT = 1, CS_BUS_AUDIO };

/* A message as subscribers see it: views valid during delivery only. */
typedef struct cs_bus_msg {
    enum cs_bus_kind kind;
    const char *topic;
    /* CS_BUS_TEXT */
    const char *text; /* a JSON message, ready to send */
    size_t len;
    bool final; /* the topic ends with this message (the call ended) */
    bool hold;  /* publishing: must reach the other nodes even if the server is away now: held
                 * (CS_BUS_HOLD_MAX) and sent when it is back (a call's end) */
    /* CS_BUS_AUDIO */
    unsigned track;  /* 0 caller, 1 agent */
    uint32_t pos_ms; /* place on the call's timeline */
    int64_t at_ms;   /* wall clock when the call's node published it (0: now, at publish) */
    const uint8_t *ulaw;
    size_t n;
} cs_bus_msg;

typedef struct cs_bus cs_bus;
typedef struct cs_bus_sub cs_bus_sub;
typedef struct cs_bus_hub cs_bus_hub; /* what joins the loops of one process (crossloop.c) */

/* Each subscription is owned by the subscriber (embedded in its state). */
struct cs_bus_sub {
    /* May unsubscribe any subscription; must not publish to the same topic. */
    void (*deliver)(cs_bus_sub *s, const cs_bus_msg *m);
    void *data;
    /* private */
    char topic[CS_BUS_TOPIC_MAX + 1];
    cs_bus_sub *prev, *next;
    bool active;
};

/* A node of the cluster, as its heartbeat last told. */
typedef struct cs_bus_node {
    char id[CS_BUS_NODE_MAX + 1];
    char url[CS_BUS_URL_MAX + 1]; /* NODE_URL: its HTTP, for peers (recordings) */
    char run[CS_BUS_RUN_MAX + 1];
    uint32_t loops;
    uint32_t calls, streams, monitors; /* its load */
    int64_t started_ms, seen_ms;       /* wall */
    bool self;
} cs_bus_node;

/* A call in the directory. */
typedef struct cs_dir_call {
    char sid[CS_BUS_TOPIC_MAX + 1];
    char node[CS_BUS_NODE_MAX + 1];
    uint32_t loop;
    const char *summary; /* JSON object (the monitor's call summary) */
    size_t summary_len;
} cs_dir_call;

/* An asynchronous read of the directory or of the nodes, owned by the asker (embedded in
 * its state). Its results are the bus's and valid during `done` only. */
enum cs_dir_what { CS_DIR_LIST = 1, CS_DIR_GET, CS_DIR_NODES };
typedef struct cs_dir_req cs_dir_req;
struct cs_dir_req {
    enum cs_dir_what what;
    char sid[CS_BUS_TOPIC_MAX + 1]; /* CS_DIR_GET */
    /* Runs from the loop, never inside cs_dir_ask; may free `q` or ask again with it. */
    void (*done)(cs_dir_req *q);
    void *data;
    /* results: rc 0, or < 0 (CS_ENOMEM…); `partial`: the directory's server is away, so
     * this is what this node knows (its own calls, itself) */
    int rc;
    bool partial;
    cs_dir_call *calls; /* LIST: every live call; GET: 0 or 1 */
    size_t ncalls;
    const char *const *events; /* GET: the call's last events, oldest first (JSON objects) */
    const size_t *event_lens;
    size_t nevents;
    cs_bus_node *nodes; /* NODES: every node alive, this one too */
    size_t nnodes;
    cs_pool pool; /* where the backend puts the results: the bus frees them after `done` */
    /* private */
    cs_bus *bus;
    cs_dir_req *prev, *next;
    uint64_t seq; /* its place among the requests asked */
    bool pending;
};

typedef struct cs_bus_stats {
    uint64_t published, delivered; /* here: messages someone listened to; deliveries */
    uint64_t sent, received;       /* to and from other loops or nodes */
    uint64_t dropped;              /* to other loops or nodes, lost (queue full, server away) */
    uint64_t bad;                  /* received and not decodable: counted and skipped */
    uint64_t reconnects, outages;  /* to its server; outages begun */
    uint64_t nodes_lost;           /* nodes this one declared lost */
    uint64_t commands_in, commands_out;
    uint64_t commands_unknown;   /* refused at once: to a node or loop that does not exist */
    uint64_t held, held_dropped; /* messages kept while the server was away (cs_bus_msg.hold),
                                  * and those dropped unsent past CS_BUS_HOLD_MAX or _BYTES */
} cs_bus_stats;

typedef struct cs_bus_config {
    uv_loop_t *loop;
    const char *url; /* NULL or "": in-process; redis://[:password@]host[:port][/db] */
    cs_bus_hub *hub; /* without a url: this process's loops meet through it (NULL: one loop) */
    const char *node;     /* this node's id */
    const char *node_url; /* where peers reach its HTTP (may be "") */
    const char *run;
    uint32_t loop_index, loops;
    uint32_t heartbeat_ms; /* how often the node says it lives */
    uint32_t node_ttl_ms;  /* silent this long, it is lost */
    /* Optional callbacks, from the loop. */
    void *data;
    /* The bus's server went away (`up` false, `why`) or came back. */
    void (*on_health)(void *data, bool up, const char *why);
    /* Node `lost` died (this node won the claim on it); `calls`: what the directory held
     * of it. After this returns the directory forgets them. */
    void (*on_node_lost)(void *data, const cs_bus_node *lost, const cs_dir_call *calls,
                         size_t n);
    /* A command another loop or node (or this one) sent here with cs_bus_command; `from`
     * is the sender's address ("node/loop": where a reply goes). */
    void (*on_command)(void *data, const char *from, const char *json, size_t n);
    /* The load the heartbeat carries: filled in when it beats. */
    void (*load)(void *data, cs_bus_node *self);
} cs_bus_config;

/* A backend: how messages and directory entries leave and reach this loop. The common
 * part (bus.c) keeps the local subscribers and the pending requests; a backend gets
 * messages from elsewhere into them with cs_bus__arrived and answers requests with
 * cs_dir__answer. */
typedef struct cs_bus_ops {
    const char *name;
    /* b->cfg set; the backend's state in b->impl. 0, or CS_ECONFIG with a message. */
    int (*open)(cs_bus *b, cs_buf *err);
    /* Drops what is under way (no callback runs after), frees b->impl. */
    void (*close)(cs_bus *b);
    /* The first subscriber of `topic` on this loop came, the last one went. */
    void (*topic_on)(cs_bus *b, const char *topic);
    void (*topic_off)(cs_bus *b, const char *topic);
    /* Whether a subscriber elsewhere may listen to `topic` (cheap: the publisher of
     * every audio frame asks). */
    bool (*elsewhere)(cs_bus *b, const char *topic, size_t n);
    /* `msg` (encoded) to the subscribers of `topic` elsewhere. */
    void (*publish)(cs_bus *b, const char *topic, const uint8_t *msg, size_t n);
    /* The directory (copies what it keeps). */
    void (*dir_put)(cs_bus *b, const char *sid, const char *summary, size_t n);
    void (*dir_event)(cs_bus *b, const char *sid, const char *event, size_t n);
    void (*dir_end)(cs_bus *b, const char *sid);
    /* Starts answering `q` (pending, linked); cs_dir__answer ends it. */
    void (*ask)(cs_bus *b, cs_dir_req *q);
    /* Forgets `q` (cs_dir_cancel). */
    void (*cancel)(cs_bus *b, cs_dir_req *q);
    /* `json` to the on_command of loop `loop` of node `node`: 0, or < 0 (unknown node or
     * loop, server away). */
    int (*command)(cs_bus *b, const char *node, uint32_t loop, const char *json, size_t n);
    /* Whether its server is reachable now (/ready). */
    bool (*ready)(const cs_bus *b);
} cs_bus_ops;

struct cs_bus {
    const cs_bus_ops *ops;
    cs_bus_config cfg; /* its strings point at the copies below */
    char node[CS_BUS_NODE_MAX + 1];
    char node_url[CS_BUS_URL_MAX + 1];
    char run[CS_BUS_RUN_MAX + 1];
    char url[CS_BUS_URL_MAX + 1];
    char origin[CS_BUS_NODE_MAX + 16]; /* "node/loop": its messages coming back are skipped */
    cs_map topics;     /* topic → this loop's subscribers */
    cs_map own;        /* sid → this loop's own directory entries (cs_bus_own) */
    cs_dir_req *asked, *asked_tail; /* requests not yet answered, oldest first */
    uint64_t asked_seq;             /* of the last one asked */
    cs_buf scratch;    /* encoding */
    struct cs_bus_held *held, **held_tail; /* held messages, oldest first */
    size_t nheld, held_bytes;
    cs_bus_stats stats;
    bool up;
    void *impl;
};

extern const cs_bus_ops cs_bus_inproc_ops;
extern const cs_bus_ops cs_bus_crossloop_ops;
extern const cs_bus_ops cs_bus_redis_ops;

/* The hub of `loops` (1..CS_BUS_LOOPS_MAX) loops: made before their buses open, freed after
 * they all closed. 0, -EINVAL or -ENOMEM. */
int cs_bus_hub_new(cs_bus_hub **out, uint32_t loops);
void cs_bus_hub_free(cs_bus_hub *h);

/* The backend `cfg->url` names, opened: 0, or CS_ECONFIG with a message (unknown scheme, bad
 * URL). A server that cannot be reached yet is not an error: it is retried, with backoff. */
int cs_bus_open(cs_bus **out, const cs_bus_config *cfg, cs_buf *err);
/* Every subscription and request must be gone first. */
void cs_bus_close(cs_bus *b);

/* 0, -EINVAL (topic too long) or -ENOMEM. `s->deliver` must be set. */
int cs_bus_subscribe(cs_bus *b, cs_bus_sub *s, const char *topic);
/* Idempotent; safe from inside `deliver`. */
void cs_bus_unsubscribe(cs_bus *b, cs_bus_sub *s);
/* Whether anyone listens to `topic`, here or elsewhere (publishers skip the work otherwise). */
bool cs_bus_has(cs_bus *b, const char *topic, size_t n);
/* To this loop's subscribers at once, and to the others through the backend. */
void cs_bus_publish(cs_bus *b, const cs_bus_msg *m);

/* The directory, written by the loop that owns the call: it is live (its summary changed),
 * it had an event (kept, the last CS_BUS_HISTORY_MAX), it ended. */
void cs_dir_put(cs_bus *b, const char *sid, const char *summary, size_t n);
void cs_dir_event(cs_bus *b, const char *sid, const char *event, size_t n);
void cs_dir_end(cs_bus *b, const char *sid);
/* Starts `q` (what, sid, done, data set): 0, `done` runs later from the loop; or < 0. */
int cs_dir_ask(cs_bus *b, cs_dir_req *q);
/* Idempotent: `done` will not run. */
void cs_dir_cancel(cs_dir_req *q);

/* `json` to the on_command of the loop at address `to`: "node/loop", or "node" for its first
 * loop (this one's too). 0, or < 0: -EINVAL (not an address), CS_ENOTFOUND (no such node, or
 * it has no such loop, as its heartbeats tell: counted), CS_EBACKEND (server away, or the
 * other nodes not known yet), CS_EFULL. */
int cs_bus_command(cs_bus *b, const char *to, const char *json, size_t n);
bool cs_bus_ready(const cs_bus *b);
const cs_bus_stats *cs_bus_stats_get(const cs_bus *b);

/* The wire form of a message (any backend's): 0 or -EINVAL (too large); decode: 0, or
 * -EPROTO for bytes that are not a message (views into `p`). `origin` tells a node its
 * own messages when they come back. */
int cs_bus_msg_encode(cs_buf *out, const cs_bus_msg *m, const char *origin);
int cs_bus_msg_decode(cs_bus_msg *m, const char **origin, size_t *origin_len, const uint8_t *p,
                      size_t n);

/* ---- for backends ---- */
/* Bytes a backend received for `topic`: decoded (bad ones counted) and delivered to this
 * loop's subscribers, unless they came from here. */
void cs_bus__arrived(cs_bus *b, const char *topic, const uint8_t *p, size_t n);
/* `q`'s results are set: unlinks it, runs `done`. */
void cs_dir__answer(cs_dir_req *q);
/* Health moved (counts, tells on_health). Back: the messages held meanwhile are sent. */
void cs_bus__health(cs_bus *b, bool up, const char *why);
/* A subscriber elsewhere came for `topic`: what was held for it and sent when the server came
 * back (within CS_BUS_HOLD_MS) goes again, for a node that came back after this one. */
void cs_bus__heard(cs_bus *b, const char *topic, size_t n);
/* Answers `q` from what this loop knows: its own calls, itself as the only node (for the
 * in-process backend, and for another while its server is away: `partial`). */
void cs_bus__answer_local(cs_bus *b, cs_dir_req *q, bool partial);
/* Answers a LIST or GET `q` from `own` (sid → cs_bus_own), the calls of node b->node. */
void cs_bus__answer_dir(cs_bus *b, cs_dir_req *q, const cs_map *own);
/* This node as its heartbeat tells it (cfg.load asked). */
void cs_bus__self(cs_bus *b, cs_bus_node *out);

/* This loop's own directory entry of a call: what it rewrites when its server comes back. */
typedef struct cs_bus_own {
    char sid[CS_BUS_TOPIC_MAX + 1];
    uint32_t loop; /* the loop it lives on */
    char *summary;
    size_t summary_len;
    char **events; /* oldest first: grows to CS_BUS_HISTORY_MAX, then a ring */
    size_t *lens;
    size_t cap, head, n;
} cs_bus_own;

/* An entry for `sid` (not longer than CS_BUS_TOPIC_MAX) on `loop`, or NULL (no memory);
 * its summary replaced (0 or -ENOMEM); an event kept; freed. */
cs_bus_own *cs_bus__own_new(const char *sid, uint32_t loop);
int cs_bus__own_summary(cs_bus_own *o, const char *summary, size_t n);
void cs_bus__own_event(cs_bus_own *o, const char *event, size_t n);
void cs_bus__own_free(cs_bus_own *o);

#endif
