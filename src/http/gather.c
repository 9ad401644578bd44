/* Calls without a stream talk in <Gather>/<Say> turns (call/gather.h holds the
 * conversation): the voice webhook answers so with STREAM_MODE=gather or when MAX_CALLS
 * calls stream already, and <Connect action> brings a call whose stream failed here to go
 * on so. POST /twilio/gather takes each turn (SpeechResult, Confidence, Digits and
 * FinishedOnKey, signed
 * like the voice webhook) and answers, once the agent's turn is over, with what it said
 * in a <Gather> that listens for the next, or with <Hangup/>. A request for a call held by
 * another loop or node is forwarded to it (cluster.c) and answered with its TwiML. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "http/gateway.h"
#include "provider/twilio.h"
#include "provider/twiml.h"

#define GATHER_READS_MAX    1024 /* actions waiting for the store to say how a stream ended */
#define GATHER_FATE_READS   5    /* reads of the store for a stream's end, at most... */
#define GATHER_FATE_READ_MS 500  /* ...this far apart: its end may not be written yet */

static const char *const why_labels[] = {
    [CS_GATHER_WHY_NONE] = "none",
    [CS_GATHER_WHY_MODE] = "stream_mode",
    [CS_GATHER_WHY_FULL] = "max_calls",
    [CS_GATHER_WHY_STREAM_FAILED] = "stream_failed",
    [CS_GATHER_WHY_NEVER_STARTED] = "stream_never_started",
};

/* ---- the TwiML of a turn ---- */

int cs_gather_twiml(cs_buf *out, const cs_gather_reply *reply, const cs_gather_twiml_opts *o)
{
    if (reply->nitems > CS_GATHER_ITEMS_MAX) return -EINVAL;
    const cs_twiml_attr say_attrs[] = {{"voice", o->voice}, {"language", o->language}};
    cs_twiml_attr loops[CS_GATHER_ITEMS_MAX];
    char loop_text[CS_GATHER_ITEMS_MAX][12];
    cs_twiml_verb said[CS_GATHER_ITEMS_MAX + 2];
    size_t n = 0;
    for (size_t i = 0; i < reply->nitems; i++) {
        const cs_gather_item *it = &reply->items[i];
        snprintf(loop_text[i], sizeof loop_text[i], "%u", it->loop);
        loops[i] = (cs_twiml_attr){"loop", it->loop ? loop_text[i] : NULL};
        said[n++] =
            it->play
                ? (cs_twiml_verb){CS_TWIML_PLAY, .text = it->text, .attrs = &loops[i], .nattrs = 1}
                : (cs_twiml_verb){CS_TWIML_SAY, .text = it->text, .attrs = say_attrs, .nattrs = 2};
    }
    if (reply->next == CS_GATHER_HANGUP) {
        said[n++] = (cs_twiml_verb){CS_TWIML_HANGUP};
        return cs_twiml_verbs_write(out, said, n);
    }
    /* The caller's turn: their words or keys come to `action`; with neither (Twilio's
     * timeout), it goes on to the <Redirect>, an empty turn. */
    char timeout[12];
    snprintf(timeout, sizeof timeout, "%u", o->timeout_s);
    const cs_twiml_attr gather_attrs[] = {
        {"input", "speech dtmf"}, {"action", o->action},     {"method", "POST"},
        {"timeout", timeout},     {"speechTimeout", "auto"}, {"language", o->language},
    };
    const cs_twiml_attr post = {"method", "POST"};
    const cs_twiml_verb verbs[] = {
        {CS_TWIML_GATHER, .attrs = gather_attrs,
         .nattrs = sizeof gather_attrs / sizeof *gather_attrs, .nested = said, .nnested = n},
        {CS_TWIML_REDIRECT, .text = o->action, .attrs = &post, .nattrs = 1},
    };
    return cs_twiml_verbs_write(out, verbs, 2);
}

/* ---- answering ---- */

/* Who waits for a request's TwiML: the HTTP request here, or the loop that forwarded it
 * (cluster.c), replied to. Freed once answered. */
