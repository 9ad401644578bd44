/* TwiML as a verb list: callers build an array of verbs (with their attributes, nested
 * verbs and nouns, and <Parameter>s) and one writer checks it, escapes every attribute
 * value and text once, and keeps the document within Twilio's bound. The voice webhook's
 * answer (src/http/twilio.c), a transfer's <Dial> (src/call/control.c) and the relay
 * action's <Hangup/> are such lists. */
#ifndef CS_TWIML_H
#define CS_TWIML_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "provider/provider.h"

#define CS_TWIML_MAX_PARAM 499   /* name + value must be under 500 characters */
#define CS_TWIML_MAX_BYTES 65536 /* Twilio refuses a larger document (error 11750) */

typedef enum cs_twiml_kind {
    CS_TWIML_SAY,      /* text: what to say */
    CS_TWIML_PLAY,     /* text: an audio URL */
    CS_TWIML_PAUSE,    /* attribute length */
    CS_TWIML_GATHER,   /* nested: Say, Play, Pause */
    CS_TWIML_DIAL,     /* text: the number */
    CS_TWIML_CONNECT,  /* nested: one Stream or ConversationRelay; attribute action */
    CS_TWIML_START,    /* nested: one Stream */
    CS_TWIML_REDIRECT, /* text: the URL */
    CS_TWIML_HANGUP,
    CS_TWIML_STREAM, /* noun of Connect or Start; <Parameter>s; url without a query */
    CS_TWIML_RELAY,  /* <ConversationRelay>: noun of Connect; <Parameter>s; url */
} cs_twiml_kind;

/* An attribute; a NULL value leaves it out. Names are ours: letters only, never escaped. */
typedef struct cs_twiml_attr {
    const char *name, *value;
} cs_twiml_attr;

typedef struct cs_twiml_verb {
    cs_twiml_kind kind;
    const char *text; /* the content of Say, Play, Dial and Redirect (required there) */
    const cs_twiml_attr *attrs;
    size_t nattrs;
    const struct cs_twiml_verb *nested; /* Gather's verbs, Connect's or Start's noun */
    size_t nnested;
    const cs_kv *params; /* <Parameter name value>s of a Stream or ConversationRelay */
    size_t nparams;
} cs_twiml_verb;

/* Appends <Response> with the verbs (and the XML declaration); on error `out` is left as
 * it was. -EINVAL for an empty list, a verb where it may not be (a noun at the top, a
 * Gather in a Gather…), text missing or where none belongs, <Parameter>s outside a Stream
 * or ConversationRelay, an attribute name that is not letters or is given twice, a Stream without a
 * url or with a query string (Twilio drops it), or an unknown Stream track; -EMSGSIZE for
 * <Parameter>s over CS_TWIML_MAX_PARAM characters or more than CS_PEV_MAX_PARAMS, or a
 * document over CS_TWIML_MAX_BYTES (or over what `out` may hold). */
int cs_twiml_verbs_write(cs_buf *out, const cs_twiml_verb *verbs, size_t n);

/* Whether a <Parameter> fits Twilio's limit on name + value (characters, not bytes). */
bool cs_twiml_param_fits(cs_str name, cs_str value);
/* Appends s with &, <, >, " and ' escaped, tab, LF and CR as character references; other
 * control characters (not allowed in XML 1.0) are dropped; bytes that are not UTF-8, and
 * U+FFFE/U+FFFF, become U+FFFD. So any input gives well-formed XML text. */
int cs_xml_escape(cs_buf *out, const char *s, size_t n);

#endif
