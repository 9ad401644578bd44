/* X-Twilio-Signature (protocol.md §5): HMAC-SHA1 with the account's auth token over the
 * URL Twilio requested followed by the sorted POST parameters, base64-encoded. The checks
 * try the same URL variants as Twilio's helper libraries and compare in constant time. */
#ifndef CS_TWILIO_SIG_H
#define CS_TWILIO_SIG_H

#include <stddef.h>

#include "provider/provider.h"

#define CS_TWILIO_SIG_LEN        28  /* base64 of 20 bytes */
#define CS_TWILIO_SIG_MAX_PARAMS 256 /* as many as a form holds (CS_FORM_MAX_PAIRS) */

/* Signature of `url` + params (sorted by name in byte order, equal names by value, each
 * appended as name then value; a pair repeated exactly counts once, as in both libraries).
 * `out` gets 28 chars + NUL. 0, CS_ELIMIT (more than CS_TWILIO_SIG_MAX_PARAMS params) or
 * CS_EBACKEND. */
int cs_twilio_sig_compute(char out[CS_TWILIO_SIG_LEN + 1], const char *token, const char *url,
                          const cs_kv *params, size_t n);

/* Checks a form webhook's signature against `url` as given, without its port, and with
 * the scheme's default port added (twilio-python/node). When the URL's query holds
 * bodySHA256 (JSON bodies, §5.2), SHA-256 of `body` must match it and the signature is
 * computed with no params. 0 if valid, CS_EAUTH otherwise (also for an empty token or a
 * URL without a scheme). */
int cs_twilio_sig_check_webhook(const char *token, const char *url, const cs_kv *params, size_t n,
                                const char *body, size_t body_len, const char *signature);

/* Checks a media-stream upgrade's signature (§5.4): `url` is the stream URL as given in
 * <Stream url> (wss://host/path); tried with and without the :443 port and with and
 * without a trailing slash, with no params. 0 if valid, CS_EAUTH otherwise. */
int cs_twilio_sig_check_upgrade(const char *token, const char *url, const char *signature);

#endif
