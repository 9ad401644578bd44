/* Follows a call's TwiML as Twilio does, verb by verb: <Say>, <Play> and <Pause> take
 * their time, a <Gather> hears what the options say (or nothing, and the call goes on
 * with the next verb), <Redirect>, a <Gather>'s or a <Dial>'s action and a <Connect>'s
 * action after its stream fetch the next document, <Hangup/> ends the call, and so does a
 * document that runs out of verbs. No I/O here: call.c does what each step says, so the
 * rules can be tested against canned documents. Every hop goes into a JSON report. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "sim/sim_int.h"

const char *sim_end_name(sim_end e)
{
    static const char *const names[] = {
        [SIM_END_NONE] = "none",           [SIM_END_HANGUP] = "twiml_hangup",
        [SIM_END_REJECT] = "twiml_reject", [SIM_END_DOCUMENT] = "twiml_end",
        [SIM_END_CALLER] = "caller",       [SIM_END_LIMIT] = "twiml_limit",
        [SIM_END_HTTP] = "fetch_failed",   [SIM_END_TWIML] = "twiml_error",
    };
    return names[e];
}

/* ---- URLs ---- */

int sim_url_resolve(char *out, size_t cap, const char *base, const char *ref)
{
    const char *scheme = strstr(ref, "://");
    if (scheme && !memchr(ref, '/', (size_t)(scheme - ref)) &&
        !memchr(ref, '?', (size_t)(scheme - ref)))
        return (size_t)snprintf(out, cap, "%s", ref) < cap ? 0 : CS_ELIMIT;
    const char *host = strstr(base, "://");
    host = host ? host + 3 : base;
    const char *path = host + strcspn(host, "/?#");
    const char *query = path + strcspn(path, "?#");
    size_t keep;
    if (ref[0] == '/') {
        keep = (size_t)(path - base); /* scheme and host */
    } else if (ref[0] == '?' || ref[0] == '\0') {
        keep = (size_t)(query - base); /* the same path */
    } else {
        keep = (size_t)(path - base); /* the path's folder */
        for (const char *p = path; p < query; p++)
            if (*p == '/') keep = (size_t)(p + 1 - base);
        if (keep == (size_t)(path - base)) {
            if ((size_t)snprintf(out, cap, "%.*s/%s", (int)keep, base, ref) >= cap)
                return CS_ELIMIT;
            return 0;
        }
    }
    if (ref[0] == '\0') keep = strlen(base);
    return (size_t)snprintf(out, cap, "%.*s%s", (int)keep, base, ref) < cap ? 0 : CS_ELIMIT;
}

/* ---- the report ---- */

/* Closes what is open down to `depth`. */
static void close_to(cs_json *j, int depth)
{
    while (j->depth > depth) {
        if (j->after_key) cs_json_null(j);
        if (j->kind[j->depth] == '{')
            cs_json_obj_end(j);
        else
            cs_json_arr_end(j);
    }
}

/* Ends the current document's hop: its verbs, then how it ended. */
static void hop_end(sim_flow *f, const char *outcome)
{
    if (f->j.depth < 2) return; /* no hop open */
    close_to(&f->j, 2);
    cs_json_kstr(&f->j, "outcome", outcome);
    cs_json_obj_end(&f->j);
    if (f->j.err) return;
    if (f->report.len > SIM_REPORT_MAX)
        f->j.err = CS_ELIMIT; /* this hop and the next are left out */
    else
        f->kept = f->report.len;
}

int sim_flow_init(sim_flow *f, const sim_flow_opts *o, const char *url)
{
    memset(f, 0, sizeof *f);
    f->o = o;
    f->verb = f->streaming = -1;
    snprintf(f->url, sizeof f->url, "%s", url);
    /* room past the bound for the note that hops were left out */
    cs_buf_init(&f->report, SIM_REPORT_MAX + SIM_REPORT_MAX / 4);
    cs_json_init(&f->j, &f->report);
    cs_json_arr(&f->j);
    f->kept = f->report.len;
    return f->j.err;
}

