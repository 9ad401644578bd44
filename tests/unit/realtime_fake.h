/* A fake OpenAI Realtime API server (GA shape), for tests and benchmarks, written from
 * OpenAI's public reference: GET /v1/realtime?model=… upgraded to a WebSocket, checked
 * for "Authorization: Bearer <key>" (401 otherwise) and the model. A client that sends
 * the beta header (OpenAI-Beta: realtime=v1) gets an `error` event with code
 * beta_api_shape_disabled and a close, as the GA server does. On open it sends
 * session.created; a session.update is checked for the GA shape (session.type
 * "realtime", audio.input/output.format.type "audio/pcmu", audio.output.voice,
 * audio.input.turn_detection server_vad or semantic_vad; any beta field — a flat voice,
 * modalities, input_audio_format, output_audio_format, a session-level turn_detection —
 * is refused with an `error` event and counted) and answered with session.updated.
 * Client events are recorded (input_audio_buffer.append decoded into one audio record
 * per connection, the others kept as JSON), conversation.item.truncate is checked the way
 * the server checks it (a known assistant item, audio_end_ms within the audio sent of
 * it; else an `error`) and answered with conversation.item.truncated, response.cancel
 * stops the response being streamed (response.done "cancelled"; with none,
 * response_cancel_not_active), and response.create streams the reply configured.
 *
 * The test drives it: a response (audio deltas with an item id, faster than real time,
 * with its transcript), speech_started, an `error`, a function call, the caller's
 * transcript, a dropped socket. Commands go to the newest connection.
 *
 * It runs on a thread of its own; the functions below may be called from any thread. */
#ifndef CS_TEST_REALTIME_FAKE_H
#define CS_TEST_REALTIME_FAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

/* A response: `bytes` of μ-law audio (rt_fake_audio_byte) under one new item, in deltas
 * of `delta` bytes (0: 800), one every `every_ms` (0: 20), with `text` as its audio
 * transcript (in pieces, alongside), then output_audio.done, the transcript's done and
 * response.done with usage. */
typedef struct rt_fake_reply {
    size_t bytes;
    size_t delta;
    unsigned every_ms;
    const char *text;
} rt_fake_reply;

typedef struct rt_fake_opts {
    const char *api_key;
    const char *model;     /* expected in ?model= */
    rt_fake_reply on_create; /* what response.create streams */
} rt_fake_opts;

typedef struct rt_fake_stats {
    unsigned upgrades;
    unsigned bad_auth;     /* 401 */
    unsigned beta_refused; /* the beta header */
    unsigned sessions;     /* session.update in the GA shape */
    unsigned bad_sessions; /* refused with an error event */
    unsigned appends;
    unsigned responses;    /* started */
    unsigned cancelled;    /* stopped by response.cancel */
    unsigned bad_truncates; /* answered with an error */
    unsigned errors_sent;
    unsigned drops;
    unsigned closed;       /* connections gone */
} rt_fake_stats;

typedef struct rt_fake rt_fake;

int rt_fake_start(rt_fake **out, const rt_fake_opts *o);
/* "ws://127.0.0.1:PORT/v1/realtime", for OPENAI_REALTIME_URL. */
const char *rt_fake_url(const rt_fake *f);
/* The byte at `i` of every response's audio (loud, varied: heard as voice). */
uint8_t rt_fake_audio_byte(size_t i);

/* ---- commands (to the newest connection) ---- */
void rt_fake_respond(rt_fake *f, const rt_fake_reply *r);
/* input_audio_buffer.speech_started (the response keeps streaming until cancelled). */
void rt_fake_speech_started(rt_fake *f);
void rt_fake_error(rt_fake *f, const char *code, const char *message);
/* A response holding one function call: response.function_call_arguments.done, then
 * response.done. */
void rt_fake_function_call(rt_fake *f, const char *name, const char *call_id, const char *args);
/* conversation.item.input_audio_transcription.completed, of the caller's turn that the
 * last speech_started began (at 1000 ms of the connection's audio). */
void rt_fake_input_transcript(rt_fake *f, const char *text);
/* Sends `text` as it is, as one text message (junk a client must skip). */
void rt_fake_raw(rt_fake *f, const char *text);
/* Closes the TCP connection without a close frame. */
void rt_fake_drop(rt_fake *f);

/* The same to connection `conn` (from 0, in the order they came), for benchmarks. */
void rt_fake_respond_on(rt_fake *f, int conn, const rt_fake_reply *r);
void rt_fake_speech_started_on(rt_fake *f, int conn);

/* ---- what it saw ---- */
void rt_fake_stats_get(rt_fake *f, rt_fake_stats *out);
/* Client events of `type` (not appends) received so far, over all connections. */
unsigned rt_fake_count(rt_fake *f, const char *type);
/* The k-th (from 0) client event of `type` as JSON into `out`; false if none. */
bool rt_fake_event(rt_fake *f, const char *type, size_t k, cs_buf *out);
/* The caller audio connection `conn` (from 0) appended, decoded, into `out`. */
bool rt_fake_audio(rt_fake *f, size_t conn, cs_buf *out);
/* The "Authorization" and query of the last upgrade request. */
void rt_fake_request_info(rt_fake *f, char *auth, size_t auth_cap, char *query, size_t query_cap);
/* When (uv_hrtime, ns) connection `conn` was last sent the first audio delta of a
 * response, and speech_started; 0 for never. */
void rt_fake_times(rt_fake *f, size_t conn, uint64_t *first_delta_ns, uint64_t *speech_ns);
/* The id of the newest response's item into `out` ("" if none). */
void rt_fake_last_item(rt_fake *f, char *out, size_t cap);
/* Connections open now. */
unsigned rt_fake_open(rt_fake *f);
void rt_fake_free(rt_fake *f);

#endif
