#include "audio/recorder.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audio/g711.h"
#include "audio/wav.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "core/path.h"

#define MAX_SUFFIX 100 /* <sid>-2.wav … <sid>-100.wav */

enum { OP_AUDIO = 1, OP_CUT = 2 };

/* One placed run of audio (or a cut) inside a chunk; `len` μ-law bytes follow. */
typedef struct entry {
    uint64_t pos;
    uint16_t len;
    uint8_t channel;
    uint8_t op;
    uint32_t pad;
} entry;

typedef struct chunk {
    cs_job job;
    cs_recording *rec;
    size_t used;
    _Alignas(8) uint8_t data[CS_REC_CHUNK_BYTES];
} chunk;

struct cs_recording {
    cs_recorders *owner;
    unsigned channels;
    char name[64];
    chunk *cur; /* loop: the chunk being filled */
    bool drop_logged;
    char path[PATH_MAX];    /* loop: set once the writer opened the file */
    char wpath[PATH_MAX];   /* writer: the file it opened */
    cs_wav_writer w;        /* writer */
    int err;                /* writer: first error */
    uint64_t header_due_ms; /* writer */
    cs_job open_job, close_job;
    cs_recording_done_fn done;
    void *done_data;
    cs_recording *prev, *next; /* loop: the owner's recordings not closed yet */
    /* writer: the last frames it wrote, as they are in the file */
    uint64_t tail_start;
    size_t tail_len;
    int16_t tail[CS_REC_TAIL * 2];
};

/* The writer lays out one stretch of a file at a time. */
typedef struct window {
    uint64_t start; /* first frame */
    size_t len;     /* frames held */
    int16_t frames[CS_REC_WINDOW * 2];
} window;

struct cs_recorders {
    cs_worker *worker;
    cs_mailbox *mb;
    char dir[PATH_MAX];
    unsigned header_interval_ms;
    pthread_mutex_t lock; /* free chunks and the writer's counters */
    chunk *free_chunks;
    cs_recorders_stats stats;
    cs_job repair_job;
    cs_recording *open; /* loop: recordings not closed yet */
    window win;         /* writer's scratch */
};

/* ---- writer thread ---- */

static void note_error(cs_recording *rec, int err, const char *what)
{
    if (rec->err == 0) {
        rec->err = err;
        cs_error("recorder: %s %s: %s", what, rec->wpath[0] ? rec->wpath : rec->name,
                 cs_strerror(err));
    }
    cs_recorders *r = rec->owner;
    pthread_mutex_lock(&r->lock);
    r->stats.errors++;
    pthread_mutex_unlock(&r->lock);
}

/* Reads frames [from, from+n) of the file into dst, zeros where nothing was written. */
static int load(cs_recording *rec, int16_t *dst, uint64_t from, size_t n)
{
    size_t bytes = n * rec->channels * 2;
    memset(dst, 0, bytes);
    if (from >= rec->w.frames) return 0;
    uint64_t end = from + n < rec->w.frames ? from + n : rec->w.frames;
    /* Usually the stretch was just written and is still in the tail: no read. */
    if (from >= rec->tail_start && end <= rec->tail_start + rec->tail_len) {
        memcpy(dst, rec->tail + (size_t)(from - rec->tail_start) * rec->channels,
               (size_t)(end - from) * rec->channels * 2);
        return 0;
    }
    size_t avail = (size_t)(end - from) * rec->channels * 2;
    off_t off = CS_WAV_HEADER_LEN + (off_t)(from * rec->channels * 2);
    ssize_t got = pread(rec->w.fd, dst, avail, off);
    if (got < 0) return -errno;
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    for (size_t i = 0; i < (size_t)got / 2; i++) /* WAV samples are little-endian */
        dst[i] = (int16_t)__builtin_bswap16((uint16_t)dst[i]);
#endif
    return 0;
}

static void win_flush(cs_recording *rec, window *win)
{
    if (win->len && rec->err == 0) {
        int rc = cs_wav_writer_write(&rec->w, win->start, win->frames, win->len);
        if (rc < 0) {
            note_error(rec, rc, "writing");
        } else {
            size_t k = win->len < CS_REC_TAIL ? win->len : CS_REC_TAIL;
            rec->tail_start = win->start + win->len - k;
            rec->tail_len = k;
            memcpy(rec->tail, win->frames + (win->len - k) * rec->channels, k * rec->channels * 2);
        }
    }
    win->len = 0;
}

