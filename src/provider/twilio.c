/* Twilio Media Streams wire format (protocol.md §1). Inbound, a zero-copy scanner takes
 * plain `media` messages (50 a second per call) and cJSON takes everything else; both
 * end in the same checks, so they give the same event. Outbound media is a template;
 * the rarer messages go through the cs_json writer. */
#include "provider/twilio.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "core/base64.h"
#include "core/err.h"
#include "core/json.h"
#include "provider/twilio_int.h"

#define PUT(out, lit) cs_buf_append((out), (lit), sizeof(lit) - 1)

/* The only format Twilio streams (§1.1 start.mediaFormat). */
#define TWILIO_ENCODING    "audio/x-mulaw"
#define TWILIO_SAMPLE_RATE 8000
#define TWILIO_CHANNELS    1

static const char dtmf_digits[] = "0123456789*#ABCD";

/* media.track and start.tracks[] values; dtmf.track is "inbound_track" instead. */
static const cs_str track_names[] = {
    [CS_TRACK_INBOUND] = CS_STR("inbound"),
    [CS_TRACK_OUTBOUND] = CS_STR("outbound"),
};

static bool track_parse(cs_str s, enum cs_track *out)
{
    for (size_t i = 0; i < sizeof track_names / sizeof *track_names; i++) {
        if (cs_str_eq(s, track_names[i])) {
            *out = (enum cs_track)i;
            return true;
        }
    }
    return false;
}

static bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

bool cs_twilio_sid_valid(cs_str sid, const char prefix[2])
{
    if (sid.n != CS_TWILIO_SID_LEN || sid.p[0] != prefix[0] || sid.p[1] != prefix[1]) return false;
    for (size_t i = 2; i < sid.n; i++)
        if (!is_hex(sid.p[i])) return false;
    return true;
}

static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

int cs_twjson_refuse(enum cs_bad *bad, enum cs_bad kind)
{
    *bad = kind;
    return CS_EPARSE;
}

void cs_twjson_reset(cs_pevent *ev, enum cs_pev_type type)
{
    memset(ev, 0, sizeof *ev);
    ev->type = type;
    ev->seq = -1;
}

/* ---- checks shared by both paths ---- */

/* Top-level members: sequenceNumber (optional) and streamSid (on every event after
 * connected). Twilio sends sequenceNumber as a string holding an integer. */
static int finish_top(cs_pevent *ev, cs_str seq, cs_str stream, enum cs_bad *bad)
{
    if (seq.p) {
        uint64_t v;
        if (cs_str_to_u64(seq, INT64_MAX, &v)) return cs_twjson_refuse(bad, CS_BAD_FIELD);
        ev->seq = (int64_t)v;
    }
    if (ev->type != CS_PEV_CONNECTED) {
        if (!stream.p) return cs_twjson_refuse(bad, CS_BAD_FIELD);
        ev->stream_id = stream;
    }
    return 0;
}

/* A media message's string members, however they were found; p is NULL when absent. */
typedef struct media_fields {
    cs_str event, seq, stream;
    cs_str track, chunk, timestamp, payload;
} media_fields;

/* media.*: chunk and timestamp are strings holding integers, like sequenceNumber. */
static int finish_media(const media_fields *f, cs_pevent *ev, cs_pscratch *s, enum cs_bad *bad)
{
    if (!f->track.p || !track_parse(f->track, &ev->media.track) ||
        (f->chunk.p && cs_str_to_u64(f->chunk, UINT64_MAX, &ev->media.chunk)) || !f->timestamp.p ||
        cs_str_to_u64(f->timestamp, UINT64_MAX, &ev->media.timestamp_ms) || !f->payload.p)
        return cs_twjson_refuse(bad, CS_BAD_FIELD);
    if (f->payload.n > CS_BASE64_ENCODED_LEN(CS_PEV_MAX_PAYLOAD))
        return cs_twjson_refuse(bad, CS_BAD_BASE64);
    int n = cs_base64_decode(s->payload, f->payload.p, f->payload.n);
    if (n < 0) return cs_twjson_refuse(bad, CS_BAD_BASE64);
    ev->media.payload = s->payload;
    ev->media.len = (size_t)n;
    return 0;
}

/* ---- fast path: a flat scanner for plain media messages ---- */

