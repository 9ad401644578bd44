/* The voice activity detector on real recordings (corpus clips on a simulated phone line,
 * tests/unit/phoneline.h) and on synthetic noise, clicks and tones: onsets near where
 * speech begins, none on noise, offsets after it ends, a floor that follows the line's
 * noise, and results that do not depend on how the audio is cut. Tolerances are generous:
 * build/bench_vad has the measured figures. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "audio/vad.h"
#include "core/buf.h"
#include "core/config.h"
#include "phoneline.h"
#include "wer.h"

#define LEAD_MS   3000
#define TAIL_MS   1500
#define MAX_EDGES 256
#define EARLY_MS  150 /* an onset may be reported this much before the reference */
#define LATE_MS   250 /* or this much after it */
/* An offset may come this much before the reference: weak endings go under the noise. */
#define CUT_MS     500
#define MS(n)      ((uint64_t)(n)*8) /* ms → samples */
#define FULL_SCALE 32767.0

/* Recordings kept in tests/data/speech too, with no noise of their own before the speech. */
static const char *const clean_clips[] = {"pocketsphinx_goforward",
                                          "librivox_sense_sensibility_01-0880",
                                          "pocketsphinx_cards_003", "pocketsphinx_cards_005"};
static const char *const line_conds[] = {"silence", "white20", "pink20", "hum20", "clicks", "dtmf"};

static const char *corpus(void)
{
    return wer_corpus(getenv("CS_CORPUS"));
}

typedef struct run {
    cs_vad_edge e[MAX_EDGES];
    size_t n;
} run;

/* Edges compared field by field (a struct's padding is not part of it). */
static void assert_edges_equal(const cs_vad_edge *a, const cs_vad_edge *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(a[i].speech, b[i].speech);
        assert_true(a[i].pos == b[i].pos);
        assert_true(a[i].confirmed_pos == b[i].confirmed_pos);
    }
}

/* Feeds a[0..len) at `pos` in chunks of `chunk` bytes, collecting every edge. */
static void feed(cs_vad *v, uint64_t pos, const uint8_t *a, size_t len, size_t chunk, run *r)
{
    for (size_t i = 0; i < len; i += chunk) {
        size_t k = len - i < chunk ? len - i : chunk;
        cs_vad_edge e[CS_VAD_EDGES_MAX(4096)];
        assert_true(k <= 4096);
        size_t got = cs_vad_feed(v, pos + i, a + i, k, e, CS_VAD_EDGES_MAX(k));
        assert_true(got <= CS_VAD_EDGES_MAX(k));
        for (size_t j = 0; j < got; j++) {
            assert_true(r->n < MAX_EDGES);
            r->e[r->n++] = e[j];
        }
    }
}

/* The defaults of the settings (BARGE_IN_MIN_MS, VAD_HANGOVER_MS, VAD_THRESHOLD_DB). */
static cs_vad_opts config_defaults(void)
{
    unsetenv("BARGE_IN_MIN_MS");
    unsetenv("VAD_HANGOVER_MS");
    unsetenv("VAD_THRESHOLD_DB");
    cs_config c;
    cs_buf err = {0};
    int argi = 1, help = 0;
    char *argv[] = {"test", NULL};
    assert_int_equal(cs_config_load(&c, "/dev/null", 1, argv, &argi, &help, &err), 0);
    cs_vad_opts o = {(uint32_t)c.barge_in_min_ms, (uint32_t)c.vad_hangover_ms,
                     (int)c.vad_threshold_db};
    cs_config_free(&c);
    cs_buf_free(&err);
    return o;
}

/* `ms` of a line condition alone, its noise at `dbfs` RMS (speech would be snr_db louder). */
static uint8_t *noise_line(const char *cond, double dbfs, unsigned ms, uint64_t seed, size_t *len)
{
    const pl_cond *c = pl_cond_named(cond);
    assert_non_null(c);
    double speech_rms = FULL_SCALE * pow(10, (dbfs + c->snr_db) / 20);
    uint8_t *a = pl_line(c, NULL, 0, speech_rms, ms, 0, seed, len);
    assert_non_null(a);
    return a;
}

typedef struct clip {
    pl_ref ref;
    int16_t *pcm;
    size_t n;
    double rms;
} clip;

/* The onset edge reported near reference position `on`, or NULL. */
static const cs_vad_edge *onset_near(const run *r, uint64_t on)
{
    for (size_t j = 0; j < r->n; j++)
        if (r->e[j].speech && r->e[j].pos + MS(EARLY_MS) >= on && r->e[j].pos <= on + MS(LATE_MS))
            return &r->e[j];
    return NULL;
}

static void load(const char *name, clip *c)
{
    assert_int_equal(pl_load(corpus(), name, &c->ref, &c->pcm, &c->n), 0);
    c->rms = pl_speech_rms(c->pcm, c->n, &c->ref);
    assert_true(c->rms > 0);
}

