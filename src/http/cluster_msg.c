/* Commands between nodes; see cluster_msg.h. */
#include "http/cluster_msg.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/json.h"

static const char *const op_names[] = {
    [CS_CMD_EVENT] = "event",   [CS_CMD_STATUS] = "status", [CS_CMD_SAY] = "say",
    [CS_CMD_REPLY] = "reply",   [CS_CMD_CLAIM] = "claim",   [CS_CMD_PEEK] = "peek",
    [CS_CMD_CANCEL] = "cancel", [CS_CMD_GATHER] = "gather",
};

/* The fields each op carries. */
enum {
    F_SID = 1,
    F_EVENT = 2,
    F_STATUS = 4,
    F_ID = 8,
    F_SAY = 16,
    F_REPLY = 32,
    F_BY = 64,
    F_HASH = 128,
    F_FORM = 256
};
static const unsigned op_fields[] = {
    [CS_CMD_EVENT] = F_SID | F_EVENT,           [CS_CMD_STATUS] = F_SID | F_STATUS,
    [CS_CMD_SAY] = F_SID | F_ID | F_SAY | F_BY, [CS_CMD_REPLY] = F_ID | F_REPLY,
    [CS_CMD_CLAIM] = F_SID | F_ID | F_HASH,     [CS_CMD_PEEK] = F_SID | F_ID,
    [CS_CMD_CANCEL] = F_SID | F_ID | F_BY,      [CS_CMD_GATHER] = F_SID | F_ID | F_FORM,
};

const char *cs_cmd_op_name(enum cs_cmd_op op)
{
    return op > CS_CMD_BAD && op < CS_CMD_COUNT ? op_names[op] : NULL;
}

/* A call's id as every node keeps it: what a directory key may be. */
static bool sid_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > CS_SID_MAX) return false;
    return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

static bool str_ok(const char *s, size_t max)
{
    return s && strlen(s) <= max;
}

static bool hash_ok(const char *s)
{
    return s && strlen(s) == CS_CMD_HASH_HEX && strspn(s, "0123456789abcdef") == CS_CMD_HASH_HEX;
}

/* An event's detail and a reply's body go on as they are: a JSON object's text only. */
static bool object_text_ok(const char *s)
{
    if (!str_ok(s, CS_CMD_DETAIL_MAX)) return false;
    cJSON *j = cJSON_Parse(s);
    bool obj = cJSON_IsObject(j);
    cJSON_Delete(j);
    return obj;
}

int cs_cmd_encode(cs_buf *out, const cs_cmd *c)
{
    const char *name = cs_cmd_op_name(c->op);
    if (!name) return -EINVAL;
    unsigned f = op_fields[c->op];
    if ((f & F_SID) && !sid_ok(c->sid)) return -EINVAL;
    if ((f & F_EVENT) && ((unsigned)c->type >= CS_EVENT_COUNT ||
                          (c->detail && !str_ok(c->detail, CS_CMD_DETAIL_MAX))))
        return -EINVAL;
    if ((f & F_STATUS) && !(str_ok(c->status, CS_CMD_FIELD_MAX) && c->status[0])) return -EINVAL;
    if ((f & F_SAY) && !(str_ok(c->text, CS_CMD_TEXT_MAX) && c->text[0])) return -EINVAL;
    if ((f & F_BY) && c->by && !str_ok(c->by, CS_CMD_FIELD_MAX)) return -EINVAL;
    if ((f & F_REPLY) &&
        (c->code < 100 || c->code > 599 || (c->message && !str_ok(c->message, CS_CMD_FIELD_MAX)) ||
         (c->body && !str_ok(c->body, CS_CMD_BODY_MAX))))
        return -EINVAL;
    if ((f & F_FORM) &&
        !(str_ok(c->form, CS_CMD_FORM_MAX) && (!c->query || str_ok(c->query, CS_CMD_FORM_MAX))))
        return -EINVAL;
    if ((f & F_HASH) && !hash_ok(c->hash)) return -EINVAL;
    cs_buf_reset(out);
    cs_json j;
    cs_json_init(&j, out);
    cs_json_obj(&j);
    cs_json_kint(&j, "v", CS_CMD_VERSION);
    cs_json_kstr(&j, "op", name);
    if (f & F_SID) cs_json_kstr(&j, "sid", c->sid);
    if (f & F_ID) cs_json_kuint(&j, "id", c->id);
    if (f & F_EVENT) {
        cs_json_kstr(&j, "type", cs_event_label(c->type));
        if (c->detail) cs_json_kstr(&j, "detail", c->detail);
        cs_json_kint(&j, "at", c->at);
    }
    if (f & F_STATUS) cs_json_kstr(&j, "status", c->status);
    if (f & F_SAY) cs_json_kstr(&j, "text", c->text);
    if ((f & F_BY) && c->by) cs_json_kstr(&j, "by", c->by);
    if (f & F_REPLY) {
        cs_json_kint(&j, "code", c->code);
        if (c->message) cs_json_kstr(&j, "message", c->message);
        if (c->body) cs_json_kstr(&j, "body", c->body);
    }
    if (f & F_FORM) {
        cs_json_kstr(&j, "form", c->form);
        if (c->query) cs_json_kstr(&j, "query", c->query);
    }
    if (f & F_HASH) cs_json_kstr(&j, "hash", c->hash);
    cs_json_obj_end(&j);
    return cs_json_end(&j) < 0 ? -ENOMEM : 0;
}

