/* Twilio's HTTP callbacks: the voice webhook (answered with TwiML that opens the media
 * stream), call status and stream status callbacks. Only signatures authenticate them. */
#include <stdio.h>
#include <string.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "http/gateway.h"
#include "provider/twilio.h"
#include "provider/twilio_sig.h"
#include "provider/twiml.h"

bool cs_twilio_final_status(const char *status)
{
    static const char *const final[] = {"completed", "busy", "failed", "no-answer", "canceled"};
    for (size_t i = 0; i < sizeof final / sizeof *final; i++)
        if (strcmp(status, final[i]) == 0) return true;
    return false;
}

static bool is_form(const cs_request *r)
{
    const cs_str *ct = cs_request_header(r, "Content-Type");
    if (!ct) return r->body.len == 0;
    cs_str type = *ct;
    for (size_t i = 0; i < type.n; i++) {
        if (type.p[i] == ';' || type.p[i] == ' ') {
            type.n = i;
            break;
        }
    }
    return cs_str_ieq(type, "application/x-www-form-urlencoded");
}

int cs_twilio_check_webhook(cs_request *r, cs_form *form)
{
    cs_gateway *gw = r->app;
    memset(form, 0, sizeof *form);
    if (!is_form(r)) {
        cs_respond_error(r, 415, "expected application/x-www-form-urlencoded");
        return CS_EPARSE;
    }
    int rc = cs_form_parse(form, r->body.data ? r->body.data : "", r->body.len);
    if (rc == CS_ELIMIT) {
        cs_respond_error(r, 400, "more than %d form parameters", CS_FORM_MAX_PAIRS);
        return rc;
    }
    if (rc < 0) {
        cs_respond_error(r, 400, "malformed form body");
        return CS_EPARSE;
    }
    const char *token = gw->cfg->twilio_auth_token;
    if (!token[0]) return 0;

    const cs_str *sig = cs_request_header(r, "X-Twilio-Signature");
    char url[CS_URL_CAP + CS_HTTP_MAX_TARGET];
    snprintf(url, sizeof url, "%s%.*s", gw->public_url, (int)r->head.target.n, r->head.target.p);
    char sigz[CS_TWILIO_SIG_LEN + 8] = "";
    if (sig) cs_str_copy(sigz, sizeof sigz, *sig);
    cs_kv params[CS_FORM_MAX_PAIRS];
    for (size_t i = 0; i < form->n; i++)
        params[i] = (cs_kv){cs_str_of(form->pairs[i].name), cs_str_of(form->pairs[i].value)};
    if (sig && cs_twilio_sig_check_webhook(token, url, params, form->n, r->body.data, r->body.len,
                                           sigz) == 0)
        return 0;
    gw->stats.sig_refused_webhook++;
    cs_warn("twilio: refused %s from %s: %s X-Twilio-Signature", url,
            r->conn ? r->conn->peer_ip : "?", sig ? "wrong" : "no");
    cs_form_free(form);
    cs_respond_error(r, 403, "invalid X-Twilio-Signature");
    return CS_EAUTH;
}

/* A request's form parameters as a JSON object, for event details: a byte takes at most
 * 6 escaped ("\u0001"), a pair 6 more ("":"",), so its size follows from the body's. */
void cs_twilio_form_event(cs_request *r, const cs_form *form, const char *call_sid,
                          enum cs_event_type type)
{
    cs_gateway *gw = r->app;
    cs_buf out = CS_BUF_INIT(6 * (r->body.len + form->n) + 16);
    cs_json j;
    cs_json_init(&j, &out);
    cs_json_obj(&j);
    for (size_t i = 0; i < form->n; i++)
        cs_json_kstr(&j, form->pairs[i].name, form->pairs[i].value);
    cs_json_obj_end(&j);
    cs_calls_event(&gw->calls, call_sid, type, cs_json_end(&j) == 0 ? out.data : NULL);
    cs_buf_free(&out);
}

const char *cs_twilio_form_get(const cs_form *f, const char *name)
{
    const char *v = cs_form_get(f, name);
    return v && v[0] ? v : NULL;
}

/* The <Parameter>s the gateway gives every stream, in this order, before STREAM_PARAMS
 * (Greeting: a relay's only, what the provider says for the agent first). */
static const char *const own_params[] = {"From", "To", "CallSid", "StreamMode", "Greeting"};
#define OWN_PARAMS (sizeof own_params / sizeof *own_params)

/* How many of them a stream of this gateway's mode may carry. */
static size_t own_count(const cs_gateway *gw)
{
    return strcmp(gw->cfg->stream_mode, "relay") == 0 ? OWN_PARAMS : OWN_PARAMS - 1;
}

