/* The store's view of calls: an observer of the call registry that writes calls,
 * streams and events as they happen, and, at start-up, ends the calls an earlier run
 * left live. Writes are queued to the store thread; nothing here waits for the
 * database. */
#include <stdlib.h>
#include <string.h>

#include "audio/orphans.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "http/gateway.h"

#define RECOVER_PAGE       CS_STORE_PAGE_MAX /* calls ended per pass */
#define RECOVER_PASSES_MAX 1000

static char *dup_or_null(cs_store_rec *rec, const char *s)
{
    return s ? cs_pool_strdup(&rec->pool, s) : NULL;
}

void cs_journal_call(cs_gateway *gw, const cs_call_row *row)
{
    cs_store_rec *rec = cs_store_rec_new(CS_REC_CALL);
    if (!rec) return;
    cs_call_row *c = &rec->call;
    *c = *row;
    c->sid = dup_or_null(rec, row->sid);
    c->account_sid = dup_or_null(rec, row->account_sid);
    c->from = dup_or_null(rec, row->from);
    c->to = dup_or_null(rec, row->to);
    c->direction = dup_or_null(rec, row->direction);
    c->status = dup_or_null(rec, row->status);
    c->params = dup_or_null(rec, row->params);
    c->summary = dup_or_null(rec, row->summary);
    c->summary_status = dup_or_null(rec, row->summary_status);
    c->summary_reason = dup_or_null(rec, row->summary_reason);
    c->recording = dup_or_null(rec, row->recording);
    c->node = dup_or_null(rec, row->node);
    cs_store_write(gw->store, rec);
}

/* This node's id, written on the rows of the calls it holds (their recordings are here). */
static const char *node_id(const cs_gateway *gw)
{
    return gw->bus ? gw->bus->node : NULL;
}

static void params_json(cs_buf *out, const cs_call *call)
{
    cs_json j;
    cs_json_init(&j, out);
    cs_json_obj(&j);
    for (size_t i = 0; i < call->nparams; i++) {
        cs_json_key(&j, call->params[i].name.p); /* NUL-terminated: pool copies */
        cs_json_strn(&j, call->params[i].value.p, call->params[i].value.n);
    }
    cs_json_obj_end(&j);
}

static void call_started(void *o, const cs_call *call)
{
    cs_buf params = CS_BUF_INIT(1 << 20);
    params_json(&params, call);
    cs_call_row row = {
        .sid = call->sid,
        .account_sid = call->account_sid,
        .from = call->from,
        .to = call->to,
        .status = "in-progress",
        .params = params.data,
        .created_at = call->started_ms,
        .started_at = call->started_ms,
        .node = node_id(o),
    };
    cs_journal_call(o, &row);
    cs_buf_free(&params);
}

static void call_ended(void *o, const cs_call *call)
{
    cs_call_row row = {
        .sid = call->sid, .ended_at = call->ended_ms, .status = "completed", .node = node_id(o)};
    cs_journal_call(o, &row);
}

static cs_store_rec *stream_rec(const cs_stream *s)
{
    cs_store_rec *rec = cs_store_rec_new(CS_REC_STREAM);
    if (!rec) return NULL;
    rec->stream.sid = cs_pool_strdup(&rec->pool, s->sid);
    rec->stream.call_sid = cs_pool_strdup(&rec->pool, s->call->sid);
    return rec;
}

static void stream_started(void *o, const cs_stream *s)
{
    cs_gateway *gw = o;
    cs_store_rec *rec = stream_rec(s);
    if (!rec) return;
    const char *tracks =
        (s->tracks & CS_TRACK_BIT(CS_TRACK_OUTBOUND))
            ? ((s->tracks & CS_TRACK_BIT(CS_TRACK_INBOUND)) ? "[\"inbound\",\"outbound\"]"
                                                            : "[\"outbound\"]")
            : "[\"inbound\"]";
    rec->stream.tracks = cs_pool_strdup(&rec->pool, tracks);
    rec->stream.mode = cs_pool_strdup(&rec->pool, cs_stream_mode_label(s->mode));
    rec->stream.started_at = s->started_ms;
    cs_store_write(gw->store, rec);
}

static void stream_ended(void *o, const cs_stream *s, enum cs_end_reason why)
{
    cs_gateway *gw = o;
    cs_store_rec *rec = stream_rec(s);
    if (!rec) return;
    cs_buf stats = CS_BUF_INIT(1 << 16);
    cs_stream_stats_json(s, &stats);
    rec->stream.stats = cs_pool_strdup(&rec->pool, stats.data);
    rec->stream.end_reason = cs_pool_strdup(&rec->pool, cs_end_label(why));
    rec->stream.ended_at = s->ended_ms;
    cs_buf_free(&stats);
    cs_store_write(gw->store, rec);
}

