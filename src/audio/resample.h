/* Sample-rate conversion of 16-bit mono audio, on speexdsp's resampler. */
#ifndef CS_RESAMPLE_H
#define CS_RESAMPLE_H

#include <stddef.h>
#include <stdint.h>

#define CS_RESAMPLE_QUALITY 4 /* speexdsp 0..10; 3–5 measured ≈ 4–6 µs per 20 ms chunk */

typedef struct cs_resampler cs_resampler;

/* 0, -ENOMEM, or CS_EBACKEND if speexdsp refuses the rates or quality. */
int cs_resampler_new(cs_resampler **out, unsigned in_rate, unsigned out_rate, int quality);
void cs_resampler_free(cs_resampler *r);
/* Converts as much as fits: consumes up to *in_n samples and writes up to *out_n; both are
 * updated to what was actually consumed and written. `in` NULL feeds *in_n zeros (to
 * flush the filter at the end of a stream). 0 or CS_EBACKEND. */
int cs_resampler_process(cs_resampler *r, const int16_t *in, size_t *in_n, int16_t *out,
                         size_t *out_n);
/* Samples the filter holds back (its latency at the input rate). */
size_t cs_resampler_latency(const cs_resampler *r);
/* Starts the output past the filter's zero history, as cs_resample_all does: fed n
 * samples and then cs_resampler_latency zeros, it gives cs_resample_len(n) samples lined up
 * with the input. Call before the first process. */
void cs_resampler_skip_zeros(cs_resampler *r);
/* round(n * out_rate / in_rate). */
size_t cs_resample_len(size_t n, unsigned in_rate, unsigned out_rate);

/* Whole-buffer conversion with the filter delay compensated, so the output lines up with
 * the input and has round(n * out_rate / in_rate) samples. *out is malloc'd (caller
 * frees). Equal rates copy. 0, -ENOMEM or CS_EBACKEND. */
int cs_resample_all(const int16_t *in, size_t n, unsigned in_rate, unsigned out_rate, int16_t **out,
                    size_t *out_n);

#endif
