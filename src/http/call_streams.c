/* The stream lifecycle API, for sources that are not a telephony provider (a browser, a
 * SIP bridge, a test rig):
 *   POST /api/v1/call_streams             creates a stream: its id (CS…), the socket URL
 *                                         and a one-time token
 *   GET  /call_streams/{id}?token=…       the source's socket (binary audio, provider
 *                                         "binary"): the call starts when it connects
 *   GET  /api/v1/call_streams/{id}        where it stands
 *   POST /api/v1/call_streams/{id}/complete  ends it
 * A created stream waits in its creator loop's memory until its source connects with the
 * token (kept as a SHA-256 only, good once) or CALL_STREAM_TOKEN_S passes (it expires);
 * pending streams do not survive a restart. A request for a stream another loop or node
 * holds is asked of every loop (cluster.c: CLAIM, PEEK, CANCEL): the holder checks the
 * token's hash and hands the stream over, so its source may connect anywhere. Once
 * connected it is a call like any other (in the directory), ended by `complete` or by its
 * source closing the socket. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/crypto.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "core/pool.h"
#include "core/prom.h"
#include "http/auth.h"
#include "http/cluster_msg.h"
#include "http/gateway.h"

#define ID_BYTES     16 /* random bytes of an id: CS + 32 hex digits */
#define TOKEN_BYTES  24 /* random bytes of a token: 48 hex digits */
#define FIELD_MAX    64 /* from, to, name (the message below says it) */
#define TICK_MS      1000
#define EXPIRE_BATCH 64
#define JSON_MAX     4096
/* Streams that ended without connecting, kept by the loop that ended them: it answers for
 * them until their rows are surely readable through every loop's and node's store. */
#define ENDED_KEPT 128
/* The parameters a stream's start carries: From, To, Agent, Name and the caller's. */
#define START_PARAMS (4 + CS_API_MAX_PARAMS)

typedef struct pending {
    char id[CS_SID_MAX + 1];
    uint8_t token_hash[CS_SHA256_LEN];
    uint64_t expires_ms; /* on the loop's clock */
    cs_pcodec *codec;
    char format[8];
    unsigned rate;
    cs_pool pool; /* from, to and params */
    const char *from, *to;
    cs_kv params[START_PARAMS];
    size_t nparams;
} pending;

typedef struct cs_call_stream_stats {
    uint64_t created, connected, ended, canceled, expired, handed, bad_token, limited;
} cs_call_stream_stats;

typedef struct gone {
    char id[CS_SID_MAX + 1];
    char state[16]; /* expired, canceled, failed */
} gone;

struct cs_call_streams {
    cs_gateway *gw;
    cs_map pending; /* id → pending */
    gone ended[ENDED_KEPT]; /* a ring, the latest at nended - 1 */
    size_t nended;
    uv_timer_t timer;
    cs_call_stream_stats stats;
    cs_pcodec_stats codec; /* every source's frames */
};

static const cs_provider_ops *const wire = &cs_provider_binary;

static bool is_ours(cs_str id)
{
    return cs_call_sid_valid(id) && id.p[0] == CS_BINARY_SID_PREFIX[0] &&
           id.p[1] == CS_BINARY_SID_PREFIX[1];
}

/* ---- pending streams ---- */

static void pending_free(pending *p)
{
    if (p->codec) wire->codec_free(p->codec);
    cs_pool_free(&p->pool);
    free(p);
}

/* A `type` event {"status"|"action": st, "by": by} on the stream's call. */
static void event(cs_gateway *gw, const char *id, enum cs_event_type type, const char *st,
                  const char *by)
{
    cs_buf out = CS_BUF_INIT(JSON_MAX);
    cs_json j;
    cs_json_init(&j, &out);
    cs_json_obj(&j);
    cs_json_kstr(&j, type == CS_EVENT_STATUS ? "status" : "action", st);
    if (by) cs_json_kstr(&j, "by", by);
    if (type == CS_EVENT_CONTROL) cs_json_kstr(&j, "state", "done");
    cs_json_obj_end(&j);
    cs_calls_event(&gw->calls, id, type, cs_json_end(&j) == 0 ? out.data : NULL);
    cs_buf_free(&out);
}

