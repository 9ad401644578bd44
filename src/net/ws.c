/* RFC 6455 WebSocket codec: frame reader with message assembly and validation, frame
 * writers, opening handshake. The reader works on the caller's bytes in place; it copies
 * only the fragments of fragmented messages. No I/O and no extensions. */
#include "net/ws.h"

#include <string.h>

#include "core/base64.h"
#include "core/crypto.h"
#include "core/err.h"

/* ---- reading ---- */

void cs_ws_reader_init(cs_ws_reader *r, enum cs_ws_role role, size_t max_message)
{
    *r = (cs_ws_reader){.role = role, .max_message = max_message};
    cs_buf_init(&r->msg, max_message);
}

void cs_ws_reader_free(cs_ws_reader *r)
{
    cs_buf_free(&r->msg);
}

static ssize_t fail(cs_ws_reader *r, uint16_t code)
{
    r->fail_code = code;
    return CS_EPARSE;
}

/* Payload bytes of the data message in progress, buffered or skipped. */
static uint64_t message_len(const cs_ws_reader *r)
{
    if (!r->msg_op) return 0;
    return r->skipping ? r->skipped : r->msg.len;
}

static uint64_t hard_limit(const cs_ws_reader *r)
{
    if (r->max_message > UINT64_MAX / CS_WS_SKIP_FACTOR) return UINT64_MAX;
    return (uint64_t)r->max_message * CS_WS_SKIP_FACTOR;
}

static void end_message(cs_ws_reader *r)
{
    r->msg_op = 0;
    r->skipping = false;
    r->skipped = 0;
}

/* Drops up to `avail` bytes of the frame being skipped; reports the message once its
 * last frame is gone. */
static size_t skip(cs_ws_reader *r, size_t avail, cs_ws_event *ev)
{
    size_t n = avail < r->skip_left ? avail : (size_t)r->skip_left;
    r->skip_left -= n;
    if (r->skip_left == 0 && r->skip_fin) {
        ev->type = CS_WS_EV_OVERSIZE;
        ev->opcode = r->msg_op;
        ev->skipped = r->skipped;
        end_message(r);
    }
    return n;
}

static size_t start_skip(cs_ws_reader *r, enum cs_ws_op op, bool fin, uint64_t plen, size_t avail,
                         cs_ws_event *ev)
{
    if (!r->skipping) {
        /* What was buffered of this message is dropped with the rest. */
        r->skipped = r->msg_op ? r->msg.len : 0;
        r->skipping = true;
        cs_buf_reset(&r->msg);
    }
    if (op != CS_WS_OP_CONT) r->msg_op = op;
    r->skipped += plen;
    r->skip_left = plen;
    r->skip_fin = fin;
    return skip(r, avail, ev);
}

/* §7.4: codes a peer may put on the wire. 1004-1006 and 1015 never appear there, and
 * 1012-2999 are not defined by RFC 6455. */
static bool close_code_valid(unsigned code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) ||
           (code >= 3000 && code <= 4999);
}

static ssize_t control_frame(cs_ws_reader *r, enum cs_ws_op op, char *p, size_t n, cs_ws_event *ev)
{
    uint16_t code = CS_WS_CLOSE_NO_STATUS;
    if (op == CS_WS_OP_CLOSE && n > 0) {
        /* §5.5.1: a body starts with a two-byte code, then a UTF-8 reason. */
        if (n == 1) return fail(r, CS_WS_CLOSE_PROTOCOL);
        code = (uint16_t)((uint8_t)p[0] << 8 | (uint8_t)p[1]);
        if (!close_code_valid(code)) return fail(r, CS_WS_CLOSE_PROTOCOL);
        if (!cs_utf8_valid(p + 2, n - 2)) return fail(r, CS_WS_CLOSE_INVALID_DATA);
        p += 2;
        n -= 2;
    }
    ev->type = op == CS_WS_OP_PING   ? CS_WS_EV_PING
               : op == CS_WS_OP_PONG ? CS_WS_EV_PONG
                                     : CS_WS_EV_CLOSE;
    ev->opcode = op;
    ev->data = p;
    ev->len = n;
    if (op == CS_WS_OP_CLOSE) ev->close_code = code;
    return 0;
}

