/* Test harness for the WebSocket reader, shared by its unit test, its fuzz test and the
 * libFuzzer target: builds frames as a peer would send them, feeds a stream to a reader
 * whole or in pieces, checks the reader's invariants, and writes what it reported as one
 * line of text ("text(Hello) ping() fail(1002)") so runs can be compared. Invariant
 * failures abort. */
#ifndef CS_TEST_WS_FEED_H
#define CS_TEST_WS_FEED_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/err.h"
#include "net/ws.h"

/* ---- building frames ---- */

enum {
    WSF_FLIP_MASK = 1, /* masked toward a client, unmasked toward a server */
    WSF_LEN16 = 2,     /* 16-bit length even when 7 bits would do */
    WSF_LEN64 = 4,     /* 64-bit length even when 16 bits would do */
    WSF_LEN_MSB = 8,   /* 64-bit length with the most significant bit set */
};

/* One frame: the first header byte (FIN, RSV, opcode) and the payload; a NULL `data`
 * means `len` bytes of filler. An all-zero entry ends a list. */
typedef struct wsf_frame {
    uint8_t b0;
    const char *data;
    size_t len;
    unsigned flags;
} wsf_frame;

#define WSF_S(lit) (lit), sizeof(lit) - 1

static inline bool wsf_end(const wsf_frame *f)
{
    return !f->b0 && !f->data && !f->len && !f->flags;
}

/* Appends `f` as the peer of a `role` reader sends it: masked toward a server, with a mask
 * key derived from `key_seed`. */
static inline void wsf_build(cs_buf *out, enum cs_ws_role role, const wsf_frame *f,
                             unsigned key_seed)
{
    bool masked = (role == CS_WS_SERVER) != ((f->flags & WSF_FLIP_MASK) != 0);
    uint8_t h[CS_WS_MAX_HEADER];
    size_t n = 0;
    uint8_t mbit = masked ? 0x80 : 0;
    h[n++] = f->b0;
    if (f->len < 126 && !(f->flags & (WSF_LEN16 | WSF_LEN64 | WSF_LEN_MSB))) {
        h[n++] = (uint8_t)(mbit | f->len);
    } else if (f->len <= 0xffff && !(f->flags & (WSF_LEN64 | WSF_LEN_MSB))) {
        h[n++] = mbit | 126;
        h[n++] = (uint8_t)(f->len >> 8);
        h[n++] = (uint8_t)f->len;
    } else {
        uint64_t len = f->len | (f->flags & WSF_LEN_MSB ? 1ull << 63 : 0);
        h[n++] = mbit | 127;
        for (int i = 56; i >= 0; i -= 8) h[n++] = (uint8_t)(len >> i);
    }
    uint8_t key[4];
    for (int i = 0; i < 4; i++) key[i] = (uint8_t)(0x37 + 31 * key_seed + 71 * i);
    if (masked) {
        memcpy(h + n, key, 4);
        n += 4;
    }
    cs_buf_append(out, h, n);
    for (size_t i = 0; i < f->len; i++) {
        uint8_t c = f->data ? (uint8_t)f->data[i] : (uint8_t)('a' + i % 26);
        cs_buf_putc(out, (char)(masked ? c ^ key[i & 3] : c));
    }
}

/* Appends a list of frames ended by an all-zero entry. */
static inline void wsf_build_all(cs_buf *out, enum cs_ws_role role, const wsf_frame *f)
{
    for (unsigned i = 0; !wsf_end(&f[i]); i++) wsf_build(out, role, &f[i], i);
}

/* ---- feeding ---- */

enum { WSF_WHOLE = 0, WSF_BYTES = 1 }; /* any other split value seeds random pieces */

static inline uint64_t wsf_rand(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static inline size_t wsf_piece(uint64_t split, uint64_t *rng, size_t left)
{
    if (split == WSF_WHOLE) return left;
    size_t n = 1;
    if (split != WSF_BYTES) {
        uint64_t v = wsf_rand(rng);
        n = 1 + (v >> 8) % (v & 1 ? 16 : 600);
    }
    return n < left ? n : left;
}

static inline void wsf_check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "ws reader invariant broken: %s\n", what);
        abort();
    }
}

