/* Recordings another node holds: this node asks the holder (its NODE_URL from the
 * directory's nodes, else NODE_PEERS) and streams its answer to the client as it arrives,
 * Range and all, pausing the holder while the client is slow. Requests between nodes are
 * signed with CLUSTER_SECRET (core/nodesig.h); without it they carry the client's own
 * credentials, which the holder checks as the API does. The holder serves them with the
 * API's one recording route (api.c). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "core/nodesig.h"
#include "http/api_int.h"
#include "http/gateway.h"

#define REMOTE_HIGH_WATER (1u << 20) /* pause the holder while this much is unsent */
#define REMOTE_CONNECT_MS 5000       /* a holder that takes longer to connect is down */
#define REMOTE_IDLE_MS    30000      /* nor a byte from it this long (while not paused) */
#define REMOTE_HEADER_MAX 4096       /* a client's header passed on, at most */
#define REMOTE_DOWN_MAX   32         /* nodes remembered as unreachable (the oldest goes) */

/* A node this one could not reach, since when (wall): the 503's message. */
typedef struct peer_down {
    char node[CS_BUS_NODE_MAX + 1];
    int64_t since_ms;
} peer_down;

typedef struct cs_remote {
    peer_down down[REMOTE_DOWN_MAX];
} cs_remote;

typedef struct remote_get {
    cs_request *r; /* NULL once answered */
    cs_gateway *gw;
    cs_fetch_req *fr;
    char sid[65];
    char node[CS_BUS_NODE_MAX + 1];
    /* the holder's answer head */
    int64_t len; /* Content-Length; -1: none */
    char type[96], range[96];
    bool begun, waiting;
} remote_get;

/* ---- nodes that do not answer ---- */

static peer_down *down_find(cs_remote *rm, const char *node)
{
    for (size_t i = 0; i < REMOTE_DOWN_MAX; i++)
        if (rm->down[i].since_ms && !strcmp(rm->down[i].node, node)) return &rm->down[i];
    return NULL;
}

/* Since when `node` is unreachable; *first: this is its first failure. */
static int64_t down_since(cs_remote *rm, const char *node, bool *first)
{
    peer_down *d = down_find(rm, node);
    *first = !d;
    if (d) return d->since_ms;
    d = &rm->down[0];
    for (size_t i = 1; i < REMOTE_DOWN_MAX && d->since_ms; i++)
        if (!rm->down[i].since_ms || rm->down[i].since_ms < d->since_ms) d = &rm->down[i];
    snprintf(d->node, sizeof d->node, "%s", node);
    d->since_ms = cs_wall_ms();
    return d->since_ms;
}

static void down_clear(cs_remote *rm, const char *node)
{
    peer_down *d = down_find(rm, node);
    if (d) d->since_ms = 0;
}

/* ---- the answer ---- */

static void remote_free(remote_get *g)
{
    cs_quota_give(&g->gw->shared->remote);
    cs_fetch_cancel(g->fr);
    if (g->r) cs_respond_end(g->r);
    free(g);
}

/* 503: the holder is down or unknown; counted, and since when it is said. */
static void unreachable(remote_get *g, const char *why)
{
    cs_gateway *gw = g->gw;
    gw->stats.recordings_remote_failed++;
    char since[25];
    bool first;
    cs_iso8601(since, down_since(gw->remote, g->node, &first));
    if (first) cs_warn("api: node %s holds recordings and cannot be reached: %s", g->node, why);
    cs_respond_error(g->r, 503, "node %s holds this recording and cannot be reached since %s: %s",
                     g->node, since, why);
    g->r = NULL;
}

/* The head of the holder's answer, passed on: 0, or < 0 with `r` answered. */
static int begin(remote_get *g, int status)
{
    g->begun = true;
    if (status == 401 || status == 403) {
        /* This node took the client's credentials: the holder refusing them, or this
         * node's signature, is the cluster's fault, not the client's. */
        g->gw->stats.recordings_remote_failed++;
        cs_respond_error(g->r, 502, "node %s refused this node's request (%d): %s", g->node, status,
                         g->gw->cfg->cluster_secret[0]
                             ? "is CLUSTER_SECRET the same on every node?"
                             : "without CLUSTER_SECRET it takes only credentials from the store "
                               "the nodes share");
        g->r = NULL;
        return CS_EFORBIDDEN;
    }
    if (status / 100 == 2 && g->len < 0) {
        cs_respond_error(g->r, 502, "node %s answered without a Content-Length", g->node);
        g->r = NULL;
        return -EPROTO;
    }
    char extra[256] = "";
    size_t at = 0;
    if (g->range[0]) at += (size_t)snprintf(extra, sizeof extra, "Content-Range: %s\r\n", g->range);
    if (status / 100 == 2) snprintf(extra + at, sizeof extra - at, "Accept-Ranges: bytes\r\n");
    int rc = cs_respond_begin(g->r, status, g->type[0] ? g->type : NULL, g->len, extra);
    if (rc < 0) { /* the client left */
        cs_respond_end(g->r);
        g->r = NULL;
    }
    return rc;
}