typedef struct scanner {
    const char *p, *end;
} scanner;

static void skip_ws(scanner *s)
{
    while (s->p < s->end && is_ws(*s->p)) s->p++;
}

static bool eat(scanner *s, char c)
{
    skip_ws(s);
    if (s->p == s->end || *s->p != c) return false;
    s->p++;
    return true;
}

/* A string without escapes, as a view into the message. */
static bool scan_string(scanner *s, cs_str *out)
{
    if (!eat(s, '"')) return false;
    const char *q = memchr(s->p, '"', (size_t)(s->end - s->p));
    if (!q || memchr(s->p, '\\', (size_t)(q - s->p))) return false;
    *out = (cs_str){s->p, (size_t)(q - s->p)};
    s->p = q + 1;
    return true;
}

/* The keys an object may hold: each a string value stored at `field` in media_fields, or
 * a nested object with keys of its own. */
typedef struct fast_keys {
    const struct fast_key *keys;
    size_t n;
} fast_keys;

typedef struct fast_key {
    cs_str name;
    size_t field;
    const fast_keys *object;
} fast_key;

#define AT(member) offsetof(media_fields, member)

static const fast_key media_keys[] = {
    {CS_STR("track"), AT(track)},
    {CS_STR("chunk"), AT(chunk)},
    {CS_STR("timestamp"), AT(timestamp)},
    {CS_STR("payload"), AT(payload)},
};
static const fast_keys media_object = {media_keys, sizeof media_keys / sizeof *media_keys};

static const fast_key top_keys[] = {
    {CS_STR("event"), AT(event)},
    {CS_STR("sequenceNumber"), AT(seq)},
    {CS_STR("streamSid"), AT(stream)},
    {CS_STR("media"), 0, &media_object},
};
static const fast_keys top_object = {top_keys, sizeof top_keys / sizeof *top_keys};

/* False on anything but known keys with the expected values, each at most once. */
static bool scan_object(scanner *s, const fast_keys *ks, media_fields *f)
{
    if (!eat(s, '{')) return false;
    if (eat(s, '}')) return true;
    unsigned seen = 0;
    do {
        cs_str name;
        if (!scan_string(s, &name) || !eat(s, ':')) return false;
        size_t i = 0;
        while (i < ks->n && !cs_str_eq(name, ks->keys[i].name)) i++;
        if (i == ks->n || (seen & (1u << i))) return false;
        seen |= 1u << i;
        const fast_key *k = &ks->keys[i];
        if (!(k->object ? scan_object(s, k->object, f)
                        : scan_string(s, (cs_str *)((char *)f + k->field))))
            return false;
    } while (eat(s, ','));
    return eat(s, '}');
}

int cs_twilio_parse_fast(const char *msg, size_t len, cs_pevent *ev, cs_pscratch *scratch,
                         enum cs_bad *bad)
{
    media_fields f = {0};
    scanner s = {msg, msg + len};
    if (memchr(msg, '\0', len) || !scan_object(&s, &top_object, &f)) return -EAGAIN;
    skip_ws(&s);
    if (s.p != s.end || !cs_str_eqz(f.event, "media")) return -EAGAIN;
    cs_twjson_reset(ev, CS_PEV_MEDIA);
    int rc = finish_top(ev, f.seq, f.stream, bad);
    return rc ? rc : finish_media(&f, ev, scratch, bad);
}

/* ---- slow path: cJSON ---- */

/* The whole message as one JSON object with nothing but whitespace after it; NULL
 * otherwise. A NUL byte is never valid in JSON text, and cJSON would end a string there. */
cJSON *cs_twjson_object_parse(const char *msg, size_t len)
{
    if (memchr(msg, '\0', len)) return NULL;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(msg, len, &end, false);
    if (!root) return NULL;
    while (end < msg + len && is_ws(*end)) end++;
    if (end != msg + len || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

/* String member: absent gives CS_STR_NULL. False when present but not a string. */
bool cs_twjson_opt_str(const cJSON *obj, const char *name, cs_str *out)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);
    *out = cJSON_IsString(it) ? cs_str_of(it->valuestring) : CS_STR_NULL;
    return !it || cJSON_IsString(it);
}

