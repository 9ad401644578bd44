/* Binary audio streams (docs/protocol.md "Binary audio streams"): a source that is not a
 * telephony provider sends raw audio in binary WebSocket frames — μ-law 8 kHz, or 16-bit
 * little-endian PCM at 8 or 16 kHz — and small JSON text messages for what is not audio
 * ({"event":"dtmf","digit":"5"}, {"event":"mark","name":"…"} echoing ours). We send our
 * audio back the same way, in its format, and {"event":"mark"|"clear",…} as text.
 *
 * The codec converts at the edge: inbound frames become μ-law 8 kHz media events whose
 * timestamps count the audio received, in whole milliseconds (a part of one is held back
 * for the next frame, as is the odd byte of a PCM frame), so the call's timeline stays
 * exact whatever the frame sizes. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "audio/g711.h"
#include "audio/resample.h"
#include "core/err.h"
#include "core/json.h"
#include "provider/twilio_int.h"

#define CHUNK          512 /* samples converted at a time, on the stack */
#define INTERNAL_HZ    8000
#define SAMPLES_PER_MS (INTERNAL_HZ / 1000)

enum fmt { FMT_MULAW, FMT_PCM16 };

struct cs_pcodec {
    enum fmt fmt;
    unsigned rate;
    cs_resampler *down, *up; /* pcm16 at 16 kHz: theirs → 8 kHz, ours → theirs */
    cs_pcodec_stats *stats;
    uint64_t samples; /* μ-law samples given out as media so far */
    uint8_t odd;      /* the odd byte of the last PCM frame */
    bool has_odd;
    uint8_t held[SAMPLES_PER_MS];
    size_t nheld; /* μ-law samples of a part of a millisecond, held back */
};

static const char dtmf_digits[] = "0123456789*#ABCD";

/* ---- the codec ---- */

static void codec_free(cs_pcodec *c)
{
    if (!c) return;
    cs_resampler_free(c->down);
    cs_resampler_free(c->up);
    free(c);
}

static int codec_new(cs_pcodec **out, const char *format, unsigned rate, cs_pcodec_stats *stats)
{
    enum fmt f;
    if (strcmp(format, "mulaw") == 0 && rate == INTERNAL_HZ)
        f = FMT_MULAW;
    else if (strcmp(format, "pcm16") == 0 && (rate == 8000 || rate == 16000))
        f = FMT_PCM16;
    else
        return CS_EPARSE;
    cs_pcodec *c = calloc(1, sizeof *c);
    if (!c) return -ENOMEM;
    c->fmt = f;
    c->rate = rate;
    c->stats = stats;
    if (rate != INTERNAL_HZ) {
        int rc = cs_resampler_new(&c->down, rate, INTERNAL_HZ, CS_RESAMPLE_QUALITY);
        if (rc == 0) rc = cs_resampler_new(&c->up, INTERNAL_HZ, rate, CS_RESAMPLE_QUALITY);
        if (rc < 0) {
            codec_free(c);
            return rc;
        }
        cs_resampler_skip_zeros(c->down);
        cs_resampler_skip_zeros(c->up);
    }
    *out = c;
    return 0;
}

/* Appends μ-law samples to the event's payload (room is checked by the frame limit). */
static void put_ulaw(uint8_t *payload, size_t *len, const int16_t *pcm, size_t n)
{
    cs_ulaw_encode(payload + *len, pcm, n);
    *len += n;
}

/* PCM samples of the frame, little-endian, after the byte carried from the last one:
 * converted CHUNK at a time into μ-law at 8 kHz. */
static int pcm_in(cs_pcodec *c, const uint8_t *p, size_t len, uint8_t *payload, size_t *plen)
{
    int16_t in[CHUNK], out[CHUNK];
    size_t i = 0, total = len + c->has_odd;
    while (i + 1 < total) {
        size_t n = 0;
        for (; n < CHUNK && i + 1 < total; n++, i += 2) {
            uint8_t lo = c->has_odd && i == 0 ? c->odd : p[i - c->has_odd];
            uint8_t hi = p[i + 1 - c->has_odd];
            in[n] = (int16_t)(uint16_t)(lo | hi << 8);
        }
        if (!c->down) {
            put_ulaw(payload, plen, in, n);
            continue;
        }
        const int16_t *from = in;
        while (n) {
            size_t used = n, made = CHUNK;
            if (cs_resampler_process(c->down, from, &used, out, &made) < 0) return CS_EBACKEND;
            put_ulaw(payload, plen, out, made);
            from += used;
            n -= used;
            if (!used && !made) return CS_EBACKEND; /* no progress: never spin */
        }
    }
    if (len % 2) c->stats->odd_bytes++;
    if (total % 2 && len) c->odd = p[len - 1];
    c->has_odd = total % 2;
    return 0;
}

