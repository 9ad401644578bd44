#include "wer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MANIFEST_TRANSCRIPT_FIELD 6 /* 0-based column of `transcript` in MANIFEST.tsv */

/* Field `k` (0-based) of a tab-separated line, cut in place. */
static char *tsv_field(char *line, int k)
{
    for (; k > 0 && line; k--) {
        line = strchr(line, '\t');
        if (line) line++;
    }
    if (line) line[strcspn(line, "\t\r\n")] = '\0';
    return line;
}

bool wer_reference(const char *corpus, const char *name, char *out, size_t cap)
{
    char path[4096], want[512];
    snprintf(path, sizeof path, "%s/MANIFEST.tsv", corpus);
    snprintf(want, sizeof want, "wav/%s.wav\t", name);
    FILE *f = fopen(path, "r");
    if (!f) return false;
    char *line = NULL;
    size_t len = 0;
    bool found = false;
    while (!found && getline(&line, &len, f) > 0) {
        if (strncmp(line, want, strlen(want)) != 0) continue;
        const char *t = tsv_field(line, MANIFEST_TRANSCRIPT_FIELD);
        found = t && strlen(t) < cap;
        if (found) strcpy(out, t);
        break;
    }
    free(line);
    fclose(f);
    return found;
}

const char *wer_corpus(const char *given)
{
    if (given) return given;
    return access("../shared/corpus/MANIFEST.tsv", R_OK) == 0 ? "../shared/corpus"
                                                              : "tests/data/speech";
}