static void write_event(cs_gateway *gw, const char *call_sid, const char *stream_sid,
                        enum cs_event_type type, int64_t at_ms, const char *detail)
{
    cs_store_rec *rec = cs_store_rec_new(CS_REC_EVENT);
    if (!rec) return;
    cs_event_row *e = &rec->event;
    e->call_sid = cs_pool_strdup(&rec->pool, call_sid);
    e->stream_sid = dup_or_null(rec, stream_sid);
    e->type = cs_pool_strdup(&rec->pool, cs_event_label(type));
    e->detail = dup_or_null(rec, detail);
    e->at = at_ms;
    cs_store_write(gw->store, rec);
}

void cs_journal_event(cs_gateway *gw, const char *sid, enum cs_event_type type, int64_t at,
                      const char *detail)
{
    write_event(gw, sid, NULL, type, at, detail);
}

static void event(void *o, const cs_call *call, const cs_stream *s, enum cs_event_type type,
                  int64_t at_ms, const char *detail)
{
    cs_gateway *gw = o;
    /* Not live here (a status callback, a control action): it may be live on another
     * node, which writes it with its listeners told. */
    if (!s && cs_calls_call(&gw->calls, cs_str_of(call->sid)) != call)
        cs_cluster_event(gw, call->sid, type, at_ms, detail);
    else
        write_event(gw, call->sid, s ? s->sid : NULL, type, at_ms, detail);
}

static void recording_started(void *o, const char *call_sid, const char *path)
{
    cs_call_row row = {.sid = call_sid, .recording = path, .node = node_id(o)};
    cs_journal_call(o, &row);
}

static void recording(void *o, const char *call_sid, const char *path, uint64_t frames)
{
    cs_call_row row = {
        .sid = call_sid,
        .recording = path,
        .recording_ms = (int64_t)(frames / CS_FRAMES_PER_MS),
        .node = node_id(o),
    };
    cs_journal_call(o, &row);
}

int cs_journal_attach(cs_gateway *gw)
{
    cs_call_observer o = {
        .call_started = call_started,
        .call_ended = call_ended,
        .stream_started = stream_started,
        .stream_ended = stream_ended,
        .event = event,
        .recording_started = recording_started,
        .recording = recording,
        .data = gw,
    };
    return cs_calls_observe(&gw->calls, &o);
}

/* ---- calls an earlier run left live ---- */

typedef struct recovery {
    cs_gateway *gw;
    cs_store_query *q; /* the calls of this pass and their open streams */
    cs_orphan *found;  /* their recordings */
    unsigned passes;
    size_t ended;
} recovery;

static void recover_done(recovery *x)
{
    const char *node = node_id(x->gw);
    cs_info("journal: start-up repair done: %zu call(s) of node %s left live by an earlier run "
            "ended",
            x->ended, node ? node : "?");
    free(x);
}

static void recover_next(recovery *x);

static void stop_detail(cs_buf *out, const char *stream_sid, int64_t duration_ms, bool by_recording)
{
    cs_json j;
    cs_json_init(&j, out);
    cs_json_obj(&j);
    if (stream_sid) cs_json_kstr(&j, "streamSid", stream_sid);
    cs_json_kstr(&j, "reason", cs_end_label(CS_END_ABNORMAL));
    cs_json_kint(&j, "durationMs", duration_ms);
    cs_json_kbool(&j, "recovered", true);
    cs_json_kstr(&j, "endedBy", by_recording ? "recording" : "store");
    cs_json_kstr(&j, "message",
                 "the gateway stopped (killed or crashed) while this was live; ended at its next "
                 "start, at the last frame recorded");
    cs_json_obj_end(&j);
}

/* Ends a call a run left live, with its streams. Its end is the last frame known to be
 * durable: the recording's length from the call's start (the recording's frame 0), or
 * the latest time the store holds for the call, whichever is later. The recording is
 * what the writer had put in the page cache, so it outlives kill -9 and is the finer
 * measure; the store's time covers calls without one (RECORDINGS=0, a failed file). */
