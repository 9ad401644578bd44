/* The two ways twilio.c parses an inbound message, exposed so that tests can check they
 * agree and the benchmark can time each. Not for other modules: use cs_provider_twilio. */
#ifndef CS_TWILIO_INT_H
#define CS_TWILIO_INT_H

#include "provider/provider.h"

/* Zero-copy scanner for a plain `media` message: 0 or CS_EPARSE like the ops' parse, or
 * -EAGAIN when the message is anything else (another event, escapes, unknown keys,
 * values that are not strings…) and must take the slow path. */
int cs_twilio_parse_fast(const char *msg, size_t len, cs_pevent *ev, cs_pscratch *scratch,
                         enum cs_bad *bad);
/* cJSON for every message; views point into scratch->tree. 0 or CS_EPARSE. */
int cs_twilio_parse_slow(const char *msg, size_t len, cs_pevent *ev, cs_pscratch *scratch,
                         enum cs_bad *bad);

#endif
