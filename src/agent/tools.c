/* The tools a model may call (agent/tools.h): LLM_TOOLS_FILE read and checked, the
 * tools' JSON in the shapes of chat completions and of a Realtime session, and the signed
 * POST that calls one. */
#include "agent/tools.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "call/control.h"
#include "core/clock.h"
#include "core/crypto.h"
#include "core/err.h"
#include "core/json.h"
#include "provider/rest.h"

#define TOOL_TIMEOUT_MAX_MS 60000

static const char end_call_help[] =
    "Hang up the call. Say goodbye in the same answer, before calling it.";

/* {"type":"function","function":{"name","description","parameters"}}: a chat
 * completion's; a Realtime session takes the function's members beside "type". */
static cJSON *tool_json(const char *name, const char *description, const cJSON *parameters)
{
    cJSON *t = cJSON_CreateObject(), *fn = cJSON_CreateObject();
    cJSON_AddStringToObject(t, "type", "function");
    cJSON_AddItemToObject(t, "function", fn);
    cJSON_AddStringToObject(fn, "name", name);
    if (description) cJSON_AddStringToObject(fn, "description", description);
    cJSON *params = parameters ? cJSON_Duplicate(parameters, true) : NULL;
    if (!params) {
        params = cJSON_CreateObject();
        cJSON_AddStringToObject(params, "type", "object");
        cJSON_AddItemToObject(params, "properties", cJSON_CreateObject());
    }
    cJSON_AddItemToObject(fn, "parameters", params);
    return t;
}

static bool name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > CS_TOOL_NAME_MAX) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* Checks tool `k` (1-based in messages) and adds it to `l` and `list`. */
static int one_tool(cs_tools *l, const cJSON *t, size_t k, const char *path, cJSON *list, cs_buf *err)
{
    static const char *const keys[] = {"name", "description", "parameters", "url", "timeout_ms"};
    if (!cJSON_IsObject(t)) {
        cs_buf_printf(err, "LLM_TOOLS_FILE %s: tool %zu is not an object", path, k);
        return CS_ECONFIG;
    }
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(t, "name");
    if (!cJSON_IsString(name) || !name_ok(name->valuestring)) {
        cs_buf_printf(err,
                      "LLM_TOOLS_FILE %s: tool %zu: 'name' must be 1 to %d letters, digits, _ "
                      "or -",
                      path, k, CS_TOOL_NAME_MAX);
        return CS_ECONFIG;
    }
    const char *n = name->valuestring;
#define BAD(...)                                                                                   \
    do {                                                                                           \
        cs_buf_printf(err, "LLM_TOOLS_FILE %s: tool %zu (%s): ", path, k, n);                      \
        cs_buf_printf(err, __VA_ARGS__);                                                           \
        return CS_ECONFIG;                                                                         \
    } while (0)
    const cJSON *item;
    cJSON_ArrayForEach(item, t)
    {
        bool known = false;
        for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
            known = known || strcmp(item->string, keys[i]) == 0;
        if (!known)
            BAD("unknown key '%s' (known: name, description, parameters, url, timeout_ms)",
                item->string);
    }
    if (strcmp(n, CS_TOOL_END_CALL) == 0) BAD("end_call is built in");
    if (l->ntargets && strcmp(n, CS_TOOL_TRANSFER) == 0)
        BAD("transfer is built in with AGENT_TRANSFER_TARGETS");
    if (cs_tools_find(l, n)) BAD("another tool has this name");
    const cJSON *desc = cJSON_GetObjectItemCaseSensitive(t, "description");
    if (desc && !cJSON_IsString(desc)) BAD("'description' is not a string");
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(t, "parameters");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(params, "type");
    if (params && (!cJSON_IsObject(params) ||
                   (type && !(cJSON_IsString(type) && strcmp(type->valuestring, "object") == 0))))
        BAD("'parameters' is not a JSON schema of an object ({\"type\": \"object\", …})");
    const cJSON *url = cJSON_GetObjectItemCaseSensitive(t, "url");
    if (!cJSON_IsString(url) || !cs_fetch_url_ok(url->valuestring))
        BAD("'url' is missing or not an http(s) URL");
    const cJSON *timeout = cJSON_GetObjectItemCaseSensitive(t, "timeout_ms");
    if (timeout && !(cJSON_IsNumber(timeout) && timeout->valuedouble >= 1 &&
                     timeout->valuedouble <= TOOL_TIMEOUT_MAX_MS))
        BAD("'timeout_ms' must be a number from 1 to %d", TOOL_TIMEOUT_MAX_MS);
#undef BAD
    cs_tool *tool = &l->tools[l->n];
    snprintf(tool->name, sizeof tool->name, "%s", n);
    tool->url = strdup(url->valuestring);
    if (!tool->url) return -ENOMEM;
    tool->timeout_ms = timeout ? (uint32_t)timeout->valuedouble : CS_TOOL_TIMEOUT_MS;
    l->n++;
    cJSON_AddItemToArray(list, tool_json(n, desc ? desc->valuestring : NULL, params));
    return 0;
}