typedef struct asker {
    cs_gateway *gw;
    cs_request *r;
    uint64_t id;
    char from[CS_BUS_NODE_MAX + 16];
} asker;

static asker *asker_new(cs_gateway *gw, cs_request *r, const char *from, uint64_t id)
{
    asker *a = calloc(1, sizeof *a);
    if (!a) {
        cs_error("gather: out of memory: a request of a conversation is dropped");
        if (r) cs_respond_error(r, 503, "out of memory");
        return NULL;
    }
    *a = (asker){.gw = gw, .r = r, .id = id};
    if (from) snprintf(a->from, sizeof a->from, "%s", from);
    return a;
}

/* `xml` for 200, else an error `code` with `msg`; `a` is freed. */
static void answer(asker *a, int code, const char *msg, const char *xml, size_t n)
{
    if (!a->r)
        cs_cluster_reply(a->gw, a->from, a->id, code, code == 200 ? NULL : msg,
                         code == 200 ? xml : NULL);
    else if (code == 200)
        cs_respond(a->r, 200, "text/xml; charset=utf-8", xml, n, NULL);
    else
        cs_respond_error(a->r, code, "%s", msg);
    free(a);
}

static void respond_twiml(asker *a, const cs_gather_reply *reply)
{
    const cs_config *cfg = a->gw->cfg;
    cs_gather_twiml_opts o = {
        .action = a->gw->gather_url,
        .voice = cfg->voice[0] ? cfg->voice : NULL,
        .language = cfg->relay_language[0] ? cfg->relay_language : NULL,
        .timeout_s = (unsigned)cfg->gather_timeout_s,
    };
    cs_buf xml = CS_BUF_INIT(CS_TWIML_MAX_BYTES);
    int rc = cs_gather_twiml(&xml, reply, &o);
    char msg[96];
    snprintf(msg, sizeof msg, "cannot build TwiML: %s", cs_strerror(rc));
    answer(a, rc == 0 ? 200 : 500, msg, xml.data, xml.len);
    cs_buf_free(&xml);
}

static void on_reply(void *data, const cs_gather_reply *reply)
{
    respond_twiml(data, reply);
}

/* <Hangup/> at once: the call cannot talk here. */
static void hang_up(asker *a)
{
    cs_gather_reply reply = {.next = CS_GATHER_HANGUP};
    respond_twiml(a, &reply);
}

/* An event of the call saying why it hangs up (`message`: more, or NULL). */
static void refused_event(cs_gateway *gw, const char *call_sid, const char *reason,
                          const char *message)
{
    cs_buf detail = CS_BUF_INIT(512);
    cs_json j;
    cs_json_init(&j, &detail);
    cs_json_obj(&j);
    cs_json_kstr(&j, "type", "refused");
    cs_json_kstr(&j, "reason", reason);
    if (message) cs_json_kstr(&j, "message", message);
    cs_json_obj_end(&j);
    cs_calls_event(&gw->calls, call_sid, CS_EVENT_GATHER,
                   cs_json_end(&j) == 0 ? detail.data : NULL);
    cs_buf_free(&detail);
}

static void refused(asker *a, const char *call_sid, const char *reason)
{
    refused_event(a->gw, call_sid, reason, NULL);
    hang_up(a);
}

enum cs_gather_why cs_gather_why_voice(const cs_gateway *gw)
{
    if (strcmp(gw->cfg->stream_mode, "gather") == 0) return CS_GATHER_WHY_MODE;
    if (cs_quota_held(&gw->shared->calls) >= (size_t)gw->cfg->max_calls) return CS_GATHER_WHY_FULL;
    return CS_GATHER_WHY_NONE;
}