void sim_flow_free(sim_flow *f)
{
    sim_doc_free(&f->doc);
    cs_buf_free(&f->report);
}

const char *sim_flow_report(sim_flow *f, size_t *len)
{
    static const char cut[] = "{\"error\":\"more hops than the report keeps\"}]";
    if (f->j.err && f->report.data) { /* the hops that fit, and a note */
        f->report.len = f->kept;
        if (f->kept > 1) cs_buf_append(&f->report, ",", 1);
        cs_buf_append(&f->report, cut, sizeof cut - 1);
        f->j.depth = 0;
        f->j.err = 0;
    }
    close_to(&f->j, 0);
    *len = f->report.len;
    return f->report.data ? f->report.data : "[]";
}

static void end(sim_flow *f, sim_end e, const char *outcome)
{
    if (f->end) return;
    if (f->j.depth >= 2) {
        close_to(&f->j, 2);
        if (f->error[0]) cs_json_kstr(&f->j, "error", f->error);
    }
    f->end = e;
    if (e == SIM_END_LIMIT) f->n.limits++;
    if (e == SIM_END_HTTP || e == SIM_END_TWIML) f->n.errors++;
    hop_end(f, outcome);
}

void sim_flow_answer(sim_flow *f, const char *method, const char *url, int status, int err,
                     const char *reason, const char *body, size_t len)
{
    if (f->end) return;
    f->n.documents++;
    snprintf(f->url, sizeof f->url, "%s", url);
    f->verb = f->streaming = -1;
    cs_json *j = &f->j;
    cs_json_obj(j);
    cs_json_kstr(j, "url", url);
    cs_json_kstr(j, "method", method);
    cs_json_kint(j, "status", status);
    if (err < 0 || status != 200) {
        if (err < 0)
            snprintf(f->error, sizeof f->error, "%s: %s", url, reason);
        else
            snprintf(f->error, sizeof f->error, "%s: HTTP %d", url, status);
        end(f, SIM_END_HTTP, "error");
        return;
    }
    int rc = sim_doc_parse(&f->doc, body, len);
    if (rc < 0) {
        snprintf(f->error, sizeof f->error, "%s: bad TwiML: %s", url,
                 f->doc.error ? f->doc.error : cs_strerror(rc));
        end(f, SIM_END_TWIML, "error");
        return;
    }
    cs_json_key(j, "verbs");
    cs_json_arr(j);
}

/* ---- the verbs ---- */

static const char *attr_or(const sim_flow *f, size_t i, const char *name, const char *def)
{
    const char *v = sim_doc_attr(&f->doc, i, name);
    return v ? v : def;
}

/* A whole number attribute within [0, max], or `def`. */
static unsigned attr_num(const sim_flow *f, size_t i, const char *name, unsigned def, unsigned max)
{
    const char *v = sim_doc_attr(&f->doc, i, name);
    if (!v || !*v) return def;
    char *e;
    unsigned long n = strtoul(v, &e, 10);
    if (*e || v[0] == '-') return def;
    return n > max ? max : (unsigned)n;
}

static bool is(const sim_flow *f, size_t i, const char *name)
{
    return strcmp(f->doc.nodes[i].name, name) == 0;
}

/* Notes a <Say>, <Play> or <Pause> (at the top or in a <Gather>): the time it takes. */
static uint64_t prompt(sim_flow *f, size_t i)
{
    cs_json *j = &f->j;
    const sim_node *v = &f->doc.nodes[i];
    unsigned loop = attr_num(f, i, "loop", 1, 1000);
    if (loop == 0) loop = 1; /* Twilio's "0" repeats until the call ends: counted once */
    cs_json_obj(j);
    cs_json_kstr(j, "verb", v->name);
    uint64_t ms = 0;
    if (is(f, i, "Say")) {
        f->n.says++;
        cs_json_kstr(j, "text", v->text);
        ms = (uint64_t)strlen(v->text) * 1000 * loop / SIM_SAY_CHARS_PER_S;
    } else if (is(f, i, "Play")) {
        f->n.plays++; /* the audio is not fetched: it takes no time */
        cs_json_kstr(j, "url", v->text);
        const char *digits = sim_doc_attr(&f->doc, i, "digits");
        if (digits) cs_json_kstr(j, "digits", digits);
    } else {
        f->n.pauses++;
        ms = attr_num(f, i, "length", SIM_PAUSE_S, SIM_WAIT_MAX_S) * 1000ull;
    }
    if (ms > SIM_WAIT_MAX_S * 1000ull) ms = SIM_WAIT_MAX_S * 1000ull;
    cs_json_kuint(j, "ms", ms);
    cs_json_obj_end(j);
    return ms;
}