/* Recording `name` on line condition `cond` (LEAD_MS before, TAIL_MS after); its reference
 * in *ref when ref is not NULL. Caller frees. */
static uint8_t *clip_line(const char *name, const char *cond, uint64_t seed, size_t *len,
                          pl_ref *ref)
{
    clip c;
    load(name, &c);
    uint8_t *a = pl_line(pl_cond_named(cond), c.pcm, c.n, c.rms, LEAD_MS, TAIL_MS, seed, len);
    assert_non_null(a);
    if (ref) *ref = c.ref;
    free(c.pcm);
    return a;
}

/* The defaults agree with the settings' defaults, so callers may pass NULL. */
static void defaults_are_the_settings(void **state)
{
    (void)state;
    cs_vad_opts o = config_defaults();
    assert_int_equal(o.min_speech_ms, 100);
    assert_int_equal(o.hangover_ms, 600);
    assert_int_equal(o.threshold_db, 8);
    cs_vad a, b;
    cs_vad_init(&a, NULL);
    cs_vad_init(&b, &o);
    assert_memory_equal(&a, &b, sizeof a);
    assert_false(cs_vad_speaking(&a));
    assert_true(sizeof(cs_vad) <= 72);
}

/* Each clean recording on each line: one onset near the reference onset, confirmed after
 * min_speech_ms of speech, and an offset after the speech, hangover_ms after its end. */
static void onset_and_offset_near_reference(void **state)
{
    (void)state;
    const cs_vad_opts o = {100, 600, 8};
    for (size_t i = 0; i < sizeof clean_clips / sizeof *clean_clips; i++) {
        for (size_t k = 0; k < sizeof line_conds / sizeof *line_conds; k++) {
            static pl_ref ref;
            size_t len;
            uint8_t *a = clip_line(clean_clips[i], line_conds[k], i * 7 + k, &len, &ref);
            cs_vad v;
            cs_vad_init(&v, &o);
            static run r;
            r.n = 0;
            feed(&v, 0, a, len, 160, &r);
            free(a);
            uint64_t on = MS(LEAD_MS + ref.onset_ms), off = MS(LEAD_MS + ref.offset_ms);
            print_message("%s on %s: %zu edges, onset %+.0f ms, confirmed %+.0f ms\n",
                          clean_clips[i], line_conds[k], r.n,
                          r.n ? ((double)r.e[0].pos - (double)on) / 8 : 0,
                          r.n ? ((double)r.e[0].confirmed_pos - (double)on) / 8 : 0);
            assert_true(r.n >= 2);
            assert_true(r.e[0].speech);
            assert_true(r.e[0].pos + MS(EARLY_MS) >= on);
            assert_true(r.e[0].pos <= on + MS(LATE_MS));
            assert_true(r.e[0].confirmed_pos >= r.e[0].pos + MS(o.min_speech_ms));
            /* Edges alternate; the last is the offset, after the speech. */
            for (size_t j = 0; j < r.n; j++) {
                assert_int_equal(r.e[j].speech, j % 2 == 0);
                if (j) assert_true(r.e[j].pos >= r.e[j - 1].confirmed_pos - MS(100));
            }
            const cs_vad_edge *last = &r.e[r.n - 1];
            assert_false(last->speech);
            assert_true(last->pos + MS(CUT_MS) >= off);
            assert_true(last->pos <= off + MS(LATE_MS));
            assert_int_equal(last->confirmed_pos - last->pos, MS(o.hangover_ms));
            assert_false(cs_vad_speaking(&v));
        }
    }
}

/* Half a minute of each line condition alone, at a quiet and a loud level: nothing fires.
 * (Held DTMF keys are steady tones; clicks and knocks are shorter than min_speech_ms.) */
static void no_onset_on_noise_clicks_or_tones(void **state)
{
    (void)state;
    static const char *const conds[] = {"silence", "white20",        "pink20", "hum20",
                                        "clicks",  "clicks_white30", "dtmf",   "dtmf_held"};
    static const double levels[] = {-50, -25};
    for (size_t k = 0; k < sizeof conds / sizeof *conds; k++) {
        for (size_t l = 0; l < sizeof levels / sizeof *levels; l++) {
            size_t len;
            uint8_t *a = noise_line(conds[k], levels[l], 30000, k * 3 + l, &len);
            cs_vad v;
            cs_vad_init(&v, NULL);
            static run r;
            r.n = 0;
            feed(&v, 0, a, len, 160, &r);
            free(a);
            if (r.n)
                print_message("%s at %.0f dBFS: onset at %.0f ms\n", conds[k], levels[l],
                              (double)r.e[0].pos / 8);
            assert_int_equal(r.n, 0);
            assert_false(cs_vad_speaking(&v));
        }
    }
}