bool cs_twjson_req_str(const cJSON *obj, const char *name, cs_str *out)
{
    return cs_twjson_opt_str(obj, name, out) && out->p;
}

static bool req_sid(const cJSON *obj, const char *name, const char prefix[2], cs_str *out)
{
    return cs_twjson_req_str(obj, name, out) && cs_twilio_sid_valid(*out, prefix);
}

static const cJSON *member(const cJSON *obj, const char *name)
{
    return cJSON_GetObjectItemCaseSensitive(obj, name);
}

/* Object member, or NULL when absent or of another type. */
static const cJSON *object(const cJSON *obj, const char *name)
{
    const cJSON *it = member(obj, name);
    return cJSON_IsObject(it) ? it : NULL;
}

static int parse_connected(const cJSON *root, cs_pevent *ev, cs_pscratch *s, enum cs_bad *bad)
{
    (void)s;
    if (!cs_twjson_opt_str(root, "protocol", &ev->connected.protocol) ||
        !cs_twjson_opt_str(root, "version", &ev->connected.version))
        return cs_twjson_refuse(bad, CS_BAD_FIELD);
    return 0;
}

static bool parse_tracks(const cJSON *arr, unsigned *out)
{
    const cJSON *it;
    if (!cJSON_IsArray(arr)) return false;
    cJSON_ArrayForEach(it, arr)
    {
        enum cs_track t;
        if (!cJSON_IsString(it) || !track_parse(cs_str_of(it->valuestring), &t)) return false;
        *out |= CS_TRACK_BIT(t);
    }
    return *out != 0;
}

/* Twilio documents a single format; anything else would be played back as noise. */
static bool parse_format(const cJSON *fmt, cs_pevent *ev)
{
    const cJSON *rate = member(fmt, "sampleRate"), *channels = member(fmt, "channels");
    if (!cJSON_IsObject(fmt) || !cs_twjson_req_str(fmt, "encoding", &ev->start.encoding) ||
        !cs_str_eqz(ev->start.encoding, TWILIO_ENCODING) || !cJSON_IsNumber(rate) ||
        rate->valuedouble != TWILIO_SAMPLE_RATE || !cJSON_IsNumber(channels) ||
        channels->valuedouble != TWILIO_CHANNELS)
        return false;
    ev->start.sample_rate = TWILIO_SAMPLE_RATE;
    ev->start.channels = TWILIO_CHANNELS;
    return true;
}

/* customParameters: optional, an object of strings. */
bool cs_twjson_params(const cJSON *obj, cs_pevent *ev, cs_pscratch *s)
{
    const cJSON *it;
    size_t n = 0;
    if (!obj) return true;
    if (!cJSON_IsObject(obj)) return false;
    cJSON_ArrayForEach(it, obj)
    {
        if (n == CS_PEV_MAX_PARAMS || !cJSON_IsString(it)) return false;
        s->params[n++] = (cs_kv){cs_str_of(it->string), cs_str_of(it->valuestring)};
    }
    ev->start.params = s->params;
    ev->start.nparams = n;
    return true;
}

static int parse_start(const cJSON *root, cs_pevent *ev, cs_pscratch *s, enum cs_bad *bad)
{
    const cJSON *st = object(root, "start");
    if (!st || !req_sid(st, "accountSid", "AC", &ev->start.account_id) ||
        !req_sid(st, "callSid", "CA", &ev->start.call_id) ||
        !req_sid(st, "streamSid", "MZ", &ev->start.stream_id) ||
        !cs_str_eq(ev->start.stream_id, ev->stream_id) ||
        !parse_tracks(member(st, "tracks"), &ev->start.tracks) ||
        !parse_format(member(st, "mediaFormat"), ev) ||
        !cs_twjson_params(member(st, "customParameters"), ev, s))
        return cs_twjson_refuse(bad, CS_BAD_FIELD);
    return 0;
}

static int parse_media(const cJSON *root, cs_pevent *ev, cs_pscratch *s, enum cs_bad *bad)
{
    const cJSON *m = object(root, "media");
    media_fields f;
    if (!m || !cs_twjson_opt_str(m, "track", &f.track) ||
        !cs_twjson_opt_str(m, "chunk", &f.chunk) ||
        !cs_twjson_opt_str(m, "timestamp", &f.timestamp) ||
        !cs_twjson_opt_str(m, "payload", &f.payload))
        return cs_twjson_refuse(bad, CS_BAD_FIELD);
    return finish_media(&f, ev, s, bad);
}

