/* A call export (GET /api/v1/calls/{sid}/export) read for replay, and the schedule of a
 * replayed call: its caller audio in 20 ms frames from a point of the original's
 * timeline, and its keys after the frame each fell in. Everything read is checked and
 * bounded: an export is input from elsewhere. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audio/g711.h"
#include "core/base64.h"
#include "core/err.h"
#include "provider/twilio.h"
#include "sim/sim_int.h"

#define BYTES_PER_MS 8 /* 8 kHz μ-law */

static int fail(char *err, size_t cap, int rc, const char *fmt, const char *what)
{
    snprintf(err, cap, fmt, what);
    return rc;
}

/* A string member copied into out[cap]: absent is "", longer than cap-1 is an error. */
static int copy_str(const cJSON *o, const char *key, char *out, size_t cap, char *err, size_t ecap)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    out[0] = '\0';
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsString(v) || strlen(v->valuestring) >= cap)
        return fail(err, ecap, CS_EPARSE, "%s is not a string of its size", key);
    memcpy(out, v->valuestring, strlen(v->valuestring) + 1);
    return 0;
}

/* A whole number member in [0, max]. */
static int get_ms(const cJSON *o, const char *key, uint64_t max, uint64_t *out, char *err,
                  size_t ecap)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > (double)max ||
        v->valuedouble != (double)(uint64_t)v->valuedouble)
        return fail(err, ecap, CS_EPARSE, "%s is missing or out of range", key);
    *out = (uint64_t)v->valuedouble;
    return 0;
}

static int read_call(const cJSON *call, sim_export *e, char *err, size_t cap)
{
    if (!cJSON_IsObject(call)) return fail(err, cap, CS_EPARSE, "%s: no call object", "export");
    int rc = copy_str(call, "sid", e->call_sid, sizeof e->call_sid, err, cap);
    if (rc == 0 && !cs_twilio_sid_valid(cs_str_of(e->call_sid), "CA"))
        rc = fail(err, cap, CS_EPARSE, "call.sid '%s' is not a CallSid", e->call_sid);
    if (rc == 0) rc = copy_str(call, "from", e->from, sizeof e->from, err, cap);
    if (rc == 0) rc = copy_str(call, "to", e->to, sizeof e->to, err, cap);
    return rc;
}

static int cmp_key(const void *a, const void *b)
{
    const sim_key *x = a, *y = b;
    return (x->at_ms > y->at_ms) - (x->at_ms < y->at_ms);
}

static int read_events(const cJSON *events, sim_export *e, char *err, size_t cap)
{
    if (!cJSON_IsArray(events)) return fail(err, cap, CS_EPARSE, "%s is not an array", "events");
    const cJSON *ev;
    cJSON_ArrayForEach(ev, events)
    {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(ev, "type");
        if (!cJSON_IsString(type)) return fail(err, cap, CS_EPARSE, "%s without a type", "event");
        if (strcmp(type->valuestring, "mark") == 0) e->nmarks++;
        if (strcmp(type->valuestring, "dtmf") != 0) continue;
        uint64_t at;
        if (get_ms(ev, "offset_ms", SIM_REPLAY_MAX_MS, &at, err, cap) < 0) return CS_EPARSE;
        const cJSON *detail = cJSON_GetObjectItemCaseSensitive(ev, "detail");
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(detail, "digit");
        if (!cJSON_IsString(d) || strlen(d->valuestring) != 1 ||
            !strchr("0123456789*#ABCD", d->valuestring[0]))
            return fail(err, cap, CS_EPARSE, "a %s event without a DTMF digit", "dtmf");
        if (e->nkeys == SIM_REPLAY_KEYS_MAX)
            return fail(err, cap, CS_ELIMIT, "more than %s DTMF events", "4096");
        if (!e->keys && !(e->keys = malloc(SIM_REPLAY_KEYS_MAX * sizeof *e->keys))) return -ENOMEM;
        e->keys[e->nkeys++] = (sim_key){.at_ms = at, .digit = d->valuestring[0]};
    }
    if (e->nkeys) qsort(e->keys, e->nkeys, sizeof *e->keys, cmp_key);
    return 0;
}