static ssize_t data_frame(cs_ws_reader *r, enum cs_ws_op op, bool fin, char *p, size_t n,
                          cs_ws_event *ev)
{
    enum cs_ws_op msg_op = op == CS_WS_OP_CONT ? (enum cs_ws_op)r->msg_op : op;
    if (msg_op == CS_WS_OP_TEXT) {
        /* Checked frame by frame so a bad first fragment fails before the rest arrives. */
        uint32_t st = op == CS_WS_OP_CONT ? r->utf8_state : CS_UTF8_ACCEPT;
        st = cs_utf8_feed(st, p, n);
        if (st == CS_UTF8_REJECT || (fin && st != CS_UTF8_ACCEPT))
            return fail(r, CS_WS_CLOSE_INVALID_DATA);
        r->utf8_state = st;
    }
    if (fin && op != CS_WS_OP_CONT) { /* the common case: served from the caller's bytes */
        ev->type = CS_WS_EV_MESSAGE;
        ev->opcode = op;
        ev->data = p;
        ev->len = n;
        return 0;
    }
    if (op != CS_WS_OP_CONT) {
        cs_buf_reset(&r->msg);
        r->msg_op = op;
    }
    if (n > 0) {
        int rc = cs_buf_append(&r->msg, p, n); /* fits: cs_ws_read checked max_message */
        if (rc < 0) {
            r->fail_code = CS_WS_CLOSE_INTERNAL;
            return rc;
        }
    }
    if (fin) {
        ev->type = CS_WS_EV_MESSAGE;
        ev->opcode = msg_op;
        ev->data = r->msg.len ? r->msg.data : p;
        ev->len = r->msg.len;
        end_message(r);
    }
    return 0;
}

ssize_t cs_ws_read(cs_ws_reader *r, char *buf, size_t len, cs_ws_event *ev)
{
    *ev = (cs_ws_event){.type = CS_WS_EV_NONE};
    if (r->fail_code) return CS_EPARSE;
    if (r->skip_left) return (ssize_t)skip(r, len, ev);
    if (len < 2) return 0;

    /* §5.2: everything checkable from the first two bytes fails before waiting for more. */
    const uint8_t *h = (const uint8_t *)buf;
    bool fin = h[0] & 0x80;
    enum cs_ws_op op = h[0] & 0x0f;
    bool masked = h[1] & 0x80;
    unsigned len7 = h[1] & 0x7f;
    bool control = op & 0x8;
    if (h[0] & 0x70) return fail(r, CS_WS_CLOSE_PROTOCOL); /* RSV: no extensions agreed */
    /* §5.1: clients mask every frame, servers none. */
    if (masked != (r->role == CS_WS_SERVER)) return fail(r, CS_WS_CLOSE_PROTOCOL);
    if (control) {
        if (op > CS_WS_OP_PONG) return fail(r, CS_WS_CLOSE_PROTOCOL);
        /* §5.5: control frames are never fragmented and carry at most 125 bytes. */
        if (!fin || len7 > CS_WS_MAX_CONTROL) return fail(r, CS_WS_CLOSE_PROTOCOL);
    } else {
        if (op > CS_WS_OP_BINARY) return fail(r, CS_WS_CLOSE_PROTOCOL);
        /* §5.4: continuations only inside a message, new messages only outside one. */
        if ((op == CS_WS_OP_CONT) != (r->msg_op != 0)) return fail(r, CS_WS_CLOSE_PROTOCOL);
    }

    size_t hlen = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + (masked ? 4 : 0);
    if (len < hlen) return 0;
    uint64_t plen = len7;
    if (len7 == 126) {
        plen = (uint64_t)h[2] << 8 | h[3];
        if (plen < 126) return fail(r, CS_WS_CLOSE_PROTOCOL); /* §5.2: minimal encoding */
    } else if (len7 == 127) {
        plen = 0;
        for (int i = 2; i < 10; i++) plen = plen << 8 | h[i];
        /* §5.2: minimal encoding, and the most significant bit is 0 */
        if (plen >> 63 || plen <= 0xffff) return fail(r, CS_WS_CLOSE_PROTOCOL);
    }

    if (!control) {
        uint64_t prior = message_len(r);
        if (plen > hard_limit(r) - prior) return fail(r, CS_WS_CLOSE_TOO_BIG);
        if (r->skipping || plen > r->max_message - prior)
            return (ssize_t)(hlen + start_skip(r, op, fin, plen, len - hlen, ev));
    }
    if (len - hlen < plen) return 0;

    char *payload = buf + hlen;
    if (masked) cs_ws_mask((uint8_t *)payload, plen, h + hlen - 4, 0);
    ssize_t rc = control ? control_frame(r, op, payload, plen, ev)
                         : data_frame(r, op, fin, payload, plen, ev);
    return rc < 0 ? rc : (ssize_t)(hlen + plen);
}

