/* The REST API over the store: calls newest first (cursor paging), one call with its
 * streams and events, events paged, and the recording as a WAV (with Range, read off
 * the loop through libuv's file thread pool). Whether a call is live comes from the
 * call directory (whichever node holds it); a call live here adds its fresh counters
 * and its recording file, which only this node has. */
#include <cjson/cJSON.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "audio/wav.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "http/api_int.h"
#include "http/auth.h"
#include "http/gateway.h"
#include "provider/twilio.h"

#define API_JSON_MAX    (32u << 20)
#define FILE_CHUNK      65536
#define FILE_HIGH_WATER (1u << 20) /* pause reading while this much is unsent */

/* ---- JSON of rows ---- */

/* Stored JSON text written as JSON, or null. */
static void kraw(cs_json *j, const char *key, const char *json)
{
    cs_json_key(j, key);
    if (json && *json)
        cs_json_raw(j, json, strlen(json));
    else
        cs_json_null(j);
}

/* `live`: in the cluster (the directory's word). */
static void call_json(cs_json *j, const cs_gateway *gw, const cs_call_row *c, bool live)
{
    const cs_call *here = cs_calls_call(&gw->calls, cs_str_of(c->sid));
    live = live || here;
    cs_json_kstr(j, "sid", c->sid);
    cs_json_kstr(j, "account_sid", c->account_sid);
    cs_json_kstr(j, "from", c->from);
    cs_json_kstr(j, "to", c->to);
    cs_json_kstr(j, "direction", c->direction);
    cs_json_kstr(j, "status", c->status);
    cs_json_kbool(j, "live", live);
    cs_json_ktime(j, "created_at", c->created_at);
    cs_json_ktime(j, "started_at", c->started_at);
    cs_json_ktime(j, "ended_at", c->ended_at);
    cs_json_key(j, "duration_ms");
    if (c->started_at && (c->ended_at || live))
        cs_json_int(j, (c->ended_at ? c->ended_at : cs_wall_ms()) - c->started_at);
    else
        cs_json_null(j);
    kraw(j, "parameters", c->params);
    cs_json_kstr(j, "transcription", c->transcription);
    kraw(j, "summary", c->summary);
    cs_json_kstr(j, "summary_status", c->summary_status);
    cs_json_key(j, "recording");
    if (c->recording || (here && here->rec)) {
        char url[128];
        snprintf(url, sizeof url, "/api/v1/calls/%s/recording.wav", c->sid);
        cs_json_obj(j);
        cs_json_kstr(j, "url", url);
        cs_json_key(j, "duration_ms");
        if (c->recording_ms && !live)
            cs_json_int(j, c->recording_ms);
        else
            cs_json_null(j);
        cs_json_obj_end(j);
    } else {
        cs_json_null(j);
    }
}

/* `call_live`: its call is live in the cluster (then a stream not ended is live). */
static void stream_json(cs_json *j, const cs_gateway *gw, const cs_stream_row *t, bool call_live)
{
    const cs_stream *live = cs_calls_stream(&gw->calls, cs_str_of(t->sid));
    cs_json_obj(j);
    cs_json_kstr(j, "sid", t->sid);
    kraw(j, "tracks", t->tracks);
    cs_json_kstr(j, "mode", t->mode);
    cs_json_kbool(j, "live", live || (call_live && !t->ended_at));
    cs_json_ktime(j, "started_at", t->started_at);
    cs_json_ktime(j, "ended_at", t->ended_at);
    cs_json_kstr(j, "end_reason", t->end_reason);
    cs_json_key(j, "stats");
    if (live) {
        cs_buf stats = CS_BUF_INIT(1 << 16);
        cs_stream_stats_json(live, &stats);
        cs_json_raw(j, stats.data, stats.len);
        cs_buf_free(&stats);
    } else if (t->stats) {
        cs_json_raw(j, t->stats, strlen(t->stats));
    } else {
        cs_json_null(j);
    }
    cs_json_obj_end(j);
}

static void event_fields(cs_json *j, const cs_event_row *e)
{
    cs_json_kint(j, "id", e->id);
    cs_json_ktime(j, "at", e->at);
    cs_json_kstr(j, "type", e->type);
    cs_json_kstr(j, "stream_sid", e->stream_sid);
    kraw(j, "detail", e->detail);
}

static void event_json(cs_json *j, const cs_event_row *e)
{
    cs_json_obj(j);
    event_fields(j, e);
    cs_json_obj_end(j);
}

static void respond_json(cs_request *r, cs_json *j, cs_buf *out)
{
    if (cs_json_end(j) < 0)
        cs_respond_error(r, 500, "answer too large");
    else
        cs_respond_json(r, 200, out);
    cs_buf_free(out);
}

/* ---- query strings ---- */

