/* The two ways twilio.c parses an inbound message, exposed so that tests can check they
 * agree and the benchmark can time each, and the JSON helpers its relay messages
 * (twilio_relay.c) share. Not for other modules: use cs_provider_twilio. */
#ifndef CS_TWILIO_INT_H
#define CS_TWILIO_INT_H

#include <cjson/cJSON.h>

#include "provider/provider.h"

/* Zero-copy scanner for a plain `media` message: 0 or CS_EPARSE like the ops' parse, or
 * -EAGAIN when the message is anything else (another event, escapes, unknown keys,
 * values that are not strings…) and must take the slow path. */
int cs_twilio_parse_fast(const char *msg, size_t len, cs_pevent *ev, cs_pscratch *scratch,
                         enum cs_bad *bad);
/* cJSON for every message; views point into scratch->tree. 0 or CS_EPARSE. */
int cs_twilio_parse_slow(const char *msg, size_t len, cs_pevent *ev, cs_pscratch *scratch,
                         enum cs_bad *bad);

/* ---- JSON helpers shared by the provider files ---- */

/* Sets *bad, returns CS_EPARSE. */
int cs_twjson_refuse(enum cs_bad *bad, enum cs_bad kind);
/* Zeroes the event, with its type and no sequence number. */
void cs_twjson_reset(cs_pevent *ev, enum cs_pev_type type);
/* The whole message as one JSON object (nothing after it, no NUL inside), or NULL. */
cJSON *cs_twjson_object_parse(const char *msg, size_t len);
/* String member: absent gives CS_STR_NULL. False when present but not a string. */
bool cs_twjson_opt_str(const cJSON *obj, const char *name, cs_str *out);
bool cs_twjson_req_str(const cJSON *obj, const char *name, cs_str *out);
/* customParameters (NULL: none), an object of strings, into ev->start. */
bool cs_twjson_params(const cJSON *obj, cs_pevent *ev, cs_pscratch *s);
/* Ends a writer: on error drops what it appended (from `start`). Returns rc. */
int cs_twjson_end_write(cs_buf *out, size_t start, int rc);

#endif