static int read_transcript(const cJSON *t, sim_export *e, char *err, size_t cap)
{
    const cJSON *segs = cJSON_GetObjectItemCaseSensitive(t, "segments");
    if (!cJSON_IsObject(t) || !cJSON_IsArray(segs))
        return fail(err, cap, CS_EPARSE, "%s has no segments", "transcript");
    size_t n = 0;
    const cJSON *g;
    cJSON_ArrayForEach(g, segs) n++;
    if (n > SIM_REPLAY_SEGS_MAX)
        return fail(err, cap, CS_ELIMIT, "more than %s transcript segments", "20000");
    if (n && !(e->segs = calloc(n, sizeof *e->segs))) return -ENOMEM;
    cJSON_ArrayForEach(g, segs)
    {
        const cJSON *speaker = cJSON_GetObjectItemCaseSensitive(g, "speaker");
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(g, "text");
        if (!cJSON_IsString(speaker) || !cJSON_IsString(text))
            return fail(err, cap, CS_EPARSE, "a %s without speaker or text", "segment");
        if (strcmp(speaker->valuestring, "caller") != 0) continue;
        sim_segment *s = &e->segs[e->nsegs];
        if (get_ms(g, "start_ms", SIM_REPLAY_MAX_MS, &s->start_ms, err, cap) < 0) return CS_EPARSE;
        if (!(s->text = strdup(text->valuestring))) return -ENOMEM;
        e->nsegs++;
    }
    return 0;
}

static int read_audio(const cJSON *a, sim_export *e, char *err, size_t cap)
{
    if (!a || cJSON_IsNull(a)) return 0; /* no recording */
    if (!cJSON_IsObject(a)) return fail(err, cap, CS_EPARSE, "%s is not an object", "audio");
    int rc = copy_str(a, "url", e->audio_url, sizeof e->audio_url, err, cap);
    if (rc < 0) return rc;
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(a, "data");
    if (!data) return 0; /* exported without it */
    uint64_t rate, frames;
    if (get_ms(a, "sample_rate", UINT32_MAX, &rate, err, cap) < 0 ||
        get_ms(a, "offset_ms", SIM_REPLAY_MAX_MS, &e->audio_at_ms, err, cap) < 0 ||
        get_ms(a, "frames", SIM_REPLAY_MAX_MS * BYTES_PER_MS, &frames, err, cap) < 0)
        return CS_EPARSE;
    const cJSON *enc = cJSON_GetObjectItemCaseSensitive(a, "encoding");
    if (rate != 8000 || !cJSON_IsString(enc) || strcmp(enc->valuestring, "audio/x-mulaw") != 0)
        return fail(err, cap, CS_EPARSE, "audio is not %s", "8 kHz audio/x-mulaw");
    if (!cJSON_IsString(data)) return fail(err, cap, CS_EPARSE, "%s is not a string", "audio.data");
    size_t len = strlen(data->valuestring);
    if (len != CS_BASE64_ENCODED_LEN(frames))
        return fail(err, cap, CS_EPARSE, "audio.data does not hold audio.frames (%s)",
                    "a truncated export?");
    if (!(e->ulaw = malloc(frames ? frames + 2 : 1))) return -ENOMEM;
    int n = cs_base64_decode(e->ulaw, data->valuestring, len);
    if (n < 0 || (uint64_t)n != frames)
        return fail(err, cap, CS_EPARSE, "audio.data is not %s", "base64 of audio.frames bytes");
    e->nulaw = frames;
    return 0;
}

