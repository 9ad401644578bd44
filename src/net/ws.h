/* WebSocket codec (RFC 6455) for both roles: a reader that turns bytes into messages
 * (fragments joined, control frames surfaced, masking and UTF-8 checked, oversize data
 * messages skipped without buffering), frame writers, and the opening handshake.
 * No I/O here: the connection feeds bytes in and sends what the writers produce. */
#ifndef CS_WS_H
#define CS_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/buf.h"
#include "core/str.h"
#include "net/http.h"

/* ---- limits ---- */
#define CS_WS_MAX_HEADER  14  /* 2 + 8 (length) + 4 (mask) */
#define CS_WS_MAX_CONTROL 125 /* §5.5: control payloads */
/* A data frame or message longer than the reader's max_message is skipped; one longer
 * than max_message * CS_WS_SKIP_FACTOR fails the connection with 1009. */
#define CS_WS_SKIP_FACTOR 64

/* Opcodes (§5.2). */
enum cs_ws_op {
    CS_WS_OP_CONT = 0x0,
    CS_WS_OP_TEXT = 0x1,
    CS_WS_OP_BINARY = 0x2,
    CS_WS_OP_CLOSE = 0x8,
    CS_WS_OP_PING = 0x9,
    CS_WS_OP_PONG = 0xA,
};

/* Close codes (§7.4.1). */
enum cs_ws_close {
    CS_WS_CLOSE_NORMAL = 1000,
    CS_WS_CLOSE_GOING_AWAY = 1001,
    CS_WS_CLOSE_PROTOCOL = 1002,
    CS_WS_CLOSE_UNSUPPORTED = 1003,
    CS_WS_CLOSE_NO_STATUS = 1005, /* never sent: "the close frame had no code" */
    CS_WS_CLOSE_ABNORMAL = 1006,  /* never sent: "closed without a close frame" */
    CS_WS_CLOSE_INVALID_DATA = 1007,
    CS_WS_CLOSE_POLICY = 1008,
    CS_WS_CLOSE_TOO_BIG = 1009,
    CS_WS_CLOSE_INTERNAL = 1011,
};

/* Which side we are: a server requires masked frames, a client unmasked ones. */
enum cs_ws_role { CS_WS_SERVER = 0, CS_WS_CLIENT = 1 };

enum cs_ws_ev_type {
    CS_WS_EV_NONE = 0, /* bytes consumed, nothing to report yet */
    CS_WS_EV_MESSAGE,  /* a whole text or binary message */
    CS_WS_EV_PING,
    CS_WS_EV_PONG,
    CS_WS_EV_CLOSE,    /* peer's close frame; answer it and close */
    CS_WS_EV_OVERSIZE, /* a data message over max_message was skipped */
};

typedef struct cs_ws_event {
    enum cs_ws_ev_type type;
    enum cs_ws_op opcode; /* TEXT or BINARY for MESSAGE/OVERSIZE */
    char *data;           /* payload (unmasked); for CLOSE the reason text */
    size_t len;
    uint16_t close_code;  /* CLOSE: the peer's code, CS_WS_CLOSE_NO_STATUS if none */
    uint64_t skipped;     /* OVERSIZE: payload bytes dropped */
} cs_ws_event;

typedef struct cs_ws_reader {
    enum cs_ws_role role;
    size_t max_message;
    uint16_t fail_code; /* set when cs_ws_read fails: the close code to send */
    /* internal state */
    cs_buf msg;         /* fragments of the message being assembled */
    uint8_t msg_op;     /* opcode of that message, 0 if none */
    bool skipping;      /* the current message is over max_message */
    uint64_t skip_left; /* payload bytes of the current frame still to skip */
    uint64_t skipped;   /* total skipped in the current message */
    bool skip_fin;      /* the frame being skipped ends the message */
    uint32_t utf8_state; /* incremental UTF-8 validation across fragments */
} cs_ws_reader;