static void on_drained(void *data)
{
    remote_get *g = data;
    g->waiting = false;
    cs_fetch_resume(g->fr);
}

static int on_data(void *data, int status, const char *p, size_t n)
{
    remote_get *g = data;
    if (!g->r) return CS_ECLOSED;
    if (!g->begun && begin(g, status) < 0) return CS_ECLOSED;
    if (cs_respond_pending(g->r) > REMOTE_HIGH_WATER) {
        /* The client is slow: the holder waits (curl keeps these bytes) rather than us
         * buffering what it sends. */
        if (!g->waiting && cs_respond_wait(g->r, REMOTE_HIGH_WATER / 2, on_drained, g) < 0)
            return CS_ECLOSED;
        g->waiting = true;
        return CS_FETCH_PAUSE;
    }
    return cs_respond_write(g->r, p, n) < 0 ? CS_ECLOSED : 0;
}

/* "Name: value" → value, when the line's name is `name`. */
static bool header_is(const char *line, size_t n, const char *name, cs_str *value)
{
    size_t k = strlen(name);
    if (n <= k || line[k] != ':' || !cs_str_ieq((cs_str){line, k}, name)) return false;
    cs_str v = {line + k + 1, n - k - 1};
    while (v.n && (*v.p == ' ' || *v.p == '\t')) v.p++, v.n--;
    while (v.n && (v.p[v.n - 1] == ' ' || v.p[v.n - 1] == '\t')) v.n--;
    *value = v;
    return true;
}

static void copy_value(char *out, size_t cap, cs_str v)
{
    size_t n = v.n < cap - 1 ? v.n : 0; /* one too long is dropped, not cut */
    memcpy(out, v.p, n);
    out[n] = '\0';
}

static void on_header(void *data, const char *line, size_t n)
{
    remote_get *g = data;
    cs_str v;
    uint64_t len;
    if (n >= 5 && !memcmp(line, "HTTP/", 5)) { /* a new head */
        g->len = -1;
        g->type[0] = g->range[0] = '\0';
    } else if (header_is(line, n, "Content-Length", &v)) {
        g->len = cs_str_to_u64(v, INT64_MAX, &len) == 0 ? (int64_t)len : -1;
    } else if (header_is(line, n, "Content-Type", &v)) {
        copy_value(g->type, sizeof g->type, v);
    } else if (header_is(line, n, "Content-Range", &v)) {
        copy_value(g->range, sizeof g->range, v);
    }
}

static void on_done(void *data, const cs_fetch_result *res)
{
    remote_get *g = data;
    g->fr = NULL;
    if (res->err == 0 && res->status != 401 && res->status != 403)
        down_clear(g->gw->remote, g->node);
    if (g->r && !g->begun) {
        if (res->err < 0)
            unreachable(g, res->reason);
        else
            begin(g, res->status); /* no body: a 416, an empty file */
    } else if (g->r && res->err < 0) {
        cs_warn("api: recording %s from node %s cut short: %s", g->sid, g->node, res->reason);
    }
    remote_free(g); /* a body cut short ends the client's connection too */
}

/* ---- asking the holder ---- */

/* The request's credentials for the holder: this node's signature over `method` and the
 * path of `url`, else the client's own. */
