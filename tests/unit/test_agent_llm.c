/* The LLM agent's wire and tools file: the request it sends (messages as heard, tool calls
 * and results, the settings), the streamed chunks it reads (text, tool calls in
 * fragments, finish_reason, usage, [DONE], each stream fed whole and byte by byte), the
 * shapes some servers send that must be taken, what is malformed or too large, OpenAI's
 * error body, and LLM_TOOLS_FILE with each of its refusals. */
#include "testutil.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/chat.h"
#include "agent/llm_int.h"
#include "core/config.h"
#include "core/err.h"

/* ---- the request ---- */

static cs_config cfg_with(const char *model, int64_t max_tokens)
{
    cs_config c;
    memset(&c, 0, sizeof c);
    c.llm_model = (char *)model;
    c.system_prompt = (char *)"Be brief.";
    c.llm_max_tokens = max_tokens;
    return c;
}

static llm_msg msg(enum llm_role role, const char *text)
{
    llm_msg m;
    memset(&m, 0, sizeof m);
    m.role = role;
    cs_buf_init(&m.text, 1 << 16);
    if (text) cs_buf_puts(&m.text, text);
    return m;
}

static const char *role_of(const cJSON *m)
{
    return cJSON_GetObjectItem(m, "role")->valuestring;
}

static void request_body(void **state)
{
    (void)state;
    cs_config cfg = cfg_with("tiny", 120);
    cs_llm l = {.cfg = &cfg, .temperature_set = true, .temperature = 0.5};
    assert_int_equal(cs_tools_builtin(&l.tools), 0);
    llm_msg m[5] = {msg(LLM_USER, "go forward ten meters"),
                    msg(LLM_ASSISTANT, "Going"), /* cut: what was heard */
                    msg(LLM_ASSISTANT, ""),      /* nothing heard, no call: left out */
                    msg(LLM_ASSISTANT, ""),      /* a call alone: content null */
                    msg(LLM_TOOL, "{\"temp\":21}")};
    m[3].calls = strdup("[{\"id\":\"c1\",\"type\":\"function\",\"function\":{\"name\":\"weather\","
                        "\"arguments\":\"{}\"}}]");
    snprintf(m[4].call_id, sizeof m[4].call_id, "c1");
    cs_buf out = CS_BUF_INIT(1 << 20);
    assert_int_equal(llm_request_body(&out, &l, m, 5, true), 0);
    cJSON *j = cJSON_Parse(out.data);
    assert_non_null(j);
    assert_string_equal(cJSON_GetObjectItem(j, "model")->valuestring, "tiny");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "stream")));
    assert_true(cJSON_IsTrue(
        cJSON_GetObjectItem(cJSON_GetObjectItem(j, "stream_options"), "include_usage")));
    assert_int_equal(cJSON_GetObjectItem(j, "max_tokens")->valueint, 120);
    assert_true(cJSON_GetObjectItem(j, "temperature")->valuedouble == 0.5);
    assert_null(cJSON_GetObjectItem(j, "tool_choice"));
    const cJSON *msgs = cJSON_GetObjectItem(j, "messages");
    assert_int_equal(cJSON_GetArraySize(msgs), 5);
    const cJSON *sys = cJSON_GetArrayItem(msgs, 0);
    assert_string_equal(role_of(sys), "system");
    assert_string_equal(cJSON_GetObjectItem(sys, "content")->valuestring, "Be brief.");
    assert_string_equal(role_of(cJSON_GetArrayItem(msgs, 1)), "user");
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(msgs, 2), "content")->valuestring,
                        "Going");
    const cJSON *call = cJSON_GetArrayItem(msgs, 3);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(call, "content")));
    assert_string_equal(
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(call, "tool_calls"), 0), "id")
            ->valuestring,
        "c1");
    const cJSON *tool = cJSON_GetArrayItem(msgs, 4);
    assert_string_equal(role_of(tool), "tool");
    assert_string_equal(cJSON_GetObjectItem(tool, "tool_call_id")->valuestring, "c1");
    const cJSON *tools = cJSON_GetObjectItem(j, "tools");
    assert_int_equal(cJSON_GetArraySize(tools), 1);
    assert_string_equal(
        cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(tools, 0), "function"), "name")
            ->valuestring,
        "end_call");
    cJSON_Delete(j);

    /* No max_tokens, no temperature, tools no more. */
    cfg.llm_max_tokens = 0;
    l.temperature_set = false;
    cs_buf_reset(&out);
    assert_int_equal(llm_request_body(&out, &l, m, 1, false), 0);
    j = cJSON_Parse(out.data);
    assert_null(cJSON_GetObjectItem(j, "max_tokens"));
    assert_null(cJSON_GetObjectItem(j, "temperature"));
    assert_string_equal(cJSON_GetObjectItem(j, "tool_choice")->valuestring, "none");
    cJSON_Delete(j);
    cs_buf_free(&out);
    for (int i = 0; i < 5; i++) {
        cs_buf_free(&m[i].text);
        free(m[i].calls);
    }
    cs_tools_free(&l.tools);
}