/* ---- reading ---- */

void cs_ws_reader_init(cs_ws_reader *r, enum cs_ws_role role, size_t max_message);
/* Frees the assembly buffer. Idempotent. */
void cs_ws_reader_free(cs_ws_reader *r);

/* Consumes bytes from buf[0..len), unmasking payloads in place.
 * Returns the bytes consumed (>= 0) and sets *ev; 0 with ev->type NONE means a frame is
 * incomplete (call again with more bytes, the unconsumed ones first). Returns CS_EPARSE
 * when the peer broke the protocol, with r->fail_code set: 1002 (reserved bits, unknown
 * opcode, fragmented or long control frame, wrong masking for the role, continuation
 * without a message, new message inside a fragmented one, non-minimal or 64-bit-MSB
 * length, malformed close payload or close code), 1007 (invalid UTF-8 in a text message or
 * close reason), 1009 (message beyond the skip limit); -ENOMEM with 1011 if joining
 * fragments cannot allocate. After a failure every call fails the same way.
 * ev->data points into buf (unfragmented frames) or into the reader (joined fragments),
 * valid until the next call. */
ssize_t cs_ws_read(cs_ws_reader *r, char *buf, size_t len, cs_ws_event *ev);

/* ---- writing ---- */

/* Writes a frame header for `len` payload bytes into out (room for CS_WS_MAX_HEADER);
 * `mask` is NULL for server frames, 4 bytes for client frames. Returns its length. */
size_t cs_ws_frame_header(uint8_t *out, enum cs_ws_op op, bool fin, uint64_t len,
                          const uint8_t *mask);
/* XORs data with mask, starting at mask position `offset` (so long payloads can be
 * masked in pieces). */
void cs_ws_mask(uint8_t *data, size_t len, const uint8_t mask[4], size_t offset);
/* Appends a whole unfragmented frame; with `mask` the copy is masked (the source is not
 * changed). 0, or -EMSGSIZE / -ENOMEM with `out` unchanged. */
int cs_ws_write_frame(cs_buf *out, enum cs_ws_op op, const void *data, size_t len,
                      const uint8_t *mask);
/* Appends a close frame with `code` and an optional reason (cut to fit 125 bytes, between
 * characters). CS_WS_CLOSE_NO_STATUS sends an empty close, the answer to one without a code. */
int cs_ws_write_close(cs_buf *out, uint16_t code, const char *reason, const uint8_t *mask);

/* ---- handshake (§4) ---- */

/* Checks that `req` is a valid upgrade: GET, HTTP/1.1, Upgrade: websocket, Connection
 * with "upgrade", Sec-WebSocket-Version 13, Sec-WebSocket-Key that is base64 of 16
 * bytes. Returns 0 and sets *key, or the HTTP status to refuse with: 400, or 426 for a
 * wrong version (the answer then needs "Sec-WebSocket-Version: 13"). */
int cs_ws_check_upgrade(const cs_http_req *req, cs_str *key);
/* Sec-WebSocket-Accept for the 24-character `key`: base64(SHA-1(key + GUID)), 28 chars + NUL. */
void cs_ws_accept_key(char out[29], cs_str key);
/* Appends the 101 Switching Protocols answer. `protocol` may be NULL. */
int cs_ws_write_accept(cs_buf *out, cs_str key, const char *protocol);

/* Client: a fresh random key (base64 of 16 bytes, 24 chars + NUL). */
void cs_ws_client_key(char out[25]);
/* Client: appends the upgrade request. `extra` is preformatted header lines or NULL. */
int cs_ws_write_client_upgrade(cs_buf *out, const char *host, const char *target,
                               const char *key, const char *extra);
/* Client: 0 if `resp` is 101 with Upgrade/Connection right and the accept key matching
 * `key`; CS_EPROTO-style CS_EPARSE otherwise. */
int cs_ws_check_accept(const cs_http_resp *resp, const char *key);

#endif
