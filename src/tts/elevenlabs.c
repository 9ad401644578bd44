/* ElevenLabs as a TTS engine, on its WebSocket stream-input API: each job is one socket to
 * {ELEVENLABS_URL}/v1/text-to-speech/{voice_id}/stream-input?model_id=…&output_format=
 * ulaw_8000 with the key in the xi-api-key header. We send the opening message (a space
 * and voice_settings), the text (ending in a space, try_trigger_generation), and the end
 * of input (an empty text). Messages back carry base64 μ-law 8 kHz in `audio`, passed on
 * byte for byte, and `alignment`: the characters of our text with their start times in
 * ms, counted from the start of that message's audio, which become word timings (a word
 * starts with its first character). {"isFinal": true} ends the audio; an error message
 * ({"message", "error", "code"}) or a close before it fails the job, as does a refused
 * upgrade (its status and body). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base64.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "net/form.h"
#include "net/url.h"
#include "net/wsconn.h"
#include "tts/cloud.h"
#include "tts/sentence.h"

#define EL_MAX_MESSAGE (1u << 20) /* one message from the service */
#define EL_URL_MAX     2048

typedef struct el_engine {
    tts_cloud base;
    cs_net *net;
    char *auth; /* "xi-api-key: …\r\n" */
} el_engine;

typedef struct el_job {
    tts_cjob base;
    cs_wsconn ws;
    bool socket;   /* connecting or open: on_close will come */
    bool final;    /* isFinal came: the audio is whole */
    size_t cursor; /* alignment: where the next character is in the text */
    bool in_word;
    char refusal[160]; /* a refused upgrade's status and body */
} el_job;

/* ---- what comes back ---- */

/* Word timings from an alignment: `chars` (strings, one character each, of our text in
 * order) starting at `starts` ms into the audio of the message, which begins `base_ms`
 * into the job's. */
static void align(el_job *j, const cJSON *al, uint32_t base_ms)
{
    const cJSON *chars = cJSON_GetObjectItemCaseSensitive(al, "chars");
    const cJSON *starts = cJSON_GetObjectItemCaseSensitive(al, "charStartTimesMs");
    if (!cJSON_IsArray(chars) || !cJSON_IsArray(starts)) return;
    const char *text = j->base.b.text;
    size_t len = j->base.b.len;
    const cJSON *c = chars->child, *t = starts->child;
    for (; c && t; c = c->next, t = t->next) {
        if (!cJSON_IsString(c) || !cJSON_IsNumber(t)) continue;
        size_t n = strlen(c->valuestring);
        if (n == 0 || j->cursor + n > len || memcmp(text + j->cursor, c->valuestring, n) != 0)
            continue; /* not our next character: skip it */
        size_t off = j->cursor;
        j->cursor += n;
        bool space = cs_sentence_space((unsigned char)text[off]);
        if (!space && !j->in_word) {
            uint32_t ms = base_ms + (t->valuedouble > 0 ? (uint32_t)t->valuedouble : 0);
            tts_audio_word(&j->base.words, text, len, off, len - off, ms);
        }
        j->in_word = !space;
    }
}

static void on_message(cs_wsconn *ws, enum cs_ws_op op, char *data, size_t len)
{
    el_job *j = ws->data;
    if (op != CS_WS_OP_TEXT || !tts_cjob_live(&j->base)) return;
    cJSON *m = cJSON_ParseWithLength(data, len);
    if (!m) {
        tts_cjob_fail(&j->base, CS_EPARSE, "elevenlabs: a message that is not JSON");
        return;
    }
    const cJSON *audio = cJSON_GetObjectItemCaseSensitive(m, "audio");
    const cJSON *error = cJSON_GetObjectItemCaseSensitive(m, "error");
    const cJSON *message = cJSON_GetObjectItemCaseSensitive(m, "message");
    if ((cJSON_IsString(error) || cJSON_IsString(message)) && !cJSON_IsString(audio)) {
        tts_cjob_fail(&j->base, CS_EBACKEND, "elevenlabs: %.60s: %.120s",
                      cJSON_IsString(error) ? error->valuestring : "error",
                      cJSON_IsString(message) ? message->valuestring : "");
        cJSON_Delete(m);
        return;
    }
    if (cJSON_IsString(audio) && audio->valuestring[0]) {
        size_t n = strlen(audio->valuestring);
        uint8_t *ulaw = malloc(CS_BASE64_DECODED_MAX(n) + 3);
        int got = ulaw ? cs_base64_decode(ulaw, audio->valuestring, n) : -ENOMEM;
        if (got < 0) {
            tts_cjob_fail(&j->base, got, "elevenlabs: audio that is not base64");
        } else {
            uint32_t base_ms = (uint32_t)(j->base.bytes * 1000 / CS_TTS_RATE);
            align(j, cJSON_GetObjectItemCaseSensitive(m, "alignment"), base_ms);
            tts_cjob_audio(&j->base, ulaw, (size_t)got);
        }
        free(ulaw);
    }
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m, "isFinal")) && tts_cjob_live(&j->base)) {
        j->final = true;
        cs_wsconn_close(&j->ws, 1000, NULL);
    }
    cJSON_Delete(m);
}

