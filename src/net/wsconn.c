#include "net/wsconn.h"

#include <stdio.h>
#include <string.h>

#include "core/crypto.h"
#include "core/err.h"
#include "net/url.h"

enum {
    W_CLIENT = 1u << 0,      /* we are the client: frames we send are masked */
    W_HANDSHAKE = 1u << 1,   /* client: waiting for the 101 */
    W_CLOSE_SENT = 1u << 2,
    W_CLOSE_RECEIVED = 1u << 3,
    W_OPENED = 1u << 4,      /* the handshake completed (on_open ran or server role) */
};

static const cs_conn_ops conn_ops;
static int send_frame(cs_wsconn *ws, enum cs_ws_op op, const void *data, size_t len);

static void send_close(cs_wsconn *ws, uint16_t code, const char *reason)
{
    uint8_t payload[CS_WS_MAX_CONTROL];
    size_t n = 2;
    payload[0] = (uint8_t)(code >> 8);
    payload[1] = (uint8_t)code;
    if (reason) {
        size_t r = strlen(reason);
        if (r > sizeof payload - 2) r = sizeof payload - 2;
        memcpy(payload + 2, reason, r);
        n += r;
    }
    send_frame(ws, CS_WS_OP_CLOSE, payload, n);
    ws->flags |= W_CLOSE_SENT;
    ws->code = code;
}

/* The peer broke the protocol: say why and close without waiting for an answer. */
static void fail(cs_wsconn *ws, uint16_t code)
{
    if (!(ws->flags & W_CLOSE_SENT)) send_close(ws, code, NULL);
    ws->code = code;
    cs_conn_close(ws->conn, 0, true);
}

static int send_frame(cs_wsconn *ws, enum cs_ws_op op, const void *data, size_t len)
{
    uint8_t mask[4];
    const uint8_t *m = NULL;
    if (ws->flags & W_CLIENT) {
        cs_random(mask, 4);
        m = mask;
    }
    uint8_t head[CS_WS_MAX_HEADER];
    size_t h = cs_ws_frame_header(head, op, true, len, m);
    char *p = cs_conn_reserve(ws->conn, h + len);
    if (!p) return cs_conn_closing(ws->conn) ? CS_ECLOSED : -ENOBUFS;
    memcpy(p, head, h);
    if (len) memcpy(p + h, data, len);
    if (m) cs_ws_mask((uint8_t *)p + h, len, m, 0);
    cs_conn_commit(ws->conn, h + len);
    return 0;
}

int cs_wsconn_send(cs_wsconn *ws, enum cs_ws_op op, const void *data, size_t len)
{
    if (!ws->conn || (ws->flags & (W_CLOSE_SENT | W_HANDSHAKE))) return CS_ECLOSED;
    return send_frame(ws, op, data, len);
}

char *cs_wsconn_reserve(cs_wsconn *ws, enum cs_ws_op op, size_t len)
{
    if (!ws->conn || (ws->flags & (W_CLOSE_SENT | W_HANDSHAKE | W_CLIENT))) return NULL;
    uint8_t head[CS_WS_MAX_HEADER];
    size_t h = cs_ws_frame_header(head, op, true, len, NULL);
    char *p = cs_conn_reserve(ws->conn, h + len);
    if (!p) return NULL;
    memcpy(p, head, h);
    ws->reserved = h + len;
    return p + h;
}

void cs_wsconn_commit(cs_wsconn *ws)
{
    cs_conn_commit(ws->conn, ws->reserved);
    ws->reserved = 0;
}

void cs_wsconn_close(cs_wsconn *ws, uint16_t code, const char *reason)
{
    if (!ws->conn || (ws->flags & W_CLOSE_SENT)) return;
    if (ws->flags & W_HANDSHAKE) {
        cs_wsconn_abort(ws, 0);
        return;
    }
    send_close(ws, code, reason);
    if (ws->flags & W_CLOSE_RECEIVED) {
        cs_conn_close(ws->conn, 0, true);
    } else {
        /* Bounded wait for the peer's close frame: the idle sweep ends it. */
        ws->conn->idle_timeout_ms = CS_WSCONN_CLOSE_WAIT_MS;
    }
}

