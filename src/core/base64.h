/* Base64, standard alphabet with padding (RFC 4648 §4). The decoder is strict: it
 * refuses characters outside the alphabet, missing or misplaced padding and non-zero
 * trailing bits, so a damaged payload is detected rather than half-decoded. */
#ifndef CS_BASE64_H
#define CS_BASE64_H

#include <stddef.h>
#include <stdint.h>

#define CS_BASE64_ENCODED_LEN(n) ((((n) + 2) / 3) * 4)
#define CS_BASE64_DECODED_MAX(n) (((n) / 4) * 3)

/* Writes CS_BASE64_ENCODED_LEN(n) characters (no NUL); returns that length. */
size_t cs_base64_encode(char *out, const uint8_t *in, size_t n);
/* Decodes into `out` (room for CS_BASE64_DECODED_MAX(n) bytes); returns bytes written
 * or CS_EPARSE. */
int cs_base64_decode(uint8_t *out, const char *in, size_t n);

#endif