/* ---- the streamed answer ---- */

static void collect_text(void *data, const char *text, size_t len)
{
    cs_buf_append(data, text, len);
}

/* Feeds `in` whole (step 0) or `step` bytes at a time; the text in `text`. */
static int feed(llm_stream *st, const char *in, size_t step, cs_buf *text)
{
    cs_buf_reset(text);
    llm_stream_init(st, collect_text, text);
    size_t n = strlen(in);
    int rc = 0;
    for (size_t at = 0; at < n && rc == 0;) {
        size_t k = step && n - at > step ? step : n - at;
        rc = llm_stream_feed(st, in + at, k);
        at += k;
    }
    return rc;
}

/* As OpenAI streams it: a role chunk, content pieces, finish_reason, usage, [DONE]. */
static const char plain[] =
    "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":"
    "{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null},\"finish_reason\":null}],"
    "\"usage\":null}\n\n"
    ": keep-alive\n\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Sure, caf\xc3\xa9\"},"
    "\"finish_reason\":null}]}\r\n\r\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\". Done.\\n\"},"
    "\"finish_reason\":null}]}\n\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"
    "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":30,\"completion_tokens\":6}}\n\n"
    "data: [DONE]\n\n";

static void stream_plain(void **state)
{
    (void)state;
    cs_buf text = CS_BUF_INIT(1 << 16);
    for (size_t step = 0; step <= 3; step++) {
        llm_stream st;
        assert_int_equal(feed(&st, plain, step, &text), 0);
        assert_string_equal(text.data, "Sure, caf\xc3\xa9. Done.\n");
        assert_string_equal(st.finish, "stop");
        assert_true(st.done && llm_stream_complete(&st));
        assert_int_equal(st.prompt_tokens, 30);
        assert_int_equal(st.completion_tokens, 6);
        assert_int_equal(st.ncalls, 0);
        llm_stream_free(&st);
    }
    cs_buf_free(&text);
}

/* Two calls whose arguments arrive in fragments, interleaved; then one server's shapes:
 * choices null, a call without an index, finish_reason without [DONE]. */
static void stream_tool_calls(void **state)
{
    (void)state;
    static const char in[] =
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"One moment.\",\"tool_calls\":"
        "[{\"index\":0,\"id\":\"call_a\",\"type\":\"function\",\"function\":{\"name\":\"weather\","
        "\"arguments\":\"\"}}]}}]}\n\n"
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":"
        "{\"arguments\":\"{\\\"ci\"}}]}}]}\n\n"
        "data: "
        "{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"id\":\"call_b\","
        "\"function\":{\"name\":\"end_\",\"arguments\":\"{}\"}}]}}]}\n\n"
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"function\":"
        "{\"name\":\"call\"}},{\"index\":0,\"function\":{\"arguments\":\"ty\\\":\\\"Oslo\\\"}\"}}]}"
        "}]}"
        "\n\n"
        "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n"
        "data: {\"choices\":null,\"usage\":{\"prompt_tokens\":5}}\n\n"
        "data: [DONE]\n\n";
    cs_buf text = CS_BUF_INIT(1 << 16);
    for (size_t step = 0; step <= 1; step++) {
        llm_stream st;
        assert_int_equal(feed(&st, in, step, &text), 0);
        assert_string_equal(text.data, "One moment.");
        assert_int_equal(st.ncalls, 2);
        assert_string_equal(st.calls[0].id, "call_a");
        assert_string_equal(st.calls[0].name, "weather");
        assert_string_equal(st.calls[0].args.data, "{\"city\":\"Oslo\"}");
        assert_string_equal(st.calls[1].id, "call_b");
        assert_string_equal(st.calls[1].name, "end_call");
        assert_string_equal(st.finish, "tool_calls");
        assert_int_equal(st.prompt_tokens, 5);
        llm_stream_free(&st);
    }
    static const char no_index[] =
        "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"id\":\"x1\",\"function\":{\"name\":"
        "\"a\",\"arguments\":\"{\\\"k\\\":\"}}]}}]}\n\n"
        "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"function\":{\"arguments\":\"1}\"}}]}}]}"
        "\n\n"
        "data: "
        "{\"choices\":[{\"delta\":{\"tool_calls\":[{\"id\":\"x2\",\"function\":{\"name\":\"b\""
        "}}]},\"finish_reason\":\"tool_calls\"}]}\n\n";
    llm_stream st;
    assert_int_equal(feed(&st, no_index, 0, &text), 0);
    assert_int_equal(st.ncalls, 2);
    assert_string_equal(st.calls[0].args.data, "{\"k\":1}");
    assert_string_equal(st.calls[1].id, "x2");
    assert_false(st.done);
    assert_true(llm_stream_complete(&st)); /* a finish_reason ends it */
    llm_stream_free(&st);
    /* Neither [DONE] nor a finish_reason: not whole. */
    assert_int_equal(
        feed(&st, "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n", 0, &text), 0);
    assert_false(llm_stream_complete(&st));
    llm_stream_free(&st);
    cs_buf_free(&text);
}