/* A stream that ends without having connected: its final status, row and event. */
static void ended(cs_gateway *gw, const char *id, const char *st, const char *by)
{
    cs_call_streams *cs = gw->call_streams;
    if (cs) {
        gone *g = &cs->ended[cs->nended++ % ENDED_KEPT];
        snprintf(g->id, sizeof g->id, "%s", id);
        snprintf(g->state, sizeof g->state, "%s", st);
    }
    cs_call_row row = {.sid = id, .status = st, .ended_at = cs_wall_ms()};
    cs_journal_call(gw, &row);
    event(gw, id, CS_EVENT_STATUS, st, by);
}

/* Takes `p` out of the table (it no longer waits): its slot of the process's goes back. */
static void unlist(cs_call_streams *cs, pending *p)
{
    cs_quota_give(&cs->gw->shared->pending);
    cs_map_del(&cs->pending, cs_str_of(p->id));
    if (cs->pending.len == 0) uv_timer_stop(&cs->timer);
}

static void on_tick(uv_timer_t *t)
{
    cs_call_streams *cs = t->data;
    uint64_t now = uv_now(cs->gw->loop);
    pending *due[EXPIRE_BATCH];
    size_t n;
    do { /* the table may not change during a walk: a batch at a time */
        size_t pos = 0;
        cs_str key;
        void *v;
        for (n = 0; n < EXPIRE_BATCH && cs_map_next(&cs->pending, &pos, &key, &v);)
            if (((pending *)v)->expires_ms <= now) due[n++] = v;
        for (size_t i = 0; i < n; i++) {
            pending *p = due[i];
            cs_info("call stream %s: expired, its source never connected", p->id);
            cs->stats.expired++;
            ended(cs->gw, p->id, "expired", NULL);
            unlist(cs, p);
            pending_free(p);
        }
    } while (n == EXPIRE_BATCH);
}

/* ---- answers ---- */

static void respond(cs_request *r, int code, cs_json *j, cs_buf *out)
{
    if (cs_json_end(j) < 0)
        cs_respond_error(r, 500, "answer too large");
    else
        cs_respond_json(r, code, out);
    cs_buf_free(out);
}

/* ws(s)://…/call_streams/{id}, from PUBLIC_URL (or how the gateway derived it). */
static int socket_url(const cs_gateway *gw, const char *id, cs_buf *out)
{
    bool tls = strncmp(gw->public_url, "https:", 6) == 0;
    return cs_buf_printf(out, "%s%s/call_streams/%s", tls ? "wss" : "ws",
                         gw->public_url + (tls ? 5 : 4), id);
}

/* ---- POST /api/v1/call_streams ---- */

/* The start's parameters, copied into `p`: 0 or -ENOMEM. */
static int keep_params(pending *p, const char *const *names, const char *const *values, size_t n)
{
    for (size_t i = 0; i < n && i < START_PARAMS; i++) {
        char *k = cs_pool_strdup(&p->pool, names[i]), *v = cs_pool_strdup(&p->pool, values[i]);
        if (!k || !v) return -ENOMEM;
        p->params[i] = (cs_kv){cs_str_of(k), cs_str_of(v)};
        if (strcmp(k, "From") == 0) p->from = v;
        if (strcmp(k, "To") == 0) p->to = v;
        p->nparams = i + 1;
    }
    return 0;
}

