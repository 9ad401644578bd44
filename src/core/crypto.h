/* Hashes, MACs and randomness, all from OpenSSL 3. */
#ifndef CS_CRYPTO_H
#define CS_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CS_SHA1_LEN   20
#define CS_SHA256_LEN 32

void cs_sha1(uint8_t out[CS_SHA1_LEN], const void *data, size_t n);
void cs_sha256(uint8_t out[CS_SHA256_LEN], const void *data, size_t n);
/* HMAC over the concatenation of `n` pieces (so callers need not join strings first). */
int cs_hmac_sha1(uint8_t out[CS_SHA1_LEN], const void *key, size_t keylen, const void *const *parts,
                 const size_t *lens, size_t n);
int cs_hmac_sha256(uint8_t out[CS_SHA256_LEN], const void *key, size_t keylen,
                   const void *const *parts, const size_t *lens, size_t n);
/* Cryptographically strong random bytes; aborts if the generator fails. */
void cs_random(void *out, size_t n);
/* Lowercase hex of `n` bytes into `out` (2n+1 bytes with the NUL). */
void cs_hex(char *out, const uint8_t *in, size_t n);
/* Constant-time comparison; false when lengths differ. */
bool cs_ct_equal(const void *a, size_t alen, const void *b, size_t blen);

/* The header lines that sign a body we POST (the transcript webhook, the agents' tools):
 * "X-Callstream-Timestamp: <unix s>" and "X-Callstream-Signature: sha256=<hex HMAC-SHA256
 * of "<unix s>.<body>" keyed with `secret`>". The time is in the signed text, so a
 * receiver can refuse replays of an old request. */
typedef struct cs_signed_headers {
    char timestamp[48];
    char signature[96];
} cs_signed_headers;
void cs_sign_body(cs_signed_headers *out, const char *secret, const void *body, size_t len,
                  int64_t unix_s);

#endif