/* What fails, with what it says. */
static void stream_refused(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        int rc;
        const char *error; /* the start of st.error */
    } rows[] = {
        {"data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\ndata: {not json\n\n", CS_EPARSE,
         "a chunk that is not JSON: {not json"},
        {"data: [1,2]\n\n", CS_EPARSE, "a chunk that is not a JSON object"},
        {"data: {\"choices\":{}}\n\n", CS_EPARSE, "choices that are not a list"},
        {"data: {\"choices\":[{\"delta\":{\"content\":7}}]}\n\n", CS_EPARSE,
         "a delta of the wrong shape"},
        {"data: {\"choices\":[{\"delta\":[]}]}\n\n", CS_EPARSE, "a choice of the wrong shape"},
        {"data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":-1}]}}]}\n\n", CS_EPARSE,
         "a tool call index"},
        {"data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":8,\"id\":\"z\"}]}}]}\n\n",
         CS_ELIMIT, "more than 8 tool calls"},
        {"data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":7}]}}]}\n\n",
         CS_EPARSE, "a tool call of the wrong shape"},
        /* OpenAI's error in the stream, after some text. */
        {"data: {\"choices\":[{\"delta\":{\"content\":\"The\"}}]}\n\n"
         "data: {\"error\": {\"message\": \"The server had an error while processing your "
         "request.\", \"type\": \"server_error\"}}\n\n",
         -EPROTO, "The server had an error while processing your request. (server_error)"},
        {"data: {\"error\":\"model 'x' not found\"}\n\n", -EPROTO, "model 'x' not found"},
        {"data: {\"error\":3}\n\n", -EPROTO, "an error of the wrong shape"},
    };
    cs_buf text = CS_BUF_INIT(1 << 16);
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
        llm_stream st;
        int rc = feed(&st, rows[i].in, 0, &text);
        if (rc != rows[i].rc || strncmp(st.error, rows[i].error, strlen(rows[i].error)) != 0)
            fail_msg("row %zu: %d '%s'", i, rc, st.error);
        /* Unusable afterwards. */
        assert_int_equal(llm_stream_feed(&st, "data: [DONE]\n\n", 14), rc);
        llm_stream_free(&st);
    }
    /* Arguments and events past their bounds. */
    cs_buf big = CS_BUF_INIT(1 << 20);
    cs_buf_puts(&big, "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":"
                      "{\"arguments\":\"");
    for (unsigned i = 0; i <= CS_LLM_ARGS_MAX / 2; i++) cs_buf_puts(&big, "ab");
    cs_buf_puts(&big, "\"}}]}}]}\n\n");
    llm_stream st;
    assert_int_equal(feed(&st, big.data, 0, &text), CS_ELIMIT);
    assert_non_null(strstr(st.error, "arguments over"));
    llm_stream_free(&st);
    cs_buf_reset(&big);
    cs_buf_puts(&big, "data: ");
    for (unsigned i = 0; i < CS_LLM_CHUNK_MAX; i++) cs_buf_putc(&big, 'x');
    assert_int_equal(feed(&st, big.data, 0, &text), CS_ELIMIT);
    assert_non_null(strstr(st.error, "a streamed event over"));
    llm_stream_free(&st);
    cs_buf_free(&big);
    cs_buf_free(&text);
}

