/* libFuzzer target for binary audio sources (provider/binary.c). The first byte picks the
 * format (μ-law 8 kHz, PCM 8 kHz, PCM 16 kHz) and the next ones the frame sizes; the rest
 * is audio, fed frame by frame. Properties: every frame is taken; the media given out is
 * whole milliseconds, fits the payload, and is stamped with the audio before it; μ-law
 * and PCM at 8 kHz lose nothing (all the input's samples come out, less what waits); what
 * comes out written back in the source's format is whole samples. The input is also read
 * as a text message: accepted only as a dtmf of one valid digit or a named mark. */
#include <errno.h>

#include "core/err.h"
#include "fuzz.h"
#include "provider/provider.h"

#define SIZES 4

static cs_pscratch scratch;

static void audio(const uint8_t *data, size_t size)
{
    static const char *const fmts[] = {"mulaw", "pcm16", "pcm16"};
    static const unsigned rates[] = {8000, 8000, 16000};
    if (size < 1 + SIZES) return;
    unsigned f = data[0] % 3;
    size_t sizes[SIZES];
    for (int i = 0; i < SIZES; i++) sizes[i] = (size_t)data[1 + i] * 7 + (data[1 + i] & 1);
    data += 1 + SIZES;
    size -= 1 + SIZES;
    const cs_provider_ops *ops = &cs_provider_binary;
    cs_pcodec_stats st = {0};
    cs_pcodec *c;
    fuzz_check(ops->codec_new(&c, fmts[f], rates[f], &st) == 0);
    cs_buf out = CS_BUF_INIT(1 << 22);
    uint64_t got = 0;
    for (size_t off = 0, i = 0; off < size; i++) {
        size_t n = sizes[i % SIZES] < size - off ? sizes[i % SIZES] : size - off;
        uint8_t *frame = (uint8_t *)fuzz_copy(data + off, n, 0);
        cs_pevent ev;
        enum cs_bad bad;
        fuzz_check(ops->parse_binary(c, frame, n, &ev, &scratch, &bad) == 0);
        free(frame);
        fuzz_check(ev.type == CS_PEV_MEDIA && ev.media.len % 8 == 0);
        fuzz_check(ev.media.len <= CS_PEV_MAX_PAYLOAD);
        fuzz_check(ev.media.timestamp_ms == got / 8);
        got += ev.media.len;
        cs_buf_reset(&out);
        fuzz_check(ops->write_binary(c, &out, ev.media.payload, ev.media.len) == 0);
        fuzz_check(f == 0 ? out.len == ev.media.len : out.len % 2 == 0);
        off += n;
    }
    size_t samples = f == 0 ? size : size / 2;
    if (f < 2) fuzz_check(got <= samples && samples - got < 8);
    fuzz_check(st.frames_in >= (size ? 1 : 0));
    cs_buf_free(&out);
    ops->codec_free(c);
}

static void text(const uint8_t *data, size_t size)
{
    char *msg = fuzz_copy(data, size, 0);
    cs_pevent ev;
    enum cs_bad bad;
    if (cs_provider_binary.parse(msg, size, &ev, &scratch, &bad) == 0) {
        fuzz_check(ev.type == CS_PEV_DTMF || ev.type == CS_PEV_MARK);
        if (ev.type == CS_PEV_DTMF) fuzz_check(strchr("0123456789*#ABCD", ev.dtmf.digit));
        if (ev.type == CS_PEV_MARK) fuzz_check(ev.mark.name.n > 0);
    } else {
        fuzz_check(bad == CS_BAD_JSON || bad == CS_BAD_EVENT || bad == CS_BAD_FIELD);
    }
    free(msg);
    cs_pscratch_free(&scratch);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    audio(data, size);
    text(data, size);
    return 0;
}
