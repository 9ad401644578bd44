/* TwiML for the voice webhook (protocol.md §2): an optional <Say>, then either
 * <Connect><Stream> (two-way: our agent may talk back) or <Start><Stream> (one-way fork)
 * followed by what keeps the call going (<Dial> or <Pause>), or
 * <Connect action><ConversationRelay> (§9.2: the provider does speech, text comes to
 * the stream URL). */
#ifndef CS_TWIML_H
#define CS_TWIML_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "provider/provider.h"

#define CS_TWIML_MAX_PARAM 499   /* name + value must be under 500 characters */
#define CS_TWIML_MAX_BYTES 65536 /* Twilio refuses a larger document (error 11750) */

/* <ConversationRelay> attributes (NULL: left out, the provider's default). */
typedef struct cs_twiml_relay {
    const char *action;  /* <Connect action>: posted when the session ends */
    const char *welcome; /* welcomeGreeting */
    const char *language;
    const char *tts_provider, *voice;
    const char *transcription_provider, *speech_model;
    const char *interruptible; /* any, none, speech or dtmf (also for the greeting) */
} cs_twiml_relay;

typedef struct cs_twiml {
    const char *say;             /* greeting, or NULL */
    const char *voice;           /* <Say voice=…>, or NULL */
    bool connect;                /* true: <Connect><Stream>; false: <Start><Stream> */
    const char *stream_url;      /* wss://…/twilio/media (no query string) */
    const char *stream_name;     /* or NULL */
    const char *track;           /* <Start> only: inbound_track|outbound_track|both_tracks */
    const char *status_callback; /* absolute URL, or NULL */
    const cs_kv *params;         /* <Parameter name value> pairs */
    size_t nparams;
    const char *dial;            /* <Start> only: number to <Dial> afterwards, or NULL */
    unsigned pause_seconds;      /* <Start> only, without dial: <Pause length> */
    const cs_twiml_relay *relay; /* <Connect> only: a ConversationRelay, not a Stream */
} cs_twiml;

/* Appends the whole document (with the XML declaration); on error `out` is left as it
 * was. A relay needs `connect`; its stream URL is the relay's WebSocket. -EMSGSIZE if a parameter
 * is too long or there are more than CS_PEV_MAX_PARAMS; -EINVAL if the stream URL is missing or has
 * a query string, or for <Start> an unknown track, an empty dial, or neither dial nor pause_seconds
 * (the call would hang up). */
int cs_twiml_write(cs_buf *out, const cs_twiml *t);
/* A document that transfers the call: <Dial>number</Dial> (the number escaped). -EINVAL
 * for an empty number; on error `out` is left as it was. */
int cs_twiml_dial_write(cs_buf *out, const char *number);
/* Whether a <Parameter> fits Twilio's limit on name + value (characters, not bytes). */
bool cs_twiml_param_fits(cs_str name, cs_str value);
/* Appends s with &, <, >, " and ' escaped, tab, LF and CR as character references; other
 * control characters (not allowed in XML 1.0) are dropped; bytes that are not UTF-8, and
 * U+FFFE/U+FFFF, become U+FFFD. So any input gives well-formed XML text. */
int cs_xml_escape(cs_buf *out, const char *s, size_t n);

#endif