/* A FETCH of `ref` (resolved against the document's URL; "": the document itself) with
 * `method`. false if the URL does not fit (the call ends). */
static bool fetch(sim_flow *f, sim_step *out, const char *ref, const char *method)
{
    if (f->n.documents >= f->o->max_docs) {
        snprintf(f->error, sizeof f->error, "%u documents fetched: the limit", f->o->max_docs);
        end(f, SIM_END_LIMIT, "limit");
        return false;
    }
    out->kind = SIM_STEP_FETCH;
    out->method = strcmp(method, "GET") == 0 ? "GET" : "POST"; /* Twilio's default */
    if (sim_url_resolve(out->url, sizeof out->url, f->url, ref) < 0) {
        snprintf(f->error, sizeof f->error, "a URL too long in %.200s", f->url);
        end(f, SIM_END_TWIML, "error");
        return false;
    }
    return true;
}

/* Adds a parameter to the step's request. */
static void extra(sim_flow *f, sim_step *out, const char *name, const char *value)
{
    if (out->nextra == SIM_EXTRA_MAX) return;
    char *v = f->vals[out->nextra];
    snprintf(v, SIM_URL_MAX, "%s", value);
    out->extra[out->nextra++] = (cs_kv){cs_str_of(name), cs_str_of(v)};
}

/* The option's answer for this gather, "" if none. */
static const char *answer(const char *const *list, size_t n, uint64_t k)
{
    return k < n && list[k] ? list[k] : "";
}

/* <Gather>: its prompts, then what the caller answers. true: `out` is the action's
 * FETCH; false: nothing heard, the call goes on with the next verb. */
static bool gather(sim_flow *f, size_t i, sim_step *out)
{
    cs_json *j = &f->j;
    uint64_t k = f->n.gathers++;
    const char *input = attr_or(f, i, "input", "dtmf");
    const char *action = attr_or(f, i, "action", "");
    char resolved[SIM_URL_MAX];
    if (sim_url_resolve(resolved, sizeof resolved, f->url, action) < 0) resolved[0] = '\0';
    cs_json_obj(j);
    cs_json_kstr(j, "verb", "Gather");
    cs_json_kstr(j, "input", input);
    cs_json_kstr(j, "action", resolved);
    cs_json_key(j, "prompts");
    cs_json_arr(j);
    for (int c = sim_doc_child(&f->doc, i, i); c >= 0; c = sim_doc_child(&f->doc, i, (size_t)c)) {
        if (is(f, (size_t)c, "Say") || is(f, (size_t)c, "Play") || is(f, (size_t)c, "Pause"))
            out->wait_ms += prompt(f, (size_t)c);
    }
    cs_json_arr_end(j);

    /* The keys pressed, up to finishOnKey (not sent) and at most numDigits. */
    char digits[SIM_URL_MAX] = "";
    if (strstr(input, "dtmf")) {
        const char *keys = answer(f->o->digits, f->o->ndigits, k);
        const char *finish = attr_or(f, i, "finishOnKey", "#");
        size_t n = finish[0] ? strcspn(keys, finish) : strlen(keys);
        unsigned max = attr_num(f, i, "numDigits", 0, 1000);
        if (max && n > max) n = max;
        snprintf(digits, sizeof digits, "%.*s", (int)n, keys);
    }
    const char *speech = strstr(input, "speech") ? answer(f->o->speech, f->o->nspeech, k) : "";
    bool empty_action = strcmp(attr_or(f, i, "actionOnEmptyResult", "false"), "true") == 0;
    if (!digits[0] && !speech[0]) {
        f->n.gathers_no_input++;
        unsigned timeout = attr_num(f, i, "timeout", SIM_GATHER_TIMEOUT_S, SIM_WAIT_MAX_S);
        out->wait_ms += timeout * 1000ull;
        cs_json_kbool(j, "heard", false);
        cs_json_kuint(j, "timeout_ms", timeout * 1000ull);
        cs_json_obj_end(j);
        if (!empty_action) return false;
    } else {
        cs_json_kbool(j, "heard", true);
        /* keys win when the caller has both: pressed before speaking */
        if (digits[0]) {
            extra(f, out, "Digits", digits);
            cs_json_kstr(j, "digits", digits);
        } else {
            extra(f, out, "SpeechResult", speech);
            extra(f, out, "Confidence", SIM_CONFIDENCE);
            cs_json_kstr(j, "speech", speech);
        }
        cs_json_obj_end(j);
    }
    if (fetch(f, out, action, attr_or(f, i, "method", "POST"))) hop_end(f, "gather");
    return true;
}

