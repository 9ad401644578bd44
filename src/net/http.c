/* HTTP/1.1 heads and chunked bodies (RFC 9110/9112): strict parsers that return views
 * into the caller's buffer, and writers into a cs_buf. No I/O and no allocation in the
 * parsers; connection handling and routing live elsewhere. */
#include "net/http.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "core/err.h"
#include "net/form.h"

/* ---- character classes ---- */

enum {
    C_TOKEN = 1,  /* tchar (RFC 9110 §5.6.2): method, field-name, transfer-coding */
    C_VALUE = 2,  /* field-vchar, SP, HTAB (§5.5): field values, reason phrases */
    C_TARGET = 4, /* visible ASCII: request-target */
    C_HOST = 8,   /* uri-host and port (RFC 3986 reg-name, IP-literal, pct-encoded) */
};

/* One row per 16 byte values, starting at 0x00. */
static const unsigned char cclass[256] = {
    0,  0,  0,  0,  0,  0,  0,  0,  0,  2,  0,  0,  0,  0,  0,  0,  /* 0x00 */
    0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  /* 0x10 */
    2,  15, 6,  7,  15, 15, 15, 15, 14, 14, 15, 15, 14, 15, 15, 6,  /*  !"#$%&'()*+,-./ */
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 14, 14, 6,  14, 6,  6,  /* 0-9 :;<=>? */
    6,  15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, /* @ A-O */
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 14, 6,  14, 7,  15, /* P-Z [\]^_ */
    7,  15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, /* ` a-o */
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 6,  7,  6,  15, 0,  /* p-z {|}~ DEL */
    2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  /* 0x80 obs-text */
    2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  /* 0x90 obs-text */
    2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  /* 0xA0 obs-text */
    2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  /* 0xB0 obs-text */
    2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  /* 0xC0 obs-text */
    2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  /* 0xD0 obs-text */
    2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  /* 0xE0 obs-text */
    2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  /* 0xF0 obs-text */
};

static inline bool is(char c, int cls)
{
    return cclass[(unsigned char)c] & cls;
}

/* Index of the first byte in p[i..n) outside `cls`, or n. */
static inline size_t span(const char *p, size_t i, size_t n, int cls)
{
    while (i < n && is(p[i], cls)) i++;
    return i;
}

static inline bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static inline bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* ---- heads ---- */

/* Everything both parsers learn from the header section. */
typedef struct head {
    cs_http_header *headers;
    size_t nheaders;
    uint64_t content_length;
    bool has_content_length;
    bool chunked;
    int hosts;
    bool conn_close, conn_keep_alive, conn_upgrade;
    bool has_upgrade;
    bool expect_continue;
} head;

/* Finds the blank line that ends a head whose first line starts at `pos`, looking no
 * further than `lim`. Returns 0 with *end just past it, 0 with *end = 0 when not there
 * yet, or 400 on a bare LF (RFC 9112 §2.2: we do not accept LF alone as a line end). */
static int find_head_end(const char *buf, size_t pos, size_t lim, size_t *end)
{
    *end = 0;
    while (pos < lim) {
        const char *lf = memchr(buf + pos, '\n', lim - pos);
        if (!lf) return 0;
        size_t i = (size_t)(lf - buf);
        if (i == 0 || buf[i - 1] != '\r') return 400;
        if (i - 1 == pos) {
            *end = i + 1;
            return 0;
        }
        pos = i + 1;
    }
    return 0;
}

/* The line starting at `pos` ends at the first CR, which must be part of a CRLF (a head
 * always ends with one, so the CR exists). Returns the CR's index, or 0 for a lone CR. */
static size_t line_end(const char *buf, size_t pos, size_t end)
{
    const char *cr = memchr(buf + pos, '\r', end - pos);
    size_t i = (size_t)(cr - buf);
    return buf[i + 1] == '\n' ? i : 0;
}

/* "HTTP/1.0" or "HTTP/1.1" → *minor; 505 for another well-formed version, else 400. */
static int parse_version(cs_str v, int *minor)
{
    if (v.n != 8 || memcmp(v.p, "HTTP/", 5) != 0 || !is_digit(v.p[5]) || v.p[6] != '.' ||
        !is_digit(v.p[7]))
        return 400;
    if (v.p[5] != '1' || (v.p[7] != '0' && v.p[7] != '1')) return 505;
    *minor = v.p[7] - '0';
    return 0;
}

