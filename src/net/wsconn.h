/* A WebSocket over a cs_conn, either role: joins messages, answers pings, runs the
 * closing handshake, and hands whole messages to its owner. The owner embeds the
 * cs_wsconn in its own state; it stays valid until ops->on_close has run. */
#ifndef CS_WSCONN_H
#define CS_WSCONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/conn.h"
#include "net/ws.h"

#define CS_WSCONN_CLOSE_WAIT_MS 5000 /* how long we wait for the peer's close frame */
#define CS_WSCONN_MAX_HANDSHAKE 8192 /* client: largest 101 answer head we accept */

typedef struct cs_wsconn cs_wsconn;

typedef struct cs_wsconn_ops {
    /* Client role: the handshake finished; messages may be sent. */
    void (*on_open)(cs_wsconn *ws);
    /* Client role (optional): the server's answer to the upgrade, before on_open or, for
     * a refusal, before on_close. A refusal's body (its Content-Length, cut to
     * CS_WSCONN_MAX_HANDSHAKE) is waited for and passed in `body`. Views valid during the
     * call. */
    void (*on_upgrade)(cs_wsconn *ws, const cs_http_resp *resp, const char *body, size_t len);
    /* A whole text or binary message; `data` is writable and valid during the call. */
    void (*on_message)(cs_wsconn *ws, enum cs_ws_op op, char *data, size_t len);
    /* A data message over the size limit was skipped (optional). */
    void (*on_oversize)(cs_wsconn *ws, enum cs_ws_op op, uint64_t bytes);
    /* A pong arrived (optional). */
    void (*on_pong)(cs_wsconn *ws, const char *data, size_t len);
    /* Gone. `code` is the close code the peer sent, or the one we sent when we failed
     * the connection, or 1006 when the socket closed without a closing handshake; `err`
     * is the transport error (0 if none). The owner may free the cs_wsconn here. */
    void (*on_close)(cs_wsconn *ws, uint16_t code, int err);
} cs_wsconn_ops;

struct cs_wsconn {
    void *data; /* owner's */
    const cs_wsconn_ops *ops;
    cs_conn *conn;         /* NULL once closed */
    cs_ws_reader reader;
    uint16_t code;         /* close code to report */
    unsigned flags;        /* private */
    size_t reserved;       /* frame bytes between reserve and commit */
    int http_status;       /* client: the status of an upgrade the server refused */
    /* The reason in the peer's close frame, or "". */
    char close_reason[CS_WS_MAX_CONTROL - 1];
    char client_key[25];   /* client: Sec-WebSocket-Key sent */
};

/* Server: takes over `c` after the 101 answer was written. */
void cs_wsconn_attach(cs_wsconn *ws, cs_conn *c, size_t max_message, const cs_wsconn_ops *ops,
                      void *data);

/* Client: connects to a ws:// or wss:// URL and performs the handshake; `extra` is
 * preformatted header lines (or NULL). Outcome through on_open or on_close. */
int cs_wsconn_connect(cs_wsconn *ws, cs_net *net, const char *url, const char *extra,
                      size_t max_message, const cs_wsconn_ops *ops, void *data);

/* Sends one unfragmented message or control frame. CS_ECLOSED after a close was sent,
 * -ENOBUFS when the connection's output is full. */
int cs_wsconn_send(cs_wsconn *ws, enum cs_ws_op op, const void *data, size_t len);
/* Room to build a message of exactly `len` bytes in place after its frame header;
 * finish with cs_wsconn_commit. Server role only (client frames are masked). */
char *cs_wsconn_reserve(cs_wsconn *ws, enum cs_ws_op op, size_t len);
void cs_wsconn_commit(cs_wsconn *ws);
/* Starts the closing handshake; the socket closes when the peer answers (or after
 * CS_WSCONN_CLOSE_WAIT_MS). Idempotent. */
void cs_wsconn_close(cs_wsconn *ws, uint16_t code, const char *reason);
/* Closes the socket now, without a handshake (shutdown after the grace period). */
void cs_wsconn_abort(cs_wsconn *ws, int err);
/* Output not yet taken by the kernel (0 once closed). */
size_t cs_wsconn_pending(const cs_wsconn *ws);
bool cs_wsconn_open(const cs_wsconn *ws);

#endif
