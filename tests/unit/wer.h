/* The speech corpus's references, scored by core/wer.h: one normalisation and one scoring
 * for the STT unit tests, the integration tests, bench/stt and replay, so their figures
 * compare. Reads MANIFEST.tsv (see the corpus's README.md). Not thread-safe. */
#ifndef CS_TEST_WER_H
#define CS_TEST_WER_H

#include <stdbool.h>
#include <stddef.h>

#include "core/wer.h"

/* The corpus to read: `given` when not NULL, else ../shared/corpus when it is there (from
 * the checkout's root), else the copies in tests/data/speech. */
const char *wer_corpus(const char *given);

/* The transcript of `name` (e.g. "pocketsphinx_goforward") from `corpus`/MANIFEST.tsv into
 * `out` (`cap` bytes). false if the manifest or the row is missing or too long. */
bool wer_reference(const char *corpus, const char *name, char *out, size_t cap);

#endif
