/* What the LLM agent and the call summaries share of an OpenAI-compatible chat completions
 * API: the endpoint and its credential, from LLM_URL and LLM_API_KEY, and the message an
 * error answer carries. The wire of each (streamed or JSON mode) stays with its user. */
#ifndef CS_CHAT_H
#define CS_CHAT_H

#include <stddef.h>

#include "core/buf.h"
#include "core/config.h"
#include "core/json.h"

/* {LLM_URL}/chat/completions (a URL already ending so is taken whole) into *url and
 * "Authorization: Bearer LLM_API_KEY" into *auth (NULL without a key); the caller frees
 * both. 0, or CS_ECONFIG with a message (not http(s), a key with a line break). */
int cs_chat_endpoint(const cs_config *cfg, char **url, char **auth, cs_buf *err);

/* Opens a chat completion's request in `j`: {"model":…,"messages":[{"role":"system",
 * "content":…} — the caller adds its messages, closes the array, adds its options and
 * closes the object. */
void cs_chat_request_begin(cs_json *j, const char *model, const char *system);

/* The message of an error answer: OpenAI's {"error":{"message":…}} (with its type or
 * code), else the start of the body. */
void cs_chat_error_message(const char *body, size_t len, char *out, size_t cap);

#endif
