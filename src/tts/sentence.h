/* Sentences of a text, for speaking: where a reply may be cut so that its first sentence
 * is heard while the rest is still being made. A sentence ends at . ! ? ; or : followed
 * by a space (with any closing quotes or brackets), or at a newline; "Dr." "e.g." "J."
 * "3.5" "10:30" and a list's "1." do not end one. A sentence longer than
 * CS_SENTENCE_MAX is cut at its last comma, else at its last space. Works on a whole text
 * (cs_sentence_next) and on text arriving in pieces, such as a language model's tokens
 * (cs_splitter). Not a language model: it errs towards longer sentences, which only
 * delays audio, rather than cuts inside one, which breaks its intonation. */
#ifndef CS_SENTENCE_H
#define CS_SENTENCE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"

#define CS_SENTENCE_MAX 240         /* bytes of one sentence (≈ 15 s of speech) */
#define CS_SPLITTER_MAX (64u << 10) /* bytes a splitter holds while waiting for an end */

/* ASCII white space, whatever the locale (an engine may set one). */
static inline bool cs_sentence_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* Bytes [off, off + len) of a text. */
typedef struct cs_span {
    size_t off, len;
} cs_span;

/* The first sentence of text[0, len): returns the bytes it uses up (the spaces before
 * it, the sentence, its end mark) and sets *s to the sentence, trimmed, its offset
 * relative to `text`. s->len is 0 when what was used up holds nothing to say (spaces,
 * punctuation). Returns 0 when the text holds no complete sentence yet: more text may
 * change where it ends. `final`: no more text will come, so the rest is a sentence. */
size_t cs_sentence_next(const char *text, size_t len, bool final, cs_span *s);

/* ---- text arriving in pieces ---- */

typedef struct cs_splitter {
    cs_buf pending; /* text not yet given out as sentences */
    size_t taken;   /* bytes of `pending` already given out */
} cs_splitter;

void cs_splitter_init(cs_splitter *sp);
/* Frees what waits; the splitter can be used again. Idempotent. */
void cs_splitter_free(cs_splitter *sp);
/* Adds a piece of text. 0, or -EMSGSIZE (nothing added) when more than CS_SPLITTER_MAX
 * bytes would wait: take the sentences out with cs_splitter_next after each piece.
 * -ENOMEM. */
int cs_splitter_feed(cs_splitter *sp, const char *text, size_t len);
/* The next complete sentence, or false when there is none yet. `flush`: the text is
 * finished, so what is left is the last sentence (after it the splitter is empty).
 * *text stays valid until the next call on the splitter. */
bool cs_splitter_next(cs_splitter *sp, bool flush, const char **text, size_t *len);

#endif
