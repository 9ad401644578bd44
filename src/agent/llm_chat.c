/* OpenAI's chat completions on the wire: the request we POST, the chunks of its streamed
 * answer (Server-Sent Events: `data: {chunk}` … `data: [DONE]`; text in
 * choices[0].delta.content, tool calls in delta.tool_calls[] by index, their name and
 * arguments in fragments, finish_reason at the end, usage in a last chunk with no
 * choices when stream_options.include_usage is asked), and the error body
 * {"error":{"message","type","code"}}. Servers that speak it differ in small ways (a
 * chunk with choices null, tool calls without an index, a stream ending at finish_reason
 * without [DONE]): those are taken; anything else is malformed. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#include "agent/chat.h"
#include "agent/llm_int.h"
#include "core/err.h"
#include "core/json.h"
#include "net/fetch.h"

/* ---- the request ---- */

static void text_of(cs_json *j, const cs_buf *b)
{
    cs_json_strn(j, b->data ? b->data : "", b->len);
}

static void message(cs_json *j, const llm_msg *m)
{
    static const char *const roles[] = {"user", "assistant", "tool"};
    cs_json_obj(j);
    cs_json_kstr(j, "role", roles[m->role]);
    cs_json_key(j, "content");
    if (m->role == LLM_ASSISTANT && m->calls && m->text.len == 0)
        cs_json_null(j);
    else
        text_of(j, &m->text);
    if (m->calls) {
        cs_json_key(j, "tool_calls");
        cs_json_raw(j, m->calls, strlen(m->calls));
    }
    if (m->role == LLM_TOOL) cs_json_kstr(j, "tool_call_id", m->call_id);
    cs_json_obj_end(j);
}

void cs_chat_request_begin(cs_json *j, const char *model, const char *system)
{
    cs_json_obj(j);
    cs_json_kstr(j, "model", model);
    cs_json_key(j, "messages");
    cs_json_arr(j);
    cs_json_obj(j);
    cs_json_kstr(j, "role", "system");
    cs_json_kstr(j, "content", system);
    cs_json_obj_end(j);
}

int llm_request_body(cs_buf *out, const cs_llm *l, const llm_msg *msgs, size_t n, bool tools)
{
    const cs_config *cfg = l->cfg;
    cs_json j;
    cs_json_init(&j, out);
    cs_chat_request_begin(&j, cfg->llm_model, cfg->system_prompt);
    for (size_t i = 0; i < n; i++) {
        /* Nothing of it was heard and it called nothing: the model never said it. */
        if (msgs[i].role == LLM_ASSISTANT && !msgs[i].calls && msgs[i].text.len == 0) continue;
        message(&j, &msgs[i]);
    }
    cs_json_arr_end(&j);
    cs_json_kbool(&j, "stream", true);
    cs_json_key(&j, "stream_options");
    cs_json_obj(&j);
    cs_json_kbool(&j, "include_usage", true);
    cs_json_obj_end(&j);
    if (cfg->llm_max_tokens) cs_json_kint(&j, "max_tokens", cfg->llm_max_tokens);
    if (l->temperature_set) cs_json_kdouble(&j, "temperature", l->temperature);
    cs_json_key(&j, "tools");
    cs_json_raw(&j, l->tools.chat_json, strlen(l->tools.chat_json));
    if (!tools) cs_json_kstr(&j, "tool_choice", "none");
    cs_json_obj_end(&j);
    return cs_json_end(&j);
}

/* ---- errors ---- */

/* `s` with control characters as spaces, at most cap - 1 bytes. */
static void clean_copy(char *out, size_t cap, const char *s, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n && k + 1 < cap; i++)
        out[k++] = (unsigned char)s[i] < 0x20 ? ' ' : s[i];
    out[k] = '\0';
}

/* OpenAI's error object {"message","type","code"} (or a bare string, as some servers send)
 * as "message (code or type)"; false if it is neither. */
static bool error_text(const cJSON *err, char *out, size_t cap)
{
    const cJSON *msg = cJSON_IsObject(err) ? cJSON_GetObjectItemCaseSensitive(err, "message") : err;
    if (!cJSON_IsString(msg)) return false;
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(err, "type");
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(err, "code");
    const char *kind = cJSON_IsString(code)   ? code->valuestring
                       : cJSON_IsString(type) ? type->valuestring
                                              : NULL;
    char m[512];
    clean_copy(m, sizeof m, msg->valuestring, strlen(msg->valuestring));
    if (kind)
        snprintf(out, cap, "%s (%s)", m, kind);
    else
        snprintf(out, cap, "%s", m);
    return true;
}