static void open_conversation(asker *a, const cs_form *form, const char *call_sid,
                              const cs_form *call_params, enum cs_gather_why why)
{
    cs_gateway *gw = a->gw;
    if (gw->draining) {
        refused(a, call_sid, "shutting_down");
        return;
    }
    /* Another account's call talks no more in turns than on a stream (media.c). */
    const char *mine = gw->cfg->twilio_account_sid, *account = cs_twilio_form_get(form, "AccountSid");
    if (mine[0] && (!account || strcmp(account, mine) != 0)) {
        gw->stats.gather_account_refused++;
        cs_warn("gather: refused call %s of account %.40s (TWILIO_ACCOUNT_SID is %s)", call_sid,
                account ? account : "(none)", mine);
        refused(a, call_sid, "account");
        return;
    }
    /* The stream it would have had: the same <Parameter>s (the agent is chosen by them). */
    const char *from = cs_twilio_form_get(form, "From"), *to = cs_twilio_form_get(form, "To");
    cs_kv params[CS_PEV_MAX_PARAMS];
    cs_pevent start = {.type = CS_PEV_START, .seq = -1};
    start.start.call_id = cs_str_of(call_sid);
    start.start.account_id = cs_str_of(account ? account : "");
    start.start.from = cs_str_of(from ? from : "");
    start.start.to = cs_str_of(to ? to : "");
    start.start.params = params;
    start.start.nparams =
        cs_twilio_call_params(gw, params, call_sid, from, to, "gather", NULL, call_params);
    int rc = cs_gather_open(gw->gather, &start, why_labels[why], on_reply, a);
    if (rc == 0) {
        gw->stats.gather_begun[why]++;
        if (why != CS_GATHER_WHY_MODE)
            cs_warn("gather: call %s goes on in <Gather> turns: %s", call_sid, why_labels[why]);
        return; /* answered with the agent's first turn */
    }
    const char *reason = rc == CS_ELIMIT      ? "gather_max_calls"
                         : rc == CS_ENOTFOUND ? "no_agent"
                         : rc == CS_ESTATE    ? "already_talking"
                                              : "cannot_start";
    if (rc == CS_ENOTFOUND) gw->stats.gather_no_agent++;
    cs_warn("gather: call %s cannot talk in <Gather> turns (%s): hanging up", call_sid, reason);
    refused(a, call_sid, reason);
}

void cs_gather_answer(cs_request *r, const cs_form *form, const char *call_sid,
                      const cs_form *call_params, enum cs_gather_why why)
{
    asker *a = asker_new(r->app, r, NULL, 0);
    if (a) open_conversation(a, form, call_sid, call_params, why);
}

/* A request as it came: its forms, and the text they were read from (to read again
 * later). */
typedef struct req {
    const char *sid;
    const cs_form *form, *query;
    const char *form_text, *query_text; /* query_text: or NULL */
    size_t form_len, query_len;
} req;

/* Whether other loops or nodes may have held the call's stream (this loop's memory does
 * not tell all). */
static bool shared(const cs_gateway *gw)
{
    return gw->bus && gw->bus->ops != &cs_bus_inproc_ops;
}

/* The call's stream is over with `fate` (`end`): it ended as it should (the agent hung
 * up, the call ended, MAX_CALL_S, shutdown): the call ends. It failed or never started:
 * the conversation goes on in turns. */
static void decide(asker *a, const cs_form *form, const char *call_sid, const cs_form *params,
                   enum cs_gather_fate fate, enum cs_end_reason end)
{
    bool failed = fate == CS_FATE_UNKNOWN || fate == CS_FATE_LIVE || end == CS_END_ABNORMAL ||
                  end == CS_END_IDLE;
    if (!failed || a->gw->draining) {
        hang_up(a);
        return;
    }
    open_conversation(a, form, call_sid, params,
                      fate == CS_FATE_UNKNOWN ? CS_GATHER_WHY_NEVER_STARTED
                                              : CS_GATHER_WHY_STREAM_FAILED);
}

/* The call's own parameters follow `fallback` in the action's query (a view). */
static cs_form own_params(const cs_form *query)
{
    return (cs_form){query->pairs + 1, query->n - 1, NULL};
}

/* ---- a stream's fate, from the store ---- */

/* A <Connect action> whose stream this loop did not hold, while the store is read for
 * the stream's end. Freed when its timer has closed and no read is under way. */