static void place(cs_recording *rec, window *win, unsigned ch, uint64_t pos, const uint8_t *ulaw,
                  size_t n)
{
    while (n > 0) {
        if (win->len && (pos < win->start || pos >= win->start + CS_REC_WINDOW))
            win_flush(rec, win);
        if (win->len == 0) win->start = pos;
        size_t take = (size_t)(win->start + CS_REC_WINDOW - pos);
        if (take > n) take = n;
        size_t end = (size_t)(pos - win->start) + take;
        if (end > win->len) {
            int rc = load(rec, win->frames + win->len * rec->channels, win->start + win->len,
                          end - win->len);
            if (rc < 0) note_error(rec, rc, "reading");
            win->len = end;
        }
        int16_t *dst = win->frames + (size_t)(pos - win->start) * rec->channels + ch;
        for (size_t i = 0; i < take; i++) dst[i * rec->channels] = cs_ulaw_to_pcm[ulaw[i]];
        pos += take;
        ulaw += take;
        n -= take;
    }
}

static void cut(cs_recording *rec, window *win, unsigned ch, uint64_t pos)
{
    win_flush(rec, win);
    rec->tail_len = 0; /* the file changes below it */
    while (pos < rec->w.frames && rec->err == 0) {
        size_t n = (size_t)(rec->w.frames - pos);
        if (n > CS_REC_WINDOW) n = CS_REC_WINDOW;
        int rc = load(rec, win->frames, pos, n);
        if (rc < 0) {
            note_error(rec, rc, "reading");
            return;
        }
        for (size_t i = 0; i < n; i++) win->frames[i * rec->channels + ch] = 0;
        rc = cs_wav_writer_write(&rec->w, pos, win->frames, n);
        if (rc < 0) note_error(rec, rc, "writing");
        pos += n;
    }
}

static void chunk_release(cs_recorders *r, chunk *c)
{
    pthread_mutex_lock(&r->lock);
    r->stats.backlog_bytes -= sizeof *c;
    c->job.next = (cs_job *)r->free_chunks;
    r->free_chunks = c;
    pthread_mutex_unlock(&r->lock);
}

static void chunk_work(cs_job *job)
{
    chunk *c = (chunk *)job;
    cs_recording *rec = c->rec;
    cs_recorders *r = rec->owner;
    window *win = &r->win;
    win->len = 0;
    for (size_t off = 0; off < c->used && rec->err == 0;) {
        const entry *e = (const entry *)(c->data + off);
        if (e->channel < rec->channels) {
            if (e->op == OP_AUDIO)
                place(rec, win, e->channel, e->pos, c->data + off + sizeof *e, e->len);
            else
                cut(rec, win, e->channel, e->pos);
        }
        off += sizeof *e + ((e->len + 7u) & ~7u);
    }
    win_flush(rec, win);
    uint64_t now = cs_mono_ms();
    if (rec->err == 0 && now >= rec->header_due_ms) {
        int rc = cs_wav_writer_update_header(&rec->w);
        if (rc < 0) note_error(rec, rc, "updating the header of");
        rec->header_due_ms = now + r->header_interval_ms;
    }
    chunk_release(r, c);
}

static void open_work(cs_job *job)
{
    cs_recording *rec = (cs_recording *)((char *)job - offsetof(cs_recording, open_job));
    cs_recorders *r = rec->owner;
    int rc = -EEXIST;
    for (int i = 1; i <= MAX_SUFFIX && rc == -EEXIST; i++) {
        int len =
            i == 1 ? snprintf(rec->wpath, sizeof rec->wpath, "%s/%s.wav", r->dir, rec->name)
                   : snprintf(rec->wpath, sizeof rec->wpath, "%s/%s-%d.wav", r->dir, rec->name, i);
        if (len < 0 || (size_t)len >= sizeof rec->wpath) {
            rc = -ENAMETOOLONG;
            break;
        }
        /* Never overwrite: a CallSid seen again (a later stream of the same call, or a
         * restart) gets the next free name. */
        int fd = open(rec->wpath, O_WRONLY | O_CREAT | O_EXCL, 0600);
        if (fd < 0) {
            rc = -errno;
            continue;
        }
        close(fd);
        rc = cs_wav_writer_open(&rec->w, rec->wpath, CS_REC_RATE, rec->channels);
    }
    if (rc < 0) {
        rec->w.fd = -1;
        note_error(rec, rc, "creating");
    }
    rec->header_due_ms = cs_mono_ms() + r->header_interval_ms;
}

