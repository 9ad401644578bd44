#include "testutil.h"

#include "audio/g711.h"

/* Independent transcription of alaw_compress, alaw_expand, ulaw_compress and ulaw_expand
 * from ITU-T G.191 STL src/g711/g711.c (version 3.01, 31 Jan 2000), one sample at a
 * time and otherwise unchanged: the codec must match these for every input. */
static short ref_alaw_compress(short lin)
{
    short ix, iexp;
    ix = lin < 0 ? (~lin) >> 4 : lin >> 4;
    if (ix > 15) {
        iexp = 1;
        while (ix > 16 + 15) {
            ix >>= 1;
            iexp++;
        }
        ix -= 16;
        ix += iexp << 4;
    }
    if (lin >= 0) ix |= 0x0080;
    return ix ^ 0x0055;
}

static short ref_alaw_expand(short logval)
{
    short ix, mant, iexp;
    ix = logval ^ 0x0055;
    ix &= 0x007F;
    iexp = ix >> 4;
    mant = ix & 0x000F;
    if (iexp > 0) mant = mant + 16;
    mant = (mant << 4) + 0x0008;
    if (iexp > 1) mant = mant << (iexp - 1);
    return logval > 127 ? mant : -mant;
}

static short ref_ulaw_compress(short lin)
{
    short i, absno, segno, low_nibble, high_nibble, logval;
    absno = lin < 0 ? ((~lin) >> 2) + 33 : (lin >> 2) + 33;
    if (absno > 0x1FFF) absno = 0x1FFF;
    i = absno >> 6;
    segno = 1;
    while (i != 0) {
        segno++;
        i >>= 1;
    }
    high_nibble = 0x0008 - segno;
    low_nibble = (absno >> segno) & 0x000F;
    low_nibble = 0x000F - low_nibble;
    logval = (high_nibble << 4) | low_nibble;
    if (lin >= 0) logval = logval | 0x0080;
    return logval;
}

static short ref_ulaw_expand(short logval)
{
    short segment, mantissa, exponent, sign, step;
    sign = logval < 0x0080 ? -1 : 1;
    mantissa = ~logval;
    exponent = (mantissa >> 4) & 0x0007;
    segment = exponent + 1;
    mantissa = mantissa & 0x000F;
    step = 4 << segment;
    return sign * ((0x0080 << exponent) + step * mantissa + step / 2 - 4 * 33);
}

#define ALL_SAMPLES 65536

static int16_t sample_at(long i)
{
    return (int16_t)(i - 32768);
}

static void encoders_match_reference(void **state)
{
    (void)state;
    for (long i = 0; i < ALL_SAMPLES; i++) {
        int16_t x = sample_at(i);
        assert_int_equal(cs_pcm_to_ulaw(x), (uint8_t)ref_ulaw_compress(x));
        assert_int_equal(cs_pcm_to_alaw(x), (uint8_t)ref_alaw_compress(x));
    }
}

static void decoders_match_reference(void **state)
{
    (void)state;
    for (int c = 0; c < 256; c++) {
        assert_int_equal(cs_ulaw_to_pcm[c], ref_ulaw_expand((short)c));
        assert_int_equal(cs_alaw_to_pcm[c], ref_alaw_expand((short)c));
    }
}

static void buffer_functions_match_single(void **state)
{
    (void)state;
    static int16_t lin[ALL_SAMPLES];
    static uint8_t ulaw[ALL_SAMPLES], alaw[ALL_SAMPLES];
    for (long i = 0; i < ALL_SAMPLES; i++) lin[i] = sample_at(i);
    cs_ulaw_encode(ulaw, lin, ALL_SAMPLES);
    cs_alaw_encode(alaw, lin, ALL_SAMPLES);
    for (long i = 0; i < ALL_SAMPLES; i++) {
        assert_int_equal(ulaw[i], cs_pcm_to_ulaw(lin[i]));
        assert_int_equal(alaw[i], cs_pcm_to_alaw(lin[i]));
    }

    uint8_t codes[256];
    int16_t from_ulaw[256], from_alaw[256];
    for (int c = 0; c < 256; c++) codes[c] = (uint8_t)c;
    cs_ulaw_decode(from_ulaw, codes, 256);
    cs_alaw_decode(from_alaw, codes, 256);
    assert_memory_equal(from_ulaw, cs_ulaw_to_pcm, sizeof from_ulaw);
    assert_memory_equal(from_alaw, cs_alaw_to_pcm, sizeof from_alaw);
}

