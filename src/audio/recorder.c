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
#include "core/backoff.h"
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
    char path[PATH_MAX];    /* loop: set once the writer created the file */
    char wpath[PATH_MAX];   /* writer: the file's name, once claimed */
    bool claimed;           /* writer: wpath names a file we created */
    bool opened;            /* writer: the file was opened at least once */
    bool open_ok;           /* writer, read by open_done: the first attempt worked */
    cs_wav_writer w;        /* writer */
    uint64_t header_due_ms; /* writer */
    /* writer: while the file fails */
    int err;       /* the error it fails with; 0 while it writes */
    bool retrying; /* this batch is another attempt */
    bool refused_logged;
    unsigned attempts;           /* failed attempts since it failed */
    uint64_t retry_ms;           /* when the next attempt is due (monotonic) */
    uint64_t lost_from, lost_to; /* frames lost since it failed */
    uint64_t lost_frames;        /* in earlier failures */
    cs_job open_job, close_job;
    cs_recording_news_fn news;
    void *news_data;
    cs_recording_done_fn done;
    void *done_data;
    cs_recording *prev, *next; /* loop: the owner's recordings not closed yet */
    /* writer: the last frames it wrote, as they are in the file */
    uint64_t tail_start;
    size_t tail_len;
    int16_t tail[CS_REC_TAIL * 2];
};

/* A report from the writer to the loop. */
typedef struct news {
    cs_job job;
    cs_recording *rec;
    enum cs_recording_news what;
    int err;
    uint64_t from, to;
    bool created; /* the file exists now: the loop may learn its path */
} news;

/* Free space of the recordings' filesystem, read on libuv's thread pool. */
typedef struct disk_watch {
    cs_recorders *owner; /* NULL once the recorders are freed */
    uv_timer_t timer;
    uv_fs_t req;
    bool busy;       /* a read is under way */
    bool timer_open; /* until its close callback */
    uint64_t low_bytes;
    bool say; /* log the changes (one of several loops watching the same disk: the first) */
} disk_watch;

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
    disk_watch *watch;  /* loop, or NULL */
    window win;         /* writer's scratch */
};

static const char *const news_labels[] = {
#define CS_REC_NEWS_LABEL(name, label) label,
    CS_REC_NEWS_MAP(CS_REC_NEWS_LABEL)
#undef CS_REC_NEWS_LABEL
};

const char *cs_recording_news_label(enum cs_recording_news what)
{
    return (unsigned)what < sizeof news_labels / sizeof *news_labels ? news_labels[what]
                                                                     : "unknown";
}

/* ---- writer thread ---- */

static void count(cs_recorders *r, uint64_t *counter, int64_t n)
{
    pthread_mutex_lock(&r->lock);
    *counter += (uint64_t)n;
    pthread_mutex_unlock(&r->lock);
}

static void news_done(cs_job *job)
{
    news *n = (news *)job;
    cs_recording *rec = n->rec;
    if (n->created) snprintf(rec->path, sizeof rec->path, "%s", rec->wpath);
    if (rec->news) rec->news(rec->news_data, n->what, n->err, n->from, n->to);
    free(n);
}

/* Posted straight to the mailbox: it runs before the done of the job being worked on,
 * so before close_done frees `rec`. */
static void tell(cs_recording *rec, enum cs_recording_news what, int err, uint64_t from,
                 uint64_t to)
{
    news *n = malloc(sizeof *n);
    if (!n) {
        cs_error("recorder: out of memory: %s is not told it %s", rec->name,
                 cs_recording_news_label(what));
        return;
    }
    *n = (news){.job = {.done = news_done},
                .rec = rec,
                .what = what,
                .err = err,
                .from = from,
                .to = to,
                .created = rec->w.fd >= 0};
    cs_mailbox_post(rec->owner->mb, &n->job);
}

/* Frames [from, to) did not make it. Below the file's end what it held stays; past it
 * the lost audio becomes a hole: silence. */
static void lose(cs_recording *rec, uint64_t from, uint64_t to)
{
    if (from < rec->w.frames) from = rec->w.frames;
    if (from >= to) return;
    if (rec->lost_to == 0 || from < rec->lost_from) rec->lost_from = from;
    if (to > rec->lost_to) rec->lost_to = to;
}