static void open_done(cs_job *job)
{
    cs_recording *rec = (cs_recording *)((char *)job - offsetof(cs_recording, open_job));
    if (rec->err == 0) snprintf(rec->path, sizeof rec->path, "%s", rec->wpath);
}

static void close_work(cs_job *job)
{
    cs_recording *rec = (cs_recording *)((char *)job - offsetof(cs_recording, close_job));
    if (rec->w.fd >= 0) {
        int rc = cs_wav_writer_close(&rec->w, true);
        if (rc < 0) note_error(rec, rc, "closing");
    }
    cs_recorders *r = rec->owner;
    pthread_mutex_lock(&r->lock);
    r->stats.closed++;
    pthread_mutex_unlock(&r->lock);
}

/* May run after cs_recorders_free: touches nothing but `rec`. */
static void close_done(cs_job *job)
{
    cs_recording *rec = (cs_recording *)((char *)job - offsetof(cs_recording, close_job));
    if (rec->done) rec->done(rec->done_data, rec->wpath, rec->w.frames, rec->err);
    free(rec);
}

static void repair_work(cs_job *job)
{
    cs_recorders *r = (cs_recorders *)((char *)job - offsetof(cs_recorders, repair_job));
    DIR *d = opendir(r->dir);
    if (!d) return;
    unsigned repaired = 0;
    struct dirent *de;
    char path[PATH_MAX + 256];
    while ((de = readdir(d)) != NULL) {
        size_t n = strlen(de->d_name);
        if (n < 5 || strcmp(de->d_name + n - 4, ".wav") != 0) continue;
        snprintf(path, sizeof path, "%s/%s", r->dir, de->d_name);
        int rc = cs_wav_repair(path);
        if (rc == 1) {
            repaired++;
            cs_warn("recorder: repaired %s (left unfinished by an earlier run)", path);
        } else if (rc < 0) {
            cs_warn("recorder: cannot check %s: %s", path, cs_strerror(rc));
        }
    }
    closedir(d);
    if (repaired) cs_info("recorder: %u unfinished recording(s) repaired", repaired);
}

/* ---- loop side ---- */

static chunk *chunk_get(cs_recorders *r)
{
    pthread_mutex_lock(&r->lock);
    chunk *c = NULL;
    if (r->stats.backlog_bytes + sizeof *c <= CS_REC_BACKLOG_MAX) {
        c = r->free_chunks;
        if (c) r->free_chunks = (chunk *)c->job.next;
        r->stats.backlog_bytes += sizeof *c;
    }
    bool over = !c && r->stats.backlog_bytes + sizeof *c > CS_REC_BACKLOG_MAX;
    pthread_mutex_unlock(&r->lock);
    if (!c && !over) {
        c = malloc(sizeof *c);
        if (!c) {
            pthread_mutex_lock(&r->lock);
            r->stats.backlog_bytes -= sizeof *c;
            pthread_mutex_unlock(&r->lock);
        }
    }
    if (c) {
        c->job = (cs_job){.work = chunk_work};
        c->used = 0;
    }
    return c;
}

static void post(cs_recording *rec)
{
    chunk *c = rec->cur;
    rec->cur = NULL;
    if (!c) return;
    if (c->used == 0) {
        chunk_release(rec->owner, c);
        return;
    }
    c->rec = rec;
    rec->owner->stats.chunks++;
    cs_worker_post_force(rec->owner->worker, &c->job);
}

static void add(cs_recording *rec, uint8_t op, unsigned channel, uint64_t pos, const uint8_t *ulaw,
                size_t n)
{
    while (op == OP_CUT || n > 0) {
        size_t take = n;
        size_t max = CS_REC_CHUNK_BYTES - sizeof(entry);
        if (take > max) take = max;
        size_t need = sizeof(entry) + ((take + 7u) & ~(size_t)7u);
        if (rec->cur && CS_REC_CHUNK_BYTES - rec->cur->used < need) post(rec);
        if (!rec->cur) rec->cur = chunk_get(rec->owner);
        if (!rec->cur) {
            rec->owner->stats.dropped_chunks++;
            if (!rec->drop_logged)
                cs_error("recorder: the disk is not keeping up; %s loses audio", rec->name);
            rec->drop_logged = true;
            return;
        }
        entry *e = (entry *)(rec->cur->data + rec->cur->used);
        *e = (entry){.pos = pos, .len = (uint16_t)take, .channel = (uint8_t)channel, .op = op};
        if (take) memcpy(e + 1, ulaw, take);
        rec->cur->used += need;
        if (op == OP_CUT) return;
        pos += take;
        ulaw += take;
        n -= take;
    }
}