/* Line noise that steps up 20 dB: the floor follows it within a few seconds, the caller is
 * not "speaking" for long (at most one onset, soon ended), and when the noise drops the
 * floor drops with it at once. */
static void noise_floor_follows_the_line(void **state)
{
    (void)state;
    size_t n1, n2;
    uint8_t *quiet = noise_line("white20", -50, 3000, 1, &n1);
    uint8_t *loud = noise_line("white20", -30, 6000, 2, &n2);
    cs_vad v;
    cs_vad_init(&v, NULL);
    static run r;
    r.n = 0;
    feed(&v, 0, quiet, n1, 160, &r);
    int before = cs_vad_noise_dbfs(&v);
    assert_in_range(before, -56, -48);
    assert_int_equal(r.n, 0);

    feed(&v, n1, loud, n2, 160, &r);
    int after = cs_vad_noise_dbfs(&v);
    print_message("floor %d dBFS, then %d dBFS; %zu edges\n", before, after, r.n);
    assert_in_range(after, -36, -28);
    assert_false(cs_vad_speaking(&v));
    assert_true(r.n == 0 || r.n == 2);
    if (r.n == 2) assert_true(r.e[1].confirmed_pos <= n1 + MS(2500));

    /* Back to the quiet noise: the floor drops within a few frames. */
    feed(&v, n1 + n2, quiet, MS(100), 160, &r);
    assert_in_range(cs_vad_noise_dbfs(&v), -56, -48);

    /* And speech over the loud noise is still heard, right after the step. */
    static pl_ref ref;
    size_t len;
    uint8_t *a = clip_line("pocketsphinx_goforward", "white20", 3, &len, &ref);
    cs_vad_init(&v, NULL);
    r.n = 0;
    feed(&v, 0, quiet, n1, 160, &r);
    feed(&v, n1, a, len, 160, &r);
    assert_non_null(onset_near(&r, n1 + MS(LEAD_MS + ref.onset_ms)));
    free(a);
    free(quiet);
    free(loud);
}

/* The same audio cut into 1-byte, 160-byte, odd-sized, random and whole chunks gives the
 * same edges and the same final state. */
static void chunking_does_not_matter(void **state)
{
    (void)state;
    size_t len;
    uint8_t *a = clip_line("librivox_sense_sensibility_01-0880", "pink20", 5, &len, NULL);
    static run want, got;
    cs_vad ref, v;
    cs_vad_init(&ref, NULL);
    want.n = 0;
    feed(&ref, 1000, a, len, 160, &want);
    assert_true(want.n >= 2);

    static const size_t chunks[] = {1, 7, 79, 80, 81, 333, 4096};
    for (size_t k = 0; k < sizeof chunks / sizeof *chunks; k++) {
        cs_vad_init(&v, NULL);
        got.n = 0;
        feed(&v, 1000, a, len, chunks[k], &got);
        assert_int_equal(got.n, want.n);
        assert_edges_equal(got.e, want.e, want.n);
        assert_memory_equal(&v, &ref, sizeof v);
    }
    uint64_t seed = 42;
    cs_vad_init(&v, NULL);
    got.n = 0;
    for (size_t i = 0; i < len;) {
        size_t k = 1 + tu_rand_below(&seed, 700);
        if (k > len - i) k = len - i;
        feed(&v, 1000 + i, a + i, k, k, &got);
        i += k;
    }
    assert_int_equal(got.n, want.n);
    assert_edges_equal(got.e, want.e, want.n);
    assert_memory_equal(&v, &ref, sizeof v);

    /* All at once: the edges are there even with a small `out`. */
    cs_vad_init(&v, NULL);
    cs_vad_edge e[2];
    size_t n = cs_vad_feed(&v, 1000, a, len, e, 2);
    assert_int_equal(n, want.n);
    assert_edges_equal(e, want.e, 2);
    assert_memory_equal(&v, &ref, sizeof v);
    free(a);
}