static int query_int(cs_request *r, const cs_form *q, const char *name, int64_t min, int64_t max,
                     int64_t def, int64_t *out)
{
    const char *v = cs_form_get(q, name);
    if (!v) {
        *out = def;
        return 0;
    }
    uint64_t n;
    if (cs_str_to_u64(cs_str_of(v), (uint64_t)max, &n) < 0 || (int64_t)n < min) {
        cs_respond_error(r, 400, "%s must be an integer from %" PRId64 " to %" PRId64, name, min,
                         max);
        return CS_EPARSE;
    }
    *out = (int64_t)n;
    return 0;
}

static int parse_query(cs_request *r, cs_form *q)
{
    if (cs_form_parse(q, r->head.query.p ? r->head.query.p : "", r->head.query.n) == 0) return 0;
    cs_respond_error(r, 400, "malformed query string");
    return CS_EPARSE;
}

/* A call SID from the path, checked before it reaches the store. */
static int path_sid(cs_request *r, char out[65])
{
    if (r->nparams < 1 || !cs_call_sid_valid(r->params[0])) {
        cs_respond_error(r, 404, "no such call");
        return CS_ENOTFOUND;
    }
    cs_str_copy(out, 65, r->params[0]);
    return 0;
}

static cs_store_query *start_query(cs_request *r, enum cs_query_kind kind, cs_store_query_fn cb)
{
    cs_store_query *q = cs_store_query_new(kind, cb, r);
    if (!q) cs_respond_error(r, 503, "out of memory");
    return q;
}

/* Not found is an answer only when the store is not behind: else the call may be in a
 * write still waiting. */
/* Whether another loop's store fails to write: a row it holds may not be stored yet (the
 * reason into `why`). */
static bool other_loops_failing(cs_gateway *gw, char *why, size_t cap)
{
    cs_store_stats st = {0};
    if (!gw->workers) return false;
    cs_workers_store_stats(gw, &st); /* the other loops' only: this one's is zero */
    if (!st.failing_since_ms) return false;
    char since[25];
    cs_iso8601(since, st.failing_since_ms);
    snprintf(why, cap, "writes fail since %s (%.160s), so this may not be stored yet", since,
             st.last_error[0] ? st.last_error : "stalled");
    return true;
}

static bool query_failed(cs_request *r, cs_store_query *q)
{
    if (q->status == 0) return false;
    if (q->status == CS_ENOTFOUND && !q->behind &&
        !other_loops_failing(r->app, q->error, sizeof q->error))
        cs_respond_error(r, 404, "no such call");
    else
        cs_respond_error(r, 503, "the store cannot answer: %s", q->error);
    cs_store_query_free(q);
    return true;
}

/* ---- GET /api/v1/calls ---- */

/* Twilio's CallStatus values: the statuses a call can have. */
static const char *const call_statuses[] = {"queued",      "initiated", "ringing",
                                            "in-progress", "completed", "busy",
                                            "failed",      "no-answer", "canceled"};

/* A call's first line matching a search: {"speaker", "snippet": [{"text", "hit"}...]},
 * the snippet in parts so that nothing in it is markup. */
static void match_json(cs_json *j, const cs_call_row *c)
{
    cs_json_key(j, "match");
    if (!c->match_snippet) {
        cs_json_null(j);
        return;
    }
    cs_json_obj(j);
    cs_json_kstr(j, "speaker", c->match_speaker);
    cs_json_key(j, "snippet");
    cs_json_arr(j);
    bool hit = false;
    for (const char *p = c->match_snippet; *p;) {
        size_t n = strcspn(p, CS_SNIPPET_OPEN CS_SNIPPET_CLOSE);
        if (n) {
            cs_json_obj(j);
            cs_json_key(j, "text");
            cs_json_strn(j, p, n);
            if (hit) cs_json_kbool(j, "hit", true);
            cs_json_obj_end(j);
        }
        p += n;
        if (*p) hit = *p++ == CS_SNIPPET_OPEN[0];
    }
    cs_json_arr_end(j);
    cs_json_obj_end(j);
}

/* ---- which stored calls are live in the cluster ---- */

/* Writes the answer to `r` from `q` (freed), live[i] telling of q->calls[i]. */
typedef void (*live_write_fn)(cs_request *r, cs_store_query *q, const bool *live);

typedef struct live_ask {
    cs_request *r;
    cs_store_query *q;
    live_write_fn write;
} live_ask;