static int parse_dtmf(const cJSON *root, cs_pevent *ev, cs_pscratch *s, enum cs_bad *bad)
{
    (void)s;
    const cJSON *d = object(root, "dtmf");
    cs_str digit, track;
    if (!d || !cs_twjson_req_str(d, "digit", &digit) || digit.n != 1 ||
        !memchr(dtmf_digits, digit.p[0], sizeof dtmf_digits - 1) ||
        !cs_twjson_opt_str(d, "track", &track) || (track.p && !cs_str_eqz(track, "inbound_track")))
        return cs_twjson_refuse(bad, CS_BAD_FIELD);
    ev->dtmf.digit = digit.p[0];
    return 0;
}

static int parse_mark(const cJSON *root, cs_pevent *ev, cs_pscratch *s, enum cs_bad *bad)
{
    (void)s;
    if (!cs_twjson_req_str(object(root, "mark"), "name", &ev->mark.name))
        return cs_twjson_refuse(bad, CS_BAD_FIELD);
    return 0;
}

/* The stop object carries nothing we need, so it may be missing. */
static int parse_stop(const cJSON *root, cs_pevent *ev, cs_pscratch *s, enum cs_bad *bad)
{
    (void)s;
    const cJSON *st = member(root, "stop");
    if ((st && !cJSON_IsObject(st)) || !cs_twjson_opt_str(st, "accountSid", &ev->stop.account_id) ||
        !cs_twjson_opt_str(st, "callSid", &ev->stop.call_id))
        return cs_twjson_refuse(bad, CS_BAD_FIELD);
    return 0;
}

typedef int (*event_fn)(const cJSON *root, cs_pevent *ev, cs_pscratch *s, enum cs_bad *bad);

/* Messages from Twilio (§1.1). */
static const struct event_def {
    cs_str name;
    enum cs_pev_type type;
    event_fn parse;
} events[] = {
    {CS_STR("connected"), CS_PEV_CONNECTED, parse_connected},
    {CS_STR("start"), CS_PEV_START, parse_start},
    {CS_STR("media"), CS_PEV_MEDIA, parse_media},
    {CS_STR("dtmf"), CS_PEV_DTMF, parse_dtmf},
    {CS_STR("mark"), CS_PEV_MARK, parse_mark},
    {CS_STR("stop"), CS_PEV_STOP, parse_stop},
};

static const struct event_def *event_find(const cJSON *event)
{
    if (!cJSON_IsString(event)) return NULL;
    cs_str name = cs_str_of(event->valuestring);
    for (size_t i = 0; i < sizeof events / sizeof *events; i++)
        if (cs_str_eq(name, events[i].name)) return &events[i];
    return NULL;
}

int cs_twilio_parse_slow(const char *msg, size_t len, cs_pevent *ev, cs_pscratch *scratch,
                         enum cs_bad *bad)
{
    cs_pscratch_free(scratch);
    cJSON *root = cs_twjson_object_parse(msg, len);
    if (!root) return cs_twjson_refuse(bad, CS_BAD_JSON);
    scratch->tree = root;
    const struct event_def *def = event_find(member(root, "event"));
    if (!def) return cs_twjson_refuse(bad, CS_BAD_EVENT);
    cs_twjson_reset(ev, def->type);
    cs_str seq, stream;
    if (!cs_twjson_opt_str(root, "sequenceNumber", &seq) ||
        !cs_twjson_opt_str(root, "streamSid", &stream))
        return cs_twjson_refuse(bad, CS_BAD_FIELD);
    int rc = finish_top(ev, seq, stream, bad);
    return rc ? rc : def->parse(root, ev, scratch, bad);
}

static int twilio_parse(char *msg, size_t len, cs_pevent *ev, cs_pscratch *scratch,
                        enum cs_bad *bad)
{
    int rc = cs_twilio_parse_fast(msg, len, ev, scratch, bad);
    return rc == -EAGAIN ? cs_twilio_parse_slow(msg, len, ev, scratch, bad) : rc;
}

/* ---- writers ---- */

