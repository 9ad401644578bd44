/* HTTP/1.1 message heads (RFC 9110/9112): a strict, incremental request parser for the
 * server, a response parser for the WebSocket client (its upgrade), a chunked body
 * decoder, and writers. Parsers return views into the caller's buffer: the buffer must
 * stay unchanged while the parsed struct is used. Nothing here does I/O. */
#ifndef CS_HTTP_H
#define CS_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/str.h"

/* ---- limits ---- */
#define CS_HTTP_MAX_HEADERS      64    /* more → 431 */
#define CS_HTTP_MAX_HEAD_DEFAULT 16384 /* request line + headers + blank line; more → 431 */
#define CS_HTTP_MAX_TARGET       4096  /* request-target; longer → 414 */
#define CS_HTTP_MAX_CHUNK_LINE   256   /* chunk-size line incl. extensions; longer → 400 */

/* ---- types ---- */
enum cs_http_method {
    CS_HTTP_OTHER = 0, /* a valid token we do not route: answered 405/501 upstream */
    CS_HTTP_GET,
    CS_HTTP_HEAD,
    CS_HTTP_POST,
    CS_HTTP_PUT,
    CS_HTTP_DELETE,
    CS_HTTP_OPTIONS,
    CS_HTTP_PATCH,
};

typedef struct cs_http_header {
    cs_str name;  /* as sent (case kept) */
    cs_str value; /* leading/trailing whitespace removed */
} cs_http_header;

typedef struct cs_http_req {
    enum cs_http_method method;
    cs_str method_name;
    cs_str target; /* raw request-target, e.g. "/twilio/voice?x=1" */
    cs_str path;   /* target up to '?' (still percent-encoded) */
    cs_str query;  /* after '?', without it; empty if none */
    int minor;     /* HTTP/1.<minor>: 0 or 1 */
    cs_http_header headers[CS_HTTP_MAX_HEADERS];
    size_t nheaders;
    /* derived from the headers */
    uint64_t content_length; /* 0 when absent */
    bool has_content_length;
    bool chunked;         /* Transfer-Encoding: chunked */
    bool keep_alive;      /* 1.1 unless "Connection: close"; 1.0 only with "keep-alive" */
    bool upgrade;         /* Connection has "upgrade" and an Upgrade header is present */
    bool expect_continue; /* Expect: 100-continue */
} cs_http_req;

typedef struct cs_http_resp {
    int status;
    cs_str reason;
    int minor;
    cs_http_header headers[CS_HTTP_MAX_HEADERS];
    size_t nheaders;
    uint64_t content_length;
    bool has_content_length;
    bool chunked;
    bool keep_alive;
} cs_http_resp;

/* ---- parsing ---- */

/* Parses a request head from buf[0..len).
 * Returns the head's length in bytes (through the blank line), 0 if incomplete, or
 * CS_EPARSE / CS_ELIMIT with *status set to the answer to send: 400 (malformed, missing
 * Host on 1.1, both Content-Length and Transfer-Encoding, conflicting Content-Length,
 * obsolete line folding, bare LF), 414 (target > CS_HTTP_MAX_TARGET), 431 (head >
 * max_head or too many headers), 501 (Transfer-Encoding other than chunked),
 * 505 (version other than 1.0/1.1). An incomplete head already larger than max_head
 * fails with 431 without waiting for more. Empty lines before the request-line are
 * skipped (RFC 9112 §2.2) and counted in the length. */
int cs_http_parse_request(const char *buf, size_t len, size_t max_head, cs_http_req *req,
                          int *status);

/* Same for a response head (clients). Errors are CS_EPARSE / CS_ELIMIT. */
int cs_http_parse_response(const char *buf, size_t len, size_t max_head, cs_http_resp *resp);

/* Case-insensitive lookup; NULL if absent. With repeated headers, the first. */
const cs_str *cs_http_header_get(const cs_http_header *h, size_t n, const char *name);

/* Decoder for Transfer-Encoding: chunked bodies (RFC 9112 §7.1); extensions ignored,
 * trailers read and dropped. */
typedef struct cs_http_chunked {
    int state;          /* internal */
    uint64_t remaining; /* bytes left in the current chunk */
    size_t line_len;    /* bytes of the current size/trailer line seen */
    bool done;          /* set once the last chunk and trailers are consumed */
} cs_http_chunked;

void cs_http_chunked_init(cs_http_chunked *d);
/* Consumes encoded bytes from in[0..len), appending body bytes to `body`.
 * Returns bytes consumed (may be < len once done is set; the rest belongs to the next
 * message; at most INT_MAX per call), or CS_EPARSE (malformed) / -EMSGSIZE (body over
 * body->max, refused when the chunk's size is read). Once failed, it keeps failing. */
int cs_http_chunked_feed(cs_http_chunked *d, const char *in, size_t len, cs_buf *body);

/* ---- writing ---- */

/* Standard reason phrase ("Not Found"); "Unknown" for codes we do not know. */
const char *cs_http_reason(int status);

/* Appends "HTTP/1.1 <status> <reason>\r\n", Server, Date, Content-Type (if not NULL),
 * Content-Length (if >= 0), `extra` (preformatted "Name: value\r\n" lines, or NULL),
 * "Connection: keep-alive|close", then the blank line. */
int cs_http_write_head(cs_buf *out, int status, const char *content_type, int64_t content_length,
                       const char *extra, bool keep_alive);

#endif