/* `d`: the directory's answer (NULL, or rc < 0: only this node's calls are known). */
static void live_known(void *data, const cs_dir_req *d)
{
    live_ask *x = data;
    cs_store_query *q = x->q;
    bool *live = calloc(q->ncalls + 1, sizeof *live);
    if (!live) {
        cs_respond_error(x->r, 503, "out of memory");
        cs_store_query_free(q);
        free(x);
        return;
    }
    if (d && d->rc == 0 && d->ncalls) {
        cs_map rows = CS_MAP_INIT;
        for (size_t i = 0; i < q->ncalls; i++)
            if (cs_map_put(&rows, cs_str_of(q->calls[i].sid), &live[i]) < 0) break;
        for (size_t k = 0; k < d->ncalls; k++) {
            bool *p = cs_map_get(&rows, cs_str_of(d->calls[k].sid));
            if (p) *p = true;
        }
        cs_map_free(&rows);
    }
    x->write(x->r, q, live);
    free(live);
    free(x);
}

/* Asks the directory which of the rows `q` found are live, then writes. */
static void with_live(cs_request *r, cs_store_query *q, live_write_fn write)
{
    cs_gateway *gw = r->app;
    live_ask *x = malloc(sizeof *x);
    if (!x) {
        cs_respond_error(r, 503, "out of memory");
        cs_store_query_free(q);
        return;
    }
    *x = (live_ask){.r = r, .q = q, .write = write};
    bool one = q->kind == CS_Q_CALL;
    if (cs_cluster_ask(gw, one ? CS_DIR_GET : CS_DIR_LIST, one ? q->calls[0].sid : NULL, live_known,
                       x) < 0)
        live_known(x, NULL);
}

static void calls_write(cs_request *r, cs_store_query *q, const bool *live);

static void calls_done(cs_store_query *q, void *data)
{
    cs_request *r = data;
    if (query_failed(r, q)) return;
    with_live(r, q, calls_write);
}

static void calls_write(cs_request *r, cs_store_query *q, const bool *live)
{
    cs_gateway *gw = r->app;
    cs_buf out = CS_BUF_INIT(API_JSON_MAX);
    cs_json j;
    cs_json_init(&j, &out);
    cs_json_obj(&j);
    cs_json_key(&j, "calls");
    cs_json_arr(&j);
    for (size_t i = 0; i < q->ncalls; i++) {
        cs_json_obj(&j);
        call_json(&j, gw, &q->calls[i], live[i]);
        if (q->filter.text[0]) match_json(&j, &q->calls[i]);
        cs_json_obj_end(&j);
    }
    cs_json_arr_end(&j);
    cs_json_key(&j, "next_cursor");
    if (q->more && q->ncalls) {
        const cs_call_row *last = &q->calls[q->ncalls - 1];
        char cursor[96];
        snprintf(cursor, sizeof cursor, "%" PRId64 ".%s", last->created_at, last->sid);
        cs_json_str(&j, cursor);
    } else {
        cs_json_null(&j);
    }
    cs_json_obj_end(&j);
    cs_store_query_free(q);
    respond_json(r, &j, &out);
}

/* from/to: the whole number, or its start followed by '*'. A leading ' ' is a '+' the
 * client did not encode. */
static int number_filter(cs_request *r, const cs_form *q, const char *name, char *out, bool *prefix)
{
    const char *v = cs_form_get(q, name);
    size_t n = v ? strlen(v) : 0;
    if (n == 0) return 0;
    *prefix = v[n - 1] == '*';
    n -= *prefix;
    if (n == 0 || n > CS_CALLS_NUMBER_MAX || memchr(v, '*', n)) {
        cs_respond_error(r, 400, "%s is a number (up to %d characters), or its start followed by *",
                         name, CS_CALLS_NUMBER_MAX);
        return CS_EPARSE;
    }
    memcpy(out, v, n);
    out[n] = '\0';
    if (out[0] == ' ') out[0] = '+';
    return 0;
}

static int status_filter(cs_request *r, const cs_form *q, cs_call_filter *f)
{
    const char *v = cs_form_get(q, "status");
    for (const char *p = v; p && *p;) {
        size_t n = strcspn(p, ",");
        size_t k = 0, nknown = sizeof call_statuses / sizeof *call_statuses;
        while (k < nknown && !cs_str_eq((cs_str){p, n}, cs_str_of(call_statuses[k]))) k++;
        if (n && k == nknown) {
            cs_respond_error(r, 400,
                             "status '%.*s' is not one of queued, initiated, ringing, in-progress,"
                             " completed, busy, failed, no-answer, canceled",
                             (int)(n > 64 ? 64 : n), p);
            return CS_EPARSE;
        }
        bool twice = false;
        for (size_t i = 0; n && i < f->nstatuses; i++)
            twice |= !strcmp(f->statuses[i], call_statuses[k]);
        if (n && !twice)
            snprintf(f->statuses[f->nstatuses++], sizeof *f->statuses, "%s", call_statuses[k]);
        p += n + (p[n] == ',');
    }
    return 0;
}

