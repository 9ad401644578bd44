/* Replay: a real call (a corpus clip said on a media stream, a key pressed) is
 * transcribed by pocketsphinx and exported (GET /api/v1/calls/{sid}/export, its caller
 * audio embedded); `callstream replay --file` plays it into a second gateway, whose
 * transcript must match the original's and whose DTMF must come at about the same
 * offset; `callstream replay CALLSID --url` fetches the export itself. The export's
 * audio is the recording's caller channel, byte for byte. Errors: the route's (401, 404,
 * 400, no recording) and replay's (an unknown call, an unreachable target, bad files).
 * Offsets get generous bounds: the machine may be slow. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audio/g711.h"
#include "audio/wav.h"
#include "core/base64.h"
#include "integ_util.h"

#define CLIP            "ulaw8k/pocketsphinx_goforward.wav" /* "go forward ten meters" */
#define SID             "CA71000000000000000000000000000001"
#define STREAM          "MZ71000000000000000000000000000001"
#define UNKNOWN         "CA71000000000000000000000000000099"
#define SID_MANY        "CA71000000000000000000000000000002"
#define STREAM_MANY     "MZ71000000000000000000000000000002"
#define MANY_KEYS       500
#define KEY_AT_MS       1200 /* into the call, the key is pressed */
#define MAX_WER         0.25
#define OFFSET_SLACK_MS 600 /* the replayed key's offset against the original's */
#define WAIT_MS         60000

static bool transcribed(void *data)
{
    const it_server *s = data;
    if (it_metric(s->port, "callstream_stt_sessions") != 0) return false;
    char text[1024];
    it_transcript(s->port, SID, "caller", text, sizeof text);
    return text[0] != '\0';
}

/* The offset_ms of the export's first dtmf event (digit in *digit), -1 if none. */
static long long dtmf_offset(const cJSON *doc, char *digit)
{
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(doc, "events"))
    {
        if (strcmp(it_str(e, "type"), "dtmf") != 0) continue;
        *digit = it_str(cJSON_GetObjectItem(e, "detail"), "digit")[0];
        return (long long)cJSON_GetNumberValue(cJSON_GetObjectItem(e, "offset_ms"));
    }
    return -1;
}

static bool write_file(const char *path, const char *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) return false;
    bool ok = fwrite(data, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

/* A call through the gateway: the clip said, a key pressed KEY_AT_MS in. */
static void original_call(it_server *s)
{
    it_phone p;
    IT_CHECK(it_phone_start(&p, s->port, SID, STREAM, NULL) == 0, "no media stream");
    IT_CHECK(it_phone_say(&p, it_corpus(CLIP)) == 0, "no clip");
    it_phone_run(&p, KEY_AT_MS);
    /* While live: the recording as far as it is written, a whole document. */
    cJSON *live = it_get_json(s->port, "/api/v1/calls/" SID "/export?audio=1");
    const cJSON *audio = cJSON_GetObjectItem(live, "audio");
    int frames = it_num(audio, "frames");
    IT_CHECK(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(live, "call"), "live")) &&
                 frames >= 0 &&
                 strlen(it_str(audio, "data")) == CS_BASE64_ENCODED_LEN((size_t)frames),
             "a live call's export: %d frames", frames);
    cJSON_Delete(live);
    IT_CHECK(it_phone_key(&p, '5') == 0, "no key");
    it_phone_run(&p, 2500);
    it_phone_hangup(&p);
    it_phone_free(&p);
    IT_CHECK(it_until(transcribed, s, WAIT_MS), "the call was not transcribed");
    cJSON_Delete(it_call_recorded(s->port, SID, WAIT_MS));
}