/* <Dial>: the number (its text, or its first noun's); with an action, the FETCH. */
static bool dial(sim_flow *f, size_t i, sim_step *out)
{
    cs_json *j = &f->j;
    f->n.dials++;
    const char *number = f->doc.nodes[i].text;
    int noun = sim_doc_child(&f->doc, i, i);
    if (!number[0] && noun >= 0) number = f->doc.nodes[noun].text;
    const char *status = f->o->dial_status;
    cs_json_obj(j);
    cs_json_kstr(j, "verb", "Dial");
    cs_json_kstr(j, "number", number);
    if (noun >= 0) cs_json_kstr(j, "noun", f->doc.nodes[noun].name);
    cs_json_kstr(j, "status", status);
    cs_json_obj_end(j);
    const char *action = sim_doc_attr(&f->doc, i, "action");
    if (!action) return false; /* Twilio goes on with the next verb */
    extra(f, out, "DialCallStatus", status);
    extra(f, out, "DialCallDuration", "0");
    if (fetch(f, out, action, attr_or(f, i, "method", "POST"))) hop_end(f, "dial");
    return true;
}

/* <Connect> or <Start> with a <Stream>: the STREAM step. false: another noun (a
 * ConversationRelay, …), which the simulator cannot play: the call ends. */
static bool stream(sim_flow *f, size_t i, sim_step *out)
{
    cs_json *j = &f->j;
    int s = sim_doc_child(&f->doc, i, i);
    bool connect = is(f, i, "Connect");
    cs_json_obj(j);
    cs_json_kstr(j, "verb", f->doc.nodes[i].name);
    const char *url =
        s >= 0 && is(f, (size_t)s, "Stream") ? sim_doc_attr(&f->doc, (size_t)s, "url") : NULL;
    if (!url) {
        cs_json_kstr(j, "noun", s >= 0 ? f->doc.nodes[s].name : "");
        snprintf(f->error, sizeof f->error, "<%s> without a <Stream url>: not simulated",
                 f->doc.nodes[i].name);
        end(f, SIM_END_TWIML, "error");
        return false;
    }
    sim_stream *st = &out->stream;
    *st = (sim_stream){.url = url, .connect = connect};
    const char *track = sim_doc_attr(&f->doc, (size_t)s, "track");
    st->both_tracks = !connect && track && strcmp(track, "both_tracks") == 0;
    for (int p = sim_doc_child(&f->doc, (size_t)s, (size_t)s);
         p >= 0 && st->nparams < SIM_MAX_PARAMS; p = sim_doc_child(&f->doc, (size_t)s, (size_t)p)) {
        const char *name = sim_doc_attr(&f->doc, (size_t)p, "name");
        const char *value = sim_doc_attr(&f->doc, (size_t)p, "value");
        if (is(f, (size_t)p, "Parameter") && name && value)
            st->params[st->nparams++] = (cs_kv){cs_str_of(name), cs_str_of(value)};
    }
    cs_json_kstr(j, "stream", url);
    const char *action = sim_doc_attr(&f->doc, i, "action");
    if (action) cs_json_kstr(j, "action", action);
    /* left open: the stream's end is noted when it comes */
    out->kind = SIM_STEP_STREAM;
    f->streaming = (int)i;
    return true;
}