struct cs_gather_read {
    asker *a; /* NULL once answered */
    cs_gateway *gw;
    char sid[CS_SID_MAX + 1];
    char *form, *query; /* the request's text, read again to decide */
    uv_timer_t timer;
    int polls;
    bool reading, closed;
    cs_gather_read *prev, *next;
};

enum cs_gather_fate cs_gather_fate_of_rows(const cs_stream_row *rows, size_t n,
                                           enum cs_end_reason *why)
{
    const cs_stream_row *last = NULL;
    for (size_t i = 0; i < n; i++) {
        const cs_stream_row *st = &rows[i];
        if (st->mode && strcmp(st->mode, cs_stream_mode_label(CS_MODE_GATHER)) == 0) continue;
        if (!last || st->started_at >= last->started_at) last = st;
    }
    if (!last) return CS_FATE_UNKNOWN;
    for (int i = 0; last->ended_at && last->end_reason && i < CS_END_COUNT; i++) {
        if (strcmp(last->end_reason, cs_end_label((enum cs_end_reason)i)) == 0) {
            *why = (enum cs_end_reason)i;
            return CS_FATE_ENDED;
        }
    }
    return CS_FATE_LIVE; /* no end (or one we do not know) written yet */
}

static void read_maybe_free(cs_gather_read *x)
{
    if (x->closed && !x->reading) {
        free(x->form);
        free(x->query);
        free(x);
    }
}

static void read_closed(uv_handle_t *h)
{
    cs_gather_read *x = h->data;
    x->closed = true;
    read_maybe_free(x);
}

/* Unlinks `x` and closes its timer; its asker is answered already or `a` of decide. */
static void read_end(cs_gather_read *x)
{
    cs_gateway *gw = x->gw;
    if (x->prev)
        x->prev->next = x->next;
    else
        gw->gather_reads = x->next;
    if (x->next) x->next->prev = x->prev;
    gw->gather_nreads--;
    x->a = NULL;
    uv_close((uv_handle_t *)&x->timer, read_closed);
}

static void read_decide(cs_gather_read *x, enum cs_gather_fate fate, enum cs_end_reason end)
{
    asker *a = x->a;
    cs_form f = {0}, q = {0};
    int rc = cs_form_parse(&f, x->form, strlen(x->form));
    if (rc == 0 && x->query) rc = cs_form_parse(&q, x->query, strlen(x->query));
    char sid[CS_SID_MAX + 1];
    snprintf(sid, sizeof sid, "%s", x->sid);
    read_end(x);
    if (rc == 0) {
        cs_form own = own_params(&q);
        decide(a, &f, sid, &own, fate, end);
    } else { /* cannot happen: it was read before */
        hang_up(a);
    }
    cs_form_free(&q);
    cs_form_free(&f);
}

static void read_again(uv_timer_t *t);

/* The call's streams as the store has them: the latest one not in turns decides, once it
 * has ended; until then (its end, or its start, not written yet) the store is read again,
 * GATHER_FATE_READS times. */
static void read_done(cs_store_query *q, void *data)
{
    cs_gather_read *x = data;
    x->reading = false;
    if (!x->a) {
        cs_store_query_free(q);
        read_maybe_free(x);
        return;
    }
    enum cs_end_reason end = CS_END_ABNORMAL;
    enum cs_gather_fate fate =
        q->status == 0 ? cs_gather_fate_of_rows(q->streams, q->nstreams, &end) : CS_FATE_UNKNOWN;
    if (q->status != 0 && q->status != CS_ENOTFOUND)
        cs_warn("gather: the store cannot say how call %s's stream ended (%s)", x->sid, q->error);
    cs_store_query_free(q);
    if (fate == CS_FATE_ENDED) {
        read_decide(x, fate, end);
    } else if (++x->polls < GATHER_FATE_READS) {
        uv_timer_start(&x->timer, read_again, GATHER_FATE_READ_MS, 0);
    } else {
        /* Still open: it failed without an end written; none: it never started. */
        cs_warn("gather: call %s's stream %s in the store: %s", x->sid,
                fate == CS_FATE_LIVE ? "has no end" : "is not",
                fate == CS_FATE_LIVE ? "failed" : "never started");
        read_decide(x, fate, CS_END_ABNORMAL);
    }
}