/* The route: the document, its audio against the recording, and its refusals. */
static void export_route(it_server *s, const char *file, char *text, size_t cap, long long *key_ms)
{
    it_resp r;
    IT_CHECK(it_http(s->port, "GET", "/api/v1/calls/" SID "/export?audio=1", NULL, NULL, &r) == 0 &&
                 r.status == 200 && r.json,
             "export: %d", r.status);
    const cJSON *doc = r.json;
    IT_CHECK(strcmp(it_str(doc, "format"), "callstream-call-export") == 0 &&
                 it_num(doc, "version") == 1,
             "format %s version %d", it_str(doc, "format"), it_num(doc, "version"));
    IT_CHECK(strcmp(it_str(cJSON_GetObjectItem(doc, "call"), "sid"), SID) == 0, "not the call");
    IT_CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(doc, "streams")) == 1, "streams");
    char digit = 0;
    *key_ms = dtmf_offset(doc, &digit);
    IT_CHECK(digit == '5' && *key_ms >= KEY_AT_MS - 100 && *key_ms < KEY_AT_MS + 5000,
             "the key: '%c' at %lld ms", digit, *key_ms);
    it_transcript(s->port, SID, "caller", text, cap);
    const cJSON *segs = cJSON_GetObjectItem(cJSON_GetObjectItem(doc, "transcript"), "segments");
    IT_CHECK(cJSON_GetArraySize(segs) >= 1 &&
                 strstr(text, it_str(cJSON_GetArrayItem(segs, 0), "text")),
             "transcript: '%s'", text);
    IT_CHECK(strstr(r.head, "Content-Length:") != NULL, "no length:\n%s", r.head);

    /* The audio is the recording's caller channel, byte for byte. */
    const cJSON *audio = cJSON_GetObjectItem(doc, "audio");
    const char *data = it_str(audio, "data");
    int frames = it_num(audio, "frames");
    IT_CHECK(it_num(audio, "sample_rate") == 8000 && frames > 8000 &&
                 strlen(data) == CS_BASE64_ENCODED_LEN((size_t)frames),
             "audio: %d frames, %zu characters", frames, strlen(data));
    uint8_t *ulaw = malloc((size_t)frames + 3);
    int n = cs_base64_decode(ulaw, data, strlen(data));
    cs_wav_info info;
    it_resp w;
    IT_CHECK(it_http(s->port, "GET", "/api/v1/calls/" SID "/recording.wav", NULL, NULL, &w) == 0 &&
                 w.status == 200,
             "recording: %d", w.status);
    const uint8_t *wav = (const uint8_t *)w.body;
    IT_CHECK(cs_wav_parse(wav, w.body_len, &info) == 0, "the recording is not a WAV");
    size_t rframes = info.data_len / (info.channels * 2);
    IT_CHECK(n == frames && (size_t)frames == rframes, "export %d frames, recording %zu", n,
             rframes);
    int differ = 0;
    for (size_t i = 0; i < rframes && n == frames; i++) {
        const uint8_t *sm = wav + info.data_offset + i * info.channels * 2;
        differ += ulaw[i] != cs_pcm_to_ulaw((int16_t)(sm[0] | sm[1] << 8));
    }
    IT_CHECK(differ == 0, "%d bytes of the audio are not the recording's caller channel", differ);
    free(ulaw);
    it_resp_free(&w);
    IT_CHECK(write_file(file, r.body, r.body_len), "cannot write %s", file);
    it_resp_free(&r);

    /* Without audio: the same document, the recording by its URL only. */
    cJSON *plain = it_get_json(s->port, "/api/v1/calls/" SID "/export");
    const cJSON *a = cJSON_GetObjectItem(plain, "audio");
    IT_CHECK(plain && cJSON_GetObjectItem(a, "data") == NULL &&
                 strcmp(it_str(a, "url"), "/api/v1/calls/" SID "/recording.wav") == 0,
             "export without audio");
    cJSON_Delete(plain);

    static const struct {
        const char *target;
        int status;
    } bad[] = {
        {"/api/v1/calls/" UNKNOWN "/export", 404},
        {"/api/v1/calls/" UNKNOWN "/export?audio=1", 404},
        {"/api/v1/calls/not-a-sid/export", 404},
        {"/api/v1/calls/" SID "/export?audio=2", 400},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        IT_CHECK(it_http(s->port, "GET", bad[i].target, NULL, NULL, &r) == 0 &&
                     r.status == bad[i].status,
                 "%s: %d, not %d", bad[i].target, r.status, bad[i].status);
        it_resp_free(&r);
    }
    /* counted: three exports answered (one live), two with audio */
    double exports = it_metric(s->port, "callstream_exports_total");
    double audio_s = it_metric(s->port, "callstream_export_audio_seconds_total");
    IT_CHECK(exports == 3 && audio_s > 2 && audio_s < 20, "metrics: %.0f exports, %.1f s of audio",
             exports, audio_s);
    IT_CHECK(it_http_browser(s->port, "GET", "/api/v1/calls/" SID "/export", NULL, NULL, &r) == 0 &&
                 r.status == 401,
             "no token: %d", r.status);
    it_resp_free(&r);
}

