/* Call summaries: the trigger (transcriptions held per call until the call ends), a
 * bounded queue of calls, the transcript cut to SUMMARY_MAX_CHARS, one JSON-mode chat
 * completion per call (OpenAI's response_format {"type":"json_object"}), its answer
 * checked, and the result written through the store's queue. */
#include "summary/summary.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "agent/chat.h"
#include "core/backoff.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "core/map.h"
#include "core/prom.h"

#define SID_MAX     64
#define REQUEST_MAX (16u << 20) /* the request's body: the transcript is cut well before */
#define MARKER      "\n[... %zu bytes of the transcript left out here ...]\n"

static const char prompt[] =
    "You summarize phone calls for the people who handle them. You are given the transcript "
    "of one call, made by speech recognition: it may hold mistakes. Answer with one JSON "
    "object and nothing else, with these members: \"summary\": two to four sentences on what "
    "the call was about and how it ended; \"key_points\": an array of short strings, the "
    "facts that matter; \"action_items\": an array of short strings, what someone has to do "
    "next (empty if nothing); \"sentiment\": the caller's overall mood, one of \"positive\", "
    "\"neutral\", \"negative\" or \"mixed\".";

static const char *const sentiments[] = {"positive", "neutral", "negative", "mixed"};

/* READING: a store query out; WORKING: its answer being handled; ASKING: a request out. */
enum stage { WAITING, READING, WORKING, ASKING, BACKOFF };

typedef struct job job;
struct job {
    cs_summary *s;
    char sid[SID_MAX + 1];
    enum stage stage;
    unsigned attempt; /* requests made */
    cs_fetch_req *req;
    uv_timer_t timer;
    cs_buf transcript; /* cut, once read */
    char why[CS_SUMMARY_REASON_MAX];
    bool stopped; /* the summarizer is gone: the store's answer is dropped */
    job *next;    /* waiting line */
    job *prev_all, *next_all;
};

/* A call with transcriptions still open; its map key is `sid` (the map borrows keys). */
typedef struct tracked {
    char sid[SID_MAX + 1];
    unsigned holds;
    bool ended;
} tracked;

struct cs_summary {
    cs_summary_opts o;
    char *url, *auth;
    cs_map tracked; /* call sid → tracked */
    job *head, *tail;
    job *all;
    size_t njobs, busy;
    size_t reading; /* store queries not answered yet */
    cs_summary_stats st;
};

/* ---- the transcript ---- */

void cs_summary_transcript(cs_buf *out, const cs_segment_row *segs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const cs_segment_row *g = &segs[i];
        int64_t ms = g->start_ms;
        cs_buf_printf(out, "[%02lld:%02lld.%lld] %s: %s\n", (long long)(ms / 60000),
                      (long long)(ms / 1000 % 60), (long long)(ms / 100 % 10),
                      g->speaker && strcmp(g->speaker, "agent") == 0 ? "Agent" : "Caller",
                      g->text ? g->text : "");
    }
}

static bool continuation(unsigned char c)
{
    return (c & 0xC0) == 0x80;
}

int cs_summary_cut(cs_buf *out, const char *text, size_t len, size_t max)
{
    if (len <= max) return cs_buf_append(out, text, len);
    char marker[96];
    /* Sized for at most `len` left out; what is finally left out is no longer. */
    int m = snprintf(marker, sizeof marker, MARKER, len);
    size_t keep = max > (size_t)m ? max - (size_t)m : 0;
    size_t head = keep / 2, tail_at = len - (keep - head);
    while (head > 0 && continuation((unsigned char)text[head])) head--;
    while (tail_at < len && continuation((unsigned char)text[tail_at])) tail_at++;
    m = snprintf(marker, sizeof marker, MARKER, tail_at - head);
    int rc = cs_buf_append(out, text, head);
    if (rc == 0) rc = cs_buf_append(out, marker, (size_t)m);
    if (rc == 0) rc = cs_buf_append(out, text + tail_at, len - tail_at);
    return rc;
}

/* ---- the answer ---- */

static int bad(char *why, size_t cap, const char *fmt, const char *what)
{
    snprintf(why, cap, fmt, what);
    return CS_EPARSE;
}