/* since/until: ISO 8601 (cs_iso8601_parse) or ms since the epoch. */
static int time_filter(cs_request *r, const cs_form *q, const char *name, int64_t *out)
{
    const char *v = cs_form_get(q, name);
    if (!v || !*v) return 0;
    uint64_t ms;
    bool digits = v[strspn(v, "0123456789")] == '\0';
    int rc = digits ? cs_str_to_u64(cs_str_of(v), INT64_MAX, &ms) : cs_iso8601_parse(v, out);
    if (rc == 0 && digits) *out = (int64_t)ms;
    if (rc == 0 && *out >= 0) return 0;
    cs_respond_error(r, 400, "%s is an ISO 8601 time (2026-11-22T10:00:00Z) or ms since the epoch",
                     name);
    return CS_EPARSE;
}

static int text_filter(cs_request *r, const cs_form *q, cs_call_filter *f)
{
    const char *v = cs_form_get(q, "q");
    if (!v || !*v) return 0;
    int words = cs_call_filter_text(f, v);
    if (words > 0) return 0;
    if (words == 0)
        cs_respond_error(r, 400, "q has no words to search for (letters or digits)");
    else
        cs_respond_error(r, 400, "q is longer than %d bytes or %d words", CS_CALLS_TEXT_MAX,
                         CS_CALLS_WORDS_MAX);
    return CS_EPARSE;
}

/* The list's filters (README: Searching calls); 0, or answered with a 400. */
static int calls_filter(cs_request *r, const cs_form *q, cs_call_filter *f)
{
    int rc = number_filter(r, q, "from", f->from, &f->from_prefix);
    if (rc == 0) rc = number_filter(r, q, "to", f->to, &f->to_prefix);
    if (rc == 0) rc = status_filter(r, q, f);
    if (rc == 0) rc = time_filter(r, q, "since", &f->since);
    if (rc == 0) rc = time_filter(r, q, "until", &f->until);
    if (rc == 0 && f->since && f->until && f->since >= f->until) {
        cs_respond_error(r, 400, "since must be before until");
        rc = CS_EPARSE;
    }
    if (rc == 0) rc = text_filter(r, q, f);
    return rc;
}

void cs_api_calls(cs_request *r)
{
    if (!cs_auth_check(r, CS_ACCESS_API, cs_api_calls)) return;
    cs_gateway *gw = r->app;
    cs_form query;
    if (parse_query(r, &query) < 0) return;
    int64_t limit;
    int rc = query_int(r, &query, "limit", 1, CS_STORE_PAGE_MAX, 50, &limit);
    const char *cursor = cs_form_get(&query, "cursor");
    int64_t before = 0;
    char before_sid[65] = "";
    if (rc == 0 && cursor) {
        const char *dot = strchr(cursor, '.');
        uint64_t at;
        if (!dot || cs_str_to_u64((cs_str){cursor, (size_t)(dot - cursor)}, INT64_MAX, &at) < 0 ||
            !cs_call_sid_valid(cs_str_of(dot + 1))) {
            cs_respond_error(r, 400, "cursor is not one this API gave");
            rc = CS_EPARSE;
        } else {
            before = (int64_t)at;
            snprintf(before_sid, sizeof before_sid, "%s", dot + 1);
        }
    }
    cs_call_filter filter = {0};
    if (rc == 0) rc = calls_filter(r, &query, &filter);
    cs_form_free(&query);
    if (rc < 0) return;
    cs_store_query *q = start_query(r, CS_Q_CALLS, calls_done);
    if (!q) return;
    q->filter = filter;
    q->limit = (int)limit;
    q->before_at = before;
    memcpy(q->before_sid, before_sid, sizeof before_sid);
    cs_store_query_run(gw->store, q);
}

/* ---- GET /api/v1/calls/{sid} ---- */

static void call_write(cs_request *r, cs_store_query *q, const bool *live);

static void call_done(cs_store_query *q, void *data)
{
    cs_request *r = data;
    if (query_failed(r, q)) return;
    with_live(r, q, call_write);
}

static void call_write(cs_request *r, cs_store_query *q, const bool *live)
{
    cs_gateway *gw = r->app;
    cs_buf out = CS_BUF_INIT(API_JSON_MAX);
    cs_json j;
    cs_json_init(&j, &out);
    cs_json_obj(&j);
    cs_json_key(&j, "call");
    cs_json_obj(&j);
    call_json(&j, gw, &q->calls[0], live[0]);
    cs_json_key(&j, "streams");
    cs_json_arr(&j);
    for (size_t i = 0; i < q->nstreams; i++) stream_json(&j, gw, &q->streams[i], live[0]);
    cs_json_arr_end(&j);
    cs_json_key(&j, "events");
    cs_json_arr(&j);
    for (size_t i = 0; i < q->nevents; i++) event_json(&j, &q->events[i]);
    cs_json_arr_end(&j);
    cs_json_kbool(&j, "events_truncated", q->more);
    cs_json_obj_end(&j);
    cs_json_obj_end(&j);
    cs_store_query_free(q);
    respond_json(r, &j, &out);
}

