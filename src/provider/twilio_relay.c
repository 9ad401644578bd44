/* Twilio ConversationRelay's WebSocket messages (protocol.md §9.2; Telnyx speaks the
 * same): JSON objects with a "type". In: setup, prompt, dtmf, interrupt, error. Out:
 * text, play, sendDigits, end. Inbound views point into the parse tree (scratch->tree),
 * so strings are NUL-terminated. Ids are not checked for Twilio's SID shapes: Telnyx's
 * differ (a call control id, a UUID); the call layer bounds their length. */
#include <errno.h>
#include <string.h>

#include "core/err.h"
#include "core/json.h"
#include "provider/twilio.h"
#include "provider/twilio_int.h"

static const char dtmf_digits[] = "0123456789*#ABCD";

/* setup: sessionId and callSid; the rest optional. */
static int parse_setup(const cJSON *root, cs_pevent *ev, cs_pscratch *s, enum cs_bad *bad)
{
    cs_str session, direction;
    if (!cs_twjson_req_str(root, "sessionId", &session) || !session.n ||
        !cs_twjson_req_str(root, "callSid", &ev->start.call_id) || !ev->start.call_id.n ||
        !cs_twjson_opt_str(root, "accountSid", &ev->start.account_id) ||
        !cs_twjson_opt_str(root, "from", &ev->start.from) ||
        !cs_twjson_opt_str(root, "to", &ev->start.to) ||
        !cs_twjson_opt_str(root, "direction", &direction) ||
        !cs_twjson_params(cJSON_GetObjectItemCaseSensitive(root, "customParameters"), ev, s))
        return cs_twjson_refuse(bad, CS_BAD_FIELD);
    if (!ev->start.account_id.p) ev->start.account_id = CS_STR("");
    ev->stream_id = ev->start.stream_id = session;
    ev->start.tracks = CS_TRACK_BIT(CS_TRACK_INBOUND);
    return 0;
}

/* prompt: voicePrompt; `last` defaults to true (a whole utterance). */
static int parse_prompt(const cJSON *root, cs_pevent *ev, cs_pscratch *s, enum cs_bad *bad)
{
    (void)s;
    const cJSON *last = cJSON_GetObjectItemCaseSensitive(root, "last");
    if (!cs_twjson_req_str(root, "voicePrompt", &ev->prompt.text) ||
        !cs_twjson_opt_str(root, "lang", &ev->prompt.lang) || (last && !cJSON_IsBool(last)))
        return cs_twjson_refuse(bad, CS_BAD_FIELD);
    ev->prompt.last = !last || cJSON_IsTrue(last);
    return 0;
}

static int parse_dtmf(const cJSON *root, cs_pevent *ev, cs_pscratch *s, enum cs_bad *bad)
{
    (void)s;
    cs_str digit;
    if (!cs_twjson_req_str(root, "digit", &digit) || digit.n != 1 ||
        !memchr(dtmf_digits, digit.p[0], sizeof dtmf_digits - 1))
        return cs_twjson_refuse(bad, CS_BAD_FIELD);
    ev->dtmf.digit = digit.p[0];
    return 0;
}

/* interrupt: what was heard (may be empty) and for how long, a whole number of ms. */
static int parse_interrupt(const cJSON *root, cs_pevent *ev, cs_pscratch *s, enum cs_bad *bad)
{
    (void)s;
    const cJSON *ms = cJSON_GetObjectItemCaseSensitive(root, "durationUntilInterruptMs");
    if (!cs_twjson_opt_str(root, "utteranceUntilInterrupt", &ev->interrupt.heard) ||
        (ms && (!cJSON_IsNumber(ms) || ms->valuedouble < 0 || ms->valuedouble > 1e12 ||
                ms->valuedouble != (double)(uint64_t)ms->valuedouble)))
        return cs_twjson_refuse(bad, CS_BAD_FIELD);
    if (!ev->interrupt.heard.p) ev->interrupt.heard = CS_STR("");
    ev->interrupt.heard_ms = ms ? (uint64_t)ms->valuedouble : 0;
    return 0;
}

static int parse_error(const cJSON *root, cs_pevent *ev, cs_pscratch *s, enum cs_bad *bad)
{
    (void)s;
    if (!cs_twjson_opt_str(root, "description", &ev->peer_error.description))
        return cs_twjson_refuse(bad, CS_BAD_FIELD);
    if (!ev->peer_error.description.p) ev->peer_error.description = CS_STR("");
    return 0;
}

static const struct type_def {
    const char *name;
    enum cs_pev_type type;
    int (*parse)(const cJSON *root, cs_pevent *ev, cs_pscratch *s, enum cs_bad *bad);
} types[] = {
    {"setup", CS_PEV_START, parse_setup},      {"prompt", CS_PEV_PROMPT, parse_prompt},
    {"dtmf", CS_PEV_DTMF, parse_dtmf},         {"interrupt", CS_PEV_INTERRUPT, parse_interrupt},
    {"error", CS_PEV_PEER_ERROR, parse_error},
};

