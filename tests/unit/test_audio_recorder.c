#include "testutil.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audio/g711.h"
#include "audio/recorder.h"
#include "audio/wav.h"
#include "core/err.h"
#include "core/worker.h"

#define MAX_FRAMES       (4 * CS_REC_WINDOW) /* the longest file a model holds */
#define NO_HEADER_UPDATE 3600                /* a header interval no test outlives */

typedef struct fixture {
    uv_loop_t loop;
    cs_mailbox *mb;
    char *dir;
    cs_recorders *r;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    *state = f;
    if (!f || uv_loop_init(&f->loop) < 0 || cs_mailbox_open(&f->mb, &f->loop) < 0) return -1;
    f->dir = tu_mkdtemp("cs-test-rec");
    return f->dir ? 0 : -1;
}

static int teardown(void **state)
{
    fixture *f = *state;
    tu_limit_file_size(-1); /* if a test failed while it limited them */
    tu_limit_open_files(-1);
    cs_recorders_free(f->r);
    cs_mailbox_close(f->mb);
    uv_run(&f->loop, UV_RUN_DEFAULT); /* closes handles; a free-space read may be under way */
    int rc = uv_loop_close(&f->loop);
    tu_rmtree(f->dir);
    free(f->dir);
    free(f);
    return rc;
}

static void start(fixture *f, unsigned header_interval_s)
{
    assert_int_equal(cs_recorders_new(&f->r, f->mb, f->dir, header_interval_s), 0);
}

static const char *path_in(const fixture *f, const char *name)
{
    static char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", f->dir, name);
    return path;
}

/* ---- waiting for the writer ---- */

typedef struct finished {
    bool done;
    char path[PATH_MAX]; /* "" when there is no file */
    uint64_t frames, lost;
    int err;
} finished;

static void on_done(void *data, const cs_recording_result *res)
{
    finished *d = data;
    assert_false(d->done);
    d->done = true;
    snprintf(d->path, sizeof d->path, "%s", res->path ? res->path : "");
    d->frames = res->frames;
    d->lost = res->lost_frames;
    d->err = res->err;
}

static bool is_finished(void *data)
{
    return ((finished *)data)->done;
}

static void finish(fixture *f, cs_recording *rec, finished *d)
{
    *d = (finished){0};
    cs_recording_close(rec, on_done, d);
    assert_true(tu_run_until(&f->loop, is_finished, d, TU_WAIT_MS));
}

static bool has_path(void *rec)
{
    return cs_recording_path(rec) != NULL;
}

/* Returns once the writer has done everything posted before (it runs jobs in order). */
static void drain(fixture *f)
{
    cs_recording *rec;
    assert_int_equal(cs_recording_open(f->r, "drain", 1, &rec), 0);
    finished d;
    finish(f, rec, &d);
}

/* ---- what a file should hold ---- */

typedef struct model {
    unsigned channels;
    uint64_t frames;
    int16_t pcm[MAX_FRAMES * 2];
} model;

static model *model_new(unsigned channels)
{
    model *m = calloc(1, sizeof *m);
    assert_non_null(m);
    m->channels = channels;
    return m;
}

/* μ-law bytes that all decode to non-zero samples (0x7F and 0xFF are the zeros),
 * different for each `seed`. */
static void pattern(uint8_t *out, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) out[i] = (uint8_t)((seed * 31 + i * 7) % 0x7F);
}

/* Writes to the recording and to the model. */
static void audio(cs_recording *rec, model *m, unsigned ch, uint64_t pos, const uint8_t *ulaw,
                  size_t n)
{
    assert_true(pos + n <= MAX_FRAMES);
    cs_recording_audio(rec, ch, pos, ulaw, n);
    for (size_t i = 0; i < n; i++) m->pcm[(pos + i) * m->channels + ch] = cs_ulaw_to_pcm[ulaw[i]];
    if (pos + n > m->frames) m->frames = pos + n;
}

