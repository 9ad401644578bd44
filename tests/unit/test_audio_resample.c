#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audio/resample.h"
#include "core/err.h"

#define AMPLITUDE 16384.0 /* -6 dBFS: no clipping from the filter's overshoot */
#define EDGE_MS   10      /* left out of the measurements at both ends (filter run-in) */
/* Measured with these tones and rate pairs: 88–97 dB at quality 4 (rounding to int16
 * alone limits a -6 dBFS tone to about 92 dB), at least 69 dB at every quality from 1 to
 * 10, and 2–15 dB when the output is one sample off. 60 dB passes any sane setting and
 * fails a misaligned or mis-timed output. */
#define MIN_SNR_DB 60.0

typedef struct rates {
    unsigned in, out;
} rates;

static const rates pairs[] = {{8000, 16000}, {16000, 8000}, {22050, 8000}, {48000, 8000}};
static const double tones[] = {440.0, 1000.0};

static int16_t *sine(size_t n, unsigned rate, double freq)
{
    int16_t *s = malloc(n * sizeof *s);
    assert_non_null(s);
    for (size_t i = 0; i < n; i++)
        s[i] = (int16_t)lrint(AMPLITUDE * sin(2 * M_PI * freq * (double)i / rate));
    return s;
}

/* The tone as it should come out: the same sine sampled at the output rate. */
static double ideal(double k, unsigned rate, double freq)
{
    return AMPLITUDE * sin(2 * M_PI * freq * k / rate);
}

static double snr_db(const int16_t *y, size_t from, size_t to, unsigned rate, double freq)
{
    double sig = 0, err = 0;
    for (size_t k = from; k < to; k++) {
        double want = ideal((double)k, rate, freq);
        sig += want * want;
        err += (y[k] - want) * (y[k] - want);
    }
    return 10 * log10(sig / err);
}

/* Lag in [-maxlag, maxlag] at which the output best matches the ideal tone. */
static int best_lag(const int16_t *y, size_t from, size_t to, unsigned rate, double freq,
                    int maxlag)
{
    int best = 0;
    double best_c = -INFINITY;
    for (int lag = -maxlag; lag <= maxlag; lag++) {
        double c = 0;
        for (size_t k = from; k < to; k++) c += y[k] * ideal((double)k - lag, rate, freq);
        if (c > best_c) {
            best_c = c;
            best = lag;
        }
    }
    return best;
}

static int zero_crossings(const int16_t *y, size_t from, size_t to)
{
    int count = 0;
    for (size_t k = from + 1; k < to; k++) count += (y[k - 1] < 0) != (y[k] < 0);
    return count;
}

static void tones_keep_length_alignment_frequency(void **state)
{
    (void)state;
    for (size_t p = 0; p < sizeof pairs / sizeof *pairs; p++) {
        for (size_t t = 0; t < sizeof tones / sizeof *tones; t++) {
            rates r = pairs[p];
            double f = tones[t];
            size_t n = r.in; /* one second */
            int16_t *x = sine(n, r.in, f), *y;
            size_t m;
            assert_int_equal(cs_resample_all(x, n, r.in, r.out, &y, &m), 0);
            assert_int_equal(m, r.out);

            size_t from = r.out * EDGE_MS / 1000, to = m - from;
            double snr = snr_db(y, from, to, r.out, f);
            int maxlag = (int)(r.out / f / 2) - 1; /* under half a period: one clear peak */
            int lag = best_lag(y, from, to, r.out, f, maxlag);
            int zc = zero_crossings(y, from, to);
            int want_zc = (int)lrint(2 * f * (double)(to - from) / r.out);
            print_message(
                "%5u -> %5u Hz, %4.0f Hz tone: SNR %.1f dB, lag %d, %d/%d zero crossings\n", r.in,
                r.out, f, snr, lag, zc, want_zc);
            assert_true(snr > MIN_SNR_DB);
            assert_true(lag >= -1 && lag <= 1);
            assert_true(abs(zc - want_zc) <= 1);
            free(x);
            free(y);
        }
    }
}

/* A tone cannot tell a delay of whole periods from none; a single click can. */
static void click_stays_in_place(void **state)
{
    (void)state;
    for (size_t p = 0; p < sizeof pairs / sizeof *pairs; p++) {
        rates r = pairs[p];
        size_t n = r.in / 10, at = n / 2;
        int16_t *x = calloc(n, sizeof *x), *y;
        assert_non_null(x);
        x[at] = 30000;
        size_t m;
        assert_int_equal(cs_resample_all(x, n, r.in, r.out, &y, &m), 0);
        size_t peak = 0;
        for (size_t k = 1; k < m; k++)
            if (abs(y[k]) > abs(y[peak])) peak = k;
        long want = lrint((double)at * r.out / r.in);
        assert_true(labs((long)peak - want) <= 1);
        free(x);
        free(y);
    }
}

static void lengths_round_to_nearest(void **state)
{
    (void)state;
    static const struct {
        size_t n;
        unsigned in, out;
        size_t want;
    } cases[] = {
        {1001, 22050, 8000, 363},                      /* 363.17 */
        {1, 8000, 16000, 2},      {1, 16000, 8000, 1}, /* 0.5 rounds up */
        {2, 48000, 8000, 0},                           /* 0.33 */
        {3, 48000, 8000, 1},                           /* 0.5 */
        {160, 8000, 16000, 320},  {441, 22050, 8000, 160},
    };
    int16_t zeros[1001] = {0};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int16_t *y;
        size_t m;
        assert_int_equal(cs_resample_all(zeros, cases[i].n, cases[i].in, cases[i].out, &y, &m), 0);
        assert_int_equal(m, cases[i].want);
        for (size_t k = 0; k < m; k++) assert_int_equal(y[k], 0);
        free(y);
    }
}

