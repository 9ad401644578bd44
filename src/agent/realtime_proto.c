/* OpenAI's Realtime API on the wire (GA): client events built, server events parsed.
 * No I/O here; realtime.c sends and receives. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "agent/realtime_int.h"
#include "core/base64.h"
#include "core/err.h"
#include "core/json.h"

static const char *const type_names[] = {
    "unknown",
#define RT_EV_NAME(name, wire) wire,
    RT_EVENT_MAP(RT_EV_NAME)
#undef RT_EV_NAME
};
_Static_assert(sizeof type_names / sizeof *type_names == RT_EV_COUNT, "one name per event");

const char *rt_type_name(enum rt_type t)
{
    return (unsigned)t < RT_EV_COUNT ? type_names[t] : "unknown";
}

static enum rt_type type_of(const char *wire)
{
    for (int t = 1; t < RT_EV_COUNT; t++)
        if (strcmp(type_names[t], wire) == 0) return (enum rt_type)t;
    return RT_EV_UNKNOWN;
}

/* ---- server events ---- */

/* What each type must carry (besides "type"). */
enum { F_ITEM = 1, F_RESPONSE = 2, F_DELTA = 4, F_TRANSCRIPT = 8, F_CALL = 16, F_ERROR = 32,
       F_RESP_OBJ = 64 };

static const unsigned required[RT_EV_COUNT] = {
    [RT_EV_AUDIO_DELTA] = F_ITEM | F_RESPONSE | F_DELTA,
    [RT_EV_AUDIO_DONE] = F_ITEM | F_RESPONSE,
    [RT_EV_TRANSCRIPT_DELTA] = F_ITEM | F_RESPONSE | F_DELTA,
    [RT_EV_TRANSCRIPT_DONE] = F_ITEM | F_RESPONSE | F_TRANSCRIPT,
    [RT_EV_FUNCTION_DONE] = F_ITEM | F_CALL,
    [RT_EV_INPUT_TRANSCRIPT] = F_ITEM | F_TRANSCRIPT,
    [RT_EV_ERROR] = F_ERROR,
    [RT_EV_RESPONSE_CREATED] = F_RESP_OBJ,
    [RT_EV_RESPONSE_DONE] = F_RESP_OBJ,
};

static const char *str_of(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int64_t int_of(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) && v->valuedouble >= 0 ? (int64_t)v->valuedouble : -1;
}

#define OR_EMPTY(s) ((s) ? (s) : "")

int rt_event_parse(rt_event *ev, const char *data, size_t len, char *why, size_t cap)
{
    memset(ev, 0, sizeof *ev);
    cJSON *root = cJSON_ParseWithLength(data, len);
    const char *wire = str_of(root, "type");
    if (!cJSON_IsObject(root) || !wire) {
        snprintf(why, cap, "%s", root ? "an event without a type" : "not JSON");
        cJSON_Delete(root);
        return CS_EPARSE;
    }
    ev->type = type_of(wire);
    if (ev->type == RT_EV_UNKNOWN) {
        cJSON_Delete(root);
        return 0;
    }
    ev->root = root;
    unsigned need = required[ev->type];
    const char *missing = NULL;
    ev->item_id = str_of(root, "item_id");
    ev->response_id = str_of(root, "response_id");
    if ((need & F_ITEM) && !ev->item_id) missing = "item_id";
    if ((need & F_RESPONSE) && !ev->response_id) missing = "response_id";
    const cJSON *delta = cJSON_GetObjectItemCaseSensitive(root, "delta");
    if (cJSON_IsString(delta)) {
        ev->delta = delta->valuestring;
        ev->delta_len = strlen(delta->valuestring);
    } else if (need & F_DELTA) {
        missing = "delta";
    }
    ev->text = str_of(root, ev->type == RT_EV_FUNCTION_DONE ? "arguments" : "transcript");
    if ((need & F_TRANSCRIPT) && !ev->text) missing = "transcript";
    if (need & F_CALL) {
        ev->call_id = str_of(root, "call_id");
        ev->name = str_of(root, "name");
        if (!ev->call_id || !ev->name || !ev->text) missing = "call_id, name or arguments";
    }
    if (need & F_ERROR) {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "error");
        ev->err_type = OR_EMPTY(str_of(e, "type"));
        ev->err_code = OR_EMPTY(str_of(e, "code"));
        ev->err_message = OR_EMPTY(str_of(e, "message"));
        if (!cJSON_IsObject(e)) missing = "error";
    }
    ev->tokens_in = ev->tokens_out = -1;
    if (need & F_RESP_OBJ) {
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(root, "response");
        if (!cJSON_IsObject(r)) missing = "response";
        ev->response_id = str_of(r, "id");
        ev->status = OR_EMPTY(str_of(r, "status"));
        const cJSON *u = cJSON_GetObjectItemCaseSensitive(r, "usage");
        ev->tokens_in = int_of(u, "input_tokens");
        ev->tokens_out = int_of(u, "output_tokens");
    }
    ev->audio_start_ms = int_of(root, "audio_start_ms");
    ev->audio_end_ms = int_of(root, "audio_end_ms");
    if (missing) {
        snprintf(why, cap, "%s without %s", wire, missing);
        rt_event_free(ev);
        return CS_EPARSE;
    }
    ev->item_id = OR_EMPTY(ev->item_id);
    ev->response_id = OR_EMPTY(ev->response_id);
    ev->text = OR_EMPTY(ev->text);
    if (!ev->delta) ev->delta = "";
    return 1;
}

void rt_event_free(rt_event *ev)
{
    cJSON_Delete(ev->root);
    ev->root = NULL;
}

/* ---- client events ---- */

