#include "testutil.h"

#include <string.h>

#include "core/err.h"

static const struct {
    int code;
    const char *message;
} project[] = {
#define CODE(name, msg) {CS_E##name, msg},
    CS_ERR_MAP(CODE)
#undef CODE
};
#define NPROJECT (sizeof project / sizeof *project)

static const struct {
    int code;
    const char *name;
} libuv[] = {
#define CODE(name, msg) {UV_##name, #name},
    UV_ERRNO_MAP(CODE)
#undef CODE
};
#define NLIBUV (sizeof libuv / sizeof *libuv)

static void success(void **state)
{
    (void)state;
    assert_string_equal(cs_strerror(0), "success");
    assert_string_equal(cs_strerror(17), "success"); /* bytes consumed */
}

static void project_codes(void **state)
{
    (void)state;
    assert_int_equal(NPROJECT, CS_ERR_COUNT);
    for (size_t i = 0; i < NPROJECT; i++) {
        assert_int_equal(project[i].code, CS_ERR_BASE - 1 - (int)i);
        assert_string_equal(cs_strerror(project[i].code), project[i].message);
        for (size_t k = 0; k < i; k++)
            if (strcmp(project[i].message, project[k].message) == 0)
                fail_msg("codes %d and %d share a message", project[i].code, project[k].code);
    }
    /* Neighbours of the table are not project codes. */
    assert_string_not_equal(cs_strerror(CS_ERR_BASE), project[0].message);
    assert_string_not_equal(cs_strerror(CS_ERR_BASE - 1 - CS_ERR_COUNT),
                            project[NPROJECT - 1].message);
}

static void errno_values(void **state)
{
    (void)state;
    static const int errs[] = {EPERM,  ENOENT,    EINTR,      EAGAIN,   ENOMEM,
                               EINVAL, EMSGSIZE,  EPROTO,     ENOSPC,   ECONNRESET,
                               EPIPE,  ETIMEDOUT, EADDRINUSE, EHWPOISON};
    for (size_t i = 0; i < sizeof errs / sizeof *errs; i++)
        assert_string_equal(cs_strerror(-errs[i]), strerror(errs[i]));
}

static void libuv_codes(void **state)
{
    (void)state;
    /* libuv reports some failures with codes of its own (UV_EOF, UV_EAI_*), not -errno. */
    assert_string_equal(cs_strerror(UV_EOF), "end of file");
    assert_string_equal(cs_strerror(UV_EAI_NONAME), "unknown node or service");
    for (size_t i = 0; i < NLIBUV; i++) {
        const char *m = cs_strerror(libuv[i].code);
        assert_non_null(m);
        if (strncmp(m, "Unknown error", 13) == 0) fail_msg("UV_%s has no message", libuv[i].name);
        for (size_t k = 0; k < NPROJECT; k++)
            if (libuv[i].code == project[k].code)
                fail_msg("UV_%s is also a project code", libuv[i].name);
    }
}

static void unknown_codes(void **state)
{
    (void)state;
    /* Neither errno, libuv nor ours: still a message. */
    static const int codes[] = {-3999, -4000, -5000, -100000};
    for (size_t i = 0; i < sizeof codes / sizeof *codes; i++) {
        const char *m = cs_strerror(codes[i]);
        assert_non_null(m);
        assert_true(m[0] != '\0');
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(success),       cmocka_unit_test(project_codes),
        cmocka_unit_test(errno_values),  cmocka_unit_test(libuv_codes),
        cmocka_unit_test(unknown_codes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