bool cs_twilio_param_taken(const char *name)
{
    for (size_t k = 0; k < OWN_PARAMS; k++)
        if (strcmp(name, own_params[k]) == 0) return true;
    return false;
}

/* Adds a <Parameter>. A value Twilio would not take (name + value over
 * CS_TWIML_MAX_PARAM characters: a From or To can be a long SIP URI) is left out and
 * counted; the call row keeps it whole from the webhook. STREAM_PARAMS were checked at
 * start (check_stream_params): all of them fit. */
static void add_param(cs_gateway *gw, cs_kv *params, size_t *n, const char *name, const char *value)
{
    if (!value || *n == CS_PEV_MAX_PARAMS) return; /* never: STREAM_PARAMS were counted */
    cs_kv kv = {cs_str_of(name), cs_str_of(value)};
    if (!cs_twiml_param_fits(kv.name, kv.value)) {
        gw->stats.twiml_params_dropped++;
        cs_warn("twilio: the %zu-byte %s is too long for a <Parameter>; the stream goes without",
                kv.value.n, name);
        return;
    }
    params[(*n)++] = kv;
}

size_t cs_twilio_call_params(cs_gateway *gw, cs_kv *params, const char *call_sid, const char *from,
                             const char *to, const char *mode, const char *welcome,
                             const cs_form *call_params)
{
    const char *own[OWN_PARAMS] = {from, to, call_sid, mode, welcome};
    size_t n = 0;
    for (size_t i = 0; i < OWN_PARAMS; i++) add_param(gw, params, &n, own_params[i], own[i]);
    /* An outbound call's own (the agent, the API's params), from the webhook's query. */
    for (size_t i = 0; call_params && i < call_params->n; i++)
        if (!cs_twilio_param_taken(call_params->pairs[i].name))
            add_param(gw, params, &n, call_params->pairs[i].name, call_params->pairs[i].value);
    for (size_t i = 0; i < gw->stream_params.n; i++)
        add_param(gw, params, &n, gw->stream_params.pairs[i].name,
                  gw->stream_params.pairs[i].value);
    return n;
}

/* What the agent of a relay says first, when the provider can say it for it: its
 * greeting, if it fits a <Parameter> (the agent then knows it was said). The agent is
 * the one the stream will get (cs_gateway_webhook_agent). */
static const char *relay_welcome(cs_gateway *gw, const cs_form *call_params)
{
    const cs_agent_ops *agent = cs_gateway_webhook_agent(gw, call_params);
    const char *text = agent && agent->welcome ? agent->welcome(gw->cfg) : NULL;
    return text && *text && cs_twiml_param_fits(CS_STR("Greeting"), cs_str_of(text)) ? text : NULL;
}

/* The TwiML answering a call (protocol.md §2): an optional <Say>, then either
 * <Connect><Stream> (two-way: our agent may talk back), <Start><Stream> (one-way fork)
 * followed by what keeps the call going (<Dial> or <Pause>), or <Connect
 * action><ConversationRelay> (§9.2: the provider does speech, text comes to the relay
 * URL). The stream carries From, To, CallSid, the mode and STREAM_PARAMS as
 * <Parameter>s; a relay the agent's greeting too. */
