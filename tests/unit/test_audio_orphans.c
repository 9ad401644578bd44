#include "testutil.h"

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audio/orphans.h"
#include "audio/wav.h"
#include "core/worker.h"

typedef struct fixture {
    tu_env env;
    cs_recorders *r;
    cs_orphan found[4];
    size_t nfound; /* as the callback saw it */
    bool done;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    *state = f;
    return f ? tu_env_open(&f->env, "cs-test-orphans") : -1;
}

static int teardown(void **state)
{
    fixture *f = *state;
    cs_recorders_free(f->r);
    int rc = tu_env_close(&f->env);
    free(f);
    return rc;
}

/* A recording as a killed run leaves it: `frames` of audio, a header that says
 * `header_frames`, changed `age_s` seconds ago. */
static void left_behind(const fixture *f, const char *name, unsigned channels,
                        uint32_t header_frames, uint32_t frames, int age_s)
{
    const char *path = tu_path_in(&f->env, name);
    FILE *file = fopen(path, "wb");
    assert_non_null(file);
    uint8_t h[CS_WAV_HEADER_LEN];
    cs_wav_header(h, 8000, channels, header_frames * channels * 2);
    assert_int_equal(fwrite(h, 1, sizeof h, file), sizeof h);
    for (uint32_t i = 0; i < frames * channels; i++) {
        int16_t v = (int16_t)(i * 7);
        assert_int_equal(fwrite(&v, 2, 1, file), 1);
    }
    assert_int_equal(fclose(file), 0);
    struct timespec t[2] = {{.tv_nsec = UTIME_OMIT}};
    clock_gettime(CLOCK_REALTIME, &t[1]);
    t[1].tv_sec -= age_s;
    assert_int_equal(utimensat(AT_FDCWD, path, t, 0), 0);
}

static void on_found(void *data, cs_orphan *found, size_t n)
{
    fixture *f = data;
    assert_ptr_equal(found, f->found);
    f->nfound = n;
    f->done = true;
}

static bool found_all(void *data)
{
    return ((fixture *)data)->done;
}

static long header_frames(const char *path, unsigned channels)
{
    size_t len;
    uint8_t *text = tu_read_file(path, &len);
    assert_non_null(text);
    uint32_t data = (uint32_t)text[40] | (uint32_t)text[41] << 8 | (uint32_t)text[42] << 16 |
                    (uint32_t)text[43] << 24;
    free(text);
    return (long)(data / (channels * 2));
}

/* The newest file of each name (a later stream of the same call took <sid>-2.wav),
 * repaired, with its length; a name without a file, or with a file that is not a
 * recording, gets none. */
static void finds_the_newest_file_of_each_call(void **state)
{
    fixture *f = *state;
    left_behind(f, "CA1.wav", 2, 800, 800, 60);
    left_behind(f, "CA1-2.wav", 2, 0, 1600, 0);
    left_behind(f, "CA1-x.wav", 2, 0, 3200, 0); /* not a name of ours: CA1-x */
    left_behind(f, "CA10.wav", 1, 400, 400, 0);
    FILE *junk = fopen(tu_path_in(&f->env, "CA3.wav"), "wb");
    assert_non_null(junk);
    fputs("not a wav at all, not even close to one", junk);
    fclose(junk);
    assert_int_equal(cs_recorders_new(&f->r, f->env.mb, f->env.dir, 3600), 0);

    static const char *const names[] = {"CA2", "CA1", "CA3", "CA10"};
    for (size_t i = 0; i < 4; i++)
        snprintf(f->found[i].name, sizeof f->found[i].name, "%s", names[i]);
    assert_int_equal(cs_orphans_find(f->r, f->found, 4, on_found, f), 0);
    assert_false(f->done); /* answered from the loop, later */
    assert_true(tu_run_until(&f->env.loop, found_all, f, TU_WAIT_MS));
    assert_int_equal(f->nfound, 4);
    /* sorted by name */
    assert_string_equal(f->found[0].name, "CA1");
    assert_string_equal(f->found[0].path, tu_path_in(&f->env, "CA1-2.wav"));
    assert_int_equal(f->found[0].frames, 1600);
    assert_int_equal(header_frames(f->found[0].path, 2), 1600);
    assert_string_equal(f->found[1].name, "CA10");
    assert_string_equal(f->found[1].path, tu_path_in(&f->env, "CA10.wav"));
    assert_int_equal(f->found[1].frames, 400);
    assert_string_equal(f->found[2].name, "CA2");
    assert_string_equal(f->found[2].path, "");
    assert_string_equal(f->found[3].name, "CA3");
    assert_string_equal(f->found[3].path, "");
    assert_true(tu_log_contains("of an unfinished call cannot be used"));
}

static void a_missing_folder_finds_nothing(void **state)
{
    fixture *f = *state;
    assert_int_equal(cs_recorders_new(&f->r, f->env.mb, f->env.dir, 3600), 0);
    tu_rmtree(f->env.dir);
    snprintf(f->found[0].name, sizeof f->found[0].name, "CA1");
    assert_int_equal(cs_orphans_find(f->r, f->found, 1, on_found, f), 0);
    assert_true(tu_run_until(&f->env.loop, found_all, f, TU_WAIT_MS));
    assert_string_equal(f->found[0].path, "");
    assert_true(tu_log_contains("cannot list"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(finds_the_newest_file_of_each_call, setup, teardown),
        cmocka_unit_test_setup_teardown(a_missing_folder_finds_nothing, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
