/* libFuzzer target for the WebSocket reader. The first byte picks the role and
 * max_message, the second how the rest is split; the rest is the byte stream. Each input
 * is read whole and in pieces: invariants are checked in ws_feed.h, and both runs must
 * report the same events. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../unit/ws_feed.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t maxes[] = {0, 1, 8, 125, 1024, 65536};
    if (size < 2) return 0;
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
    return 0;
}