void cs_api_call(cs_request *r)
{
    if (!cs_auth_check(r, CS_ACCESS_API, cs_api_call)) return;
    cs_gateway *gw = r->app;
    char sid[65];
    if (path_sid(r, sid) < 0) return;
    cs_store_query *q = start_query(r, CS_Q_CALL, call_done);
    if (!q) return;
    memcpy(q->sid, sid, sizeof sid);
    cs_store_query_run(gw->store, q);
}

/* ---- GET /api/v1/calls/{sid}/events ---- */

static void events_done(cs_store_query *q, void *data)
{
    cs_request *r = data;
    if (query_failed(r, q)) return;
    cs_buf out = CS_BUF_INIT(API_JSON_MAX);
    cs_json j;
    cs_json_init(&j, &out);
    cs_json_obj(&j);
    cs_json_key(&j, "events");
    cs_json_arr(&j);
    for (size_t i = 0; i < q->nevents; i++) event_json(&j, &q->events[i]);
    cs_json_arr_end(&j);
    cs_json_key(&j, "next_after");
    if (q->more && q->nevents)
        cs_json_int(&j, q->events[q->nevents - 1].id);
    else
        cs_json_null(&j);
    cs_json_obj_end(&j);
    cs_store_query_free(q);
    respond_json(r, &j, &out);
}

void cs_api_events(cs_request *r)
{
    if (!cs_auth_check(r, CS_ACCESS_API, cs_api_events)) return;
    cs_gateway *gw = r->app;
    char sid[65];
    if (path_sid(r, sid) < 0) return;
    cs_form query;
    if (parse_query(r, &query) < 0) return;
    int64_t after, limit;
    int rc = query_int(r, &query, "after", 0, INT64_MAX, 0, &after);
    if (rc == 0) rc = query_int(r, &query, "limit", 1, CS_STORE_PAGE_MAX, 100, &limit);
    cs_form_free(&query);
    if (rc < 0) return;
    cs_store_query *q = start_query(r, CS_Q_EVENTS, events_done);
    if (!q) return;
    memcpy(q->sid, sid, sizeof sid);
    q->after_id = after;
    q->limit = (int)limit;
    cs_store_query_run(gw->store, q);
}

/* ---- GET /api/v1/calls/{sid}/transcript ---- */

typedef struct transcript_req {
    cs_request *r;
    bool text;
} transcript_req;

static void segment_json(cs_json *j, const cs_segment_row *g)
{
    char id[3 * 65];
    snprintf(id, sizeof id, "%s/%s/%lld", g->stream_sid, g->speaker, (long long)g->seq);
    cs_json_obj(j);
    cs_json_kstr(j, "id", id);
    cs_json_kstr(j, "speaker", g->speaker);
    cs_json_kint(j, "start_ms", g->start_ms);
    cs_json_kint(j, "end_ms", g->end_ms);
    cs_json_kstr(j, "text", g->text);
    cs_json_kbool(j, "final", true);
    cs_json_kbool(j, "refined", g->refined != 0);
    if (g->cut) cs_json_kbool(j, "cut", true);
    cs_json_key(j, "confidence");
    if (g->confidence >= 0)
        cs_json_double(j, (double)g->confidence / 1000);
    else
        cs_json_null(j);
    cs_json_obj_end(j);
}

static void transcript_done(cs_store_query *q, void *data)
{
    transcript_req *t = data;
    cs_request *r = t->r;
    bool text = t->text;
    free(t);
    if (query_failed(r, q)) return;
    cs_buf out = CS_BUF_INIT(API_JSON_MAX);
    if (text) {
        cs_summary_transcript(&out, q->segments, q->nsegments);
        cs_respond(r, 200, "text/plain; charset=utf-8", out.data ? out.data : "", out.len, NULL);
        cs_buf_free(&out);
        cs_store_query_free(q);
        return;
    }
    cs_json j;
    cs_json_init(&j, &out);
    cs_json_obj(&j);
    cs_json_kstr(&j, "call_sid", q->sid);
    cs_json_key(&j, "segments");
    cs_json_arr(&j);
    for (size_t i = 0; i < q->nsegments; i++) segment_json(&j, &q->segments[i]);
    cs_json_arr_end(&j);
    cs_json_kbool(&j, "truncated", q->more);
    cs_json_obj_end(&j);
    cs_store_query_free(q);
    respond_json(r, &j, &out);
}

