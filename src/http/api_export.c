/* GET /api/v1/calls/{sid}/export: the call, its streams, events and transcript as one
 * JSON document, so a call can be replayed (`callstream replay`) or kept elsewhere.
 * Events carry `offset_ms` on the call's timeline, the one the recording's frame 0
 * starts. With ?audio=1 the recording's caller channel is embedded as base64 μ-law:
 * the document is built up to that string, then the recording is read off the loop in
 * chunks (libuv's file thread pool), encoded and written as the peer takes it, so a long
 * call never sits whole in memory. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "audio/g711.h"
#include "audio/wav.h"
#include "core/base64.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "http/api_int.h"
#include "http/auth.h"

#define EXPORT_FORMAT   "callstream-call-export"
#define EXPORT_VERSION  1
#define EXPORT_HEAD_MAX (32u << 20) /* the document without the audio */
#define AUDIO_FRAMES    12288       /* per read: a multiple of 3, so chunks encode alone */
#define HEADER_READ     512         /* enough for the recorder's 44-byte header */
#define DOC_PIECE       65536       /* the document is written this much at a time */
#define HIGH_WATER      (1u << 20)  /* pause reading while this much is unsent */
#define DATA_TAIL       "\"}}"      /* closes the data string, the audio and the document */

typedef struct export_req {
    cs_request *r;
    cs_gateway *gw;
    bool audio;
    bool live;            /* in the cluster, as the directory says */
    cs_store_query *call; /* the call, streams and events, until the document is written */
    cs_store_query *transcript;
    char path[4096]; /* the recording; "" if none */
    cs_buf doc;      /* the document, "data":" last when the audio follows */
    size_t doc_sent; /* of it */
    /* the recording's caller channel */
    uv_fs_t req;
    uv_file fd;
    unsigned channels;
    uint64_t size;    /* of the file at the stat */
    uint64_t data_at; /* where its samples start in the file */
    uint64_t frames;  /* to send (the file's length when it was opened) */
    uint64_t sent;    /* frames sent */
    uint8_t raw[AUDIO_FRAMES * 2 * 2];
    uint8_t ulaw[AUDIO_FRAMES];
    char b64[CS_BASE64_ENCODED_LEN(AUDIO_FRAMES)];
} export_req;

static void x_free(export_req *x)
{
    if (x->call) cs_store_query_free(x->call);
    if (x->transcript) cs_store_query_free(x->transcript);
    cs_buf_free(&x->doc);
    free(x);
}

static void x_closed(uv_fs_t *req)
{
    uv_fs_req_cleanup(req);
    x_free(req->data);
}

/* Ends the answer (begun or not) and releases everything. */
static void x_finish(export_req *x)
{
    if (x->r) cs_respond_end(x->r);
    x->r = NULL;
    if (x->fd >= 0) {
        uv_fs_close(x->gw->loop, &x->req, x->fd, x_closed);
        x->fd = -1;
        return;
    }
    x_free(x);
}

static void x_refuse(export_req *x, int status, const char *why)
{
    cs_respond_error(x->r, status, "%s", why);
    x->r = NULL;
    x_finish(x);
}

/* ---- the document ---- */

static void audio_json(cs_json *j, const export_req *x, const char *sid)
{
    cs_json_key(j, "audio");
    if (!x->path[0]) {
        cs_json_null(j);
        return;
    }
    char url[128];
    snprintf(url, sizeof url, "/api/v1/calls/%s/recording.wav", sid);
    cs_json_obj(j);
    cs_json_kstr(j, "url", url);
    cs_json_kuint(j, "channel", 0);
    cs_json_kstr(j, "track", "caller");
    cs_json_kuint(j, "sample_rate", CS_REC_RATE);
    cs_json_kint(j, "offset_ms", 0); /* frame 0 is the call's start */
    if (x->audio) {
        cs_json_kstr(j, "encoding", "audio/x-mulaw");
        cs_json_kuint(j, "frames", x->frames);
        cs_json_kstr(j, "data", ""); /* its content is streamed in its place */
    }
    cs_json_obj_end(j);
}