/* An array of strings, written again. */
static int strings(cs_json *j, const cJSON *root, const char *key, char *why, size_t cap)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!a) return bad(why, cap, "no %s", key);
    if (!cJSON_IsArray(a)) return bad(why, cap, "%s is not an array", key);
    cs_json_key(j, key);
    cs_json_arr(j);
    const cJSON *e;
    cJSON_ArrayForEach(e, a)
    {
        if (!cJSON_IsString(e)) return bad(why, cap, "%s holds something other than strings", key);
        cs_json_str(j, e->valuestring);
    }
    cs_json_arr_end(j);
    return 0;
}

int cs_summary_parse(const char *content, size_t len, cs_buf *out, char *why, size_t cap)
{
    /* Some models fence their JSON even in JSON mode: ```json … ``` */
    while (len && isspace((unsigned char)*content)) content++, len--;
    while (len && isspace((unsigned char)content[len - 1])) len--;
    if (len >= 6 && !memcmp(content, "```", 3) && !memcmp(content + len - 3, "```", 3)) {
        const char *nl = memchr(content, '\n', len - 3);
        if (nl) {
            len = (size_t)(content + len - 3 - (nl + 1));
            content = nl + 1;
        }
    }
    cJSON *root = cJSON_ParseWithLength(content, len);
    if (!root) return bad(why, cap, "%s", "the answer is not JSON");
    int rc = 0;
    const cJSON *sum = cJSON_GetObjectItemCaseSensitive(root, "summary");
    const cJSON *sen = cJSON_GetObjectItemCaseSensitive(root, "sentiment");
    size_t at = out->len;
    cs_json j;
    cs_json_init(&j, out);
    if (!cJSON_IsObject(root))
        rc = bad(why, cap, "%s", "the answer is not a JSON object");
    else if (!sum)
        rc = bad(why, cap, "no %s", "summary");
    else if (!cJSON_IsString(sum) || !sum->valuestring[0])
        rc = bad(why, cap, "%s is not a string, or empty", "summary");
    else if (!sen)
        rc = bad(why, cap, "no %s", "sentiment");
    if (rc == 0) {
        size_t k = 0;
        while (k < 4 && !(cJSON_IsString(sen) && !strcasecmp(sen->valuestring, sentiments[k]))) k++;
        if (k == 4) {
            rc = bad(why, cap, "%s is not positive, neutral, negative or mixed", "sentiment");
        } else {
            cs_json_obj(&j);
            cs_json_kstr(&j, "summary", sum->valuestring);
            rc = strings(&j, root, "key_points", why, cap);
            if (rc == 0) rc = strings(&j, root, "action_items", why, cap);
            cs_json_kstr(&j, "sentiment", sentiments[k]);
            cs_json_obj_end(&j);
            if (rc == 0 && cs_json_end(&j) < 0) rc = bad(why, cap, "%s", "the answer is too long");
        }
    }
    if (rc < 0) cs_buf_truncate(out, at);
    cJSON_Delete(root);
    return rc;
}

int cs_summary_parse_completion(const char *body, size_t len, cs_buf *out, char *why, size_t cap)
{
    cJSON *root = cJSON_ParseWithLength(body, len);
    const cJSON *choices = cJSON_GetObjectItemCaseSensitive(root, "choices");
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(choices, 0), "message");
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(msg, "content");
    int rc;
    if (!root)
        rc = bad(why, cap, "%s", "the completion is not JSON");
    else if (!cJSON_IsString(content))
        rc = bad(why, cap, "%s", "the completion has no choices[0].message.content");
    else
        rc = cs_summary_parse(content->valuestring, strlen(content->valuestring), out, why, cap);
    cJSON_Delete(root);
    return rc;
}

/* ---- the store ---- */

/* The call's summary state, through the store's queue. */
static void store_state(cs_summary *s, const char *sid, const char *status, const char *reason,
                        const char *json)
{
    cs_store_rec *rec = cs_store_rec_new(CS_REC_CALL);
    if (!rec) return;
    rec->call.sid = cs_pool_strdup(&rec->pool, sid);
    rec->call.summary_status = status;
    rec->call.summary_reason = reason ? cs_pool_strdup(&rec->pool, reason) : NULL;
    rec->call.summary = json ? cs_pool_strdup(&rec->pool, json) : NULL;
    cs_store_write(s->o.store, rec);
}