/* The body's checks: 0, or < 0 once answered. */
static int read_create(cs_request *r, const cJSON *body, pending *p)
{
    bool bad = false;
    const char *format = cs_api_jstr(body, "format", &bad), *from = cs_api_jstr(body, "from", &bad);
    const char *to = cs_api_jstr(body, "to", &bad), *agent = cs_api_jstr(body, "agent", &bad);
    const char *name = cs_api_jstr(body, "name", &bad);
    const cJSON *rate = cJSON_GetObjectItemCaseSensitive(body, "rate");
    const cs_agent_ops *ops;
    const char *why = NULL;
    if (bad)
        why = "format, from, to, agent and name are strings";
    else if (!format)
        why = "format is required: mulaw or pcm16";
    else if (rate &&
             !(cJSON_IsNumber(rate) && (rate->valuedouble == 8000 || rate->valuedouble == 16000)))
        why = "rate must be 8000 or 16000";
    else if ((from && strlen(from) > FIELD_MAX) || (to && strlen(to) > FIELD_MAX) ||
             (name && strlen(name) > FIELD_MAX))
        why = "from, to and name are at most 64 characters";
    if (!why && agent && cs_agent_find(agent, &ops) < 0) {
        cs_respond_error(r, 400, "agent '%.40s' is not one of %s", agent, cs_agent_names());
        return CS_EPARSE;
    }
    if (why) {
        cs_respond_error(r, 400, "%s", why);
        return CS_EPARSE;
    }
    p->rate = rate ? (unsigned)rate->valuedouble : 8000;
    snprintf(p->format, sizeof p->format, "%s", format);
    cs_gateway *gw = r->app;
    int rc = wire->codec_new(&p->codec, format, p->rate, &gw->call_streams->codec);
    if (rc == CS_EPARSE) {
        cs_respond_error(r, 400, "format must be mulaw (rate 8000) or pcm16 (rate 8000 or 16000)");
        return rc;
    }
    if (rc < 0) {
        cs_respond_error(r, 503, "cannot set up the format: %s", cs_strerror(rc));
        return rc;
    }
    const char *names[START_PARAMS], *values[START_PARAMS];
    size_t n = 0;
    const char *fixed[][2] = {{"From", from}, {"To", to}, {"Agent", agent}, {"Name", name}};
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++)
        if (fixed[i][1]) {
            names[n] = fixed[i][0];
            values[n++] = fixed[i][1];
        }
    if ((rc = cs_api_params(r, body, names, values, &n)) < 0) return rc;
    if (keep_params(p, names, values, n) < 0) {
        cs_respond_error(r, 503, "out of memory");
        return -ENOMEM;
    }
    return 0;
}

static void params_json(cs_json *j, const pending *p)
{
    cs_json_obj(j);
    for (size_t i = 0; i < p->nparams; i++)
        cs_json_kstr(j, p->params[i].name.p, p->params[i].value.p);
    cs_json_obj_end(j);
}

void cs_api_call_stream_create(cs_request *r)
{
    if (!cs_auth_check(r, CS_ACCESS_API, cs_api_call_stream_create)) return;
    cs_gateway *gw = r->app;
    cs_call_streams *cs = gw->call_streams;
    if (gw->draining) {
        cs_respond_error(r, 503, "shutting down");
        return;
    }
    /* A stream waiting for its source is a call on its way: it counts towards MAX_CALLS.
     * Both counts are the process's (every loop's). */
    cs_quota *waiting = &gw->shared->pending;
    size_t calls = cs_quota_held(&gw->shared->calls), nwaiting = cs_quota_held(waiting);
    if (calls + nwaiting >= (size_t)gw->cfg->max_calls) {
        cs->stats.limited++;
        cs_respond_error(r, 503, "the gateway holds %zu calls and %zu waiting streams (MAX_CALLS)",
                         calls, nwaiting);
        return;
    }
    if (!cs_quota_take(waiting)) {
        cs->stats.limited++;
        cs_respond_error(r, 429,
                         "%zu streams already wait for their source (CALL_STREAM_MAX_PENDING)",
                         cs_quota_held(waiting));
        return;
    }
    cJSON *body = cs_api_json_body(r, false);
    pending *p = body ? calloc(1, sizeof *p) : NULL;
    if (!p) {
        cs_quota_give(waiting);
        if (body) cs_respond_error(r, 503, "out of memory");
        cJSON_Delete(body);
        return;
    }
    int rc = read_create(r, body, p);
    cJSON_Delete(body);
    uint8_t raw[TOKEN_BYTES];
    char token[2 * TOKEN_BYTES + 1];
    if (rc == 0) {
        memcpy(p->id, CS_BINARY_SID_PREFIX, 2);
        cs_random(raw, ID_BYTES);
        cs_hex(p->id + 2, raw, ID_BYTES);
        cs_random(raw, TOKEN_BYTES);
        cs_hex(token, raw, TOKEN_BYTES);
        cs_sha256(p->token_hash, token, strlen(token));
        p->expires_ms = uv_now(gw->loop) + (uint64_t)gw->cfg->call_stream_token_s * 1000;
        if (cs_map_put(&cs->pending, cs_str_of(p->id), p) < 0) {
            cs_respond_error(r, 503, "out of memory");
            rc = -ENOMEM;
        }
    }
    if (rc < 0) {
        cs_quota_give(waiting);
        pending_free(p);
        return;
    }
    if (!uv_is_active((uv_handle_t *)&cs->timer))
        uv_timer_start(&cs->timer, on_tick, TICK_MS, TICK_MS);
    cs->stats.created++;
    cs_buf params = CS_BUF_INIT(1 << 16);
    cs_json pj;
    cs_json_init(&pj, &params);
    params_json(&pj, p);
    cs_json_end(&pj);
    int64_t now = cs_wall_ms();
    cs_call_row row = {.sid = p->id,
                       .from = p->from,
                       .to = p->to,
                       .direction = "api",
                       .status = "queued",
                       .params = params.data,
                       .created_at = now};
    cs_journal_call(gw, &row);
    cs_buf_free(&params);
    event(gw, p->id, CS_EVENT_STATUS, "queued", r->user);
    cs_info("call stream %s: created (%s at %u Hz), waiting %lld s for its source", p->id,
            p->format, p->rate, (long long)gw->cfg->call_stream_token_s);

    cs_buf out = CS_BUF_INIT(JSON_MAX), url = CS_BUF_INIT(CS_URL_CAP + 64);
    socket_url(gw, p->id, &url);
    cs_json j;
    cs_json_init(&j, &out);
    cs_json_obj(&j);
    cs_json_kstr(&j, "id", p->id);
    cs_json_kstr(&j, "url", url.data);
    cs_json_kstr(&j, "token", token);
    cs_json_kint(&j, "expires_in_s", gw->cfg->call_stream_token_s);
    cs_json_kstr(&j, "format", p->format);
    cs_json_kint(&j, "rate", p->rate);
    cs_json_obj_end(&j);
    cs_buf_free(&url);
    respond(r, 201, &j, &out);
}