/* ---- writing ---- */

size_t cs_ws_frame_header(uint8_t *out, enum cs_ws_op op, bool fin, uint64_t len,
                          const uint8_t *mask)
{
    size_t n = 2;
    uint8_t mask_bit = mask ? 0x80 : 0;
    out[0] = (uint8_t)((fin ? 0x80 : 0) | op);
    if (len < 126) {
        out[1] = (uint8_t)(mask_bit | len);
    } else if (len <= 0xffff) {
        out[1] = mask_bit | 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        n = 4;
    } else {
        out[1] = mask_bit | 127;
        for (int i = 0; i < 8; i++) out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
        n = 10;
    }
    if (mask) {
        memcpy(out + n, mask, 4);
        n += 4;
    }
    return n;
}

void cs_ws_mask(uint8_t *data, size_t len, const uint8_t mask[4], size_t offset)
{
    uint8_t m[8];
    for (size_t i = 0; i < 8; i++) m[i] = mask[(offset + i) & 3];
    uint64_t w;
    memcpy(&w, m, 8);
    size_t i = 0;
    for (uint64_t x[2]; i + 16 <= len; i += 16) { /* two words a step: a third faster (bench) */
        memcpy(x, data + i, 16);
        x[0] ^= w;
        x[1] ^= w;
        memcpy(data + i, x, 16);
    }
    for (uint64_t x; i + 8 <= len; i += 8) {
        memcpy(&x, data + i, 8);
        x ^= w;
        memcpy(data + i, &x, 8);
    }
    for (; i < len; i++) data[i] ^= m[i & 7];
}

int cs_ws_write_frame(cs_buf *out, enum cs_ws_op op, const void *data, size_t len,
                      const uint8_t *mask)
{
    uint8_t h[CS_WS_MAX_HEADER];
    size_t hlen = cs_ws_frame_header(h, op, true, len, mask);
    if (len > out->max - out->len || hlen > out->max - out->len - len) return -EMSGSIZE;
    char *p = cs_buf_space(out, hlen + len);
    if (!p) return -ENOMEM;
    memcpy(p, h, hlen);
    if (len) memcpy(p + hlen, data, len);
    if (mask) cs_ws_mask((uint8_t *)p + hlen, len, mask, 0);
    cs_buf_commit(out, hlen + len);
    return 0;
}

int cs_ws_write_close(cs_buf *out, uint16_t code, const char *reason, const uint8_t *mask)
{
    uint8_t body[CS_WS_MAX_CONTROL];
    size_t n = 0;
    if (code != CS_WS_CLOSE_NO_STATUS) {
        size_t rlen = reason ? strlen(reason) : 0;
        if (rlen > sizeof body - 2) {
            rlen = sizeof body - 2;
            /* Cut before a whole character: a split one would fail the peer's UTF-8 check. */
            while (rlen > 0 && ((uint8_t)reason[rlen] & 0xc0) == 0x80) rlen--;
        }
        body[0] = (uint8_t)(code >> 8);
        body[1] = (uint8_t)code;
        if (rlen) memcpy(body + 2, reason, rlen);
        n = 2 + rlen;
    }
    return cs_ws_write_frame(out, CS_WS_OP_CLOSE, body, n, mask);
}

/* ---- handshake ---- */

#define KEY_LEN 24 /* base64 of a 16-byte nonce (§4.1) */

static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/* Whether any `name` header lists `token`: a list may be split over repeated headers. */
static bool header_has_token(const cs_http_header *h, size_t n, const char *name, const char *token)
{
    for (size_t i = 0; i < n; i++)
        if (cs_str_ieq(h[i].name, name) && cs_str_has_token(h[i].value, token)) return true;
    return false;
}

