/* Outbound HTTP: libcurl's multi interface driven by the libuv loop (curl_multi_socket_action
 * with a uv_poll_t per socket and one uv_timer_t), for webhooks, the simulator and the
 * agents' APIs and recordings other nodes hold. Answers are buffered (bounded) or streamed
 * as they arrive (a stream can be paused while its receiver is slow); a request can be
 * cancelled at any time; connections are kept alive and reused across the requests of one
 * cs_fetch. Proxies come from the environment as curl reads it (http_proxy, https_proxy,
 * no_proxy). Everything runs on the loop thread and nothing here blocks it: names are
 * resolved by curl's threaded resolver (CURL_VERSION_ASYNCHDNS, checked at open), and a
 * request cancelled during a lookup leaves it to finish on that thread. Not for WebSockets
 * (net/wsconn.h) nor for serving (net/server.h). */
#ifndef CS_FETCH_H
#define CS_FETCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* ---- limits ---- */
#define CS_FETCH_MAX_BODY_DEFAULT   (1u << 20) /* buffered answers, when opts.max_body is 0 */
#define CS_FETCH_CONNECT_TIMEOUT_MS 10000      /* when opts.connect_timeout_ms is 0 */
#define CS_FETCH_MAX_REQUESTS       4096       /* in flight per cs_fetch; more are refused */
#define CS_FETCH_MAX_IDLE_CONNS     32         /* idle connections kept for reuse */
#define CS_FETCH_MAX_REDIRECTS      10         /* opts.max_redirects is capped here */

#define CS_FETCH_PAUSE 1 /* on_data: not now (cs_fetch_resume) */

typedef struct cs_fetch cs_fetch;         /* one per loop: the multi handle, its timer and polls */
typedef struct cs_fetch_req cs_fetch_req; /* one request in flight */

/* How a request ended, for on_done. Views valid during the call. */
typedef struct cs_fetch_result {
    int status;       /* HTTP status of the answer; 0 when no answer head came */
    const char *body; /* the buffered body (NUL-terminated); NULL when streaming or failed */
    size_t len;
    /* 0, or < 0: -ETIMEDOUT (whole request or idle), -ECONNREFUSED (or the connect's
     * errno), UV_EAI_NONAME (no such name), CS_ETLS, CS_ECLOSED (no answer, or one cut
     * short), -EMSGSIZE (over max_body), -EPROTO (not HTTP, or a redirect to another
     * protocol), CS_ELIMIT (too many redirects), on_data's own error, CS_EBACKEND (else) */
    int err;
    const char *reason; /* a short explanation when err < 0 (curl's message or ours), else "" */
    int64_t retry_after_s; /* the answer's Retry-After in seconds (a date counts from now);
                              -1: none */
} cs_fetch_result;

typedef struct cs_fetch_opts {
    const char *method;         /* NULL: GET, or POST when there is a body */
    const char *url;            /* http:// or https:// */
    const char *const *headers; /* "Name: value" lines, without CR or LF */
    size_t nheaders;
    const void *body; /* copied; NULL: none */
    size_t len;
    uint32_t timeout_ms;         /* the whole request; 0: none */
    uint32_t connect_timeout_ms; /* 0: CS_FETCH_CONNECT_TIMEOUT_MS */
    uint32_t idle_timeout_ms;    /* no byte received for this long (from the start, or the
                                    last byte): -ETIMEDOUT; 0: none. For streams. */
    size_t max_body;             /* buffering: larger answers fail (-EMSGSIZE); 0: default */
    unsigned max_redirects;      /* redirects followed (http and https only); 0: none, the
                                    3xx is the answer */
    /* Streaming: body bytes as they arrive, the status known by then. Return < 0 to stop:
     * the request ends with that error; CS_FETCH_PAUSE to take none of these bytes now:
     * the request waits (its idle timeout too) and they come again after cs_fetch_resume.
     * NULL: the body is buffered and given to on_done. */
    int (*on_data)(void *data, int status, const char *p, size_t n);
    /* Optional: each line of the answer's head as it arrives (the status line first),
     * without its CRLF; the blank line that ends it too. */
    void (*on_header)(void *data, const char *line, size_t n);
    /* Exactly once, unless the request was cancelled; never from inside cs_fetch_start. The
     * request is gone once it returns. */
    void (*on_done)(void *data, const cs_fetch_result *res);
    void *data;
} cs_fetch_opts;

/* Counters for /metrics; loop thread. */
typedef struct cs_fetch_stats {
    uint64_t requests;    /* started */
    uint64_t answered;    /* ended with a whole answer (any status) */
    uint64_t failed;      /* ended with an error, timeouts and answers too large included */
    uint64_t timeouts;    /* of those: the whole request or idle time ran out */
    uint64_t too_large;   /* of those: a buffered answer over max_body */
    uint64_t cancelled;   /* cancelled before their end (cs_fetch_cancel, cs_fetch_close) */
    uint64_t refused;     /* not started: CS_FETCH_MAX_REQUESTS in flight */
    uint64_t connections; /* new connections made (fewer than requests: keep-alive) */
} cs_fetch_stats;

/* ---- the client ---- */

/* A client on `loop`. 0, -ENOMEM or CS_EBACKEND (curl cannot start, or would resolve
 * names on the loop thread). */
int cs_fetch_open(cs_fetch **out, uv_loop_t *loop);
/* Cancels every request (no callbacks), closes the connections and frees the client once
 * its handles have closed (run the loop). Safe with requests in flight and from inside
 * on_data or on_done. NULL is a no-op. */
void cs_fetch_close(cs_fetch *f);
/* TLS for the requests started after it: trust `ca_file` (PEM; NULL: the system store), or
 * verify nothing when `verify` is false. Verification is on by default. 0 or -ENOMEM. */
int cs_fetch_tls(cs_fetch *f, const char *ca_file, bool verify);
/* Requests in flight. */
size_t cs_fetch_count(const cs_fetch *f);
const cs_fetch_stats *cs_fetch_stats_get(const cs_fetch *f);

/* ---- requests ---- */

/* Starts a request; `o` and what it points to need not outlive the call (copied), but
 * o->data must stay valid until on_done or cancel. On success *out (may be NULL) is the
 * request, valid until on_done returns or cs_fetch_cancel. Errors, with no callback:
 * CS_EPARSE (a URL that is not http(s), a header with CR or LF), CS_ECLOSED (closing),
 * CS_EFULL (CS_FETCH_MAX_REQUESTS in flight), -ENOMEM. */
int cs_fetch_start(cs_fetch *f, const cs_fetch_opts *o, cs_fetch_req **out);
/* Whether cs_fetch_start takes `url`: an absolute http:// or https:// URL. */
bool cs_fetch_url_ok(const char *url);
/* A request paused by its on_data takes bytes again (on_data may run inside this call;
 * on_done never does). Not from inside this client's callbacks. NULL, or a request not
 * paused, is a no-op. */
void cs_fetch_resume(cs_fetch_req *r);
/* Ends the request: no callback after this. Safe from inside any callback of this
 * client, this request's on_data included. NULL is a no-op. */
void cs_fetch_cancel(cs_fetch_req *r);

#endif