/* ---- the source's socket ---- */

static const char *const no_stream = "no stream waits under this id: unknown, expired or ended";
static const char *const connected_already =
    "the stream is connected already: a token is good once";

/* Whether `hash` (hex) is `p`'s token's, in constant time. */
static bool token_matches(const pending *p, const char *hash)
{
    char mine[2 * CS_SHA256_LEN + 1];
    cs_hex(mine, p->token_hash, CS_SHA256_LEN);
    return cs_ct_equal(mine, 2 * CS_SHA256_LEN, hash, strlen(hash));
}

static void refused_token(cs_request *r, const char *id, const char *why)
{
    cs_gateway *gw = r->app;
    gw->call_streams->stats.bad_token++;
    cs_warn("call stream %s: refused a source from %s: %s token", id,
            r->conn ? r->conn->peer_ip : "?", why);
    cs_respond_error(r, 403, "invalid or missing token");
}

/* Its source is here (`p` no longer waits, wherever it did): the call starts. */
static void start(cs_request *r, pending *p)
{
    cs_gateway *gw = r->app;
    cs_pevent ev = {.type = CS_PEV_START, .seq = -1, .stream_id = cs_str_of(p->id)};
    ev.start.account_id = CS_STR("");
    ev.start.call_id = ev.start.stream_id = ev.stream_id;
    ev.start.tracks = CS_TRACK_BIT(CS_TRACK_INBOUND);
    ev.start.encoding = CS_STR("audio/x-mulaw");
    ev.start.sample_rate = 8000;
    ev.start.channels = 1;
    ev.start.params = p->params;
    ev.start.nparams = p->nparams;
    if (cs_media_attach(r, p->codec, &ev) == 0) {
        p->codec = NULL;
        gw->call_streams->stats.connected++;
    } else {
        ended(gw, p->id, "failed", NULL);
    }
    pending_free(p);
}

/* What another loop's holder handed over (a CLAIM's body): the stream, as if made here. */
static pending *handed_over(cs_call_streams *cs, const char *id, const char *json)
{
    cJSON *o = cJSON_Parse(json);
    const cJSON *format = cJSON_GetObjectItemCaseSensitive(o, "format"),
                *rate = cJSON_GetObjectItemCaseSensitive(o, "rate"),
                *params = cJSON_GetObjectItemCaseSensitive(o, "params"), *kv;
    pending *p = calloc(1, sizeof *p);
    bool ok = p && cJSON_IsString(format) && cJSON_IsNumber(rate) && cJSON_IsObject(params);
    if (ok) {
        snprintf(p->id, sizeof p->id, "%s", id);
        snprintf(p->format, sizeof p->format, "%s", format->valuestring);
        p->rate = (unsigned)rate->valuedouble;
        const char *names[START_PARAMS], *values[START_PARAMS];
        size_t n = 0;
        cJSON_ArrayForEach(kv, params)
        {
            if (!cJSON_IsString(kv) || n == START_PARAMS) {
                ok = false;
                break;
            }
            names[n] = kv->string;
            values[n++] = kv->valuestring;
        }
        ok = ok && keep_params(p, names, values, n) == 0 &&
             wire->codec_new(&p->codec, p->format, p->rate, &cs->codec) == 0;
    }
    cJSON_Delete(o);
    if (!ok && p) {
        pending_free(p);
        p = NULL;
    }
    return p;
}