static void equal_rates_and_empty_input(void **state)
{
    (void)state;
    int16_t *x = sine(800, 8000, 440.0), *y;
    size_t m;
    assert_int_equal(cs_resample_all(x, 800, 8000, 8000, &y, &m), 0);
    assert_int_equal(m, 800);
    assert_memory_equal(y, x, 800 * sizeof *y);
    free(y);
    assert_int_equal(cs_resample_all(NULL, 0, 8000, 8000, &y, &m), 0);
    assert_int_equal(m, 0);
    free(y);
    assert_int_equal(cs_resample_all(NULL, 0, 8000, 16000, &y, &m), 0);
    assert_int_equal(m, 0);
    free(y);
    free(x);
}

/* 20 ms at a time gives exactly what one call over the whole buffer gives. */
static void streaming_matches_one_call(void **state)
{
    (void)state;
    for (size_t p = 0; p < sizeof pairs / sizeof *pairs; p++) {
        rates r = pairs[p];
        size_t n = r.in, cap = 2 * (size_t)r.out;
        int16_t *x = sine(n, r.in, 1000.0);
        int16_t *whole = malloc(cap * sizeof *whole), *chunked = malloc(cap * sizeof *chunked);
        assert_non_null(whole);
        assert_non_null(chunked);

        cs_resampler *a, *b;
        assert_int_equal(cs_resampler_new(&a, r.in, r.out, CS_RESAMPLE_QUALITY), 0);
        assert_int_equal(cs_resampler_new(&b, r.in, r.out, CS_RESAMPLE_QUALITY), 0);
        size_t in_n = n, whole_n = cap;
        assert_int_equal(cs_resampler_process(a, x, &in_n, whole, &whole_n), 0);
        assert_int_equal(in_n, n);

        size_t chunk = r.in / 50, used = 0, got = 0;
        while (used < n) {
            size_t il = n - used < chunk ? n - used : chunk, ol = cap - got;
            assert_int_equal(cs_resampler_process(b, x + used, &il, chunked + got, &ol), 0);
            assert_int_equal(il, n - used < chunk ? n - used : chunk);
            used += il;
            got += ol;
        }
        assert_int_equal(got, whole_n);
        assert_memory_equal(chunked, whole, got * sizeof *whole);

        cs_resampler_free(a);
        cs_resampler_free(b);
        free(x);
        free(whole);
        free(chunked);
    }
}

/* Without delay compensation a stream lags by the reported latency: at 8 → 16 kHz, output
 * k + 2 * latency of the stream is output k of cs_resample_all. */
static void latency_is_the_stream_delay(void **state)
{
    (void)state;
    size_t n = 8000;
    int16_t *x = sine(n, 8000, 440.0), *all, stream[20000];
    size_t m;
    assert_int_equal(cs_resample_all(x, n, 8000, 16000, &all, &m), 0);

    cs_resampler *r;
    assert_int_equal(cs_resampler_new(&r, 8000, 16000, CS_RESAMPLE_QUALITY), 0);
    size_t lat = cs_resampler_latency(r);
    assert_true(lat > 0 && lat < 100);
    size_t il = n, ol = sizeof stream / sizeof *stream;
    assert_int_equal(cs_resampler_process(r, x, &il, stream, &ol), 0);
    size_t got = ol;
    il = lat; /* flush: NULL feeds zeros */
    ol = sizeof stream / sizeof *stream - got;
    assert_int_equal(cs_resampler_process(r, NULL, &il, stream + got, &ol), 0);
    got += ol;
    assert_true(got >= m + 2 * lat);
    assert_memory_equal(stream + 2 * lat, all, m * sizeof *all);

    cs_resampler_free(r);
    cs_resampler_free(NULL);
    free(all);
    free(x);
}

static void refuses_bad_parameters(void **state)
{
    (void)state;
    cs_resampler *r;
    assert_int_equal(cs_resampler_new(&r, 0, 8000, CS_RESAMPLE_QUALITY), CS_EBACKEND);
    assert_int_equal(cs_resampler_new(&r, 8000, 0, CS_RESAMPLE_QUALITY), CS_EBACKEND);
    assert_int_equal(cs_resampler_new(&r, 8000, 16000, 11), CS_EBACKEND);
    assert_int_equal(cs_resampler_new(&r, 8000, 16000, -1), CS_EBACKEND);

    int16_t x[4] = {0}, *y;
    size_t m;
    assert_int_equal(cs_resample_all(x, 4, 0, 8000, &y, &m), CS_EBACKEND);
    /* Sizes no allocation can hold are refused before anything is read. */
    assert_int_equal(cs_resample_all(x, SIZE_MAX / 2 + 1, 8000, 8000, &y, &m), -ENOMEM);
    assert_int_equal(cs_resample_all(x, SIZE_MAX / 3, 8000, 16000, &y, &m), -ENOMEM);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tones_keep_length_alignment_frequency),
        cmocka_unit_test(click_stays_in_place),
        cmocka_unit_test(lengths_round_to_nearest),
        cmocka_unit_test(equal_rates_and_empty_input),
        cmocka_unit_test(streaming_matches_one_call),
        cmocka_unit_test(latency_is_the_stream_delay),
        cmocka_unit_test(refuses_bad_parameters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