/* transfer's: its `to` is one of the targets' names. */
static cJSON *transfer_json(const cs_tools *l)
{
    cs_buf help = CS_BUF_INIT(4096);
    cs_buf_puts(&help, "Transfer the caller to one of: ");
    cJSON *names = cJSON_CreateArray();
    for (size_t i = 0; i < l->ntargets; i++) {
        cs_buf_printf(&help, "%s%s", i ? ", " : "", l->targets[i].name);
        cJSON_AddItemToArray(names, cJSON_CreateString(l->targets[i].name));
    }
    cs_buf_puts(&help, ". Tell the caller first, in the same answer. If it fails you are told "
                       "why: say so to the caller.");
    cJSON *params = cJSON_CreateObject(), *props = cJSON_CreateObject();
    cJSON *to = cJSON_CreateObject(), *req = cJSON_CreateArray();
    cJSON_AddStringToObject(params, "type", "object");
    cJSON_AddItemToObject(params, "properties", props);
    cJSON_AddItemToObject(props, "to", to);
    cJSON_AddStringToObject(to, "type", "string");
    cJSON_AddStringToObject(to, "description", "who to transfer the caller to");
    cJSON_AddItemToObject(to, "enum", names);
    cJSON_AddItemToArray(req, cJSON_CreateString("to"));
    cJSON_AddItemToObject(params, "required", req);
    cJSON *t = tool_json(CS_TOOL_TRANSFER, help.data, params);
    cJSON_Delete(params);
    cs_buf_free(&help);
    return t;
}

/* The tools list as both APIs take it, the built-in ones first. Takes `list`. */
static int tools_list(cs_tools *l, cJSON *list)
{
    if (l->ntargets) cJSON_InsertItemInArray(list, 0, transfer_json(l));
    cJSON_InsertItemInArray(list, 0, tool_json(CS_TOOL_END_CALL, end_call_help, NULL));
    free(l->chat_json);
    free(l->realtime_json);
    l->chat_json = cJSON_PrintUnformatted(list);
    /* The same with each function's members lifted beside "type". */
    cJSON *t;
    cJSON_ArrayForEach(t, list)
    {
        cJSON *fn = cJSON_DetachItemFromObjectCaseSensitive(t, "function");
        cJSON *m = fn ? fn->child : NULL;
        while (m) {
            cJSON *next = m->next;
            cJSON_AddItemToObject(t, m->string, cJSON_DetachItemViaPointer(fn, m));
            m = next;
        }
        cJSON_Delete(fn);
    }
    l->realtime_json = cJSON_PrintUnformatted(list);
    cJSON_Delete(list);
    return l->chat_json && l->realtime_json ? 0 : -ENOMEM;
}

int cs_tools_builtin(cs_tools *l)
{
    return tools_list(l, cJSON_CreateArray());
}

int cs_tools_parse(cs_tools *l, const char *json, size_t len, const char *path, cs_buf *err)
{
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(json, len, &end, false);
    if (!root) {
        cs_buf_printf(err, "LLM_TOOLS_FILE %s: not JSON (at byte %zu)", path,
                      end ? (size_t)(end - json) : 0);
        return CS_ECONFIG;
    }
    int rc = 0;
    size_t n = (size_t)cJSON_GetArraySize(root);
    if (!cJSON_IsArray(root)) {
        cs_buf_printf(err, "LLM_TOOLS_FILE %s: not a list of tools ([{\"name\": …}, …])", path);
        rc = CS_ECONFIG;
    } else if (n > CS_TOOLS_MAX) {
        cs_buf_printf(err, "LLM_TOOLS_FILE %s: %zu tools, more than %d", path, n, CS_TOOLS_MAX);
        rc = CS_ECONFIG;
    } else if (n && !(l->tools = calloc(n, sizeof *l->tools))) {
        rc = -ENOMEM;
    }
    cJSON *list = cJSON_CreateArray();
    size_t k = 0;
    const cJSON *t;
    cJSON_ArrayForEach(t, root)
    {
        if (rc < 0) break;
        if ((rc = one_tool(l, t, ++k, path, list, err)) < 0) break;
    }
    cJSON_Delete(root);
    if (rc < 0) {
        cJSON_Delete(list);
        return rc;
    }
    return tools_list(l, list);
}

