/* Word error rate of transcripts against the speech corpus's references: one normalisation
 * and one scoring for the STT unit tests, the integration tests and bench/stt, so their
 * figures compare. Reads MANIFEST.tsv (see the corpus's README.md). Not thread-safe. */
#ifndef CS_WER_H
#define CS_WER_H

#include <stdbool.h>
#include <stddef.h>

#define WER_TEXT_MAX  8192 /* longest text scored, in bytes after normalisation */
#define WER_WORDS_MAX 2048 /* most words in one text */

typedef struct wer_count {
    size_t errors; /* substitutions + deletions + insertions */
    size_t words;  /* words in the references */
} wer_count;

/* Lowercase; numbers as words, the way the corpus's speakers read them ("28.8" → "twenty
 * eight point eight", "500" → "five hundred", "1234" → "one two three four"); "a.b" → "a
 * dot b"; apostrophes kept inside words only; other punctuation removed; single spaces.
 * Writes at most `cap` bytes including the NUL. Returns the length, or -1 if it does not
 * fit. */
int wer_normalize(const char *text, char *out, size_t cap);

/* Adds the word edit distance of `hyp` against `ref` (both raw: they are normalised here)
 * to *c. 0, or -1 when a text is longer than the limits above. */
int wer_add(wer_count *c, const char *ref, const char *hyp);

/* errors / words (0 when there are no reference words). */
double wer_rate(const wer_count *c);

/* The corpus to read: `given` when not NULL, else ../shared/corpus when it is there (from
 * the checkout's root), else the copies in tests/data/speech. */
const char *wer_corpus(const char *given);

/* The transcript of `name` (e.g. "pocketsphinx_goforward") from `corpus`/MANIFEST.tsv into
 * `out` (`cap` bytes). false if the manifest or the row is missing or too long. */
bool wer_reference(const char *corpus, const char *name, char *out, size_t cap);

#endif
