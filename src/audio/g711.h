/* G.711 μ-law and A-law (ITU-T G.711), table-driven. Bit-exact with the ITU-T G.191
 * reference implementation (g711.c of the STL) for every input: the encoders take 16-bit
 * linear samples and use the top 14 (μ-law) or 13 (A-law) bits, as the reference does. */
#ifndef CS_G711_H
#define CS_G711_H

#include <stddef.h>
#include <stdint.h>

/* Code → 16-bit linear sample. */
extern const int16_t cs_ulaw_to_pcm[256];
extern const int16_t cs_alaw_to_pcm[256];

/* The μ-law code of digital silence (0xFF) and the A-law one (0xD5). */
#define CS_ULAW_SILENCE 0xFF
#define CS_ALAW_SILENCE 0xD5

uint8_t cs_pcm_to_ulaw(int16_t sample);
uint8_t cs_pcm_to_alaw(int16_t sample);

void cs_ulaw_decode(int16_t *out, const uint8_t *in, size_t n);
void cs_ulaw_encode(uint8_t *out, const int16_t *in, size_t n);
void cs_alaw_decode(int16_t *out, const uint8_t *in, size_t n);
void cs_alaw_encode(uint8_t *out, const int16_t *in, size_t n);

#endif