int cs_tools_targets(cs_tools *l, const char *spec, cs_buf *err)
{
    l->ntargets = 0;
    for (const char *p = spec; *p;) {
        size_t len = strcspn(p, ",");
        char item[CS_TOOL_NAME_MAX + CS_E164_MAX + 8];
        const char *eq = memchr(p, '=', len);
        size_t nlen = eq ? (size_t)(eq - p) : len;
        size_t vlen = eq ? len - nlen - 1 : 0;
        snprintf(item, sizeof item, "%.*s", (int)(len < sizeof item - 4 ? len : sizeof item - 4),
                 p);
        cs_transfer_target *t = &l->targets[l->ntargets];
        if (l->ntargets == CS_TRANSFER_TARGETS_MAX) {
            cs_buf_printf(err, "AGENT_TRANSFER_TARGETS: more than %d targets",
                          CS_TRANSFER_TARGETS_MAX);
            return CS_ECONFIG;
        }
        if (!eq || nlen > CS_TOOL_NAME_MAX || vlen > CS_E164_MAX) {
            cs_buf_printf(err, "AGENT_TRANSFER_TARGETS: '%s' is not NAME=+E164", item);
            return CS_ECONFIG;
        }
        snprintf(t->name, sizeof t->name, "%.*s", (int)nlen, p);
        snprintf(t->number, sizeof t->number, "%.*s", (int)vlen, eq + 1);
        if (!name_ok(t->name)) {
            cs_buf_printf(err,
                          "AGENT_TRANSFER_TARGETS: '%s': a name is 1 to %d letters, digits, _ or -",
                          item, CS_TOOL_NAME_MAX);
            return CS_ECONFIG;
        }
        if (!cs_e164_valid(t->number)) {
            cs_buf_printf(err,
                          "AGENT_TRANSFER_TARGETS: '%s': not an E.164 number (+ and up to 15 "
                          "digits)",
                          item);
            return CS_ECONFIG;
        }
        for (size_t i = 0; i < l->ntargets; i++) {
            if (strcmp(l->targets[i].name, t->name) == 0) {
                cs_buf_printf(err, "AGENT_TRANSFER_TARGETS: '%s' is named twice", t->name);
                return CS_ECONFIG;
            }
        }
        l->ntargets++;
        p += len;
        if (*p == ',') p++;
    }
    return 0;
}

const cs_transfer_target *cs_tools_transfer_target(const cs_tools *l, const char *args, size_t len,
                                                   cs_buf *out)
{
    cJSON *a = cJSON_ParseWithLength(args, len);
    const char *to = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(a, "to"));
    const cs_transfer_target *t = NULL;
    for (size_t i = 0; to && i < l->ntargets && !t; i++)
        if (strcmp(l->targets[i].name, to) == 0) t = &l->targets[i];
    if (!t) {
        char names[1024] = "";
        size_t n = 0;
        for (size_t i = 0; i < l->ntargets && n < sizeof names; i++)
            n += (size_t)snprintf(names + n, sizeof names - n, "%s%s", i ? ", " : "",
                                  l->targets[i].name);
        if (!to)
            cs_tool_error(out, "the arguments must be {\"to\": one of %s}", names);
        else
            cs_tool_error(out, "no transfer target is named '%.64s' (the targets: %s)", to, names);
    }
    cJSON_Delete(a);
    return t;
}

const cs_tool *cs_tools_find(const cs_tools *l, const char *name)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->tools[i].name, name) == 0) return &l->tools[i];
    return NULL;
}

void cs_tools_free(cs_tools *l)
{
    for (size_t i = 0; i < l->n; i++) free(l->tools[i].url);
    free(l->tools);
    free(l->chat_json);
    free(l->realtime_json);
    *l = (cs_tools){0};
}

