/* HTTP/1.1 server: listeners, connection limits (in total and per IP), reading requests
 * (head, then a body by Content-Length or chunked, both bounded in size and in time),
 * routing to handlers, keep-alive, and WebSocket upgrades. A handler may answer later
 * (after a store query): its connection reads nothing more until it does, and if the
 * peer leaves meanwhile the answer is simply dropped. Nor does a connection read while
 * its answers wait for the peer to take them; a large one goes out in pieces as the peer
 * takes them, its body held under the net's output cap. Slow clients cannot hold the
 * slots: a head has a deadline, a body a minimum rate, heads per address a limit of their
 * own, and a new connection finding every slot taken closes the oldest unfinished head. */
#ifndef CS_SERVER_H
#define CS_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/quota.h"
#include "core/str.h"
#include "net/conn.h"
#include "net/http.h"
#include "net/wsconn.h"

#define CS_ROUTE_MAX_PARAMS 4 /* {} segments in one pattern */
/* Unsent answers past which a connection reads no more requests; also the largest
 * answer queued whole. */
#define CS_SERVER_OUTPUT_HIGH     (CS_CONN_MAX_OUTPUT / 4)
/* A larger answer's body is held (counted in the net's output cap) and written this much
 * at a time as the peer takes it, so an answer of any size fits a connection's output. */
#define CS_SERVER_STREAM_CHUNK    (256u << 10)
#define CS_SERVER_ACCEPT_RETRY_MS 250 /* listeners rest this long after accept() fails */

typedef struct cs_server cs_server;
typedef struct cs_request cs_request;

typedef void (*cs_handler_fn)(cs_request *r);

typedef struct cs_route {
    enum cs_http_method method; /* CS_HTTP_OTHER: any method */
    const char *pattern;        /* "/api/v1/calls/{}": {} is one path segment; a final
                                   "{*}" takes the rest of the path */
    cs_handler_fn fn;
} cs_route;

typedef struct cs_server_quota cs_server_quota;

typedef struct cs_server_limits {
    size_t max_connections;  /* in total; more are closed at once */
    size_t max_per_ip;       /* from one address */
    size_t max_head;         /* request line + headers */
    size_t max_body;         /* request body (413 above) */
    uint32_t idle_ms;        /* keep-alive connection with no request in progress */
    uint32_t head_ms;        /* a head must be whole this long after its first byte, or
                                after accept for TLS's first head (408 after; 0: no limit);
                                also the grace before body_min_rate */
    uint32_t body_min_rate;  /* bytes/s a body must average, after head_ms (0: no limit) */
    size_t max_heads_per_ip; /* connections from one address waiting for or reading a
                                head (0: no limit) */
    bool reuse_port;         /* SO_REUSEPORT: the servers of several loops share the address */
    cs_server_quota *quota;  /* connections counted with the process's other servers (its
                                loops), whose limits it holds; NULL: the server's own */
} cs_server_limits;

/* What the servers of one process count together: MAX_CONNECTIONS and the per-address
 * limits are the process's, whichever loop accepted a connection. */
struct cs_server_quota {
    cs_quota connections;
    cs_quota_addrs addrs;
};

/* From `lim`'s max_connections, max_per_ip and max_heads_per_ip. */
void cs_server_quota_init(cs_server_quota *q, const cs_server_limits *lim);
/* Every server using it must have been freed. */
void cs_server_quota_free(cs_server_quota *q);

typedef struct cs_server_stats {
    uint64_t requests;
    uint64_t responses[6];      /* by class: [1] 1xx … [5] 5xx */
    uint64_t bad_requests;      /* refused by the parser */
    uint64_t rejected_total;    /* connections over max_connections */
    uint64_t rejected_per_ip;   /* connections over max_per_ip */
    uint64_t rejected_heads_per_ip; /* connections over max_heads_per_ip */
    uint64_t head_timeouts;         /* closed with 408: head not whole within head_ms */
    uint64_t body_timeouts;         /* closed with 408: body slower than body_min_rate */
    uint64_t heads_evicted;         /* closed to make room: the oldest unfinished head */
    uint64_t answers_too_large;     /* no room in the output (MAX_OUTPUT_BYTES): 500 instead */
    uint64_t accept_errors;         /* accept() failures (out of descriptors, …) */
    uint64_t accept_paused;         /* 1 while listeners rest after such a failure */
    uint64_t upgrades;
} cs_server_stats;