void cs_recording_audio(cs_recording *rec, unsigned channel, uint64_t pos, const uint8_t *ulaw,
                        size_t n)
{
    add(rec, OP_AUDIO, channel, pos, ulaw, n);
}

void cs_recording_cut(cs_recording *rec, unsigned channel, uint64_t pos)
{
    add(rec, OP_CUT, channel, pos, NULL, 0);
}

void cs_recording_flush(cs_recording *rec)
{
    post(rec);
}

static bool name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n >= sizeof((cs_recording *)0)->name) return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
            return false;
    }
    return true;
}

int cs_recording_open(cs_recorders *r, const char *name, unsigned channels, cs_recording **out)
{
    if (!name_ok(name) || channels < 1 || channels > 2) return -EINVAL;
    cs_recording *rec = calloc(1, sizeof *rec);
    if (!rec) return -ENOMEM;
    rec->owner = r;
    rec->channels = channels;
    rec->w.fd = -1;
    snprintf(rec->name, sizeof rec->name, "%s", name);
    rec->open_job = (cs_job){.work = open_work, .done = open_done};
    rec->close_job = (cs_job){.work = close_work, .done = close_done};
    rec->next = r->open;
    if (r->open) r->open->prev = rec;
    r->open = rec;
    r->stats.opened++;
    cs_worker_post_force(r->worker, &rec->open_job);
    *out = rec;
    return 0;
}

const char *cs_recording_path(const cs_recording *rec)
{
    return rec->path[0] ? rec->path : NULL;
}

void cs_recording_close(cs_recording *rec, cs_recording_done_fn done, void *data)
{
    cs_recorders *r = rec->owner;
    if (rec->prev)
        rec->prev->next = rec->next;
    else
        r->open = rec->next;
    if (rec->next) rec->next->prev = rec->prev;
    post(rec);
    rec->done = done;
    rec->done_data = data;
    cs_worker_post_force(r->worker, &rec->close_job);
}

/* ---- the writer ---- */

int cs_recorders_new(cs_recorders **out, cs_mailbox *mb, const char *dir,
                     unsigned header_interval_s)
{
    int rc = cs_mkdir_p(dir, 0750);
    if (rc < 0) {
        cs_error("recorder: cannot create %s: %s", dir, cs_strerror(rc));
        return rc;
    }
    cs_recorders *r = calloc(1, sizeof *r);
    if (!r) return -ENOMEM;
    snprintf(r->dir, sizeof r->dir, "%s", dir);
    r->mb = mb;
    r->header_interval_ms = header_interval_s * 1000u;
    pthread_mutex_init(&r->lock, NULL);
    cs_worker_hooks hooks = {.linger_ms = CS_REC_LINGER_MS};
    rc = cs_worker_start(&r->worker, "recorder", SIZE_MAX, mb, &hooks);
    if (rc < 0) {
        pthread_mutex_destroy(&r->lock);
        free(r);
        return rc;
    }
    r->repair_job = (cs_job){.work = repair_work};
    cs_worker_post_force(r->worker, &r->repair_job);
    *out = r;
    return 0;
}

void cs_recorders_free(cs_recorders *r)
{
    if (!r) return;
    while (r->open) cs_recording_close(r->open, NULL, NULL);
    cs_worker_stop(r->worker);
    while (r->free_chunks) {
        chunk *next = (chunk *)r->free_chunks->job.next;
        free(r->free_chunks);
        r->free_chunks = next;
    }
    pthread_mutex_destroy(&r->lock);
    free(r);
}

const char *cs_recorders_dir(const cs_recorders *r)
{
    return r->dir;
}

void cs_recorders_run(cs_recorders *r, cs_job *job)
{
    cs_worker_post_force(r->worker, job);
}

void cs_recorders_stats_get(cs_recorders *r, cs_recorders_stats *out)
{
    pthread_mutex_lock(&r->lock);
    *out = r->stats;
    pthread_mutex_unlock(&r->lock);
}
