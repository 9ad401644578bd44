/* TCP connections on a libuv loop, plain or TLS (OpenSSL through memory BIOs), for
 * servers and clients alike. Reads land in one loop-wide buffer and go straight to the
 * owner; only bytes the owner leaves unconsumed are copied into the connection. Writes
 * are appended to the connection's output and flushed once per loop turn, so a burst of
 * messages costs one write(). The owner sees bytes, never sockets. */
#ifndef CS_CONN_H
#define CS_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "core/buf.h"

/* ---- limits ---- */
#define CS_CONN_READ_BUF          65536    /* loop-wide read buffer */
#define CS_CONN_MAX_INPUT_DEFAULT 65536    /* unconsumed input one connection may hold */
#define CS_CONN_MAX_OUTPUT        (4u << 20) /* pending output; writes past it fail */
#define CS_CONN_CLOSE_LINGER_MS   5000     /* a graceful close waits this long for a flush */
#define CS_CONN_SWEEP_MS          1000     /* idle timeouts and deadlines are checked this often */

/* Who goes first when the net's buffered output passes its cap (lowest first). */
enum cs_conn_class {
    CS_CONN_CLASS_LISTENER = 0, /* listen-in browsers: losing one costs no call anything */
    CS_CONN_CLASS_DEFAULT = 1,  /* everything else: HTTP, media sockets, clients */
    CS_CONN_CLASS_COUNT
};

typedef struct cs_net cs_net;
typedef struct cs_conn cs_conn;

/* What a connection tells its owner. All run on the loop thread. */
typedef struct cs_conn_ops {
    /* Bytes arrived: data[0..len) holds what was left unconsumed last time followed by the
     * new bytes; it is writable (parsers unmask in place) and only valid during the call.
     * Return how many bytes were used (0..len; the rest is presented again with the next
     * bytes), or < 0 to close the connection with that error. An owner may replace
     * c->ops during the call (protocol upgrade); the rest of the bytes then go to the new
     * ops. */
    ssize_t (*on_data)(cs_conn *c, char *data, size_t len);
    /* Client connections: connected (and TLS handshake done), or failed with `status`.
     * After a failure on_close follows. May be NULL for accepted connections. */
    void (*on_connect)(cs_conn *c, int status);
    /* The connection is gone. `err` is 0 for a clean close or a negative code. Called
     * once, from a libuv close callback; the connection is freed right after. */
    void (*on_close)(cs_conn *c, int err);
    /* c->deadline_ms has passed (checked every CS_CONN_SWEEP_MS): the owner closes the
     * connection or sets a new deadline. Optional: NULL closes with -ETIMEDOUT. */
    void (*on_deadline)(cs_conn *c);
    /* The output has drained to the mark given to cs_conn_want_drain: the owner writes
     * more. Runs once per call to it, from the check phase. Optional. */
    void (*on_drain)(cs_conn *c);
} cs_conn_ops;

/* Counters for /metrics; updated on the loop thread. */
typedef struct cs_net_stats {
    uint64_t accepted;      /* connections accepted */
    uint64_t open;          /* connections open now */
    uint64_t bytes_in;      /* bytes read from sockets (before TLS) */
    uint64_t bytes_out;     /* bytes written to sockets */
    uint64_t writes;        /* write system calls */
    uint64_t tls_failures;  /* TLS handshakes that failed */
    uint64_t idle_closed;   /* connections closed for idling */
    uint64_t input_overflow; /* connections closed for holding too much input */
    uint64_t output_overflow; /* writes refused for too much pending output */
    uint64_t output_paused;   /* times reading stopped until a peer took its output */
    uint64_t buffered;        /* output bytes waiting in all connections now */
    uint64_t cap_closed[CS_CONN_CLASS_COUNT]; /* closed, by class: buffered output over cap */
} cs_net_stats;

struct cs_conn {
    /* owner's fields */
    void *data;
    const cs_conn_ops *ops;
    cs_net *net;
    char peer_ip[46];            /* numeric address of the other side */
    uint32_t idle_timeout_ms;    /* 0: none; reset by every read */
    uint64_t deadline_ms;        /* 0: none; loop time (uv_now) of ops->on_deadline */
    size_t max_input;            /* limit for input the owner saw and left unconsumed */
    enum cs_conn_class cls;      /* CS_CONN_CLASS_DEFAULT unless the owner says otherwise */
    /* Runs once when the connection is freed, after ops->on_close, whoever owns it by
     * then: the server's per-IP accounting survives protocol upgrades this way. */
    void (*untrack)(cs_conn *c);
    void *tracker;
    /* private */
    uv_tcp_t tcp;
    uv_write_t wreq;
    uv_connect_t creq;
    cs_buf in;       /* unconsumed input */
    cs_buf out;      /* output not yet written (plaintext under TLS) */
    cs_buf wire;     /* TLS: encrypted output not yet written */
    cs_buf inflight; /* output handed to uv_write */
    void *ssl;       /* SSL*, NULL for plain TCP */
    unsigned flags;
    int close_err;
    size_t output_high; /* see cs_conn_set_output_high */
    size_t held;        /* see cs_conn_set_held */
    size_t drain_mark;  /* see cs_conn_want_drain */
    size_t accounted;   /* pending and held output counted in the net's total */
    uint64_t last_read_ms;
    uint64_t out_moved_ms; /* output last empty or taken by the kernel: how slow the reader is */
    uint64_t closing_since_ms;
    cs_conn *dirty_next;
    cs_conn *prev, *next; /* all connections of the net */
};

