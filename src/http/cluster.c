/* The cluster as one node sees it: what acts on a call live on another node goes to that
 * node as a command (cluster_msg.h) and what arrives is checked and applied here; a lost
 * node's calls are ended; the bus's and the store's outages are told to each live call.
 * The store is shared, so rows are written by whoever has them: only what needs the live
 * call (its events for listeners and its directory history, its agent, its sockets)
 * travels. */
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "core/prom.h"
#include "http/cluster_msg.h"
#include "http/gateway.h"

#define CLUSTER_ROUTES_MAX       4096 /* commands looking for their call's node, or a reply */
#define CLUSTER_REPLY_MS         5000 /* a reply to a request (SAY, CLAIM…), at most */
#define CLUSTER_GATHER_MARGIN_MS 2000 /* a GATHER's reply: past GATHER_REPLY_MS, the hops */
#define CLUSTER_TICK_MS          1000 /* replies overdue, the store's health */

/* Why a request got no reply from its call's loop. */
enum route_fail {
    FAIL_UNREACHABLE,
    FAIL_NO_DIRECTORY,
    FAIL_BUSY,
    FAIL_LATE,
    FAIL_STOPPING,
    FAIL_UNSENDABLE
};
static const cs_cluster_fail fails[] = {
    [FAIL_UNREACHABLE] = {503, "owner_unreachable", "the node holding the call cannot be reached"},
    [FAIL_NO_DIRECTORY] = {503, "directory_unavailable",
                           "the call directory cannot be read: where the call lives is not known"},
    [FAIL_BUSY] = {503, "owner_busy", "too many commands between nodes in flight"},
    [FAIL_LATE] = {504, "owner_silent", "the node holding the call did not answer in time"},
    [FAIL_STOPPING] = {503, "shutting_down", "shutting down"},
    [FAIL_UNSENDABLE] = {503, "cannot_forward", "the request cannot be sent to the call's node"},
};

/* A command on its way: the directory is asked where its call lives, then it is sent
 * there or applied here. A request (an API request waits for it) stays until it is
 * answered; one sent to every loop (`spread`) until one of them has the call, or all said
 * 404. */
typedef struct route {
    cs_dir_req q;
    struct cs_cluster *cl;
    struct route *prev, *next;
    const cs_cluster_kind *kind; /* a request's, or NULL */
    cs_request *r;               /* the request answered with the reply */
    uint64_t id;                 /* the reply's */
    int64_t deadline_ms;         /* sent: answered without a reply past it (loop time) */
    bool sent;
    unsigned waiting;     /* spread: loops yet to answer */
    unsigned unreachable; /* spread: loops that could not be asked */
    size_t n;
    char json[]; /* the command */
} route;

/* A read of the directory for the API (cs_cluster_ask). */
typedef struct ask {
    cs_dir_req q;
    struct cs_cluster *cl;
    struct ask *prev, *next;
    cs_cluster_ask_fn fn;
    void *data;
} ask;

struct cs_cluster {
    cs_gateway *gw;
    uv_timer_t tick;
    route *routes;
    size_t nroutes;
    ask *asks;
    size_t nasks;
    uint64_t next_id;
    bool store_down;
    cs_buf scratch;
    cs_buf scratch_body; /* a reply's body */
    cs_cluster_stats stats;
};

static void route_free(route *x)
{
    cs_cluster *cl = x->cl;
    cs_dir_cancel(&x->q);
    if (x->prev)
        x->prev->next = x->next;
    else
        cl->routes = x->next;
    if (x->next) x->next->prev = x->prev;
    cl->nroutes--;
    free(x);
}

static void apply(cs_cluster *cl, const cs_cmd *c, const char *from, cs_request *r,
                  const cs_cluster_kind *kind);

/* `r` answered without its call's loop's reply (`msg`: instead of the reason's own). */
static void fail(const cs_cluster_kind *kind, cs_request *r, const char *sid, enum route_fail why,
                 const char *msg)
{
    cs_cluster_fail f = fails[why];
    if (msg) f.message = msg;
    if (kind->fail)
        kind->fail(r, sid, &f);
    else
        kind->answer(r, sid, f.code, f.message, NULL);
}

