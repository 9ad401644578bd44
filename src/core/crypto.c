#include "core/crypto.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>

#include "core/err.h"

void cs_sha1(uint8_t out[CS_SHA1_LEN], const void *data, size_t n)
{
    SHA1(data, n, out);
}

void cs_sha256(uint8_t out[CS_SHA256_LEN], const void *data, size_t n)
{
    SHA256(data, n, out);
}

static int hmac(const char *digest, uint8_t *out, size_t outlen, const void *key, size_t keylen,
                const void *const *parts, const size_t *lens, size_t n)
{
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)digest, 0),
        OSSL_PARAM_construct_end(),
    };
    int rc = CS_EBACKEND;
    size_t len = 0;
    if (ctx && EVP_MAC_init(ctx, key, keylen, params)) {
        size_t i = 0;
        for (; i < n; i++)
            if (!EVP_MAC_update(ctx, parts[i], lens[i])) break;
        if (i == n && EVP_MAC_final(ctx, out, &len, outlen) && len == outlen) rc = 0;
    }
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
    return rc;
}

int cs_hmac_sha1(uint8_t out[CS_SHA1_LEN], const void *key, size_t keylen, const void *const *parts,
                 const size_t *lens, size_t n)
{
    return hmac("SHA1", out, CS_SHA1_LEN, key, keylen, parts, lens, n);
}

int cs_hmac_sha256(uint8_t out[CS_SHA256_LEN], const void *key, size_t keylen,
                   const void *const *parts, const size_t *lens, size_t n)
{
    return hmac("SHA256", out, CS_SHA256_LEN, key, keylen, parts, lens, n);
}

static void random_or_die(void *out, size_t n)
{
    if (RAND_bytes(out, (int)n) != 1) {
        fputs("fatal: random generator failed\n", stderr);
        abort();
    }
}

/* OpenSSL's generator costs about a microsecond per call however few bytes are asked
 * for, and every WebSocket frame a client sends needs four: small requests are served
 * from a per-thread pool filled in bulk. A forked child empties its pool first, so it
 * never hands out what its parent will. */
#define POOL_BYTES 4096
#define POOL_SMALL 64

static _Thread_local struct {
    uint8_t bytes[POOL_BYTES];
    size_t used;
} pool = {.used = POOL_BYTES};
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;

static void pool_forget(void)
{
    memset(pool.bytes, 0, sizeof pool.bytes);
    pool.used = POOL_BYTES;
}

static void pool_register(void)
{
    pthread_atfork(NULL, NULL, pool_forget);
}

void cs_random(void *out, size_t n)
{
    if (n > POOL_SMALL) {
        random_or_die(out, n);
        return;
    }
    pthread_once(&pool_once, pool_register);
    if (pool.used + n > POOL_BYTES) {
        random_or_die(pool.bytes, POOL_BYTES);
        pool.used = 0;
    }
    memcpy(out, pool.bytes + pool.used, n);
    /* Bytes handed out are not kept. */
    memset(pool.bytes + pool.used, 0, n);
    pool.used += n;
}

void cs_hex(char *out, const uint8_t *in, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[in[i] >> 4];
        out[2 * i + 1] = hex[in[i] & 15];
    }
    out[2 * n] = '\0';
}

bool cs_ct_equal(const void *a, size_t alen, const void *b, size_t blen)
{
    return alen == blen && CRYPTO_memcmp(a, b, alen) == 0;
}

void cs_sign_body(cs_signed_headers *out, const char *secret, const void *body, size_t len,
                  int64_t unix_s)
{
    uint8_t mac[CS_SHA256_LEN];
    char hex[2 * CS_SHA256_LEN + 1], ts[24];
    int tn = snprintf(ts, sizeof ts, "%lld.", (long long)unix_s);
    const void *parts[] = {ts, body};
    size_t lens[] = {(size_t)tn, len};
    cs_hmac_sha256(mac, secret, strlen(secret), parts, lens, 2);
    cs_hex(hex, mac, sizeof mac);
    snprintf(out->timestamp, sizeof out->timestamp, "X-Callstream-Timestamp: %lld",
             (long long)unix_s);
    snprintf(out->signature, sizeof out->signature, "X-Callstream-Signature: sha256=%s", hex);
}
