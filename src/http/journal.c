/* The store's view of calls: an observer of the call registry that writes calls,
 * streams and events as they happen. Writes are queued to the store thread; nothing
 * here waits for the database. */
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "core/log.h"
#include "http/gateway.h"

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
    c->recording = dup_or_null(rec, row->recording);
    cs_store_write(gw->store, rec);
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
    };
    cs_journal_call(o, &row);
    cs_buf_free(&params);
}

static void call_ended(void *o, const cs_call *call)
{
    cs_call_row row = {.sid = call->sid, .ended_at = call->ended_ms, .status = "completed"};
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
    rec->stream.mode =
        cs_pool_strdup(&rec->pool, s->mode == CS_MODE_TWO_WAY ? "two-way" : "one-way");
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

static void event(void *o, const cs_call *call, const cs_stream *s, enum cs_event_type type,
                  int64_t at_ms, const char *detail)
{
    cs_gateway *gw = o;
    cs_store_rec *rec = cs_store_rec_new(CS_REC_EVENT);
    if (!rec) return;
    cs_event_row *e = &rec->event;
    e->call_sid = cs_pool_strdup(&rec->pool, call->sid);
    e->stream_sid = s ? cs_pool_strdup(&rec->pool, s->sid) : NULL;
    e->type = cs_pool_strdup(&rec->pool, cs_event_label(type));
    e->detail = dup_or_null(rec, detail);
    e->at = at_ms;
    cs_store_write(gw->store, rec);
}

static void recording(void *o, const char *call_sid, const char *path, uint64_t frames)
{
    cs_call_row row = {
        .sid = call_sid,
        .recording = path,
        .recording_ms = (int64_t)(frames / CS_FRAMES_PER_MS),
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
        .recording = recording,
        .data = gw,
    };
    return cs_calls_observe(&gw->calls, &o);
}