static void error_bodies(void **state)
{
    (void)state;
    char out[300];
    static const char openai[] = "{\"error\":{\"message\":\"Incorrect API key "
                                 "provided.\",\"type\":\"invalid_request_error\","
                                 "\"param\":null,\"code\":\"invalid_api_key\"}}";
    cs_chat_error_message(openai, strlen(openai), out, sizeof out);
    assert_string_equal(out, "Incorrect API key provided. (invalid_api_key)");
    static const char typed[] =
        "{\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\"}}";
    cs_chat_error_message(typed, strlen(typed), out, sizeof out);
    assert_string_equal(out, "overloaded (server_error)");
    static const char bare[] = "{\"error\":\"model \\\"x\\\" not found, try pulling it first\"}";
    cs_chat_error_message(bare, strlen(bare), out, sizeof out);
    assert_string_equal(out, "model \"x\" not found, try pulling it first");
    static const char html[] = "<html>\r\n<b>502 Bad Gateway</b></html>";
    cs_chat_error_message(html, strlen(html), out, sizeof out);
    assert_string_equal(out, "<html>  <b>502 Bad Gateway</b></html>");
}

/* ---- LLM_TOOLS_FILE ---- */

static void tools_file(void **state)
{
    (void)state;
    static const char good[] =
        "[{\"name\":\"weather\",\"description\":\"The weather in a city\",\"parameters\":"
        "{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}},\"required\":"
        "[\"city\"]},\"url\":\"https://tools.example.com/weather\",\"timeout_ms\":2500},"
        "{\"name\":\"book-table_2\",\"url\":\"http://127.0.0.1:9/book\"}]";
    cs_llm l = {0};
    cs_buf err = CS_BUF_INIT(4096);
    assert_int_equal(cs_tools_parse(&l.tools, good, strlen(good), "t.json", &err), 0);
    assert_int_equal(l.tools.n, 2);
    assert_int_equal(cs_tools_find(&l.tools, "weather")->timeout_ms, 2500);
    assert_int_equal(cs_tools_find(&l.tools, "book-table_2")->timeout_ms, CS_TOOL_TIMEOUT_MS);
    assert_null(cs_tools_find(&l.tools, "end_call")); /* built in, not the operator's */
    cJSON *tools = cJSON_Parse(l.tools.chat_json);
    assert_int_equal(cJSON_GetArraySize(tools), 3);
    static const char *const names[] = {"end_call", "weather", "book-table_2"};
    for (int i = 0; i < 3; i++) {
        const cJSON *t = cJSON_GetArrayItem(tools, i);
        assert_string_equal(cJSON_GetObjectItem(t, "type")->valuestring, "function");
        const cJSON *fn = cJSON_GetObjectItem(t, "function");
        assert_string_equal(cJSON_GetObjectItem(fn, "name")->valuestring, names[i]);
        /* Every tool has an object schema; the file's is sent as written. */
        const cJSON *p = cJSON_GetObjectItem(fn, "parameters");
        assert_string_equal(cJSON_GetObjectItem(p, "type")->valuestring, "object");
        assert_null(cJSON_GetObjectItem(fn, "url"));
    }
    assert_non_null(cJSON_GetObjectItem(
        cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(tools, 1), "function"),
                            "parameters"),
        "required"));
    cJSON_Delete(tools);
    /* The same tools as a Realtime session takes them: the function's members beside
     * "type". */
    tools = cJSON_Parse(l.tools.realtime_json);
    assert_int_equal(cJSON_GetArraySize(tools), 3);
    for (int i = 0; i < 3; i++) {
        const cJSON *t = cJSON_GetArrayItem(tools, i);
        assert_string_equal(cJSON_GetObjectItem(t, "type")->valuestring, "function");
        assert_string_equal(cJSON_GetObjectItem(t, "name")->valuestring, names[i]);
        assert_null(cJSON_GetObjectItem(t, "function"));
        const cJSON *p = cJSON_GetObjectItem(t, "parameters");
        assert_string_equal(cJSON_GetObjectItem(p, "type")->valuestring, "object");
    }
    assert_string_equal(
        cJSON_GetObjectItem(cJSON_GetArrayItem(tools, 1), "description")->valuestring,
        "The weather in a city");
    cJSON_Delete(tools);
    cs_tools_free(&l.tools);

    static const struct {
        const char *json;
        const char *says;
    } bad[] = {
        {"[{\"name\":", "LLM_TOOLS_FILE t.json: not JSON (at byte "},
        {"{\"name\":\"a\"}", "LLM_TOOLS_FILE t.json: not a list of tools"},
        {"[3]", "LLM_TOOLS_FILE t.json: tool 1 is not an object"},
        {"[{\"url\":\"http://x/\"}]", "tool 1: 'name' must be 1 to 64 letters"},
        {"[{\"name\":\"a b\",\"url\":\"http://x/\"}]", "tool 1: 'name' must be"},
        {"[{\"name\":\"end_call\",\"url\":\"http://x/\"}]",
         "tool 1 (end_call): end_call is built in"},
        {"[{\"name\":\"a\",\"url\":\"http://x/\"},{\"name\":\"a\",\"url\":\"http://y/\"}]",
         "tool 2 (a): another tool has this name"},
        {"[{\"name\":\"a\",\"url\":\"ftp://x/\"}]",
         "tool 1 (a): 'url' is missing or not an http(s)"},
        {"[{\"name\":\"a\"}]", "tool 1 (a): 'url' is missing"},
        {"[{\"name\":\"a\",\"url\":\"http://x/\",\"parameters\":[]}]",
         "'parameters' is not a JSON"},
        {"[{\"name\":\"a\",\"url\":\"http://x/\",\"parameters\":{\"type\":\"string\"}}]",
         "'parameters' is not a JSON"},
        {"[{\"name\":\"a\",\"url\":\"http://x/\",\"description\":1}]",
         "'description' is not a string"},
        {"[{\"name\":\"a\",\"url\":\"http://x/\",\"timeout_ms\":0}]", "'timeout_ms' must be"},
        {"[{\"name\":\"a\",\"url\":\"http://x/\",\"Url\":\"http://x/\"}]", "unknown key 'Url'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cs_buf_reset(&err);
        cs_llm b = {0};
        assert_int_equal(cs_tools_parse(&b.tools, bad[i].json, strlen(bad[i].json), "t.json", &err),
                         CS_ECONFIG);
        if (!strstr(err.data, bad[i].says)) fail_msg("row %zu: '%s'", i, err.data);
        cs_tools_free(&b.tools);
    }
    /* Too many. */
    cs_buf many = CS_BUF_INIT(1 << 20);
    cs_buf_putc(&many, '[');
    for (int i = 0; i <= CS_TOOLS_MAX; i++)
        cs_buf_printf(&many, "%s{\"name\":\"t%d\",\"url\":\"http://x/\"}", i ? "," : "", i);
    cs_buf_putc(&many, ']');
    cs_buf_reset(&err);
    cs_llm m = {0};
    assert_int_equal(cs_tools_parse(&m.tools, many.data, many.len, "t.json", &err), CS_ECONFIG);
    assert_non_null(strstr(err.data, "33 tools, more than 32"));
    cs_tools_free(&m.tools);
    cs_buf_free(&many);
    cs_buf_free(&err);
}

