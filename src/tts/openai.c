/* OpenAI's speech as a TTS engine: each job is one POST {OPENAI_TTS_URL}/audio/speech
 * with {"model", "input", "voice", "response_format": "pcm"} and the key as a Bearer
 * token, on the loop's HTTP client. The answer streams raw 24 kHz 16-bit little-endian
 * mono samples, converted to 8 kHz μ-law as they arrive (lined up, so n samples in make
 * round(n / 3) out). Another status is a failure whose reason is OpenAI's error JSON
 * ({"error": {"message", "type", "code"}}). No word timings: the heard text of a cut
 * sentence is estimated in proportion. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audio/g711.h"
#include "audio/resample.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "tts/cloud.h"

#define OA_RATE      24000 /* what response_format "pcm" is */
#define OA_INPUT_MAX 4096  /* characters of input the API takes */
#define OA_ERROR_MAX 4096  /* bytes of an error answer kept */
#define OA_CHUNK     1024  /* 8 kHz samples converted at a time */

typedef struct oa_engine {
    tts_cloud base;
    char *url;  /* {OPENAI_TTS_URL}/audio/speech */
    char *auth; /* "Authorization: Bearer …" */
    cs_fetch *fetch;
} oa_engine;

typedef struct oa_job {
    tts_cjob base;
    cs_fetch_req *req;
    cs_resampler *rs;
    uint64_t in;  /* 24 kHz samples received */
    uint64_t out; /* 8 kHz samples delivered */
    uint8_t odd;  /* the first byte of a sample split between two pieces */
    bool has_odd;
    cs_buf errbody; /* the body of an answer that is not 2xx */
} oa_job;

/* Characters of UTF-8 text (valid: speak checked it). */
static size_t chars_of(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++) c += ((unsigned char)s[i] & 0xC0) != 0x80;
    return c;
}

static bool ok_status(int status)
{
    return status >= 200 && status < 300;
}

static void oa_free_job(oa_job *j)
{
    cs_resampler_free(j->rs);
    j->rs = NULL;
    cs_buf_free(&j->errbody);
}

/* Converts `n` 24 kHz samples (NULL: the filter's tail) and hands on what comes out, never
 * past round(in / 3) in all. */
static int convert(oa_job *j, const int16_t *pcm, size_t n)
{
    int16_t out[OA_CHUNK];
    uint8_t ulaw[OA_CHUNK];
    size_t want = cs_resample_len(j->in, OA_RATE, CS_TTS_RATE);
    size_t used = 0;
    while (j->out < want && tts_cjob_live(&j->base)) {
        size_t ilen = pcm ? n - used : cs_resampler_latency(j->rs);
        size_t olen = want - j->out < OA_CHUNK ? want - j->out : OA_CHUNK;
        if (pcm && ilen == 0) break;
        int rc = cs_resampler_process(j->rs, pcm ? pcm + used : NULL, &ilen, out, &olen);
        if (rc < 0) return rc;
        if (pcm) used += ilen;
        if (olen == 0 && !pcm) break; /* nothing more will come */
        cs_ulaw_encode(ulaw, out, olen);
        j->out += olen;
        tts_cjob_audio(&j->base, ulaw, olen);
    }
    return 0;
}

static int on_data(void *data, int status, const char *p, size_t n)
{
    oa_job *j = data;
    if (!ok_status(status)) {
        size_t room = OA_ERROR_MAX - j->errbody.len;
        cs_buf_append(&j->errbody, p, n < room ? n : room);
        return 0;
    }
    int16_t pcm[2048];
    while (n > 0) {
        size_t k = 0;
        if (j->has_odd) {
            pcm[k++] = (int16_t)(j->odd | ((uint16_t)(uint8_t)p[0] << 8));
            p++, n--;
            j->has_odd = false;
        }
        while (k < sizeof pcm / sizeof *pcm && n >= 2) {
            pcm[k++] = (int16_t)((uint8_t)p[0] | ((uint16_t)(uint8_t)p[1] << 8));
            p += 2, n -= 2;
        }
        if (n == 1 && k < sizeof pcm / sizeof *pcm) {
            j->odd = (uint8_t)p[0];
            j->has_odd = true;
            n = 0;
        }
        j->in += k;
        int rc = convert(j, pcm, k);
        if (rc < 0) return rc;
    }
    return 0;
}

/* "HTTP 401: Incorrect API key provided. (invalid_api_key)" from OpenAI's error JSON. */
static void error_reason(const oa_job *j, int status, char *out, size_t cap)
{
    cJSON *root = cJSON_ParseWithLength(j->errbody.data ? j->errbody.data : "", j->errbody.len);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "error");
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(e, "message");
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(e, "code");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(e, "type");
    if (!cJSON_IsString(code)) code = type;
    if (cJSON_IsString(msg))
        snprintf(out, cap, "openai: HTTP %d: %.120s%s%.40s%s", status, msg->valuestring,
                 cJSON_IsString(code) ? " (" : "", cJSON_IsString(code) ? code->valuestring : "",
                 cJSON_IsString(code) ? ")" : "");
    else
        snprintf(out, cap, "openai: HTTP %d (no error JSON)", status);
    cJSON_Delete(root);
}