enum field_kind {
    F_OTHER,
    F_HOST,
    F_CONTENT_LENGTH,
    F_TRANSFER_ENCODING,
    F_CONNECTION,
    F_UPGRADE,
    F_EXPECT
};

static const struct {
    const char *name;
    size_t len; /* compared first: most fields are none of these */
    enum field_kind kind;
} known_fields[] = {
    {"host", 4, F_HOST},
    {"content-length", 14, F_CONTENT_LENGTH},
    {"transfer-encoding", 17, F_TRANSFER_ENCODING},
    {"connection", 10, F_CONNECTION},
    {"upgrade", 7, F_UPGRADE},
    {"expect", 6, F_EXPECT},
};

static enum field_kind field_kind(cs_str name)
{
    for (size_t i = 0; i < sizeof known_fields / sizeof *known_fields; i++)
        if (name.n == known_fields[i].len && cs_str_ieq(name, known_fields[i].name))
            return known_fields[i].kind;
    return F_OTHER;
}

/* Folds one field into what the head says about framing and the connection. */
static int note_field(head *h, cs_str name, cs_str value)
{
    uint64_t n;
    switch (field_kind(name)) {
    case F_HOST:
        /* RFC 9112 §3.2: an invalid Host is answered 400 */
        if (span(value.p, 0, value.n, C_HOST) != value.n) return 400;
        h->hosts++;
        break;
    case F_CONTENT_LENGTH:
        /* RFC 9110 §8.6: digits only; repeated fields must agree */
        if (cs_str_to_u64(value, UINT64_MAX, &n) != 0) return 400;
        if (h->has_content_length && n != h->content_length) return 400;
        h->content_length = n;
        h->has_content_length = true;
        break;
    case F_TRANSFER_ENCODING:
        /* chunked is the only coding we decode, and it is applied once (RFC 9112 §7) */
        if (value.n == 0) return 400;
        if (!cs_str_ieq(value, "chunked")) return 501;
        if (h->chunked) return 400;
        h->chunked = true;
        break;
    case F_CONNECTION:
        h->conn_close |= cs_str_has_token(value, "close");
        h->conn_keep_alive |= cs_str_has_token(value, "keep-alive");
        h->conn_upgrade |= cs_str_has_token(value, "upgrade");
        break;
    case F_UPGRADE:
        h->has_upgrade = true;
        break;
    case F_EXPECT:
        h->expect_continue |= cs_str_ieq(value, "100-continue");
        break;
    case F_OTHER:
        break;
    }
    return 0;
}

/* Parses the field lines from `pos` up to the blank line that ends the head at `end`. */
static int parse_fields(const char *buf, size_t pos, size_t end, head *h)
{
    while (pos < end - 2) {
        /* a line that starts with whitespace is obs-fold (RFC 9112 §5.2) */
        size_t colon = span(buf, pos, end, C_TOKEN);
        if (colon == pos || buf[colon] != ':') return 400;
        /* the head ends with CRLF, which no class holds: the scans stop before `end` */
        size_t v = colon + 1;
        while (is_ows(buf[v])) v++;
        size_t eol = span(buf, v, end, C_VALUE);
        if (buf[eol] != '\r' || buf[eol + 1] != '\n') return 400;
        size_t ve = eol;
        while (ve > v && is_ows(buf[ve - 1])) ve--;

        if (h->nheaders == CS_HTTP_MAX_HEADERS) return 431;
        cs_http_header *f = &h->headers[h->nheaders++];
        f->name = (cs_str){buf + pos, colon - pos};
        f->value = (cs_str){buf + v, ve - v};
        int st = note_field(h, f->name, f->value);
        if (st) return st;
        pos = eol + 2;
    }
    if (h->chunked && h->has_content_length) return 400; /* RFC 9112 §6.3 smuggling */
    return 0;
}

static bool keep_alive(const head *h, int minor)
{
    return !h->conn_close && (minor == 1 || h->conn_keep_alive);
}

static const struct {
    const char *name;
    enum cs_http_method method;
} methods[] = {
    {"GET", CS_HTTP_GET},     {"HEAD", CS_HTTP_HEAD},     {"POST", CS_HTTP_POST},
    {"PUT", CS_HTTP_PUT},     {"DELETE", CS_HTTP_DELETE}, {"OPTIONS", CS_HTTP_OPTIONS},
    {"PATCH", CS_HTTP_PATCH},
};