/* ---- per-loop transport ---- */

int cs_net_new(cs_net **out, uv_loop_t *loop);
/* Frees the net; every connection must be closed and its close callback run first. */
void cs_net_free(cs_net *net);
uv_loop_t *cs_net_loop(cs_net *net);
const cs_net_stats *cs_net_stats_get(const cs_net *net);
/* TLS for accepted connections from PEM files. 0 or CS_ETLS (with the reason logged). */
int cs_net_tls_server(cs_net *net, const char *cert_file, const char *key_file);
/* TLS for client connections: verify against `ca_file` (NULL: the system store), or not
 * at all when `verify` is false. 0 or CS_ETLS. */
int cs_net_tls_client(cs_net *net, const char *ca_file, bool verify);
/* Closes every connection (graceful: output flushed first, up to the linger time). */
void cs_net_close_all(cs_net *net, bool graceful);
/* Caps the output buffered by all connections together (0, the default: no cap). A
 * write that would pass it first closes the slowest readers — lowest class first, then
 * the one whose output has waited longest — and fails only if that does not make room;
 * one larger than the cap itself fails at once, closing no one. */
void cs_net_set_output_cap(cs_net *net, size_t bytes);
/* Connections open now. */
size_t cs_net_count(const cs_net *net);

/* ---- connections ---- */

/* Takes over `fd`, a connected TCP socket (closed on failure too); TLS if `tls` (needs
 * cs_net_tls_server). The connection reads at once. 0 or a negative code. */
int cs_conn_accept(cs_net *net, int fd, bool tls, const cs_conn_ops *ops, void *data,
                   cs_conn **out);
/* Connects to host:port (a numeric address or a name resolved off the loop); `tls` uses
 * `sni` for SNI and certificate checks. ops->on_connect reports the outcome. */
int cs_conn_connect(cs_net *net, const char *host, uint16_t port, bool tls, const char *sni,
                    const cs_conn_ops *ops, void *data, cs_conn **out);

/* Appends to the output; it goes out at the end of this loop turn. -ENOBUFS past
 * CS_CONN_MAX_OUTPUT, CS_ECLOSED once closing. */
int cs_conn_write(cs_conn *c, const void *data, size_t len);
/* Room for `n` output bytes to be filled in place, then cs_conn_commit(c, n). NULL as
 * cs_conn_write would fail. */
char *cs_conn_reserve(cs_conn *c, size_t n);
void cs_conn_commit(cs_conn *c, size_t n);
/* Output bytes not yet accepted by the kernel. */
size_t cs_conn_pending(const cs_conn *c);
/* Output the owner keeps for the connection until it can be written (the rest of a large
 * answer): counted in the net's total and cap like pending output, dropped from it when
 * the connection closes. Growing it makes room as a write does. 0, -ENOBUFS or
 * CS_ECLOSED. */
int cs_conn_set_held(cs_conn *c, size_t bytes);
/* Calls ops->on_drain once the pending output is `mark` bytes or fewer (at once if it
 * is already, but never inside this call). */
void cs_conn_want_drain(cs_conn *c, size_t mark);
/* Stops or resumes reading. Input kept while paused is presented again on resume; what
 * was read before the pause is kept whatever max_input says (up to one read). */
void cs_conn_pause(cs_conn *c);
void cs_conn_resume(cs_conn *c);
/* Back-pressure for protocols that answer what they read: reading stops while more than
 * `bytes` of output wait, and resumes once they have drained to half (0: never stops). */
void cs_conn_set_output_high(cs_conn *c, size_t bytes);
/* Closes: graceful flushes pending output first (up to the linger time). `err` reaches
 * on_close. Idempotent; on_close runs later, never inside this call. */
void cs_conn_close(cs_conn *c, int err, bool graceful);
bool cs_conn_closing(const cs_conn *c);
/* Whether the peer has gone (closed or reset) while we were not reading, e.g. during a
 * slow answer: a peek at the socket, which cannot tell while unread bytes wait. */
bool cs_conn_peer_gone(const cs_conn *c);
/* Caps what the kernel buffers for sending, so backpressure shows in cs_conn_pending
 * soon (and stale data does not queue for seconds). 0 or a negative code. */
int cs_conn_set_send_buffer(cs_conn *c, int bytes);
bool cs_conn_is_tls(const cs_conn *c);

#endif
