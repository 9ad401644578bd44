/* X-Twilio-Signature (protocol.md §5), computed and checked the way twilio-python's
 * RequestValidator and twilio-node's validateRequest do. The URL stays a string: its
 * variants only change the port and the path's trailing slash, so each is signed as a
 * few pieces of the original without building it. */
#include "provider/twilio_sig.h"

#include <stdlib.h>
#include <string.h>

#include "core/base64.h"
#include "core/crypto.h"
#include "core/err.h"

/* A URL cut where its variants differ: head "scheme://[userinfo@]host", port ":8443" or
 * empty, path, rest "?query#fragment". */
typedef struct url_parts {
    cs_str head, port, path, rest;
    cs_str default_port; /* ":443" for https and wss, ":80" otherwise (both libraries) */
} url_parts;

enum { URL_PIECES = 5 }; /* head, port, path, slash, rest */

static int url_split(url_parts *u, const char *url)
{
    size_t scheme_len = strcspn(url, ":/?#");
    if (scheme_len == 0 || strncmp(url + scheme_len, "://", 3) != 0) return CS_EAUTH;
    cs_str scheme = {url, scheme_len};
    const char *auth = url + scheme_len + 3;
    const char *auth_end = auth + strcspn(auth, "/?#");
    const char *host = auth;
    for (const char *p = auth; p < auth_end; p++)
        if (*p == '@') host = p + 1;
    if (*host == '[') { /* IPv6 literal: the port comes after the bracket */
        const char *bracket = memchr(host, ']', (size_t)(auth_end - host));
        host = bracket ? bracket : auth_end;
    }
    const char *colon = memchr(host, ':', (size_t)(auth_end - host));
    const char *host_end = colon ? colon : auth_end;
    size_t path_len = strcspn(auth_end, "?#");
    u->head = (cs_str){url, (size_t)(host_end - url)};
    u->port = (cs_str){host_end, (size_t)(auth_end - host_end)};
    u->path = (cs_str){auth_end, path_len};
    u->rest = cs_str_of(auth_end + path_len);
    u->default_port =
        cs_str_ieq(scheme, "https") || cs_str_ieq(scheme, "wss") ? CS_STR(":443") : CS_STR(":80");
    return 0;
}

/* One variant of the URL as pieces: without the port or with it (the scheme's default
 * when none is given), and the path's trailing slash as given or toggled. */
static void url_variant(const url_parts *u, bool with_port, bool toggle_slash,
                        cs_str piece[URL_PIECES])
{
    piece[0] = u->head;
    piece[1] = !with_port ? CS_STR("") : u->port.n ? u->port : u->default_port;
    piece[2] = u->path;
    piece[3] = CS_STR("");
    piece[4] = u->rest;
    if (toggle_slash) {
        if (u->path.n && u->path.p[u->path.n - 1] == '/')
            piece[2].n--;
        else
            piece[3] = CS_STR("/");
    }
}

/* Byte order, a prefix first. */
static int str_cmp(cs_str a, cs_str b)
{
    size_t n = a.n < b.n ? a.n : b.n;
    int c = n ? memcmp(a.p, b.p, n) : 0;
    return c ? c : (a.n > b.n) - (a.n < b.n);
}

static int kv_cmp(const void *a, const void *b)
{
    const cs_kv *x = *(const cs_kv *const *)a, *y = *(const cs_kv *const *)b;
    int c = str_cmp(x->name, y->name);
    return c ? c : str_cmp(x->value, y->value);
}