int cs_twilio_relay_parse(char *msg, size_t len, cs_pevent *ev, cs_pscratch *scratch,
                          enum cs_bad *bad)
{
    cs_pscratch_free(scratch);
    cJSON *root = cs_twjson_object_parse(msg, len);
    if (!root) return cs_twjson_refuse(bad, CS_BAD_JSON);
    scratch->tree = root;
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(root, "type");
    for (size_t i = 0; cJSON_IsString(type) && i < sizeof types / sizeof *types; i++) {
        if (strcmp(type->valuestring, types[i].name)) continue;
        cs_twjson_reset(ev, types[i].type);
        return types[i].parse(root, ev, scratch, bad);
    }
    return cs_twjson_refuse(bad, CS_BAD_EVENT);
}

int cs_twilio_relay_write(cs_buf *out, const cs_relay_out *m)
{
    static const char *const names[] = {
        [CS_RELAY_TEXT] = "text",
        [CS_RELAY_PLAY] = "play",
        [CS_RELAY_DIGITS] = "sendDigits",
        [CS_RELAY_END] = "end",
    };
    if ((unsigned)m->type >= sizeof names / sizeof *names || !names[m->type]) return -EINVAL;
    size_t start = out->len;
    cs_json j;
    cs_json_init(&j, out);
    cs_json_obj(&j);
    cs_json_kstr(&j, "type", names[m->type]);
    switch (m->type) {
    case CS_RELAY_TEXT:
        cs_json_key(&j, "token");
        cs_json_strn(&j, m->text.p, m->text.n);
        cs_json_kbool(&j, "last", m->last);
        cs_json_kbool(&j, "interruptible", m->interruptible);
        break;
    case CS_RELAY_PLAY:
        cs_json_key(&j, "source");
        cs_json_strn(&j, m->text.p, m->text.n);
        if (m->loop) cs_json_kuint(&j, "loop", m->loop);
        cs_json_kbool(&j, "interruptible", m->interruptible);
        break;
    case CS_RELAY_DIGITS:
        cs_json_key(&j, "digits");
        cs_json_strn(&j, m->text.p, m->text.n);
        break;
    case CS_RELAY_END:
        /* A string: the provider passes it on as HandoffData. */
        if (m->text.n) {
            cs_json_key(&j, "handoffData");
            cs_json_strn(&j, m->text.p, m->text.n);
        }
        break;
    }
    cs_json_obj_end(&j);
    return cs_twjson_end_write(out, start, cs_json_end(&j));
}

/* ---- peer side: what Twilio sends ---- */

static void kstrn(cs_json *j, const char *key, cs_str s)
{
    cs_json_key(j, key);
    cs_json_strn(j, s.p ? s.p : "", s.n);
}

int cs_twilio_relay_peer_write(cs_buf *out, const cs_pevent *ev)
{
    size_t start = out->len;
    cs_json j;
    cs_json_init(&j, out);
    cs_json_obj(&j);
    switch (ev->type) {
    case CS_PEV_START:
        cs_json_kstr(&j, "type", "setup");
        kstrn(&j, "sessionId", ev->start.stream_id);
        kstrn(&j, "accountSid", ev->start.account_id);
        kstrn(&j, "callSid", ev->start.call_id);
        kstrn(&j, "from", ev->start.from);
        kstrn(&j, "to", ev->start.to);
        cs_json_kstr(&j, "direction", "inbound");
        cs_json_key(&j, "customParameters");
        cs_json_obj(&j);
        for (size_t i = 0; i < ev->start.nparams; i++) {
            /* Keys are written as given: a name with a NUL is cut there, as cJSON reads it. */
            char name[1024];
            cs_str_copy(name, sizeof name, ev->start.params[i].name);
            cs_json_key(&j, name);
            cs_json_strn(&j, ev->start.params[i].value.p, ev->start.params[i].value.n);
        }
        cs_json_obj_end(&j);
        break;
    case CS_PEV_PROMPT:
        cs_json_kstr(&j, "type", "prompt");
        kstrn(&j, "voicePrompt", ev->prompt.text);
        if (ev->prompt.lang.p) kstrn(&j, "lang", ev->prompt.lang);
        cs_json_kbool(&j, "last", ev->prompt.last);
        break;
    case CS_PEV_DTMF: {
        char d[2] = {ev->dtmf.digit, '\0'};
        cs_json_kstr(&j, "type", "dtmf");
        cs_json_kstr(&j, "digit", d);
        break;
    }
    case CS_PEV_INTERRUPT:
        cs_json_kstr(&j, "type", "interrupt");
        kstrn(&j, "utteranceUntilInterrupt", ev->interrupt.heard);
        cs_json_kuint(&j, "durationUntilInterruptMs", ev->interrupt.heard_ms);
        break;
    case CS_PEV_PEER_ERROR:
        cs_json_kstr(&j, "type", "error");
        kstrn(&j, "description", ev->peer_error.description);
        break;
    default:
        return -EINVAL;
    }
    cs_json_obj_end(&j);
    return cs_twjson_end_write(out, start, cs_json_end(&j));
}
