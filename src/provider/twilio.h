/* Twilio Media Streams wire format (protocol.md §1), both directions:
 * - the server side (cs_provider_twilio): parses connected/start/media/dtmf/mark/stop,
 *   writes media/mark/clear;
 * - the peer side (cs_twilio_peer_*): what Twilio itself sends and parses, for the
 *   simulator and the tests.
 * Inbound `media` takes a zero-copy fast path (any key order, JSON whitespace); anything
 * unusual (escapes, unknown or repeated keys, values that are not strings) falls back to
 * cJSON with the same result. */
#ifndef CS_TWILIO_H
#define CS_TWILIO_H

#include "provider/provider.h"

/* parse: every event but connected needs a top-level streamSid; sequenceNumber is
 * optional. start needs valid AC/CA/MZ SIDs (its streamSid equal to the top-level one),
 * known tracks and the μ-law 8000 Hz mono format; media needs track, timestamp and
 * payload; dtmf one digit of 0-9*#A-D; mark a name; stop nothing more. */
extern const cs_provider_ops cs_provider_twilio;

/* ConversationRelay (twilio_relay.c; the ops' relay entries): parse needs a known
 * "type"; setup a sessionId (the stream id) and callSid, with optional accountSid, from,
 * to and customParameters; prompt a voicePrompt (`last` a boolean, true when absent);
 * dtmf one digit of 0-9*#A-D; interrupt an optional utteranceUntilInterrupt and a
 * whole durationUntilInterruptMs; error an optional description. */
int cs_twilio_relay_parse(char *msg, size_t len, cs_pevent *ev, cs_pscratch *scratch,
                          enum cs_bad *bad);
int cs_twilio_relay_write(cs_buf *out, const cs_relay_out *m);
/* The peer side (tests, fuzzing): what Twilio sends for an event of parse_relay. */
int cs_twilio_relay_peer_write(cs_buf *out, const cs_pevent *ev);

/* SIDs: two uppercase letters then 32 hex digits ("MZ…", "CA…", "AC…"). */
#define CS_TWILIO_SID_LEN 34
bool cs_twilio_sid_valid(cs_str sid, const char prefix[2]);

/* ---- peer side: what Twilio sends ---- */

typedef struct cs_twilio_start {
    const char *account_sid, *call_sid, *stream_sid;
    unsigned tracks; /* CS_TRACK_BIT set */
    const cs_kv *params;
    size_t nparams;
} cs_twilio_start;

int cs_twilio_peer_connected(cs_buf *out);
int cs_twilio_peer_start(cs_buf *out, uint64_t seq, const cs_twilio_start *s);
int cs_twilio_peer_media(cs_buf *out, const char *stream_sid, uint64_t seq, enum cs_track track,
                         uint64_t chunk, uint64_t timestamp_ms, const uint8_t *ulaw, size_t n);
int cs_twilio_peer_dtmf(cs_buf *out, const char *stream_sid, uint64_t seq, char digit);
int cs_twilio_peer_mark(cs_buf *out, const char *stream_sid, uint64_t seq, cs_str name);
int cs_twilio_peer_stop(cs_buf *out, const char *stream_sid, uint64_t seq, const char *account_sid,
                        const char *call_sid);

/* ---- peer side: what the server sends to Twilio ---- */

enum cs_twilio_out_type { CS_TWOUT_MEDIA = 1, CS_TWOUT_MARK, CS_TWOUT_CLEAR };

typedef struct cs_twilio_out {
    enum cs_twilio_out_type type;
    cs_str stream_sid;
    const uint8_t *payload; /* MEDIA: decoded μ-law, in the caller's buffer */
    size_t len;
    cs_str mark_name; /* MARK */
} cs_twilio_out;

/* Parses a server→Twilio message; payload decoded into buf (room for `cap` bytes).
 * stream_sid and mark_name are copied over the start of `msg` and point there.
 * 0 or CS_EPARSE. */
int cs_twilio_peer_parse(char *msg, size_t len, cs_twilio_out *out, uint8_t *buf, size_t cap);

#endif