static void read_store(cs_gather_read *x)
{
    cs_store_query *q = x->gw->store ? cs_store_query_new(CS_Q_CALL, read_done, x) : NULL;
    if (!q) { /* no store, or no memory: nothing more is known */
        read_decide(x, CS_FATE_UNKNOWN, CS_END_ABNORMAL);
        return;
    }
    snprintf(q->sid, sizeof q->sid, "%s", x->sid);
    x->reading = true;
    cs_store_query_run(x->gw->store, q);
}

static void read_again(uv_timer_t *t)
{
    read_store(t->data);
}

/* Reads the store for `rq`'s stream; `a` is answered when it is known. */
static void read_fate(asker *a, const req *rq)
{
    cs_gateway *gw = a->gw;
    cs_gather_read *x = gw->gather_nreads < GATHER_READS_MAX ? calloc(1, sizeof *x) : NULL;
    if (x) {
        x->form = strndup(rq->form_text, rq->form_len);
        x->query = rq->query_text ? strndup(rq->query_text, rq->query_len) : NULL;
    }
    if (!x || !x->form || (rq->query_text && !x->query)) {
        if (x) {
            free(x->form);
            free(x->query);
            free(x);
        }
        gw->stats.gather_reads_full++;
        cs_warn("gather: too many streams' ends being read (%d): call %s hangs up",
                GATHER_READS_MAX, rq->sid);
        refused(a, rq->sid, "busy");
        return;
    }
    x->a = a;
    x->gw = gw;
    snprintf(x->sid, sizeof x->sid, "%s", rq->sid);
    uv_timer_init(gw->loop, &x->timer);
    x->timer.data = x;
    x->next = gw->gather_reads;
    if (x->next) x->next->prev = x;
    gw->gather_reads = x;
    gw->gather_nreads++;
    read_store(x);
}

void cs_gather_reads_stop(cs_gateway *gw)
{
    if (gw->gather_nreads)
        cs_info("shutdown: %zu <Connect action>(s) reading how their stream ended hang up",
                gw->gather_nreads);
    while (gw->gather_reads) {
        cs_gather_read *x = gw->gather_reads;
        asker *a = x->a;
        uv_timer_stop(&x->timer);
        read_end(x);
        hang_up(a);
    }
}

/* <Connect action>: the call's stream is over. How it fared is this loop's to say when
 * it held the stream; else (it ran on another loop or node, which the directory no
 * longer lists) the store's. */
static void stream_over(asker *a, const req *rq)
{
    cs_gateway *gw = a->gw;
    enum cs_end_reason end = CS_END_STOP;
    enum cs_gather_fate fate = cs_gather_fate(gw->gather, rq->sid, &end);
    if (fate == CS_FATE_UNKNOWN && shared(gw) && !gw->draining) {
        read_fate(a, rq);
        return;
    }
    cs_form own = own_params(rq->query);
    decide(a, rq->form, rq->sid, &own, fate, end);
}

/* Whether a request is a stream's <Connect action> (its query starts with `fallback`). */
static bool is_action(const cs_form *query)
{
    return query->n && strcmp(query->pairs[0].name, "fallback") == 0;
}

