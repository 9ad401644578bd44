/* A fake of OpenAI's speech API, for tests and benchmarks, written from OpenAI's public
 * reference: POST /v1/audio/speech with {"model", "input", "voice", "response_format"}
 * and "Authorization: Bearer <key>" is answered with the speech as a stream of raw 24 kHz
 * 16-bit little-endian mono samples (response_format "pcm"), chunked, in pieces of an odd
 * number of bytes so that samples are split between pieces. The samples are a tone whose
 * length follows the input (OA_FAKE_SAMPLES_PER_CHAR per character). Errors are an HTTP
 * status with {"error": {"message", "type", "param", "code"}}: 401 for a wrong key (its
 * message showing only the key's ends, as OpenAI's does), 400 for a request without
 * model, input or voice or with another response_format, and what the script says. It
 * runs on a thread of its own; the functions below may be called from any thread. */
#ifndef CS_TEST_OPENAI_TTS_FAKE_H
#define CS_TEST_OPENAI_TTS_FAKE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"

#define OA_FAKE_SAMPLES_PER_CHAR 1200 /* 50 ms at 24 kHz */
#define OA_FAKE_PIECE            1001 /* bytes per piece of the answer */

typedef enum oa_fake_kind {
    OA_FAKE_SPEAK, /* the whole speech */
    OA_FAKE_ERROR, /* `status` with OpenAI's error JSON, `message` its message */
    OA_FAKE_CUT,   /* half of the speech, then the connection closes mid-answer */
    OA_FAKE_STALL, /* the head, then nothing (held until the client leaves) */
} oa_fake_kind;

typedef struct oa_fake_reply {
    oa_fake_kind kind;
    int status;          /* OA_FAKE_ERROR */
    const char *message; /* OA_FAKE_ERROR */
    unsigned every_ms;   /* between pieces (0: all at once) */
} oa_fake_reply;

typedef struct oa_fake_opts {
    const char *api_key;         /* the Bearer key expected */
    const oa_fake_reply *script; /* request k gets script[k] (past its end, the last); NULL:
                                    every request OA_FAKE_SPEAK */
    size_t nscript;
} oa_fake_opts;

typedef struct oa_fake_stats {
    unsigned requests;     /* POSTs to /v1/audio/speech */
    unsigned answered;     /* sent to the end (speech or error) */
    unsigned left;         /* the client went away before the end */
    unsigned bad_auth;     /* 401 */
    unsigned bad_requests; /* 400 */
    unsigned live;         /* answers in progress now */
} oa_fake_stats;

typedef struct oa_fake oa_fake;

int oa_fake_start(oa_fake **out, const oa_fake_opts *o);
/* "http://127.0.0.1:PORT/v1", for OPENAI_TTS_URL. */
const char *oa_fake_url(const oa_fake *f);
void oa_fake_stats_get(oa_fake *f, oa_fake_stats *out);
/* The body of the k-th request (from 0; the first 1,024 are kept): false if none. */
bool oa_fake_request(oa_fake *f, size_t k, cs_buf *out);
/* The samples the fake speaks for `input` (24 kHz). */
size_t oa_fake_samples(const char *input);
void oa_fake_free(oa_fake *f);

#endif