static int credentials(remote_get *g, const char *method, const char *url,
                       char (*lines)[REMOTE_HEADER_MAX], size_t *n)
{
    cs_gateway *gw = g->gw;
    const cs_config *cfg = gw->cfg;
    if (cfg->cluster_secret[0]) {
        const char *scheme = strstr(url, "://");
        const char *path = scheme ? strchr(scheme + 3, '/') : NULL;
        char sig[CS_NODESIG_VALUE_MAX + 1];
        int rc = cs_nodesig_sign(sig, sizeof sig, cfg->cluster_secret, method,
                                 cs_str_of(path ? path : "/"), gw->bus->node, cs_wall_ms() / 1000);
        if (rc < 0) return rc;
        snprintf(lines[(*n)++], REMOTE_HEADER_MAX, CS_NODESIG_HEADER ": %s", sig);
        return 0;
    }
    static const char *const names[] = {"Authorization", "Cookie"};
    for (size_t i = 0; i < 2; i++) {
        const cs_str *v = cs_request_header(g->r, names[i]);
        if (v && v->n + strlen(names[i]) + 3 < REMOTE_HEADER_MAX)
            snprintf(lines[(*n)++], REMOTE_HEADER_MAX, "%s: %.*s", names[i], (int)v->n, v->p);
    }
    return 0;
}

static void ask_holder(remote_get *g, const char *base)
{
    cs_gateway *gw = g->gw;
    char url[CS_BUS_URL_MAX + 128];
    size_t bn = strlen(base);
    while (bn && base[bn - 1] == '/') bn--;
    snprintf(url, sizeof url, "%.*s/api/v1/calls/%s/recording.wav", (int)bn, base, g->sid);
    char lines[3][REMOTE_HEADER_MAX]; /* copied by cs_fetch_start */
    const char *headers[3];
    size_t n = 0;
    const cs_str *range = cs_request_header(g->r, "Range");
    if (range && range->n < 200)
        snprintf(lines[n++], REMOTE_HEADER_MAX, "Range: %.*s", (int)range->n, range->p);
    /* HEAD asks HEAD: the holder sends no body this node would read only to drop. */
    const char *method = g->r->head.method == CS_HTTP_HEAD ? "HEAD" : "GET";
    if (credentials(g, method, url, lines, &n) < 0) {
        cs_respond_error(g->r, 500, "this node's id cannot sign requests");
        g->r = NULL;
        remote_free(g);
        return;
    }
    for (size_t i = 0; i < n; i++) headers[i] = lines[i];
    cs_fetch_opts o = {
        .method = method,
        .url = url,
        .headers = headers,
        .nheaders = n,
        .connect_timeout_ms = REMOTE_CONNECT_MS,
        .idle_timeout_ms = REMOTE_IDLE_MS,
        .on_data = on_data,
        .on_header = on_header,
        .on_done = on_done,
        .data = g,
    };
    int rc = gw->fetch ? cs_fetch_start(gw->fetch, &o, &g->fr) : CS_ECLOSED;
    if (rc < 0) {
        gw->stats.recordings_remote_failed++;
        cs_respond_error(g->r, 503, "cannot ask node %s for this recording: %s", g->node,
                         cs_strerror(rc));
        g->r = NULL;
        remote_free(g);
    }
}

/* The next "id=URL" of NODE_PEERS ("id=URL,…") at *p, moving *p on: false at its end.
 * `item` is all of it; `id` and `url` are empty when it has no '='. */
static bool next_peer(const char **p, cs_str *item, cs_str *id, cs_str *url)
{
    if (!**p) return false;
    const char *end = strchr(*p, ',');
    *item = (cs_str){*p, end ? (size_t)(end - *p) : strlen(*p)};
    const char *eq = memchr(item->p, '=', item->n);
    *id = eq ? (cs_str){item->p, (size_t)(eq - item->p)} : CS_STR_NULL;
    *url = eq ? (cs_str){eq + 1, item->n - id->n - 1} : CS_STR_NULL;
    *p += item->n + (end != NULL);
    return true;
}

/* NODE_PEERS' URL of `node`, into `out`; false if it has none. */
static bool peer_url(const char *peers, const char *node, char *out, size_t cap)
{
    cs_str item, id, url;
    for (const char *p = peers; next_peer(&p, &item, &id, &url);) {
        if (cs_str_eqz(id, node)) {
            snprintf(out, cap, "%.*s", (int)url.n, url.p);
            return true;
        }
    }
    return false;
}