/* A CLAIM's answer: the stream handed over starts here, or the refusal. */
static void claimed(cs_request *r, const char *id, int code, const char *msg, const char *body)
{
    cs_gateway *gw = r->app;
    if (code == 403) {
        refused_token(r, id, "wrong");
        return;
    }
    if (code != 200) {
        cs_respond_error(r, code, "%s", code == 404 ? no_stream : msg);
        return;
    }
    pending *p = body && gw->call_streams ? handed_over(gw->call_streams, id, body) : NULL;
    if (!p || gw->draining) {
        cs_error("call stream %s: what another loop handed over cannot start here", id);
        ended(gw, id, "failed", NULL);
        if (p) pending_free(p);
        cs_respond_error(r, 503, "the stream cannot start here");
        return;
    }
    cs_info("call stream %s: its source connected here, the stream came from another loop", id);
    start(r, p);
}

static const cs_cluster_kind claim_kind = {.answer = claimed, .spread = true};

void cs_call_stream_upgrade(cs_request *r)
{
    cs_gateway *gw = r->app;
    cs_call_streams *cs = gw->call_streams;
    if (gw->draining) {
        cs_respond_error(r, 503, "shutting down");
        return;
    }
    cs_str sid = r->params[0];
    if (!is_ours(sid)) {
        cs_respond_error(r, 404, "%s", no_stream);
        return;
    }
    char id[CS_SID_MAX + 1];
    cs_str_copy(id, sizeof id, sid);
    pending *p = cs_map_get(&cs->pending, sid);
    if (!p && cs_calls_call(&gw->calls, sid)) {
        cs_respond_error(r, 409, "%s", connected_already);
        return;
    }
    cs_str key;
    int bad_upgrade = cs_ws_check_upgrade(&r->head, &key);
    if (bad_upgrade) { /* the token stays good for a real one */
        cs_respond_error(r, bad_upgrade, "not a valid WebSocket upgrade");
        return;
    }
    cs_form q;
    const char *token = NULL;
    bool parsed = cs_form_parse(&q, r->head.query.p ? r->head.query.p : "", r->head.query.n) == 0;
    if (parsed) token = cs_form_get(&q, "token");
    uint8_t hash[CS_SHA256_LEN];
    char hex[2 * CS_SHA256_LEN + 1];
    if (token) {
        cs_sha256(hash, token, strlen(token));
        cs_hex(hex, hash, sizeof hash);
    }
    bool given = token != NULL;
    if (parsed) cs_form_free(&q);
    if (!given) {
        refused_token(r, id, "no");
        return;
    }
    if (!p) { /* another loop's, perhaps: whoever holds it hands it over */
        cs_cmd c = {.op = CS_CMD_CLAIM, .sid = id, .hash = hex};
        cs_cluster_request(r, &c, &claim_kind);
        return;
    }
    if (!token_matches(p, hex)) {
        refused_token(r, id, "wrong");
        return;
    }
    /* Good once: whatever happens next, it no longer waits. */
    unlist(cs, p);
    start(r, p);
}

/* ---- GET and complete ---- */

/* The path's id: one of ours, else answered 404. */
static bool path_id(cs_request *r, char id[CS_SID_MAX + 1])
{
    if (r->nparams < 1 || !is_ours(r->params[0])) {
        cs_respond_error(r, 404, "no such call stream");
        return false;
    }
    cs_str_copy(id, CS_SID_MAX + 1, r->params[0]);
    return true;
}

static void state_json(cs_json *j, const char *id, const char *state)
{
    cs_json_obj(j);
    cs_json_kstr(j, "id", id);
    cs_json_kstr(j, "status", state);
}

/* Neither waiting nor live: what the store says of it. */
typedef struct lookup {
    cs_request *r;
    bool complete;
} lookup;