void cs_wsconn_abort(cs_wsconn *ws, int err)
{
    if (ws->conn) cs_conn_close(ws->conn, err, false);
}

size_t cs_wsconn_pending(const cs_wsconn *ws)
{
    return ws->conn ? cs_conn_pending(ws->conn) : 0;
}

bool cs_wsconn_open(const cs_wsconn *ws)
{
    return ws->conn && (ws->flags & W_OPENED) && !(ws->flags & W_CLOSE_SENT) &&
           !cs_conn_closing(ws->conn);
}

static void handle_event(cs_wsconn *ws, cs_ws_event *ev)
{
    switch (ev->type) {
    case CS_WS_EV_MESSAGE:
        if (!(ws->flags & W_CLOSE_SENT)) ws->ops->on_message(ws, ev->opcode, ev->data, ev->len);
        break;
    case CS_WS_EV_OVERSIZE:
        if (ws->ops->on_oversize) ws->ops->on_oversize(ws, ev->opcode, ev->skipped);
        break;
    case CS_WS_EV_PING:
        if (!(ws->flags & W_CLOSE_SENT)) send_frame(ws, CS_WS_OP_PONG, ev->data, ev->len);
        break;
    case CS_WS_EV_PONG:
        if (ws->ops->on_pong) ws->ops->on_pong(ws, ev->data, ev->len);
        break;
    case CS_WS_EV_CLOSE:
        ws->flags |= W_CLOSE_RECEIVED;
        snprintf(ws->close_reason, sizeof ws->close_reason, "%.*s", (int)ev->len,
                 ev->len ? ev->data : "");
        if (ws->flags & W_CLOSE_SENT) {
            cs_conn_close(ws->conn, 0, true);
        } else {
            /* Echo the peer's code (§5.5.1); 1005 means it sent none, so answer 1000. */
            uint16_t code = ev->close_code == CS_WS_CLOSE_NO_STATUS ? CS_WS_CLOSE_NORMAL
                                                                    : ev->close_code;
            cs_wsconn_close(ws, code, NULL);
        }
        ws->code = ev->close_code;
        break;
    case CS_WS_EV_NONE:
        break;
    }
}

static ssize_t handshake_data(cs_wsconn *ws, char *data, size_t len)
{
    cs_http_resp resp;
    int n = cs_http_parse_response(data, len, CS_WSCONN_MAX_HANDSHAKE, &resp);
    if (n == 0) return 0;
    if (n < 0) return CS_EPARSE;
    if (cs_ws_check_accept(&resp, ws->client_key) < 0) {
        ws->http_status = resp.status;
        /* A refusal says why in its body: wait for it, within the handshake's bound. */
        size_t body = 0;
        if (resp.has_content_length)
            body = resp.content_length < CS_WSCONN_MAX_HANDSHAKE ? (size_t)resp.content_length
                                                                 : CS_WSCONN_MAX_HANDSHAKE;
        if (len - (size_t)n < body) return 0;
        if (ws->ops->on_upgrade) ws->ops->on_upgrade(ws, &resp, data + n, body);
        return CS_EPARSE;
    }
    if (ws->ops->on_upgrade) ws->ops->on_upgrade(ws, &resp, NULL, 0);
    ws->flags &= ~W_HANDSHAKE;
    ws->flags |= W_OPENED;
    ws->conn->idle_timeout_ms = 0;
    if (ws->ops->on_open) ws->ops->on_open(ws);
    return n;
}

