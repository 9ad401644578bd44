/* AGENT=openai-realtime: a bridge between the call and OpenAI's Realtime API (GA shape,
 * speech to speech). realtime.c is the agent; realtime_proto.c is the wire: the client
 * events it sends, built, and the server events it reads, parsed strictly (an unknown
 * type is skipped, a known one without its fields is malformed). Facts from OpenAI's
 * reference (realtime client and server events) and Twilio's GA sample. */
#ifndef CS_REALTIME_INT_H
#define CS_REALTIME_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

/* ---- limits ---- */
#define RT_MESSAGE_MAX (4u << 20)  /* a server event (session.created echoes the session) */
#define RT_EVENT_MAX   (1u << 20)  /* a client event we build (the session, a tool's output) */
#define RT_ID_MAX      64          /* an item, response or call id */
#define RT_TEXT_MAX    (16u << 10) /* an item's transcript kept for its sentences */

/* Server events we act on: type → enum (the wire name in the table). */
#define RT_EVENT_MAP(X)                                                                            \
    X(SESSION_CREATED, "session.created")                                                          \
    X(SESSION_UPDATED, "session.updated")                                                          \
    X(ERROR, "error")                                                                              \
    X(SPEECH_STARTED, "input_audio_buffer.speech_started")                                         \
    X(SPEECH_STOPPED, "input_audio_buffer.speech_stopped")                                         \
    X(RESPONSE_CREATED, "response.created")                                                        \
    X(RESPONSE_DONE, "response.done")                                                              \
    X(AUDIO_DELTA, "response.output_audio.delta")                                                  \
    X(AUDIO_DONE, "response.output_audio.done")                                                    \
    X(TRANSCRIPT_DELTA, "response.output_audio_transcript.delta")                                  \
    X(TRANSCRIPT_DONE, "response.output_audio_transcript.done")                                    \
    X(FUNCTION_DONE, "response.function_call_arguments.done")                                      \
    X(INPUT_TRANSCRIPT, "conversation.item.input_audio_transcription.completed")

enum rt_type {
    RT_EV_UNKNOWN = 0, /* any other type: skipped */
#define RT_EV_ENUM(name, wire) RT_EV_##name,
    RT_EVENT_MAP(RT_EV_ENUM)
#undef RT_EV_ENUM
        RT_EV_COUNT
};
const char *rt_type_name(enum rt_type t);

/* A server event, parsed. Strings are views into the parsed message (never NULL for the
 * fields its type requires, "" for absent optional ones), valid until rt_event_free. */
typedef struct rt_event {
    enum rt_type type;
    const char *item_id, *response_id;
    const char *delta; /* AUDIO_DELTA: base64 μ-law; TRANSCRIPT_DELTA: text */
    size_t delta_len;
    const char *text;   /* TRANSCRIPT_DONE, INPUT_TRANSCRIPT: transcript; FUNCTION_DONE: arguments */
    const char *call_id, *name;                   /* FUNCTION_DONE */
    const char *err_type, *err_code, *err_message; /* ERROR ("" when absent) */
    const char *status;                           /* RESPONSE_DONE: response.status */
    int64_t tokens_in, tokens_out;                /* RESPONSE_DONE: usage, -1 if absent */
    int64_t audio_start_ms, audio_end_ms;         /* SPEECH_STARTED/STOPPED, -1 if absent */
    void *root;                                   /* the parsed message (cJSON) */
} rt_event;

/* Parses one server message: 1 for an event of the table, 0 for one of another type
 * (nothing to free), CS_EPARSE for a message that is not an event or lacks what its
 * type carries (the reason in `why`). After 1, rt_event_free. */
int rt_event_parse(rt_event *ev, const char *data, size_t len, char *why, size_t cap);
void rt_event_free(rt_event *ev);

/* ---- client events, each appended to `out` as one JSON message: 0, or -EMSGSIZE ---- */

enum rt_turns { RT_SERVER_VAD, RT_SEMANTIC_VAD };

/* What session.update sets. */
typedef struct rt_session {
    const char *model, *instructions, *voice;
    enum rt_turns turns;
    double threshold;                /* server_vad */
    unsigned prefix_ms, silence_ms;  /* server_vad */
    const char *eagerness;           /* semantic_vad */
    const char *transcribe_model;    /* "" or NULL: no input transcription */
    const char *tools;               /* a JSON array in the Realtime shape, or NULL */
} rt_session;

int rt_build_session(cs_buf *out, const rt_session *s);
/* input_audio_buffer.append: the μ-law bytes as they are, base64. */
int rt_build_append(cs_buf *out, const uint8_t *ulaw, size_t n);
int rt_build_truncate(cs_buf *out, const char *item_id, uint64_t audio_end_ms);
/* response.cancel of `response_id` ("" or NULL: the one in progress). */
int rt_build_cancel(cs_buf *out, const char *response_id);
/* conversation.item.create of a function_call_output. */
int rt_build_tool_output(cs_buf *out, const char *call_id, const char *output, size_t len);
int rt_build_response_create(cs_buf *out);

/* ---- the arithmetic of a truncation ---- */

/* audio_end_ms for an item cut after the caller heard `heard_ms` of what we queued of it,
 * when the model sent `received` bytes of it (8 bytes a ms): never past what was sent. */
uint64_t rt_audio_end_ms(uint64_t heard_ms, uint64_t received);

/* Where the next sentence of an item's transcript ends: the length of `text` up to and
 * including the last ". ", "! " or "? " (or the end when `all`), 0 if none. */
size_t rt_sentence_end(const char *text, size_t len, bool all);

#endif
