/* Word error rate of transcripts against the speech corpus's references: one normalisation
 * and one scoring for the STT unit tests, the integration tests and bench/stt, so their
 * figures compare. Reads MANIFEST.tsv (see the corpus's README.md). Not thread-safe. */
#ifndef CS_WER_H
#define CS_WER_H

#include <stdbool.h>
#include <stddef.h>

#include "core/wer.h"

/* The scorer is core's (core/wer.h); these are its names in the tests and benchmarks. */
#define WER_TEXT_MAX  CS_WER_TEXT_MAX
#define WER_WORDS_MAX CS_WER_WORDS_MAX
typedef cs_wer_count wer_count;
#define wer_normalize cs_wer_normalize
#define wer_add       cs_wer_add
#define wer_rate      cs_wer_rate

/* The corpus to read: `given` when not NULL, else ../shared/corpus when it is there (from
 * the checkout's root), else the copies in tests/data/speech. */
const char *wer_corpus(const char *given);

/* The transcript of `name` (e.g. "pocketsphinx_goforward") from `corpus`/MANIFEST.tsv into
 * `out` (`cap` bytes). false if the manifest or the row is missing or too long. */
bool wer_reference(const char *corpus, const char *name, char *out, size_t cap);

#endif
