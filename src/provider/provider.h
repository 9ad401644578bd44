/* Media-stream providers: each turns its wire messages into one internal event type
 * and writes our outbound messages (media, mark, clear) in its own format. A provider
 * may also carry calls as text (a relay: it runs speech recognition and synthesis
 * itself; we get the caller's words and send the agent's): those messages parse into
 * the same event type and ours are written from cs_relay_out. The call layer only sees
 * cs_pevent, cs_relay_out and the ops table. */
#ifndef CS_PROVIDER_H
#define CS_PROVIDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/str.h"

/* ---- limits ---- */
#define CS_PEV_MAX_PARAMS  99    /* customParameters per stream (Twilio REST allows 99) */
#define CS_PEV_MAX_PAYLOAD 49152 /* decoded audio bytes in one message (64 KiB of base64) */

/* Why an inbound message was refused. Counted per stream and in metrics, logged once per
 * kind per stream; the call goes on. X(name, label used in metrics and the API). */
#define CS_BAD_MAP(X)                                                                              \
    X(JSON, "json")               /* not JSON, or not an object */                                 \
    X(BASE64, "base64")           /* media payload is not strict base64 */                         \
    X(EVENT, "unknown_event")     /* missing or unknown "event" */                                 \
    X(FIELD, "bad_field")         /* a required field missing or of the wrong type */              \
    X(ORDER, "out_of_order")      /* media/dtmf/mark before start, second start, after stop */     \
    X(OVERSIZE, "oversize")       /* message over the size limit (skipped unread) */               \
    X(BINARY, "binary")           /* binary frame where text is expected */                        \
    X(RATE, "rate_limited")       /* over the per-stream messages-per-second limit */              \
    X(STREAM, "wrong_stream")     /* streamSid differs from the one this socket started */         \
    X(TIMESTAMP, "bad_timestamp") /* media timestamp off the stream's clock: placed by arrival */  \
    X(OVERRUN, "audio_overrun")   /* no room for it on the timeline by arrival either: skipped */

enum cs_bad {
#define CS_BAD_ENUM(name, label) CS_BAD_##name,
    CS_BAD_MAP(CS_BAD_ENUM)
#undef CS_BAD_ENUM
        CS_BAD_COUNT
};

/* "json", "base64", … */
const char *cs_bad_label(enum cs_bad kind);

/* Audio direction, from the provider's point of view: inbound = from the caller. */
enum cs_track { CS_TRACK_INBOUND = 0, CS_TRACK_OUTBOUND = 1 };
#define CS_TRACK_BIT(t) (1u << (t))

typedef struct cs_kv {
    cs_str name;
    cs_str value;
} cs_kv;

enum cs_pev_type {
    CS_PEV_CONNECTED = 1,
    CS_PEV_START,
    CS_PEV_MEDIA,
    CS_PEV_DTMF,
    CS_PEV_MARK,
    CS_PEV_STOP,
    /* relay streams: `start` is the session's setup, `dtmf` as above */
    CS_PEV_PROMPT,     /* the caller's words, as the provider recognised them */
    CS_PEV_INTERRUPT,  /* the caller cut our speech short */
    CS_PEV_PEER_ERROR, /* the provider refused something we sent */
};

/* One inbound message. Views point into the message buffer or the parse scratch: valid
 * until the next parse with the same scratch. */
typedef struct cs_pevent {
    enum cs_pev_type type;
    int64_t seq;       /* sequence number, -1 when absent */
    cs_str stream_id;  /* top-level stream id (empty for connected) */
    union {
        struct {
            cs_str protocol, version;
        } connected;
        struct {
            cs_str account_id, call_id, stream_id;
            unsigned tracks; /* CS_TRACK_BIT set */
            cs_str encoding; /* "audio/x-mulaw" */
            unsigned sample_rate, channels;
            const cs_kv *params; /* customParameters */
            size_t nparams;
            cs_str from, to; /* relay setup only (a media start has neither) */
        } start;
        struct {
            enum cs_track track;
            uint64_t chunk;        /* 0 when absent */
            uint64_t timestamp_ms; /* ms since stream start */
            const uint8_t *payload; /* decoded μ-law bytes */
            size_t len;
        } media;
        struct {
            char digit;
        } dtmf;
        struct {
            cs_str name;
        } mark;
        struct {
            cs_str account_id, call_id;
        } stop;
        struct {
            cs_str text, lang;
            bool last; /* false: an interim version of the words */
        } prompt;
        struct {
            cs_str heard;      /* what the caller heard of our speech */
            uint64_t heard_ms; /* how long it had played */
        } interrupt;
        struct {
            cs_str description;
        } peer_error;
    };
} cs_pevent;

