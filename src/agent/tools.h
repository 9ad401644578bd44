/* The tools a conversation model may call, shared by the agents that talk to one
 * (AGENT=llm, AGENT=openai-realtime): end_call, built in; transfer, built in when
 * AGENT_TRANSFER_TARGETS names who calls may go to (the model picks a name, never a
 * number: what a caller talks it into can only reach the operator's list); and the
 * operator's from LLM_TOOLS_FILE, a JSON list of {"name", "description", "parameters"
 * (a JSON schema object), "url", "timeout_ms"}, each called with a signed POST. Read once
 * at start-up; anything wrong stops the gateway with a message naming the tool and the
 * key. */
#ifndef CS_TOOLS_H
#define CS_TOOLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/config.h"
#include "net/fetch.h"

#define CS_TOOLS_MAX        32           /* operator tools in LLM_TOOLS_FILE */
#define CS_TOOLS_FILE_MAX   (256u << 10) /* bytes of LLM_TOOLS_FILE */
#define CS_TOOL_NAME_MAX    64           /* a tool's name: [A-Za-z0-9_-], as OpenAI takes */
#define CS_TOOL_TIMEOUT_MS  5000         /* a tool's answer, unless it says timeout_ms */
#define CS_TOOL_RESULT_MAX  (16u << 10)  /* a tool's answer given to the model */
#define CS_TOOL_END_CALL    "end_call"
#define CS_TOOL_TRANSFER        "transfer"
#define CS_TRANSFER_TARGETS_MAX 32 /* in AGENT_TRANSFER_TARGETS */
#define CS_E164_MAX             16 /* '+' and 15 digits */
/* What the model is told of its end_call. */
#define CS_TOOL_END_CALL_RESULT "{\"ok\":true,\"result\":\"the call ends after your goodbye\"}"

/* An operator tool. */
typedef struct cs_tool {
    char name[CS_TOOL_NAME_MAX + 1];
    char *url;
    uint32_t timeout_ms;
} cs_tool;

/* Where the transfer tool may send a call. */
typedef struct cs_transfer_target {
    char name[CS_TOOL_NAME_MAX + 1];
    char number[CS_E164_MAX + 1];
} cs_transfer_target;

typedef struct cs_tools {
    cs_tool *tools;
    size_t n;
    cs_transfer_target targets[CS_TRANSFER_TARGETS_MAX]; /* none: no transfer tool */
    size_t ntargets;
    char *chat_json;     /* "tools" of a chat completion: [{"type":"function","function":…}] */
    char *realtime_json; /* "tools" of a Realtime session: [{"type":"function","name",…}] */
    const char *secret;  /* AGENT_WEBHOOK_SECRET, which signs the calls */
} cs_tools;

/* AGENT_TRANSFER_TARGETS and LLM_TOOLS_FILE (read here: start-up only), or end_call alone
 * without them. `control`: call control is on (transfer targets need it). 0, or
 * CS_ECONFIG with the reason in `err`. */
int cs_tools_load(cs_tools *t, const cs_config *cfg, bool control, cs_buf *err);
/* "NAME=+E164,NAME=+E164" into t->targets (before the tools are listed). 0, or
 * CS_ECONFIG with the reason in `err`. */
int cs_tools_targets(cs_tools *t, const char *spec, cs_buf *err);
/* The file's text: fills `t` (end_call first in the JSON). 0, or CS_ECONFIG with the
 * reason in `err` (naming `path` and the tool). */
int cs_tools_parse(cs_tools *t, const char *json, size_t len, const char *path, cs_buf *err);
/* end_call alone. */
int cs_tools_builtin(cs_tools *t);
/* The target a transfer call's `args` ({"to": NAME}) names, or NULL with {"error": why}
 * in `out` (emptied first). */
const cs_transfer_target *cs_tools_transfer_target(const cs_tools *t, const char *args, size_t len,
                                                   cs_buf *out);
/* An operator tool by name (never end_call or transfer), or NULL. */
const cs_tool *cs_tools_find(const cs_tools *t, const char *name);
void cs_tools_free(cs_tools *t);

/* ---- calling one ---- */

/* Who calls, for the POST's body. */
typedef struct cs_tool_caller {
    const char *call_sid, *stream_sid;
} cs_tool_caller;

/* POSTs a call of `tool`, signed with t->secret: {"call_sid", "stream_sid", "tool",
 * "call_id", "arguments"}; `args` must be a JSON object (CS_EPARSE otherwise). `on_done`
 * as cs_fetch_start's (read the answer with cs_tool_result); *req until then. */
int cs_tool_post(cs_fetch *fetch, const cs_tools *t, const cs_tool *tool, const cs_tool_caller *who,
                 const char *call_id, const char *args, size_t len,
                 void (*on_done)(void *data, const cs_fetch_result *res), void *data,
                 cs_fetch_req **req);
/* What the model is told of a tool's answer, into `out` (emptied first): its body, or
 * {"ok":true} for an empty 2xx, or {"error": why}. Whether it answered 2xx. */
bool cs_tool_result(const cs_fetch_result *res, cs_buf *out);
/* {"error": why} into `out` (emptied first). */
void cs_tool_error(cs_buf *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
