/* Node-to-node request signatures; see nodesig.h. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "core/crypto.h"
#include "core/err.h"
#include "core/nodesig.h"

static bool node_ok(cs_str node)
{
    if (node.n == 0 || node.n > CS_NODESIG_NODE_MAX) return false;
    for (size_t i = 0; i < node.n; i++) {
        char c = node.p[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        if (!ok) return false;
    }
    return true;
}

/* HMAC-SHA256("METHOD\nPATH\nUNIX_S\nNODE") keyed with `secret`, as hex. */
static void mac_hex(char hex[2 * CS_SHA256_LEN + 1], const char *secret, const char *method,
                    cs_str path, cs_str when, cs_str node)
{
    const void *parts[] = {method, "\n", path.p, "\n", when.p, "\n", node.p};
    const size_t lens[] = {strlen(method), 1, path.n, 1, when.n, 1, node.n};
    uint8_t mac[CS_SHA256_LEN];
    cs_hmac_sha256(mac, secret, strlen(secret), parts, lens, sizeof lens / sizeof *lens);
    cs_hex(hex, mac, sizeof mac);
}

int cs_nodesig_sign(char *out, size_t cap, const char *secret, const char *method, cs_str path,
                    const char *node, int64_t unix_s)
{
    cs_str id = cs_str_of(node);
    if (!node_ok(id) || cap < CS_NODESIG_VALUE_MAX + 1) return CS_EPARSE;
    char when[24];
    snprintf(when, sizeof when, "%" PRId64, unix_s);
    char hex[2 * CS_SHA256_LEN + 1];
    mac_hex(hex, secret, method, path, cs_str_of(when), id);
    snprintf(out, cap, "%s %s %s", node, when, hex);
    return 0;
}

/* The next space-separated field of `*s`. */
static cs_str field(cs_str *s)
{
    const char *sp = memchr(s->p, ' ', s->n);
    cs_str f = {s->p, sp ? (size_t)(sp - s->p) : s->n};
    s->p += f.n + (sp != NULL);
    s->n -= f.n + (sp != NULL);
    return f;
}

int cs_nodesig_check(cs_str value, const char *secret, const char *method, cs_str path,
                     int64_t now_s, char node[CS_NODESIG_NODE_MAX + 1])
{
    node[0] = '\0';
    if (!value.p || value.n > CS_NODESIG_VALUE_MAX) return CS_EPARSE;
    cs_str rest = value;
    cs_str id = field(&rest), when = field(&rest), sig = field(&rest);
    uint64_t t;
    if (!node_ok(id) || rest.n || sig.n != 2 * CS_SHA256_LEN || when.n > 19 ||
        cs_str_to_u64(when, INT64_MAX, &t) < 0)
        return CS_EPARSE;
    int64_t skew = (int64_t)t - now_s;
    if (skew > CS_NODESIG_SKEW_S || skew < -CS_NODESIG_SKEW_S) return -ETIMEDOUT;
    char hex[2 * CS_SHA256_LEN + 1];
    mac_hex(hex, secret, method, path, when, id);
    if (!cs_ct_equal(hex, 2 * CS_SHA256_LEN, sig.p, sig.n)) return CS_EFORBIDDEN;
    memcpy(node, id.p, id.n);
    node[id.n] = '\0';
    return 0;
}