static int write_twiml(cs_gateway *gw, cs_buf *out, const char *call_sid, const char *from,
                       const char *to, const cs_form *call_params, cs_str query)
{
    const cs_config *cfg = gw->cfg;
    bool relay = strcmp(cfg->stream_mode, "relay") == 0;
    bool connect = relay || strcmp(cfg->stream_mode, "connect") == 0;
    const char *welcome = relay ? relay_welcome(gw, call_params) : NULL;
    const char *mode = relay ? "relay" : connect ? "two-way" : "one-way";
    cs_kv params[CS_PEV_MAX_PARAMS];
    size_t n = cs_twilio_call_params(gw, params, call_sid, from, to, mode, welcome, call_params);
    /* The stream: a <ConversationRelay> (attribute names as in Twilio's reference), or a
     * <Stream> the media comes to, with its status callback. */
    const char *barge = cfg->barge_in ? "any" : "none";
    const cs_twiml_attr relay_attrs[] = {
        {"url", gw->relay_url},
        {"welcomeGreeting", welcome},
        {"welcomeGreetingInterruptible", welcome ? barge : NULL},
        {"language", cfg->relay_language[0] ? cfg->relay_language : NULL},
        {"ttsProvider", cfg->relay_tts_provider[0] ? cfg->relay_tts_provider : NULL},
        {"voice", cfg->relay_voice[0] ? cfg->relay_voice : NULL},
        {"transcriptionProvider",
         cfg->relay_transcription_provider[0] ? cfg->relay_transcription_provider : NULL},
        {"speechModel", cfg->relay_speech_model[0] ? cfg->relay_speech_model : NULL},
        {"interruptible", barge},
        {"dtmfDetection", "true"},
    };
    const cs_twiml_attr stream_attrs[] = {
        {"url", gw->stream_url},
        {"track", connect ? NULL : cfg->stream_track},
        {"statusCallback", gw->status_url},
        {"statusCallbackMethod", "POST"},
    };
    const cs_twiml_verb stream = {
        .kind = relay ? CS_TWIML_RELAY : CS_TWIML_STREAM,
        .attrs = relay ? relay_attrs : stream_attrs,
        .nattrs = relay ? sizeof relay_attrs / sizeof *relay_attrs
                        : sizeof stream_attrs / sizeof *stream_attrs,
        .params = params,
        .nparams = n,
    };
    /* <Connect action>: a relay session's end comes back to us, and so does a media
     * stream's with an agent (gather.c: a failed one goes on in <Gather> turns, with the
     * call's own parameters). <Start> returns at once: what follows keeps the call going
     * (<Dial>, or <Pause> as long as a call may last). */
    const cs_twiml_attr say_voice = {"voice", cfg->voice[0] ? cfg->voice : NULL};
    char fallback[CS_URL_CAP + CS_HTTP_MAX_TARGET];
    bool agent = connect && !relay && cs_gateway_webhook_agent(gw, call_params);
    if (agent)
        snprintf(fallback, sizeof fallback, "%s?fallback=stream%s%.*s", gw->gather_url,
                 query.n ? "&" : "", (int)query.n, query.p);
    const cs_twiml_attr action = {"action", relay ? gw->relay_action_url : agent ? fallback : NULL};
    char seconds[16];
    snprintf(seconds, sizeof seconds, "%d", (int)cfg->max_call_s);
    const cs_twiml_attr pause_length = {"length", seconds};
    cs_twiml_verb verbs[3];
    size_t nv = 0;
    if (cfg->greeting[0])
        verbs[nv++] =
            (cs_twiml_verb){CS_TWIML_SAY, .text = cfg->greeting, .attrs = &say_voice, .nattrs = 1};
    verbs[nv++] = (cs_twiml_verb){connect ? CS_TWIML_CONNECT : CS_TWIML_START, .attrs = &action,
                                  .nattrs = 1, .nested = &stream, .nnested = 1};
    if (!connect && cfg->dial[0])
        verbs[nv++] = (cs_twiml_verb){CS_TWIML_DIAL, .text = cfg->dial};
    else if (!connect)
        verbs[nv++] = (cs_twiml_verb){CS_TWIML_PAUSE, .attrs = &pause_length, .nattrs = 1};
    return cs_twiml_verbs_write(out, verbs, nv);
}

/* Every STREAM_PARAMS parameter must reach every stream: one Twilio would refuse, one
 * more than a stream takes, or a name given already would be left out of each call. */
static int check_stream_params(const cs_gateway *gw, cs_buf *err)
{
    const cs_form *f = &gw->stream_params;
    size_t own = own_count(gw);
    if (f->n > CS_PEV_MAX_PARAMS - own) {
        cs_buf_printf(err,
                      "STREAM_PARAMS: %zu parameters; a stream takes %zu besides From, To, "
                      "CallSid, StreamMode%s",
                      f->n, CS_PEV_MAX_PARAMS - own, own == OWN_PARAMS ? " and Greeting" : "");
        return CS_ECONFIG;
    }
    for (size_t i = 0; i < f->n; i++) {
        const char *name = f->pairs[i].name;
        bool taken = false;
        for (size_t k = 0; k < OWN_PARAMS; k++) taken |= strcmp(name, own_params[k]) == 0;
        for (size_t k = 0; k < i; k++) taken |= strcmp(name, f->pairs[k].name) == 0;
        if (taken) {
            cs_buf_printf(err,
                          "STREAM_PARAMS: '%.40s' is given twice, or is one of the "
                          "gateway's own (From, To, CallSid, StreamMode, Greeting)",
                          name);
            return CS_ECONFIG;
        }
        if (!cs_twiml_param_fits(cs_str_of(name), cs_str_of(f->pairs[i].value))) {
            cs_buf_printf(err, "STREAM_PARAMS: '%.40s' is longer than %d characters with its name",
                          name, CS_TWIML_MAX_PARAM);
            return CS_ECONFIG;
        }
    }
    return 0;
}