/* A request of the call, here: a stream's action, the call's end, or a turn. */
static void take(asker *a, const req *rq)
{
    cs_gateway *gw = a->gw;
    const cs_form *form = rq->form;
    const char *call_sid = rq->sid;
    const char *status = cs_twilio_form_get(form, "CallStatus");
    bool over = status && cs_twilio_final_status(status);
    if (is_action(rq->query) && !cs_gather_has(gw->gather, call_sid)) {
        if (over)
            hang_up(a);
        else
            stream_over(a, rq);
        return;
    }
    if (over) {
        cs_gather_end(gw->gather, call_sid);
        hang_up(a);
        return;
    }
    const char *conf = cs_form_get(form, "Confidence");
    char *end = NULL;
    double confidence = conf && *conf ? strtod(conf, &end) : -1;
    if (end && *end) confidence = -1;
    /* The key that ended the keys (finishOnKey, "#") is not among Digits: Twilio sends it
     * as FinishedOnKey. The agent hears it last, as it was pressed. */
    const char *digits = cs_form_get(form, "Digits"), *fin = cs_form_get(form, "FinishedOnKey");
    char keys[CS_GATHER_DIGITS_MAX + 2];
    if (digits && fin && strlen(fin) == 1 && strlen(digits) <= CS_GATHER_DIGITS_MAX) {
        snprintf(keys, sizeof keys, "%s%s", digits, fin);
        digits = keys;
    }
    int rc = cs_gather_turn(gw->gather, call_sid, cs_form_get(form, "SpeechResult"), confidence,
                            digits, on_reply, a);
    if (rc == CS_ENOTFOUND) {
        cs_warn("gather: a turn for call %s, which has no conversation here: hanging up", call_sid);
        refused(a, call_sid, "unknown_call");
    } else if (rc == CS_ESTATE) {
        answer(a, 409, "a turn of this call is being answered", NULL, 0);
    } else if (rc < 0) {
        gw->stats.gather_bad_input++;
        char msg[64];
        snprintf(msg, sizeof msg, "Digits: at most %d of 0-9, * and #", CS_GATHER_DIGITS_MAX);
        answer(a, 400, msg, NULL, 0);
    }
}

void cs_gather_take(cs_gateway *gw, cs_request *r, const char *from, uint64_t id, const char *form,
                    const char *query)
{
    asker *a = asker_new(gw, r, from, id);
    if (!a) return;
    if (r) {
        form = r->body.data ? r->body.data : "";
        query = r->head.query.p;
    }
    size_t form_len = r ? r->body.len : strlen(form), query_len = r       ? r->head.query.n
                                                                  : query ? strlen(query)
                                                                          : 0;
    cs_form f = {0}, q = {0};
    const char *call_sid = NULL;
    /* Read and checked by the loop Twilio reached: these fail only if it is not ours. */
    if (cs_form_parse(&f, form, form_len) == 0 &&
        (!query_len || cs_form_parse(&q, query, query_len) == 0))
        call_sid = cs_twilio_form_get(&f, "CallSid");
    const req rq = {call_sid, &f, &q, form, query_len ? query : NULL, form_len, query_len};
    if (call_sid && cs_twilio_sid_valid(cs_str_of(call_sid), "CA"))
        take(a, &rq);
    else
        answer(a, 400, "a forwarded request that does not read", NULL, 0);
    cs_form_free(&q);
    cs_form_free(&f);
}

void cs_gather_respond(cs_request *r, const char *sid, int code, const char *msg, const char *body)
{
    (void)sid;
    if (code == 200 && body)
        cs_respond(r, 200, "text/xml; charset=utf-8", body, strlen(body), NULL);
    else
        cs_respond_error(r, code, "%s", msg ? msg : "refused by the call's node");
}

void cs_gather_unanswered(cs_request *r, const char *sid, const cs_cluster_fail *why)
{
    cs_gateway *gw = r->app;
    gw->stats.gather_unanswered++;
    cs_warn("gather: a request of call %s is not answered by its loop (%s): hanging up", sid,
            why->message);
    asker *a = asker_new(gw, r, NULL, 0);
    if (!a) return;
    refused_event(gw, sid, why->reason, why->message);
    hang_up(a);
}

