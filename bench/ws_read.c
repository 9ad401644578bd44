/* WebSocket reader cost per inbound Twilio media frame: masked 372-byte text frames (a
 * media message with 20 ms of mu-law as 216 base64 characters) are read from a buffer the
 * way a connection reads them, header parsed, payload unmasked and UTF-8 checked in place.
 * Usage: bench_ws_read [frames]. Prints one line:
 *   ws_read frames=1000000 frame_bytes=372 ns_per_frame=41.3 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base64.h"
#include "core/buf.h"
#include "core/clock.h"
#include "net/ws.h"

#define BATCH 1000 /* frames per refill of the input buffer */

/* Reads BATCH frames from `work`; returns the nanoseconds spent, or 0 on a wrong result. */
static uint64_t read_batch(cs_ws_reader *r, char *work, size_t total, size_t payload_len)
{
    uint64_t t0 = cs_mono_ns();
    size_t off = 0;
    for (int i = 0; i < BATCH; i++) {
        cs_ws_event ev;
        ssize_t rc = cs_ws_read(r, work + off, total - off, &ev);
        if (rc <= 0 || ev.type != CS_WS_EV_MESSAGE || ev.len != payload_len) return 0;
        off += (size_t)rc;
    }
    return cs_mono_ns() - t0;
}

int main(int argc, char **argv)
{
    long frames = argc > 1 ? atol(argv[1]) : 1000000;
    if (frames < BATCH) frames = BATCH;

    uint8_t audio[160];
    for (size_t i = 0; i < sizeof audio; i++) audio[i] = (uint8_t)(0xff - i % 23);
    char payload[CS_BASE64_ENCODED_LEN(sizeof audio) + 1];
    payload[cs_base64_encode(payload, audio, sizeof audio)] = '\0';
    char json[512];
    int n =
        snprintf(json, sizeof json,
                 "{\"event\":\"media\",\"sequenceNumber\":\"1234\",\"media\":{\"chunk\":\"1233\","
                 "\"timestamp\":\"24660\",\"payload\":\"%s\"},"
                 "\"streamSid\":\"MZ18ad3ab5a668481ce02b83e7395059f0\"}",
                 payload);
    static const uint8_t mask[4] = {0x5a, 0x13, 0xc7, 0x81};
    cs_buf frame = CS_BUF_INIT(1024);
    if (cs_ws_write_frame(&frame, CS_WS_OP_TEXT, json, (size_t)n, mask) != 0) return 1;

    size_t total = frame.len * BATCH;
    char *pristine = malloc(total), *work = malloc(total);
    if (!pristine || !work) return 1;
    for (size_t i = 0; i < BATCH; i++) memcpy(pristine + i * frame.len, frame.data, frame.len);

    cs_ws_reader r;
    cs_ws_reader_init(&r, CS_WS_SERVER, 64 * 1024);
    uint64_t ns = 0;
    long done = -BATCH; /* the first batch warms up and is not counted */
    for (; done < frames; done += BATCH) {
        memcpy(work, pristine, total); /* fresh masked bytes, as a socket read leaves them */
        uint64_t t = read_batch(&r, work, total, (size_t)n);
        if (!t) {
            fputs("ws_read: the reader did not return the expected messages\n", stderr);
            return 1;
        }
        if (done >= 0) ns += t;
    }
    printf("ws_read frames=%ld frame_bytes=%zu ns_per_frame=%.1f\n", done, frame.len,
           (double)ns / (double)done);
    cs_ws_reader_free(&r);
    cs_buf_free(&frame);
    free(pristine);
    free(work);
    return 0;
}
