#include "testutil.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"

/* The lines the sink received: how many, and the last one. The sink may run on another
 * thread, so it only records; the tests check. */
static struct {
    int lines;
    enum cs_log_level level;
    void *data;
    char line[8192];
} seen;

static void sink(enum cs_log_level level, const char *line, void *data)
{
    seen.lines++;
    seen.level = level;
    seen.data = data;
    snprintf(seen.line, sizeof seen.line, "%s", line);
}

static enum cs_log_level saved_min;

static int setup(void **state)
{
    (void)state;
    memset(&seen, 0, sizeof seen);
    saved_min = cs_log_min;
    cs_log_set_sink(sink, &seen);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    cs_log_set_sink(NULL, NULL);
    cs_log_set_ctx(NULL);
    cs_log_min = saved_min;
    return 0;
}

/* What follows the timestamp and level: "2024-06-01T12:34:56.789Z info  ". */
static const char *message(const char *line)
{
    static const char stamp[] = "dddd-dd-ddTdd:dd:dd.dddZ ";
    for (size_t i = 0; i < sizeof stamp - 1; i++) {
        if (stamp[i] == 'd' ? line[i] < '0' || line[i] > '9' : line[i] != stamp[i])
            fail_msg("bad timestamp in \"%s\"", line);
    }
    return line + sizeof stamp - 1 + 6; /* the level, padded to 5, and a space */
}

static int evaluated;

static int count_evaluation(void)
{
    return ++evaluated;
}

static void nothing_is_formatted_below_the_level(void **state)
{
    (void)state;
    evaluated = 0;
    cs_log_min = CS_LOG_WARN;
    cs_debug("%d", count_evaluation());
    cs_info("%d", count_evaluation());
    assert_int_equal(evaluated, 0);
    assert_int_equal(seen.lines, 0);
    cs_warn("w%d", count_evaluation());
    assert_int_equal(evaluated, 1);
    assert_int_equal(seen.lines, 1);
    assert_string_equal(message(seen.line), "w1");
    cs_error("e%d", count_evaluation());
    assert_int_equal(seen.lines, 2);

    cs_log_min = CS_LOG_DEBUG;
    cs_debug("d%d", count_evaluation());
    assert_int_equal(seen.lines, 3);
    assert_string_equal(message(seen.line), "d3");
}

static void the_sink_receives_each_line(void **state)
{
    (void)state;
    cs_log_min = CS_LOG_DEBUG;
    static const struct {
        enum cs_log_level level;
        const char *name;
    } levels[] = {{CS_LOG_DEBUG, "debug"},
                  {CS_LOG_INFO, "info "},
                  {CS_LOG_WARN, "warn "},
                  {CS_LOG_ERROR, "error"}};
    for (int i = 0; i < 4; i++) {
        cs_log(levels[i].level, "line %d: %s", i, "text");
        assert_int_equal(seen.lines, i + 1);
        assert_int_equal(seen.level, levels[i].level);
        assert_ptr_equal(seen.data, &seen);
        assert_memory_equal(message(seen.line) - 6, levels[i].name, 5); /* just before it */
        char want[32];
        snprintf(want, sizeof want, "line %d: text", i);
        assert_string_equal(message(seen.line), want);
    }
}

static void the_default_sink_is_stderr(void **state)
{
    (void)state;
    cs_log_set_sink(NULL, NULL);
    FILE *f = tmpfile();
    assert_non_null(f);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    dup2(fileno(f), STDERR_FILENO);
    cs_error("to stderr %d", 7);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);

    char text[256] = "";
    rewind(f);
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    assert_true(n > 0);
    text[n] = '\0';
    assert_string_equal(message(text), "to stderr 7\n");
    assert_int_equal(seen.lines, 0);
}

static void *log_from_another_thread(void *arg)
{
    (void)arg;
    cs_warn("elsewhere");
    return NULL;
}

static void the_call_context_is_appended(void **state)
{
    (void)state;
    cs_log_ctx both = {"CA1", "MZ1"}, call = {"CA2", NULL}, stream = {NULL, "MZ3"};
    assert_null(cs_log_set_ctx(&both));
    cs_warn("hello");
    assert_string_equal(message(seen.line), "hello call=CA1 stream=MZ1");

    /* Per thread: another thread's lines carry no context. */
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, log_from_another_thread, NULL), 0);
    pthread_join(t, NULL);
    assert_string_equal(message(seen.line), "elsewhere");

    assert_ptr_equal(cs_log_set_ctx(&call), &both);
    cs_warn("hello");
    assert_string_equal(message(seen.line), "hello call=CA2");
    assert_ptr_equal(cs_log_set_ctx(&stream), &call);
    cs_warn("hello");
    assert_string_equal(message(seen.line), "hello stream=MZ3");
    assert_ptr_equal(cs_log_set_ctx(NULL), &stream);
    cs_warn("hello");
    assert_string_equal(message(seen.line), "hello");
}

/* Whether `s` is `n` or more copies of `c` and nothing else. */
static int all(const char *s, char c, size_t n)
{
    size_t i = 0;
    while (s[i] == c) i++;
    return s[i] == '\0' && i >= n;
}

static void long_lines_are_cut(void **state)
{
    (void)state;
    char *big = malloc(5001);
    assert_non_null(big);
    memset(big, 'x', 5000);
    big[5000] = '\0';

    cs_warn("%s", big);
    const char *m = message(seen.line);
    assert_true(strlen(m) < 5000);
    assert_true(all(m, 'x', 1000));

    /* The context survives a cut message. */
    cs_log_ctx ctx = {"CA1", "MZ1"};
    cs_log_set_ctx(&ctx);
    cs_warn("%s", big);
    m = message(seen.line);
    const char *tail = " call=CA1 stream=MZ1";
    size_t n = strlen(m);
    assert_true(n < 5000 && n > strlen(tail));
    assert_string_equal(m + n - strlen(tail), tail);
    char *cut = strndup(m, n - strlen(tail));
    assert_true(all(cut, 'x', 1000));
    free(cut);

    /* A context too long for a line is cut too. */
    cs_log_ctx huge = {big, big};
    cs_log_set_ctx(&huge);
    cs_warn("short");
    m = message(seen.line);
    assert_true(strlen(m) < 5000);
    assert_true(strncmp(m, "short call=xxx", 14) == 0);
    free(big);
}

static void level_names(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        int want;
    } cases[] = {
        {"debug", CS_LOG_DEBUG},
        {"info", CS_LOG_INFO},
        {"warn", CS_LOG_WARN},
        {"error", CS_LOG_ERROR},
        {"DEBUG", CS_LOG_DEBUG},
        {"Info", CS_LOG_INFO},
        {"warning", CS_LOG_WARN},
        {"WARNING", CS_LOG_WARN},
        {"", -1},
        {"verbose", -1},
        {"inf", -1},
        {"errors", -1},
        {" info", -1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        if (cs_log_level_parse(cases[i].name) != cases[i].want)
            fail_msg("\"%s\": %d", cases[i].name, cs_log_level_parse(cases[i].name));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(nothing_is_formatted_below_the_level, setup, teardown),
        cmocka_unit_test_setup_teardown(the_sink_receives_each_line, setup, teardown),
        cmocka_unit_test_setup_teardown(the_default_sink_is_stderr, setup, teardown),
        cmocka_unit_test_setup_teardown(the_call_context_is_appended, setup, teardown),
        cmocka_unit_test_setup_teardown(long_lines_are_cut, setup, teardown),
        cmocka_unit_test(level_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