/* Ends a writer: on error, drops what it appended, so `out` only holds whole messages. */
int cs_twjson_end_write(cs_buf *out, size_t start, int rc)
{
    if (rc) cs_buf_truncate(out, start);
    return rc;
}

/* Appends the base64 of p[0..n) as a JSON string, encoded in place. */
static int put_base64(cs_buf *out, const uint8_t *p, size_t n)
{
    size_t len = CS_BASE64_ENCODED_LEN(n) + 2;
    char *dst = cs_buf_space(out, len);
    if (!dst) return len > out->max - out->len ? -EMSGSIZE : -ENOMEM;
    dst[0] = '"';
    cs_base64_encode(dst + 1, p, n);
    dst[len - 1] = '"';
    cs_buf_commit(out, len);
    return 0;
}

/* §1.2: {"event":"media","streamSid":"MZ…","media":{"payload":"…"}} */
static int write_media(cs_buf *out, cs_str stream_id, const uint8_t *ulaw, size_t n)
{
    size_t start = out->len;
    int rc = PUT(out, "{\"event\":\"media\",\"streamSid\":");
    if (!rc) rc = cs_json_escape(out, stream_id.p, stream_id.n);
    if (!rc) rc = PUT(out, ",\"media\":{\"payload\":");
    if (!rc) rc = put_base64(out, ulaw, n);
    if (!rc) rc = PUT(out, "}}");
    return cs_twjson_end_write(out, start, rc);
}

/* Opens {"event":…,"streamSid":…, as every message to Twilio starts. */
static void open_event(cs_json *j, const char *event, cs_str stream_id)
{
    cs_json_obj(j);
    cs_json_kstr(j, "event", event);
    cs_json_key(j, "streamSid");
    cs_json_strn(j, stream_id.p, stream_id.n);
}

static int write_mark(cs_buf *out, cs_str stream_id, cs_str name)
{
    size_t start = out->len;
    cs_json j;
    cs_json_init(&j, out);
    open_event(&j, "mark", stream_id);
    cs_json_key(&j, "mark");
    cs_json_obj(&j);
    cs_json_key(&j, "name");
    cs_json_strn(&j, name.p, name.n);
    cs_json_obj_end(&j);
    cs_json_obj_end(&j);
    return cs_twjson_end_write(out, start, cs_json_end(&j));
}

static int write_clear(cs_buf *out, cs_str stream_id)
{
    size_t start = out->len;
    cs_json j;
    cs_json_init(&j, out);
    open_event(&j, "clear", stream_id);
    cs_json_obj_end(&j);
    return cs_twjson_end_write(out, start, cs_json_end(&j));
}

const cs_provider_ops cs_provider_twilio = {
    .name = "twilio",
    .parse = twilio_parse,
    .write_media = write_media,
    .write_mark = write_mark,
    .write_clear = write_clear,
    .parse_relay = cs_twilio_relay_parse,
    .write_relay = cs_twilio_relay_write,
};

/* ---- peer side: what Twilio sends, key order as in §1.1 ---- */

/* Twilio sends sequenceNumber, chunk and timestamp as strings holding integers. */
static void kstr_u64(cs_json *j, const char *key, uint64_t v)
{
    char s[24];
    snprintf(s, sizeof s, "%" PRIu64, v);
    cs_json_kstr(j, key, s);
}

int cs_twilio_peer_connected(cs_buf *out)
{
    size_t start = out->len;
    cs_json j;
    cs_json_init(&j, out);
    cs_json_obj(&j);
    cs_json_kstr(&j, "event", "connected");
    cs_json_kstr(&j, "protocol", "Call");
    cs_json_kstr(&j, "version", "1.0.0");
    cs_json_obj_end(&j);
    return cs_twjson_end_write(out, start, cs_json_end(&j));
}

/* customParameters as one raw value: cs_json keys are C strings, parameter names views. */
static void put_params(cs_json *j, const cs_kv *params, size_t n)
{
    cs_buf obj = CS_BUF_INIT(j->out->max);
    int rc = cs_buf_putc(&obj, '{');
    for (size_t i = 0; i < n && !rc; i++) {
        if (i) rc = cs_buf_putc(&obj, ',');
        if (!rc) rc = cs_json_escape(&obj, params[i].name.p, params[i].name.n);
        if (!rc) rc = cs_buf_putc(&obj, ':');
        if (!rc) rc = cs_json_escape(&obj, params[i].value.p, params[i].value.n);
    }
    if (!rc) rc = cs_buf_putc(&obj, '}');
    if (!rc)
        cs_json_raw(j, obj.data, obj.len);
    else if (!j->err)
        j->err = rc;
    cs_buf_free(&obj);
}

