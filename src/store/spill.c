/* The store's spill files: records the queue had no room for, appended by the spill
 * writer, and their replay by the writer, in bounded batches that remember how far they
 * got. A line holds a record's fields as its layout lists them (fields.c). */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/crypto.h"
#include "core/err.h"
#include "core/log.h"
#include "store/store_int.h"

#define SPILL_ID_BYTES 16
#define SPILL_HEADER   "{\"spill\":\"" /* a spill file's first line: {"spill":"<id>"} */

/* ---- spill files ---- */

static char *rec_to_json(const cs_store_rec *rec)
{
    const cs_layout *l = cs_store__layout(rec->kind);
    if (!l) return NULL;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "kind", rec->kind);
    for (size_t i = 0; i < l->n; i++) {
        const cs_field *f = &l->fields[i];
        if (f->is_int)
            cJSON_AddNumberToObject(o, f->name, (double)*cs_field_int(rec, f));
        else if (*cs_field_str(rec, f))
            cJSON_AddStringToObject(o, f->name, *cs_field_str(rec, f));
    }
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

static cs_store_rec *rec_from_json(const char *line)
{
    cJSON *o = cJSON_Parse(line);
    cJSON *kind = cJSON_GetObjectItemCaseSensitive(o, "kind");
    const cs_layout *l =
        cJSON_IsNumber(kind) ? cs_store__layout((enum cs_rec_kind)kind->valueint) : NULL;
    cs_store_rec *rec = l ? cs_store_rec_new((enum cs_rec_kind)kind->valueint) : NULL;
    for (size_t i = 0; rec && i < l->n; i++) {
        const cs_field *f = &l->fields[i];
        cJSON *v = cJSON_GetObjectItemCaseSensitive(o, f->name);
        /* A number past int64 (a damaged line) reads as 0, like a missing one. */
        if (f->is_int)
            *cs_field_int(rec, f) =
                cJSON_IsNumber(v) && fabs(v->valuedouble) < 0x1p63 ? (int64_t)v->valuedouble : 0;
        else
            *cs_field_str(rec, f) =
                cJSON_IsString(v) ? cs_pool_strdup(&rec->pool, v->valuestring) : NULL;
    }
    cJSON_Delete(o);
    return rec;
}

/* ---- appending ---- */

/* Who may touch the spill files: the process holding their lock, taken at open or, if
 * it could not be then (another process had it), when this one needs to spill. A process
 * without a spill directory (the CLI) never owns them. */
bool cs_spill__own(cs_store *s, const char **why)
{
    if (atomic_load(&s->owner)) return true;
    if (!s->lock_path[0]) {
        *why = "this process keeps no spill files";
        return false;
    }
    pthread_mutex_lock(&s->lock);
    if (s->lock_fd < 0) s->lock_fd = open(s->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    int err = s->lock_fd < 0 ? errno : flock(s->lock_fd, LOCK_EX | LOCK_NB) < 0 ? errno : 0;
    pthread_mutex_unlock(&s->lock);
    if (err == 0) atomic_store(&s->owner, true);
    *why = err == EWOULDBLOCK ? "another process owns the spill files" : cs_strerror(-err);
    return err == 0;
}

/* Writes a whole line at the end of the file, or nothing: what a short write put there
 * (the disk filled in the middle) is cut off again, so a later line never continues a
 * partial one (if even that fails, the file is closed: spill_open starts a new line when
 * it opens it again). One write() unless it falls short, then more only to learn why. */
static int write_line(appender *a, const char *line, size_t len)
{
    struct stat st;
    if (fstat(a->fd, &st) < 0) return -errno;
    size_t done = 0;
    int err = 0;
    while (done < len && !err) {
        ssize_t n = write(a->fd, line + done, len - done);
        if (n > 0)
            done += (size_t)n;
        else if (n == 0 || errno != EINTR)
            err = n < 0 ? -errno : -EIO;
    }
    if (err && done && ftruncate(a->fd, st.st_size) < 0) {
        cs_error("store: cannot cut a partial line off %s: %s", a->path, strerror(errno));
        close(a->fd);
        a->fd = -1;
    }
    return err;
}

/* The last byte of a file, or '\n' if it cannot be read. */
static char last_byte(const char *path, off_t size)
{
    char c = '\n';
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0 && pread(fd, &c, 1, size - 1) != 1) c = '\n';
    if (fd >= 0) close(fd);
    return c;
}