static void nodes_done(void *data, const cs_dir_req *q)
{
    remote_get *g = data;
    char url[CS_BUS_URL_MAX + 1] = "";
    for (size_t i = 0; i < q->nnodes && !url[0]; i++)
        if (!strcmp(q->nodes[i].id, g->node)) snprintf(url, sizeof url, "%s", q->nodes[i].url);
    if (!url[0]) peer_url(g->gw->cfg->node_peers, g->node, url, sizeof url);
    if (q->rc < 0 && !url[0]) {
        unreachable(g, "the directory cannot be read");
    } else if (!url[0]) {
        unreachable(g, q->partial ? "it is not known to this node (the bus's server is away)"
                                  : "it is not in the cluster (and not in NODE_PEERS)");
    } else {
        ask_holder(g, url);
        return;
    }
    remote_free(g);
}

void cs_api_recording_remote(cs_request *r, const char *sid, const char *node)
{
    cs_gateway *gw = r->app;
    gw->stats.recordings_remote++;
    if (!cs_quota_take(&gw->shared->remote)) { /* the process's: every loop's count */
        gw->stats.recordings_remote_failed++;
        cs_respond_error(r, 503, "%d recordings are being fetched from other nodes already",
                         CS_REMOTE_MAX);
        return;
    }
    remote_get *g = calloc(1, sizeof *g);
    if (!g) {
        cs_quota_give(&gw->shared->remote);
        cs_respond_error(r, 503, "out of memory");
        return;
    }
    g->r = r;
    g->gw = gw;
    g->len = -1;
    snprintf(g->sid, sizeof g->sid, "%s", sid);
    snprintf(g->node, sizeof g->node, "%s", node);
    if (cs_cluster_ask(gw, CS_DIR_NODES, NULL, nodes_done, g) < 0) {
        unreachable(g, "the directory cannot be read");
        remote_free(g);
    }
}

/* ---- the holder's side ---- */

int cs_api_node_auth(cs_request *r)
{
    cs_gateway *gw = r->app;
    const cs_str *v = cs_request_header(r, CS_NODESIG_HEADER);
    const char *secret = gw->cfg->cluster_secret;
    if (!v || !secret[0]) return 0; /* the API's own credentials, then */
    char node[CS_NODESIG_NODE_MAX + 1], method[16];
    snprintf(method, sizeof method, "%.*s", (int)r->head.method_name.n, r->head.method_name.p);
    int rc = cs_nodesig_check(*v, secret, method, r->head.path, cs_wall_ms() / 1000, node);
    if (rc == 0) return 1;
    gw->stats.node_sig_refused++;
    if (rc == CS_EFORBIDDEN)
        cs_respond_error(r, 403, "node signature does not match (another CLUSTER_SECRET?)");
    else if (rc == -ETIMEDOUT)
        cs_respond_error(r, 401, "node signature expired (clocks more than %d s apart?)",
                         CS_NODESIG_SKEW_S);
    else
        cs_respond_error(r, 401, "malformed " CS_NODESIG_HEADER " header");
    return rc;
}

bool cs_api_from_node(const cs_request *r)
{
    const cs_gateway *gw = r->app;
    return gw->cfg->cluster_secret[0] && cs_request_header(r, CS_NODESIG_HEADER);
}

/* ---- start and stop ---- */

/* NODE_PEERS: id=URL pairs, comma-separated. */
static int check_peers(const char *peers, cs_buf *err)
{
    cs_str item, id, url;
    for (const char *p = peers; next_peer(&p, &item, &id, &url);) {
        char u[CS_BUS_URL_MAX + 1];
        bool fits = url.n < sizeof u;
        if (fits) snprintf(u, sizeof u, "%.*s", (int)url.n, url.p);
        if (!id.n || id.n > CS_BUS_NODE_MAX || !fits || !cs_fetch_url_ok(u)) {
            cs_buf_printf(err, "NODE_PEERS: '%.*s' is not id=http(s)://host[:port]", (int)item.n,
                          item.p);
            return CS_ECONFIG;
        }
    }
    return 0;
}

int cs_api_remote_start(cs_gateway *gw, cs_buf *err)
{
    const cs_config *cfg = gw->cfg;
    int rc = check_peers(cfg->node_peers, err);
    if (rc < 0) return rc;
    if (!(gw->remote = calloc(1, sizeof *gw->remote))) return -ENOMEM;
    if (cfg->redis_url[0] && !cfg->cluster_secret[0] && gw->loop_index == 0) /* once */
        cs_warn("cluster: CLUSTER_SECRET is not set: a node asks another for a recording with "
                "its client's own credentials, and accepts only those");
    return 0;
}

void cs_api_remote_free(cs_gateway *gw)
{
    free(gw->remote);
    gw->remote = NULL;
}