void cs_chat_error_message(const char *body, size_t len, char *out, size_t cap)
{
    cJSON *root = cJSON_ParseWithLength(body, len);
    if (!error_text(cJSON_GetObjectItemCaseSensitive(root, "error"), out, cap))
        clean_copy(out, cap, body, len > 200 ? 200 : len);
    cJSON_Delete(root);
}

/* ---- the endpoint ---- */

int cs_chat_endpoint(const cs_config *cfg, char **url_out, char **auth_out, cs_buf *err)
{
    *url_out = *auth_out = NULL;
    /* The base, as OpenAI's clients take it; a URL given whole is taken as it is. */
    static const char path[] = "/chat/completions";
    size_t n = strlen(cfg->llm_url);
    while (n && cfg->llm_url[n - 1] == '/') n--;
    bool whole = n >= sizeof path - 1 &&
                 !memcmp(cfg->llm_url + n - (sizeof path - 1), path, sizeof path - 1);
    cs_buf url = CS_BUF_INIT(8192);
    cs_buf_printf(&url, "%.*s%s", (int)n, cfg->llm_url, whole ? "" : path);
    *url_out = cs_buf_detach(&url, &n);
    if (!*url_out || !cs_fetch_url_ok(*url_out)) {
        cs_buf_printf(err, "LLM_URL: '%s' is not an http(s) URL", cfg->llm_url);
        return CS_ECONFIG;
    }
    if (cfg->llm_api_key[0]) {
        if (strpbrk(cfg->llm_api_key, "\r\n")) {
            cs_buf_printf(err, "LLM_API_KEY: holds a line break");
            return CS_ECONFIG;
        }
        cs_buf h = CS_BUF_INIT(8192);
        if (cs_buf_printf(&h, "Authorization: Bearer %s", cfg->llm_api_key) < 0) {
            cs_buf_free(&h);
            cs_buf_printf(err, "LLM_API_KEY: too long");
            return CS_ECONFIG;
        }
        *auth_out = cs_buf_detach(&h, &n);
    }
    return 0;
}

/* ---- the streamed answer ---- */

void llm_stream_init(llm_stream *st, void (*on_text)(void *, const char *, size_t), void *data)
{
    memset(st, 0, sizeof *st);
    cs_sse_init(&st->sse, CS_LLM_CHUNK_MAX);
    for (size_t i = 0; i < CS_LLM_CALLS_MAX; i++) cs_buf_init(&st->calls[i].args, CS_LLM_ARGS_MAX);
    st->prompt_tokens = st->completion_tokens = -1;
    st->on_text = on_text;
    st->data = data;
}

void llm_stream_free(llm_stream *st)
{
    cs_sse_free(&st->sse);
    for (size_t i = 0; i < CS_LLM_CALLS_MAX; i++) cs_buf_free(&st->calls[i].args);
}

bool llm_stream_complete(const llm_stream *st)
{
    return st->done || st->finish[0];
}

/* What went wrong, with the start of the chunk it is in. */
static int malformed(llm_stream *st, const char *why, const cs_sse_event *ev)
{
    int n = ev->data_len > 60 ? 60 : (int)ev->data_len;
    snprintf(st->error, sizeof st->error, "%s: %.*s%s", why, n, ev->data,
             ev->data_len > 60 ? "…" : "");
    return CS_EPARSE;
}

static const char *string_or_null(const cJSON *o, const char *key, bool *bad)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (cJSON_IsString(v)) return v->valuestring;
    if (v && !cJSON_IsNull(v)) *bad = true;
    return NULL;
}

/* Appends `s` to a fixed field; false when it does not fit. */
static bool append(char *field, size_t cap, const char *s)
{
    size_t have = strlen(field), n = strlen(s);
    if (have + n >= cap) return false;
    memcpy(field + have, s, n + 1);
    return true;
}