/* n = 0, max = 0, positions near 2^63, audio fed twice, and a jump over missing audio. */
static void edge_cases(void **state)
{
    (void)state;
    size_t len;
    uint8_t *a = clip_line("pocketsphinx_goforward", "white20", 9, &len, NULL);
    cs_vad v, fresh;
    cs_vad_init(&v, NULL);
    cs_vad_init(&fresh, NULL);
    cs_vad_edge e[4];

    /* Nothing fed: nothing changes but where the stream starts. */
    assert_int_equal(cs_vad_feed(&v, 0, a, 0, e, 4), 0);
    assert_int_equal(cs_vad_feed(&v, 0, NULL, 0, NULL, 0), 0);

    /* max = 0: edges are counted, not written; the state follows them. */
    static run want;
    cs_vad ref;
    cs_vad_init(&ref, NULL);
    want.n = 0;
    feed(&ref, 0, a, len, 160, &want);
    size_t total = 0;
    for (size_t i = 0; i < len; i += 160)
        total += cs_vad_feed(&v, i, a + i, len - i < 160 ? len - i : 160, NULL, 0);
    assert_int_equal(total, want.n);
    assert_memory_equal(&v, &ref, sizeof v);

    /* Large positions: the same edges, shifted. */
    const uint64_t base = (1ull << 63) - MS(3600000);
    static run far;
    cs_vad_init(&v, NULL);
    far.n = 0;
    feed(&v, base, a, len, 160, &far);
    assert_int_equal(far.n, want.n);
    for (size_t j = 0; j < far.n; j++) {
        assert_int_equal(far.e[j].speech, want.e[j].speech);
        assert_true(far.e[j].pos == base + want.e[j].pos);
        assert_true(far.e[j].confirmed_pos == base + want.e[j].confirmed_pos);
    }

    /* Audio already fed is skipped, whole or in part. */
    cs_vad before = v;
    assert_int_equal(cs_vad_feed(&v, base, a, len, e, 4), 0);
    assert_int_equal(cs_vad_feed(&v, base + len - 500, a + len - 500, 500, e, 4), 0);
    assert_memory_equal(&v, &before, sizeof v);

    /* Audio missing in the middle of speech counts as silence: the offset comes hangover_ms
     * after the last speech heard, inside the gap, and the speech after it is a new onset. */
    uint64_t cut = MS(LEAD_MS + 800); /* in "go forward ten meters" */
    static run gapped;
    cs_vad_init(&v, NULL);
    gapped.n = 0;
    feed(&v, 0, a, cut, 160, &gapped);
    assert_true(cs_vad_speaking(&v));
    assert_int_equal(gapped.n, 1);
    uint64_t resume = cut + MS(5000);
    feed(&v, resume, a + cut, len - cut, 160, &gapped);
    assert_true(gapped.n >= 3);
    assert_false(gapped.e[1].speech);
    assert_true(gapped.e[1].pos <= cut);
    assert_int_equal(gapped.e[1].confirmed_pos - gapped.e[1].pos, MS(600));
    assert_true(gapped.e[1].confirmed_pos <= resume);
    assert_true(gapped.e[2].speech);
    assert_true(gapped.e[2].pos >= resume);

    /* A whole stream at once needs only CS_VAD_EDGES_MAX(len) slots. */
    size_t cap = CS_VAD_EDGES_MAX(len);
    cs_vad_edge *all = calloc(cap, sizeof *all);
    assert_non_null(all);
    cs_vad_init(&v, NULL);
    assert_int_equal(cs_vad_feed(&v, 0, a, len, all, cap), want.n);
    assert_edges_equal(all, want.e, want.n);
    free(all);
    free(a);
}

/* The options do what they say, and out-of-range ones are clamped. */
static void options(void **state)
{
    (void)state;
    size_t len;
    uint8_t *a = clip_line("pocketsphinx_cards_003", "silence", 1, &len, NULL);
    static const cs_vad_opts opts[] = {{300, 200, 8}, {60, 1000, 12}, {120, 600, 4}};
    for (size_t k = 0; k < sizeof opts / sizeof *opts; k++) {
        cs_vad v;
        cs_vad_init(&v, &opts[k]);
        static run r;
        r.n = 0;
        feed(&v, 0, a, len, 160, &r);
        assert_true(r.n >= 2);
        assert_true(r.e[0].confirmed_pos - r.e[0].pos >= MS(opts[k].min_speech_ms));
        assert_int_equal(r.e[r.n - 1].confirmed_pos - r.e[r.n - 1].pos, MS(opts[k].hangover_ms));
    }
    free(a);

    cs_vad lo, hi, want;
    cs_vad_init(&lo, &(cs_vad_opts){0, 0, -5});
    cs_vad_init(&want, &(cs_vad_opts){CS_VAD_MIN_MS, CS_VAD_MIN_MS, CS_VAD_MIN_THRESHOLD});
    assert_memory_equal(&lo, &want, sizeof lo);
    cs_vad_init(&hi, &(cs_vad_opts){UINT32_MAX, UINT32_MAX, 1000});
    cs_vad_init(&want, &(cs_vad_opts){CS_VAD_MAX_MS, CS_VAD_MAX_MS, CS_VAD_MAX_THRESHOLD});
    assert_memory_equal(&hi, &want, sizeof hi);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults_are_the_settings),
        cmocka_unit_test(onset_and_offset_near_reference),
        cmocka_unit_test(no_onset_on_noise_clicks_or_tones),
        cmocka_unit_test(noise_floor_follows_the_line),
        cmocka_unit_test(chunking_does_not_matter),
        cmocka_unit_test(edge_cases),
        cmocka_unit_test(options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