struct cs_request {
    cs_server *server;
    void *app;                 /* the server's app pointer */
    cs_conn *conn;             /* NULL if the peer left before the answer */
    cs_http_req head;          /* views into the request's own copy of the head */
    cs_str params[CS_ROUTE_MAX_PARAMS]; /* what the route's {} matched, in order */
    size_t nparams;
    char user[64];             /* who is asking, once the application checked */
    cs_buf body;
    uint64_t started_ns;
    /* private */
    char *head_buf;
    void *hconn;
    int64_t body_owed; /* of a streamed answer's Content-Length, not written yet */
};

/* `routes` must outlive the server. */
int cs_server_new(cs_server **out, cs_net *net, const cs_route *routes, size_t nroutes,
                  const cs_server_limits *limits, void *app);
/* Listens on host:port (host may be "0.0.0.0" or "::"); `tls` needs cs_net_tls_server.
 * 0 or a negative code. May be called for several addresses. */
int cs_server_listen(cs_server *s, const char *host, int port, bool tls);
/* The port actually bound by the first listener (useful with port 0). */
int cs_server_port(const cs_server *s);
/* Stops accepting; open connections go on. */
void cs_server_stop_listening(cs_server *s);
/* Frees the server; its listeners must be stopped and every connection it accepted
 * closed (their close callbacks run) first. */
void cs_server_free(cs_server *s);
const cs_server_stats *cs_server_stats_get(const cs_server *s);
size_t cs_server_connections(const cs_server *s);

/* ---- answering (loop thread) ---- */

/* Sends the answer and ends the request. `extra` is preformatted header lines or NULL.
 * HEAD requests get the head only. */
void cs_respond(cs_request *r, int status, const char *content_type, const void *body, size_t len,
                const char *extra);
/* JSON answer with `json` as the body. */
void cs_respond_json(cs_request *r, int status, const cs_buf *json);
/* {"error":{"status":404,"message":"…"}} */
void cs_respond_error(cs_request *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Streamed answers (files): the head now, the body in pieces, then the end. */
int cs_respond_begin(cs_request *r, int status, const char *content_type, int64_t len,
                     const char *extra);
/* Body bytes; -ENOBUFS while the peer is slow (retry after cs_respond_wait), CS_ECLOSED
 * if it left (then still call cs_respond_end). */
int cs_respond_write(cs_request *r, const void *data, size_t len);
/* Bytes of the answer the peer has not taken yet. */
size_t cs_respond_pending(const cs_request *r);
/* `fn(data)` runs once those are `mark` or fewer, or the peer has left (cs_respond_write
 * then says CS_ECLOSED); never inside this call. One wait at a time. 0, or CS_ECLOSED if
 * the peer has left already (fn will not run). */
int cs_respond_wait(cs_request *r, size_t mark, void (*fn)(void *data), void *data);
/* Ends the answer; one that wrote less than its length ends the connection too. */
void cs_respond_end(cs_request *r);
/* Upgrades to a WebSocket: checks the handshake (answering 400/426 itself if it is
 * wrong), writes 101 and attaches `ws` to the connection. Ends the request either way.
 * 0 or a negative code. */
int cs_request_upgrade(cs_request *r, cs_wsconn *ws, size_t max_message, const cs_wsconn_ops *ops,
                       void *data);
/* Case-insensitive header lookup. */
const cs_str *cs_request_header(const cs_request *r, const char *name);

#endif