/* ---- AGENT_TRANSFER_TARGETS: the transfer tool ---- */

static cs_config cfg_targets(const char *targets, const char *tools_file)
{
    cs_config c = cfg_with("tiny", 0);
    c.agent_transfer_targets = (char *)targets;
    c.llm_tools_file = (char *)tools_file;
    c.agent_webhook_secret = (char *)"s";
    return c;
}

static void transfer_targets(void **state)
{
    (void)state;
    cs_buf err = CS_BUF_INIT(4096);
    cs_tools t = {0};
    /* Offered only with targets, and named by the targets' names (never a number). */
    cs_config c = cfg_targets("", "");
    assert_int_equal(cs_tools_load(&t, &c, true, &err), 0);
    assert_null(strstr(t.chat_json, "transfer"));
    cs_tools_free(&t);
    c = cfg_targets("sales=+15551230001,support=+15551230002", "");
    assert_int_equal(cs_tools_load(&t, &c, true, &err), 0);
    assert_int_equal(t.ntargets, 2);
    assert_string_equal(t.targets[1].name, "support");
    assert_string_equal(t.targets[1].number, "+15551230002");
    cJSON *tools = cJSON_Parse(t.chat_json);
    const cJSON *fn = cJSON_GetObjectItem(cJSON_GetArrayItem(tools, 1), "function");
    assert_string_equal(cJSON_GetObjectItem(fn, "name")->valuestring, "transfer");
    const cJSON *to = cJSON_GetObjectItem(
        cJSON_GetObjectItem(cJSON_GetObjectItem(fn, "parameters"), "properties"), "to");
    const cJSON *names = cJSON_GetObjectItem(to, "enum");
    assert_int_equal(cJSON_GetArraySize(names), 2);
    assert_string_equal(cJSON_GetArrayItem(names, 0)->valuestring, "sales");
    assert_null(strstr(t.chat_json, "+1555")); /* the model never sees the numbers */
    assert_null(strstr(t.realtime_json, "+1555"));
    assert_non_null(strstr(t.realtime_json, "\"name\":\"transfer\""));
    cJSON_Delete(tools);
    /* Resolved by name only. */
    cs_buf out = CS_BUF_INIT(4096);
    static const char sales[] = "{\"to\":\"sales\"}";
    const cs_transfer_target *g = cs_tools_transfer_target(&t, sales, strlen(sales), &out);
    assert_non_null(g);
    assert_string_equal(g->number, "+15551230001");
    static const char number[] = "{\"to\":\"+15551230001\"}";
    assert_null(cs_tools_transfer_target(&t, number, strlen(number), &out));
    assert_string_equal(out.data, "{\"error\":\"no transfer target is named '+15551230001' (the "
                                  "targets: sales, support)\"}");
    assert_null(cs_tools_transfer_target(&t, "[]", 2, &out));
    assert_string_equal(
        out.data, "{\"error\":\"the arguments must be {\\\"to\\\": one of sales, support}\"}");
    cs_buf_free(&out);
    cs_tools_free(&t);
    /* Mistakes stop the gateway, with the reason. */
    static const struct {
        const char *targets;
        bool control;
        const char *error;
    } bad[] = {
        {"sales=+15551230001", false,
         "AGENT_TRANSFER_TARGETS: transferring needs call control: TWILIO_ACCOUNT_SID and "
         "TWILIO_AUTH_TOKEN (or TWILIO_API_KEY and TWILIO_API_SECRET)"},
        {"sales", true, "AGENT_TRANSFER_TARGETS: 'sales' is not NAME=+E164"},
        {"sales=5551230001", true,
         "AGENT_TRANSFER_TARGETS: 'sales=5551230001': not an E.164 number (+ and up to 15 "
         "digits)"},
        {"sa les=+15551230001", true,
         "AGENT_TRANSFER_TARGETS: 'sa les=+15551230001': a name is 1 to 64 letters, digits, _ or "
         "-"},
        {"=+15551230001", true,
         "AGENT_TRANSFER_TARGETS: '=+15551230001': a name is 1 to 64 letters, digits, _ or -"},
        {"a=+15551230001,a=+15551230002", true, "AGENT_TRANSFER_TARGETS: 'a' is named twice"},
        {"a=+15551230001,", true, ""}, /* a trailing comma is nothing */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cs_buf_reset(&err);
        c = cfg_targets(bad[i].targets, "");
        int rc = cs_tools_load(&t, &c, bad[i].control, &err);
        if (!bad[i].error[0]) {
            assert_int_equal(rc, 0);
        } else if (rc != CS_ECONFIG || !err.data || strcmp(err.data, bad[i].error) != 0) {
            fail_msg("case %zu: %d '%s'", i, rc, err.data ? err.data : "");
        }
        cs_tools_free(&t);
    }
    /* An operator's tool cannot take the built-in name. */
    static const char file[] = "[{\"name\":\"transfer\",\"url\":\"http://127.0.0.1:9/t\"}]";
    cs_buf_reset(&err);
    assert_int_equal(cs_tools_targets(&t, "sales=+15551230001", &err), 0);
    assert_int_equal(cs_tools_parse(&t, file, strlen(file), "t.json", &err), CS_ECONFIG);
    assert_string_equal(err.data, "LLM_TOOLS_FILE t.json: tool 1 (transfer): transfer is built in "
                                  "with AGENT_TRANSFER_TARGETS");
    cs_tools_free(&t);
    cs_buf_free(&err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(request_body),      cmocka_unit_test(stream_plain),
        cmocka_unit_test(stream_tool_calls), cmocka_unit_test(stream_refused),
        cmocka_unit_test(error_bodies),      cmocka_unit_test(tools_file),
        cmocka_unit_test(transfer_targets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