/* Methods are case-sensitive (RFC 9110 §9.1). */
static enum cs_http_method method_of(cs_str name)
{
    for (size_t i = 0; i < sizeof methods / sizeof *methods; i++)
        if (cs_str_eqz(name, methods[i].name)) return methods[i].method;
    return CS_HTTP_OTHER;
}

/* request-line = method SP request-target SP HTTP-version, in buf[pos..eol). */
static int parse_request_line(const char *buf, size_t pos, size_t eol, cs_http_req *req)
{
    size_t m = span(buf, pos, eol, C_TOKEN);
    if (m == pos || buf[m] != ' ') return 400;
    size_t t = m + 1;
    size_t te = span(buf, t, eol, C_TARGET);
    if (te == t || buf[te] != ' ') return 400;
    if (te - t > CS_HTTP_MAX_TARGET) return 414;
    int st = parse_version((cs_str){buf + te + 1, eol - te - 1}, &req->minor);
    if (st) return st;

    req->method_name = (cs_str){buf + pos, m - pos};
    req->method = method_of(req->method_name);
    req->target = (cs_str){buf + t, te - t};
    /* origin-form, or asterisk-form for OPTIONS (RFC 9112 §3.2) */
    if (buf[t] == '*') {
        if (te - t != 1 || req->method != CS_HTTP_OPTIONS) return 400;
    } else if (buf[t] != '/') {
        return 400;
    }
    const char *q = memchr(req->target.p, '?', req->target.n);
    if (q) {
        req->path = (cs_str){req->target.p, (size_t)(q - req->target.p)};
        req->query = (cs_str){q + 1, te - (size_t)(q - buf) - 1};
    } else {
        req->path = req->target;
        req->query = (cs_str){buf + te, 0};
    }
    return 0;
}

static int request_head(const char *buf, size_t len, size_t max_head, cs_http_req *req, size_t *end)
{
    if (max_head > INT_MAX) max_head = INT_MAX;
    size_t lim = len < max_head ? len : max_head;
    /* RFC 9112 §2.2: ignore empty lines before the request-line */
    size_t pos = 0;
    while (pos + 1 < lim && buf[pos] == '\r' && buf[pos + 1] == '\n') pos += 2;
    int st = find_head_end(buf, pos, lim, end);
    if (st) return st;
    if (!*end) return len >= max_head ? 431 : 0;

    size_t eol = line_end(buf, pos, *end);
    if (!eol) return 400;
    st = parse_request_line(buf, pos, eol, req);
    if (st) return st;

    head h = {.headers = req->headers};
    st = parse_fields(buf, eol + 2, *end, &h);
    if (st) return st;
    if (h.hosts > 1 || (req->minor == 1 && h.hosts == 0)) return 400;
    /* RFC 9112 §6.1: Transfer-Encoding in a 1.0 message means faulty framing */
    if (h.chunked && req->minor == 0) return 400;

    req->nheaders = h.nheaders;
    req->content_length = h.content_length;
    req->has_content_length = h.has_content_length;
    req->chunked = h.chunked;
    req->keep_alive = keep_alive(&h, req->minor);
    req->upgrade = h.conn_upgrade && h.has_upgrade;
    req->expect_continue = h.expect_continue && req->minor == 1;
    return 0;
}

int cs_http_parse_request(const char *buf, size_t len, size_t max_head, cs_http_req *req,
                          int *status)
{
    size_t end = 0;
    int st = request_head(buf, len, max_head, req, &end);
    *status = st;
    if (st == 414 || st == 431) return CS_ELIMIT;
    if (st) return CS_EPARSE;
    return (int)end;
}

/* status-line = HTTP-version SP status-code SP [ reason-phrase ]. A missing SP before an
 * empty reason is accepted: some servers omit it. */