/* A request answered (its route then freed by the caller). */
static void answer(route *x, int code, const char *msg, const char *body)
{
    x->kind->answer(x->r, x->q.sid, code, msg, body);
    x->r = NULL;
}

static void route_fail(route *x, enum route_fail why, const char *msg)
{
    fail(x->kind, x->r, x->q.sid, why, msg);
    x->r = NULL;
}

/* Decodes a command this node wrote and applies it here (`r`: a request's). */
static void apply_json(cs_cluster *cl, const char *json, size_t n, cs_request *r,
                       const cs_cluster_kind *kind)
{
    cs_cmd c;
    char why[128];
    if (cs_cmd_decode(&c, json, n, why, sizeof why) == 0)
        apply(cl, &c, NULL, r, kind);
    else /* cannot happen: we encoded it */
        cs_error("cluster: a command of our own does not read: %s", why);
    cs_cmd_free(&c);
}

static int64_t wait_ms(const cs_gateway *gw, const cs_cluster_kind *kind)
{
    return kind->wait_ms ? kind->wait_ms(gw) : CLUSTER_REPLY_MS;
}

/* A spread request nobody holds: 404, or 503 when some loop could not be asked. */
static void nobody(route *x)
{
    char msg[CS_CMD_FIELD_MAX];
    if (x->unreachable) {
        snprintf(msg, sizeof msg, "%u loop(s) of the cluster could not be asked", x->unreachable);
        route_fail(x, FAIL_UNREACHABLE, msg);
    } else {
        answer(x, 404, "no loop of the cluster holds it", NULL);
    }
    route_free(x);
}

/* The nodes are known: the request goes to every loop of every node but this one. */
static void spread(route *x, const cs_dir_req *q)
{
    cs_gateway *gw = x->cl->gw;
    char to[sizeof gw->bus->origin];
    x->unreachable = q->rc < 0 || q->partial; /* some node may be missing from the list */
    for (size_t i = 0; q->rc == 0 && i < q->nnodes; i++)
        for (uint32_t l = 0; l < q->nodes[i].loops; l++) {
            snprintf(to, sizeof to, "%s/%u", q->nodes[i].id, (unsigned)l);
            if (strcmp(to, gw->bus->origin) == 0) continue;
            if (cs_bus_command(gw->bus, to, x->json, x->n) == 0) {
                x->waiting++;
            } else {
                x->cl->stats.unreachable++;
                x->unreachable++;
            }
        }
    if (!x->waiting) {
        nobody(x);
        return;
    }
    x->sent = true;
    x->deadline_ms = (int64_t)uv_now(gw->loop) + wait_ms(gw, x->kind);
}

/* Where the call lives is known: sent there, or applied here (it lives here, nowhere, or
 * its node cannot be reached: the store gets what it can; a request is refused instead
 * when its node cannot be reached or the directory could not be read). A spread request
 * for a call that is not live goes to every loop instead. */
static void located(cs_dir_req *q)
{
    route *x = q->data;
    cs_cluster *cl = x->cl;
    cs_gateway *gw = cl->gw;
    if (q->what == CS_DIR_NODES) {
        spread(x, q);
        return;
    }
    bool live = q->rc == 0 && q->ncalls && gw->bus;
    if (x->kind && x->kind->spread && !live) {
        int rc;
        x->q.what = CS_DIR_NODES;
        if ((rc = cs_dir_ask(gw->bus, &x->q)) < 0) {
            cs_dir_req none = {.what = CS_DIR_NODES, .rc = rc};
            spread(x, &none);
        }
        return;
    }
    /* its loop's address: another loop of this node is another place too */
    char node[sizeof gw->bus->origin] = "";
    if (live) snprintf(node, sizeof node, "%s/%u", q->calls[0].node, (unsigned)q->calls[0].loop);
    if (node[0] && strcmp(node, gw->bus->origin) != 0) {
        int rc = cs_bus_command(gw->bus, node, x->json, x->n);
        if (rc == 0) {
            if (!x->kind) {
                route_free(x);
                return;
            }
            x->sent = true;
            x->deadline_ms = (int64_t)uv_now(gw->loop) + wait_ms(gw, x->kind);
            return;
        }
        cl->stats.unreachable++;
        cs_warn("cluster: call %s lives on node %s, which cannot be reached (%s)%s", q->sid, node,
                cs_strerror(rc), x->kind ? "" : ": applied here");
        if (x->kind) {
            char msg[CS_CMD_FIELD_MAX];
            snprintf(msg, sizeof msg, "the node holding the call (%.64s) cannot be reached", node);
            route_fail(x, FAIL_UNREACHABLE, msg);
            route_free(x);
            return;
        }
    } else if (x->kind && !node[0] && (q->rc < 0 || q->partial)) {
        /* Not found in what this node alone knows: it may live elsewhere. A request is not
         * answered as if it lived nowhere. */
        cl->stats.unreachable++;
        route_fail(x, FAIL_NO_DIRECTORY, NULL);
        route_free(x);
        return;
    }
    apply_json(cl, x->json, x->n, x->r, x->kind);
    route_free(x);
}