/* base64(HMAC-SHA1(token, url pieces + sorted params)). */
static int sign(char out[CS_TWILIO_SIG_LEN + 1], const char *token, const cs_str *url, size_t nurl,
                const cs_kv *params, size_t n)
{
    if (n > CS_TWILIO_SIG_MAX_PARAMS) return CS_ELIMIT;
    const cs_kv *sorted[CS_TWILIO_SIG_MAX_PARAMS];
    const void *parts[URL_PIECES + 2 * CS_TWILIO_SIG_MAX_PARAMS];
    size_t lens[URL_PIECES + 2 * CS_TWILIO_SIG_MAX_PARAMS];
    size_t k = 0;
    for (size_t i = 0; i < nurl; i++) {
        parts[k] = url[i].p;
        lens[k++] = url[i].n;
    }
    for (size_t i = 0; i < n; i++) sorted[i] = &params[i];
    qsort(sorted, n, sizeof *sorted, kv_cmp);
    for (size_t i = 0; i < n; i++) {
        if (i && kv_cmp(&sorted[i - 1], &sorted[i]) == 0) continue;
        parts[k] = sorted[i]->name.p;
        lens[k++] = sorted[i]->name.n;
        parts[k] = sorted[i]->value.p;
        lens[k++] = sorted[i]->value.n;
    }
    uint8_t mac[CS_SHA1_LEN];
    int rc = cs_hmac_sha1(mac, token, strlen(token), parts, lens, k);
    if (rc) return rc;
    cs_base64_encode(out, mac, CS_SHA1_LEN);
    out[CS_TWILIO_SIG_LEN] = '\0';
    return 0;
}

int cs_twilio_sig_compute(char out[CS_TWILIO_SIG_LEN + 1], const char *token, const char *url,
                          const cs_kv *params, size_t n)
{
    cs_str whole = cs_str_of(url);
    return sign(out, token, &whole, 1, params, n);
}

/* Whether the URL with and without its port (and each with its trailing slash toggled,
 * when asked) signs to `signature`, compared in constant time. */
static bool any_variant_matches(const char *token, const url_parts *u, bool slash_variants,
                                const cs_kv *params, size_t n, const char *signature)
{
    size_t siglen = strlen(signature);
    for (int with_port = 0; with_port < 2; with_port++) {
        for (int toggle = 0; toggle < (slash_variants ? 2 : 1); toggle++) {
            cs_str piece[URL_PIECES];
            char expected[CS_TWILIO_SIG_LEN + 1];
            url_variant(u, with_port, toggle, piece);
            if (sign(expected, token, piece, URL_PIECES, params, n) == 0 &&
                cs_ct_equal(expected, CS_TWILIO_SIG_LEN, signature, siglen))
                return true;
        }
    }
    return false;
}

/* Value of `name` in the query, undecoded (it is a hex digest); p is NULL when absent. */
static cs_str query_value(cs_str rest, const char *name)
{
    if (rest.n == 0 || rest.p[0] != '?') return CS_STR_NULL;
    size_t name_len = strlen(name);
    const char *p = rest.p + 1, *end = p + strcspn(p, "#");
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pair_end = amp ? amp : end;
        if ((size_t)(pair_end - p) > name_len && memcmp(p, name, name_len) == 0 &&
            p[name_len] == '=')
            return (cs_str){p + name_len + 1, (size_t)(pair_end - p) - name_len - 1};
        p = pair_end + 1;
    }
    return CS_STR_NULL;
}

static bool usable(const char *token, const char *url, const char *signature, url_parts *u)
{
    return token && *token && url && signature && url_split(u, url) == 0;
}

int cs_twilio_sig_check_webhook(const char *token, const char *url, const cs_kv *params, size_t n,
                                const char *body, size_t body_len, const char *signature)
{
    url_parts u;
    if (!usable(token, url, signature, &u)) return CS_EAUTH;
    cs_str body_hash = query_value(u.rest, "bodySHA256");
    if (body_hash.p) { /* §5.2: the hash in the signed URL covers the body */
        uint8_t digest[CS_SHA256_LEN];
        char hex[2 * CS_SHA256_LEN + 1];
        cs_sha256(digest, body ? body : "", body_len);
        cs_hex(hex, digest, CS_SHA256_LEN);
        if (!cs_ct_equal(hex, 2 * CS_SHA256_LEN, body_hash.p, body_hash.n)) return CS_EAUTH;
        n = 0;
    }
    return any_variant_matches(token, &u, false, params, n, signature) ? 0 : CS_EAUTH;
}

int cs_twilio_sig_check_upgrade(const char *token, const char *url, const char *signature)
{
    url_parts u;
    if (!usable(token, url, signature, &u)) return CS_EAUTH;
    return any_variant_matches(token, &u, true, NULL, 0, signature) ? 0 : CS_EAUTH;
}
