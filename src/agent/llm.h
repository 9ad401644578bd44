/* AGENT=llm: a voice agent on an OpenAI-compatible chat completions API (OpenAI, Ollama,
 * llama.cpp's server, vLLM). The caller's final transcripts are the user's messages; the
 * reply streams (Server-Sent Events) into the agent's voice sentence by sentence, so the
 * first sentence plays while the rest is written; barge-in cancels the request and keeps
 * in the conversation only what the caller heard. The model may call end_call and the
 * operator's tools (LLM_TOOLS_FILE, signed POSTs). Errors get a short spoken apology and
 * an event; the call goes on. See docs/agents.md. This header is what the rest of the
 * gateway sees: the agent's counters. */
#ifndef CS_LLM_H
#define CS_LLM_H

#include <stdint.h>

#include "core/prom.h"

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
    uint64_t history_dropped;     /* old turns dropped (LLM_HISTORY_TURNS, LLM_HISTORY_CHARS) */
    uint64_t replies_cut;         /* replies longer than CS_LLM_REPLY_MAX, cut there */
    cs_hist first_token;          /* request sent → its first token, seconds */
} cs_llm_stats;

const cs_llm_stats *cs_llm_stats_get(const cs_llm *l);

#endif