static void looked_up(cs_store_query *q, void *data)
{
    lookup *l = data;
    cs_request *r = l->r;
    bool complete = l->complete;
    free(l);
    if (q->status == CS_ENOTFOUND && !q->behind) {
        cs_respond_error(r, 404, "no such call stream");
    } else if (q->status != 0) {
        cs_respond_error(r, 503, "the store cannot answer: %s", q->error);
    } else if (complete) {
        cs_respond_error(r, 409, "the stream has ended already (%s)",
                         q->calls[0].status ? q->calls[0].status : "?");
    } else {
        cs_buf out = CS_BUF_INIT(JSON_MAX);
        cs_json j;
        cs_json_init(&j, &out);
        state_json(&j, q->calls[0].sid, q->calls[0].status ? q->calls[0].status : "unknown");
        cs_json_obj_end(&j);
        respond(r, 200, &j, &out);
    }
    cs_store_query_free(q);
}

static void look_up(cs_request *r, const char *id, bool complete)
{
    cs_gateway *gw = r->app;
    lookup *l = malloc(sizeof *l);
    cs_store_query *q = l ? cs_store_query_new(CS_Q_CALL, looked_up, l) : NULL;
    if (!q) {
        free(l);
        cs_respond_error(r, 503, "out of memory");
        return;
    }
    *l = (lookup){r, complete};
    snprintf(q->sid, sizeof q->sid, "%s", id);
    cs_store_query_run(gw->store, q);
}

/* A PEEK's or a CANCEL's answer: the holder's as it is; nobody's, the store's. */
static void asked(cs_request *r, const char *id, int code, const char *msg, const char *body,
                  bool complete)
{
    cJSON *o = code == 200 && body ? cJSON_Parse(body) : NULL;
    bool object = cJSON_IsObject(o); /* what the other node says goes out as it is */
    cJSON_Delete(o);
    if (code == 404) {
        look_up(r, id, complete);
    } else if (object) {
        cs_buf out = CS_BUF_INIT(JSON_MAX);
        if (cs_buf_append(&out, body, strlen(body)) < 0)
            cs_respond_error(r, 503, "out of memory");
        else
            cs_respond_json(r, 200, &out);
        cs_buf_free(&out);
    } else {
        cs_respond_error(r, code == 200 ? 502 : code, "%s",
                         code == 200 ? "the holding node's answer does not read" : msg);
    }
}

static void peeked(cs_request *r, const char *id, int code, const char *msg, const char *body)
{
    asked(r, id, code, msg, body, false);
}

static void canceled(cs_request *r, const char *id, int code, const char *msg, const char *body)
{
    asked(r, id, code, msg, body, true);
}

static const cs_cluster_kind peek_kind = {.answer = peeked, .spread = true},
                             cancel_kind = {.answer = canceled, .spread = true};

/* Where `id` stands, if it waits or is live here: 0, or CS_ENOTFOUND. */
static int status_here(cs_gateway *gw, const char *id, cs_json *j)
{
    const pending *p = cs_map_get(&gw->call_streams->pending, cs_str_of(id));
    const cs_call *call = cs_calls_call(&gw->calls, cs_str_of(id));
    if (!p && !call) return CS_ENOTFOUND;
    state_json(j, id, p ? "waiting" : "in-progress");
    if (p) {
        uint64_t now = uv_now(gw->loop);
        cs_json_kstr(j, "format", p->format);
        cs_json_kint(j, "rate", p->rate);
        cs_json_kint(j, "expires_in_s", (int64_t)((p->expires_ms - now + 999) / 1000));
    } else if (call->nstreams) {
        const cs_stream_stats *st = &call->streams[0]->stats;
        cs_json_kint(j, "frames_in", (int64_t)st->frames[CS_TRACK_INBOUND]);
        cs_json_kint(j, "frames_out", (int64_t)st->frames_out);
    }
    cs_json_obj_end(j);
    return 0;
}

/* Ends `id` if it waits (canceled) or is live (completed) here: 0, or CS_ENOTFOUND. */
/* How `id` ended, if it ended unconnected here lately; else NULL. */
static const char *ended_lately(const cs_call_streams *cs, const char *id)
{
    size_t n = cs->nended < ENDED_KEPT ? cs->nended : ENDED_KEPT;
    for (size_t i = 1; i <= n; i++) {
        const gone *g = &cs->ended[(cs->nended - i) % ENDED_KEPT];
        if (strcmp(g->id, id) == 0) return g->state;
    }
    return NULL;
}