static void on_done(void *data, const cs_fetch_result *res)
{
    oa_job *j = data;
    j->req = NULL;
    char why[200];
    int err = 0;
    if (res->err < 0) {
        err = res->err;
        snprintf(why, sizeof why, "openai: %s", res->reason[0] ? res->reason : cs_strerror(err));
    } else if (!ok_status(res->status)) {
        err = CS_EBACKEND;
        error_reason(j, res->status, why, sizeof why);
    } else if ((err = convert(j, NULL, 0)) < 0) {
        snprintf(why, sizeof why, "openai: cannot convert 24 kHz audio to 8 kHz");
    } else if (j->in == 0) {
        err = CS_EBACKEND;
        snprintf(why, sizeof why, "openai: HTTP %d with no audio", res->status);
    }
    oa_free_job(j);
    tts_cjob_end(&j->base, err, why);
}

static int oa_start(tts_cjob *base)
{
    oa_job *j = (oa_job *)base;
    oa_engine *e = (oa_engine *)base->e;
    if (chars_of(base->b.text, base->b.len) > OA_INPUT_MAX) {
        snprintf(base->why, sizeof base->why, "openai: input over %d characters", OA_INPUT_MAX);
        return -EMSGSIZE;
    }
    cs_buf_init(&j->errbody, OA_ERROR_MAX);
    int rc = cs_resampler_new(&j->rs, OA_RATE, CS_TTS_RATE, CS_RESAMPLE_QUALITY);
    if (rc < 0) return rc;
    cs_resampler_skip_zeros(j->rs);
    cs_buf body = CS_BUF_INIT(CS_TTS_TEXT_MAX * 6 + 1024);
    cs_json js;
    cs_json_init(&js, &body);
    cs_json_obj(&js);
    cs_json_kstr(&js, "model", base->e->cfg->openai_tts_model);
    cs_json_key(&js, "input");
    cs_json_strn(&js, base->b.text, base->b.len);
    cs_json_kstr(&js, "voice", base->b.voice);
    cs_json_kstr(&js, "response_format", "pcm");
    cs_json_obj_end(&js);
    rc = cs_json_end(&js);
    const char *headers[] = {e->auth, "Content-Type: application/json"};
    cs_fetch_opts o = {.method = "POST",
                       .url = e->url,
                       .headers = headers,
                       .nheaders = 2,
                       .body = body.data,
                       .len = body.len,
                       .on_data = on_data,
                       .on_done = on_done,
                       .data = j};
    if (rc == 0) rc = cs_fetch_start(e->fetch, &o, &j->req);
    cs_buf_free(&body);
    if (rc < 0) {
        snprintf(base->why, sizeof base->why, "openai: cannot start the request: %s",
                 cs_strerror(rc));
        oa_free_job(j);
    }
    return rc;
}

static void oa_stop(tts_cjob *base)
{
    oa_job *j = (oa_job *)base;
    cs_fetch_cancel(j->req);
    j->req = NULL;
    oa_free_job(j);
    tts_cjob_end(base, -ECANCELED, "openai: stopped");
}

static void oa_release(tts_cloud *base)
{
    oa_engine *e = (oa_engine *)base;
    free(e->url);
    free(e->auth);
}

static const tts_cloud_eng engine = {
    .name = "openai",
    .job_size = sizeof(oa_job),
    .start = oa_start,
    .stop = oa_stop,
    .release = oa_release,
};

static int oa_create(cs_tts **out, const cs_tts_env *env, cs_buf *err)
{
    const cs_config *cfg = env->cfg;
    const char *key = cfg->openai_api_key;
    if (tts_cloud_key(key, "OPENAI_API_KEY", "openai", err) < 0) return CS_ECONFIG;
    if (!env->fetch) {
        cs_buf_puts(err, "TTS=openai needs the outbound HTTP client");
        return CS_ECONFIG;
    }
    cs_buf url = CS_BUF_INIT(4096);
    cs_buf_printf(&url, "%s/audio/speech", cfg->openai_tts_url);
    if (!cs_fetch_url_ok(url.data)) {
        cs_buf_printf(err, "OPENAI_TTS_URL must be an http:// or https:// URL, not \"%s\"",
                      cfg->openai_tts_url);
        cs_buf_free(&url);
        return CS_ECONFIG;
    }
    const char *voice = cfg->tts_voice[0] ? cfg->tts_voice : cfg->openai_tts_voice;
    oa_engine *e = calloc(1, sizeof *e);
    cs_buf auth = CS_BUF_INIT(strlen(key) + 64);
    int rc = e ? cs_buf_printf(&auth, "Authorization: Bearer %s", key) : -ENOMEM;
    if (rc == 0) rc = tts_cloud_init(&e->base, &engine, env, voice);
    if (rc < 0) {
        cs_buf_free(&url);
        cs_buf_free(&auth);
        free(e);
        return rc;
    }
    e->url = cs_buf_detach(&url, NULL);
    e->auth = cs_buf_detach(&auth, NULL);
    e->fetch = env->fetch;
    cs_info("openai speech: %s, model %s, voice %s", e->url, cfg->openai_tts_model, voice);
    *out = &e->base.base;
    return 0;
}

const cs_tts_ops cs_tts_openai = {
    .name = "openai",
    .cloud = true,
    .create = oa_create,
    .destroy = tts_cloud_destroy,
    .speak = tts_cloud_speak,
    .cancel = tts_cloud_cancel,
    .stats = tts_stats,
};