/* A string member: its value, NULL when absent; *bad when present and not a string of
 * at most `max` bytes. */
static const char *member(const cJSON *o, const char *key, size_t max, bool *bad)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) return NULL;
    if (!cJSON_IsString(v) || strlen(v->valuestring) > max) {
        *bad = true;
        return NULL;
    }
    return v->valuestring;
}

/* A whole number member in [min, max]. */
static bool number(const cJSON *o, const char *key, double min, double max, double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v) || v->valuedouble < min || v->valuedouble > max ||
        v->valuedouble != (double)(int64_t)v->valuedouble)
        return false;
    *out = v->valuedouble;
    return true;
}

static int refuse(char *why, size_t cap, const char *fmt, const char *what)
{
    snprintf(why, cap, fmt, what);
    return -EPROTO;
}

int cs_cmd_decode(cs_cmd *c, const char *json, size_t n, char *why, size_t cap)
{
    memset(c, 0, sizeof *c);
    cJSON *o = cJSON_ParseWithLength(json, n);
    c->tree = o;
    if (!cJSON_IsObject(o)) return refuse(why, cap, "%s", "not a JSON object");
    double v;
    if (!number(o, "v", 0, 1e9, &v) || v != CS_CMD_VERSION)
        return refuse(why, cap, "%s", "not version 1");
    bool bad = false;
    const char *op = member(o, "op", CS_CMD_FIELD_MAX, &bad);
    for (enum cs_cmd_op i = CS_CMD_BAD + 1; op && i < CS_CMD_COUNT; i++)
        if (strcmp(op, op_names[i]) == 0) c->op = i;
    if (c->op == CS_CMD_BAD) return refuse(why, cap, "%s", "no op, or one we do not know");
    unsigned f = op_fields[c->op];
    double d;
    if (f & F_SID) {
        c->sid = member(o, "sid", CS_SID_MAX, &bad);
        if (!sid_ok(c->sid)) return refuse(why, cap, "%s", "sid is not a call's id");
    }
    if (f & F_ID) {
        if (!number(o, "id", 1, 9007199254740991.0, &d)) return refuse(why, cap, "%s", "no id");
        c->id = (uint64_t)d;
    }
    if (f & F_EVENT) {
        const char *type = member(o, "type", CS_CMD_FIELD_MAX, &bad);
        c->type = CS_EVENT_COUNT;
        for (int i = 0; type && i < CS_EVENT_COUNT; i++)
            if (strcmp(type, cs_event_label((enum cs_event_type)i)) == 0)
                c->type = (enum cs_event_type)i;
        if (c->type == CS_EVENT_COUNT) return refuse(why, cap, "%s", "type is not an event's");
        c->detail = member(o, "detail", CS_CMD_DETAIL_MAX, &bad);
        if (bad || (c->detail && !object_text_ok(c->detail)))
            return refuse(why, cap, "%s", "detail is not a JSON object's text");
        if (!number(o, "at", 0, 9007199254740991.0, &d)) return refuse(why, cap, "%s", "no at");
        c->at = (int64_t)d;
    }
    if (f & F_STATUS) {
        c->status = member(o, "status", CS_CMD_FIELD_MAX, &bad);
        if (!c->status || !c->status[0]) return refuse(why, cap, "%s", "no status");
    }
    if (f & F_SAY) {
        c->text = member(o, "text", CS_CMD_TEXT_MAX, &bad);
        if (bad || !c->text || !c->text[0]) return refuse(why, cap, "%s", "no text, or too long");
    }
    if (f & F_BY) {
        c->by = member(o, "by", CS_CMD_FIELD_MAX, &bad);
        if (bad) return refuse(why, cap, "%s", "by is not a string of its size");
    }
    if (f & F_REPLY) {
        if (!number(o, "code", 100, 599, &d)) return refuse(why, cap, "%s", "no code");
        c->code = (int)d;
        c->message = member(o, "message", CS_CMD_FIELD_MAX, &bad);
        if (bad) return refuse(why, cap, "%s", "message is too long");
        /* what it is (TwiML, JSON) is for the request's asker to check */
        c->body = member(o, "body", CS_CMD_BODY_MAX, &bad);
        if (bad) return refuse(why, cap, "%s", "body is not a string, or too long");
    }
    if (f & F_HASH) {
        c->hash = member(o, "hash", CS_CMD_HASH_HEX, &bad);
        if (!hash_ok(c->hash)) return refuse(why, cap, "%s", "hash is not 64 hex digits");
    }
    if (f & F_FORM) {
        c->form = member(o, "form", CS_CMD_FORM_MAX, &bad);
        c->query = member(o, "query", CS_CMD_FORM_MAX, &bad);
        if (bad || !c->form) return refuse(why, cap, "%s", "no form, or a form or query too long");
    }
    return 0;
}

void cs_cmd_free(cs_cmd *c)
{
    cJSON_Delete(c->tree);
    c->tree = NULL;
}