/* One element of delta.tool_calls: a new call, or more of one (by its index). */
static int tool_call_delta(llm_stream *st, const cJSON *tc, const cs_sse_event *ev)
{
    if (!cJSON_IsObject(tc)) return malformed(st, "a tool call that is not an object", ev);
    bool bad = false;
    const cJSON *index = cJSON_GetObjectItemCaseSensitive(tc, "index");
    const char *id = string_or_null(tc, "id", &bad);
    const cJSON *fn = cJSON_GetObjectItemCaseSensitive(tc, "function");
    const char *name = fn ? string_or_null(fn, "name", &bad) : NULL;
    const char *args = fn ? string_or_null(fn, "arguments", &bad) : NULL;
    if (bad || (fn && !cJSON_IsObject(fn)) || (index && !cJSON_IsNumber(index)))
        return malformed(st, "a tool call of the wrong shape", ev);
    /* Without an index, a call with an id is a new one, else more of the last. */
    double k = index ? index->valuedouble
                     : (double)(id && id[0] ? st->ncalls : (st->ncalls ? st->ncalls - 1 : 0));
    if (k < 0 || k != (double)(size_t)k) return malformed(st, "a tool call index", ev);
    if (k >= CS_LLM_CALLS_MAX) {
        snprintf(st->error, sizeof st->error, "more than %d tool calls in one answer",
                 CS_LLM_CALLS_MAX);
        return CS_ELIMIT;
    }
    size_t i = (size_t)k;
    if (i >= st->ncalls) st->ncalls = i + 1;
    llm_call *c = &st->calls[i];
    if ((id && id[0] && !c->id[0] && !append(c->id, sizeof c->id, id)) ||
        (name && !append(c->name, sizeof c->name, name)))
        return malformed(st, "a tool call id or name too long", ev);
    if (args && cs_buf_puts(&c->args, args) < 0) {
        snprintf(st->error, sizeof st->error, "a tool call's arguments over %u bytes",
                 CS_LLM_ARGS_MAX);
        return CS_ELIMIT;
    }
    return 0;
}

static int choice(llm_stream *st, const cJSON *c, const cs_sse_event *ev)
{
    if (!cJSON_IsObject(c)) return malformed(st, "a choice that is not an object", ev);
    bool bad = false;
    const char *finish = string_or_null(c, "finish_reason", &bad);
    const cJSON *delta = cJSON_GetObjectItemCaseSensitive(c, "delta");
    if (bad || (delta && !cJSON_IsObject(delta) && !cJSON_IsNull(delta)))
        return malformed(st, "a choice of the wrong shape", ev);
    if (finish) snprintf(st->finish, sizeof st->finish, "%s", finish);
    if (!cJSON_IsObject(delta)) return 0;
    const char *text = string_or_null(delta, "content", &bad);
    const cJSON *calls = cJSON_GetObjectItemCaseSensitive(delta, "tool_calls");
    if (bad || (calls && !cJSON_IsArray(calls) && !cJSON_IsNull(calls)))
        return malformed(st, "a delta of the wrong shape", ev);
    if (text && text[0]) st->on_text(st->data, text, strlen(text));
    const cJSON *tc;
    int rc = 0;
    if (!cJSON_IsArray(calls)) return 0;
    cJSON_ArrayForEach(tc, calls)
    {
        if ((rc = tool_call_delta(st, tc, ev)) < 0) break;
    }
    return rc;
}

static int64_t count_of(const cJSON *usage, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(usage, key);
    return cJSON_IsNumber(v) ? (int64_t)v->valuedouble : -1;
}

static int chunk(llm_stream *st, const cs_sse_event *ev, const cJSON *root)
{
    if (!cJSON_IsObject(root)) return malformed(st, "a chunk that is not a JSON object", ev);
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(root, "error");
    if (err) {
        if (!error_text(err, st->error, sizeof st->error))
            malformed(st, "an error of the wrong shape", ev);
        return -EPROTO;
    }
    const cJSON *choices = cJSON_GetObjectItemCaseSensitive(root, "choices");
    if (choices && !cJSON_IsArray(choices) && !cJSON_IsNull(choices))
        return malformed(st, "choices that are not a list", ev);
    const cJSON *usage = cJSON_GetObjectItemCaseSensitive(root, "usage");
    if (cJSON_IsObject(usage)) {
        st->prompt_tokens = count_of(usage, "prompt_tokens");
        st->completion_tokens = count_of(usage, "completion_tokens");
    }
    /* One choice is asked for (n is 1): the first is the answer. */
    const cJSON *first = cJSON_IsArray(choices) ? cJSON_GetArrayItem(choices, 0) : NULL;
    return first ? choice(st, first, ev) : 0;
}

static int on_event(void *data, const cs_sse_event *ev)
{
    llm_stream *st = data;
    if (ev->data_len == 6 && memcmp(ev->data, "[DONE]", 6) == 0) {
        st->done = true;
        return 0;
    }
    if (ev->data_len == 0) return 0; /* a keep-alive */
    cJSON *root = cJSON_ParseWithLength(ev->data, ev->data_len);
    int rc = root ? chunk(st, ev, root) : malformed(st, "a chunk that is not JSON", ev);
    cJSON_Delete(root);
    return rc;
}

int llm_stream_feed(llm_stream *st, const char *p, size_t n)
{
    ssize_t rc = cs_sse_feed(&st->sse, p, n, on_event, st);
    if (rc == CS_ELIMIT && !st->error[0])
        snprintf(st->error, sizeof st->error, "a streamed event over %u bytes", CS_LLM_CHUNK_MAX);
    return rc < 0 ? (int)rc : 0;
}