void cs_api_transcript(cs_request *r)
{
    if (!cs_auth_check(r, CS_ACCESS_API, cs_api_transcript)) return;
    cs_gateway *gw = r->app;
    char sid[65];
    if (path_sid(r, sid) < 0) return;
    cs_form query;
    if (parse_query(r, &query) < 0) return;
    const char *format = cs_form_get(&query, "format");
    bool text = format && strcmp(format, "text") == 0;
    bool known = !format || text || strcmp(format, "json") == 0;
    cs_form_free(&query);
    if (!known) {
        cs_respond_error(r, 400, "format is json or text");
        return;
    }
    transcript_req *t = calloc(1, sizeof *t);
    cs_store_query *q = t ? start_query(r, CS_Q_TRANSCRIPT, transcript_done) : NULL;
    if (!q) {
        free(t);
        if (!t) cs_respond_error(r, 503, "out of memory");
        return;
    }
    t->r = r;
    t->text = text;
    q->cb_data = t;
    memcpy(q->sid, sid, sizeof sid);
    cs_store_query_run(gw->store, q);
}

/* ---- GET /api/v1/calls/{sid}/summary ---- */

/* 404 {"error","status","reason"}: why the call has no summary. */
static void no_summary(cs_request *r, const char *status, const char *reason)
{
    cs_buf out = CS_BUF_INIT(4096);
    cs_json j;
    cs_json_init(&j, &out);
    cs_json_obj(&j);
    cs_json_kstr(&j, "error", "no summary");
    cs_json_kstr(&j, "status", status);
    cs_json_kstr(&j, "reason", reason);
    cs_json_obj_end(&j);
    cs_json_end(&j);
    cs_respond_json(r, 404, &out);
    cs_buf_free(&out);
}

/* An ended call without a summary status this long is not on its way (the status is
 * written when the call is queued, through the store's queue). */
#define SUMMARY_SETTLE_MS 60000

static void summary_done(cs_store_query *q, void *data)
{
    cs_request *r = data;
    cs_gateway *gw = r->app;
    if (query_failed(r, q)) return;
    const cs_call_row *c = &q->calls[0];
    const char *st = c->summary_status ? c->summary_status : "";
    cJSON *sum = c->summary && !strcmp(st, CS_SUMMARY_DONE) ? cJSON_Parse(c->summary) : NULL;
    if (sum) {
        cJSON_AddStringToObject(sum, "call_sid", c->sid);
        cJSON_AddStringToObject(sum, "status", CS_SUMMARY_DONE);
        char *text = cJSON_PrintUnformatted(sum);
        if (text)
            cs_respond(r, 200, "application/json", text, strlen(text), NULL);
        else
            cs_respond_error(r, 503, "out of memory");
        free(text);
        cJSON_Delete(sum);
    } else if (!strcmp(st, CS_SUMMARY_FAILED)) {
        no_summary(r, "failed", c->summary_reason ? c->summary_reason : "unknown");
    } else if (!strcmp(st, CS_SUMMARY_NO_SPEECH)) {
        no_summary(r, "no_speech", "nothing was said on the call");
    } else if (!gw->cfg->llm_url[0]) {
        no_summary(r, "no_llm", "LLM_URL is not set: calls are not summarized");
    } else if (!gw->cfg->summary) {
        no_summary(r, "off", "SUMMARY=0: calls are not summarized");
    } else if (!*st && c->ended_at && cs_wall_ms() - c->ended_at > SUMMARY_SETTLE_MS &&
               !cs_summary_knows(gw->summary, c->sid)) {
        /* Never queued: it ended while summaries were off, or before they were kept. */
        no_summary(r, "none", "the call ended while calls were not summarized");
    } else {
        no_summary(r, "pending",
                   "the call is live, its transcript is being finished, or its summary is "
                   "being made");
    }
    cs_store_query_free(q);
}

void cs_api_summary(cs_request *r)
{
    if (!cs_auth_check(r, CS_ACCESS_API, cs_api_summary)) return;
    cs_gateway *gw = r->app;
    char sid[65];
    if (path_sid(r, sid) < 0) return;
    cs_store_query *q = start_query(r, CS_Q_CALL, summary_done);
    if (!q) return;
    memcpy(q->sid, sid, sizeof sid);
    cs_store_query_run(gw->store, q);
}

/* ---- GET /api/v1/calls/{sid}/recording.wav ---- */

typedef struct file_send {
    cs_request *r;
    uv_loop_t *loop;
    uv_fs_t req;
    uv_file fd;
    uint64_t size;     /* of the file */
    uint64_t off, end; /* bytes [off, end) still to send */
    char buf[FILE_CHUNK];
} file_send;

static void send_next(file_send *f);