static int complete_here(cs_gateway *gw, const char *id, const char *by, cs_json *j)
{
    cs_call_streams *cs = gw->call_streams;
    pending *p = cs_map_get(&cs->pending, cs_str_of(id));
    const cs_call *call = cs_calls_call(&gw->calls, cs_str_of(id));
    const char *state;
    if (p) {
        /* Never connected: it ends before it began. */
        cs->stats.canceled++;
        ended(gw, id, "canceled", by);
        unlist(cs, p);
        pending_free(p);
        state = "canceled";
    } else if (call) {
        cs_info("call stream %s: completed through the API", id);
        event(gw, id, CS_EVENT_CONTROL, "complete", by);
        cs_media_end_call(gw, id, "completed"); /* the call ends: recorded, completed */
        state = "completed";
    } else {
        return CS_ENOTFOUND;
    }
    state_json(j, id, state);
    cs_json_obj_end(j);
    return 0;
}

void cs_api_call_stream_get(cs_request *r)
{
    if (!cs_auth_check(r, CS_ACCESS_API, cs_api_call_stream_get)) return;
    cs_gateway *gw = r->app;
    char id[CS_SID_MAX + 1];
    if (!path_id(r, id)) return;
    cs_buf out = CS_BUF_INIT(JSON_MAX);
    cs_json j;
    cs_json_init(&j, &out);
    if (status_here(gw, id, &j) == 0) {
        respond(r, 200, &j, &out);
        return;
    }
    const char *gone_as = ended_lately(gw->call_streams, id);
    if (gone_as) { /* as the store will say */
        state_json(&j, id, gone_as);
        cs_json_obj_end(&j);
        respond(r, 200, &j, &out);
        return;
    }
    cs_buf_free(&out);
    cs_cmd c = {.op = CS_CMD_PEEK, .sid = id};
    cs_cluster_request(r, &c, &peek_kind);
}

void cs_api_call_stream_complete(cs_request *r)
{
    if (!cs_auth_check(r, CS_ACCESS_API, cs_api_call_stream_complete)) return;
    cs_gateway *gw = r->app;
    char id[CS_SID_MAX + 1];
    if (!path_id(r, id)) return;
    cJSON *body = cs_api_json_body(r, true);
    if (!body) return;
    cJSON_Delete(body);
    cs_buf out = CS_BUF_INIT(JSON_MAX);
    cs_json j;
    cs_json_init(&j, &out);
    if (complete_here(gw, id, r->user, &j) == 0) {
        respond(r, 200, &j, &out);
        return;
    }
    cs_buf_free(&out);
    const char *gone_as = ended_lately(gw->call_streams, id);
    if (gone_as) {
        cs_respond_error(r, 409, "the stream has ended already (%s)", gone_as);
        return;
    }
    cs_cmd c = {.op = CS_CMD_CANCEL, .sid = id, .by = r->user[0] ? r->user : NULL};
    cs_cluster_request(r, &c, &cancel_kind);
}

/* ---- what other loops ask ---- */

int cs_call_stream_serve(cs_gateway *gw, const cs_cmd *c, cs_buf *body, char *msg, size_t cap)
{
    cs_call_streams *cs = gw->call_streams;
    if (!cs) {
        snprintf(msg, cap, "shutting down");
        return 503;
    }
    cs_json j;
    cs_json_init(&j, body);
    int rc = CS_ENOTFOUND;
    if (c->op == CS_CMD_PEEK) rc = status_here(gw, c->sid, &j);
    if (c->op == CS_CMD_CANCEL) rc = complete_here(gw, c->sid, c->by, &j);
    const char *gone_as = rc == CS_ENOTFOUND ? ended_lately(cs, c->sid) : NULL;
    if (gone_as && c->op == CS_CMD_CANCEL) { /* as the store will say */
        snprintf(msg, cap, "the stream has ended already (%s)", gone_as);
        return 409;
    }
    if (gone_as && c->op == CS_CMD_PEEK) {
        state_json(&j, c->sid, gone_as);
        cs_json_obj_end(&j);
        rc = 0;
    }
    if (c->op == CS_CMD_CLAIM) {
        pending *p = cs_map_get(&cs->pending, cs_str_of(c->sid));
        if (!p && cs_calls_call(&gw->calls, cs_str_of(c->sid))) {
            snprintf(msg, cap, "%s", connected_already);
            return 409;
        }
        if (p && !token_matches(p, c->hash)) {
            snprintf(msg, cap, "invalid or missing token");
            return 403;
        }
        if (p) { /* good once: it is the claimer's from here */
            cs_json_obj(&j);
            cs_json_kstr(&j, "format", p->format);
            cs_json_kint(&j, "rate", p->rate);
            cs_json_key(&j, "params");
            params_json(&j, p);
            cs_json_obj_end(&j);
            rc = 0; /* forgotten once the answer is on its way (cs_call_stream_handed) */
        }
    }
    if (rc == CS_ENOTFOUND) {
        snprintf(msg, cap, "not here");
        return 404;
    }
    if (cs_json_end(&j) < 0) {
        snprintf(msg, cap, "answer too large");
        return 500;
    }
    return 200;
}

