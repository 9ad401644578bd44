/* The store's spill files: records the queue had no room for, appended by the spill
 * writer, and their replay by the writer, in bounded batches that remember how far they
 * got. Also the records' layouts, which the key check shares. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/crypto.h"
#include "core/err.h"
#include "core/log.h"
#include "store/store_int.h"

#define SPILL_ID_BYTES 16
#define SPILL_HEADER   "{\"spill\":\"" /* a spill file's first line: {"spill":"<id>"} */

/* ---- spill files ---- */

/* How each kind of record is laid out, for the spill file and the key check. */
typedef struct field {
    const char *name;
    size_t offset;
    bool is_int; /* int64_t, else const char * */
    bool key;    /* required: a record without it cannot be written */
} field;

#define S(row, member, k)                                                                          \
    {                                                                                              \
#member, offsetof(cs_store_rec, row.member), false, k                                      \
    }
#define I(row, member)                                                                             \
    {                                                                                              \
#member, offsetof(cs_store_rec, row.member), true, false                                   \
    }

static const field call_fields[] = {
    S(call, sid, true),     S(call, account_sid, false), S(call, from, false),
    S(call, to, false),     S(call, direction, false),   S(call, status, false),
    S(call, params, false), S(call, summary, false),     S(call, recording, false),
    I(call, created_at),    I(call, started_at),         I(call, ended_at),
    I(call, updated_at),    I(call, recording_ms),
};
static const field stream_fields[] = {
    S(stream, sid, true),   S(stream, call_sid, true),    S(stream, tracks, false),
    S(stream, mode, false), S(stream, end_reason, false), S(stream, stats, false),
    I(stream, started_at),  I(stream, ended_at),
};
static const field event_fields[] = {
    S(event, call_sid, true),
    S(event, stream_sid, false),
    S(event, type, true),
    S(event, detail, false),
    I(event, at),
};
static const field segment_fields[] = {
    S(segment, call_sid, true),
    S(segment, stream_sid, true),
    S(segment, speaker, true),
    S(segment, text, true),
    I(segment, seq),
    I(segment, start_ms),
    I(segment, end_ms),
    I(segment, confidence),
    I(segment, at),
};
static const field user_fields[] = {
    S(user, name, true),
    S(user, password_hash, true),
    I(user, created_at),
};
static const field user_key[] = {S(user, name, true)};
static const field session_fields[] = {
    S(session, token_hash, true), S(session, user, true),  I(session, created_at),
    I(session, expires_at),       I(session, password_at),
};
static const field session_key[] = {S(session, token_hash, true)};
static const field token_fields[] = {
    S(token, name, true),
    S(token, token_hash, true),
    I(token, created_at),
};
static const field token_key[] = {S(token, name, true)};

#undef S
#undef I

static const struct layout {
    const field *fields;
    size_t n;
} layouts[] = {
#define L(kind, f) [kind] = {f, sizeof f / sizeof *f}
    L(CS_REC_CALL, call_fields),       L(CS_REC_STREAM, stream_fields),
    L(CS_REC_EVENT, event_fields),     L(CS_REC_SEGMENT, segment_fields),
    L(CS_REC_USER, user_fields),       L(CS_REC_USER_DEL, user_key),
    L(CS_REC_SESSION, session_fields), L(CS_REC_SESSION_DEL, session_key),
    L(CS_REC_TOKEN, token_fields),     L(CS_REC_TOKEN_DEL, token_key),
#undef L
};

static const struct layout *layout_of(enum cs_rec_kind kind)
{
    return (unsigned)kind < sizeof layouts / sizeof *layouts && layouts[kind].fields
               ? &layouts[kind]
               : NULL;
}

static const char **str_at(const cs_store_rec *rec, const field *f)
{
    return (const char **)((char *)rec + f->offset);
}

static int64_t *int_at(const cs_store_rec *rec, const field *f)
{
    return (int64_t *)((char *)rec + f->offset);
}

bool cs_store__rec_has_keys(const cs_store_rec *rec)
{
    const struct layout *l = layout_of(rec->kind);
    if (!l) return false;
    for (size_t i = 0; i < l->n; i++)
        if (l->fields[i].key && !*str_at(rec, &l->fields[i])) return false;
    return true;
}

static char *rec_to_json(const cs_store_rec *rec)
{
    const struct layout *l = layout_of(rec->kind);
    if (!l) return NULL;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "kind", rec->kind);
    for (size_t i = 0; i < l->n; i++) {
        const field *f = &l->fields[i];
        if (f->is_int)
            cJSON_AddNumberToObject(o, f->name, (double)*int_at(rec, f));
        else if (*str_at(rec, f))
            cJSON_AddStringToObject(o, f->name, *str_at(rec, f));
    }
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

static cs_store_rec *rec_from_json(const char *line)
{
    cJSON *o = cJSON_Parse(line);
    cJSON *kind = cJSON_GetObjectItemCaseSensitive(o, "kind");
    const struct layout *l =
        cJSON_IsNumber(kind) ? layout_of((enum cs_rec_kind)kind->valueint) : NULL;
    cs_store_rec *rec = l ? cs_store_rec_new((enum cs_rec_kind)kind->valueint) : NULL;
    for (size_t i = 0; rec && i < l->n; i++) {
        const field *f = &l->fields[i];
        cJSON *v = cJSON_GetObjectItemCaseSensitive(o, f->name);
        if (f->is_int)
            *int_at(rec, f) = cJSON_IsNumber(v) ? (int64_t)v->valuedouble : 0;
        else
            *str_at(rec, f) = cJSON_IsString(v) ? cs_pool_strdup(&rec->pool, v->valuestring) : NULL;
    }
    cJSON_Delete(o);
    return rec;
}