/* Everything but the audio's data. 0, or -EMSGSIZE past EXPORT_HEAD_MAX. */
static int write_doc(export_req *x)
{
    const cs_store_query *t = x->transcript;
    const cs_store_query *q = x->call;
    const cs_call_row *c = &q->calls[0];
    cs_json j;
    cs_json_init(&j, &x->doc);
    cs_json_obj(&j);
    cs_json_kstr(&j, "format", EXPORT_FORMAT);
    cs_json_kint(&j, "version", EXPORT_VERSION);
    cs_json_ktime(&j, "exported_at", cs_wall_ms());
    cs_json_key(&j, "call");
    cs_json_obj(&j);
    cs_api_call_json(&j, x->gw, c, x->live);
    cs_json_obj_end(&j);
    cs_json_key(&j, "streams");
    cs_json_arr(&j);
    for (size_t i = 0; i < q->nstreams; i++) cs_api_stream_json(&j, x->gw, &q->streams[i], x->live);
    cs_json_arr_end(&j);
    /* Each event with its place on the call's timeline, as replay schedules it. */
    cs_json_key(&j, "events");
    cs_json_arr(&j);
    for (size_t i = 0; i < q->nevents; i++) cs_api_event_json(&j, &q->events[i], c->started_at);
    cs_json_arr_end(&j);
    cs_json_kbool(&j, "events_truncated", q->more);
    cs_json_key(&j, "transcript");
    cs_json_obj(&j);
    cs_json_key(&j, "segments");
    cs_json_arr(&j);
    for (size_t i = 0; i < t->nsegments; i++) cs_api_segment_json(&j, &t->segments[i]);
    cs_json_arr_end(&j);
    cs_json_kbool(&j, "truncated", t->more);
    cs_json_obj_end(&j);
    audio_json(&j, x, c->sid);
    cs_json_obj_end(&j);
    if (cs_json_end(&j) < 0) return -EMSGSIZE;
    x->gw->stats.exports++;
    if (q->more || t->more) x->gw->stats.exports_truncated++;
    return 0;
}

/* ---- the audio ---- */

static void pump(export_req *x);

static void on_drained(void *data)
{
    pump(data);
}

static void on_audio(uv_fs_t *req)
{
    export_req *x = req->data;
    ssize_t n = req->result;
    uv_fs_req_cleanup(req);
    size_t frame = x->channels * 2;
    uint64_t want = x->frames - x->sent < AUDIO_FRAMES ? x->frames - x->sent : AUDIO_FRAMES;
    /* A file cut short under us ends the answer short: the peer sees it incomplete. */
    if (n < 0 || (uint64_t)n != want * frame || !x->r) {
        if (n < 0) cs_warn("api: reading a recording for export failed: %s", uv_strerror((int)n));
        x_finish(x);
        return;
    }
    for (uint64_t i = 0; i < want; i++) {
        const uint8_t *s = x->raw + i * frame; /* channel 0, the caller, little-endian */
        x->ulaw[i] = cs_pcm_to_ulaw((int16_t)(s[0] | s[1] << 8));
    }
    size_t len = cs_base64_encode(x->b64, x->ulaw, want);
    x->sent += want;
    x->gw->stats.export_audio_frames += want;
    if (cs_respond_write(x->r, x->b64, len) < 0) {
        x_finish(x);
        return;
    }
    pump(x);
}

/* Writes what comes next as the peer takes it: the document, then the audio (read
 * chunk by chunk, on_audio calls back here), then what closes the document. */