/* ---- jobs ---- */

static void pump(cs_summary *s);

static void job_closed(uv_handle_t *h)
{
    job *jb = h->data;
    cs_buf_free(&jb->transcript);
    free(jb);
}

/* Unlinks the job; it is freed once its timer closed, or once the store answered. */
static void job_end(job *jb)
{
    cs_summary *s = jb->s;
    if (jb->prev_all)
        jb->prev_all->next_all = jb->next_all;
    else
        s->all = jb->next_all;
    if (jb->next_all) jb->next_all->prev_all = jb->prev_all;
    s->njobs--;
    if (jb->stage == READING || jb->stage == WORKING || jb->stage == ASKING) s->busy--;
    cs_fetch_cancel(jb->req);
    jb->req = NULL;
    if (jb->stage == READING) {
        jb->stopped = true; /* the query's answer frees it */
        return;
    }
    uv_close((uv_handle_t *)&jb->timer, job_closed);
}

static void finish(job *jb, const char *status, const char *reason, const char *json)
{
    cs_summary *s = jb->s;
    store_state(s, jb->sid, status, reason, json);
    if (!strcmp(status, CS_SUMMARY_DONE)) {
        s->st.done++;
        cs_info("summary of %s stored", jb->sid);
        if (s->o.done) s->o.done(s->o.data, jb->sid, json);
    } else if (!strcmp(status, CS_SUMMARY_NO_SPEECH)) {
        s->st.skipped++;
    } else {
        s->st.failed++;
        cs_warn("summary of %s failed: %s", jb->sid, reason);
    }
    job_end(jb);
    pump(s);
}

static void waiting_push(cs_summary *s, job *jb)
{
    jb->stage = WAITING;
    jb->next = NULL;
    if (s->tail)
        s->tail->next = jb;
    else
        s->head = jb;
    s->tail = jb;
}

static void on_retry(uv_timer_t *t)
{
    job *jb = t->data;
    waiting_push(jb->s, jb);
    pump(jb->s);
}

/* One attempt failed with `why`: tried again after a backoff (or after `after_ms` when
 * the server said), or given up once the attempts are spent. */