void cs_twilio_gather(cs_request *r)
{
    cs_gateway *gw = r->app;
    cs_form form, query;
    const char *call_sid = cs_twilio_checked_query(r, &form, &query);
    if (!call_sid) return;
    const char *status = cs_twilio_form_get(&form, "CallStatus");
    bool over = status && cs_twilio_final_status(status);
    bool here = cs_gather_has(gw->gather, call_sid) ||
                cs_calls_call(&gw->calls, cs_str_of(call_sid)) != NULL;
    if (is_action(&query) && !over && !cs_gather_has(gw->gather, call_sid)) {
        gw->stats.gather_actions++;
        cs_twilio_form_event(r, &form, call_sid, CS_EVENT_GATHER);
    }
    if (here || !shared(gw)) {
        const req rq = {call_sid,
                        &form,
                        &query,
                        r->body.data ? r->body.data : "",
                        r->head.query.n ? r->head.query.p : NULL,
                        r->body.len,
                        r->head.query.n};
        asker *a = asker_new(gw, r, NULL, 0);
        if (a) take(a, &rq);
    } else if (over) {
        /* Its conversation ends where it lives. */
        cs_cluster_status(gw, call_sid, status);
        asker *a = asker_new(gw, r, NULL, 0);
        if (a) hang_up(a);
    } else {
        cs_cluster_gather(r, call_sid);
    }
    cs_form_free(&query);
    cs_form_free(&form);
}

/* ---- start-up and metrics ---- */

int cs_gather_start(cs_gateway *gw)
{
    const cs_config *cfg = gw->cfg;
    cs_gather_opts o = {
        .max = (size_t)cfg->gather_max_calls,
        .reply_ms = (uint32_t)cfg->gather_reply_ms,
        .idle_ms = (uint32_t)cfg->gather_idle_s * 1000,
        .max_ms = (uint32_t)cfg->max_call_s * 1000,
        .shared = gw->shared ? &gw->shared->gather : NULL,
    };
    return cs_gather_new(&gw->gather, &gw->calls, gw->loop, &o);
}

void cs_gather_metrics(const cs_gateway *gw, cs_buf *out)
{
    if (!gw->gather) return;
    const cs_gather_stats *st = cs_gather_stats_get(gw->gather);
    cs_prom_gauge(out, "callstream_gather_conversations", "calls talking in <Gather> turns now",
                  (double)cs_gather_active(gw->gather));
    cs_prom_family(out, "callstream_gather_begun_total", "counter",
                   "conversations begun in <Gather> turns, by why the call has no stream", "reason",
                   why_labels + 1, gw->stats.gather_begun + 1, CS_GATHER_WHY_COUNT - 1);
    static const char *const refusals[] = {
        "gather_max_calls", "no_agent",   "unknown_call", "bad_input",
        "account",          "unanswered", "busy"};
    const uint64_t refused_n[] = {
        st->refused_full,           gw->stats.gather_no_agent,        st->unknown,
        gw->stats.gather_bad_input, gw->stats.gather_account_refused, gw->stats.gather_unanswered,
        gw->stats.gather_reads_full};
    cs_prom_family(out, "callstream_gather_refused_total", "counter",
                   "requests of calls that could not talk in <Gather> turns, by reason "
                   "(unanswered: the loop holding the call did not reply; busy: "
                   "GATHER_READS_MAX actions reading the store)",
                   "reason", refusals, refused_n, 7);
    cs_prom_counter(out, "callstream_gather_turns_total", "the caller's turns taken",
                    (double)st->turns);
    static const char *const nexts[] = {"listen", "hangup"};
    cs_prom_family(out, "callstream_gather_answers_total", "counter",
                   "turns answered, by what follows the agent's words", "next", nexts, st->answers,
                   2);
    cs_prom_counter(out, "callstream_gather_silent_total",
                    "conversations hung up after answers in a row with nothing said",
                    (double)st->silent);
    cs_prom_counter(out, "callstream_gather_late_total",
                    "answers sent at GATHER_REPLY_MS before the agent's turn was over",
                    (double)st->late);
    cs_prom_counter(out, "callstream_gather_expired_total",
                    "conversations ended after GATHER_IDLE_S without a request",
                    (double)st->expired);
    cs_prom_counter(out, "callstream_gather_dropped_total",
                    "agent text or audio past what one answer holds", (double)st->dropped);
    cs_prom_gauge(out, "callstream_gather_stream_reads",
                  "<Connect action>s reading the store now for how their stream ended (at most "
                  "1024)",
                  (double)gw->gather_nreads);
    cs_prom_counter(out, "callstream_gather_stream_actions_total",
                    "<Connect action> requests after a media stream ended",
                    (double)gw->stats.gather_actions);
}