/* `c` to where its call lives (`kind`: a request's, `r` answered from there; a spread
 * kind's goes to every loop when the call is not live). */
static void route_cmd(cs_gateway *gw, const cs_cmd *c, const cs_cluster_kind *kind, cs_request *r)
{
    cs_cluster *cl = gw->cluster;
    if (!cl) { /* stopping: the store only */
        if (kind)
            fail(kind, r, c->sid, FAIL_STOPPING, NULL);
        else if (c->op == CS_CMD_EVENT)
            cs_journal_event(gw, c->sid, c->type, c->at, c->detail);
        return;
    }
    if (!gw->bus || cs_calls_call(&gw->calls, cs_str_of(c->sid))) {
        apply(cl, c, NULL, r, kind);
        return;
    }
    if (cl->nroutes >= CLUSTER_ROUTES_MAX) {
        cl->stats.routes_full++;
        if (kind)
            fail(kind, r, c->sid, FAIL_BUSY, NULL);
        else
            apply(cl, c, NULL, r, kind);
        return;
    }
    cs_cmd copy = *c;
    if (kind) copy.id = ++cl->next_id;
    int rc = cs_cmd_encode(&cl->scratch, &copy);
    route *x = rc == 0 ? calloc(1, sizeof *x + cl->scratch.len + 1) : NULL;
    if (!x) {
        cs_error("cluster: cannot route a %s command for %s: %s", cs_cmd_op_name(c->op), c->sid,
                 cs_strerror(rc < 0 ? rc : -ENOMEM));
        if (kind)
            fail(kind, r, c->sid, FAIL_UNSENDABLE, NULL);
        else
            apply(cl, c, NULL, r, kind);
        return;
    }
    x->cl = cl;
    x->kind = kind;
    x->r = r;
    x->id = copy.id;
    x->n = cl->scratch.len;
    memcpy(x->json, cl->scratch.data, x->n);
    x->q.what = CS_DIR_GET;
    snprintf(x->q.sid, sizeof x->q.sid, "%s", c->sid);
    x->q.done = located;
    x->q.data = x;
    x->next = cl->routes;
    if (cl->routes) cl->routes->prev = x;
    cl->routes = x;
    cl->nroutes++;
    if ((rc = cs_dir_ask(gw->bus, &x->q)) < 0) {
        x->q.rc = rc;
        located(&x->q);
    }
}

/* ---- what a command does, here ---- */

int cs_cluster_reply(cs_gateway *gw, const char *to, uint64_t id, int code, const char *msg,
                     const char *body)
{
    cs_cluster *cl = gw->cluster;
    if (!cl) return CS_ECLOSED; /* stopping: the asker answers its request itself */
    cs_cmd r = {.op = CS_CMD_REPLY, .id = id, .code = code, .message = msg, .body = body};
    int rc = cs_cmd_encode(&cl->scratch, &r);
    if (rc == 0 && !gw->bus) rc = CS_ECLOSED;
    if (rc == 0) rc = cs_bus_command(gw->bus, to, cl->scratch.data, cl->scratch.len);
    if (rc < 0) {
        cl->stats.unreachable++;
        cs_warn("cluster: cannot reply to node %s (%s)", to, cs_strerror(rc));
    }
    return rc;
}

