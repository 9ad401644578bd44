/* Sample-rate conversion on speexdsp: a thin streaming wrapper, and a whole-buffer
 * converter whose output lines up sample for sample with its input. Mono 16-bit only;
 * no mixing or channel handling here. */
#include "audio/resample.h"

#include <stdlib.h>
#include <string.h>

#include <speex/speex_resampler.h>

#include "core/err.h"

struct cs_resampler {
    SpeexResamplerState *st;
};

int cs_resampler_new(cs_resampler **out, unsigned in_rate, unsigned out_rate, int quality)
{
    cs_resampler *r = malloc(sizeof *r);
    if (!r) return -ENOMEM;
    r->st = speex_resampler_init(1, in_rate, out_rate, quality, NULL);
    if (!r->st) {
        free(r);
        return CS_EBACKEND;
    }
    *out = r;
    return 0;
}

void cs_resampler_free(cs_resampler *r)
{
    if (!r) return;
    speex_resampler_destroy(r->st);
    free(r);
}

int cs_resampler_process(cs_resampler *r, const int16_t *in, size_t *in_n, int16_t *out,
                         size_t *out_n)
{
    /* speexdsp counts in 32 bits: a larger request is simply a partial conversion. */
    spx_uint32_t ilen = *in_n > UINT32_MAX ? UINT32_MAX : (spx_uint32_t)*in_n;
    spx_uint32_t olen = *out_n > UINT32_MAX ? UINT32_MAX : (spx_uint32_t)*out_n;
    int err = speex_resampler_process_int(r->st, 0, in, &ilen, out, &olen);
    *in_n = ilen;
    *out_n = olen;
    return err == RESAMPLER_ERR_SUCCESS ? 0 : CS_EBACKEND;
}

size_t cs_resampler_latency(const cs_resampler *r)
{
    return (size_t)speex_resampler_get_input_latency(r->st);
}

void cs_resampler_skip_zeros(cs_resampler *r)
{
    speex_resampler_skip_zeros(r->st);
}

/* Without forming the n * out_rate product. */
size_t cs_resample_len(size_t n, unsigned in_rate, unsigned out_rate)
{
    uint64_t whole = (uint64_t)(n / in_rate) * out_rate;
    uint64_t part = ((uint64_t)(n % in_rate) * out_rate + in_rate / 2) / in_rate;
    return (size_t)(whole + part);
}

/* Room for n samples (at least one, so that success always means a pointer to free). */
static int16_t *alloc_samples(size_t n)
{
    if (n > SIZE_MAX / sizeof(int16_t)) return NULL;
    return malloc((n ? n : 1) * sizeof(int16_t));
}

int cs_resample_all(const int16_t *in, size_t n, unsigned in_rate, unsigned out_rate, int16_t **out,
                    size_t *out_n)
{
    int16_t *buf;
    if (in_rate == out_rate) {
        if (!(buf = alloc_samples(n))) return -ENOMEM;
        if (n) memcpy(buf, in, n * sizeof *buf);
        *out = buf;
        *out_n = n;
        return 0;
    }

    cs_resampler *r;
    int rc = cs_resampler_new(&r, in_rate, out_rate, CS_RESAMPLE_QUALITY);
    if (rc < 0) return rc;
    size_t want = cs_resample_len(n, in_rate, out_rate);
    if (!(buf = alloc_samples(want))) {
        cs_resampler_free(r);
        return -ENOMEM;
    }

    /* Starting past the filter's zero history centres output sample k on input time
     * k * in_rate / out_rate; zeros fed after the input push out the last samples. */
    cs_resampler_skip_zeros(r);
    size_t used = 0, got = 0;
    while (rc == 0 && got < want) {
        const int16_t *src = used < n ? in + used : NULL;
        size_t ilen = src ? n - used : cs_resampler_latency(r);
        size_t olen = want - got;
        rc = cs_resampler_process(r, src, &ilen, buf + got, &olen);
        if (src) used += ilen;
        got += olen;
    }
    cs_resampler_free(r);
    if (rc < 0) {
        free(buf);
        return rc;
    }
    *out = buf;
    *out_n = want;
    return 0;
}