/* A new spill file starts with its id, so a replay cut short resumes in the right file.
 * One whose last line was cut (a crash, or a cut back that failed) gets a newline first:
 * the partial line stays one unreadable line, counted at replay, and the next record is
 * whole. */
static int spill_open(appender *a)
{
    a->fd = open(a->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (a->fd < 0) return -errno;
    struct stat st;
    int rc = fstat(a->fd, &st) < 0 ? -errno : 0;
    if (rc == 0 && st.st_size == 0) {
        uint8_t raw[SPILL_ID_BYTES];
        char id[2 * SPILL_ID_BYTES + 1], line[sizeof SPILL_HEADER + sizeof id + 3];
        cs_random(raw, sizeof raw);
        cs_hex(id, raw, sizeof raw);
        int n = snprintf(line, sizeof line, SPILL_HEADER "%s\"}\n", id);
        rc = write_line(a, line, (size_t)n);
    } else if (rc == 0 && S_ISREG(st.st_mode) && last_byte(a->path, st.st_size) != '\n') {
        rc = write_line(a, "\n", 1);
    }
    if (rc < 0 && a->fd >= 0) close(a->fd);
    if (rc < 0) a->fd = -1;
    return rc;
}

/* A record lost: the first of a burst is logged, the rest counted, and the burst's
 * summary logged when a record is written again (or the store closes). */
static void spill_failed(appender *a, const char *why)
{
    a->lost++;
    if (a->failed++ == 0) {
        a->failing_since_ms = cs_wall_ms();
        cs_error("store: cannot spill to %s (%s): records are lost (and counted) until it "
                 "works again",
                 a->path, why);
    }
}

void cs_spill__burst_end(appender *a, const char *how)
{
    if (!a->failed) return;
    char since[25];
    cs_iso8601(since, a->failing_since_ms);
    cs_warn("store: spilling to %s %s; %llu record(s) lost since %s", a->path, how,
            (unsigned long long)a->failed, since);
    a->failed = 0;
}

/* Appends a record to a->path as one whole line (the page cache, no sync), and frees it.
 * The file opens on the first record of a batch. A record whose line replay could not
 * read back (over CS_STORE_SPILL_LINE_MAX) is refused. Counted at cs_spill__close. */
void cs_spill__append(appender *a, cs_store_rec *rec)
{
    char *json = rec_to_json(rec);
    size_t len = json ? strlen(json) : 0;
    int err = json ? 0 : -ENOMEM;
    if (json && len + 1 > CS_STORE_SPILL_LINE_MAX) {
        cs_error("store: a record (kind %d) of %zu bytes is over the spill file's limit of %u: "
                 "lost",
                 (int)rec->kind, len + 1, CS_STORE_SPILL_LINE_MAX);
        err = -EMSGSIZE;
    } else if (json && a->fd < 0) {
        err = spill_open(a);
    }
    if (!err) {
        json[len] = '\n'; /* replaces the NUL: the line is written by length */
        err = write_line(a, json, len + 1);
    }
    if (err == -EMSGSIZE) {
        a->lost++;
    } else if (err) {
        spill_failed(a, cs_strerror(err));
    } else {
        a->saved++;
        cs_spill__burst_end(a, "works again");
    }
    free(json);
    cs_store_rec_free(rec);
}

/* Closes the file and counts what the batch saved and lost; how many it saved. */
size_t cs_spill__close(cs_store *s, appender *a)
{
    if (a->fd >= 0) close(a->fd);
    a->fd = -1;
    size_t saved = a->saved, lost = a->lost;
    a->saved = a->lost = 0;
    pthread_mutex_lock(&s->lock);
    s->stats.spilled += saved;
    s->stats.lost += lost;
    pthread_mutex_unlock(&s->lock);
    return saved;
}

/* The spill writer's jobs: a record, or taking the file (rotate_job). Records it may not
 * spill (another process owns the files) are lost. */
void cs_spill__work(cs_job *job)
{
    cs_store_rec *rec = (cs_store_rec *)job;
    cs_store *s = rec->store;
    const char *why;
    if (cs_spill__own(s, &why)) {
        cs_spill__append(&s->spill, rec);
        return;
    }
    spill_failed(&s->spill, why);
    cs_store_rec_free(rec);
}

void cs_spill__batch_end(void *data)
{
    cs_store *s = data;
    cs_spill__close(s, &s->spill);
}

/* rename(2) that never replaces `to`: with link and unlink where the filesystem refuses
 * the flag (NFS). */
static int rename_noreplace(const char *from, const char *to)
{
    if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0) return 0;
    if (errno != EINVAL && errno != ENOSYS) return -1;
    if (link(from, to) < 0) return -1;
    return unlink(from);
}