/* A call with many events: its export is longer than the piece it is written in (and
 * than the route's other answers), and whole. */
static void many_events(it_server *s)
{
    it_phone p;
    IT_CHECK(it_phone_start(&p, s->port, SID_MANY, STREAM_MANY, NULL) == 0, "no media stream");
    for (int i = 0; i < MANY_KEYS; i++) {
        it_phone_key(&p, "0123456789"[i % 10]);
        if (i % 100 == 99) it_phone_run(&p, 400); /* under MAX_MESSAGES_PER_S */
    }
    it_phone_hangup(&p);
    it_phone_free(&p);
    cJSON_Delete(it_call_recorded(s->port, SID_MANY, WAIT_MS));
    it_resp r;
    IT_CHECK(it_http(s->port, "GET", "/api/v1/calls/" SID_MANY "/export", NULL, NULL, &r) == 0 &&
                 r.status == 200 && r.json,
             "export of many events: %d", r.status);
    int keys = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(r.json, "events")) keys +=
        strcmp(it_str(e, "type"), "dtmf") == 0;
    IT_CHECK(keys == MANY_KEYS && r.body_len > 65536, "%d keys in %zu bytes", keys, r.body_len);
    it_resp_free(&r);
}

/* The replayed call's export on `s`: its key's offset. */
static long long replayed_key(const it_server *s, const char *sid)
{
    char target[128];
    snprintf(target, sizeof target, "/api/v1/calls/%s/export", sid);
    cJSON *doc = it_get_json(s->port, target);
    char digit = 0;
    long long at = dtmf_offset(doc, &digit);
    IT_CHECK(digit == '5', "the replayed call's key: '%c'", digit);
    cJSON_Delete(doc);
    return at;
}

static double num(const cJSON *o, const char *k)
{
    return cJSON_GetNumberValue(cJSON_GetObjectItem(o, k));
}

