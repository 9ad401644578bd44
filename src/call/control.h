/* Call control: place a call, hang up, redirect to TwiML or a URL, transfer (<Dial>),
 * fork a one-way stream and stop it. Asynchronous on the loop: each request goes to the
 * provider's REST half (provider/rest.h) through the one HTTP client (net/fetch.h), and
 * its result comes back by callback. Hanging up a live call also closes our side of its
 * streams. The API, the agents and the fallback all come here; none of them names the
 * provider. */
#ifndef CS_CONTROL_H
#define CS_CONTROL_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "call/call.h"
#include "net/fetch.h"
#include "provider/rest.h"

/* ---- limits ---- */
#define CS_CONTROL_MAX_PENDING  256   /* requests in flight (with their retries); more: CS_EFULL */
#define CS_CONTROL_MAX_ANSWER   65536 /* a provider's answer, buffered */
#define CS_CONTROL_RETRIES      3     /* connections refused retried, at most */
#define CS_CONTROL_RETRY_MIN_MS 200
#define CS_CONTROL_RETRY_MAX_MS 2000

/* What call control needs, for messages. */
#define CS_CONTROL_SETTINGS                                                                        \
    "TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN (or TWILIO_API_KEY and TWILIO_API_SECRET)"

typedef struct cs_control cs_control;
typedef struct cs_control_op cs_control_op; /* one request in flight */

typedef struct cs_control_opts {
    cs_fetch *fetch; /* the loop's HTTP client; must outlive the control */
    const cs_rest_ops *rest;
    cs_rest_creds creds;   /* strings must outlive the control */
    uint32_t timeout_ms;   /* a request's whole time; 0: 10 s */
    uint32_t retry_min_ms; /* 0: CS_CONTROL_RETRY_MIN_MS */
    uint32_t retry_max_ms; /* 0: CS_CONTROL_RETRY_MAX_MS */
    cs_calls *calls;       /* live calls: hang-ups close their streams; NULL: none */
} cs_control_opts;

/* Counters for /metrics. */
typedef struct cs_control_stats {
    uint64_t requests[CS_REST_OP_COUNT]; /* asked, by operation */
    uint64_t failed;                     /* ended in error (refused, unreachable, timed out) */
    uint64_t retries;                    /* connections refused, tried again */
    uint64_t full;                       /* refused: CS_CONTROL_MAX_PENDING in flight */
} cs_control_stats;

/* How a request ended: 0; CS_EBACKEND, the provider refused (res->http_status, code,
 * message); or the transport's error (-ECONNREFUSED after the retries, -ETIMEDOUT, …;
 * res->http_status 0, res->message says what). -EINVAL: the request could not be built
 * (res->message). `res` is valid during the call. Never called from inside the function
 * that started the request. */
typedef void (*cs_control_cb)(void *data, int err, const cs_rest_result *res);

/* 0 or -ENOMEM; -EINVAL without fetch or rest. */
int cs_control_new(cs_control **out, uv_loop_t *loop, const cs_control_opts *o);
/* Ends what is in flight (callbacks with CS_ECLOSED) and frees the control once its timer has
 * closed (run the loop). NULL is a no-op. */
void cs_control_free(cs_control *c);
const cs_control_stats *cs_control_stats_get(const cs_control *c);
size_t cs_control_pending(const cs_control *c);

/* ---- requests ---- */

/* Sends `req` (copied as built). *out (may be NULL) is the request until its callback
 * returns. Errors with no callback: -EINVAL (res->message in `why`, may be NULL, cap
 * CS_REST_MESSAGE_MAX + 1), CS_EFULL, -ENOMEM. A connection refused (nothing was sent)
 * is retried with backoff; nothing else is, so a call is never placed twice. */
int cs_control_send(cs_control *c, const cs_rest_req *req, cs_control_cb cb, void *data,
                    cs_control_op **out, char *why);
/* Transfers a live call: <Dial>number</Dial> as its new TwiML. */
int cs_control_transfer(cs_control *c, const char *call_sid, const char *number, cs_control_cb cb,
                        void *data, cs_control_op **out, char *why);
/* No callback after this. NULL is a no-op. */
void cs_control_cancel(cs_control_op *op);

/* Records the `control` event of a request on call `call_sid`: {"action", "by", "to",
 * "name", "reason" (each when given), "state": "done" or "failed" (then the provider's
 * "http_status", "code" and "message")}. */
void cs_control_event(cs_calls *calls, const char *call_sid, enum cs_rest_op op, const char *by,
                      const char *to, const char *name, const char *reason, int err,
                      const cs_rest_result *res);

#endif