int cs_twilio_peer_start(cs_buf *out, uint64_t seq, const cs_twilio_start *s)
{
    size_t start = out->len;
    cs_json j;
    cs_json_init(&j, out);
    cs_json_obj(&j);
    cs_json_kstr(&j, "event", "start");
    kstr_u64(&j, "sequenceNumber", seq);
    cs_json_key(&j, "start");
    cs_json_obj(&j);
    cs_json_kstr(&j, "accountSid", s->account_sid);
    cs_json_kstr(&j, "streamSid", s->stream_sid);
    cs_json_kstr(&j, "callSid", s->call_sid);
    cs_json_key(&j, "tracks");
    cs_json_arr(&j);
    for (size_t t = 0; t < sizeof track_names / sizeof *track_names; t++)
        if (s->tracks & CS_TRACK_BIT(t)) cs_json_strn(&j, track_names[t].p, track_names[t].n);
    cs_json_arr_end(&j);
    cs_json_key(&j, "mediaFormat");
    cs_json_obj(&j);
    cs_json_kstr(&j, "encoding", TWILIO_ENCODING);
    cs_json_kuint(&j, "sampleRate", TWILIO_SAMPLE_RATE);
    cs_json_kuint(&j, "channels", TWILIO_CHANNELS);
    cs_json_obj_end(&j);
    cs_json_key(&j, "customParameters");
    put_params(&j, s->params, s->nparams);
    cs_json_obj_end(&j);
    cs_json_kstr(&j, "streamSid", s->stream_sid);
    cs_json_obj_end(&j);
    return cs_twjson_end_write(out, start, cs_json_end(&j));
}

/* A template like write_media: the simulator sends 50 of these a second per call. */
int cs_twilio_peer_media(cs_buf *out, const char *stream_sid, uint64_t seq, enum cs_track track,
                         uint64_t chunk, uint64_t timestamp_ms, const uint8_t *ulaw, size_t n)
{
    if ((unsigned)track >= sizeof track_names / sizeof *track_names) return -EINVAL;
    size_t start = out->len;
    int rc = cs_buf_printf(out,
                           "{\"event\":\"media\",\"sequenceNumber\":\"%" PRIu64 "\",\"media\":"
                           "{\"track\":\"%s\",\"chunk\":\"%" PRIu64 "\",\"timestamp\":\"%" PRIu64
                           "\",\"payload\":",
                           seq, track_names[track].p, chunk, timestamp_ms);
    if (!rc) rc = put_base64(out, ulaw, n);
    if (!rc) rc = PUT(out, "},\"streamSid\":");
    if (!rc) rc = cs_json_escape(out, stream_sid, strlen(stream_sid));
    if (!rc) rc = PUT(out, "}");
    return cs_twjson_end_write(out, start, rc);
}

int cs_twilio_peer_dtmf(cs_buf *out, const char *stream_sid, uint64_t seq, char digit)
{
    size_t start = out->len;
    cs_json j;
    cs_json_init(&j, out);
    cs_json_obj(&j);
    cs_json_kstr(&j, "event", "dtmf");
    cs_json_kstr(&j, "streamSid", stream_sid);
    kstr_u64(&j, "sequenceNumber", seq);
    cs_json_key(&j, "dtmf");
    cs_json_obj(&j);
    cs_json_kstr(&j, "track", "inbound_track");
    cs_json_key(&j, "digit");
    cs_json_strn(&j, &digit, 1);
    cs_json_obj_end(&j);
    cs_json_obj_end(&j);
    return cs_twjson_end_write(out, start, cs_json_end(&j));
}

