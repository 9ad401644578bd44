/* Calls without a stream talk in <Gather>/<Say> turns (call/gather.h holds the
 * conversation): the voice webhook answers so with STREAM_MODE=gather or when MAX_CALLS
 * calls stream already, and <Connect action> brings a call whose stream failed here to go
 * on so. POST /twilio/gather takes each turn (SpeechResult, Confidence, Digits and
 * FinishedOnKey, signed
 * like the voice webhook) and answers, once the agent's turn is over, with what it said
 * in a <Gather> that listens for the next, or with <Hangup/>. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "http/gateway.h"
#include "provider/twiml.h"

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

static void respond_twiml(cs_request *r, const cs_gather_reply *reply)
{
    cs_gateway *gw = r->app;
    const cs_config *cfg = gw->cfg;
    cs_gather_twiml_opts o = {
        .action = gw->gather_url,
        .voice = cfg->voice[0] ? cfg->voice : NULL,
        .language = cfg->relay_language[0] ? cfg->relay_language : NULL,
        .timeout_s = (unsigned)cfg->gather_timeout_s,
    };
    cs_buf xml = CS_BUF_INIT(CS_TWIML_MAX_BYTES);
    int rc = cs_gather_twiml(&xml, reply, &o);
    if (rc == 0)
        cs_respond(r, 200, "text/xml; charset=utf-8", xml.data, xml.len, NULL);
    else
        cs_respond_error(r, 500, "cannot build TwiML: %s", cs_strerror(rc));
    cs_buf_free(&xml);
}

static void on_reply(void *data, const cs_gather_reply *reply)
{
    respond_twiml(data, reply);
}

/* <Hangup/> at once: the call cannot talk here. */
static void hang_up(cs_request *r)
{
    cs_gather_reply reply = {.next = CS_GATHER_HANGUP};
    respond_twiml(r, &reply);
}

static void refused(cs_request *r, const char *call_sid, const char *reason)
{
    cs_gateway *gw = r->app;
    char detail[128];
    snprintf(detail, sizeof detail, "{\"type\":\"refused\",\"reason\":\"%s\"}", reason);
    cs_calls_event(&gw->calls, call_sid, CS_EVENT_GATHER, detail);
    hang_up(r);
}

enum cs_gather_why cs_gather_why_voice(const cs_gateway *gw)
{
    if (strcmp(gw->cfg->stream_mode, "gather") == 0) return CS_GATHER_WHY_MODE;
    if (cs_quota_held(&gw->shared->calls) >= (size_t)gw->cfg->max_calls) return CS_GATHER_WHY_FULL;
    return CS_GATHER_WHY_NONE;
}

void cs_gather_answer(cs_request *r, const cs_form *form, const char *call_sid,
                      const cs_form *call_params, enum cs_gather_why why)
{
    cs_gateway *gw = r->app;
    if (gw->draining) {
        refused(r, call_sid, "shutting_down");
        return;
    }
    /* Another account's call talks no more in turns than on a stream (media.c). */
    const char *mine = gw->cfg->twilio_account_sid, *account = cs_twilio_form_get(form, "AccountSid");
    if (mine[0] && (!account || strcmp(account, mine) != 0)) {
        gw->stats.gather_account_refused++;
        cs_warn("gather: refused call %s of account %.40s (TWILIO_ACCOUNT_SID is %s)", call_sid,
                account ? account : "(none)", mine);
        refused(r, call_sid, "account");
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
    int rc = cs_gather_open(gw->gather, &start, why_labels[why], on_reply, r);
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
    refused(r, call_sid, reason);
}

/* <Connect action>: the call's stream is over. It ended as it should (the agent hung up,
 * the call ended, MAX_CALL_S, shutdown): the call ends. It failed or never started: the
 * conversation goes on in turns. */
static void stream_over(cs_request *r, const cs_form *form, const char *call_sid,
                        const cs_form *call_params)
{
    cs_gateway *gw = r->app;
    gw->stats.gather_actions++;
    cs_twilio_form_event(r, form, call_sid, CS_EVENT_GATHER);
    enum cs_end_reason end = CS_END_STOP;
    enum cs_gather_fate fate = cs_gather_fate(gw->gather, call_sid, &end);
    bool failed = fate == CS_FATE_UNKNOWN || fate == CS_FATE_LIVE || end == CS_END_ABNORMAL ||
                  end == CS_END_IDLE;
    if (!failed || gw->draining) {
        hang_up(r);
        return;
    }
    cs_gather_answer(r, form, call_sid, call_params,
                     fate == CS_FATE_UNKNOWN ? CS_GATHER_WHY_NEVER_STARTED
                                             : CS_GATHER_WHY_STREAM_FAILED);
}

void cs_twilio_gather(cs_request *r)
{
    cs_gateway *gw = r->app;
    cs_form form, query;
    const char *call_sid = cs_twilio_checked_query(r, &form, &query);
    if (!call_sid) return;
    const char *status = cs_twilio_form_get(&form, "CallStatus");
    bool over = status && cs_twilio_final_status(status);
    bool action = query.n && strcmp(query.pairs[0].name, "fallback") == 0;
    if (action && !cs_gather_has(gw->gather, call_sid)) {
        /* The call's own parameters follow `fallback` in the action's query (a view). */
        const cs_form own = {query.pairs + 1, query.n - 1, NULL};
        if (over)
            hang_up(r);
        else
            stream_over(r, &form, call_sid, &own);
    } else if (over) {
        cs_gather_end(gw->gather, call_sid);
        hang_up(r);
    } else {
        const char *conf = cs_form_get(&form, "Confidence");
        char *end = NULL;
        double confidence = conf && *conf ? strtod(conf, &end) : -1;
        if (end && *end) confidence = -1;
        /* The key that ended the keys (finishOnKey, "#") is not among Digits: Twilio
         * sends it as FinishedOnKey. The agent hears it last, as it was pressed. */
        const char *digits = cs_form_get(&form, "Digits"),
                   *fin = cs_form_get(&form, "FinishedOnKey");
        char keys[CS_GATHER_DIGITS_MAX + 2];
        if (digits && fin && strlen(fin) == 1 && strlen(digits) <= CS_GATHER_DIGITS_MAX) {
            snprintf(keys, sizeof keys, "%s%s", digits, fin);
            digits = keys;
        }
        int rc = cs_gather_turn(gw->gather, call_sid, cs_form_get(&form, "SpeechResult"),
                                confidence, digits, on_reply, r);
        if (rc == CS_ENOTFOUND) {
            cs_warn("gather: a turn for call %s, which has no conversation here: hanging up",
                    call_sid);
            refused(r, call_sid, "unknown_call");
        } else if (rc == CS_ESTATE) {
            cs_respond_error(r, 409, "a turn of this call is being answered");
        } else if (rc < 0) {
            gw->stats.gather_bad_input++;
            cs_respond_error(r, 400, "Digits: at most %d of 0-9, * and #", CS_GATHER_DIGITS_MAX);
        }
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
    static const char *const refusals[] = {"gather_max_calls", "no_agent", "unknown_call",
                                           "bad_input", "account"};
    const uint64_t refused_n[] = {st->refused_full, gw->stats.gather_no_agent, st->unknown,
                                  gw->stats.gather_bad_input, gw->stats.gather_account_refused};
    cs_prom_family(out, "callstream_gather_refused_total", "counter",
                   "requests of calls that could not talk in <Gather> turns, by reason", "reason",
                   refusals, refused_n, 5);
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
    cs_prom_counter(out, "callstream_gather_stream_actions_total",
                    "<Connect action> requests after a media stream ended",
                    (double)gw->stats.gather_actions);
}
