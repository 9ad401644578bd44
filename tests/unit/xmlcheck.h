/* Is a document well-formed XML? expat, a strict XML 1.0 parser, decides: tests use it on
 * what the gateway writes (TwiML), not to read it. */
#ifndef CS_XMLCHECK_H
#define CS_XMLCHECK_H

#include <stdbool.h>
#include <stddef.h>

/* Whether xml[0..n) parses; if not, the parser's reason goes to `why` (cap bytes). The
 * element and attribute counts it saw go to *elements and *attrs when not NULL. */
bool xml_well_formed(const char *xml, size_t n, char *why, size_t cap, size_t *elements,
                     size_t *attrs);
/* The value of TwiML's <Parameter name="`name`" value="…"/> in a well-formed document, as
 * the parser reads it (entities resolved), into `out`; false if there is none. */
bool xml_twiml_param(const char *xml, size_t n, const char *name, char *out, size_t cap);

#endif