/* A request served here: answered as `kind` says (`r`, this node's) or replied to
 * `from`. Whether the answer is on its way. */
static bool served(cs_cluster *cl, const cs_cmd *c, const char *from, cs_request *r,
                   const cs_cluster_kind *kind, int code, const char *msg, const cs_buf *body)
{
    const char *b = body && body->len ? body->data : NULL;
    if (r) {
        kind->answer(r, c->sid, code, msg, b);
        return true;
    }
    return from && cs_cluster_reply(cl->gw, from, c->id, code, msg[0] ? msg : NULL, b) == 0;
}

/* `from`: the node that sent it (NULL: this one, for `r` when a request). */
static void apply(cs_cluster *cl, const cs_cmd *c, const char *from, cs_request *r,
                  const cs_cluster_kind *kind)
{
    cs_gateway *gw = cl->gw;
    switch (c->op) {
    case CS_CMD_EVENT:
        /* Live here: listeners and the directory get it too; else the store only (never
         * sent on again, whatever the directory says meanwhile). */
        if (cs_calls_call(&gw->calls, cs_str_of(c->sid)))
            cs_calls_event(&gw->calls, c->sid, c->type, c->detail);
        else
            cs_journal_event(gw, c->sid, c->type, c->at, c->detail);
        break;
    case CS_CMD_STATUS:
        if (cs_twilio_final_status(c->status)) {
            cs_gather_end(gw->gather, c->sid);
            cs_media_end_call(gw, c->sid, "the call ended");
        }
        break;
    case CS_CMD_SAY: {
        char msg[CS_CMD_FIELD_MAX + 1] = "";
        int code = cs_api_say_here(gw, c->sid, c->text, c->by, msg, sizeof msg);
        served(cl, c, from, r, kind, code, msg, NULL);
        break;
    }
    case CS_CMD_CLAIM:
    case CS_CMD_PEEK:
    case CS_CMD_CANCEL: {
        char msg[CS_CMD_FIELD_MAX + 1] = "";
        cs_buf_reset(&cl->scratch_body);
        int code = cs_call_stream_serve(gw, c, &cl->scratch_body, msg, sizeof msg);
        bool sent = served(cl, c, from, r, kind, code, msg, &cl->scratch_body);
        if (c->op == CS_CMD_CLAIM && code == 200 && sent) cs_call_stream_handed(gw, c->sid);
        break;
    }
    case CS_CMD_GATHER:
        if (r)
            cs_gather_take(gw, r, NULL, 0, NULL, NULL);
        else if (from)
            cs_gather_take(gw, NULL, from, c->id, c->form, c->query);
        break;
    case CS_CMD_REPLY:
        for (route *w = cl->routes; w; w = w->next) {
            if (w->id != c->id || !w->sent) continue;
            if (w->kind->spread && c->code == 404) { /* not there: the others may have it */
                if (--w->waiting == 0) nobody(w);
                return;
            }
            answer(w, c->code, c->message ? c->message : "refused by the call's node", c->body);
            route_free(w);
            return;
        }
        if (c->code == 200 && c->body)
            cs_warn("cluster: a reply from node %s came after its request was answered 504: "
                    "what it handed over is lost",
                    from);
        else if (c->code == 404) /* the other loops asked with one that had it */
            cs_debug("cluster: a 404 from node %s after its request was answered", from);
        else
            cs_info("cluster: a reply from node %s came after its request was answered", from);
        break;
    default:
        break;
    }
}

void cs_cluster_on_command(void *data, const char *from, const char *json, size_t n)
{
    cs_gateway *gw = data;
    cs_cluster *cl = gw->cluster;
    if (!cl) return;
    cs_cmd c;
    char why[128];
    if (cs_cmd_decode(&c, json, n, why, sizeof why) < 0) {
        cl->stats.refused++;
        cs_warn("cluster: a command from node %.64s refused (%s)", from ? from : "?", why);
    } else {
        apply(cl, &c, from, NULL, NULL);
    }
    cs_cmd_free(&c);
}