static void end_orphan(cs_gateway *gw, const cs_call_row *c, const cs_store_query *q,
                       const cs_orphan *o)
{
    bool recorded = o && o->path[0];
    int64_t rec_ms = recorded ? (int64_t)(o->frames / CS_FRAMES_PER_MS) : 0;
    bool by_recording = recorded && c->started_at + rec_ms >= c->last_at;
    int64_t end = by_recording ? c->started_at + rec_ms : c->last_at;
    cs_call_row row = {.sid = c->sid};
    if (!c->ended_at) { /* else a status callback ended it: that stays */
        row.status = cs_end_label(CS_END_ABNORMAL);
        row.ended_at = end;
    }
    if (recorded) {
        row.recording = o->path;
        row.recording_ms = rec_ms;
    }
    cs_journal_call(gw, &row);
    cs_buf detail = CS_BUF_INIT(4096);
    size_t streams = 0;
    for (size_t i = 0; i < q->nstreams; i++) {
        const cs_stream_row *t = &q->streams[i];
        if (strcmp(t->call_sid, c->sid) != 0) continue;
        cs_store_rec *rec = cs_store_rec_new(CS_REC_STREAM);
        if (!rec) continue;
        rec->stream.sid = cs_pool_strdup(&rec->pool, t->sid);
        rec->stream.call_sid = cs_pool_strdup(&rec->pool, c->sid);
        rec->stream.end_reason = cs_pool_strdup(&rec->pool, cs_end_label(CS_END_ABNORMAL));
        rec->stream.ended_at = end > t->started_at ? end : t->started_at;
        cs_store_write(gw->store, rec);
        cs_buf_reset(&detail);
        stop_detail(&detail, t->sid, rec->stream.ended_at - t->started_at, by_recording);
        write_event(gw, c->sid, t->sid, CS_EVENT_STOP, end, detail.data);
        streams++;
    }
    if (!streams) { /* the call itself was left open */
        cs_buf_reset(&detail);
        stop_detail(&detail, NULL, end - c->started_at, by_recording);
        write_event(gw, c->sid, NULL, CS_EVENT_STOP, end, detail.data);
    }
    if (recorded) {
        cs_buf_reset(&detail);
        cs_buf_printf(&detail, "{\"durationMs\":%lld,\"recovered\":true}", (long long)rec_ms);
        write_event(gw, c->sid, NULL, CS_EVENT_RECORDING, end, detail.data);
    }
    cs_buf_free(&detail);
    /* Its transcript is what was stored: the summary is made of that. */
    if (!c->summary_status) cs_summary_call_ended(gw->summary, c->sid);
    cs_warn("journal: call %s was left live by an earlier run: ended as abnormal at its last "
            "%s (%lld ms)%s",
            c->sid, by_recording ? "recorded frame" : "stored update",
            (long long)(end - c->started_at), recorded ? ", recording attached" : "");
}

static void on_found(void *data, cs_orphan *found, size_t n)
{
    recovery *x = data;
    cs_gateway *gw = x->gw;
    const cs_store_query *q = x->q;
    for (size_t i = 0; gw->store && i < q->ncalls; i++) {
        const cs_call_row *c = &q->calls[i];
        if (cs_calls_call(&gw->calls, cs_str_of(c->sid))) continue; /* live in this run */
        const cs_orphan *o = NULL;
        for (size_t k = 0; k < n && !o; k++)
            if (strcmp(found[k].name, c->sid) == 0) o = &found[k];
        end_orphan(gw, c, q, o);
        x->ended++;
    }
    bool more = q->more;
    cs_store_query_free(x->q);
    x->q = NULL;
    free(x->found);
    x->found = NULL;
    if (more && gw->store && ++x->passes < RECOVER_PASSES_MAX)
        recover_next(x);
    else
        recover_done(x);
}

static void on_unfinished(cs_store_query *q, void *data)
{
    recovery *x = data;
    cs_gateway *gw = x->gw;
    if (q->status < 0 || q->ncalls == 0 || !gw->store) {
        if (q->status < 0 && q->status != CS_ENOTFOUND)
            cs_error("journal: cannot look for calls left live by an earlier run: %s", q->error);
        cs_store_query_free(q);
        recover_done(x);
        return;
    }
    x->q = q;
    x->found = gw->recorders ? calloc(q->ncalls, sizeof *x->found) : NULL;
    for (size_t i = 0; x->found && i < q->ncalls; i++)
        snprintf(x->found[i].name, sizeof x->found[i].name, "%s", q->calls[i].sid);
    if (!x->found || cs_orphans_find(gw->recorders, x->found, q->ncalls, on_found, x) < 0) {
        if (gw->recorders)
            cs_error("journal: no memory to look for recordings of unfinished calls");
        on_found(x, NULL, 0);
    }
}

static void recover_next(recovery *x)
{
    cs_store_query *q = cs_store_query_new(CS_Q_UNFINISHED, on_unfinished, x);
    if (!q) {
        cs_error("journal: no memory to look for calls left live by an earlier run");
        free(x);
        return;
    }
    snprintf(q->key, sizeof q->key, "%s", cs_store_run(x->gw->store));
    /* Only this node's calls (and those of none): the recordings are on its disk, and
     * the others' are theirs to repair. */
    const char *node = node_id(x->gw);
    if (node) snprintf(q->node, sizeof q->node, "%s", node);
    q->limit = RECOVER_PAGE;
    cs_store_query_run_in_order(x->gw->store, q);
}

void cs_journal_recover(cs_gateway *gw)
{
    recovery *x = calloc(1, sizeof *x);
    if (!x) {
        cs_error("journal: no memory to look for calls left live by an earlier run");
        return;
    }
    x->gw = gw;
    recover_next(x);
}