int cs_twilio_peer_mark(cs_buf *out, const char *stream_sid, uint64_t seq, cs_str name)
{
    size_t start = out->len;
    cs_json j;
    cs_json_init(&j, out);
    cs_json_obj(&j);
    cs_json_kstr(&j, "event", "mark");
    kstr_u64(&j, "sequenceNumber", seq);
    cs_json_kstr(&j, "streamSid", stream_sid);
    cs_json_key(&j, "mark");
    cs_json_obj(&j);
    cs_json_key(&j, "name");
    cs_json_strn(&j, name.p, name.n);
    cs_json_obj_end(&j);
    cs_json_obj_end(&j);
    return cs_twjson_end_write(out, start, cs_json_end(&j));
}

int cs_twilio_peer_stop(cs_buf *out, const char *stream_sid, uint64_t seq, const char *account_sid,
                        const char *call_sid)
{
    size_t start = out->len;
    cs_json j;
    cs_json_init(&j, out);
    cs_json_obj(&j);
    cs_json_kstr(&j, "event", "stop");
    kstr_u64(&j, "sequenceNumber", seq);
    cs_json_key(&j, "stop");
    cs_json_obj(&j);
    cs_json_kstr(&j, "accountSid", account_sid);
    cs_json_kstr(&j, "callSid", call_sid);
    cs_json_obj_end(&j);
    cs_json_kstr(&j, "streamSid", stream_sid);
    cs_json_obj_end(&j);
    return cs_twjson_end_write(out, start, cs_json_end(&j));
}

/* ---- peer side: what the server sends (§1.2) ---- */

static int peer_media(const cJSON *root, cs_twilio_out *out, uint8_t *buf, size_t cap)
{
    cs_str payload;
    if (!cs_twjson_req_str(object(root, "media"), "payload", &payload) ||
        CS_BASE64_DECODED_MAX(payload.n) > cap)
        return CS_EPARSE;
    int n = cs_base64_decode(buf, payload.p, payload.n);
    if (n < 0) return n;
    out->payload = buf;
    out->len = (size_t)n;
    return 0;
}

static int peer_mark(const cJSON *root, cs_twilio_out *out, uint8_t *buf, size_t cap)
{
    (void)buf;
    (void)cap;
    return cs_twjson_req_str(object(root, "mark"), "name", &out->mark_name) ? 0 : CS_EPARSE;
}

typedef int (*out_fn)(const cJSON *root, cs_twilio_out *out, uint8_t *buf, size_t cap);

/* Messages to Twilio; clear carries nothing but the stream. */
static const struct out_def {
    cs_str name;
    enum cs_twilio_out_type type;
    out_fn parse; /* NULL: nothing more to read */
} out_events[] = {
    {CS_STR("media"), CS_TWOUT_MEDIA, peer_media},
    {CS_STR("mark"), CS_TWOUT_MARK, peer_mark},
    {CS_STR("clear"), CS_TWOUT_CLEAR, NULL},
};

static const struct out_def *out_event_find(const cJSON *event)
{
    if (!cJSON_IsString(event)) return NULL;
    cs_str name = cs_str_of(event->valuestring);
    for (size_t i = 0; i < sizeof out_events / sizeof *out_events; i++)
        if (cs_str_eq(name, out_events[i].name)) return &out_events[i];
    return NULL;
}

/* Copies a view over the message text at *dst, so it outlives the parse tree. */
static cs_str keep(char **dst, cs_str s)
{
    cs_str kept = {*dst, s.n};
    if (s.n) memcpy(*dst, s.p, s.n);
    *dst += s.n;
    return kept;
}

int cs_twilio_peer_parse(char *msg, size_t len, cs_twilio_out *out, uint8_t *buf, size_t cap)
{
    cJSON *root = cs_twjson_object_parse(msg, len);
    if (!root) return CS_EPARSE;
    memset(out, 0, sizeof *out);
    const struct out_def *def = out_event_find(member(root, "event"));
    int rc = def && cs_twjson_req_str(root, "streamSid", &out->stream_sid) ? 0 : CS_EPARSE;
    if (!rc && def->parse) rc = def->parse(root, out, buf, cap);
    if (!rc) {
        /* Unescaped, both strings together are never longer than the text they came from. */
        char *dst = msg;
        out->type = def->type;
        out->stream_sid = keep(&dst, out->stream_sid);
        out->mark_name = keep(&dst, out->mark_name);
    }
    cJSON_Delete(root);
    return rc;
}