static ssize_t on_data(cs_conn *c, char *data, size_t len)
{
    cs_wsconn *ws = c->data;
    if (ws->flags & W_HANDSHAKE) return handshake_data(ws, data, len);
    size_t off = 0;
    while (off < len && ws->conn && !cs_conn_closing(c)) {
        cs_ws_event ev;
        ssize_t k = cs_ws_read(&ws->reader, data + off, len - off, &ev);
        if (k < 0) {
            fail(ws, ws->reader.fail_code);
            return (ssize_t)len;
        }
        if (k == 0 && ev.type == CS_WS_EV_NONE) break;
        off += (size_t)k;
        handle_event(ws, &ev);
    }
    return (ssize_t)off;
}

static void on_close(cs_conn *c, int err)
{
    cs_wsconn *ws = c->data;
    ws->conn = NULL;
    cs_ws_reader_free(&ws->reader);
    uint16_t code = ws->code;
    if (!(ws->flags & (W_CLOSE_RECEIVED | W_CLOSE_SENT))) code = CS_WS_CLOSE_ABNORMAL;
    ws->ops->on_close(ws, code, err);
}

/* Input one frame may need: a whole message, or a control frame (never skipped). */
static size_t input_max(size_t max_message)
{
    return (max_message > CS_WS_MAX_CONTROL ? max_message : CS_WS_MAX_CONTROL) + CS_WS_MAX_HEADER;
}

static const cs_conn_ops conn_ops = {
    .on_data = on_data, /* connection failures arrive through on_close */
    .on_close = on_close,
};

void cs_wsconn_attach(cs_wsconn *ws, cs_conn *c, size_t max_message, const cs_wsconn_ops *ops,
                      void *data)
{
    memset(ws, 0, sizeof *ws);
    ws->ops = ops;
    ws->data = data;
    ws->conn = c;
    ws->flags = W_OPENED;
    cs_ws_reader_init(&ws->reader, CS_WS_SERVER, max_message);
    c->max_input = input_max(max_message);
    c->ops = &conn_ops;
    c->data = ws;
}

int cs_wsconn_connect(cs_wsconn *ws, cs_net *net, const char *url, const char *extra,
                      size_t max_message, const cs_wsconn_ops *ops, void *data)
{
    cs_url u;
    if (cs_url_parse(&u, url) < 0 || (strcmp(u.scheme, "ws") != 0 && strcmp(u.scheme, "wss") != 0))
        return CS_EPARSE;
    memset(ws, 0, sizeof *ws);
    ws->ops = ops;
    ws->data = data;
    ws->flags = W_CLIENT | W_HANDSHAKE;
    cs_ws_reader_init(&ws->reader, CS_WS_CLIENT, max_message);
    cs_ws_client_key(ws->client_key);

    char host[CS_URL_MAX_HOST + 9];
    cs_url_host_header(&u, host, sizeof host);
    cs_buf req = CS_BUF_INIT(2 * CS_URL_MAX + 4096);
    int rc;
    if (u.query[0]) {
        char target[2 * CS_URL_MAX + 2];
        snprintf(target, sizeof target, "%s?%s", u.path, u.query);
        rc = cs_ws_write_client_upgrade(&req, host, target, ws->client_key, extra);
    } else {
        rc = cs_ws_write_client_upgrade(&req, host, u.path, ws->client_key, extra);
    }
    cs_conn *c = NULL;
    if (rc == 0) rc = cs_conn_connect(net, u.host, u.port, u.tls, u.host, &conn_ops, ws, &c);
    if (rc == 0) {
        ws->conn = c;
        c->max_input = input_max(max_message) + CS_WSCONN_MAX_HANDSHAKE;
        /* The request waits in the output until the connection (and TLS) is up. */
        rc = cs_conn_write(c, req.data, req.len);
        c->idle_timeout_ms = CS_WSCONN_CLOSE_WAIT_MS * 2;
    }
    cs_buf_free(&req);
    if (rc < 0) cs_ws_reader_free(&ws->reader);
    return rc;
}