int cs_twilio_twiml_check(cs_gateway *gw, cs_buf *err)
{
    int rc = check_stream_params(gw, err);
    if (rc < 0) return rc;
    /* The largest a request can make: From and To as long as a <Parameter> takes, and
     * CS_CALL_PARAMS_MAX call parameters in as long a query as a request target holds, of
     * the character that escapes longest ('"': 3 bytes in a query, 6 in TwiML), the query
     * also whole in a media stream's <Connect action> (the first parameter names an agent,
     * so there is one; not for a relay, whose greeting is AGENT's). If that fits, every
     * answer does. */
    char from[CS_TWIML_MAX_PARAM + 1], to[CS_TWIML_MAX_PARAM + 1];
    memset(from, '"', sizeof from - 1);
    memset(to, '"', sizeof to - 1);
    from[CS_TWIML_MAX_PARAM - strlen("From")] = to[CS_TWIML_MAX_PARAM - strlen("To")] = '\0';
    bool relay = strcmp(gw->cfg->stream_mode, "relay") == 0;
    cs_buf q = CS_BUF_INIT(CS_HTTP_MAX_TARGET);
    size_t room = CS_HTTP_MAX_TARGET - strlen("/twilio/voice?");
    if (!relay) rc = cs_buf_puts(&q, "Agent=echo");
    for (size_t i = relay ? 0 : 1; i < CS_CALL_PARAMS_MAX && rc == 0; i++) {
        rc = cs_buf_printf(&q, "%s%c=", i ? "&" : "", (char)('A' + i));
        size_t rest = (CS_CALL_PARAMS_MAX - 1 - i) * 3; /* the next ones' "&X=" */
        size_t quotes = q.len + rest < room ? (room - q.len - rest) / 3 : 0;
        if (quotes > CS_TWIML_MAX_PARAM - 1) quotes = CS_TWIML_MAX_PARAM - 1;
        for (size_t k = 0; k < quotes && rc == 0; k++) rc = cs_buf_puts(&q, "%22");
    }
    cs_form call = {0};
    if (rc == 0) rc = cs_form_parse(&call, q.data, q.len);
    cs_buf xml = CS_BUF_INIT(CS_TWIML_MAX_BYTES);
    if (rc == 0)
        rc = write_twiml(gw, &xml, "CA00000000000000000000000000000000", from, to, &call,
                         (cs_str){q.data, q.len});
    cs_buf_free(&q);
    cs_buf_free(&xml);
    cs_form_free(&call);
    if (rc == 0) return 0;
    cs_buf_printf(err, "GREETING, DIAL and STREAM_PARAMS make TwiML that Twilio would refuse: %s",
                  rc == -EMSGSIZE ? "larger than 64 kB with a long From, To and call "
                                    "parameters (an outbound call's agent and params)"
                                  : cs_strerror(rc));
    return CS_ECONFIG;
}

/* A signed form with a valid CallSid: the CallSid, or NULL once answered (and `form`
 * freed). */
const char *cs_twilio_checked_call(cs_request *r, cs_form *form)
{
    if (cs_twilio_check_webhook(r, form) < 0) return NULL;
    const char *call_sid = cs_twilio_form_get(form, "CallSid");
    if (call_sid && cs_twilio_sid_valid(cs_str_of(call_sid), "CA")) return call_sid;
    cs_form_free(form);
    cs_respond_error(r, 400, "CallSid is missing or not a call SID");
    return NULL;
}

/* The call row and the `webhook` event of an answered call. */
static void answered(cs_request *r, const cs_form *form, const char *call_sid)
{
    cs_gateway *gw = r->app;
    gw->stats.webhooks++;
    cs_call_row row = {
        .sid = call_sid,
        .account_sid = cs_twilio_form_get(form, "AccountSid"),
        .from = cs_twilio_form_get(form, "From"),
        .to = cs_twilio_form_get(form, "To"),
        .direction = cs_twilio_form_get(form, "Direction"),
        .status = cs_twilio_form_get(form, "CallStatus"),
        .created_at = cs_wall_ms(),
    };
    cs_journal_call(gw, &row);
    cs_twilio_form_event(r, form, call_sid, CS_EVENT_WEBHOOK);
}

