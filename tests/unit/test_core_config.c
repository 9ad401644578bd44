#include "testutil.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "core/err.h"

/* Every setting as the table declares it. */
static const struct {
    const char *env, *def, *help; /* def: as usage prints it */
    size_t field;                 /* offset in cs_config */
    bool number;
    int64_t min, max;
} settings[] = {
#define SET_S(field, env, def, help) {env, "\"" def "\"", help, offsetof(cs_config, field)},
#define SET_N(field, env, def, min, max, help)                                                     \
    {env, #def, help, offsetof(cs_config, field), true, min, max},
    CS_CONFIG_MAP(SET_S, SET_N)
#undef SET_S
#undef SET_N
};
#define NSETTINGS (sizeof settings / sizeof *settings)

/* "MAX_CALL_S" → "--max-call-s" */
static void flag_of(char *out, size_t cap, const char *env)
{
    snprintf(out, cap, "--%s", env);
    for (char *p = out + 2; *p; p++) *p = *p == '_' ? '-' : (char)tolower((unsigned char)*p);
}

/* Each test runs in a new empty directory (so no ./.env is found by accident) with none of
 * the settings in its environment; both are put back afterwards. */
static struct {
    char *dir, *cwd;
    char *saved[NSETTINGS];
} fx;

static int setup(void **state)
{
    (void)state;
    for (size_t i = 0; i < NSETTINGS; i++) {
        const char *v = getenv(settings[i].env);
        fx.saved[i] = v ? strdup(v) : NULL;
        unsetenv(settings[i].env);
    }
    fx.cwd = getcwd(NULL, 0);
    fx.dir = tu_mkdtemp("cs-config");
    return fx.cwd && fx.dir && chdir(fx.dir) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    for (size_t i = 0; i < NSETTINGS; i++) {
        if (fx.saved[i])
            setenv(settings[i].env, fx.saved[i], 1);
        else
            unsetenv(settings[i].env);
        free(fx.saved[i]);
    }
    int rc = chdir(fx.cwd);
    tu_rmtree(fx.dir);
    free(fx.dir);
    free(fx.cwd);
    return rc;
}

/* Writes `text` to `name` in the test's directory; returns its path (a static buffer). */
static const char *write_file(const char *name, const char *text)
{
    static char path[4096];
    snprintf(path, sizeof path, "%s/%s", fx.dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

/* One cs_config_load and what it gave. */
typedef struct load {
    cs_config c;
    cs_buf err;
    int rc, argi, help;
} load;

#define ARGS(...) ((char *[]){__VA_ARGS__, NULL})

/* Loads with the NULL-terminated `argv`, flags starting at `first`. */
static void load_from(load *l, const char *env_file, char **argv, int first)
{
    int argc = 0;
    while (argv && argv[argc]) argc++;
    cs_buf_init(&l->err, 4096);
    l->argi = first;
    l->help = -1;
    l->rc = cs_config_load(&l->c, env_file, argc, argv, &l->argi, &l->help, &l->err);
    if (l->rc == 0) assert_int_equal(l->err.len, 0);
}

static void load_args(load *l, const char *env_file, char **argv)
{
    load_from(l, env_file, argv, 0);
}

static void unload(load *l)
{
    cs_config_free(&l->c);
    cs_buf_free(&l->err);
}

static void defaults(void **state)
{
    (void)state;
    load l;
    load_args(&l, NULL, NULL);
    assert_int_equal(l.rc, 0);
    assert_int_equal(l.argi, 0);
    assert_int_equal(l.help, 0);
    assert_null(l.c.env_file);
#define CHECK_S(field, env, def, help)           assert_string_equal(l.c.field, def);
#define CHECK_N(field, env, def, min, max, help) assert_int_equal(l.c.field, def);
    CS_CONFIG_MAP(CHECK_S, CHECK_N)
#undef CHECK_S
#undef CHECK_N
    unload(&l);
    cs_config_free(&l.c); /* idempotent */
}

static const char env_text[] = "# a comment\n"
                               "   # an indented comment\n"
                               "\n"
                               "PORT=9001\n"
                               "export BIND=0.0.0.0\n"
                               "GREETING=\"Hello # not a comment\"\n"
                               "VOICE='Polly.Joanna'\n"
                               "DIAL=+15550100 # a comment\n"
                               "  AGENT = echo  \n"
                               "STREAM_PARAMS=a=1&b=2\n"
                               "DATA_DIR=/tmp/a#b\n"
                               "PUBLIC_URL=https://x.example\r\n"
                               "TWILIO_ACCOUNT_SID=\"AC123\"\r\n"
                               "\r\n"
                               "TLS_CERT=\"\"\n"
                               "UNRELATED=for another tool\n"
                               "a line without an equals sign\n"
                               "LOG_LEVEL=debug"; /* no newline at the end */

static void env_file_syntax(void **state)
{
    (void)state;
    const char *path = write_file("settings.env", env_text);
    load l;
    load_args(&l, path, NULL);
    assert_int_equal(l.rc, 0);
    assert_string_equal(l.c.env_file, path);
    assert_int_equal(l.c.port, 9001);
    assert_string_equal(l.c.bind, "0.0.0.0");
    assert_string_equal(l.c.greeting, "Hello # not a comment");
    assert_string_equal(l.c.voice, "Polly.Joanna");
    assert_string_equal(l.c.dial, "+15550100");
    assert_string_equal(l.c.agent, "echo");
    assert_string_equal(l.c.stream_params, "a=1&b=2");
    assert_string_equal(l.c.data_dir, "/tmp/a#b");
    assert_string_equal(l.c.public_url, "https://x.example");
    assert_string_equal(l.c.twilio_account_sid, "AC123");
    assert_string_equal(l.c.tls_cert, "");
    assert_string_equal(l.c.log_level, "debug");
    assert_string_equal(l.c.stream_mode, "connect"); /* untouched */
    unload(&l);
}

static void collect(const char *k, const char *v, void *data)
{
    assert_int_equal(cs_buf_printf(data, "[%s]=[%s]\n", k, v), 0);
}

static void env_file_reader(void **state)
{
    (void)state;
    const char *path = write_file("raw.env", "A=1\n"
                                             "\tB\t=\t3\t\n"
                                             "C=\n"
                                             "D=\"\n"
                                             "E='x\"\n"
                                             "F=#x\n"
                                             "G=x #y #z\n"
                                             "H='  spaced  '\n"
                                             "=no key\n");
    cs_buf got = CS_BUF_INIT(4096);
    assert_int_equal(cs_config_read_env_file(path, collect, &got), 0);
    assert_string_equal(got.data, "[A]=[1]\n"
                                  "[B]=[3]\n"
                                  "[C]=[]\n"
                                  "[D]=[\"]\n"
                                  "[E]=['x\"]\n"
                                  "[F]=[#x]\n"
                                  "[G]=[x]\n"
                                  "[H]=[  spaced  ]\n"
                                  "[]=[no key]\n");
    cs_buf_reset(&got);
    assert_int_equal(cs_config_read_env_file("missing.env", collect, &got), -ENOENT);
    assert_int_equal(got.len, 0);
    cs_buf_free(&got);
}

static void priority(void **state)
{
    (void)state;
    const char *path = write_file("p.env", "PORT=1001\nGREETING=file\nVOICE=file\n");
    setenv("PORT", "2002", 1);
    setenv("GREETING", "environment", 1);
    load l;
    load_args(&l, path, ARGS("--port", "3003"));
    assert_int_equal(l.rc, 0);
    assert_int_equal(l.c.port, 3003);                 /* flag */
    assert_string_equal(l.c.greeting, "environment"); /* environment over .env */
    assert_string_equal(l.c.voice, "file");           /* .env over default */
    assert_string_equal(l.c.dial, "");                /* default */
    unload(&l);

    load_args(&l, path, NULL);
    assert_int_equal(l.c.port, 2002);
    unload(&l);

    /* A bad .env value the environment replaces is never looked at. */
    path = write_file("bad.env", "PORT=oops\n");
    load_args(&l, path, NULL);
    assert_int_equal(l.rc, 0);
    assert_int_equal(l.c.port, 2002);
    unload(&l);
}

static void flag_forms(void **state)
{
    (void)state;
    load l;
    load_args(&l, NULL,
              ARGS("--port", "9000", "--bind=0.0.0.0", "--greeting=", "--stream-params=a=1&b=2",
                   "--max-connections-per-ip", "7", "--dial", "--not-a-flag-here", "--voice",
                   "x y"));
    assert_int_equal(l.rc, 0);
    assert_int_equal(l.argi, 11);
    assert_int_equal(l.c.port, 9000);
    assert_string_equal(l.c.bind, "0.0.0.0");
    assert_string_equal(l.c.greeting, "");
    assert_string_equal(l.c.stream_params, "a=1&b=2");
    assert_int_equal(l.c.max_connections_per_ip, 7);
    assert_string_equal(l.c.dial, "--not-a-flag-here"); /* a value, whatever it looks like */
    assert_string_equal(l.c.voice, "x y");
    unload(&l);

    load_args(&l, NULL, ARGS("--port", "1", "--port=2")); /* the last one wins */
    assert_int_equal(l.c.port, 2);
    unload(&l);

    load_from(&l, NULL, ARGS("serve", "--port", "5"), 1); /* from *argi on */
    assert_int_equal(l.rc, 0);
    assert_int_equal(l.argi, 3);
    assert_int_equal(l.c.port, 5);
    unload(&l);
}

/* A load that must fail with CS_ECONFIG and a message containing each of `want`. */
static void expect_error(const char *env_file, char **argv, const char *const *want)
{
    load l;
    load_args(&l, env_file, argv);
    assert_int_equal(l.rc, CS_ECONFIG);
    assert_non_null(l.err.data);
    for (; *want; want++)
        if (!strstr(l.err.data, *want)) fail_msg("\"%s\" lacks \"%s\"", l.err.data, *want);
    unload(&l);
}

#define WANT(...) ((const char *const[]){__VA_ARGS__, NULL})

static void bad_flags(void **state)
{
    (void)state;
    expect_error(NULL, ARGS("--nope"), WANT("unknown option --nope"));
    expect_error(NULL, ARGS("--nope=1"), WANT("unknown option --nope=1"));
    expect_error(NULL, ARGS("--port", "1", "--"), WANT("unknown option --"));
    expect_error(NULL, ARGS("--help=1"), WANT("unknown option --help=1"));
    expect_error(NULL, ARGS("--port"), WANT("option --port needs a value"));
    expect_error(NULL, ARGS("--greeting"), WANT("option --greeting needs a value"));
    expect_error(NULL, ARGS("--env-file"), WANT("option --env-file needs a value"));
}

static void number_ranges(void **state)
{
    (void)state;
    for (size_t i = 0; i < NSETTINGS; i++) {
        if (!settings[i].number) continue;
        char flag[64], v[32], range[64], origin[64];
        flag_of(flag, sizeof flag, settings[i].env);
        const int64_t ends[] = {settings[i].min, settings[i].max};
        for (int e = 0; e < 2; e++) {
            load l;
            snprintf(v, sizeof v, "%lld", (long long)ends[e]);
            load_args(&l, NULL, ARGS(flag, v));
            assert_int_equal(l.rc, 0);
            assert_int_equal(*(const int64_t *)((const char *)&l.c + settings[i].field), ends[e]);
            unload(&l);
        }
        snprintf(range, sizeof range, "from %lld to %lld", (long long)settings[i].min,
                 (long long)settings[i].max);
        snprintf(origin, sizeof origin, "%s (flag)", settings[i].env);
        snprintf(v, sizeof v, "%lld", (long long)settings[i].min - 1);
        expect_error(NULL, ARGS(flag, v), WANT(origin, range));
        snprintf(v, sizeof v, "%lld", (long long)settings[i].max + 1);
        expect_error(NULL, ARGS(flag, v), WANT(origin, range));
    }
}

static void bad_numbers(void **state)
{
    (void)state;
    static char *const bad[] = {"80x", "", " ", "0x50", "1e3", "8.0", "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char quoted[64];
        snprintf(quoted, sizeof quoted, "got '%s'", bad[i]);
        expect_error(NULL, ARGS("--port", bad[i]), WANT("PORT (flag)", quoted));
    }

    setenv("MAX_CALL_S", "abc", 1);
    expect_error(NULL, NULL, WANT("MAX_CALL_S (environment)", "got 'abc'"));
    unsetenv("MAX_CALL_S");

    const char *path = write_file("n.env", "GREETING=hi\nPORT=oops\n");
    expect_error(path, NULL, WANT("PORT (.env)", "got 'oops'"));
}

static void env_file_choice(void **state)
{
    (void)state;
    char a[4096];
    snprintf(a, sizeof a, "%s", write_file("a.env", "PORT=4004\n"));
    const char *b = write_file("b.env", "PORT=5005\n");
    load l;
    load_args(&l, b, NULL);
    assert_int_equal(l.c.port, 5005);
    assert_string_equal(l.c.env_file, b);
    unload(&l);

    load_args(&l, b, ARGS("--env-file", a)); /* the flag wins over the caller's choice */
    assert_int_equal(l.rc, 0);
    assert_int_equal(l.c.port, 4004);
    assert_string_equal(l.c.env_file, a);
    assert_int_equal(l.argi, 2);
    unload(&l);

    char flag[4200];
    snprintf(flag, sizeof flag, "--env-file=%s", a);
    load_args(&l, NULL, ARGS("--port", "1", flag));
    assert_int_equal(l.c.port, 1); /* flags still beat the file they name */
    assert_string_equal(l.c.env_file, a);
    assert_int_equal(l.argi, 3);
    unload(&l);

    write_file(".env", "PORT=6006\n"); /* ./.env when nothing is named */
    load_args(&l, NULL, NULL);
    assert_int_equal(l.c.port, 6006);
    assert_string_equal(l.c.env_file, ".env");
    unload(&l);

    expect_error("missing.env", NULL, WANT("cannot read missing.env"));
    expect_error(NULL, ARGS("--env-file", "gone.env"), WANT("cannot read gone.env"));
    expect_error(NULL, ARGS("--env-file=gone.env"), WANT("cannot read gone.env"));
}

static void help(void **state)
{
    (void)state;
    load l;
    load_args(&l, NULL, ARGS("--help"));
    assert_int_equal(l.rc, 0);
    assert_int_equal(l.help, 1);
    assert_int_equal(l.argi, 1);
    unload(&l);

    load_args(&l, NULL, ARGS("-h", "--port", "1")); /* parsing goes on */
    assert_int_equal(l.help, 1);
    assert_int_equal(l.c.port, 1);
    unload(&l);

    load_args(&l, NULL, ARGS("--port", "1"));
    assert_int_equal(l.help, 0);
    unload(&l);
}

static void parsing_stops_at_the_first_non_flag(void **state)
{
    (void)state;
    load l;
    load_args(&l, NULL, ARGS("--port", "1", "extra", "--port", "2"));
    assert_int_equal(l.rc, 0);
    assert_int_equal(l.argi, 2);
    assert_int_equal(l.c.port, 1);
    unload(&l);

    load_args(&l, NULL, ARGS("-x", "--port", "2"));
    assert_int_equal(l.argi, 0);
    assert_true(l.c.port != 2);
    unload(&l);

    /* What follows the first non-flag is not read, --env-file included. */
    load_args(&l, NULL, ARGS("extra", "--env-file", "gone.env"));
    assert_int_equal(l.rc, 0);
    assert_int_equal(l.argi, 0);
    assert_null(l.c.env_file);
    unload(&l);

    /* A value that looks like --env-file is still a value. */
    load_args(&l, NULL, ARGS("--greeting", "--env-file", "--port", "3"));
    assert_int_equal(l.rc, 0);
    assert_string_equal(l.c.greeting, "--env-file");
    assert_int_equal(l.c.port, 3);
    unload(&l);
}

static void usage_lists_every_setting(void **state)
{
    (void)state;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    cs_config_usage(f);
    fclose(f);
    for (size_t i = 0; i < NSETTINGS; i++) {
        char flag[64] = "  ";
        flag_of(flag + 2, sizeof flag - 3, settings[i].env);
        strcat(flag, " ");
        const char *at = strstr(text, flag);
        if (!at) fail_msg("%s is not listed", settings[i].env);
        char *line = strndup(at, strcspn(at, "\n"));
        if (!strstr(line, settings[i].env) || !strstr(line, settings[i].def))
            fail_msg("\"%s\" lacks %s or its default %s", line, settings[i].env, settings[i].def);
        free(line);
        at += strcspn(at, "\n") + 1;
        if (strncmp(at + strspn(at, " "), settings[i].help, strlen(settings[i].help)) != 0)
            fail_msg("%s: the help does not follow", settings[i].env);
    }
    assert_non_null(strstr(text, "--env-file"));
    free(text);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(defaults),
        T(env_file_syntax),
        T(env_file_reader),
        T(priority),
        T(flag_forms),
        T(bad_flags),
        T(number_ranges),
        T(bad_numbers),
        T(env_file_choice),
        T(help),
        T(parsing_stops_at_the_first_non_flag),
        T(usage_lists_every_setting),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