static int parse_status_line(const char *buf, size_t pos, size_t eol, cs_http_resp *resp)
{
    if (eol - pos < 12 || buf[pos + 8] != ' ') return 400;
    if (parse_version((cs_str){buf + pos, 8}, &resp->minor)) return 400;
    const char *s = buf + pos + 9;
    if (!is_digit(s[0]) || !is_digit(s[1]) || !is_digit(s[2])) return 400;
    resp->status = (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
    if (resp->status < 100 || resp->status > 599) return 400;
    size_t r = pos + 12;
    if (r < eol && buf[r++] != ' ') return 400;
    if (span(buf, r, eol, C_VALUE) != eol) return 400;
    resp->reason = (cs_str){buf + r, eol - r};
    return 0;
}

int cs_http_parse_response(const char *buf, size_t len, size_t max_head, cs_http_resp *resp)
{
    if (max_head > INT_MAX) max_head = INT_MAX;
    size_t lim = len < max_head ? len : max_head;
    size_t end;
    if (find_head_end(buf, 0, lim, &end)) return CS_EPARSE;
    if (!end) return len >= max_head ? CS_ELIMIT : 0;

    size_t eol = line_end(buf, 0, end);
    if (!eol || parse_status_line(buf, 0, eol, resp)) return CS_EPARSE;
    head h = {.headers = resp->headers};
    int st = parse_fields(buf, eol + 2, end, &h);
    if (st) return st == 431 ? CS_ELIMIT : CS_EPARSE;

    resp->nheaders = h.nheaders;
    resp->content_length = h.content_length;
    resp->has_content_length = h.has_content_length;
    resp->chunked = h.chunked;
    resp->keep_alive = keep_alive(&h, resp->minor);
    return (int)end;
}

const cs_str *cs_http_header_get(const cs_http_header *h, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (cs_str_ieq(h[i].name, name)) return &h[i].value;
    return NULL;
}

/* ---- chunked bodies (RFC 9112 §7.1) ---- */

enum {
    CH_SIZE = 0,      /* first hex digit of chunk-size */
    CH_SIZE_MORE,     /* more digits, then BWS, ';' or CR */
    CH_SIZE_BWS,      /* whitespace before a chunk extension */
    CH_EXT,           /* chunk-ext, ignored, up to CR */
    CH_SIZE_LF,       /* LF ending the chunk-size line */
    CH_DATA,          /* `remaining` bytes of chunk-data */
    CH_DATA_CR,       /* CR after chunk-data */
    CH_DATA_LF,       /* LF after chunk-data */
    CH_TRAILER,       /* start of a trailer field line, or CR of the final CRLF */
    CH_TRAILER_NAME,  /* field-name up to ':' */
    CH_TRAILER_VALUE, /* field value up to CR */
    CH_TRAILER_LF,    /* LF ending a trailer field line */
    CH_END_LF,        /* LF of the final CRLF */
    CH_DONE,
};

void cs_http_chunked_init(cs_http_chunked *d)
{
    memset(d, 0, sizeof *d);
}

/* One byte outside chunk-data; returns the next state, or an error. */
static int chunked_byte(cs_http_chunked *d, char c, const cs_buf *body)
{
    int h;
    switch (d->state) {
    case CH_SIZE:
        if ((h = cs_url_hex(c)) < 0) return CS_EPARSE;
        d->remaining = (uint64_t)h;
        return CH_SIZE_MORE;
    case CH_SIZE_MORE:
        if ((h = cs_url_hex(c)) >= 0) {
            if (d->remaining >> 60) return CS_EPARSE;
            d->remaining = d->remaining << 4 | (uint64_t)h;
            return CH_SIZE_MORE;
        }
        if (c == '\r') return CH_SIZE_LF;
        /* fall through */
    case CH_SIZE_BWS:
        if (is_ows(c)) return CH_SIZE_BWS;
        return c == ';' ? CH_EXT : CS_EPARSE;
    case CH_EXT:
        if (c == '\r') return CH_SIZE_LF;
        return is(c, C_VALUE) ? CH_EXT : CS_EPARSE;
    case CH_SIZE_LF:
        if (c != '\n') return CS_EPARSE;
        d->line_len = 0;
        if (d->remaining == 0) return CH_TRAILER;
        /* refuse the whole chunk up front, so the outcome does not depend on splits */
        if (d->remaining > body->max - body->len) return -EMSGSIZE;
        return CH_DATA;
    case CH_DATA_CR:
        return c == '\r' ? CH_DATA_LF : CS_EPARSE;
    case CH_DATA_LF:
        return c == '\n' ? CH_SIZE : CS_EPARSE;
    case CH_TRAILER:
        if (c == '\r') return CH_END_LF;
        return is(c, C_TOKEN) ? CH_TRAILER_NAME : CS_EPARSE;
    case CH_TRAILER_NAME:
        if (c == ':') return CH_TRAILER_VALUE;
        return is(c, C_TOKEN) ? CH_TRAILER_NAME : CS_EPARSE;
    case CH_TRAILER_VALUE:
        if (c == '\r') return CH_TRAILER_LF;
        return is(c, C_VALUE) ? CH_TRAILER_VALUE : CS_EPARSE;
    case CH_TRAILER_LF:
        return c == '\n' ? CH_TRAILER : CS_EPARSE;
    case CH_END_LF:
        return c == '\n' ? CH_DONE : CS_EPARSE;
    default:
        return CS_EPARSE;
    }
}

/* Counts a byte of a size line or of the trailer section: size lines are short, the
 * trailer section is bounded like a head. */
static bool line_too_long(cs_http_chunked *d)
{
    if (d->state == CH_DATA_CR || d->state == CH_DATA_LF) return false;
    size_t max = d->state >= CH_TRAILER ? CS_HTTP_MAX_HEAD_DEFAULT : CS_HTTP_MAX_CHUNK_LINE;
    return ++d->line_len > max;
}

int cs_http_chunked_feed(cs_http_chunked *d, const char *in, size_t len, cs_buf *body)
{
    if (d->state < 0) return d->state; /* failed before: stays failed */
    if (len > INT_MAX) len = INT_MAX;
    size_t i = 0;
    while (i < len && d->state != CH_DONE) {
        if (d->state == CH_DATA) {
            size_t n = len - i;
            if (n > d->remaining) n = (size_t)d->remaining;
            int rc = cs_buf_append(body, in + i, n);
            if (rc) return d->state = rc;
            i += n;
            d->remaining -= n;
            if (d->remaining == 0) d->state = CH_DATA_CR;
            continue;
        }
        if (line_too_long(d)) return d->state = CS_EPARSE;
        d->state = chunked_byte(d, in[i++], body);
        if (d->state < 0) return d->state;
    }
    d->done = d->state == CH_DONE;
    return (int)i;
}

/* ---- writing ---- */

static const struct {
    int status;
    const char *reason;
} reasons[] = {
    {100, "Continue"},
    {101, "Switching Protocols"},
    {200, "OK"},
    {201, "Created"},
    {202, "Accepted"},
    {204, "No Content"},
    {206, "Partial Content"},
    {301, "Moved Permanently"},
    {302, "Found"},
    {303, "See Other"},
    {304, "Not Modified"},
    {307, "Temporary Redirect"},
    {308, "Permanent Redirect"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {408, "Request Timeout"},
    {409, "Conflict"},
    {410, "Gone"},
    {411, "Length Required"},
    {412, "Precondition Failed"},
    {413, "Content Too Large"},
    {414, "URI Too Long"},
    {415, "Unsupported Media Type"},
    {416, "Range Not Satisfiable"},
    {417, "Expectation Failed"},
    {422, "Unprocessable Content"},
    {426, "Upgrade Required"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
    {505, "HTTP Version Not Supported"},
};

const char *cs_http_reason(int status)
{
    for (size_t i = 0; i < sizeof reasons / sizeof *reasons; i++)
        if (reasons[i].status == status) return reasons[i].reason;
    return "Unknown";
}

/* IMF-fixdate (RFC 9110 §5.6.7), formatted at most once a second per thread. */
static const char *imf_date(void)
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    static _Thread_local char text[96]; /* 29 used; sized for -Wformat-truncation */
    static _Thread_local time_t at = -1;
    time_t now = (time_t)(cs_wall_ms() / 1000);
    if (now != at) {
        struct tm tm;
        gmtime_r(&now, &tm);
        snprintf(text, sizeof text, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday],
                 tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                 tm.tm_sec);
        at = now;
    }
    return text;
}

/* Drops a half-written message so `out` is left as it was. */
static int undo(cs_buf *out, size_t mark, int rc)
{
    if (rc && out->data) {
        out->len = mark;
        out->data[mark] = '\0';
    }
    return rc;
}

int cs_http_write_head(cs_buf *out, int status, const char *content_type, int64_t content_length,
                       const char *extra, bool keep_alive)
{
    size_t mark = out->len;
    int rc = cs_buf_printf(out, "HTTP/1.1 %d %s\r\nServer: callstream\r\nDate: %s\r\n", status,
                           cs_http_reason(status), imf_date());
    if (!rc && content_type) rc = cs_buf_printf(out, "Content-Type: %s\r\n", content_type);
    if (!rc && content_length >= 0)
        rc = cs_buf_printf(out, "Content-Length: %lld\r\n", (long long)content_length);
    if (!rc && extra) rc = cs_buf_puts(out, extra);
    if (!rc)
        rc = cs_buf_puts(out, keep_alive ? "Connection: keep-alive\r\n\r\n"
                                         : "Connection: close\r\n\r\n");
    return undo(out, mark, rc);
}