/* ---- what the gateway asks ---- */

void cs_cluster_event(cs_gateway *gw, const char *sid, enum cs_event_type type, int64_t at,
                      const char *detail)
{
    cs_cmd c = {.op = CS_CMD_EVENT, .sid = sid, .type = type, .detail = detail, .at = at};
    route_cmd(gw, &c, NULL, NULL);
}

void cs_cluster_status(cs_gateway *gw, const char *sid, const char *status)
{
    cs_cmd c = {.op = CS_CMD_STATUS, .sid = sid, .status = status};
    route_cmd(gw, &c, NULL, NULL);
}

static void say_answered(cs_request *r, const char *sid, int code, const char *msg,
                         const char *body)
{
    (void)body;
    cs_api_say_respond(r, sid, code, msg ? msg : "refused by the call's node");
}

static const cs_cluster_kind say_kind = {.answer = say_answered};

void cs_cluster_say(cs_request *r, const char *sid, const char *text)
{
    cs_cmd c = {.op = CS_CMD_SAY, .sid = sid, .text = text, .by = r->user};
    route_cmd(r->app, &c, &say_kind, r);
}

/* The owner answers once the agent's turn is over: GATHER_REPLY_MS at most. */
static uint32_t gather_wait(const cs_gateway *gw)
{
    return (uint32_t)gw->cfg->gather_reply_ms + CLUSTER_GATHER_MARGIN_MS;
}

static const cs_cluster_kind gather_kind = {
    .wait_ms = gather_wait, .answer = cs_gather_respond, .fail = cs_gather_unanswered};

void cs_cluster_gather(cs_request *r, const char *sid)
{
    /* The body and query as they came: the owner reads them as this loop would. */
    char *form = strndup(r->body.data ? r->body.data : "", r->body.len);
    char *query = r->head.query.n ? strndup(r->head.query.p, r->head.query.n) : NULL;
    if (!form || (r->head.query.n && !query)) {
        fail(&gather_kind, r, sid, FAIL_UNSENDABLE, NULL);
    } else {
        cs_cmd c = {.op = CS_CMD_GATHER, .sid = sid, .form = form, .query = query};
        route_cmd(r->app, &c, &gather_kind, r);
    }
    free(form);
    free(query);
}

void cs_cluster_request(cs_request *r, const cs_cmd *c, const cs_cluster_kind *kind)
{
    route_cmd(r->app, c, kind, r);
}

/* ---- reading the directory ---- */

static void ask_end(ask *a, cs_dir_req *q)
{
    cs_cluster *cl = a->cl;
    if (a->prev)
        a->prev->next = a->next;
    else
        cl->asks = a->next;
    if (a->next) a->next->prev = a->prev;
    cl->nasks--;
    a->fn(a->data, q);
    free(a);
}

static void asked(cs_dir_req *q)
{
    ask_end(q->data, q);
}

int cs_cluster_ask(cs_gateway *gw, enum cs_dir_what what, const char *sid, cs_cluster_ask_fn fn,
                   void *data)
{
    cs_cluster *cl = gw->cluster;
    if (!cl || !gw->bus) return CS_ECLOSED;
    if (cl->nasks >= CLUSTER_ROUTES_MAX) {
        cl->stats.routes_full++;
        return CS_EFULL;
    }
    ask *a = calloc(1, sizeof *a);
    if (!a) return -ENOMEM;
    a->cl = cl;
    a->fn = fn;
    a->data = data;
    a->q.what = what;
    if (sid) snprintf(a->q.sid, sizeof a->q.sid, "%s", sid);
    a->q.done = asked;
    a->q.data = a;
    int rc = cs_dir_ask(gw->bus, &a->q);
    if (rc < 0) {
        free(a);
        return rc;
    }
    a->next = cl->asks;
    if (cl->asks) cl->asks->prev = a;
    cl->asks = a;
    cl->nasks++;
    return 0;
}

/* ---- lost nodes ---- */