static void file_closed(uv_fs_t *req)
{
    uv_fs_req_cleanup(req);
    free(req->data);
}

/* Ends the answer (or refuses it) and releases the file. */
static void file_finish(file_send *f)
{
    if (f->r) cs_respond_end(f->r);
    f->r = NULL;
    if (f->fd >= 0) {
        uv_fs_close(f->loop, &f->req, f->fd, file_closed);
        f->fd = -1;
    } else {
        free(f);
    }
}

/* A recording still being written has a header that lags: send sizes from the file's
 * length, the ones a finished file will have. */
static void patch_header(file_send *f, uint64_t at, size_t n)
{
    uint8_t hdr[CS_WAV_HEADER_LEN];
    uint32_t data = f->size > CS_WAV_HEADER_LEN ? (uint32_t)(f->size - CS_WAV_HEADER_LEN) : 0;
    cs_wav_header(hdr, 8000, 1, data); /* only the two size fields are used */
    static const unsigned fields[] = {4, 40};
    for (size_t k = 0; k < 2; k++) {
        for (unsigned b = 0; b < 4; b++) {
            uint64_t pos = fields[k] + b;
            if (pos >= at && pos < at + n) f->buf[pos - at] = (char)hdr[pos];
        }
    }
}

static void on_drained(void *data)
{
    send_next(data);
}

static void on_read(uv_fs_t *req)
{
    file_send *f = req->data;
    ssize_t n = req->result;
    uv_fs_req_cleanup(req);
    if (n <= 0 || !f->r) { /* error, early end of file, or the client left */
        if (n < 0) cs_warn("api: reading a recording failed: %s", uv_strerror((int)n));
        file_finish(f);
        return;
    }
    patch_header(f, f->off, (size_t)n);
    if (cs_respond_write(f->r, f->buf, (size_t)n) < 0) {
        file_finish(f);
        return;
    }
    f->off += (uint64_t)n;
    send_next(f);
}

static void send_next(file_send *f)
{
    if (f->off >= f->end || !f->r || !f->r->conn) {
        file_finish(f);
        return;
    }
    if (cs_respond_pending(f->r) > FILE_HIGH_WATER) {
        if (cs_respond_wait(f->r, FILE_HIGH_WATER / 2, on_drained, f) < 0) file_finish(f);
        return;
    }
    size_t n = f->end - f->off < FILE_CHUNK ? (size_t)(f->end - f->off) : FILE_CHUNK;
    uv_buf_t b = uv_buf_init(f->buf, (unsigned)n);
    f->req.data = f;
    if (uv_fs_read(f->loop, &f->req, f->fd, &b, 1, (int64_t)f->off, on_read) < 0) file_finish(f);
}

/* "bytes=a-b", "bytes=a-", "bytes=-n" → [*from, *to); 0 if none or not understood, 1 if a
 * range, -1 if unsatisfiable. */
static int parse_range(const cs_str *h, uint64_t size, uint64_t *from, uint64_t *to)
{
    if (!h || h->n < 7 || memcmp(h->p, "bytes=", 6) != 0) return 0;
    cs_str spec = {h->p + 6, h->n - 6};
    const char *dash = memchr(spec.p, '-', spec.n);
    if (!dash || memchr(spec.p, ',', spec.n)) return 0; /* one range only */
    cs_str a = {spec.p, (size_t)(dash - spec.p)}, b = {dash + 1, spec.n - a.n - 1};
    uint64_t x, y;
    if (a.n == 0) {
        if (cs_str_to_u64(b, UINT64_MAX, &y) < 0 || y == 0) return 0;
        *from = y >= size ? 0 : size - y;
        *to = size;
        return size ? 1 : -1;
    }
    if (cs_str_to_u64(a, UINT64_MAX, &x) < 0) return 0;
    if (b.n == 0)
        y = size ? size - 1 : 0;
    else if (cs_str_to_u64(b, UINT64_MAX, &y) < 0 || y < x)
        return 0;
    if (x >= size) return -1;
    *from = x;
    *to = (y >= size ? size - 1 : y) + 1;
    return 1;
}

static void on_stat(uv_fs_t *req)
{
    file_send *f = req->data;
    if (req->result < 0 || !f->r) {
        uv_fs_req_cleanup(req);
        if (f->r) cs_respond_error(f->r, 404, "no recording for this call");
        f->r = NULL;
        file_finish(f);
        return;
    }
    f->size = (uint64_t)req->statbuf.st_size;
    uv_fs_req_cleanup(req);
    uint64_t from = 0, to = f->size;
    int range = parse_range(cs_request_header(f->r, "Range"), f->size, &from, &to);
    char extra[160];
    if (range < 0) {
        snprintf(extra, sizeof extra, "Content-Range: bytes */%" PRIu64 "\r\n", f->size);
        cs_respond(f->r, 416, NULL, NULL, 0, extra);
        f->r = NULL;
        file_finish(f);
        return;
    }
    if (range > 0)
        snprintf(extra, sizeof extra,
                 "Accept-Ranges: bytes\r\nContent-Range: bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64
                 "\r\n",
                 from, to - 1, f->size);
    else
        snprintf(extra, sizeof extra, "Accept-Ranges: bytes\r\n");
    f->off = from;
    f->end = to;
    if (cs_respond_begin(f->r, range > 0 ? 206 : 200, "audio/wav", (int64_t)(to - from), extra) <
        0) {
        file_finish(f);
        return;
    }
    send_next(f);
}