static void cut(cs_recording *rec, model *m, unsigned ch, uint64_t pos)
{
    cs_recording_cut(rec, ch, pos);
    for (uint64_t i = pos; i < m->frames; i++) m->pcm[i * m->channels + ch] = 0;
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The data size the header states, and the file's length. */
static uint32_t header_data_bytes(const char *path, size_t *file_len)
{
    uint8_t *file = tu_read_file(path, file_len);
    assert_non_null(file);
    assert_true(*file_len >= CS_WAV_HEADER_LEN);
    uint32_t riff = get32(file + 4), data = get32(file + 40);
    assert_int_equal(riff, 36 + data);
    free(file);
    return data;
}

/* The file at `path` is a finished 8 kHz 16-bit WAV holding exactly what `m` says. */
static void assert_wav(const char *path, const model *m)
{
    size_t len;
    uint8_t *file = tu_read_file(path, &len);
    assert_non_null(file);
    cs_wav_info info;
    assert_int_equal(cs_wav_parse(file, len, &info), 0);
    assert_int_equal(info.format, CS_WAV_PCM);
    assert_int_equal(info.rate, CS_REC_RATE);
    assert_int_equal(info.channels, m->channels);
    assert_int_equal(info.bits, 16);
    assert_int_equal(info.data_offset, CS_WAV_HEADER_LEN);
    assert_int_equal(get32(file + 40), m->frames * m->channels * 2);
    assert_int_equal(len, CS_WAV_HEADER_LEN + m->frames * m->channels * 2);
    for (size_t i = 0; i < m->frames * m->channels; i++) {
        const uint8_t *p = file + CS_WAV_HEADER_LEN + 2 * i;
        int16_t v = (int16_t)(p[0] | p[1] << 8);
        if (v != m->pcm[i])
            fail_msg("frame %zu channel %zu is %d, expected %d", i / m->channels, i % m->channels,
                     v, m->pcm[i]);
    }
    free(file);
}

/* ---- placing audio ---- */

static void places_audio_with_silent_gaps(void **state)
{
    fixture *f = *state;
    start(f, NO_HEADER_UPDATE);
    cs_recording *rec;
    assert_int_equal(cs_recording_open(f->r, "CA1", 1, &rec), 0);
    /* The path is known once the writer has created the file. */
    assert_null(cs_recording_path(rec));
    assert_true(tu_run_until(&f->loop, has_path, rec, TU_WAIT_MS));
    assert_string_equal(cs_recording_path(rec), path_in(f, "CA1.wav"));

    model *m = model_new(1);
    uint8_t a[160], b[160];
    pattern(a, sizeof a, 1);
    pattern(b, sizeof b, 2);
    audio(rec, m, 0, 0, a, sizeof a);
    audio(rec, m, 0, 800, b, sizeof b);
    audio(rec, m, 0, 400, a, 80); /* late audio lands inside the gap */
    finished d;
    finish(f, rec, &d);
    assert_int_equal(d.err, 0);
    assert_string_equal(d.path, path_in(f, "CA1.wav"));
    assert_int_equal(d.frames, 960);
    assert_wav(d.path, m);
    free(m);
}

static void overwrites_what_was_written(void **state)
{
    fixture *f = *state;
    start(f, NO_HEADER_UPDATE);
    cs_recording *rec;
    assert_int_equal(cs_recording_open(f->r, "CA1", 1, &rec), 0);
    model *m = model_new(1);
    uint8_t a[320], b[100], c[50];
    pattern(a, sizeof a, 1);
    pattern(b, sizeof b, 2);
    pattern(c, sizeof c, 3);
    audio(rec, m, 0, 0, a, sizeof a);
    cs_recording_flush(rec); /* what follows is laid over what is on disk */
    audio(rec, m, 0, 100, b, sizeof b);
    audio(rec, m, 0, 150, c, 20);
    audio(rec, m, 0, 300, c, sizeof c); /* overlaps the end and grows the file */
    finished d;
    finish(f, rec, &d);
    assert_int_equal(d.err, 0);
    assert_int_equal(d.frames, 350);
    assert_wav(d.path, m);
    free(m);
}

static void interleaves_stereo_across_windows(void **state)
{
    fixture *f = *state;
    start(f, NO_HEADER_UPDATE);
    cs_recording *rec;
    assert_int_equal(cs_recording_open(f->r, "CA1", 2, &rec), 0);
    model *m = model_new(2);
    static uint8_t a[CS_REC_WINDOW + 200];
    uint8_t b[160], c[160];
    pattern(a, sizeof a, 1);
    pattern(b, sizeof b, 2);
    pattern(c, sizeof c, 3);
    const uint64_t far = 3 * CS_REC_WINDOW + 5;
    audio(rec, m, 0, 0, b, sizeof b);
    audio(rec, m, 1, far, c, sizeof c);
    audio(rec, m, 0, far, b, sizeof b);
    audio(rec, m, 1, 80, c, sizeof c); /* back before the window just used */
    cs_recording_flush(rec);
    /* One run across a window boundary, over audio of the other channel. */
    audio(rec, m, 1, CS_REC_WINDOW, c, sizeof c);
    cs_recording_flush(rec);
    audio(rec, m, 0, CS_REC_WINDOW - 100, a, sizeof a);
    audio(rec, m, 1, CS_REC_WINDOW + 50, b, 100);
    finished d;
    finish(f, rec, &d);
    assert_int_equal(d.err, 0);
    assert_int_equal(d.frames, far + 160);
    assert_wav(d.path, m);
    free(m);
}

static void long_writes_are_split_into_chunks(void **state)
{
    fixture *f = *state;
    start(f, NO_HEADER_UPDATE);
    cs_recording *rec;
    assert_int_equal(cs_recording_open(f->r, "CA1", 1, &rec), 0);
    model *m = model_new(1);
    static uint8_t a[3 * CS_REC_CHUNK_BYTES + 17];
    pattern(a, sizeof a, 1);
    audio(rec, m, 0, 10, a, sizeof a);
    finished d;
    finish(f, rec, &d);
    assert_int_equal(d.err, 0);
    assert_wav(d.path, m);
    cs_recorders_stats st;
    cs_recorders_stats_get(f->r, &st);
    assert_true(st.chunks >= 4); /* more than three chunks' worth of bytes */
    assert_int_equal(st.dropped_chunks, 0);
    free(m);
}

static void mono_ignores_the_second_channel(void **state)
{
    fixture *f = *state;
    start(f, NO_HEADER_UPDATE);
    cs_recording *rec;
    assert_int_equal(cs_recording_open(f->r, "CA1", 1, &rec), 0);
    model *m = model_new(1);
    uint8_t a[160];
    pattern(a, sizeof a, 1);
    audio(rec, m, 0, 0, a, sizeof a);
    cs_recording_audio(rec, 1, 1000, a, sizeof a);
    cs_recording_cut(rec, 1, 0);
    finished d;
    finish(f, rec, &d);
    assert_int_equal(d.frames, 160);
    assert_wav(d.path, m);
    free(m);
}

static void cut_silences_one_channel(void **state)
{
    fixture *f = *state;
    start(f, NO_HEADER_UPDATE);
    cs_recording *rec;
    assert_int_equal(cs_recording_open(f->r, "CA1", 2, &rec), 0);
    model *m = model_new(2);
    static uint8_t a[3 * CS_REC_WINDOW], b[3 * CS_REC_WINDOW];
    pattern(a, sizeof a, 1);
    pattern(b, sizeof b, 2);
    audio(rec, m, 0, 0, a, 1600);
    audio(rec, m, 1, 0, b, 1600);
    cut(rec, m, 1, 800);
    audio(rec, m, 1, 1000, a, 100); /* after the cut: kept */
    cut(rec, m, 0, 5000);           /* past the end: nothing to cut */
    cs_recording_flush(rec);
    /* A cut across several windows of what is already on disk. */
    audio(rec, m, 0, 0, a, sizeof a);
    audio(rec, m, 1, 2000, b, sizeof b - 2000);
    cs_recording_flush(rec);
    cut(rec, m, 1, CS_REC_WINDOW / 2);
    finished d;
    finish(f, rec, &d);
    assert_int_equal(d.err, 0);
    assert_int_equal(d.frames, 3 * CS_REC_WINDOW);
    assert_wav(d.path, m);
    free(m);
}

/* ---- the file on disk ---- */

static void header_follows_the_data_when_due(void **state)
{
    fixture *f = *state;
    start(f, 0); /* due after every chunk */
    cs_recording *rec;
    assert_int_equal(cs_recording_open(f->r, "CA1", 1, &rec), 0);
    uint8_t a[1600];
    pattern(a, sizeof a, 1);
    cs_recording_audio(rec, 0, 0, a, sizeof a);
    cs_recording_flush(rec);
    drain(f);
    size_t len;
    assert_int_equal(header_data_bytes(path_in(f, "CA1.wav"), &len), 3200);
    assert_int_equal(len, CS_WAV_HEADER_LEN + 3200);
    finished d;
    finish(f, rec, &d);
    assert_int_equal(d.frames, 1600);
}

static void header_waits_for_its_interval(void **state)
{
    fixture *f = *state;
    start(f, NO_HEADER_UPDATE);
    cs_recording *rec;
    assert_int_equal(cs_recording_open(f->r, "CA1", 1, &rec), 0);
    uint8_t a[1600];
    pattern(a, sizeof a, 1);
    cs_recording_audio(rec, 0, 0, a, sizeof a);
    cs_recording_flush(rec);
    drain(f);
    size_t len;
    assert_int_equal(header_data_bytes(path_in(f, "CA1.wav"), &len), 0);
    assert_int_equal(len, CS_WAV_HEADER_LEN + 3200);
    /* Closing writes the final header. */
    finished d;
    finish(f, rec, &d);
    assert_int_equal(header_data_bytes(d.path, &len), 3200);
}

static void same_name_gets_the_next_free_file(void **state)
{
    fixture *f = *state;
    start(f, NO_HEADER_UPDATE);
    cs_recording *r1, *r2, *r3;
    assert_int_equal(cs_recording_open(f->r, "CA1", 1, &r1), 0);
    assert_int_equal(cs_recording_open(f->r, "CA1", 2, &r2), 0);
    finished d;
    finish(f, r1, &d);
    assert_string_equal(d.path, path_in(f, "CA1.wav"));
    finish(f, r2, &d);
    assert_string_equal(d.path, path_in(f, "CA1-2.wav"));
    /* A file left by an earlier run is never overwritten. */
    assert_int_equal(cs_recording_open(f->r, "CA1", 1, &r3), 0);
    finish(f, r3, &d);
    assert_string_equal(d.path, path_in(f, "CA1-3.wav"));
}

static void all_names_taken_is_an_error(void **state)
{
    fixture *f = *state;
    start(f, NO_HEADER_UPDATE);
    drain(f); /* past the start-up repair, which would warn about these empty files */
    for (int i = 1; i <= 100; i++) {
        char name[32];
        if (i == 1)
            snprintf(name, sizeof name, "CA1.wav");
        else
            snprintf(name, sizeof name, "CA1-%d.wav", i);
        FILE *file = fopen(path_in(f, name), "w");
        assert_non_null(file);
        fclose(file);
    }
    tu_log_capture_start();
    cs_recording *rec;
    assert_int_equal(cs_recording_open(f->r, "CA1", 1, &rec), 0);
    uint8_t a[160];
    pattern(a, sizeof a, 1);
    cs_recording_audio(rec, 0, 0, a, sizeof a);
    cs_recording_flush(rec);
    drain(f);
    assert_null(cs_recording_path(rec));
    finished d;
    finish(f, rec, &d);
    tu_log_capture_stop();
    assert_int_equal(d.err, -EEXIST);
    assert_int_equal(d.frames, 0);
    assert_string_equal(d.path, "");
    assert_true(tu_log_contains("recorder: creating"));
    cs_recorders_stats st;
    cs_recorders_stats_get(f->r, &st);
    assert_int_equal(st.errors, 1);
}

static void invalid_names_are_refused(void **state)
{
    fixture *f = *state;
    start(f, NO_HEADER_UPDATE);
    char longest[64], too_long[65];
    memset(longest, 'A', sizeof longest - 1);
    longest[sizeof longest - 1] = '\0';
    memset(too_long, 'A', sizeof too_long - 1);
    too_long[sizeof too_long - 1] = '\0';
    static const char *const bad[] = {"", "CA-1", "CA 1", "../CA1", "CA1.wav", "CA/1", "CAé"};
    cs_recording *rec;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(cs_recording_open(f->r, bad[i], 1, &rec), -EINVAL);
    assert_int_equal(cs_recording_open(f->r, too_long, 1, &rec), -EINVAL);
    assert_int_equal(cs_recording_open(f->r, "CA1", 0, &rec), -EINVAL);
    assert_int_equal(cs_recording_open(f->r, "CA1", 3, &rec), -EINVAL);
    cs_recorders_stats st;
    cs_recorders_stats_get(f->r, &st);
    assert_int_equal(st.opened, 0);

    assert_int_equal(cs_recording_open(f->r, longest, 1, &rec), 0);
    finished d;
    finish(f, rec, &d);
    assert_int_equal(d.err, 0);
}

static void write_bytes(const char *path, const void *data, size_t len)
{
    FILE *file = fopen(path, "wb");
    assert_non_null(file);
    assert_int_equal(fwrite(data, 1, len, file), len);
    assert_int_equal(fclose(file), 0);
}

static void repairs_unfinished_files_at_start(void **state)
{
    fixture *f = *state;
    /* Left by a crash: the header still says 0 bytes, and half a frame trails. */
    uint8_t stale[CS_WAV_HEADER_LEN + 1001] = {0};
    cs_wav_header(stale, CS_REC_RATE, 1, 0);
    write_bytes(path_in(f, "CAold.wav"), stale, sizeof stale);
    uint8_t good[CS_WAV_HEADER_LEN + 200] = {0};
    cs_wav_header(good, CS_REC_RATE, 1, 200);
    write_bytes(path_in(f, "CAgood.wav"), good, sizeof good);
    write_bytes(path_in(f, "junk.wav"), "hello", 5);
    write_bytes(path_in(f, "notes.txt"), stale, sizeof stale);

    tu_log_capture_start();
    start(f, NO_HEADER_UPDATE);
    drain(f);
    tu_log_capture_stop();
    size_t len;
    assert_int_equal(header_data_bytes(path_in(f, "CAold.wav"), &len), 1000);
    assert_int_equal(len, CS_WAV_HEADER_LEN + 1000);
    uint8_t *file = tu_read_file(path_in(f, "CAgood.wav"), &len);
    assert_non_null(file);
    assert_int_equal(len, sizeof good);
    assert_memory_equal(file, good, sizeof good);
    free(file);
    file = tu_read_file(path_in(f, "notes.txt"), &len);
    assert_non_null(file);
    assert_int_equal(len, sizeof stale);
    free(file);
    assert_true(tu_log_contains("repaired"));
    assert_true(tu_log_contains("1 unfinished recording(s) repaired"));
    assert_true(tu_log_contains("cannot check"));
    assert_true(tu_log_contains("junk.wav"));
}

/* ---- accounting and shutting down ---- */

static void backlog_returns_to_zero(void **state)
{
    fixture *f = *state;
    start(f, NO_HEADER_UPDATE);
    cs_recording *r1, *r2;
    assert_int_equal(cs_recording_open(f->r, "CA1", 1, &r1), 0);
    assert_int_equal(cs_recording_open(f->r, "CA2", 2, &r2), 0);
    static uint8_t a[5 * CS_REC_CHUNK_BYTES];
    pattern(a, sizeof a, 1);
    cs_recording_audio(r1, 0, 0, a, sizeof a);
    cs_recording_audio(r2, 1, 0, a, 100);
    cs_recorders_stats st;
    cs_recorders_stats_get(f->r, &st);
    assert_true(st.backlog_bytes >= 2 * CS_REC_CHUNK_BYTES); /* at least the chunks filling */
    finished d;
    finish(f, r1, &d);
    finish(f, r2, &d);
    cs_recorders_stats_get(f->r, &st);
    assert_int_equal(st.backlog_bytes, 0);
    assert_int_equal(st.opened, 2);
    assert_int_equal(st.closed, 2);
    assert_int_equal(st.errors, 0);
    assert_int_equal(st.dropped_chunks, 0);
}

static void free_finalizes_open_recordings(void **state)
{
    fixture *f = *state;
    start(f, NO_HEADER_UPDATE);
    cs_recording *open_rec, *closed_rec;
    assert_int_equal(cs_recording_open(f->r, "CA1", 2, &open_rec), 0);
    assert_int_equal(cs_recording_open(f->r, "CA2", 1, &closed_rec), 0);
    model *m = model_new(2);
    uint8_t a[800], b[400];
    pattern(a, sizeof a, 1);
    pattern(b, sizeof b, 2);
    audio(open_rec, m, 0, 0, a, sizeof a);
    audio(open_rec, m, 1, 200, b, sizeof b);
    cs_recording_audio(closed_rec, 0, 0, a, sizeof a);
    finished d = {0};
    cs_recording_close(closed_rec, on_done, &d);
    /* As at shutdown: the recorders go first, their last callbacks run after. */
    cs_recorders_free(f->r);
    f->r = NULL;
    cs_mailbox_run(f->mb);
    assert_true(d.done);
    assert_int_equal(d.err, 0);
    assert_int_equal(d.frames, sizeof a);
    assert_wav(path_in(f, "CA1.wav"), m);
    free(m);
}

/* ---- errors ---- */

static void unwritable_directory_is_reported(void **state)
{
    fixture *f = *state;
    char sub[PATH_MAX];
    snprintf(sub, sizeof sub, "%s/gone", f->dir);
    assert_int_equal(cs_recorders_new(&f->r, f->mb, sub, NO_HEADER_UPDATE), 0);
    assert_int_equal(rmdir(sub), 0);
    tu_log_capture_start();
    cs_recording *rec;
    assert_int_equal(cs_recording_open(f->r, "CA1", 1, &rec), 0);
    uint8_t a[160];
    pattern(a, sizeof a, 1);
    cs_recording_audio(rec, 0, 0, a, sizeof a);
    cs_recording_flush(rec);
    cs_recording_audio(rec, 0, 160, a, sizeof a);
    finished d;
    finish(f, rec, &d);
    tu_log_capture_stop();
    assert_int_equal(d.err, -ENOENT);
    assert_int_equal(d.frames, 0);
    assert_true(tu_log_contains("recorder: creating"));
    cs_recorders_stats st;
    cs_recorders_stats_get(f->r, &st);
    assert_int_equal(st.errors, 1);
    assert_int_equal(st.backlog_bytes, 0);
}

/* A wild position is skipped, not fatal: the file goes on. */
static void a_run_past_the_wav_limit_is_skipped(void **state)
{
    fixture *f = *state;
    start(f, NO_HEADER_UPDATE);
    tu_log_capture_start();
    cs_recording *rec;
    assert_int_equal(cs_recording_open(f->r, "CA1", 1, &rec), 0);
    model *m = model_new(1);
    uint8_t a[160];
    pattern(a, sizeof a, 1);
    audio(rec, m, 0, 0, a, sizeof a);
    cs_recording_audio(rec, 0, 1ull << 31, a, sizeof a); /* 4 GiB of 16-bit mono in */
    cs_recording_audio(rec, 0, 1ull << 40, a, sizeof a);
    cs_recording_audio(rec, 0, UINT64_MAX - 10, a, sizeof a);
    audio(rec, m, 0, 160, a, sizeof a);
    cs_recording_flush(rec);
    audio(rec, m, 0, 320, a, sizeof a);
    finished d;
    finish(f, rec, &d);
    tu_log_capture_stop();
    assert_int_equal(d.err, 0);
    assert_int_equal(d.frames, 480);
    assert_wav(d.path, m);
    assert_true(tu_log_contains("past what a WAV holds"));
    cs_recorders_stats st;
    cs_recorders_stats_get(f->r, &st);
    assert_int_equal(st.refused, 3);
    assert_int_equal(st.errors, 0);
    free(m);
}

/* ---- a failing file ---- */

typedef struct heard {
    int created, failed, resumed;
    int err;
    uint64_t failed_at, lost_from, lost_to;
} heard;

static void on_news(void *data, enum cs_recording_news what, int err, uint64_t from, uint64_t to)
{
    heard *h = data;
    if (what == CS_REC_CREATED) {
        h->created++;
    } else if (what == CS_REC_FAILED) {
        h->failed++;
        h->err = err;
        h->failed_at = from;
    } else {
        assert_int_equal(what, CS_REC_RESUMED);
        h->resumed++;
        h->lost_from = from;
        h->lost_to = to;
    }
}

static bool has_failed(void *data)
{
    return ((heard *)data)->failed > 0;
}

static bool never(void *data)
{
    (void)data;
    return false;
}

static void run_for(fixture *f, unsigned ms)
{
    tu_run_until(&f->loop, never, NULL, ms);
}

/* What makes a new file fail: no descriptor left, or not a byte of room. */
enum refusal { NO_DESCRIPTOR, NO_ROOM };

/* Starts the recorder and opens a recording while `why` makes its file fail, waiting for
 * the news that it failed. The limit stays: the caller lifts it (tu_limit_*(-1)). */
static cs_recording *open_refused(fixture *f, enum refusal why, unsigned channels, heard *h)
{
    start(f, NO_HEADER_UPDATE);
    drain(f);
    if (why == NO_DESCRIPTOR)
        tu_limit_open_files(0);
    else
        tu_limit_file_size(0);
    cs_recording *rec;
    assert_int_equal(cs_recording_open(f->r, "CA1", channels, &rec), 0);
    cs_recording_on_news(rec, on_news, h);
    assert_true(tu_run_until(&f->loop, has_failed, h, TU_WAIT_MS));
    return rec;
}

/* Feeds a frame every few ms from `*pos` on until the file writes again. */
static void feed_until_resumed(fixture *f, cs_recording *rec, model *m, heard *h, uint64_t *pos)
{
    uint8_t a[160];
    for (unsigned i = 0; h->resumed == 0 && i < TU_WAIT_MS / 20; i++) {
        pattern(a, sizeof a, (unsigned)i);
        audio(rec, m, 0, *pos, a, sizeof a);
        *pos += sizeof a;
        cs_recording_flush(rec);
        run_for(f, 20);
    }
    assert_int_equal(h->resumed, 1);
}

static void assert_lost_as_silence(model *m, const heard *h)
{
    assert_true(h->lost_to > h->lost_from);
    for (uint64_t i = h->lost_from; i < h->lost_to; i++) m->pcm[i] = 0;
}

/* The disk fills (here: a file-size limit, which fails writes the same way): what was
 * written stays, the audio meanwhile is lost as silence, and writing resumes once there
 * is room. */
static void a_full_disk_loses_audio_until_there_is_room(void **state)
{
    fixture *f = *state;
    start(f, NO_HEADER_UPDATE);
    cs_recording *rec;
    assert_int_equal(cs_recording_open(f->r, "CA1", 1, &rec), 0);
    heard h = {0};
    cs_recording_on_news(rec, on_news, &h);
    model *m = model_new(1);
    static uint8_t a[1600];
    pattern(a, sizeof a, 1);
    audio(rec, m, 0, 0, a, sizeof a);
    cs_recording_flush(rec);
    drain(f);
    /* told once the file is made, where it is (served while the call goes on) */
    assert_int_equal(h.created, 1);
    assert_non_null(cs_recording_path(rec));

    tu_log_capture_start();
    tu_limit_file_size(CS_WAV_HEADER_LEN + 3200 + 100); /* room for 50 more frames */
    audio(rec, m, 0, 1600, a, 800);
    cs_recording_flush(rec);
    assert_true(tu_run_until(&f->loop, has_failed, &h, TU_WAIT_MS));
    tu_log_capture_stop();
    assert_int_equal(h.err, -EFBIG);
    assert_int_equal(h.failed_at, 1600);
    assert_true(tu_log_contains("recorder: writing"));
    assert_true(tu_log_contains("lost until it can be written again"));
    assert_string_equal(cs_recording_path(rec), path_in(f, "CA1.wav"));
    cs_recorders_stats st;
    cs_recorders_stats_get(f->r, &st);
    assert_int_equal(st.failing, 1);
    assert_int_equal(st.errors, 1);
    /* What the file holds stays whole frames, so it can be served while it fails. */
    size_t len;
    free(tu_read_file(path_in(f, "CA1.wav"), &len));
    assert_int_equal(len, CS_WAV_HEADER_LEN + 3200);

    tu_limit_file_size(-1);
    uint64_t pos = 2400;
    feed_until_resumed(f, rec, m, &h, &pos);
    assert_int_equal(h.failed, 1);
    assert_int_equal(h.lost_from, 1600);
    assert_lost_as_silence(m, &h);
    audio(rec, m, 0, pos, a, sizeof a);
    finished d;
    finish(f, rec, &d);
    assert_int_equal(d.err, 0);
    assert_int_equal(d.lost, h.lost_to - h.lost_from);
    assert_int_equal(d.frames, pos + sizeof a);
    assert_wav(d.path, m);
    cs_recorders_stats_get(f->r, &st);
    assert_int_equal(st.failing, 0);
    assert_int_equal(st.errors, 1);
    assert_true(st.retries >= 1);
    assert_int_equal(st.lost_frames, d.lost);
    free(m);
}

/* No descriptor left to create the file with: it is created later, when one is. */
static void a_file_that_cannot_be_created_is_tried_again(void **state)
{
    fixture *f = *state;
    heard h = {0};
    cs_recording *rec = open_refused(f, NO_DESCRIPTOR, 2, &h);
    tu_limit_open_files(-1);
    assert_int_equal(h.err, -EMFILE);
    assert_int_equal(h.failed_at, 0);
    assert_null(cs_recording_path(rec));

    model *m = model_new(2);
    uint64_t pos = 0;
    uint8_t a[160];
    pattern(a, sizeof a, 7);
    audio(rec, m, 1, 0, a, sizeof a); /* lost: the other channel too */
    feed_until_resumed(f, rec, m, &h, &pos);
    assert_string_equal(cs_recording_path(rec), path_in(f, "CA1.wav"));
    assert_int_equal(h.lost_from, 0);
    for (uint64_t i = h.lost_from; i < h.lost_to; i++) m->pcm[2 * i] = m->pcm[2 * i + 1] = 0;
    audio(rec, m, 1, pos, a, sizeof a);
    finished d;
    finish(f, rec, &d);
    assert_int_equal(d.err, 0);
    assert_int_equal(d.lost, h.lost_to);
    assert_wav(d.path, m);
    free(m);
}

/* The file never came to be: no recording, and no empty file left behind. */
static void a_recording_that_never_had_a_file(void **state)
{
    fixture *f = *state;
    heard h = {0};
    cs_recording *rec = open_refused(f, NO_ROOM, 1, &h); /* created, but not its header */
    uint8_t a[160];
    pattern(a, sizeof a, 1);
    run_for(f, 2 * CS_REC_RETRY_MIN_MS); /* an attempt falls due… */
    cs_recording_audio(rec, 0, 0, a, sizeof a);
    cs_recording_flush(rec); /* …and fails */
    cs_recording_audio(rec, 0, 160, a, sizeof a);
    finished d;
    finish(f, rec, &d);
    tu_limit_file_size(-1);
    assert_int_equal(h.failed, 1);
    assert_int_equal(h.resumed, 0);
    assert_int_equal(d.err, -EFBIG);
    assert_string_equal(d.path, "");
    assert_int_equal(d.frames, 0);
    assert_int_equal(d.lost, 320);
    assert_int_equal(access(path_in(f, "CA1.wav"), F_OK), -1);
    cs_recorders_stats st;
    cs_recorders_stats_get(f->r, &st);
    assert_int_equal(st.failing, 0);
    assert_int_equal(st.errors, 1);
    assert_int_equal(st.lost_frames, 320);
    assert_true(st.retries >= 1);
}

/* A header that cannot be created leaves the name claimed: the retry uses that file. */
static void a_file_claimed_but_not_written_is_reused(void **state)
{
    fixture *f = *state;
    heard h = {0};
    cs_recording *rec = open_refused(f, NO_ROOM, 1, &h);
    tu_limit_file_size(-1);
    assert_int_equal(h.err, -EFBIG);
    model *m = model_new(1);
    uint64_t pos = 0;
    feed_until_resumed(f, rec, m, &h, &pos);
    assert_lost_as_silence(m, &h);
    finished d;
    finish(f, rec, &d);
    assert_string_equal(d.path, path_in(f, "CA1.wav"));
    assert_int_equal(access(path_in(f, "CA1-2.wav"), F_OK), -1);
    assert_wav(d.path, m);
    free(m);
}

/* ---- free space ---- */

static bool disk_known(void *data)
{
    cs_recorders_stats st;
    cs_recorders_stats_get(data, &st);
    return st.disk_known;
}

static void free_space_is_watched(void **state)
{
    fixture *f = *state;
    start(f, NO_HEADER_UPDATE);
    tu_log_capture_start();
    assert_int_equal(cs_recorders_watch_disk(f->r, &f->loop, UINT64_MAX, true), 0);
    assert_int_equal(cs_recorders_watch_disk(f->r, &f->loop, 0, true), CS_ESTATE);
    assert_true(tu_run_until(&f->loop, disk_known, f->r, TU_WAIT_MS));
    tu_log_capture_stop();
    cs_recorders_stats st;
    cs_recorders_stats_get(f->r, &st);
    assert_true(st.disk_low); /* nothing has that much */
    assert_true(st.disk_free > 0 && st.disk_free <= st.disk_total);
    assert_int_equal(st.disk_low_bytes, UINT64_MAX);
    assert_true(tu_log_contains("free on the filesystem of"));
    cs_recorders_free(f->r);

    /* A threshold of 0 never warns. */
    start(f, NO_HEADER_UPDATE);
    tu_log_capture_start();
    assert_int_equal(cs_recorders_watch_disk(f->r, &f->loop, 0, true), 0);
    assert_true(tu_run_until(&f->loop, disk_known, f->r, TU_WAIT_MS));
    tu_log_capture_stop();
    cs_recorders_stats_get(f->r, &st);
    assert_false(st.disk_low);
    assert_false(tu_log_contains("free on the filesystem of"));
}

static void directories_are_created(void **state)
{
    fixture *f = *state;
    char nested[PATH_MAX];
    snprintf(nested, sizeof nested, "%s/a/b/c", f->dir);
    assert_int_equal(cs_recorders_new(&f->r, f->mb, nested, NO_HEADER_UPDATE), 0);
    struct stat st;
    assert_int_equal(stat(nested, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    cs_recorders_free(f->r);
    f->r = NULL;

    write_bytes(path_in(f, "file"), "x", 1);
    char under_file[PATH_MAX];
    snprintf(under_file, sizeof under_file, "%s/file/rec", f->dir);
    tu_log_capture_start();
    cs_recorders *r = NULL;
    assert_int_equal(cs_recorders_new(&r, f->mb, under_file, NO_HEADER_UPDATE), -ENOTDIR);
    tu_log_capture_stop();
    assert_null(r);
    assert_true(tu_log_contains("recorder: cannot create"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(places_audio_with_silent_gaps, setup, teardown),
        cmocka_unit_test_setup_teardown(overwrites_what_was_written, setup, teardown),
        cmocka_unit_test_setup_teardown(interleaves_stereo_across_windows, setup, teardown),
        cmocka_unit_test_setup_teardown(long_writes_are_split_into_chunks, setup, teardown),
        cmocka_unit_test_setup_teardown(mono_ignores_the_second_channel, setup, teardown),
        cmocka_unit_test_setup_teardown(cut_silences_one_channel, setup, teardown),
        cmocka_unit_test_setup_teardown(header_follows_the_data_when_due, setup, teardown),
        cmocka_unit_test_setup_teardown(header_waits_for_its_interval, setup, teardown),
        cmocka_unit_test_setup_teardown(same_name_gets_the_next_free_file, setup, teardown),
        cmocka_unit_test_setup_teardown(all_names_taken_is_an_error, setup, teardown),
        cmocka_unit_test_setup_teardown(invalid_names_are_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(repairs_unfinished_files_at_start, setup, teardown),
        cmocka_unit_test_setup_teardown(backlog_returns_to_zero, setup, teardown),
        cmocka_unit_test_setup_teardown(free_finalizes_open_recordings, setup, teardown),
        cmocka_unit_test_setup_teardown(unwritable_directory_is_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(a_run_past_the_wav_limit_is_skipped, setup, teardown),
        cmocka_unit_test_setup_teardown(a_full_disk_loses_audio_until_there_is_room, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_file_that_cannot_be_created_is_tried_again, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_recording_that_never_had_a_file, setup, teardown),
        cmocka_unit_test_setup_teardown(a_file_claimed_but_not_written_is_reused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(free_space_is_watched, setup, teardown),
        cmocka_unit_test_setup_teardown(directories_are_created, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