void cs_call_stream_handed(cs_gateway *gw, const char *id)
{
    cs_call_streams *cs = gw->call_streams;
    pending *p = cs ? cs_map_get(&cs->pending, cs_str_of(id)) : NULL;
    if (!p) return;
    cs->stats.handed++;
    cs_info("call stream %s: its source connected on another loop: handed over", id);
    unlist(cs, p);
    pending_free(p);
}

/* ---- start, stop, metrics ---- */

static void call_ended(void *o, const cs_call *call)
{
    cs_call_streams *cs = o;
    if (is_ours(cs_str_of(call->sid))) cs->stats.ended++;
}

static void timer_closed(uv_handle_t *h)
{
    free(h->data);
}

int cs_call_streams_start(cs_gateway *gw)
{
    cs_call_streams *cs = calloc(1, sizeof *cs);
    if (!cs) return -ENOMEM;
    cs->gw = gw;
    cs_call_observer o = {.call_ended = call_ended, .data = cs};
    int rc = cs_calls_observe(&gw->calls, &o);
    if (rc < 0) {
        free(cs);
        return rc;
    }
    uv_timer_init(gw->loop, &cs->timer);
    cs->timer.data = cs;
    gw->call_streams = cs;
    return 0;
}

void cs_call_streams_stop(cs_gateway *gw)
{
    cs_call_streams *cs = gw->call_streams;
    if (!cs) return;
    size_t pos = 0;
    cs_str key;
    void *v;
    while (cs_map_next(&cs->pending, &pos, &key, &v)) {
        pending *p = v;
        cs->stats.expired++;
        ended(gw, p->id, "expired", "shutdown");
        cs_quota_give(&gw->shared->pending);
        pending_free(p);
    }
    cs_map_free(&cs->pending);
    uv_timer_stop(&cs->timer);
    /* The observer may still be called while the last calls end: it stays until the
     * loop closes the timer, which frees it. */
    uv_close((uv_handle_t *)&cs->timer, timer_closed);
    gw->call_streams = NULL;
}

void cs_call_streams_metrics(const cs_gateway *gw, cs_buf *out)
{
    const cs_call_streams *cs = gw->call_streams;
    if (!cs) return;
    const cs_call_stream_stats *s = &cs->stats;
    cs_prom_gauge(out, "callstream_call_streams_pending",
                  "streams created through the API whose source has not connected",
                  (double)cs->pending.len);
    cs_prom_family(
        out, "callstream_call_streams_total", "counter",
        "API streams by what happened: created, connected, ended (a connected one's "
        "call ended), canceled (completed before it connected), expired, handed (its source "
        "connected on another loop or node, which took it)",
        "event",
        (const char *const[]){"created", "connected", "ended", "canceled", "expired", "handed"},
        (const uint64_t[]){s->created, s->connected, s->ended, s->canceled, s->expired, s->handed},
        6);
    cs_prom_counter(out, "callstream_call_streams_bad_token_total",
                    "source connections refused for a wrong or missing token",
                    (double)s->bad_token);
    cs_prom_counter(out, "callstream_call_streams_limited_total",
                    "creations refused at CALL_STREAM_MAX_PENDING", (double)s->limited);
    const cs_pcodec_stats *c = &cs->codec;
    cs_prom_family(out, "callstream_call_stream_frames_total", "counter",
                   "binary audio frames, by direction", "direction",
                   (const char *const[]){"in", "out"},
                   (const uint64_t[]){c->frames_in, c->frames_out}, 2);
    cs_prom_counter(out, "callstream_call_stream_frames_resampled_total",
                    "binary frames whose sample rate was converted (either way)",
                    (double)c->resampled);
    cs_prom_counter(out, "callstream_call_stream_odd_frames_total",
                    "PCM frames of an odd length (their last byte carried to the next)",
                    (double)c->odd_bytes);
}
