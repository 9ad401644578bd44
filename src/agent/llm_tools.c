/* The tools the model may call: end_call, built in, and the operator's from
 * LLM_TOOLS_FILE, a JSON list of {"name", "description", "parameters" (a JSON schema
 * object), "url", "timeout_ms"}. Read once at start-up; anything wrong stops the gateway
 * with a message naming the tool and the key. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/llm_int.h"
#include "core/err.h"
#include "net/fetch.h"

#define TOOL_TIMEOUT_MAX_MS 60000

static const char end_call_help[] =
    "Hang up the call. Say goodbye in the same answer, before calling it.";

/* {"type":"function","function":{"name","description","parameters"}} */
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
    if (n == 0 || n > CS_LLM_NAME_MAX) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* Checks tool `k` (1-based in messages) and adds it to `l` and `list`. */
static int one_tool(cs_llm *l, const cJSON *t, size_t k, const char *path, cJSON *list, cs_buf *err)
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
                      path, k, CS_LLM_NAME_MAX);
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
    if (strcmp(n, LLM_END_CALL) == 0) BAD("end_call is built in");
    if (llm_tool_find(l, n)) BAD("another tool has this name");
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
    llm_tool *tool = &l->tools[l->ntools];
    snprintf(tool->name, sizeof tool->name, "%s", n);
    tool->url = strdup(url->valuestring);
    if (!tool->url) return -ENOMEM;
    tool->timeout_ms = timeout ? (uint32_t)timeout->valuedouble : CS_LLM_TOOL_TIMEOUT_MS;
    l->ntools++;
    cJSON_AddItemToArray(list, tool_json(n, desc ? desc->valuestring : NULL, params));
    return 0;
}

/* The tools list as the request's JSON, end_call first, then `extra` tools (may be NULL). */
static int tools_list(cs_llm *l, cJSON *list)
{
    cJSON_InsertItemInArray(list, 0, tool_json(LLM_END_CALL, end_call_help, NULL));
    free(l->tools_json);
    l->tools_json = cJSON_PrintUnformatted(list);
    cJSON_Delete(list);
    return l->tools_json ? 0 : -ENOMEM;
}

int llm_tools_builtin(cs_llm *l)
{
    return tools_list(l, cJSON_CreateArray());
}

int llm_tools_parse(cs_llm *l, const char *json, size_t len, const char *path, cs_buf *err)
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
    } else if (n > CS_LLM_TOOLS_MAX) {
        cs_buf_printf(err, "LLM_TOOLS_FILE %s: %zu tools, more than %d", path, n, CS_LLM_TOOLS_MAX);
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

const llm_tool *llm_tool_find(const cs_llm *l, const char *name)
{
    for (size_t i = 0; i < l->ntools; i++)
        if (strcmp(l->tools[i].name, name) == 0) return &l->tools[i];
    return NULL;
}

void llm_tools_free(cs_llm *l)
{
    for (size_t i = 0; i < l->ntools; i++) free(l->tools[i].url);
    free(l->tools);
    free(l->tools_json);
    l->tools = NULL;
    l->ntools = 0;
    l->tools_json = NULL;
}