static uint64_t lost_now(const cs_recording *rec)
{
    return rec->lost_to > rec->lost_from ? rec->lost_to - rec->lost_from : 0;
}

/* The file failed with `err` while doing `what`; frames [from, to) did not make it. The
 * first failure is logged and reported; every one sets the next attempt further off. */
static void fail(cs_recording *rec, int err, const char *what, uint64_t from, uint64_t to)
{
    cs_recorders *r = rec->owner;
    rec->tail_len = 0; /* the file may not hold what the tail says */
    rec->retrying = false;
    lose(rec, from, to);
    if (from < rec->w.frames || from >= to) from = rec->w.frames;
    if (rec->err == 0) {
        rec->err = err;
        rec->attempts = 0;
        cs_error("recorder: %s %s: %s; its audio is lost until it can be written again", what,
                 rec->claimed ? rec->wpath : rec->name, cs_strerror(err));
        pthread_mutex_lock(&r->lock);
        r->stats.errors++;
        r->stats.failing++;
        pthread_mutex_unlock(&r->lock);
        tell(rec, CS_REC_FAILED, err, from, from);
    } else {
        rec->err = err;
        rec->attempts++;
    }
    rec->retry_ms =
        cs_mono_ms() + cs_backoff_ms(rec->attempts + 1, CS_REC_RETRY_MIN_MS, CS_REC_RETRY_MAX_MS);
}

/* An attempt worked: the file writes again from frame `at` on, so what was lost ends
 * there at the latest. */
static void resume(cs_recording *rec, uint64_t at)
{
    cs_recorders *r = rec->owner;
    if (rec->lost_to > at) rec->lost_to = at > rec->lost_from ? at : rec->lost_from;
    uint64_t lost = lost_now(rec);
    cs_info("recorder: %s writes again (attempt %u); %.1f s of audio lost", rec->wpath,
            rec->attempts + 1, (double)lost / CS_REC_RATE);
    pthread_mutex_lock(&r->lock);
    r->stats.failing--;
    r->stats.lost_frames += lost;
    pthread_mutex_unlock(&r->lock);
    tell(rec, CS_REC_RESUMED, 0, rec->lost_from, rec->lost_to);
    rec->lost_frames += lost;
    rec->lost_from = rec->lost_to = 0;
    rec->err = 0;
    rec->retrying = false;
}

/* Picks a free name (never overwriting: a CallSid seen again, in a later stream of the
 * same call or after a restart, gets <sid>-2.wav, …) and creates the file. */