static void failed(job *jb, bool again, int64_t after_ms, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void failed(job *jb, bool again, int64_t after_ms, const char *fmt, ...)
{
    cs_summary *s = jb->s;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(jb->why, sizeof jb->why, fmt, ap);
    va_end(ap);
    if (!again || jb->attempt >= CS_SUMMARY_ATTEMPTS) {
        char reason[CS_SUMMARY_REASON_MAX + 64];
        if (again)
            snprintf(reason, sizeof reason, "%s (after %u attempts)", jb->why, jb->attempt);
        else
            snprintf(reason, sizeof reason, "%s", jb->why);
        finish(jb, CS_SUMMARY_FAILED, reason, NULL);
        return;
    }
    s->st.retried++;
    uint32_t wait = cs_backoff_ms(jb->attempt ? jb->attempt : 1,
                                  (uint32_t)s->o.cfg->summary_retry_ms, CS_SUMMARY_RETRY_MAX_MS);
    if (after_ms > 0)
        wait = after_ms > CS_SUMMARY_RETRY_MAX_MS ? CS_SUMMARY_RETRY_MAX_MS : (uint32_t)after_ms;
    cs_info("summary of %s: %s; again in %u ms", jb->sid, jb->why, wait);
    s->busy--;
    jb->stage = BACKOFF;
    uv_timer_start(&jb->timer, on_retry, wait, 0);
    pump(s);
}

static void on_answer(void *data, const cs_fetch_result *fr)
{
    job *jb = data;
    jb->req = NULL;
    if (fr->err < 0) {
        failed(jb, true, 0, "%s",
               fr->err == -ETIMEDOUT ? "the model did not answer in time" : fr->reason);
        return;
    }
    if (fr->status < 200 || fr->status >= 300) {
        char msg[CS_SUMMARY_REASON_MAX];
        cs_chat_error_message(fr->body, fr->len, msg, sizeof msg);
        bool again = fr->status == 429 || fr->status >= 500;
        int64_t after = fr->status == 429 && fr->retry_after_s > 0 ? fr->retry_after_s * 1000 : 0;
        failed(jb, again, after, "HTTP %d: %s", fr->status, msg);
        return;
    }
    cs_buf out = CS_BUF_INIT(CS_SUMMARY_ANSWER_MAX);
    char why[CS_SUMMARY_REASON_MAX];
    if (cs_summary_parse_completion(fr->body, fr->len, &out, why, sizeof why) < 0) {
        cs_buf_free(&out);
        failed(jb, true, 0, "invalid answer: %s", why);
        return;
    }
    finish(jb, CS_SUMMARY_DONE, NULL, out.data);
    cs_buf_free(&out);
}

static void ask(job *jb)
{
    cs_summary *s = jb->s;
    const cs_config *cfg = s->o.cfg;
    cs_buf body = CS_BUF_INIT(REQUEST_MAX);
    cs_json j;
    cs_json_init(&j, &body);
    cs_chat_request_begin(&j, cfg->llm_model, prompt);
    cs_json_obj(&j);
    cs_json_kstr(&j, "role", "user");
    cs_json_key(&j, "content");
    cs_json_strn(&j, jb->transcript.data, jb->transcript.len);
    cs_json_obj_end(&j);
    cs_json_arr_end(&j);
    cs_json_key(&j, "response_format");
    cs_json_obj(&j);
    cs_json_kstr(&j, "type", "json_object");
    cs_json_obj_end(&j);
    cs_json_obj_end(&j);
    if (cs_json_end(&j) < 0) {
        cs_buf_free(&body);
        failed(jb, false, 0, "the request could not be written");
        return;
    }
    const char *headers[3] = {"Content-Type: application/json", "Accept: application/json"};
    size_t nh = 2;
    if (s->auth) headers[nh++] = s->auth;
    cs_fetch_opts fo = {
        .method = "POST",
        .url = s->url,
        .headers = headers,
        .nheaders = nh,
        .body = body.data,
        .len = body.len,
        .timeout_ms = (uint32_t)cfg->summary_timeout_ms,
        .max_body = CS_SUMMARY_ANSWER_MAX,
        .on_done = on_answer,
        .data = jb,
    };
    jb->stage = ASKING;
    jb->attempt++;
    s->st.asked++;
    int rc = cs_fetch_start(s->o.fetch, &fo, &jb->req);
    cs_buf_free(&body);
    if (rc < 0) failed(jb, rc != CS_EPARSE, 0, "cannot send: %s", cs_strerror(rc));
}

static void on_transcript(cs_store_query *q, void *data)
{
    job *jb = data;
    cs_summary *s = jb->s;
    s->reading--;
    if (jb->stopped) { /* the summarizer is gone */
        cs_store_query_free(q);
        uv_close((uv_handle_t *)&jb->timer, job_closed);
        if (s->reading == 0) free(s);
        return;
    }
    jb->stage = WORKING;
    if (q->status < 0 && q->status != CS_ENOTFOUND) {
        jb->attempt++;
        failed(jb, true, 0, "the transcript could not be read: %s",
               q->error[0] ? q->error : cs_strerror(q->status));
    } else if (q->behind) {
        jb->attempt++; /* the transcript's last lines are not all written yet */
        failed(jb, true, 0, "the transcript is not all stored yet");
    } else {
        cs_buf text = CS_BUF_INIT(CS_STORE_RESULT_MAX);
        cs_summary_transcript(&text, q->segments, q->nsegments);
        if (text.len == 0) {
            finish(jb, CS_SUMMARY_NO_SPEECH, NULL, NULL);
        } else {
            cs_buf_reset(&jb->transcript);
            if (cs_summary_cut(&jb->transcript, text.data, text.len,
                               (size_t)s->o.cfg->summary_max_chars) < 0)
                failed(jb, false, 0, "out of memory");
            else
                ask(jb);
        }
        cs_buf_free(&text);
    }
    cs_store_query_free(q);
}

/* The transcript is read once (the call has ended and its transcription closed); a retry
 * sends the same again. */
static void start(job *jb)
{
    cs_summary *s = jb->s;
    s->busy++;
    if (jb->transcript.len) {
        ask(jb);
        return;
    }
    cs_store_query *q = cs_store_query_new(CS_Q_TRANSCRIPT, on_transcript, jb);
    if (!q) {
        jb->stage = WORKING;
        failed(jb, true, 0, "out of memory");
        return;
    }
    snprintf(q->sid, sizeof q->sid, "%s", jb->sid);
    jb->stage = READING;
    s->reading++;
    cs_store_query_run(s->o.store, q);
}

static void pump(cs_summary *s)
{
    while (s->head && s->busy < CS_SUMMARY_IN_FLIGHT) {
        job *jb = s->head;
        s->head = jb->next;
        if (!s->head) s->tail = NULL;
        start(jb);
    }
}

/* Queues the call; `fresh`: its state is written "pending" (else it already is). */
static void enqueue(cs_summary *s, const char *sid, bool fresh)
{
    if (s->njobs >= CS_SUMMARY_QUEUE_MAX) {
        s->st.full++;
        s->st.failed++;
        char reason[96];
        snprintf(reason, sizeof reason, "%d calls were waiting for a summary",
                 CS_SUMMARY_QUEUE_MAX);
        cs_warn("summary of %s not made: %s", sid, reason);
        store_state(s, sid, CS_SUMMARY_FAILED, reason, NULL);
        return;
    }
    job *jb = calloc(1, sizeof *jb);
    if (!jb) {
        s->st.failed++;
        store_state(s, sid, CS_SUMMARY_FAILED, "out of memory", NULL);
        return;
    }
    jb->s = s;
    snprintf(jb->sid, sizeof jb->sid, "%s", sid);
    cs_buf_init(&jb->transcript, (size_t)s->o.cfg->summary_max_chars + 128);
    uv_timer_init(s->o.loop, &jb->timer);
    jb->timer.data = jb;
    jb->next_all = s->all;
    if (s->all) s->all->prev_all = jb;
    s->all = jb;
    s->njobs++;
    s->st.requested++;
    if (fresh) store_state(s, sid, CS_SUMMARY_PENDING, NULL, NULL);
    waiting_push(s, jb);
    pump(s);
}

/* ---- the trigger ---- */

void cs_summary_hold(cs_summary *s, const char *call_sid)
{
    if (!s) return;
    tracked *t = cs_map_get(&s->tracked, cs_str_of(call_sid));
    if (!t) {
        if (s->tracked.len >= CS_SUMMARY_TRACKED_MAX) return; /* summarized at its end */
        t = calloc(1, sizeof *t);
        if (t) snprintf(t->sid, sizeof t->sid, "%s", call_sid);
        if (!t || cs_map_put(&s->tracked, cs_str_of(t->sid), t) < 0) {
            free(t);
            return;
        }
    }
    t->holds++;
}

void cs_summary_release(cs_summary *s, const char *call_sid)
{
    if (!s) return;
    tracked *t = cs_map_get(&s->tracked, cs_str_of(call_sid));
    cs_debug("summary: %s: a transcription closed (%u open)", call_sid, t ? t->holds - 1 : 0);
    if (!t || --t->holds > 0) return;
    bool ended = t->ended;
    free(cs_map_del(&s->tracked, cs_str_of(call_sid)));
    if (ended) enqueue(s, call_sid, true);
}

void cs_summary_call_ended(cs_summary *s, const char *call_sid)
{
    if (!s) return;
    tracked *t = cs_map_get(&s->tracked, cs_str_of(call_sid));
    cs_debug("summary: %s ended (%u transcription(s) open)", call_sid, t ? t->holds : 0);
    if (t && t->holds > 0) {
        t->ended = true; /* the last release queues it */
        return;
    }
    free(cs_map_del(&s->tracked, cs_str_of(call_sid)));
    enqueue(s, call_sid, true);
}

bool cs_summary_knows(const cs_summary *s, const char *call_sid)
{
    if (!s) return false;
    if (cs_map_get(&s->tracked, cs_str_of(call_sid))) return true;
    for (const job *j = s->all; j; j = j->next_all)
        if (strcmp(j->sid, call_sid) == 0) return true;
    return false;
}

static void on_pending(cs_store_query *q, void *data)
{
    cs_summary *s = data;
    s->reading--;
    if (!s->url) { /* freed meanwhile */
        if (s->reading == 0) free(s);
    } else if (q->status < 0 && q->status != CS_ENOTFOUND) {
        cs_warn("summary: the calls left pending could not be read: %s", q->error);
    } else {
        if (q->ncalls) cs_info("summary: %zu call(s) left pending are summarized", q->ncalls);
        for (size_t i = 0; i < q->ncalls; i++) enqueue(s, q->calls[i].sid, false);
    }
    cs_store_query_free(q);
}

void cs_summary_resume(cs_summary *s)
{
    if (!s) return;
    cs_store_query *q = cs_store_query_new(CS_Q_SUMMARY_PENDING, on_pending, s);
    if (!q) return;
    q->limit = CS_STORE_PAGE_MAX;
    s->reading++;
    cs_store_query_run_in_order(s->o.store, q);
}

/* ---- the summarizer ---- */

int cs_summary_new(cs_summary **out, const cs_summary_opts *o, cs_buf *err)
{
    *out = NULL;
    const cs_config *cfg = o->cfg;
    if (!cfg->summary || !cfg->llm_url[0]) return 0;
    if (!cfg->llm_model[0]) {
        cs_buf_printf(err, "LLM_MODEL: the model to ask is needed with LLM_URL (SUMMARY=0: none)");
        return CS_ECONFIG;
    }
    cs_summary *s = calloc(1, sizeof *s);
    if (!s) return -ENOMEM;
    s->o = *o;
    int rc = cs_chat_endpoint(cfg, &s->url, &s->auth, err);
    if (rc < 0) {
        free(s->url);
        free(s->auth);
        free(s);
        return rc;
    }
    cs_info("summary: each call summarized by %s at %s", cfg->llm_model, s->url);
    *out = s;
    return 0;
}

void cs_summary_free(cs_summary *s)
{
    if (!s) return;
    if (s->njobs)
        cs_info("summary: %zu call(s) left pending, summarized at the next start", s->njobs);
    while (s->all) job_end(s->all);
    s->head = s->tail = NULL;
    void *v;
    for (size_t pos = 0; cs_map_next(&s->tracked, &pos, NULL, &v);) free(v);
    cs_map_free(&s->tracked);
    free(s->url);
    free(s->auth);
    s->url = NULL; /* marks it freed for the store's late answers */
    if (s->reading == 0) free(s);
}

const cs_summary_stats *cs_summary_stats_get(const cs_summary *s)
{
    return &s->st;
}

size_t cs_summary_pending(const cs_summary *s)
{
    return s ? s->njobs : 0;
}

void cs_summary_metrics(const cs_summary *s, cs_buf *out)
{
    static const char *const outcomes[] = {"requested", "done", "failed", "retried", "skipped"};
    cs_summary_stats z = {0};
    const cs_summary_stats *st = s ? &s->st : &z;
    uint64_t v[] = {st->requested, st->done, st->failed, st->retried, st->skipped};
    cs_prom_family(out, "callstream_summaries_total", "counter",
                   "call summaries: calls queued, summaries stored, given up, requests tried "
                   "again, calls where nothing was said",
                   "outcome", outcomes, v, 5);
    cs_prom_counter(out, "callstream_summary_queue_full_total",
                    "summaries not made: CS_SUMMARY_QUEUE_MAX calls were waiting",
                    (double)st->full);
    cs_prom_counter(out, "callstream_summary_requests_total",
                    "chat completions asked for summaries", (double)st->asked);
    cs_prom_gauge(out, "callstream_summaries_pending",
                  "calls waiting for, or having, a summary made", (double)(s ? s->njobs : 0));
}
