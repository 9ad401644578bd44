/* Word error rate: one normalisation and one scoring for everything that compares
 * transcripts (the STT tests and benchmarks against the corpus, `callstream replay
 * --compare` against the original call). Uses static buffers: not thread-safe. */
#ifndef CS_WER_H
#define CS_WER_H

#include <stddef.h>

#define CS_WER_TEXT_MAX  8192 /* longest text scored, in bytes after normalisation */
#define CS_WER_WORDS_MAX 2048 /* most words in one text */

typedef struct cs_wer_count {
    size_t errors; /* substitutions + deletions + insertions */
    size_t words;  /* words in the references */
} cs_wer_count;

/* Lowercase; numbers as words, the way the corpus's speakers read them ("28.8" → "twenty
 * eight point eight", "500" → "five hundred", "1234" → "one two three four"); "a.b" → "a
 * dot b"; apostrophes kept inside words only; other punctuation removed; single spaces.
 * Writes at most `cap` bytes including the NUL. Returns the length, or -1 if it does not
 * fit. */
int cs_wer_normalize(const char *text, char *out, size_t cap);

/* Adds the word edit distance of `hyp` against `ref` (both raw: they are normalised here)
 * to *c. 0, or -1 when a text is longer than the limits above. */
int cs_wer_add(cs_wer_count *c, const char *ref, const char *hyp);

/* errors / words (0 when there are no reference words). */
double cs_wer_rate(const cs_wer_count *c);

#endif
