/* A fake of ElevenLabs' text-to-speech WebSocket (stream-input), for tests and
 * benchmarks, written from ElevenLabs' public reference: GET
 * /v1/text-to-speech/{voice_id}/stream-input?model_id=…&output_format=… upgraded to a
 * WebSocket, the key in the xi-api-key header (or xi_api_key in the first message). A
 * wrong key is refused 401 with {"detail": {"status": "invalid_api_key", "message"}};
 * an output_format other than ulaw_8000 400 (we only take telephone audio). The client
 * sends the opening message (text " "), text messages (buffered; try_trigger_generation
 * or flush, or the end, makes them speak) and the end of input ({"text": ""}). Each
 * character spoken is EL_FAKE_BYTES_PER_CHAR bytes of μ-law (el_fake_audio), sent base64
 * in `audio` messages of EL_FAKE_CHARS_PER_MSG characters each, with `alignment` and
 * `normalizedAlignment` (chars, charStartTimesMs counted from the start of that
 * message's audio, charsDurationsMs); after the end of input, {"isFinal": true} and a
 * close 1000. Faults misbehave as the service can. It runs on a thread of its own; the
 * functions below may be called from any thread. */
#ifndef CS_TEST_ELEVENLABS_FAKE_H
#define CS_TEST_ELEVENLABS_FAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

#define EL_FAKE_BYTES_PER_CHAR 400 /* 50 ms of audio per character */
#define EL_FAKE_CHARS_PER_MSG  7

typedef enum el_fake_fault {
    EL_FAKE_NONE = 0,
    EL_FAKE_ERROR, /* on the first text, an error message then close 1008 */
    EL_FAKE_CUT,   /* after the first audio message, the TCP connection drops */
    EL_FAKE_STALL, /* takes everything, answers nothing */
} el_fake_fault;

typedef struct el_fake_opts {
    const char *api_key;
    el_fake_fault fault;
    int faulty;        /* how many sockets (the first ones) get the fault; < 0: all */
    unsigned every_ms; /* between audio messages (0: all at once) */
} el_fake_opts;

typedef struct el_fake_stats {
    unsigned upgrades; /* sockets accepted */
    unsigned refused;  /* upgrades refused (401, 400) */
    unsigned finals;   /* sockets that got isFinal */
    unsigned closed;   /* sockets gone */
    unsigned live;     /* sockets open now */
    unsigned max_live; /* most open at once */
    char path[256];    /* of the last upgrade, with its query */
    char key[128];     /* xi-api-key of the last upgrade */
} el_fake_stats;

typedef struct el_fake el_fake;

int el_fake_start(el_fake **out, const el_fake_opts *o);
/* "ws://127.0.0.1:PORT", for ELEVENLABS_URL. */
const char *el_fake_url(const el_fake *f);
void el_fake_stats_get(el_fake *f, el_fake_stats *out);
/* The messages the k-th socket (from 0; the first 256 kept) sent, one per line. */
bool el_fake_messages(el_fake *f, size_t k, cs_buf *out);
/* The audio the fake speaks for `text` (what it spoke: the client's texts joined), into
 * `out` (cleared first). */
void el_fake_audio(const char *text, size_t len, cs_buf *out);
void el_fake_free(el_fake *f);

#endif