/* A new spill file starts with its id, so a replay cut short resumes in the right file. */
static FILE *spill_open(const char *path)
{
    FILE *f = fopen(path, "a");
    struct stat st;
    if (f && fstat(fileno(f), &st) == 0 && st.st_size == 0) {
        uint8_t raw[SPILL_ID_BYTES];
        char id[2 * SPILL_ID_BYTES + 1];
        cs_random(raw, sizeof raw);
        cs_hex(id, raw, sizeof raw);
        fprintf(f, SPILL_HEADER "%s\"}\n", id);
    }
    return f;
}

/* Appends a record to a->path (the page cache, no sync) and frees it. The file opens on
 * the first record; if it cannot, the records are counted as lost at append_close. */
void cs_spill__append(appender *a, cs_store_rec *rec)
{
    if (!a->f && a->n == 0 && !(a->f = spill_open(a->path))) a->err = errno;
    a->n++;
    char *line = a->f ? rec_to_json(rec) : NULL;
    if (line && fprintf(a->f, "%s\n", line) > 0) a->saved++;
    free(line);
    cs_store__rec_free(rec);
}

/* Closes the file and counts; how many records it saved. */
size_t cs_spill__close(cs_store *s, appender *a)
{
    if (a->n == 0) return 0;
    if (a->f && fclose(a->f) != 0) {
        a->err = errno;
        a->saved = 0;
    }
    size_t saved = a->saved, lost = a->n - a->saved;
    pthread_mutex_lock(&s->lock);
    s->stats.spilled += saved;
    s->stats.lost += lost;
    pthread_mutex_unlock(&s->lock);
    if (lost)
        cs_error("store: cannot spill to %s (%s): %zu record(s) lost", a->path,
                 a->err ? strerror(a->err) : "write failed", lost);
    *a = (appender){.path = a->path};
    return saved;
}

/* The spill writer's jobs: a record, or taking the file (rotate_job). */
void cs_spill__work(cs_job *job)
{
    cs_store_rec *rec = (cs_store_rec *)job;
    cs_spill__append(&rec->store->spill, rec);
}

void cs_spill__batch_end(void *data)
{
    cs_store *s = data;
    cs_spill__close(s, &s->spill);
}

/* Behind every record handed over before it: the spill file becomes the replay file. */
static void rotate_work(cs_job *job)
{
    cs_store *s = (cs_store *)((char *)job - offsetof(cs_store, rotate_job));
    cs_spill__close(s, &s->spill);
    if (rename(s->spill_path, s->replay_path) < 0 && errno != ENOENT)
        cs_error("store: cannot take %s for replay: %s", s->spill_path, strerror(errno));
    pthread_mutex_lock(&s->lock);
    s->rotated = true;
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

/* Writes the records of the spill file at `path` in batches of CS_STORE_BATCH_MAX, each
 * with how far the file got, so a crash part way resumes there instead of writing records
 * twice (files of older builds, without an id, start over); removes the file once done.
 * false if it gave up (closing): the rest stays in the file. */
bool cs_spill__replay(cs_store *s, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        if (errno != ENOENT) cs_error("store: cannot read %s: %s", path, strerror(errno));
        return true;
    }
    char id[2 * SPILL_ID_BYTES + 1] = "";
    long from = 0;
    if (fgets(s->line, SPILL_LINE_MAX, f) && spill_header(s->line, id, sizeof id))
        from = resume_at(s, id, ftell(f));
    bool done = fseek(f, from, SEEK_SET) == 0, eof = false;
    uint64_t n = 0;
    while (done && !eof) {
        while (s->nbatch < CS_STORE_BATCH_MAX && !(eof = !fgets(s->line, SPILL_LINE_MAX, f))) {
            cs_store_rec *rec = rec_from_json(s->line);
            if (rec)
                cs_store__batch_add(s, rec);
            else
                cs_warn("store: skipping an unreadable line in %s", path);
        }
        size_t k = s->nbatch;
        progress p = {id, ftell(f)};
        if (cs_store__commit_batch(s, id[0] ? &p : NULL) < 0) {
            for (size_t i = 0; i < s->nbatch; i++) cs_store__rec_free(s->batch[i]);
            s->nbatch = 0;
            done = false;
        }
        if (done) n += k;
    }
    fclose(f);
    if (done) unlink(path);
    if (n) {
        cs_store__count(s, &s->stats.replayed, n);
        cs_info("store: %llu spilled record(s) written", (unsigned long long)n);
    }
    return done;
}

/* Takes the spill file from the spill writer (a rename on its thread, behind every record
 * it was handed) and replays it. Later writes go to the queue again: a record never
 * overtakes an older one. */
void cs_spill__take(cs_store *s)
{
    if (s->gave_up) return;
    pthread_mutex_lock(&s->route_lock);
    bool take = s->spill_pending;
    uint64_t upto = s->spilled_seq;
    if (take) {
        s->spill_pending = false;
        s->rotate_job = (cs_job){.work = rotate_work};
        cs_worker_post_force(s->spiller, &s->rotate_job);
    }
    pthread_mutex_unlock(&s->route_lock);
    if (!take) return;
    pthread_mutex_lock(&s->lock);
    while (!s->rotated) pthread_cond_wait(&s->changed, &s->lock);
    s->rotated = false;
    pthread_mutex_unlock(&s->lock);
    if (cs_spill__replay(s, s->replay_path)) cs_store__settle(s, upto, 0);
}