/* Behind every record handed over before it: the spill file becomes the replay file,
 * which must not exist (cs_spill__take replays any first): one is never renamed over
 * another. A process that does not own the spill files takes nothing (rotate_rc 1): they
 * are another process's to replay. */
static void rotate_work(cs_job *job)
{
    cs_store *s = (cs_store *)((char *)job - offsetof(cs_store, rotate_job));
    cs_spill__close(s, &s->spill);
    int rc = atomic_load(&s->owner) ? 0 : 1;
    if (rc == 0 && rename_noreplace(s->spill_path, s->replay_path) < 0 && errno != ENOENT) {
        rc = -errno;
        cs_error("store: cannot take %s for replay (%s): it stays for the next start",
                 s->spill_path, strerror(errno));
    }
    pthread_mutex_lock(&s->lock);
    s->rotated = true;
    s->rotate_rc = rc;
    pthread_cond_broadcast(&s->changed);
    pthread_mutex_unlock(&s->lock);
}

/* The id in a spill file's first line, or false if the line is a record (older files). */
static bool spill_header(const char *line, char *id, size_t cap)
{
    size_t n = strlen(SPILL_HEADER);
    if (strncmp(line, SPILL_HEADER, n) != 0) return false;
    size_t len = strcspn(line + n, "\"");
    if (len >= cap) return false;
    memcpy(id, line + n, len);
    id[len] = '\0';
    return true;
}

typedef struct mark_get {
    char value[96];
    int rc;
} mark_get;

static int mark_attempt(cs_store *s, void *arg)
{
    mark_get *m = arg;
    m->rc = s->ops->meta_get(s->db, REPLAY_KEY, m->value, sizeof m->value);
    return m->rc == CS_ENOTFOUND ? 0 : m->rc;
}

/* Where the replay of file `id` stopped: the offset after its last written record, or
 * `from` if it never started. */
static long resume_at(cs_store *s, const char *id, long from)
{
    mark_get m = {.rc = 0};
    if (cs_store__retry(s, mark_attempt, &m, "reading how far a spill file was replayed") < 0 ||
        m.rc != 0)
        return from;
    size_t n = strlen(id);
    long off;
    if (strncmp(m.value, id, n) == 0 && m.value[n] == ' ' &&
        sscanf(m.value + n + 1, "%ld", &off) == 1)
        return off;
    return from;
}

/* The next line of `f` into s->line: 1, 0 at the end, or -EMSGSIZE for a line over
 * CS_STORE_SPILL_LINE_MAX (older builds did not refuse them), skipped to its end. */
static int next_line(cs_store *s, FILE *f)
{
    if (!fgets(s->line, CS_STORE_SPILL_LINE_MAX + 1, f)) return 0;
    size_t len = strlen(s->line);
    if (len < CS_STORE_SPILL_LINE_MAX || s->line[len - 1] == '\n') return 1;
    char rest[4096];
    while (fgets(rest, sizeof rest, f) && !strchr(rest, '\n')) {
    }
    return -EMSGSIZE;
}