void cs_cluster_on_node_lost(void *data, const cs_bus_node *lost, const cs_dir_call *calls,
                             size_t n)
{
    cs_gateway *gw = data;
    cs_cluster *cl = gw->cluster;
    /* Its last heartbeat is the last time it is known to have held them. Their streams
     * stay open in the store: the recordings are on its disk, and its start-up repairs
     * them (cs_journal_recover) when it comes back under the same NODE_ID. */
    int64_t end = lost->seen_ms ? lost->seen_ms : cs_wall_ms();
    cs_warn("cluster: node %s is lost (silent since %lld): ending its %zu call(s) as abnormal",
            lost->id, (long long)end, n);
    cs_buf detail = CS_BUF_INIT(4096);
    for (size_t i = 0; i < n; i++) {
        const cs_dir_call *c = &calls[i];
        cs_call_row row = {.sid = c->sid, .status = cs_end_label(CS_END_ABNORMAL), .ended_at = end};
        cs_journal_call(gw, &row);
        cs_buf_reset(&detail);
        cs_json j;
        cs_json_init(&j, &detail);
        cs_json_obj(&j);
        cs_json_kstr(&j, "node", lost->id);
        cs_json_kstr(&j, "by", gw->bus ? gw->bus->node : NULL);
        cs_json_kstr(&j, "message",
                     "the node holding the call stopped answering: ended as "
                     "abnormal at its last heartbeat");
        cs_json_obj_end(&j);
        cs_journal_event(gw, c->sid, CS_EVENT_NODE_LOST, end,
                         cs_json_end(&j) == 0 ? detail.data : NULL);
        cs_monitor_call_lost(gw, c->sid, c->summary, c->summary_len);
        if (cl) cl->stats.calls_lost++;
    }
    cs_buf_free(&detail);
}

/* ---- outages ---- */

/* An event on each call live here. */
static void tell_calls(cs_gateway *gw, enum cs_event_type type, const char *what, const char *why)
{
    cs_buf detail = CS_BUF_INIT(1024);
    cs_json j;
    cs_json_init(&j, &detail);
    cs_json_obj(&j);
    cs_json_kstr(&j, "what", what);
    if (why) cs_json_kstr(&j, "why", why);
    cs_json_obj_end(&j);
    const char *d = cs_json_end(&j) == 0 ? detail.data : NULL;
    cs_str k;
    void *v;
    /* Events change nothing in the registry: iterating meanwhile is safe. */
    for (size_t i = 0; cs_map_next(&gw->calls.by_call, &i, &k, &v);)
        cs_calls_event(&gw->calls, ((cs_call *)v)->sid, type, d);
    cs_buf_free(&detail);
}

void cs_cluster_on_health(void *data, bool up, const char *why)
{
    cs_gateway *gw = data;
    if (gw->cluster) gw->cluster->stats.health_events++;
    tell_calls(gw, up ? CS_EVENT_BUS_RESTORED : CS_EVENT_BUS_OUTAGE,
               gw->bus ? gw->bus->ops->name : "bus", up ? NULL : why);
}

static void on_tick(uv_timer_t *t)
{
    cs_cluster *cl = t->data;
    cs_gateway *gw = cl->gw;
    int64_t now = (int64_t)uv_now(gw->loop);
    for (route *x = cl->routes, *next; x; x = next) {
        next = x->next;
        if (!x->sent || now < x->deadline_ms) continue;
        cl->stats.replies_late++;
        char msg[CS_CMD_FIELD_MAX];
        if (x->kind->spread)
            snprintf(msg, sizeof msg, "%u loop(s) of the cluster did not answer in time",
                     x->waiting);
        route_fail(x, FAIL_LATE, x->kind->spread ? msg : NULL);
        route_free(x);
    }
    if (!gw->store) return;
    cs_store_stats s;
    cs_store_stats_get(gw->store, &s);
    bool down = s.failing_since_ms != 0;
    if (down == cl->store_down) return;
    cl->store_down = down;
    cl->stats.health_events++;
    if (down) cl->stats.store_outages++;
    if (down)
        cs_warn("cluster: the store is failing (%s): writes queue and spill", s.last_error);
    else
        cs_info("cluster: the store is back");
    tell_calls(gw, down ? CS_EVENT_STORE_OUTAGE : CS_EVENT_STORE_RESTORED,
               cs_store_backend(gw->store), down ? s.last_error : NULL);
}

