/* libFuzzer target for the WebSocket codec. The first byte picks the role and
 * max_message, the second how the rest is split; the rest is the byte stream. Each input
 * is read whole and in pieces: invariants are checked in ws_feed.h, and both runs must
 * report the same events. Then the rest is taken as a message instead: the writers frame
 * it (in fragments, masked toward a server) with a close after it, and the other side's
 * reader must give back the message whole and the close with its code and reason. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../unit/ws_feed.h"
#include "fuzz.h"

static void reader_agrees(const uint8_t *data, size_t size)
{
    static const size_t maxes[] = {0, 1, 8, 125, 1024, 65536};
    enum cs_ws_role role = data[0] & 1 ? CS_WS_CLIENT : CS_WS_SERVER;
    size_t max = maxes[(data[0] >> 1) % (sizeof maxes / sizeof *maxes)];
    uint64_t split = data[1] < 16 ? WSF_BYTES : data[1];
    cs_buf whole = CS_BUF_INIT(1 << 20), pieces = CS_BUF_INIT(1 << 20);
    wsf_run(&whole, role, max, data + 2, size - 2, WSF_WHOLE, true);
    wsf_run(&pieces, role, max, data + 2, size - 2, split, true);
    if (whole.len != pieces.len || (whole.len && memcmp(whole.data, pieces.data, whole.len))) {
        fprintf(stderr, "whole \"%s\"\npieces \"%s\"\n", whole.len ? whole.data : "",
                pieces.len ? pieces.data : "");
        abort();
    }
    cs_buf_free(&whole);
    cs_buf_free(&pieces);
}

/* Close codes a peer may send (RFC 6455 §7.4). */
static uint16_t close_code(uint8_t k)
{
    static const uint16_t codes[] = {1000, 1001, 1002, 1003, 1007, 1008,
                                     1009, 1010, 1011, 3000, 4999};
    return codes[k % (sizeof codes / sizeof *codes)];
}

static void writers_round_trip(const uint8_t *knobs, const uint8_t *p, size_t n)
{
    enum cs_ws_role reader = knobs[0] & 1 ? CS_WS_CLIENT : CS_WS_SERVER;
    static const uint8_t key[4] = {0x11, 0x9a, 0x00, 0xe7};
    const uint8_t *mask = reader == CS_WS_SERVER ? key : NULL;
    bool text = cs_utf8_valid((const char *)p, n);
    unsigned frames = 1 + knobs[1] % 4;
    cs_buf out = CS_BUF_INIT(4u << 20);
    size_t off = 0;
    for (unsigned i = 0; i < frames; i++) {
        size_t len = i + 1 == frames ? n - off : (n - off) / (frames - i);
        uint8_t h[CS_WS_MAX_HEADER];
        enum cs_ws_op op = i ? CS_WS_OP_CONT : text ? CS_WS_OP_TEXT : CS_WS_OP_BINARY;
        size_t hn = cs_ws_frame_header(h, op, i + 1 == frames, len, mask);
        fuzz_check(hn <= CS_WS_MAX_HEADER && cs_buf_append(&out, h, hn) == 0);
        size_t at = out.len;
        fuzz_check(cs_buf_append(&out, p + off, len) == 0);
        if (mask) { /* in two pieces: the second starts at its own mask offset */
            size_t half = len / 2;
            cs_ws_mask((uint8_t *)out.data + at, half, mask, 0);
            cs_ws_mask((uint8_t *)out.data + at + half, len - half, mask, half);
        }
        off += len;
        if (i == 0 && knobs[1] & 0x10) /* a control frame after the first fragment */
            fuzz_check(cs_ws_write_frame(&out, CS_WS_OP_PING, p, n < 125 ? n : 125, mask) == 0);
    }
    /* the reason: the message's text up to a NUL, cut by the writer to fit */
    char *reason = fuzz_copy(p, text ? n : 0, 1);
    uint16_t code = close_code(knobs[0] >> 1);
    fuzz_check(cs_ws_write_close(&out, code, reason, mask) == 0);

    cs_ws_reader r;
    cs_ws_reader_init(&r, reader, n);
    size_t pos = 0;
    bool got_message = false, got_close = false;
    while (!got_close) {
        cs_ws_event ev;
        ssize_t rc = cs_ws_read(&r, out.data + pos, out.len - pos, &ev);
        fuzz_check(rc > 0);
        pos += (size_t)rc;
        if (ev.type == CS_WS_EV_MESSAGE) {
            fuzz_check(!got_message && ev.opcode == (text ? CS_WS_OP_TEXT : CS_WS_OP_BINARY));
            fuzz_check(ev.len == n && (n == 0 || memcmp(ev.data, p, n) == 0));
            got_message = true;
        } else if (ev.type == CS_WS_EV_PING) {
            fuzz_check(ev.len == (n < 125 ? n : 125));
            fuzz_check(ev.len == 0 || memcmp(ev.data, p, ev.len) == 0);
        } else if (ev.type == CS_WS_EV_CLOSE) {
            size_t want = strlen(reason);
            fuzz_check(got_message && ev.close_code == code);
            fuzz_check(ev.len <= CS_WS_MAX_CONTROL - 2 && ev.len <= want &&
                       (ev.len == 0 || memcmp(ev.data, reason, ev.len) == 0));
            /* cut only when too long, and by less than one character */
            fuzz_check(want <= CS_WS_MAX_CONTROL - 2 ? ev.len == want
                                                     : ev.len + 4 > CS_WS_MAX_CONTROL - 2);
            got_close = true;
        } else {
            fuzz_check(ev.type == CS_WS_EV_NONE);
        }
    }
    fuzz_check(pos == out.len);
    cs_ws_reader_free(&r);
    free(reason);
    cs_buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) return 0;
    reader_agrees(data, size);
    writers_round_trip(data, data + 2, size - 2);
    return 0;
}