static void on_open(uv_fs_t *req)
{
    file_send *f = req->data;
    int fd = (int)req->result;
    uv_fs_req_cleanup(req);
    if (fd < 0) {
        if (f->r) cs_respond_error(f->r, 404, "no recording for this call");
        f->r = NULL;
        file_finish(f);
        return;
    }
    f->fd = fd;
    if (uv_fs_fstat(f->loop, &f->req, fd, on_stat) < 0) {
        cs_respond_error(f->r, 500, "cannot read the recording");
        f->r = NULL;
        file_finish(f);
    }
}

static void send_file(cs_request *r, const char *path)
{
    cs_gateway *gw = r->app;
    file_send *f = calloc(1, sizeof *f);
    if (!f) {
        cs_respond_error(r, 503, "out of memory");
        return;
    }
    f->r = r;
    f->loop = gw->loop;
    f->fd = -1;
    f->req.data = f;
    if (uv_fs_open(gw->loop, &f->req, path, O_RDONLY, 0, on_open) < 0) {
        cs_respond_error(r, 404, "no recording for this call");
        f->r = NULL;
        file_finish(f);
    }
}

static void recording_done(cs_store_query *q, void *data)
{
    cs_request *r = data;
    cs_gateway *gw = r->app;
    if (query_failed(r, q)) return;
    const cs_call_row *c = &q->calls[0];
    /* Another node holds it (its path is on that node's disk; a live call's file may have
     * no row yet): it is asked, unless another node is asking (no loops). */
    const char *self = gw->bus ? gw->bus->node : "";
    if (c->node && c->node[0] && strcmp(c->node, self) && !cs_api_from_node(r))
        cs_api_recording_remote(r, c->sid, c->node);
    else if (c->recording)
        send_file(r, c->recording);
    else
        cs_respond_error(r, 404, "no recording for this call");
    cs_store_query_free(q);
}

/* For the API's clients, and for other nodes (signed: cs_api_node_auth) asking for a
 * recording this one holds. */
void cs_api_recording(cs_request *r)
{
    int from_node = cs_api_node_auth(r);
    if (from_node < 0) return;
    if (!from_node && !cs_auth_check(r, CS_ACCESS_API, cs_api_recording)) return;
    cs_gateway *gw = r->app;
    char sid[65];
    if (path_sid(r, sid) < 0) return;
    const cs_call *live = cs_calls_call(&gw->calls, cs_str_of(sid));
    const char *path = live && live->rec ? cs_recording_path(live->rec) : NULL;
    if (path) {
        send_file(r, path);
        return;
    }
    cs_store_query *q = start_query(r, CS_Q_CALL, recording_done);
    if (!q) return;
    memcpy(q->sid, sid, sizeof sid);
    cs_store_query_run(gw->store, q);
}

/* ---- for the API's other files (api_int.h) ---- */

void cs_api_call_json(cs_json *j, const cs_gateway *gw, const cs_call_row *c, bool live)
{
    call_json(j, gw, c, live);
}

void cs_api_stream_json(cs_json *j, const cs_gateway *gw, const cs_stream_row *t, bool call_live)
{
    stream_json(j, gw, t, call_live);
}

void cs_api_event_json(cs_json *j, const cs_event_row *e, int64_t origin_ms)
{
    cs_json_obj(j);
    cs_json_kint(j, "offset_ms", origin_ms ? e->at - origin_ms : 0);
    event_fields(j, e);
    cs_json_obj_end(j);
}

void cs_api_segment_json(cs_json *j, const cs_segment_row *g)
{
    segment_json(j, g);
}

int cs_api_path_sid(cs_request *r, char out[65])
{
    return path_sid(r, out);
}

int cs_api_parse_query(cs_request *r, cs_form *q)
{
    return parse_query(r, q);
}

cs_store_query *cs_api_start_query(cs_request *r, enum cs_query_kind kind, cs_store_query_fn cb)
{
    return start_query(r, kind, cb);
}

bool cs_api_query_failed(cs_request *r, cs_store_query *q)
{
    return query_failed(r, q);
}