static int parse_binary(cs_pcodec *c, const uint8_t *frame, size_t len, cs_pevent *ev,
                        cs_pscratch *scratch, enum cs_bad *bad)
{
    if (len > CS_PCODEC_MAX_FRAME) return cs_twjson_refuse(bad, CS_BAD_OVERSIZE);
    c->stats->frames_in++;
    uint8_t *payload = scratch->payload;
    size_t n = c->nheld;
    memcpy(payload, c->held, n);
    if (c->fmt == FMT_MULAW) {
        memcpy(payload + n, frame, len);
        n += len;
    } else {
        if (c->down) c->stats->resampled++;
        if (pcm_in(c, frame, len, payload, &n) < 0) return cs_twjson_refuse(bad, CS_BAD_FIELD);
    }
    /* Whole milliseconds go out; the rest waits for the next frame. */
    c->nheld = n % SAMPLES_PER_MS;
    n -= c->nheld;
    memcpy(c->held, payload + n, c->nheld);
    cs_twjson_reset(ev, CS_PEV_MEDIA);
    ev->seq = -1;
    ev->media.track = CS_TRACK_INBOUND;
    ev->media.timestamp_ms = c->samples / SAMPLES_PER_MS;
    ev->media.payload = payload;
    ev->media.len = n;
    c->samples += n;
    return 0;
}

/* Appends `n` samples as little-endian PCM. */
static int put_pcm(cs_buf *out, const int16_t *pcm, size_t n)
{
    uint8_t *dst = (uint8_t *)cs_buf_space(out, 2 * n);
    if (!dst) return 2 * n > out->max - out->len ? -EMSGSIZE : -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        dst[2 * i] = (uint8_t)((uint16_t)pcm[i] & 0xff);
        dst[2 * i + 1] = (uint8_t)((uint16_t)pcm[i] >> 8);
    }
    cs_buf_commit(out, 2 * n);
    return 0;
}

static int write_binary(cs_pcodec *c, cs_buf *out, const uint8_t *ulaw, size_t n)
{
    size_t start = out->len;
    int rc = 0;
    if (c->fmt == FMT_MULAW) {
        rc = cs_buf_append(out, ulaw, n);
    } else {
        if (c->up) c->stats->resampled++;
        int16_t in[CHUNK], up[CHUNK];
        for (size_t i = 0; rc == 0 && i < n;) {
            size_t k = n - i < CHUNK ? n - i : CHUNK;
            cs_ulaw_decode(in, ulaw + i, k);
            i += k;
            if (!c->up) {
                rc = put_pcm(out, in, k);
                continue;
            }
            const int16_t *from = in;
            while (rc == 0 && k) {
                size_t used = k, made = CHUNK;
                if (cs_resampler_process(c->up, from, &used, up, &made) < 0 || (!used && !made))
                    rc = CS_EBACKEND;
                else
                    rc = put_pcm(out, up, made);
                from += used;
                k -= used;
            }
        }
    }
    if (rc == 0) c->stats->frames_out++;
    return cs_twjson_end_write(out, start, rc);
}

/* ---- text messages ---- */

static int parse_text(char *msg, size_t len, cs_pevent *ev, cs_pscratch *scratch, enum cs_bad *bad)
{
    cJSON_Delete(scratch->tree);
    cJSON *root = scratch->tree = cs_twjson_object_parse(msg, len);
    if (!root) return cs_twjson_refuse(bad, CS_BAD_JSON);
    cs_str event, value;
    if (!cs_twjson_req_str(root, "event", &event)) return cs_twjson_refuse(bad, CS_BAD_EVENT);
    if (cs_str_eqz(event, "dtmf")) {
        cs_twjson_reset(ev, CS_PEV_DTMF);
        if (!cs_twjson_req_str(root, "digit", &value) || value.n != 1 ||
            !memchr(dtmf_digits, value.p[0], sizeof dtmf_digits - 1))
            return cs_twjson_refuse(bad, CS_BAD_FIELD);
        ev->dtmf.digit = value.p[0];
    } else if (cs_str_eqz(event, "mark")) {
        cs_twjson_reset(ev, CS_PEV_MARK);
        if (!cs_twjson_req_str(root, "name", &value) || !value.n)
            return cs_twjson_refuse(bad, CS_BAD_FIELD);
        ev->mark.name = value;
    } else {
        return cs_twjson_refuse(bad, CS_BAD_EVENT);
    }
    ev->seq = -1;
    return 0;
}

static int write_mark(cs_buf *out, cs_str stream_id, cs_str name)
{
    (void)stream_id;
    size_t start = out->len;
    cs_json j;
    cs_json_init(&j, out);
    cs_json_obj(&j);
    cs_json_kstr(&j, "event", "mark");
    cs_json_key(&j, "name");
    cs_json_strn(&j, name.p, name.n);
    cs_json_obj_end(&j);
    return cs_twjson_end_write(out, start, cs_json_end(&j));
}

static int write_clear(cs_buf *out, cs_str stream_id)
{
    (void)stream_id;
    return cs_buf_puts(out, "{\"event\":\"clear\"}");
}

const cs_provider_ops cs_provider_binary = {
    .name = "binary",
    .parse = parse_text,
    .write_mark = write_mark,
    .write_clear = write_clear,
    .codec_new = codec_new,
    .codec_free = codec_free,
    .parse_binary = parse_binary,
    .write_binary = write_binary,
};