/* Writes the records of the spill file at `path` in batches of CS_STORE_BATCH_MAX, each
 * with how far the file got, so a crash part way resumes there instead of writing records
 * twice (files of older builds, without an id, start over); removes the file once done.
 * A line it cannot read (cut by a crash, or over CS_STORE_SPILL_LINE_MAX) is a record lost:
 * counted, the first one's offset logged. false if it gave up (closing): the rest stays in the
 * file. */
bool cs_spill__replay(cs_store *s, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        if (errno != ENOENT) cs_error("store: cannot read %s: %s", path, strerror(errno));
        return true;
    }
    char id[2 * SPILL_ID_BYTES + 1] = "";
    long from = 0;
    if (next_line(s, f) == 1 && spill_header(s->line, id, sizeof id))
        from = resume_at(s, id, ftell(f));
    bool done = fseek(f, from, SEEK_SET) == 0, eof = false;
    uint64_t n = 0, bad = 0;
    long first_bad = 0;
    while (done && !eof) {
        while (s->nbatch < CS_STORE_BATCH_MAX && !eof) {
            long at = ftell(f);
            int rc = next_line(s, f);
            cs_store_rec *rec = rc == 1 ? rec_from_json(s->line) : NULL;
            if (rec) {
                cs_store__batch_add(s, rec);
            } else if (!(eof = rc == 0) && bad++ == 0) {
                first_bad = at;
                cs_error("store: %s at offset %ld of %s: a record lost",
                         rc < 0 ? "a line over the limit" : "an unreadable line", at, path);
            }
        }
        size_t k = s->nbatch;
        progress p = {id, ftell(f)};
        if (cs_store__commit_batch(s, id[0] ? &p : NULL) < 0) {
            for (size_t i = 0; i < s->nbatch; i++) cs_store_rec_free(s->batch[i]);
            s->nbatch = 0;
            done = false;
        }
        if (done) n += k;
    }
    fclose(f);
    if (done) unlink(path);
    cs_store__count(s, &s->stats.lost, bad);
    if (bad > 1)
        cs_error("store: %llu line(s) of %s could not be read (the first at offset %ld): "
                 "record(s) lost",
                 (unsigned long long)bad, path, first_bad);
    if (n) {
        cs_store__count(s, &s->stats.replayed, n);
        cs_info("store: %llu spilled record(s) written", (unsigned long long)n);
    }
    return done;
}

/* Takes the spill file from the spill writer (a rename on its thread, behind every record
 * it was handed) and replays it, after any replay file left before. Later writes go to the
 * queue again: a record never overtakes an older one. */
void cs_spill__take(cs_store *s)
{
    if (s->gave_up) return;
    /* Only once the queue is empty, which it stays while records spill: what was queued
     * before the first spilled record is written before it. Only this thread clears
     * spill_pending. */
    pthread_mutex_lock(&s->route_lock);
    bool take = s->spill_pending && cs_worker_depth(s->worker) == 0;
    pthread_mutex_unlock(&s->route_lock);
    if (!take) return;
    if (atomic_load(&s->owner) && access(s->replay_path, F_OK) == 0 &&
        !cs_spill__replay(s, s->replay_path))
        return; /* gave up: what is left waits for the next start */
    pthread_mutex_lock(&s->route_lock);
    uint64_t upto = s->spilled_seq;
    s->spill_pending = false;
    s->rotate_job = (cs_job){.work = rotate_work};
    cs_worker_post_force(s->spiller, &s->rotate_job);
    pthread_mutex_unlock(&s->route_lock);
    pthread_mutex_lock(&s->lock);
    while (!s->rotated) pthread_cond_wait(&s->changed, &s->lock);
    s->rotated = false;
    int rc = s->rotate_rc;
    pthread_mutex_unlock(&s->lock);
    if (rc != 0 || cs_spill__replay(s, s->replay_path)) cs_store__settle(s, upto, 0);
}
