/* Where a sign-in may lead (`next`): only a path of this site, whatever encoding, control
 * character or backslash tries to turn it into another site. Values are given as they
 * come in the login form's body, so they pass the form decoding the handler uses. */
#include "testutil.h"

#include <stdio.h>
#include <string.h>

#include "http/auth.h"
#include "net/form.h"

/* cs_auth_next_ok on `value` as the login handler sees it; a body the form parser
 * refuses never reaches it (the login answers 400), which counts as refused. */
static bool next_ok(const char *value)
{
    char body[3 * CS_NEXT_MAX];
    snprintf(body, sizeof body, "next=%s", value);
    cs_form f;
    if (cs_form_parse(&f, body, strlen(body)) < 0) return false;
    bool ok = cs_auth_next_ok(cs_form_get(&f, "next"));
    cs_form_free(&f);
    return ok;
}

static void hostile_values_are_refused(void **state)
{
    (void)state;
    static const char *const hostile[] = {
        "",               /* empty */
        "/",              /* nothing after the slash */
        "//evil.example", /* scheme-relative */
        "///evil.example",
        "/%2Fevil.example", /* the same, encoded */
        "%2F%2Fevil.example",
        "/%5Cevil.example", /* '\' is '/' to browsers */
        "%5C%5Cevil.example",
        "/x%5Cy",            /* a backslash anywhere */
        "/%09/evil.example", /* browsers drop the tab: //evil */
        "/%0A/evil.example",
        "/%0D/evil.example",
        "%09",
        "%0d%0a",
        "/x%0d%0aSet-Cookie:%20a=1", /* header injection */
        "/x%7F",                     /* DEL */
        "/%252F/evil.example",       /* encoded twice */
        "/%255Cevil.example",
        "/%2509/evil.example",
        "/x%250d%250aSet-Cookie:a",
        "/%25252F/evil.example", /* three times */
        "/%2500",                /* a NUL once decoded */
        "/%00",                  /* a NUL: the form itself is refused */
        "/%",                    /* malformed */
        "/%2525",                /* malformed once decoded twice */
        "/a%2525252525",         /* still encoded after CS_NEXT_DECODES */
        "https://evil.example/", /* absolute */
        "https%3A%2F%2Fevil.example%2F",
        "http:/evil.example",
        "//evil.example@callstream/",
        "javascript:alert(1)",
        "javascript%3Aalert(1)",
        "+/calls_monitoring", /* a leading space */
        "evil.example",
        "calls_monitoring",
    };
    int accepted = 0;
    for (size_t i = 0; i < sizeof hostile / sizeof *hostile; i++)
        if (next_ok(hostile[i])) {
            print_error("next=%s accepted\n", hostile[i]);
            accepted++;
        }
    assert_int_equal(accepted, 0);
    assert_false(cs_auth_next_ok(NULL));
}

static void paths_of_ours_are_followed(void **state)
{
    (void)state;
    static const char *const ours[] = {
        "/calls_monitoring",
        "%2Fcalls_monitoring",
        "/calls_monitoring/CA0123456789abcdef0123456789abcdef",
        "/calls_monitoring%3Fx%3D1",
        "/a%2520b", /* "/a%20b": an encoded space stays a space in the path */
        "/caf%C3%A9",
        "/.//evil.example",     /* a path on this site: "." goes, the host stays */
        "/javascript:alert(1)", /* a path that only looks like a scheme */
    };
    int refused = 0;
    for (size_t i = 0; i < sizeof ours / sizeof *ours; i++)
        if (!next_ok(ours[i])) {
            print_error("next=%s refused\n", ours[i]);
            refused++;
        }
    assert_int_equal(refused, 0);
}

static void long_values_are_refused(void **state)
{
    (void)state;
    char v[CS_NEXT_MAX + 1];
    memset(v, 'a', sizeof v - 1);
    v[0] = '/';
    v[CS_NEXT_MAX - 1] = '\0'; /* the longest followed */
    assert_true(cs_auth_next_ok(v));
    v[CS_NEXT_MAX - 1] = 'a';
    v[CS_NEXT_MAX] = '\0';
    assert_false(cs_auth_next_ok(v));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hostile_values_are_refused),
        cmocka_unit_test(paths_of_ours_are_followed),
        cmocka_unit_test(long_values_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
