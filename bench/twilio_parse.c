/* Per-message cost of Twilio's inbound `media` (the zero-copy fast path and the cJSON slow
 * path) and of writing our outbound `media` from its template.
 * Usage: bench_twilio_parse [iterations]   (default 200000)
 * Prints: twilio_parse fast_ns=… slow_ns=… write_ns=… */
#include <stdio.h>
#include <stdlib.h>

#include "core/clock.h"
#include "provider/twilio.h"
#include "provider/twilio_int.h"

#define STREAM_SID "MZ00112233445566778899aabbccddeeff"

typedef int (*parse_fn)(const char *msg, size_t len, cs_pevent *ev, cs_pscratch *scratch,
                        enum cs_bad *bad);

static cs_pscratch scratch;
static volatile size_t sink; /* keeps the results alive */

static double time_parse(parse_fn parse, const cs_buf *msg, long n)
{
    cs_pevent ev;
    enum cs_bad bad = CS_BAD_COUNT; /* stays so if the fast path does not take the message */
    uint64_t t0 = cs_mono_ns();
    for (long i = 0; i < n; i++) {
        if (parse(msg->data, msg->len, &ev, &scratch, &bad)) {
            fprintf(stderr, "twilio_parse: message refused (%s)\n", cs_bad_label(bad));
            exit(1);
        }
        sink += ev.media.len + ev.media.payload[i % ev.media.len];
    }
    return (double)(cs_mono_ns() - t0) / (double)n;
}

static double time_write(const uint8_t *frame, size_t len, long n)
{
    cs_buf out = CS_BUF_INIT(1 << 16);
    uint64_t t0 = cs_mono_ns();
    for (long i = 0; i < n; i++) {
        cs_buf_reset(&out);
        if (cs_provider_twilio.write_media(&out, CS_STR(STREAM_SID), frame, len)) exit(1);
        sink += out.len;
    }
    double ns = (double)(cs_mono_ns() - t0) / (double)n;
    cs_buf_free(&out);
    return ns;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 200000;
    if (n <= 0) {
        fprintf(stderr, "usage: %s [iterations]\n", argv[0]);
        return 2;
    }
    /* 20 ms of μ-law: 160 bytes, 216 characters of base64, as Twilio sends it */
    uint8_t frame[160];
    for (size_t i = 0; i < sizeof frame; i++) frame[i] = (uint8_t)(0xff - (i * 37) % 256);
    cs_buf msg = CS_BUF_INIT(1 << 12);
    if (cs_twilio_peer_media(&msg, STREAM_SID, 4, CS_TRACK_INBOUND, 2, 40, frame, sizeof frame))
        return 1;
    cs_pscratch_init(&scratch);

    time_parse(cs_twilio_parse_fast, &msg, n / 10 + 1); /* warm up */
    double fast = time_parse(cs_twilio_parse_fast, &msg, n);
    double slow = time_parse(cs_twilio_parse_slow, &msg, n);
    double write = time_write(frame, sizeof frame, n);
    printf("twilio_parse fast_ns=%.0f slow_ns=%.0f write_ns=%.0f\n", fast, slow, write);

    cs_pscratch_free(&scratch);
    cs_buf_free(&msg);
    return 0;
}