static void on_upgrade(cs_wsconn *ws, const cs_http_resp *resp, const char *body, size_t len)
{
    el_job *j = ws->data;
    if (resp->status == 101) return;
    snprintf(j->refusal, sizeof j->refusal, "HTTP %d: %.*s", resp->status,
             (int)(len < 120 ? len : 120), body ? body : "");
    for (char *p = j->refusal; *p; p++)
        if (*p == '\r' || *p == '\n') *p = ' ';
}

/* One message; false (the job failed) if it cannot go. */
static bool send_json(el_job *j, cs_buf *b)
{
    int rc = cs_wsconn_send(&j->ws, CS_WS_OP_TEXT, b->data, b->len);
    if (rc < 0) tts_cjob_fail(&j->base, rc, "elevenlabs: cannot send: %s", cs_strerror(rc));
    return rc == 0;
}

static void on_open(cs_wsconn *ws)
{
    el_job *j = ws->data;
    if (!tts_cjob_live(&j->base)) return;
    cs_buf b = CS_BUF_INIT(CS_TTS_TEXT_MAX * 6 + 256);
    cs_json js;
    /* The opening message: a single space, and the voice's settings. */
    cs_buf_puts(&b, "{\"text\":\" \",\"voice_settings\":{\"stability\":0.5,"
                    "\"similarity_boost\":0.8,\"use_speaker_boost\":false}}");
    bool ok = send_json(j, &b);
    /* The text, ending in a space as the API wants; generation starts at once. */
    cs_buf_reset(&b);
    cs_json_init(&js, &b);
    cs_json_obj(&js);
    cs_json_key(&js, "text");
    cs_buf tx = CS_BUF_INIT(CS_TTS_TEXT_MAX + 2);
    cs_buf_append(&tx, j->base.b.text, j->base.b.len);
    cs_buf_putc(&tx, ' ');
    cs_json_strn(&js, tx.data, tx.len);
    cs_buf_free(&tx);
    cs_json_kbool(&js, "try_trigger_generation", true);
    cs_json_obj_end(&js);
    if (ok && cs_json_end(&js) == 0) ok = send_json(j, &b);
    /* The end of the input: what is left is generated, then isFinal. */
    cs_buf_reset(&b);
    cs_buf_puts(&b, "{\"text\":\"\"}");
    if (ok) send_json(j, &b);
    cs_buf_free(&b);
}

static void on_close(cs_wsconn *ws, uint16_t code, int err)
{
    el_job *j = ws->data;
    j->socket = false;
    char why[200];
    if (j->final) {
        tts_cjob_end(&j->base, 0, NULL);
        return;
    }
    if (j->refusal[0])
        snprintf(why, sizeof why, "elevenlabs: refused: %s", j->refusal);
    else if (err < 0)
        snprintf(why, sizeof why, "elevenlabs: %s", cs_strerror(err));
    else
        snprintf(why, sizeof why, "elevenlabs: the socket closed before the end (%u%s%.80s)", code,
                 ws->close_reason[0] ? " " : "", ws->close_reason);
    tts_cjob_end(&j->base, err < 0 ? err : CS_ECLOSED, why);
}

static const cs_wsconn_ops ws_ops = {
    .on_open = on_open,
    .on_upgrade = on_upgrade,
    .on_message = on_message,
    .on_close = on_close,
};

/* ---- the engine ---- */

/* Voice ids are letters, digits, '_' and '-' (they go into the URL's path). */
static bool voice_ok(const char *v)
{
    if (!v[0]) return false;
    for (; *v; v++)
        if (!((*v >= 'a' && *v <= 'z') || (*v >= 'A' && *v <= 'Z') || (*v >= '0' && *v <= '9') ||
              *v == '_' || *v == '-'))
            return false;
    return true;
}