/* ---- start and stop ---- */

int cs_cluster_start(cs_gateway *gw)
{
    cs_cluster *cl = calloc(1, sizeof *cl);
    if (!cl) return -ENOMEM;
    cl->gw = gw;
    cl->scratch = (cs_buf)CS_BUF_INIT(CS_BUS_MSG_MAX);
    cl->scratch_body = (cs_buf)CS_BUF_INIT(CS_CMD_DETAIL_MAX);
    uv_timer_init(gw->loop, &cl->tick);
    cl->tick.data = cl;
    uv_timer_start(&cl->tick, on_tick, CLUSTER_TICK_MS, CLUSTER_TICK_MS);
    gw->cluster = cl;
    return 0;
}

static void tick_closed(uv_handle_t *h)
{
    cs_cluster *cl = h->data;
    cs_buf_free(&cl->scratch);
    cs_buf_free(&cl->scratch_body);
    free(cl);
}

void cs_cluster_answer_all(cs_gateway *gw)
{
    cs_cluster *cl = gw->cluster;
    for (route *x = cl ? cl->routes : NULL, *next; x; x = next) {
        next = x->next;
        if (!x->kind) continue;
        route_fail(x, FAIL_STOPPING, NULL);
        route_free(x);
    }
}

void cs_cluster_stop(cs_gateway *gw)
{
    cs_cluster *cl = gw->cluster;
    if (!cl) return;
    cs_cluster_answer_all(gw);
    gw->cluster = NULL;
    /* What waits for the directory goes to the store here. */
    while (cl->routes) {
        route *x = cl->routes;
        if (!x->sent) apply_json(cl, x->json, x->n, NULL, NULL);
        route_free(x);
    }
    /* What waits for the directory is answered with what this node knows: nothing. */
    while (cl->asks) {
        ask *a = cl->asks;
        cs_dir_cancel(&a->q);
        cs_dir_req none = {.what = a->q.what, .rc = CS_ECLOSED, .partial = true};
        memcpy(none.sid, a->q.sid, sizeof none.sid);
        ask_end(a, &none);
    }
    uv_timer_stop(&cl->tick);
    uv_close((uv_handle_t *)&cl->tick, tick_closed);
}

const cs_cluster_stats *cs_cluster_stats_get(const cs_gateway *gw)
{
    return gw->cluster ? &gw->cluster->stats : NULL;
}

void cs_cluster_metrics(const cs_gateway *gw, cs_buf *out)
{
    /* Commands sent and received, nodes lost and the bus's outages are the bus's
     * (callstream_bus_*). */
    static const cs_cluster_stats none;
    const cs_cluster_stats *s = gw->cluster ? &gw->cluster->stats : &none;
    cs_prom_counter(out, "callstream_cluster_commands_refused_total",
                    "commands from other nodes that were malformed: counted and skipped",
                    (double)s->refused);
    static const char *const whys[] = {"unreachable", "full"};
    uint64_t kept[] = {s->unreachable, s->routes_full};
    cs_prom_family(out, "callstream_cluster_commands_applied_here_total", "counter",
                   "commands for a call live elsewhere applied here instead: its node could not "
                   "be reached, or too many were in flight",
                   "why", whys, kept, 2);
    cs_prom_counter(out, "callstream_cluster_replies_late_total",
                    "API requests answered 504: the call's node did not reply in time",
                    (double)s->replies_late);
    cs_prom_counter(out, "callstream_cluster_calls_lost_total",
                    "calls of lost nodes this one ended as abnormal", (double)s->calls_lost);
    cs_prom_counter(out, "callstream_cluster_store_outages_total",
                    "times the store's writes began to fail", (double)s->store_outages);
    cs_prom_counter(out, "callstream_cluster_health_events_total",
                    "outages of the bus or the store begun and ended, each told to the live calls "
                    "as an event",
                    (double)s->health_events);
}