static int finish(cs_json *j)
{
    cs_json_obj_end(j);
    int rc = cs_json_end(j);
    return rc == -ENOBUFS || rc == -ENOMEM ? rc : rc < 0 ? -EMSGSIZE : 0;
}

static void format_obj(cs_json *j)
{
    cs_json_key(j, "format");
    cs_json_obj(j);
    cs_json_kstr(j, "type", "audio/pcmu"); /* Twilio's μ-law, 8 kHz: no resampling */
    cs_json_obj_end(j);
}

int rt_build_session(cs_buf *out, const rt_session *s)
{
    cs_json j;
    cs_json_init(&j, out);
    cs_json_obj(&j);
    cs_json_kstr(&j, "type", "session.update");
    cs_json_key(&j, "session");
    cs_json_obj(&j);
    cs_json_kstr(&j, "type", "realtime");
    cs_json_kstr(&j, "model", s->model);
    cs_json_key(&j, "output_modalities");
    cs_json_arr(&j);
    cs_json_str(&j, "audio");
    cs_json_arr_end(&j);
    cs_json_kstr(&j, "instructions", s->instructions);
    cs_json_key(&j, "audio");
    cs_json_obj(&j);
    cs_json_key(&j, "input");
    cs_json_obj(&j);
    format_obj(&j);
    if (s->transcribe_model && s->transcribe_model[0]) {
        cs_json_key(&j, "transcription");
        cs_json_obj(&j);
        cs_json_kstr(&j, "model", s->transcribe_model);
        cs_json_obj_end(&j);
    }
    cs_json_key(&j, "turn_detection");
    cs_json_obj(&j);
    if (s->turns == RT_SEMANTIC_VAD) {
        cs_json_kstr(&j, "type", "semantic_vad");
        cs_json_kstr(&j, "eagerness", s->eagerness);
    } else {
        cs_json_kstr(&j, "type", "server_vad");
        cs_json_kdouble(&j, "threshold", s->threshold);
        cs_json_kuint(&j, "prefix_padding_ms", s->prefix_ms);
        cs_json_kuint(&j, "silence_duration_ms", s->silence_ms);
    }
    cs_json_kbool(&j, "create_response", true);
    cs_json_kbool(&j, "interrupt_response", true);
    cs_json_obj_end(&j); /* turn_detection */
    cs_json_obj_end(&j); /* input */
    cs_json_key(&j, "output");
    cs_json_obj(&j);
    format_obj(&j);
    cs_json_kstr(&j, "voice", s->voice);
    cs_json_obj_end(&j); /* output */
    cs_json_obj_end(&j); /* audio */
    if (s->tools) {
        cs_json_key(&j, "tools");
        cs_json_raw(&j, s->tools, strlen(s->tools));
        cs_json_kstr(&j, "tool_choice", "auto");
    }
    cs_json_obj_end(&j); /* session */
    return finish(&j);
}

int rt_build_append(cs_buf *out, const uint8_t *ulaw, size_t n)
{
    static const char head[] = "{\"type\":\"input_audio_buffer.append\",\"audio\":\"";
    size_t keep = out->len;
    int rc = cs_buf_append(out, head, sizeof head - 1);
    char *room = rc == 0 ? cs_buf_space(out, CS_BASE64_ENCODED_LEN(n)) : NULL;
    if (room) cs_buf_commit(out, cs_base64_encode(room, ulaw, n));
    if (!room || cs_buf_append(out, "\"}", 2) < 0) {
        cs_buf_truncate(out, keep);
        return -EMSGSIZE;
    }
    return 0;
}

int rt_build_truncate(cs_buf *out, const char *item_id, uint64_t audio_end_ms)
{
    cs_json j;
    cs_json_init(&j, out);
    cs_json_obj(&j);
    cs_json_kstr(&j, "type", "conversation.item.truncate");
    cs_json_kstr(&j, "item_id", item_id);
    cs_json_kuint(&j, "content_index", 0);
    cs_json_kuint(&j, "audio_end_ms", audio_end_ms);
    return finish(&j);
}

int rt_build_cancel(cs_buf *out, const char *response_id)
{
    cs_json j;
    cs_json_init(&j, out);
    cs_json_obj(&j);
    cs_json_kstr(&j, "type", "response.cancel");
    if (response_id && response_id[0]) cs_json_kstr(&j, "response_id", response_id);
    return finish(&j);
}

int rt_build_tool_output(cs_buf *out, const char *call_id, const char *output, size_t len)
{
    cs_json j;
    cs_json_init(&j, out);
    cs_json_obj(&j);
    cs_json_kstr(&j, "type", "conversation.item.create");
    cs_json_key(&j, "item");
    cs_json_obj(&j);
    cs_json_kstr(&j, "type", "function_call_output");
    cs_json_kstr(&j, "call_id", call_id);
    cs_json_key(&j, "output");
    cs_json_strn(&j, output, len);
    cs_json_obj_end(&j);
    return finish(&j);
}

int rt_build_response_create(cs_buf *out)
{
    return cs_buf_puts(out, "{\"type\":\"response.create\"}") < 0 ? -EMSGSIZE : 0;
}

/* ---- arithmetic ---- */

uint64_t rt_audio_end_ms(uint64_t heard_ms, uint64_t received)
{
    uint64_t sent_ms = received / 8; /* μ-law at 8 kHz: whole ms only */
    return heard_ms < sent_ms ? heard_ms : sent_ms;
}

size_t rt_sentence_end(const char *text, size_t len, bool all)
{
    if (all) return len;
    for (size_t i = len; i-- > 1;)
        if ((text[i] == ' ' || text[i] == '\n') &&
            (text[i - 1] == '.' || text[i - 1] == '!' || text[i - 1] == '?'))
            return i + 1;
    return 0;
}