bool sim_flow_connect_action(const sim_flow *f)
{
    return f->streaming >= 0 && is(f, (size_t)f->streaming, "Connect") &&
           sim_doc_attr(&f->doc, (size_t)f->streaming, "action");
}

void sim_flow_stream_end(sim_flow *f, bool by_server, const char *why)
{
    if (f->streaming < 0 || f->end) return;
    cs_json *j = &f->j;
    cs_json_kstr(j, "ended_by", by_server ? "server" : "caller");
    if (why) cs_json_kstr(j, "why", why);
    cs_json_obj_end(j);
    if (!by_server) {
        end(f, SIM_END_CALLER, "caller_hangup");
        return;
    }
    /* f->streaming stays: sim_flow_next asks the <Connect> action, as Twilio does when
     * the stream ends; without one (or after a <Start>) it goes on with the next verb. */
}

void sim_flow_next(sim_flow *f, sim_step *out)
{
    memset(out, 0, sizeof *out);
    out->kind = SIM_STEP_END;
    if (f->end) {
        out->end = f->end;
        return;
    }
    if (f->streaming >= 0) { /* the stream ended by the server's hand */
        size_t c = (size_t)f->streaming;
        f->streaming = -1;
        const char *action = is(f, c, "Connect") ? sim_doc_attr(&f->doc, c, "action") : NULL;
        if (action) {
            if (fetch(f, out, action, attr_or(f, c, "method", "POST")))
                hop_end(f, "connect_action");
            out->end = f->end;
            return;
        }
    }
    for (;;) {
        int v = sim_doc_child(&f->doc, 0, f->verb < 0 ? 0 : (size_t)f->verb);
        if (v < 0) {
            end(f, SIM_END_DOCUMENT, "end");
            out->end = f->end;
            return;
        }
        f->verb = v;
        size_t i = (size_t)v;
        if (is(f, i, "Say") || is(f, i, "Play") || is(f, i, "Pause")) {
            out->wait_ms += prompt(f, i);
        } else if (is(f, i, "Gather")) {
            if (gather(f, i, out)) break;
        } else if (is(f, i, "Redirect")) {
            f->n.redirects++;
            cs_json_obj(&f->j);
            cs_json_kstr(&f->j, "verb", "Redirect");
            cs_json_kstr(&f->j, "url", f->doc.nodes[i].text);
            cs_json_obj_end(&f->j);
            if (fetch(f, out, f->doc.nodes[i].text, attr_or(f, i, "method", "POST")))
                hop_end(f, "redirect");
            break;
        } else if (is(f, i, "Hangup") || is(f, i, "Reject")) {
            f->n.hangups++;
            cs_json_obj(&f->j);
            cs_json_kstr(&f->j, "verb", f->doc.nodes[i].name);
            cs_json_obj_end(&f->j);
            end(f, is(f, i, "Hangup") ? SIM_END_HANGUP : SIM_END_REJECT, "hangup");
            break;
        } else if (is(f, i, "Dial")) {
            if (dial(f, i, out)) break;
        } else if (is(f, i, "Connect") || is(f, i, "Start")) {
            stream(f, i, out);
            break;
        } else {
            f->n.unknown++; /* Twilio logs a warning and goes on */
            cs_json_obj(&f->j);
            cs_json_kstr(&f->j, "verb", f->doc.nodes[i].name);
            cs_json_kbool(&f->j, "skipped", true);
            cs_json_obj_end(&f->j);
        }
    }
    if (f->end) out->kind = SIM_STEP_END;
    out->end = f->end;
}
