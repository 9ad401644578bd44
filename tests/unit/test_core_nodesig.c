#include "testutil.h"

#include <string.h>

#include "core/err.h"
#include "core/nodesig.h"

#define SECRET "s3cret"
#define PATH   "/api/v1/calls/CA1/recording.wav"
#define T0     1700000000
/* printf 'GET\n/api/v1/calls/CA1/recording.wav\n1700000000\nnode-a' |
 *   openssl dgst -sha256 -hmac s3cret */
#define MAC "7d09038b8e45d0242d56d92b80f8d13abbae0244f2862061a0fd17b58603826c"

static int check(const char *value, const char *secret, const char *method, const char *path,
                 int64_t now, char *node)
{
    return cs_nodesig_check(cs_str_of(value), secret, method, cs_str_of(path), now, node);
}

static void signs_as_openssl_does(void **state)
{
    (void)state;
    char v[CS_NODESIG_VALUE_MAX + 1];
    assert_int_equal(cs_nodesig_sign(v, sizeof v, SECRET, "GET", CS_STR(PATH), "node-a", T0), 0);
    assert_string_equal(v, "node-a 1700000000 " MAC);
    char node[CS_NODESIG_NODE_MAX + 1];
    assert_int_equal(check(v, SECRET, "GET", PATH, T0, node), 0);
    assert_string_equal(node, "node-a");
}

static void time_window(void **state)
{
    (void)state;
    char node[CS_NODESIG_NODE_MAX + 1];
    const char *v = "node-a 1700000000 " MAC;
    assert_int_equal(check(v, SECRET, "GET", PATH, T0 + CS_NODESIG_SKEW_S, node), 0);
    assert_int_equal(check(v, SECRET, "GET", PATH, T0 - CS_NODESIG_SKEW_S, node), 0);
    assert_int_equal(check(v, SECRET, "GET", PATH, T0 + CS_NODESIG_SKEW_S + 1, node), -ETIMEDOUT);
    assert_int_equal(check(v, SECRET, "GET", PATH, T0 - CS_NODESIG_SKEW_S - 1, node), -ETIMEDOUT);
    assert_string_equal(node, "");
}

static void forged(void **state)
{
    (void)state;
    char node[CS_NODESIG_NODE_MAX + 1];
    const char *v = "node-a 1700000000 " MAC;
    /* another secret, method, path, node or time: the MAC does not match */
    assert_int_equal(check(v, "other", "GET", PATH, T0, node), CS_EFORBIDDEN);
    assert_int_equal(check(v, SECRET, "HEAD", PATH, T0, node), CS_EFORBIDDEN);
    assert_int_equal(check(v, SECRET, "GET", "/api/v1/calls/CA2/recording.wav", T0, node),
                     CS_EFORBIDDEN);
    assert_int_equal(check("node-b 1700000000 " MAC, SECRET, "GET", PATH, T0, node), CS_EFORBIDDEN);
    assert_int_equal(check("node-a 1700000001 " MAC, SECRET, "GET", PATH, T0, node), CS_EFORBIDDEN);
    char upper[] = "node-a 1700000000 " MAC;
    upper[sizeof upper - 2] = 'C';
    assert_int_equal(check(upper, SECRET, "GET", PATH, T0, node), CS_EFORBIDDEN);
    assert_string_equal(node, "");
}

static void malformed(void **state)
{
    (void)state;
    char node[CS_NODESIG_NODE_MAX + 1];
    static const char *const bad[] = {
        "",
        "node-a",
        "node-a 1700000000",
        "node-a 1700000000 abc",            /* short MAC */
        "node-a 1700000000 " MAC " extra",  /* a fourth field */
        "node/a 1700000000 " MAC,           /* not a node id */
        " 1700000000 " MAC,                 /* no node */
        "node-a -1700000000 " MAC,          /* not a time */
        "node-a 99999999999999999999 " MAC, /* past int64 */
        "node-a  1700000000 " MAC,          /* two spaces */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(check(bad[i], SECRET, "GET", PATH, T0, node), CS_EPARSE);
    assert_int_equal(cs_nodesig_check(CS_STR_NULL, SECRET, "GET", CS_STR(PATH), T0, node),
                     CS_EPARSE);
    char v[CS_NODESIG_VALUE_MAX + 1];
    assert_int_equal(cs_nodesig_sign(v, sizeof v, SECRET, "GET", CS_STR(PATH), "a b", T0),
                     CS_EPARSE);
    assert_int_equal(cs_nodesig_sign(v, 10, SECRET, "GET", CS_STR(PATH), "node-a", T0), CS_EPARSE);
    char long_id[CS_NODESIG_NODE_MAX + 2];
    memset(long_id, 'n', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = '\0';
    assert_int_equal(cs_nodesig_sign(v, sizeof v, SECRET, "GET", CS_STR(PATH), long_id, T0),
                     CS_EPARSE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(signs_as_openssl_does),
        cmocka_unit_test(time_window),
        cmocka_unit_test(forged),
        cmocka_unit_test(malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