/* The value of a header that must appear exactly once (§11.3.1, §11.3.5); NULL if it is
 * absent or repeated. */
static const cs_str *single_header(const cs_http_header *h, size_t n, const char *name)
{
    const cs_str *found = NULL;
    for (size_t i = 0; i < n; i++) {
        if (!cs_str_ieq(h[i].name, name)) continue;
        if (found) return NULL;
        found = &h[i].value;
    }
    return found;
}

int cs_ws_check_upgrade(const cs_http_req *req, cs_str *key)
{
    if (req->method != CS_HTTP_GET || req->minor < 1) return 400;
    if (!header_has_token(req->headers, req->nheaders, "Upgrade", "websocket") ||
        !header_has_token(req->headers, req->nheaders, "Connection", "upgrade"))
        return 400;
    const cs_str *version = single_header(req->headers, req->nheaders, "Sec-WebSocket-Version");
    if (!version) return 400;
    if (!cs_str_eqz(*version, "13")) return 426; /* §4.4 */
    const cs_str *k = single_header(req->headers, req->nheaders, "Sec-WebSocket-Key");
    uint8_t nonce[CS_BASE64_DECODED_MAX(KEY_LEN)];
    if (!k || k->n != KEY_LEN || cs_base64_decode(nonce, k->p, k->n) != 16) return 400;
    *key = *k;
    return 0;
}

void cs_ws_accept_key(char out[29], cs_str key)
{
    char in[KEY_LEN + sizeof ws_guid - 1];
    size_t n = key.n < KEY_LEN ? key.n : KEY_LEN;
    if (n) memcpy(in, key.p, n);
    memcpy(in + n, ws_guid, sizeof ws_guid - 1);
    uint8_t digest[CS_SHA1_LEN];
    cs_sha1(digest, in, n + sizeof ws_guid - 1);
    out[cs_base64_encode(out, digest, sizeof digest)] = '\0';
}

int cs_ws_write_accept(cs_buf *out, cs_str key, const char *protocol)
{
    char accept[29];
    cs_ws_accept_key(accept, key);
    return cs_buf_printf(out,
                         "HTTP/1.1 101 Switching Protocols\r\n"
                         "Upgrade: websocket\r\n"
                         "Connection: Upgrade\r\n"
                         "Sec-WebSocket-Accept: %s\r\n"
                         "%s%s%s\r\n",
                         accept, protocol ? "Sec-WebSocket-Protocol: " : "",
                         protocol ? protocol : "", protocol ? "\r\n" : "");
}

void cs_ws_client_key(char out[25])
{
    uint8_t nonce[16];
    cs_random(nonce, sizeof nonce);
    out[cs_base64_encode(out, nonce, sizeof nonce)] = '\0';
}

int cs_ws_write_client_upgrade(cs_buf *out, const char *host, const char *target, const char *key,
                               const char *extra)
{
    return cs_buf_printf(out,
                         "GET %s HTTP/1.1\r\n"
                         "Host: %s\r\n"
                         "Upgrade: websocket\r\n"
                         "Connection: Upgrade\r\n"
                         "Sec-WebSocket-Key: %s\r\n"
                         "Sec-WebSocket-Version: 13\r\n"
                         "%s\r\n",
                         target, host, key, extra ? extra : "");
}

int cs_ws_check_accept(const cs_http_resp *resp, const char *key)
{
    if (resp->status != 101) return CS_EPARSE;
    if (!header_has_token(resp->headers, resp->nheaders, "Upgrade", "websocket") ||
        !header_has_token(resp->headers, resp->nheaders, "Connection", "upgrade"))
        return CS_EPARSE;
    /* §4.1: we offer no extensions, so the server may not pick one. */
    if (cs_http_header_get(resp->headers, resp->nheaders, "Sec-WebSocket-Extensions"))
        return CS_EPARSE;
    const cs_str *accept =
        cs_http_header_get(resp->headers, resp->nheaders, "Sec-WebSocket-Accept");
    char want[29];
    cs_ws_accept_key(want, cs_str_of(key));
    return accept && cs_str_eqz(*accept, want) ? 0 : CS_EPARSE;
}
