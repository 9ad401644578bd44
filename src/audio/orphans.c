#include "audio/orphans.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audio/wav.h"
#include "core/err.h"
#include "core/log.h"

typedef struct lookup {
    cs_job job;
    cs_recorders *r;
    cs_orphan *found;
    size_t n;
    cs_orphans_fn fn;
    void *data;
    struct timespec *mtime; /* of each found[i].path */
} lookup;

static int by_name(const void *a, const void *b)
{
    return strcmp(((const cs_orphan *)a)->name, ((const cs_orphan *)b)->name);
}

/* The name a recording's file belongs to: "<name>.wav", or "<name>-<n>.wav" for the later
 * ones of the same name (see cs_recording_open). */
static bool file_name(const char *file, char *name, size_t cap)
{
    size_t n = strlen(file);
    if (n < 5 || strcmp(file + n - 4, ".wav") != 0) return false;
    n -= 4;
    size_t digits = 0;
    while (digits < n && file[n - 1 - digits] >= '0' && file[n - 1 - digits] <= '9') digits++;
    if (digits && digits < n && file[n - 1 - digits] == '-') n -= digits + 1;
    if (n == 0 || n >= cap) return false;
    memcpy(name, file, n);
    name[n] = '\0';
    return true;
}

static bool newer(struct timespec a, struct timespec b)
{
    return a.tv_sec != b.tv_sec ? a.tv_sec > b.tv_sec : a.tv_nsec > b.tv_nsec;
}

/* Frames of a 16-bit PCM WAV whose header agrees with its size (after cs_wav_repair). */
static int wav_frames(const char *path, uint64_t *frames)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    uint8_t h[CS_WAV_HEADER_LEN];
    struct stat st;
    cs_wav_info info;
    int rc = 0;
    if (fstat(fd, &st) < 0)
        rc = -errno;
    else if (pread(fd, h, sizeof h, 0) != (ssize_t)sizeof h ||
             cs_wav_parse(h, sizeof h, &info) < 0 || info.channels == 0)
        rc = CS_EPARSE;
    else
        *frames = ((uint64_t)st.st_size - CS_WAV_HEADER_LEN) / (info.channels * 2u);
    close(fd);
    return rc;
}

static void find_work(cs_job *job)
{
    lookup *l = (lookup *)job;
    const char *dir = cs_recorders_dir(l->r);
    qsort(l->found, l->n, sizeof *l->found, by_name);
    DIR *d = opendir(dir);
    if (!d) cs_error("recorder: cannot list %s: %s", dir, strerror(errno));
    struct dirent *de;
    cs_orphan key;
    char path[PATH_MAX];
    while (d && (de = readdir(d)) != NULL) {
        if (!file_name(de->d_name, key.name, sizeof key.name)) continue;
        cs_orphan *o = bsearch(&key, l->found, l->n, sizeof *l->found, by_name);
        struct stat st;
        if (!o || snprintf(path, sizeof path, "%s/%s", dir, de->d_name) >= (int)sizeof path ||
            stat(path, &st) < 0)
            continue;
        /* The file a later stream of the call took has the newest changes. */
        size_t i = (size_t)(o - l->found);
        if (o->path[0] && !newer(st.st_mtim, l->mtime[i])) continue;
        memcpy(o->path, path, sizeof path);
        l->mtime[i] = st.st_mtim;
    }
    if (d) closedir(d);
    for (size_t i = 0; i < l->n; i++) {
        cs_orphan *o = &l->found[i];
        if (!o->path[0]) continue;
        int rc = cs_wav_repair(o->path);
        if (rc >= 0) rc = wav_frames(o->path, &o->frames);
        if (rc < 0) {
            cs_warn("recorder: %s of an unfinished call cannot be used: %s", o->path,
                    cs_strerror(rc));
            o->path[0] = '\0';
        }
    }
}

static void find_done(cs_job *job)
{
    lookup *l = (lookup *)job;
    l->fn(l->data, l->found, l->n);
    free(l->mtime);
    free(l);
}

int cs_orphans_find(cs_recorders *r, cs_orphan *found, size_t n, cs_orphans_fn fn, void *data)
{
    lookup *l = calloc(1, sizeof *l);
    struct timespec *mtime = calloc(n ? n : 1, sizeof *mtime);
    if (!l || !mtime) {
        free(l);
        free(mtime);
        return -ENOMEM;
    }
    *l = (lookup){.job = {.work = find_work, .done = find_done},
                  .r = r,
                  .found = found,
                  .n = n,
                  .fn = fn,
                  .data = data,
                  .mtime = mtime};
    for (size_t i = 0; i < n; i++) {
        found[i].path[0] = '\0';
        found[i].frames = 0;
    }
    cs_recorders_run(r, &l->job);
    return 0;
}