int sim_export_parse(const char *json, size_t n, sim_export *out, char *err, size_t cap)
{
    memset(out, 0, sizeof *out);
    if (n > SIM_EXPORT_MAX_BYTES)
        return fail(err, cap, CS_ELIMIT, "the export is larger than %s", "128 MiB");
    cJSON *root = cJSON_ParseWithLength(json, n);
    if (!root) return fail(err, cap, CS_EPARSE, "%s", "not JSON (a truncated export?)");
    const cJSON *format = cJSON_GetObjectItemCaseSensitive(root, "format");
    const cJSON *version = cJSON_GetObjectItemCaseSensitive(root, "version");
    int rc = 0;
    if (!cJSON_IsString(format) || strcmp(format->valuestring, SIM_EXPORT_FORMAT) != 0)
        rc = fail(err, cap, CS_EPARSE, "not a call export (format is not \"%s\")",
                  SIM_EXPORT_FORMAT);
    else if (!cJSON_IsNumber(version) || version->valuedouble != SIM_EXPORT_VERSION) {
        char v[32] = "(none)";
        if (cJSON_IsNumber(version)) snprintf(v, sizeof v, "%g", version->valuedouble);
        rc =
            fail(err, cap, CS_EPARSE, "export version %s is not supported (this build reads 1)", v);
    }
    if (rc == 0) rc = read_call(cJSON_GetObjectItemCaseSensitive(root, "call"), out, err, cap);
    if (rc == 0) rc = read_events(cJSON_GetObjectItemCaseSensitive(root, "events"), out, err, cap);
    out->events_truncated =
        cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "events_truncated"));
    if (rc == 0)
        rc = read_transcript(cJSON_GetObjectItemCaseSensitive(root, "transcript"), out, err, cap);
    if (rc == 0) rc = read_audio(cJSON_GetObjectItemCaseSensitive(root, "audio"), out, err, cap);
    if (rc == -ENOMEM) snprintf(err, cap, "out of memory");
    cJSON_Delete(root);
    if (rc < 0) sim_export_free(out);
    return rc;
}

void sim_export_free(sim_export *e)
{
    for (size_t i = 0; i < e->nsegs; i++) free(e->segs[i].text);
    free(e->segs);
    free(e->keys);
    free(e->ulaw);
    memset(e, 0, sizeof *e);
}

int sim_export_words(const sim_export *e, uint64_t from_ms, uint64_t to_ms, cs_buf *out)
{
    for (size_t i = 0; i < e->nsegs; i++) {
        const sim_segment *s = &e->segs[i];
        if (s->start_ms < from_ms || (to_ms && s->start_ms >= to_ms)) continue;
        int rc = cs_buf_printf(out, "%s%s", out->len ? " " : "", s->text);
        if (rc < 0) return rc;
    }
    return 0;
}

/* ---- the schedule ---- */

int sim_replay_cut(sim_replay *r, const sim_export *e, uint64_t from_ms, uint64_t to_ms)
{
    uint64_t end = e->ulaw ? e->audio_at_ms + e->nulaw / BYTES_PER_MS : 0;
    if (e->nkeys && e->keys[e->nkeys - 1].at_ms + SIM_FRAME_MS > end)
        end = e->keys[e->nkeys - 1].at_ms + SIM_FRAME_MS;
    if (to_ms && to_ms < end) end = to_ms;
    *r = (sim_replay){.e = e, .from_ms = from_ms, .end_ms = end};
    if (from_ms >= end) return CS_EPARSE;
    r->frames = (end - from_ms + SIM_FRAME_MS - 1) / SIM_FRAME_MS;
    return 0;
}

void sim_replay_frame(const sim_replay *r, uint64_t k, uint8_t frame[SIM_FRAME_BYTES])
{
    const sim_export *e = r->e;
    uint64_t at = (r->from_ms + k * SIM_FRAME_MS) * BYTES_PER_MS; /* on the call's timeline */
    uint64_t start = e->audio_at_ms * BYTES_PER_MS;
    for (size_t i = 0; i < SIM_FRAME_BYTES; i++) {
        uint64_t b = at + i;
        frame[i] =
            e->ulaw && b >= start && b - start < e->nulaw ? e->ulaw[b - start] : CS_ULAW_SILENCE;
    }
}

char sim_replay_key(const sim_replay *r, size_t *next, uint64_t k)
{
    const sim_export *e = r->e;
    uint64_t slot_end = r->from_ms + (k + 1) * SIM_FRAME_MS;
    while (*next < e->nkeys) {
        const sim_key *key = &e->keys[*next];
        if (key->at_ms >= r->end_ms || key->at_ms >= slot_end) return 0;
        (*next)++;
        if (key->at_ms >= r->from_ms) return key->digit;
    }
    return 0;
}