/* Scratch a parse may point into; one per loop thread, reused for every message. */
typedef struct cs_pscratch {
    uint8_t payload[CS_PEV_MAX_PAYLOAD];
    cs_kv params[CS_PEV_MAX_PARAMS];
    void *tree; /* parse tree of the last message taken the slow way, freed on reuse */
} cs_pscratch;

void cs_pscratch_init(cs_pscratch *s);
void cs_pscratch_free(cs_pscratch *s);

/* What we send on a relay stream. */
enum cs_relay_out_type {
    CS_RELAY_TEXT = 1, /* a token of the agent's speech; `last` ends its turn */
    CS_RELAY_PLAY,     /* an audio file the provider fetches and plays */
    CS_RELAY_DIGITS,   /* DTMF tones sent to the caller */
    CS_RELAY_END,      /* ends the session; `text` is handed to what the call does next */
};

typedef struct cs_relay_out {
    enum cs_relay_out_type type;
    cs_str text;        /* TEXT: the token; PLAY: the URL; DIGITS: the digits; END: data or empty */
    bool last;          /* TEXT */
    bool interruptible; /* TEXT, PLAY: the caller may cut it short */
    unsigned loop;      /* PLAY: times to play (0: once) */
} cs_relay_out;

/* ---- audio in binary frames ----
 * A source that is not a telephony provider (a browser, a SIP bridge, a test rig) sends
 * its audio as binary WebSocket frames in a format chosen when its stream was created.
 * A codec per stream turns those frames into media events of μ-law 8 kHz, and our μ-law
 * back into the source's format. */
typedef struct cs_pcodec cs_pcodec;

#define CS_PCODEC_MAX_FRAME 32768 /* bytes in one binary frame (2 s of μ-law); more: oversize */

typedef struct cs_pcodec_stats {
    uint64_t frames_in;  /* binary frames from sources */
    uint64_t frames_out; /* binary frames to them */
    uint64_t resampled;  /* frames either way whose rate was converted */
    uint64_t odd_bytes;  /* PCM frames of an odd length (the last byte is carried over) */
} cs_pcodec_stats;

typedef struct cs_provider_ops {
    const char *name;
    /* Parses one text message (it may be modified in place). 0, or CS_EPARSE with *bad
     * set to the reason. */
    int (*parse)(char *msg, size_t len, cs_pevent *ev, cs_pscratch *scratch, enum cs_bad *bad);
    /* Append one outbound JSON message (not yet framed) to `out`. */
    int (*write_media)(cs_buf *out, cs_str stream_id, const uint8_t *ulaw, size_t n);
    int (*write_mark)(cs_buf *out, cs_str stream_id, cs_str name);
    int (*write_clear)(cs_buf *out, cs_str stream_id);
    /* Relay streams (both NULL if the provider has none): parse one text message like
     * `parse`; append one outbound message. */
    int (*parse_relay)(char *msg, size_t len, cs_pevent *ev, cs_pscratch *scratch,
                       enum cs_bad *bad);
    int (*write_relay)(cs_buf *out, const cs_relay_out *m);
    /* Binary audio (all NULL if the provider's audio is in its text messages).
     * codec_new: `format` "mulaw" (rate 8000) or "pcm16" (8000 or 16000); CS_EPARSE for
     * any other, -ENOMEM, CS_EBACKEND; counters are added to *stats (which outlives it).
     * parse_binary: one frame → a media event of the inbound track, stamped on the clock
     * of the audio received so far (len 0 while a part of a millisecond is held back);
     * CS_EPARSE with *bad (OVERSIZE over CS_PCODEC_MAX_FRAME). write_binary appends one
     * frame of `n` μ-law bytes in the source's format (nothing for a part the resampler
     * holds back). */
    int (*codec_new)(cs_pcodec **out, const char *format, unsigned rate, cs_pcodec_stats *stats);
    void (*codec_free)(cs_pcodec *c);
    int (*parse_binary)(cs_pcodec *c, const uint8_t *frame, size_t len, cs_pevent *ev,
                        cs_pscratch *scratch, enum cs_bad *bad);
    int (*write_binary)(cs_pcodec *c, cs_buf *out, const uint8_t *ulaw, size_t n);
} cs_provider_ops;

/* By name ("twilio", "binary"); NULL if unknown. */
const cs_provider_ops *cs_provider_find(const char *name);

/* Sources that stream binary audio (binary.c); their call ids are CS_BINARY_SID_PREFIX
 * and 32 hex digits, the shape of Twilio's SIDs with a prefix Twilio does not give. */
extern const cs_provider_ops cs_provider_binary;
#define CS_BINARY_SID_PREFIX "CS"
/* Whether `sid` is a call id some provider gives (Twilio's CA…, or ours). */
bool cs_call_sid_valid(cs_str sid);

#endif