static int el_start(tts_cjob *base)
{
    el_job *j = (el_job *)base;
    el_engine *e = (el_engine *)base->e;
    const cs_config *cfg = base->e->cfg;
    if (!voice_ok(base->b.voice)) {
        snprintf(base->why, sizeof base->why, "elevenlabs: \"%.60s\" is not a voice id",
                 base->b.voice);
        return CS_ECONFIG;
    }
    cs_buf url = CS_BUF_INIT(EL_URL_MAX);
    int rc = cs_buf_printf(
        &url, "%s/v1/text-to-speech/%s/stream-input?model_id=", cfg->elevenlabs_url, base->b.voice);
    if (rc == 0) rc = cs_form_encode(&url, cfg->elevenlabs_model, strlen(cfg->elevenlabs_model));
    if (rc == 0) rc = cs_buf_puts(&url, "&output_format=ulaw_8000");
    if (rc == 0)
        rc = cs_wsconn_connect(&j->ws, e->net, url.data, e->auth, EL_MAX_MESSAGE, &ws_ops, j);
    cs_buf_free(&url);
    if (rc < 0 && j->ws.conn) {
        j->socket = true;
        tts_cjob_fail(base, rc, "elevenlabs: cannot connect: %s", cs_strerror(rc));
        return 0; /* on_close ends it */
    }
    if (rc < 0) {
        snprintf(base->why, sizeof base->why, "elevenlabs: cannot connect: %s", cs_strerror(rc));
        return rc;
    }
    j->socket = true;
    return 0;
}

static void el_stop(tts_cjob *base)
{
    el_job *j = (el_job *)base;
    if (j->socket)
        cs_wsconn_abort(&j->ws, -ECANCELED); /* on_close ends it */
    else
        tts_cjob_end(base, -ECANCELED, "elevenlabs: stopped");
}

static void el_release(tts_cloud *base)
{
    el_engine *e = (el_engine *)base;
    cs_net_free(e->net);
    free(e->auth);
}

static const tts_cloud_eng engine = {
    .name = "elevenlabs",
    .job_size = sizeof(el_job),
    .start = el_start,
    .stop = el_stop,
    .release = el_release,
};

static int el_create(cs_tts **out, const cs_tts_env *env, cs_buf *err)
{
    const cs_config *cfg = env->cfg;
    const char *key = cfg->elevenlabs_api_key;
    if (tts_cloud_key(key, "ELEVENLABS_API_KEY", "elevenlabs", err) < 0) return CS_ECONFIG;
    cs_url u;
    if (cs_url_parse(&u, cfg->elevenlabs_url) < 0 ||
        (strcmp(u.scheme, "ws") != 0 && strcmp(u.scheme, "wss") != 0) ||
        strlen(cfg->elevenlabs_url) > EL_URL_MAX / 2) {
        cs_buf_printf(err, "ELEVENLABS_URL must be a ws:// or wss:// URL, not \"%s\"",
                      cfg->elevenlabs_url);
        return CS_ECONFIG;
    }
    const char *voice = cfg->tts_voice[0] ? cfg->tts_voice : cfg->elevenlabs_voice_id;
    if (!voice_ok(voice) || strlen(voice) >= CS_TTS_VOICE_MAX) {
        cs_buf_printf(err, "%s: \"%s\" is not an ElevenLabs voice id",
                      cfg->tts_voice[0] ? "TTS_VOICE" : "ELEVENLABS_VOICE_ID", voice);
        return CS_ECONFIG;
    }
    el_engine *e = calloc(1, sizeof *e);
    if (!e) return -ENOMEM;
    cs_buf auth = CS_BUF_INIT(strlen(key) + 64);
    int rc = cs_buf_printf(&auth, "xi-api-key: %s\r\n", key);
    if (rc == 0) rc = cs_net_new(&e->net, env->loop);
    if (rc == 0 && u.tls && cs_net_tls_client(e->net, NULL, true) < 0) {
        cs_buf_puts(err, "cannot load the system's CA certificates for ELEVENLABS_URL");
        rc = CS_ECONFIG;
    }
    if (rc == 0) rc = tts_cloud_init(&e->base, &engine, env, voice);
    if (rc < 0) {
        if (e->net) cs_net_free(e->net);
        cs_buf_free(&auth);
        free(e);
        return rc;
    }
    e->auth = cs_buf_detach(&auth, NULL);
    cs_info("elevenlabs speech: %s, model %s, voice %s", cfg->elevenlabs_url, cfg->elevenlabs_model,
            voice);
    *out = &e->base.base;
    return 0;
}

const cs_tts_ops cs_tts_elevenlabs = {
    .name = "elevenlabs",
    .cloud = true,
    .create = el_create,
    .destroy = tts_cloud_destroy,
    .speak = tts_cloud_speak,
    .cancel = tts_cloud_cancel,
    .stats = tts_stats,
};