/* Short printable payloads verbatim, others as #length (with a digest when asked). */
static inline void wsf_put_payload(cs_buf *out, const char *p, size_t n, bool digest)
{
    bool verbatim = n <= 24;
    for (size_t i = 0; verbatim && i < n; i++)
        verbatim = (uint8_t)p[i] >= 0x20 && (uint8_t)p[i] < 0x7f;
    if (verbatim) {
        cs_buf_append(out, p, n);
        return;
    }
    cs_buf_printf(out, "#%zu", n);
    if (digest) {
        uint32_t h = 2166136261u; /* FNV-1a */
        for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)p[i]) * 16777619u;
        cs_buf_printf(out, ":%08x", h);
    }
}

static inline void wsf_put_event(cs_buf *out, const cs_ws_event *ev, bool digest)
{
    const char *op = ev->opcode == CS_WS_OP_TEXT ? "text" : "binary";
    if (out->len) cs_buf_putc(out, ' ');
    switch (ev->type) {
    case CS_WS_EV_NONE:
        return;
    case CS_WS_EV_OVERSIZE:
        cs_buf_printf(out, "oversize(%s,%llu)", op, (unsigned long long)ev->skipped);
        return;
    case CS_WS_EV_MESSAGE:
        cs_buf_printf(out, "%s(", op);
        break;
    case CS_WS_EV_PING:
        cs_buf_puts(out, "ping(");
        break;
    case CS_WS_EV_PONG:
        cs_buf_puts(out, "pong(");
        break;
    case CS_WS_EV_CLOSE:
        cs_buf_printf(out, "close(%u,", ev->close_code);
        break;
    }
    wsf_put_payload(out, ev->data, ev->len, digest);
    cs_buf_putc(out, ')');
}

/* Feeds in[0..len) to a fresh reader the way a connection does (unconsumed bytes are
 * presented again with the next piece appended) and writes the transcript into `out`.
 * `split` is WSF_WHOLE, WSF_BYTES or a seed for random piece sizes. */
static inline void wsf_run(cs_buf *out, enum cs_ws_role role, size_t max_message, const uint8_t *in,
                           size_t len, uint64_t split, bool digest)
{
    char *s = malloc(len ? len : 1);
    wsf_check(s != NULL, "test allocation");
    if (len) memcpy(s, in, len);
    cs_ws_reader r;
    cs_ws_reader_init(&r, role, max_message);
    uint64_t rng = split * 0x9e3779b97f4a7c15u | 1;
    size_t off = 0, fed = 0;
    while (fed < len) {
        fed += wsf_piece(split, &rng, len - fed);
        for (;;) {
            cs_ws_event ev;
            char *win = s + off;
            size_t avail = fed - off;
            ssize_t rc = cs_ws_read(&r, win, avail, &ev);
            if (rc < 0) {
                wsf_check(r.fail_code != 0, "failure without fail_code");
                wsf_check(ev.type == CS_WS_EV_NONE, "event with a failure");
                uint16_t code = r.fail_code;
                wsf_check(cs_ws_read(&r, win, avail, &ev) == rc && r.fail_code == code,
                          "failure not sticky");
                cs_buf_printf(out, "%sfail(%u)", out->len ? " " : "", code);
                goto done;
            }
            wsf_check((size_t)rc <= avail, "consumed more than given");
            wsf_check(rc > 0 || ev.type == CS_WS_EV_NONE, "event without consuming");
            if (ev.type != CS_WS_EV_NONE && ev.type != CS_WS_EV_OVERSIZE && ev.len > 0) {
                bool in_buf = ev.data >= win && ev.data + ev.len <= win + rc;
                bool in_reader = r.msg.data && ev.data >= r.msg.data &&
                                 ev.data + ev.len <= r.msg.data + r.msg.len;
                wsf_check(in_buf || in_reader, "event data outside both buffers");
            }
            if (ev.type != CS_WS_EV_NONE) wsf_put_event(out, &ev, digest);
            off += (size_t)rc;
            if (rc == 0) break;
        }
    }
    if (off < len) cs_buf_printf(out, "%srest(%zu)", out->len ? " " : "", len - off);
done:
    cs_ws_reader_free(&r);
    free(s);
}

#endif