/* Worked out by hand from the G.191 formulas, independently of the tables above. */
static void anchor_values(void **state)
{
    (void)state;
    assert_int_equal(cs_ulaw_to_pcm[0xFF], 0);
    assert_int_equal(cs_ulaw_to_pcm[0x7F], 0);
    assert_int_equal(cs_ulaw_to_pcm[0x00], -32124);
    assert_int_equal(cs_ulaw_to_pcm[0x80], 32124);
    assert_int_equal(cs_ulaw_to_pcm[0xFE], 8);
    assert_int_equal(cs_ulaw_to_pcm[0x7E], -8);
    assert_int_equal(cs_alaw_to_pcm[0xD5], 8);
    assert_int_equal(cs_alaw_to_pcm[0x55], -8);
    assert_int_equal(cs_alaw_to_pcm[0xAA], 32256);
    assert_int_equal(cs_alaw_to_pcm[0x2A], -32256);

    assert_int_equal(cs_pcm_to_ulaw(0), 0xFF);
    assert_int_equal(cs_pcm_to_ulaw(-1), 0x7F); /* one's complement: -1 is "negative zero" */
    assert_int_equal(cs_pcm_to_ulaw(INT16_MAX), 0x80);
    assert_int_equal(cs_pcm_to_ulaw(INT16_MIN), 0x00);
    assert_int_equal(cs_pcm_to_alaw(0), 0xD5);
    assert_int_equal(cs_pcm_to_alaw(-1), 0x55);
    assert_int_equal(cs_pcm_to_alaw(INT16_MAX), 0xAA);
    assert_int_equal(cs_pcm_to_alaw(INT16_MIN), 0x2A);
}

static void silence_codes(void **state)
{
    (void)state;
    assert_int_equal(cs_pcm_to_ulaw(0), CS_ULAW_SILENCE);
    assert_int_equal(cs_ulaw_to_pcm[CS_ULAW_SILENCE], 0);
    assert_int_equal(cs_pcm_to_alaw(0), CS_ALAW_SILENCE);
    /* A-law has no zero: silence is the smallest positive level. */
    assert_int_equal(cs_alaw_to_pcm[CS_ALAW_SILENCE], 8);

    int16_t zeros[160] = {0};
    uint8_t enc[160];
    cs_ulaw_encode(enc, zeros, 160);
    for (int i = 0; i < 160; i++) assert_int_equal(enc[i], CS_ULAW_SILENCE);
    cs_alaw_encode(enc, zeros, 160);
    for (int i = 0; i < 160; i++) assert_int_equal(enc[i], CS_ALAW_SILENCE);
}

static void round_trips(void **state)
{
    (void)state;
    for (int c = 0; c < 256; c++) {
        int16_t u = cs_ulaw_to_pcm[c], a = cs_alaw_to_pcm[c];
        assert_int_equal(cs_ulaw_to_pcm[cs_pcm_to_ulaw(u)], u);
        assert_int_equal(cs_alaw_to_pcm[cs_pcm_to_alaw(a)], a);
        /* Every code survives, except μ-law's negative zero, which becomes 0xFF. */
        assert_int_equal(cs_pcm_to_ulaw(u), c == 0x7F ? 0xFF : c);
        assert_int_equal(cs_pcm_to_alaw(a), c);
    }
}

/* Quantizing never reorders samples: the decoded level is non-decreasing in the input. */
static void quantizers_are_monotonic(void **state)
{
    (void)state;
    int prev_u = INT16_MIN, prev_a = INT16_MIN;
    for (long i = 0; i < ALL_SAMPLES; i++) {
        int u = cs_ulaw_to_pcm[cs_pcm_to_ulaw(sample_at(i))];
        int a = cs_alaw_to_pcm[cs_pcm_to_alaw(sample_at(i))];
        assert_true(u >= prev_u);
        assert_true(a >= prev_a);
        prev_u = u;
        prev_a = a;
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(encoders_match_reference),
        cmocka_unit_test(decoders_match_reference),
        cmocka_unit_test(buffer_functions_match_single),
        cmocka_unit_test(anchor_values),
        cmocka_unit_test(silence_codes),
        cmocka_unit_test(round_trips),
        cmocka_unit_test(quantizers_are_monotonic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
