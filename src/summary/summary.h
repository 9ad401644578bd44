/* Call summaries: once a call has ended and its live transcription has delivered its last
 * finals (refined ones included), its stored transcript goes to the chat model at LLM_URL
 * in one JSON-mode completion asking for a summary, key points, action items and the
 * caller's sentiment. The answer is checked and stored with the call (calls.summary, and
 * summary_status/summary_reason), then handed to the owner (the operator's webhook).
 * Everything runs on the loop and nothing waits: the transcript is read by the store's
 * reader, the request goes through the one HTTP client, and failures (5xx, 429, timeouts,
 * unreachable, an answer that is not the JSON asked for) are tried again with the one
 * backoff a bounded number of times. Not the LLM agent (agent/llm.c): it shares only its
 * settings (agent/chat.h). */
#ifndef CS_SUMMARY_H
#define CS_SUMMARY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/buf.h"
#include "core/config.h"
#include "net/fetch.h"
#include "store/store.h"

/* ---- limits ---- */
#define CS_SUMMARY_IN_FLIGHT    2          /* calls being summarized at once */
#define CS_SUMMARY_QUEUE_MAX    1000       /* calls waiting, in flight or retrying; more fail */
#define CS_SUMMARY_ATTEMPTS     4          /* requests for one call, at most */
#define CS_SUMMARY_RETRY_MAX_MS 60000      /* the backoff's cap, and Retry-After's */
#define CS_SUMMARY_ANSWER_MAX   (1u << 20) /* bytes of the model's answer */
#define CS_SUMMARY_REASON_MAX   256        /* bytes of a failure's reason */
#define CS_SUMMARY_TRACKED_MAX  100000     /* calls whose transcription is still open */

/* How making a call's summary went, as stored in calls.summary_status. */
#define CS_SUMMARY_PENDING   "pending"
#define CS_SUMMARY_DONE      "done"
#define CS_SUMMARY_FAILED    "failed"
#define CS_SUMMARY_NO_SPEECH "no_speech"

typedef struct cs_summary cs_summary;

/* A summary was stored: `json` is the call's summary object (as stored). */
typedef void (*cs_summary_done_fn)(void *data, const char *call_sid, const char *json);

typedef struct cs_summary_opts {
    const cs_config *cfg; /* LLM_URL, LLM_MODEL, LLM_API_KEY, SUMMARY_*; must outlive it */
    uv_loop_t *loop;
    cs_fetch *fetch; /* must outlive it */
    cs_store *store; /* must outlive it (queries answered after a free are dropped) */
    cs_summary_done_fn done;
    void *data;
} cs_summary_opts;

/* Counters for /metrics. */
typedef struct cs_summary_stats {
    uint64_t requested; /* calls queued for a summary */
    uint64_t done;      /* summaries stored */
    uint64_t failed;    /* given up: attempts spent, refused (4xx), or no room in the queue */
    uint64_t retried;   /* requests tried again */
    uint64_t skipped;   /* calls where nothing was said: no request */
    uint64_t full;      /* of those failed: CS_SUMMARY_QUEUE_MAX calls were waiting */
    uint64_t asked;     /* chat completions sent */
} cs_summary_stats;

/* ---- the summarizer ---- */

/* 0 with *out NULL when summaries are off (SUMMARY=0 or no LLM_URL); 0 with a summarizer;
 * CS_ECONFIG with a message (LLM_URL not http(s), no LLM_MODEL); -ENOMEM. */
int cs_summary_new(cs_summary **out, const cs_summary_opts *o, cs_buf *err);
/* Gives up what waits or is in flight (left "pending" in the store, taken up again by
 * cs_summary_resume at the next start) and frees it. NULL is a no-op. */
void cs_summary_free(cs_summary *s);
const cs_summary_stats *cs_summary_stats_get(const cs_summary *s);
/* Calls waiting, in flight or retrying. */
size_t cs_summary_pending(const cs_summary *s);
/* The counters in Prometheus' text format. */
void cs_summary_metrics(const cs_summary *s, cs_buf *out);

/* ---- what it is told (loop thread; NULL `s` is a no-op) ---- */

/* A transcription of the call opened (hold) or closed after its last final (release). */
void cs_summary_hold(cs_summary *s, const char *call_sid);
void cs_summary_release(cs_summary *s, const char *call_sid);
/* The call ended: its summary is made once every transcription it held is released. */
void cs_summary_call_ended(cs_summary *s, const char *call_sid);
/* Whether the call's summary is on its way here: its transcription still open, or the
 * call waiting, read, asked or retrying. */
bool cs_summary_knows(const cs_summary *s, const char *call_sid);
/* Start-up: the calls an earlier run left "pending" (it stopped first) are summarized. */
void cs_summary_resume(cs_summary *s);

/* ---- its parts, for tests and the API ---- */

/* A transcript as lines "[mm:ss.d] Caller: …" / "Agent: …" appended to `out`. */
void cs_summary_transcript(cs_buf *out, const cs_segment_row *segs, size_t n);
/* `text` fitted into `max` bytes (SUMMARY_MAX_CHARS counts bytes of UTF-8; `max` at least
 * 100): whole if it fits, else its start and its end with a marker between them saying
 * how much was left out, never splitting a UTF-8 sequence. Appended to `out`; 0 or
 * -ENOMEM/-EMSGSIZE (out's bound). */
int cs_summary_cut(cs_buf *out, const char *text, size_t len, size_t max);
/* The model's answer (a chat completion's content: a JSON object, possibly fenced in
 * ```json … ```) checked and written again to `out` as {"summary","key_points",
 * "action_items","sentiment"}. 0, or CS_EPARSE with why in `why` (cap bytes). */
int cs_summary_parse(const char *content, size_t len, cs_buf *out, char *why, size_t cap);
/* The same from a whole chat completion (choices[0].message.content). */
int cs_summary_parse_completion(const char *body, size_t len, cs_buf *out, char *why, size_t cap);

#endif
