/* Replays a fuzz target's inputs without libFuzzer, so its kept corpus and its regression
 * inputs run under ctest with any compiler: each argument is a file, or a directory whose
 * regular files are fed in name order to LLVMFuzzerTestOneInput. A missing directory is
 * skipped (a target may have no regressions yet); finding no input at all fails. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

#define REPLAY_MAX_INPUT (1u << 20) /* libFuzzer's inputs are far smaller */

static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    uint8_t *data = malloc(REPLAY_MAX_INPUT);
    size_t n = data ? fread(data, 1, REPLAY_MAX_INPUT, f) : 0;
    int bad = !data || ferror(f) || !feof(f);
    fclose(f);
    if (bad) {
        fprintf(stderr, "replay: %s: cannot read it whole (at most %u bytes)\n", path,
                REPLAY_MAX_INPUT);
        free(data);
        return -1;
    }
    printf("replay: %s (%zu bytes)\n", path, n);
    fflush(stdout);
    /* an exact-size copy, as libFuzzer hands it over */
    uint8_t *in = (uint8_t *)fuzz_copy(data, n, 0);
    free(data);
    LLVMFuzzerTestOneInput(in, n);
    free(in);
    return 0;
}

static int regular(const struct dirent *d)
{
    return d->d_name[0] != '.';
}

int main(int argc, char **argv)
{
    size_t inputs = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) < 0) {
            if (errno == ENOENT) continue;
            fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
            return 1;
        }
        if (!S_ISDIR(st.st_mode)) {
            if (replay_file(argv[i]) < 0) return 1;
            inputs++;
            continue;
        }
        struct dirent **names;
        int k = scandir(argv[i], &names, regular, alphasort);
        if (k < 0) {
            fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
            return 1;
        }
        int rc = 0;
        for (int j = 0; j < k; j++) {
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", argv[i], names[j]->d_name);
            if (rc == 0 && replay_file(path) < 0) rc = 1;
            free(names[j]);
            inputs++;
        }
        free(names);
        if (rc) return rc;
    }
    printf("replay: %zu inputs, all passed\n", inputs);
    return inputs ? 0 : 1;
}
