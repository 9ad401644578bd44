/* A fake OpenAI-compatible chat completions server, for tests and benchmarks, written from
 * OpenAI's public reference: POST /v1/chat/completions with "stream": true is answered
 * with Server-Sent Events — a first chunk with the assistant's role, the text in
 * choices[0].delta.content pieces, tool calls in delta.tool_calls (index, id, type,
 * function.name, then function.arguments in fragments), a chunk with finish_reason
 * ("stop" or "tool_calls"), a usage chunk with no choices when
 * stream_options.include_usage was asked, then `data: [DONE]` — in a chunked answer.
 * Errors are an HTTP status with {"error":{"message","type","param","code"}}: 401 for a
 * wrong Bearer key, 400 for a request that is not a streamed chat completion, and what
 * the script says. Each request gets the next reply of a script (past its end, the last
 * again), which may also cut the stream, send a chunk that is not JSON, or never answer.
 *
 * The same server takes the agent's tool calls: POST /tools/{name}, signed as the
 * transcript webhook is (X-Callstream-Timestamp, X-Callstream-Signature: sha256= HMAC of
 * "<timestamp>.<body>"), checked with `tool_secret`. It answers 200 with `tool_result`,
 * except the tool named "fail" (500 with a JSON error) and the tool named "slow" (never).
 *
 * JSON mode (response_format {"type":"json_object"}, not streamed; its messages must say
 * "JSON", as OpenAI requires) is answered with one chat.completion whose message's content
 * is the reply's `text`; an ERROR reply is its status (429 with Retry-After when
 * `retry_after_s`), MALFORMED a body that is not JSON, STALL no answer at all. Those
 * requests (a call's summary) follow their own script, and are counted and kept apart from
 * the streamed ones (an agent's turns), so each side's numbers stay its own.
 *
 * It runs on a thread of its own; the functions below may be called from any thread. */
#ifndef CS_TEST_LLM_FAKE_H
#define CS_TEST_LLM_FAKE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"

typedef enum llm_fake_kind {
    LLM_FAKE_TEXT,      /* `text` streamed, finish_reason "stop", [DONE] */
    LLM_FAKE_TOOL,      /* `text` (may be NULL) streamed, then a call of `tool` with
                           `args` (fragments), finish_reason "tool_calls", [DONE] */
    LLM_FAKE_ERROR,     /* HTTP `status` with OpenAI's error JSON; `text` is its message */
    LLM_FAKE_CUT,       /* `text` streamed, then the connection closes mid-answer */
    LLM_FAKE_MALFORMED, /* `text` streamed, then a chunk that is not JSON */
    LLM_FAKE_STALL,     /* no token, ever: the request is not answered at all (held until
                           the client leaves or the fake is freed), or with every_ms, a
                           head then only a keep-alive comment every every_ms */
} llm_fake_kind;

typedef struct llm_fake_reply {
    llm_fake_kind kind;
    const char *text;
    const char *tool, *args; /* LLM_FAKE_TOOL */
    int status;              /* LLM_FAKE_ERROR */
    unsigned piece;          /* bytes of text per chunk (0: 4, about a token) */
    unsigned first_ms;       /* before the first chunk (the head goes at once) */
    unsigned every_ms;       /* between chunks (0: the whole answer at once) */
    bool gate;               /* stop after the first sentence's end (". ", "! ", "? ") until
                                llm_fake_release() */
    unsigned retry_after_s;  /* LLM_FAKE_ERROR: a Retry-After header (0: none) */
} llm_fake_reply;

typedef struct llm_fake_opts {
    const llm_fake_reply *script; /* must outlive the fake */
    size_t nscript;
    const llm_fake_reply *json_script; /* JSON mode's (NULL: `script`); must outlive it */
    size_t njson_script;
    const char *api_key;     /* the Bearer key expected (NULL: any, or none) */
    const char *tool_secret; /* the key tools' signatures are checked with */
    const char *tool_result; /* tools' answer (NULL: {"result":"done"}) */
} llm_fake_opts;

typedef struct llm_fake_stats {
    unsigned requests;      /* streamed chat completions asked */
    unsigned json_requests; /* chat completions asked in JSON mode (not in the others) */
    unsigned answered;      /* streamed to the end, or refused with their status (streamed) */
    unsigned left;          /* the client went away before the answer's end */
    unsigned bad_requests;  /* 400: not a streamed chat completion */
    unsigned bad_auth;      /* 401 */
    unsigned tool_calls;
    unsigned tool_bad_signatures;
} llm_fake_stats;

typedef struct llm_fake llm_fake;

/* Listens on 127.0.0.1 (a free port) on a thread of its own. 0 or a negative code. */
int llm_fake_start(llm_fake **out, const llm_fake_opts *o);
/* "http://127.0.0.1:PORT/v1", for LLM_URL. */
const char *llm_fake_url(const llm_fake *f);
/* "http://127.0.0.1:PORT/tools/<name>" into `out`. */
void llm_fake_tool_url(const llm_fake *f, const char *name, char *out, size_t cap);
/* Lets gated answers go on (now and from now on). */
void llm_fake_release(llm_fake *f);
void llm_fake_stats_get(llm_fake *f, llm_fake_stats *out);
/* The body of the k-th request (from 0; the first 1,024 are kept) into `out`: false if
 * there is none. */
bool llm_fake_request(llm_fake *f, size_t k, cs_buf *out);
/* The body of the k-th request in JSON mode. */
bool llm_fake_json_request(llm_fake *f, size_t k, cs_buf *out);
/* The body of the k-th tool call, with its tool's name. */
bool llm_fake_tool_call(llm_fake *f, size_t k, cs_buf *out, char *name, size_t cap);
/* Stops the thread, closes every connection, frees the fake. */
void llm_fake_free(llm_fake *f);

#endif