int main(void)
{
    it_server a = {0}, b = {0};
    const char *args[] = {"--stt", "pocketsphinx", "--stt-max-sessions", "2", NULL};
    if (!it_server_up(&a, args)) return it_done("replay");
    char file[512], text[1024], err[1024];
    long long key_ms = -1;
    snprintf(file, sizeof file, "%s/export.json", a.dir);
    original_call(&a);
    export_route(&a, file, text, sizeof text, &key_ms);
    printf("original: '%s', key at %lld ms\n", text, key_ms);
    many_events(&a);

    /* A second gateway: the export replayed into it, its transcript compared. */
    if (it_server_up(&b, args)) {
        int st;
        cJSON *rep = it_command(&st, err, sizeof err,
                                "replay --file %s --to %s --to-token %s --compare --max-wer %.2f",
                                file, b.url, b.token, MAX_WER);
        const cJSON *cmp = cJSON_GetObjectItem(rep, "compare");
        printf("replayed: '%s' wer %.2f\n", it_str(cmp, "replayed"), num(cmp, "wer"));
        IT_CHECK(st == 0 && rep, "replay exit %d: %s", st, err);
        IT_CHECK(num(rep, "completed") == 1 && num(rep, "dtmf_sent") == 1, "replay report");
        IT_CHECK(strcmp(it_str(cJSON_GetObjectItem(rep, "original"), "call_sid"), SID) == 0,
                 "the original's sid");
        IT_CHECK(cJSON_IsTrue(cJSON_GetObjectItem(cmp, "match")) && num(cmp, "wer") <= MAX_WER &&
                     num(cmp, "words") >= 3,
                 "the replay heard '%s' for '%s'", it_str(cmp, "replayed"),
                 it_str(cmp, "original"));
        const char *sid = it_str(rep, "call_sid");
        IT_CHECK(strcmp(sid, SID) != 0 && strlen(sid) == 34, "new call sid '%s'", sid);
        long long at = replayed_key(&b, sid); /* it_auth is b's now */
        printf("replayed key at %lld ms (original %lld)\n", at, key_ms);
        IT_CHECK(at >= key_ms - OFFSET_SLACK_MS && at <= key_ms + OFFSET_SLACK_MS,
                 "the replayed key at %lld ms, the original's at %lld", at, key_ms);
        cJSON_Delete(rep);

        /* From the source gateway by its CallSid, a part of the call only: no key in it. */
        rep = it_command(&st, err, sizeof err, "replay %s --url %s --token %s --to %s --to-ms %d",
                         SID, a.url, a.token, b.url, KEY_AT_MS / 2);
        IT_CHECK(st == 0 && num(rep, "completed") == 1 && num(rep, "dtmf_sent") == 0 &&
                     num(rep, "frames_sent") == KEY_AT_MS / 2 / 20,
                 "replay --url: exit %d (%s)", st, err);
        cJSON_Delete(rep);

        /* An unreachable target: the call fails, said in the report. */
        rep = it_command(&st, err, sizeof err, "replay --file %s --to http://127.0.0.1:1", file);
        IT_CHECK(st == 1 && num(cJSON_GetObjectItem(rep, "failures"), "webhook") == 1,
                 "unreachable: exit %d (%s)", st, err);
        cJSON_Delete(rep);
        IT_CHECK(it_server_stop(&b, SIGTERM, 10000) == 0,
                 "the second gateway did not exit cleanly");
        it_server_cleanup(&b);
    }

    /* Refusals, each with a line that says why and no call placed. */
    char trunc[512], v2[512], noaudio[512];
    snprintf(trunc, sizeof trunc, "%s/truncated.json", a.dir);
    snprintf(v2, sizeof v2, "%s/v2.json", a.dir);
    snprintf(noaudio, sizeof noaudio, "%s/noaudio.json", a.dir);
    snprintf(it_auth, sizeof it_auth, "Authorization: Bearer %s\r\n", a.token); /* b's before */
    it_resp r;
    IT_CHECK(it_http(a.port, "GET", "/api/v1/calls/" SID "/export", NULL, NULL, &r) == 0 &&
                 r.status == 200,
             "export: %d", r.status);
    write_file(noaudio, r.body, r.body_len);
    write_file(trunc, r.body, r.body_len / 2);
    it_resp_free(&r);
    const char *v2doc = "{\"format\":\"callstream-call-export\",\"version\":2}";
    write_file(v2, v2doc, strlen(v2doc));
    static const struct {
        const char *fmt, *why;
    } refusals[] = {
        {"replay %s --url %s --token %s", "answered 404: no such call"},
        {"replay --file %s/nowhere.json --to http://127.0.0.1:1", "cannot open"},
        {"replay --file %s/truncated.json --to http://127.0.0.1:1", "not JSON"},
        {"replay --file %s/v2.json --to http://127.0.0.1:1", "version 2 is not supported"},
        {"replay --file %s/noaudio.json --to http://127.0.0.1:1", "holds no audio"},
    };
    for (size_t i = 0; i < sizeof refusals / sizeof *refusals; i++) {
        int st;
        cJSON *rep =
            i == 0 ? it_command(&st, err, sizeof err, refusals[i].fmt, UNKNOWN, a.url, a.token)
                   : it_command(&st, err, sizeof err, refusals[i].fmt, a.dir);
        IT_CHECK(st == 1 && !rep && strstr(err, refusals[i].why), "%s: exit %d, said '%s'",
                 refusals[i].why, st, err);
        cJSON_Delete(rep);
    }
    int st;
    cJSON_Delete(it_command(&st, err, sizeof err, "replay --file %s", file));
    IT_CHECK(st == 2 && strstr(err, "--file needs --to"), "no target: exit %d (%s)", st, err);
    static const struct {
        const char *args, *why;
    } usage[] = {
        {"replay", "either CALLSID --url URL or --file FILE"},
        {"replay CA123 --url http://127.0.0.1:1", "not one (CA and 32 hex digits)"},
        {"replay --file x --to http://127.0.0.1:1 --from-ms 100 --to-ms 50", "past --from-ms"},
        {"replay --file x --to http://127.0.0.1:1 --from-ms 1e12", "out of range"},
    };
    for (size_t i = 0; i < sizeof usage / sizeof *usage; i++) {
        cJSON_Delete(it_command(&st, err, sizeof err, "%s", usage[i].args));
        IT_CHECK(st == 2 && strstr(err, usage[i].why), "%s: exit %d (%s)", usage[i].args, st, err);
    }
    IT_CHECK(it_server_stop(&a, SIGTERM, 10000) == 0, "the gateway did not exit cleanly");
    it_server_cleanup(&a);
    return it_done("replay");
}