static int claim(cs_recording *rec)
{
    cs_recorders *r = rec->owner;
    int rc = -EEXIST;
    for (int i = 1; i <= MAX_SUFFIX && rc == -EEXIST; i++) {
        int len =
            i == 1 ? snprintf(rec->wpath, sizeof rec->wpath, "%s/%s.wav", r->dir, rec->name)
                   : snprintf(rec->wpath, sizeof rec->wpath, "%s/%s-%d.wav", r->dir, rec->name, i);
        if (len < 0 || (size_t)len >= sizeof rec->wpath) return -ENAMETOOLONG;
        int fd = open(rec->wpath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        rc = fd < 0 ? -errno : 0;
        if (fd >= 0) close(fd);
    }
    rec->claimed = rc == 0;
    return rc;
}

/* Creates the file, or opens the one claimed by an attempt that failed after that. */
static int open_file(cs_recording *rec)
{
    int rc = rec->claimed ? 0 : claim(rec);
    if (rc == 0) rc = cs_wav_writer_open(&rec->w, rec->wpath, CS_REC_RATE, rec->channels);
    if (rc == 0) rec->opened = true;
    rec->header_due_ms = cs_mono_ms() + rec->owner->header_interval_ms;
    return rc;
}

/* Whether this batch may write: the file works, or it fails and another attempt is due
 * (which first opens it, if that is what failed). A write that then works resumes it. */
static bool writable(cs_recording *rec)
{
    if (rec->err == 0) return true;
    if (rec->retrying) return true;
    if (cs_mono_ms() < rec->retry_ms) return false;
    count(rec->owner, &rec->owner->stats.retries, 1);
    rec->retrying = true;
    int rc = rec->w.fd >= 0 ? 0 : open_file(rec);
    if (rc < 0) fail(rec, rc, "creating", 0, 0);
    return rc == 0;
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
    if (win->len == 0) return;
    uint64_t end = win->start + win->len;
    int rc;
    if (!writable(rec)) {
        lose(rec, win->start, end);
    } else if ((rc = cs_wav_writer_write(&rec->w, win->start, win->frames, win->len)) < 0) {
        fail(rec, rc, "writing", win->start, end);
    } else {
        if (rec->err) resume(rec, win->start);
        size_t k = win->len < CS_REC_TAIL ? win->len : CS_REC_TAIL;
        rec->tail_start = end - k;
        rec->tail_len = k;
        memcpy(rec->tail, win->frames + (win->len - k) * rec->channels, k * rec->channels * 2);
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
            /* A stretch that cannot be read would be written back as silence. */
            int rc = load(rec, win->frames + win->len * rec->channels, win->start + win->len,
                          end - win->len);
            if (rc < 0) fail(rec, rc, "reading", win->start, win->start + end);
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
    while (pos < rec->w.frames && writable(rec)) {
        size_t n = (size_t)(rec->w.frames - pos);
        if (n > CS_REC_WINDOW) n = CS_REC_WINDOW;
        int rc = load(rec, win->frames, pos, n);
        if (rc < 0) {
            fail(rec, rc, "reading", pos, pos + n);
            return;
        }
        for (size_t i = 0; i < n; i++) win->frames[i * rec->channels + ch] = 0;
        rc = cs_wav_writer_write(&rec->w, pos, win->frames, n);
        if (rc < 0) {
            fail(rec, rc, "writing", pos, pos + n);
            return;
        }
        if (rec->err) resume(rec, pos);
        pos += n;
    }
}

/* A run past what the file can hold (a timestamp gone wild) is skipped, not fatal. */
static bool fits(cs_recording *rec, const entry *e)
{
    uint64_t max = cs_wav_max_frames(rec->channels);
    if (e->op != OP_AUDIO || (e->pos <= max && e->len <= max - e->pos)) return true;
    count(rec->owner, &rec->owner->stats.refused, 1);
    if (!rec->refused_logged)
        cs_warn("recorder: %s: audio placed %.1f h into the call is past what a WAV holds; "
                "skipped (further ones are only counted)",
                rec->name, (double)e->pos / CS_REC_RATE / 3600);
    rec->refused_logged = true;
    return false;
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
    for (size_t off = 0; off < c->used;) {
        const entry *e = (const entry *)(c->data + off);
        if (e->channel < rec->channels && fits(rec, e)) {
            if (e->op == OP_AUDIO)
                place(rec, win, e->channel, e->pos, c->data + off + sizeof *e, e->len);
            else
                cut(rec, win, e->channel, e->pos);
        }
        off += sizeof *e + ((e->len + 7u) & ~7u);
    }
    win_flush(rec, win);
    uint64_t now = cs_mono_ms();
    if (rec->err == 0 && rec->w.fd >= 0 && now >= rec->header_due_ms) {
        int rc = cs_wav_writer_update_header(&rec->w);
        if (rc < 0) fail(rec, rc, "updating the header of", 0, 0);
        rec->header_due_ms = now + r->header_interval_ms;
    }
    chunk_release(r, c);
}

static void open_work(cs_job *job)
{
    cs_recording *rec = (cs_recording *)((char *)job - offsetof(cs_recording, open_job));
    int rc = open_file(rec);
    if (rc < 0) fail(rec, rc, "creating", 0, 0);
    rec->open_ok = rc == 0;
}

static void open_done(cs_job *job)
{
    cs_recording *rec = (cs_recording *)((char *)job - offsetof(cs_recording, open_job));
    if (!rec->open_ok) return;
    snprintf(rec->path, sizeof rec->path, "%s", rec->wpath);
    if (rec->news) rec->news(rec->news_data, CS_REC_CREATED, 0, 0, 0);
}

static void close_work(cs_job *job)
{
    cs_recording *rec = (cs_recording *)((char *)job - offsetof(cs_recording, close_job));
    cs_recorders *r = rec->owner;
    bool failing = rec->err != 0;
    int rc = cs_wav_writer_close(&rec->w, true);
    if (rc < 0) {
        cs_error("recorder: closing %s: %s", rec->wpath, cs_strerror(rc));
        if (!failing) count(r, &r->stats.errors, 1);
        rec->err = rc;
    }
    if (rec->claimed && !rec->opened) {
        unlink(rec->wpath); /* created but never written: an empty file is no recording */
        rec->claimed = false;
    }
    uint64_t lost = lost_now(rec);
    rec->lost_frames += lost;
    pthread_mutex_lock(&r->lock);
    r->stats.closed++;
    r->stats.failing -= failing;
    r->stats.lost_frames += lost;
    pthread_mutex_unlock(&r->lock);
}

/* May run after cs_recorders_free: touches nothing but `rec`. */
static void close_done(cs_job *job)
{
    cs_recording *rec = (cs_recording *)((char *)job - offsetof(cs_recording, close_job));
    cs_recording_result res = {
        .path = rec->claimed ? rec->wpath : NULL,
        .frames = rec->w.frames,
        .lost_frames = rec->lost_frames,
        .err = rec->err,
    };
    if (rec->done) rec->done(rec->done_data, &res);
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

void cs_recording_on_news(cs_recording *rec, cs_recording_news_fn fn, void *data)
{
    rec->news = fn;
    rec->news_data = data;
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

static void watch_closed(uv_handle_t *h);

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
    while (r->open) {
        cs_recording_on_news(r->open, NULL, NULL);
        cs_recording_close(r->open, NULL, NULL);
    }
    if (r->watch) {
        disk_watch *w = r->watch;
        w->owner = NULL;
        uv_close((uv_handle_t *)&w->timer, watch_closed);
    }
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

/* ---- free space ---- */

static void watch_release(disk_watch *w)
{
    if (!w->owner && !w->busy && !w->timer_open) free(w);
}

static void watch_closed(uv_handle_t *h)
{
    disk_watch *w = h->data;
    w->timer_open = false;
    watch_release(w);
}

static void on_statfs(uv_fs_t *req)
{
    disk_watch *w = req->data;
    cs_recorders *r = w->owner;
    w->busy = false;
    if (r && req->result == 0) {
        const uv_statfs_t *st = req->ptr;
        uint64_t avail = st->f_bavail * st->f_bsize, total = st->f_blocks * st->f_bsize;
        bool low = avail < w->low_bytes;
        pthread_mutex_lock(&r->lock);
        bool was = r->stats.disk_known && r->stats.disk_low;
        r->stats.disk_known = true;
        r->stats.disk_low = low;
        r->stats.disk_free = avail;
        r->stats.disk_total = total;
        pthread_mutex_unlock(&r->lock);
        if (w->say && low && !was)
            cs_warn("recorder: %.1f MB free on the filesystem of %s (of %.1f MB), under the "
                    "%.1f MB wanted; recordings stop when it is full",
                    (double)avail / 1e6, r->dir, (double)total / 1e6, (double)w->low_bytes / 1e6);
        else if (w->say && !low && was)
            cs_info("recorder: the filesystem of %s has %.1f MB free again", r->dir,
                    (double)avail / 1e6);
    } else if (r) {
        pthread_mutex_lock(&r->lock);
        bool was = r->stats.disk_known;
        r->stats.disk_known = false;
        pthread_mutex_unlock(&r->lock);
        if (was && w->say)
            cs_warn("recorder: cannot read the free space of %s: %s", r->dir,
                    cs_strerror((int)req->result));
    }
    uv_fs_req_cleanup(req);
    watch_release(w);
}

static void on_watch_timer(uv_timer_t *t)
{
    disk_watch *w = t->data;
    if (w->busy) return;
    w->req.data = w;
    w->busy = uv_fs_statfs(t->loop, &w->req, w->owner->dir, on_statfs) == 0;
}

int cs_recorders_watch_disk(cs_recorders *r, uv_loop_t *loop, uint64_t low_bytes, bool say)
{
    if (r->watch) return CS_ESTATE;
    disk_watch *w = calloc(1, sizeof *w);
    if (!w) return -ENOMEM;
    w->owner = r;
    w->low_bytes = low_bytes;
    w->say = say;
    uv_timer_init(loop, &w->timer);
    w->timer.data = w;
    w->timer_open = true;
    uv_timer_start(&w->timer, on_watch_timer, 0, CS_REC_DISK_CHECK_MS);
    r->watch = w;
    pthread_mutex_lock(&r->lock);
    r->stats.disk_low_bytes = low_bytes;
    pthread_mutex_unlock(&r->lock);
    return 0;
}