static void pump(export_req *x)
{
    for (;;) {
        if (!x->r || !x->r->conn) {
            x_finish(x);
            return;
        }
        if (cs_respond_pending(x->r) > HIGH_WATER) {
            if (cs_respond_wait(x->r, HIGH_WATER / 2, on_drained, x) < 0) x_finish(x);
            return;
        }
        if (x->doc_sent == x->doc.len) break;
        size_t n = x->doc.len - x->doc_sent < DOC_PIECE ? x->doc.len - x->doc_sent : DOC_PIECE;
        if (cs_respond_write(x->r, x->doc.data + x->doc_sent, n) < 0) {
            x_finish(x);
            return;
        }
        x->doc_sent += n;
    }
    if (x->doc.data) { /* all written: not kept while the audio streams */
        cs_buf_free(&x->doc);
        x->doc_sent = 0;
    }
    if (!x->audio || x->sent == x->frames) {
        if (x->audio) cs_respond_write(x->r, DATA_TAIL, strlen(DATA_TAIL));
        x_finish(x);
        return;
    }
    uint64_t n = x->frames - x->sent < AUDIO_FRAMES ? x->frames - x->sent : AUDIO_FRAMES;
    size_t frame = x->channels * 2;
    uv_buf_t b = uv_buf_init((char *)x->raw, (unsigned)(n * frame));
    x->req.data = x;
    if (uv_fs_read(x->gw->loop, &x->req, x->fd, &b, 1, (int64_t)(x->data_at + x->sent * frame),
                   on_audio) < 0)
        x_finish(x);
}

/* The answer's head, its length known, then the rest as the peer takes it. */
static void begin(export_req *x, int64_t len)
{
    /* written: only the document and the audio's state are kept while they stream */
    cs_store_query_free(x->call);
    cs_store_query_free(x->transcript);
    x->call = x->transcript = NULL;
    if (cs_respond_begin(x->r, 200, "application/json", len, NULL) < 0) {
        x_finish(x);
        return;
    }
    pump(x);
}

/* The document with the audio's length known: its head, then the audio as it is read. */
static void begin_with_audio(export_req *x)
{
    if (write_doc(x) < 0) {
        x_refuse(x, 500, "the export is too large");
        return;
    }
    /* the document ends with "data":""}} : the data goes between the quotes */
    size_t tail = strlen(DATA_TAIL) + 1;
    if (x->doc.len < tail || memcmp(x->doc.data + x->doc.len - tail, "\"" DATA_TAIL, tail) != 0) {
        x_refuse(x, 500, "the export could not be written");
        return;
    }
    x->doc.len -= tail - 1;
    begin(x, (int64_t)(x->doc.len + CS_BASE64_ENCODED_LEN(x->frames) + strlen(DATA_TAIL)));
}

static void on_header(uv_fs_t *req)
{
    export_req *x = req->data;
    ssize_t n = req->result;
    uv_fs_req_cleanup(req);
    cs_wav_info info;
    if (n <= 0 || cs_wav_parse(x->raw, (size_t)n, &info) < 0 || info.format != CS_WAV_PCM ||
        info.bits != 16 || info.rate != CS_REC_RATE || info.channels < 1 || info.channels > 2) {
        x_refuse(x, 500, "the recording cannot be read");
        return;
    }
    x->channels = info.channels;
    x->data_at = info.data_offset;
    /* What the file held at the stat: a recording still being written has a header that
     * lags, and grows past this. */
    x->frames = x->size > x->data_at ? (x->size - x->data_at) / (x->channels * 2) : 0;
    begin_with_audio(x);
}

static void on_stat(uv_fs_t *req)
{
    export_req *x = req->data;
    int rc = (int)req->result;
    x->size = rc == 0 ? (uint64_t)req->statbuf.st_size : 0;
    uv_fs_req_cleanup(req);
    uv_buf_t b = uv_buf_init((char *)x->raw, HEADER_READ);
    if (rc < 0 || uv_fs_read(x->gw->loop, &x->req, x->fd, &b, 1, 0, on_header) < 0)
        x_refuse(x, 500, "the recording cannot be read");
}