static int read_file(const char *path, cs_buf *out, cs_buf *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        cs_buf_printf(err, "LLM_TOOLS_FILE %s: %s", path, strerror(errno));
        return CS_ECONFIG;
    }
    char chunk[8192];
    size_t n;
    int rc = 0;
    while (rc == 0 && (n = fread(chunk, 1, sizeof chunk, f)) > 0) rc = cs_buf_append(out, chunk, n);
    if (rc == 0 && ferror(f)) rc = -EIO;
    fclose(f);
    if (rc < 0) {
        cs_buf_printf(err, "LLM_TOOLS_FILE %s: %s", path,
                      rc == -EMSGSIZE ? "larger than 256 KB" : cs_strerror(rc));
        return CS_ECONFIG;
    }
    return 0;
}

int cs_tools_load(cs_tools *t, const cs_config *cfg, bool control, cs_buf *err)
{
    t->secret = cfg->agent_webhook_secret;
    if (cfg->agent_transfer_targets[0] && !control) {
        cs_buf_printf(
            err, "AGENT_TRANSFER_TARGETS: transferring needs call control: " CS_CONTROL_SETTINGS);
        return CS_ECONFIG;
    }
    int rc = cs_tools_targets(t, cfg->agent_transfer_targets, err);
    if (rc < 0) return rc;
    if (!cfg->llm_tools_file[0]) return cs_tools_builtin(t);
    if (!cfg->agent_webhook_secret[0]) {
        cs_buf_printf(err, "AGENT_WEBHOOK_SECRET: needed with LLM_TOOLS_FILE (it signs the tools' "
                           "requests)");
        return CS_ECONFIG;
    }
    cs_buf text = CS_BUF_INIT(CS_TOOLS_FILE_MAX);
    rc = read_file(cfg->llm_tools_file, &text, err);
    if (rc == 0)
        rc = cs_tools_parse(t, text.data ? text.data : "", text.len, cfg->llm_tools_file, err);
    cs_buf_free(&text);
    return rc;
}

/* ---- calling one ---- */

int cs_tool_post(cs_fetch *fetch, const cs_tools *t, const cs_tool *tool, const cs_tool_caller *who,
                 const char *call_id, const char *args, size_t len,
                 void (*on_done)(void *data, const cs_fetch_result *res), void *data,
                 cs_fetch_req **req)
{
    cJSON *a = cJSON_ParseWithLength(args, len);
    if (!cJSON_IsObject(a)) {
        cJSON_Delete(a);
        return CS_EPARSE;
    }
    cJSON *body = cJSON_CreateObject();
    cJSON_AddStringToObject(body, "call_sid", who->call_sid);
    cJSON_AddStringToObject(body, "stream_sid", who->stream_sid);
    cJSON_AddStringToObject(body, "tool", tool->name);
    cJSON_AddStringToObject(body, "call_id", call_id);
    cJSON_AddItemToObject(body, "arguments", a);
    char *json = cJSON_PrintUnformatted(body);
    cJSON_Delete(body);
    if (!json) return -ENOMEM;
    cs_signed_headers sig;
    cs_sign_body(&sig, t->secret ? t->secret : "", json, strlen(json), cs_wall_ms() / 1000);
    const char *headers[] = {"Content-Type: application/json", "X-Callstream-Event: tool.call",
                             sig.timestamp, sig.signature};
    cs_fetch_opts o = {
        .method = "POST",
        .url = tool->url,
        .headers = headers,
        .nheaders = sizeof headers / sizeof *headers,
        .body = json,
        .len = strlen(json),
        .timeout_ms = tool->timeout_ms,
        .max_body = CS_TOOL_RESULT_MAX,
        .on_done = on_done,
        .data = data,
    };
    int rc = cs_fetch_start(fetch, &o, req);
    free(json);
    return rc;
}

void cs_tool_error(cs_buf *out, const char *fmt, ...)
{
    char why[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    cs_buf_reset(out);
    cs_json j;
    cs_json_init(&j, out);
    cs_json_obj(&j);
    cs_json_kstr(&j, "error", why);
    cs_json_obj_end(&j);
    cs_json_end(&j);
}

bool cs_tool_result(const cs_fetch_result *res, cs_buf *out)
{
    bool ok = res->err == 0 && res->status >= 200 && res->status < 300;
    cs_buf_reset(out);
    if (ok && res->len)
        cs_buf_append(out, res->body, res->len);
    else if (ok)
        cs_buf_puts(out, "{\"ok\":true}");
    else if (res->err)
        cs_tool_error(out, "no answer: %s", res->reason);
    else
        cs_tool_error(out, "the tool answered HTTP %d", res->status);
    return ok;
}