const char *cs_twilio_checked_query(cs_request *r, cs_form *form, cs_form *query)
{
    const char *call_sid = cs_twilio_checked_call(r, form);
    memset(query, 0, sizeof *query);
    if (!call_sid) return NULL;
    /* Bounded by construction: the parameters are, and the rest was checked at start. */
    if (r->head.query.n && cs_form_parse(query, r->head.query.p, r->head.query.n) < 0) {
        cs_form_free(form);
        cs_respond_error(r, 400, "malformed query string");
        return NULL;
    }
    return call_sid;
}

void cs_twilio_voice(cs_request *r)
{
    cs_gateway *gw = r->app;
    cs_form form, query;
    const char *call_sid = cs_twilio_checked_query(r, &form, &query);
    if (!call_sid) return;
    /* No stream: STREAM_MODE=gather, or the gateway streams MAX_CALLS calls already. */
    enum cs_gather_why why = cs_gather_why_voice(gw);
    if (why != CS_GATHER_WHY_NONE) {
        answered(r, &form, call_sid);
        cs_gather_answer(r, &form, call_sid, &query, why);
        cs_form_free(&query);
        cs_form_free(&form);
        return;
    }
    if (query.n > CS_CALL_PARAMS_MAX) { /* the TwiML's size was checked for this many */
        gw->stats.webhook_params_refused++;
        cs_respond_error(r, 400, "the query brings %zu call parameters; a call takes at most %d",
                         query.n, CS_CALL_PARAMS_MAX);
        cs_form_free(&form);
        cs_form_free(&query);
        return;
    }
    cs_buf xml = CS_BUF_INIT(CS_TWIML_MAX_BYTES);
    int rc = write_twiml(gw, &xml, call_sid, cs_twilio_form_get(&form, "From"),
                         cs_twilio_form_get(&form, "To"), &query, r->head.query);
    if (rc < 0) {
        cs_error("twilio: cannot build TwiML for %s: %s", call_sid, cs_strerror(rc));
        cs_respond_error(r, 500, "cannot build TwiML: %s", cs_strerror(rc));
    } else {
        answered(r, &form, call_sid);
        cs_respond(r, 200, "text/xml; charset=utf-8", xml.data, xml.len, NULL);
        cs_gateway_prepare(gw, call_sid, &query);
    }
    cs_form_free(&query);
    cs_buf_free(&xml);
    cs_form_free(&form);
}

/* Both status callbacks: an event with every parameter Twilio sent. */
static void callback(cs_request *r, enum cs_event_type type)
{
    cs_gateway *gw = r->app;
    cs_form form;
    const char *call_sid = cs_twilio_checked_call(r, &form);
    if (!call_sid) return;
    gw->stats.status_callbacks++;
    const char *status = cs_twilio_form_get(&form, "CallStatus");
    if (type == CS_EVENT_STATUS && status) {
        cs_call_row row = {
            .sid = call_sid,
            .account_sid = cs_twilio_form_get(&form, "AccountSid"),
            .status = status,
            .ended_at = cs_twilio_final_status(status) ? cs_wall_ms() : 0,
        };
        cs_journal_call(gw, &row);
    }
    /* The event first: where the call lives, it comes before the call ends. */
    cs_twilio_form_event(r, &form, call_sid, type);
    /* What acts on the live call happens where it lives (the row above is the store's,
     * shared). */
    if (type == CS_EVENT_STATUS && status) cs_cluster_status(gw, call_sid, status);
    cs_form_free(&form);
    cs_respond(r, 204, NULL, NULL, 0, NULL);
}

void cs_twilio_status(cs_request *r)
{
    callback(r, CS_EVENT_STATUS);
}

void cs_twilio_stream_status(cs_request *r)
{
    callback(r, CS_EVENT_STREAM_STATUS);
}

/* <Connect action>: a relay session ended (HandoffData, SessionStatus…): an event, and
 * the call hangs up. */
void cs_twilio_relay_action(cs_request *r)
{
    cs_gateway *gw = r->app;
    cs_form form;
    const char *call_sid = cs_twilio_checked_call(r, &form);
    if (!call_sid) return;
    gw->stats.relay_actions++;
    cs_twilio_form_event(r, &form, call_sid, CS_EVENT_RELAY);
    cs_form_free(&form);
    static const cs_twiml_verb hangup = {CS_TWIML_HANGUP};
    cs_buf xml = CS_BUF_INIT(CS_TWIML_MAX_BYTES);
    if (cs_twiml_verbs_write(&xml, &hangup, 1) == 0)
        cs_respond(r, 200, "text/xml; charset=utf-8", xml.data, xml.len, NULL);
    else
        cs_respond_error(r, 500, "cannot write <Hangup>");
    cs_buf_free(&xml);
}
