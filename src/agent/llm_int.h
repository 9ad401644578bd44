/* AGENT=llm: a voice agent on an OpenAI-compatible chat completions API (OpenAI, Ollama,
 * llama.cpp's server, vLLM). The caller's final transcripts are the user's messages; the
 * reply streams (Server-Sent Events) into the agent's voice sentence by sentence, so the
 * first sentence plays while the rest is written; barge-in cancels the request and keeps
 * in the conversation only what the caller heard. The model may call end_call and the
 * operator's tools (LLM_TOOLS_FILE, signed POSTs). Errors get a short spoken apology and
 * an event; the call goes on. See docs/agents.md.
 *
 * Its parts, shared by llm.c (the agent) and llm_chat.c (OpenAI's chat completions on
 * the wire: the request, the streamed chunks, the error body); its tools are
 * agent/tools.h's. */
#ifndef CS_LLM_INT_H
#define CS_LLM_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/config.h"
#include "agent/tools.h"
#include "core/prom.h"
#include "net/sse.h"

typedef struct cs_llm cs_llm; /* settings checked at start-up, the tools, the counters */

/* Why a request failed (the caller then hears the apology). */
#define CS_LLM_FAIL_MAP(X)                                                                         \
    X(HTTP, "http")           /* an answer other than 2xx (OpenAI's error JSON read) */            \
    X(TIMEOUT, "timeout")     /* no token within LLM_TIMEOUT_MS, first or next */                  \
    X(CUT, "cut")             /* the stream ended before [DONE] */                                 \
    X(MALFORMED, "malformed") /* a chunk that is not what the API sends, or its error object */    \
    X(CONNECT, "connect")     /* no answer at all: refused, unreachable, TLS */

enum cs_llm_fail {
#define CS_LLM_FAIL_ENUM(name, label) CS_LLM_FAIL_##name,
    CS_LLM_FAIL_MAP(CS_LLM_FAIL_ENUM)
#undef CS_LLM_FAIL_ENUM
        CS_LLM_FAIL_COUNT
};
const char *cs_llm_fail_label(enum cs_llm_fail f);

/* Counters for /metrics (loop thread). */
typedef struct cs_llm_stats {
    uint64_t requests;                    /* chat completions asked (rounds, retries) */
    uint64_t replies;                     /* answered to the end */
    uint64_t failures[CS_LLM_FAIL_COUNT]; /* by kind */
    uint64_t retries;             /* a connection that failed before any answer, tried again */
    uint64_t cancelled;           /* requests cut by barge-in, the caller going on, or the end */
    uint64_t reasks;              /* of those: the caller went on speaking before anything was
                                     said; asked again with all the caller's words */
    uint64_t tool_calls;          /* the operator's tools called */
    uint64_t tool_failures;       /* of those: no 2xx answer in time (the model is told) */
    uint64_t tool_rounds_limited; /* turns that reached CS_LLM_TOOL_ROUNDS */
    uint64_t hangups;             /* end_call */
    uint64_t transfers;           /* transfer, done */
    uint64_t transfer_failures;   /* transfer, refused or not asked (the model is told) */
    uint64_t history_dropped;     /* old turns dropped (LLM_HISTORY_TURNS, LLM_HISTORY_CHARS) */
    uint64_t replies_cut;         /* replies longer than CS_LLM_REPLY_MAX, cut there */
    cs_hist first_token;          /* request sent → its first token, seconds */
} cs_llm_stats;

/* ---- limits ---- */
#define CS_LLM_ID_MAX         64           /* a tool call's id */
#define CS_LLM_CALLS_MAX      8            /* tool calls in one answer; more fail it */
#define CS_LLM_ARGS_MAX       (16u << 10)  /* one tool call's arguments */
#define CS_LLM_TOOL_ROUNDS                                                                         \
    4                                      /* answers with tool calls per turn: the next is        \
                                              asked with tool_choice "none" */
#define CS_LLM_REPLY_MAX       (16u << 10) /* text of one answer; the rest is not said */
#define CS_LLM_CALLER_MAX      (16u << 10) /* the caller's words waiting for an answer */
#define CS_LLM_MSGS_MAX        512         /* messages kept, whatever the settings */
#define CS_LLM_CHUNK_MAX       (64u << 10) /* one streamed event */
#define CS_LLM_ERROR_BODY_MAX  (16u << 10) /* an error answer read for its message */
#define CS_LLM_REQUEST_MS      120000      /* a whole answer, however it trickles */

struct cs_llm {
    const cs_config *cfg;
    char *chat_url; /* {LLM_URL}/chat/completions */
    char *auth;     /* "Authorization: Bearer …", or NULL */
    bool temperature_set;
    double temperature;
    cs_tools tools; /* end_call and the operator's */
    cs_llm_stats stats;
};

/* ---- the conversation ---- */

enum llm_role { LLM_USER, LLM_ASSISTANT, LLM_TOOL };
/* What an assistant message was, for events. */
enum llm_said { LLM_SAID_REPLY, LLM_SAID_GREETING, LLM_SAID_APOLOGY };

typedef struct llm_msg {
    enum llm_role role;
    enum llm_said said;
    cs_buf text;                     /* content */
    char *calls;                     /* assistant: its tool_calls (a JSON array), or NULL */
    char call_id[CS_LLM_ID_MAX + 1]; /* tool: the call it answers */
    uint32_t utt;                    /* assistant: the utterance saying it; 0: none */
    int64_t tokens_in, tokens_out;   /* assistant: the answer's usage, when told (else -1) */
    bool heard;                      /* text is what the caller heard of it */
    bool pending;                    /* tool: its answer has not come yet */
} llm_msg;

/* The request for `msgs` (after the system prompt); `tools`: the model may call tools
 * (else tool_choice "none"). 0 or -EMSGSIZE/-ENOMEM. */
int llm_request_body(cs_buf *out, const cs_llm *l, const llm_msg *msgs, size_t n, bool tools);

/* ---- the answer, as it streams ---- */

typedef struct llm_call {
    char id[CS_LLM_ID_MAX + 1];
    char name[CS_TOOL_NAME_MAX + 1];
    cs_buf args;
} llm_call;

typedef struct llm_stream {
    cs_sse sse;
    llm_call calls[CS_LLM_CALLS_MAX];
    size_t ncalls;
    char finish[24];                          /* finish_reason, "" until one comes */
    bool done;                                /* data: [DONE] came */
    int64_t prompt_tokens, completion_tokens; /* usage, -1 unknown */
    char error[256]; /* why it failed: the server's error message, or what was malformed */
    /* Each piece of the reply's text. */
    void (*on_text)(void *data, const char *text, size_t len);
    void *data;
} llm_stream;

void llm_stream_init(llm_stream *st, void (*on_text)(void *, const char *, size_t), void *data);
void llm_stream_free(llm_stream *st);
/* Body bytes of a 2xx answer. 0, or: CS_EPARSE (a chunk that is not a chat completion
 * chunk: the reason in st->error), -EPROTO (an error object in the stream: its message in
 * st->error), CS_ELIMIT (more than CS_LLM_CALLS_MAX calls, arguments or an event too
 * large). The stream is unusable after an error. */
int llm_stream_feed(llm_stream *st, const char *p, size_t n);
/* Whether the answer is whole: [DONE], or a finish_reason (some servers end there). */
bool llm_stream_complete(const llm_stream *st);

#endif