static void on_open(uv_fs_t *req)
{
    export_req *x = req->data;
    int fd = (int)req->result;
    uv_fs_req_cleanup(req);
    if (fd < 0) {
        x_refuse(x, 404, "no recording for this call");
        return;
    }
    x->fd = fd;
    if (uv_fs_fstat(x->gw->loop, &x->req, fd, on_stat) < 0)
        x_refuse(x, 500, "the recording cannot be read");
}

/* ---- the route ---- */

static void live_known(void *data, const cs_dir_req *d);

static void transcript_done(cs_store_query *t, void *data)
{
    export_req *x = data;
    if (cs_api_query_failed(x->r, t)) {
        x->r = NULL;
        x_finish(x);
        return;
    }
    x->transcript = t;
    if (cs_cluster_ask(x->gw, CS_DIR_GET, t->sid, live_known, x) < 0) live_known(x, NULL);
}

/* Whether the call is live anywhere (`d` NULL: this node's word only), then the rest. */
static void live_known(void *data, const cs_dir_req *d)
{
    export_req *x = data;
    x->live = d && d->rc == 0 && d->ncalls;
    if (x->audio) { /* the document is written once the audio's length is known */
        x->req.data = x;
        if (uv_fs_open(x->gw->loop, &x->req, x->path, O_RDONLY, 0, on_open) < 0)
            x_refuse(x, 404, "no recording for this call");
        return;
    }
    if (write_doc(x) < 0)
        x_refuse(x, 500, "the export is too large");
    else
        begin(x, (int64_t)x->doc.len);
}

static void call_done(cs_store_query *q, void *data)
{
    export_req *x = data;
    if (cs_api_query_failed(x->r, q)) {
        x->r = NULL;
        x_finish(x);
        return;
    }
    x->call = q;
    const cs_call *live = cs_calls_call(&x->gw->calls, cs_str_of(q->calls[0].sid));
    const char *path = live && live->rec ? cs_recording_path(live->rec) : q->calls[0].recording;
    snprintf(x->path, sizeof x->path, "%s", path ? path : "");
    if (x->audio && !x->path[0]) {
        x_refuse(x, 404, "no recording for this call: export it without audio=1");
        return;
    }
    cs_store_query *t = cs_api_start_query(x->r, CS_Q_TRANSCRIPT, transcript_done);
    if (!t) {
        x->r = NULL;
        x_finish(x);
        return;
    }
    t->cb_data = x;
    memcpy(t->sid, q->sid, sizeof t->sid);
    cs_store_query_run(x->gw->store, t);
}

void cs_api_export(cs_request *r)
{
    if (!cs_auth_check(r, CS_ACCESS_API, cs_api_export)) return;
    cs_gateway *gw = r->app;
    char sid[65];
    if (cs_api_path_sid(r, sid) < 0) return;
    cs_form query;
    if (cs_api_parse_query(r, &query) < 0) return;
    const char *audio = cs_form_get(&query, "audio");
    bool with_audio = audio && strcmp(audio, "1") == 0;
    bool known = !audio || with_audio || strcmp(audio, "0") == 0;
    cs_form_free(&query);
    if (!known) {
        cs_respond_error(r, 400, "audio is 0 or 1");
        return;
    }
    export_req *x = calloc(1, sizeof *x);
    if (!x) {
        cs_respond_error(r, 503, "out of memory");
        return;
    }
    x->r = r;
    x->gw = gw;
    x->audio = with_audio;
    x->fd = -1;
    cs_buf_init(&x->doc, EXPORT_HEAD_MAX);
    cs_store_query *q = cs_api_start_query(r, CS_Q_CALL, call_done);
    if (!q) {
        x->r = NULL;
        x_finish(x);
        return;
    }
    q->cb_data = x;
    memcpy(q->sid, sid, sizeof sid);
    cs_store_query_run(gw->store, q);
}
