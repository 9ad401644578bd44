/* Where a sign-in may lead (`next`): only a path of this site, whatever encoding, control
 * character or backslash tries to turn it into another site. Values are given as they
 * come in the login form's body, so they pass the form decoding the handler uses; they
 * are in tests/data/next.txt, which the login page's own test reads too. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
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

/* Every value of tests/data/next.txt, which the login page's test reads too, gets its
 * verdict: "refuse" or "follow". */
static void the_shared_table(void **state)
{
    (void)state;
    size_t len;
    char *table = (char *)tu_read_file(tu_data_path("next.txt"), &len);
    assert_non_null(table);
    int checked = 0, wrong = 0;
    char *save;
    for (char *line = strtok_r(table, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (*line == '#') continue;
        bool follow = strncmp(line, "follow", 6) == 0;
        assert_true(follow || strncmp(line, "refuse", 6) == 0);
        assert_true(line[6] == '\0' || line[6] == ' ');
        const char *value = line[6] ? line + 7 : "";
        checked++;
        if (next_ok(value) != follow) {
            print_error("next=%s %s\n", value, follow ? "refused" : "accepted");
            wrong++;
        }
    }
    free(table);
    assert_int_equal(wrong, 0);
    assert_true(checked >= 40);
    assert_false(cs_auth_next_ok(NULL));
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
        cmocka_unit_test(the_shared_table),
        cmocka_unit_test(long_values_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
