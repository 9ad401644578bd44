/* AGENT=ivr through real calls, with real pocketsphinx and espeak-ng: the example menus
 * (examples/ivr) and a short one (tests/data/ivr/quick.json), their webhooks pointed at a
 * receiver here. A bank menu driven by keys through a signed webhook whose answer is read
 * back and a hang-up; a rover menu driven by speech (corpus recordings, matched by the
 * node's grammar), speech that matches nothing, and a barge-in during a prompt (clear
 * sent, the agent's transcript line marked cut); silence re-prompted then fallen back;
 * webhooks failing (500, a timeout, an answer that is not JSON) with an apology; a message
 * recorded to its own WAV with its transcript; calls ending mid-prompt, mid-webhook and
 * mid-message; a menu picked per call; and bad menus refused at start with the file and
 * the JSON pointer. Times are printed, never asserted. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "integ_util.h"

#define SECRET  "ivr-test-secret"
#define GOFWD   "ulaw8k/pocketsphinx_goforward.wav" /* "go forward ten meters" */
#define CARDS   "ulaw8k/pocketsphinx_cards_001.wav" /* "ten of clubs" */
#define WAIT_MS 30000

static it_server srv;
static char menus[256]; /* the test's IVR_DIR */

/* ---- the menus' backend: webhooks and the transcript webhook ---- */

enum mode { ANSWER_OK, ANSWER_500, ANSWER_SLOW, ANSWER_NOT_JSON };

typedef struct backend {
    pthread_mutex_t lock;
    enum mode mode;
    int webhooks, bad_signature, cut_agent_lines;
    char body[8192]; /* the last webhook's */
    char path[256];
} backend;

static backend be = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void answer(void *data, const char *path, const char *body, bool signed_ok,
                   it_hook_answer *out)
{
    backend *b = data;
    pthread_mutex_lock(&b->lock);
    if (!signed_ok) b->bad_signature++;
    if (strcmp(path, "/transcript") == 0) {
        /* The agent's lines cut short by the caller say so. */
        cJSON *j = cJSON_Parse(body);
        const cJSON *seg = cJSON_GetObjectItem(j, "segment");
        if (strcmp(it_str(seg, "speaker"), "agent") == 0 &&
            cJSON_IsTrue(cJSON_GetObjectItem(seg, "cut")))
            b->cut_agent_lines++;
        cJSON_Delete(j);
    } else {
        b->webhooks++;
        snprintf(b->body, sizeof b->body, "%s", body);
        snprintf(b->path, sizeof b->path, "%s", path);
        switch (b->mode) {
        case ANSWER_OK:
            snprintf(out->body, sizeof out->body,
                     "{\"say\": \"Your balance is one hundred and twenty dollars.\"}");
            break;
        case ANSWER_500:
            out->status = 500;
            break;
        case ANSWER_SLOW:
            out->delay_ms = 3000;
            break;
        case ANSWER_NOT_JSON:
            snprintf(out->body, sizeof out->body, "<html>oops</html>");
            break;
        }
    }
    pthread_mutex_unlock(&b->lock);
}

static void backend_mode(enum mode m)
{
    pthread_mutex_lock(&be.lock);
    be.mode = m;
    be.webhooks = 0;
    be.body[0] = '\0';
    pthread_mutex_unlock(&be.lock);
}

static int backend_count(int *what)
{
    pthread_mutex_lock(&be.lock);
    int n = *what;
    pthread_mutex_unlock(&be.lock);
    return n;
}

/* ---- menus ---- */

/* Copies a menu into IVR_DIR with its webhooks pointed at the backend. */
static void menu_copy(const char *src, const char *name, int port)
{
    FILE *in = fopen(src, "r");
    char text[65536];
    size_t n = in ? fread(text, 1, sizeof text - 1, in) : 0;
    if (in) fclose(in);
    text[n] = '\0';
    IT_CHECK(n > 0, "cannot read %s", src);
    char path[512], url[64];
    snprintf(path, sizeof path, "%s/%s.json", menus, name);
    snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
    FILE *out = fopen(path, "w");
    for (char *p = text, *at; out && *p; p = at + strlen("http://127.0.0.1:8090")) {
        at = strstr(p, "http://127.0.0.1:8090");
        if (!at) {
            fputs(p, out);
            break;
        }
        fprintf(out, "%.*s%s", (int)(at - p), p, url);
    }
    if (out) fclose(out);
}

static const char *source(const char *rel)
{
    static char path[512];
    const char *data = getenv("CS_TEST_DATA");
    snprintf(path, sizeof path, "%s/../../%s", data ? data : "../tests/data", rel);
    return path;
}

/* ---- calls and their events ---- */

static char corpus_clip[2][1024];

static const char *clip(int i, const char *rel)
{
    snprintf(corpus_clip[i], sizeof corpus_clip[i], "%s", it_corpus(rel));
    return corpus_clip[i];
}

/* The call's `agent` events of the IVR in `state` (NULL: any): how many, and the
 * detail of the last in *last (a detached copy, caller frees; may be NULL). */
static int ivr_events(const char *sid, const char *action, cJSON **last)
{
    cJSON *call = it_call(srv.port, sid);
    int n = 0;
    if (last) *last = NULL;
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(call, "events"))
    {
        const cJSON *d = cJSON_GetObjectItem(e, "detail");
        if (strcmp(it_str(e, "type"), "agent") != 0 || strcmp(it_str(d, "agent"), "ivr") != 0 ||
            (action && strcmp(it_str(d, "state"), action) != 0))
            continue;
        n++;
        if (last) {
            cJSON_Delete(*last);
            *last = cJSON_Duplicate(d, true);
        }
    }
    cJSON_Delete(call);
    return n;
}

/* Waits (the store writes events in the background) for `count` events of `action`,
 * the call going on meanwhile (NULL: it is over). */
static bool await_events(it_phone *p, const char *sid, const char *action, int count)
{
    for (long long end = it_now_ms() + WAIT_MS; it_now_ms() < end;) {
        if (ivr_events(sid, action, NULL) >= count) return true;
        if (p && !p->closed)
            it_phone_run(p, 100);
        else
            it_sleep_ms(100);
    }
    return false;
}

/* The path the call took: its nodes, in order, space-separated. */
static void path_of(const char *sid, char *out, size_t cap)
{
    cJSON *call = it_call(srv.port, sid);
    size_t n = 0;
    out[0] = '\0';
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(call, "events"))
    {
        const cJSON *d = cJSON_GetObjectItem(e, "detail");
        if (strcmp(it_str(d, "state"), "node") == 0 && n < cap)
            n += (size_t)snprintf(out + n, cap - n, "%s%s", n ? " " : "", it_str(d, "node"));
    }
    cJSON_Delete(call);
}

/* The call's agent lines in its transcript, joined. */
static void agent_lines(const char *sid, char *out, size_t cap)
{
    it_transcript(srv.port, sid, "agent", out, cap);
}

static void call(it_phone *p, const char *sid, const char *menu)
{
    char params[64], stream[40];
    snprintf(params, sizeof params, "IvrMenu=%s", menu);
    snprintf(stream, sizeof stream, "MZ%s", sid + 2);
    IT_CHECK(it_phone_start(p, srv.port, sid, stream, menu ? params : NULL) == 0,
             "%s: no media stream", sid);
}

static bool heard(const it_phone *p, void *data)
{
    (void)data;
    return p->heard;
}

/* ---- the scenarios ---- */

/* Keys all the way: a choice, an account number and a PIN collected, the bank's webhook
 * POSTed with them (signed), its answer read back, and a hang-up after the goodbye. */
static void bank_by_keys(void)
{
    const char *sid = "CA10000000000000000000000000000001";
    it_phone p;
    backend_mode(ANSWER_OK);
    call(&p, sid, "bank");
    IT_CHECK(it_phone_until(&p, heard, NULL, WAIT_MS), "bank: no greeting");
    it_phone_run(&p, 500);
    it_phone_key(&p, '1'); /* cuts the greeting short */
    it_phone_run(&p, 700);
    for (const char *d = "12345678"; *d; d++) {
        it_phone_key(&p, *d);
        it_phone_run(&p, 150);
    }
    it_phone_run(&p, 500);
    for (const char *d = "4321"; *d; d++) {
        it_phone_key(&p, *d);
        it_phone_run(&p, 150);
    }
    IT_CHECK(await_events(&p, sid, "webhook", 1), "bank: the webhook was not answered");
    IT_CHECK(it_phone_quiet(&p, 300, WAIT_MS), "bank: the balance was not read");
    it_phone_key(&p, '9');
    IT_CHECK(it_phone_wait_end(&p, WAIT_MS), "bank: the IVR did not hang up");
    IT_CHECK(p.clears >= 1, "bank: keys during the greeting sent no clear");
    IT_CHECK(await_events(NULL, sid, "hangup", 1), "bank: no hangup event");

    pthread_mutex_lock(&be.lock);
    IT_CHECK(be.webhooks == 1 && strcmp(be.path, "/bank/balance") == 0,
             "bank: %d webhooks, the last to %s", be.webhooks, be.path);
    cJSON *j = cJSON_Parse(be.body);
    const cJSON *v = cJSON_GetObjectItem(j, "values");
    IT_CHECK(
        strcmp(it_str(j, "event"), "ivr.webhook") == 0 && strcmp(it_str(j, "call_sid"), sid) == 0 &&
            strcmp(it_str(j, "menu"), "bank") == 0 && strcmp(it_str(j, "node"), "balance") == 0,
        "bank: webhook body %s", be.body);
    IT_CHECK(strcmp(it_str(v, "intent"), "balance") == 0 &&
                 strcmp(it_str(v, "account"), "12345678") == 0 &&
                 strcmp(it_str(v, "pin"), "4321") == 0,
             "bank: values %s", be.body);
    cJSON_Delete(j);
    pthread_mutex_unlock(&be.lock);

    char path[512], lines[4096];
    path_of(sid, path, sizeof path);
    IT_CHECK(strcmp(path, "welcome account pin balance anything_else goodbye") == 0,
             "bank: went through %s", path);
    cJSON *d;
    IT_CHECK(ivr_events(sid, "collected", &d) == 2 && it_num(d, "digits") == 4,
             "bank: collected events");
    cJSON_Delete(d);
    IT_CHECK(ivr_events(sid, "hangup", NULL) == 1, "bank: no hangup event");
    IT_CHECK(ivr_events(sid, "webhook", &d) == 1 && it_num(d, "status") == 200 &&
                 strcmp(it_str(d, "goto"), "anything_else") == 0,
             "bank: webhook event");
    printf("bank: webhook answered in %d ms\n", it_num(d, "ms"));
    cJSON_Delete(d);
    /* What the IVR said is the agent's transcript, a line per thing said (the answer
     * apart from the prompt after it); the goodbye played whole before the end. */
    agent_lines(sid, lines, sizeof lines);
    IT_CHECK(strstr(lines, "| Your balance is one hundred and twenty dollars. |") &&
                 strstr(lines, "| Thank you for calling Example Bank. Goodbye."),
             "bank: agent lines: %s", lines);
    it_phone_free(&p);
}

/* Speech: the rover's grammar takes "go forward ten meters" from the recording; "ten of
 * clubs" matches none of its phrases; then a key ends it. */
static void rover_by_speech(void)
{
    const char *sid = "CA10000000000000000000000000000002";
    it_phone p;
    call(&p, sid, NULL); /* IVR_FILE's menu */
    IT_CHECK(it_phone_quiet(&p, 300, WAIT_MS), "rover: no prompt");
    it_phone_say(&p, clip(0, GOFWD));
    IT_CHECK(it_phone_quiet(&p, 300, WAIT_MS), "rover: no answer to a command");
    printf("rover: caller-side voice-to-voice %lld ms\n",
           p.answer_ms && p.speech_end_ms ? p.answer_ms - p.speech_end_ms : -1);
    cJSON *d;
    IT_CHECK(await_events(&p, sid, "choice", 1), "rover: no choice");
    IT_CHECK(ivr_events(sid, "choice", &d) == 1 && strcmp(it_str(d, "by"), "speech") == 0 &&
                 strcmp(it_str(d, "text"), "go forward ten meters") == 0 &&
                 strcmp(it_str(d, "goto"), "forward") == 0,
             "rover: the spoken command was not taken");
    cJSON_Delete(d);
    it_phone_say(&p, clip(1, CARDS));
    IT_CHECK(await_events(&p, sid, "retry", 1), "rover: speech off the menu was taken");
    ivr_events(sid, "retry", &d);
    IT_CHECK(strcmp(it_str(d, "reason"), "no_match") == 0, "rover: retry for %s",
             it_str(d, "reason"));
    printf("rover: \"ten of clubs\" heard as \"%s\"\n", it_str(d, "heard"));
    cJSON_Delete(d);
    IT_CHECK(it_phone_quiet(&p, 200, WAIT_MS), "rover: no re-prompt");
    it_phone_key(&p, '3');
    IT_CHECK(it_phone_wait_end(&p, WAIT_MS), "rover: stop did not hang up");
    IT_CHECK(await_events(NULL, sid, "hangup", 1), "rover: no hangup event");
    char path[512];
    path_of(sid, path, sizeof path);
    IT_CHECK(strcmp(path, "command forward next_command stop") == 0, "rover: went through %s",
             path);
    /* The turn was measured from the end of the caller's speech. */
    cJSON *call_j = it_call(srv.port, sid);
    int turns = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(call_j, "events"))
    {
        if (strcmp(it_str(e, "type"), "turn") != 0) continue;
        const cJSON *t = cJSON_GetObjectItem(e, "detail");
        if (!turns++)
            printf("rover: turn: voice-to-voice %d ms (final %d, first audio %d)\n",
                   it_num(t, "voiceToVoiceMs"), it_num(t, "finalMs"), it_num(t, "firstAudioMs"));
    }
    cJSON_Delete(call_j);
    IT_CHECK(turns >= 1, "rover: no turn event");
    it_phone_free(&p);
}

/* The caller speaks over the prompt: it is cleared at once, the command is taken, and the
 * prompt's transcript line is marked cut. */
static void rover_barge_in(void)
{
    const char *sid = "CA10000000000000000000000000000003";
    it_phone p;
    call(&p, sid, "rover");
    IT_CHECK(it_phone_until(&p, heard, NULL, WAIT_MS), "barge-in: no prompt");
    it_phone_run(&p, 1000);
    it_phone_say(&p, clip(0, GOFWD));
    IT_CHECK(await_events(&p, sid, "choice", 1), "barge-in: the command was not taken");
    IT_CHECK(p.clears >= 1, "barge-in: no clear");
    printf("barge-in: caller-side onset to clear %lld ms\n",
           p.clear_ms && p.onset_ms ? p.clear_ms - p.onset_ms : -1);
    cJSON *call_j = it_call(srv.port, sid);
    IT_CHECK(it_call_events(call_j, "barge_in", NULL) >= 1, "barge-in: no barge_in event");
    cJSON_Delete(call_j);
    for (int i = 0; i < 200 && backend_count(&be.cut_agent_lines) == 0; i++) it_sleep_ms(50);
    IT_CHECK(backend_count(&be.cut_agent_lines) >= 1, "barge-in: no agent line marked cut");
    it_phone_hangup(&p);
    it_phone_free(&p);
}

/* Silence: the prompt again after the no-input text, then the fallback node and its end. */
static void silence_falls_back(void)
{
    const char *sid = "CA10000000000000000000000000000004";
    it_phone p;
    call(&p, sid, "quick");
    IT_CHECK(it_phone_wait_end(&p, 60000), "silence: the call did not end");
    IT_CHECK(await_events(NULL, sid, "hangup", 1), "silence: no hangup event");
    char path[512];
    path_of(sid, path, sizeof path);
    IT_CHECK(strcmp(path, "ask operator bye") == 0, "silence: went through %s", path);
    cJSON *d;
    IT_CHECK(ivr_events(sid, "retry", &d) == 1 && strcmp(it_str(d, "reason"), "no_input") == 0,
             "silence: no retry for no input");
    cJSON_Delete(d);
    IT_CHECK(ivr_events(sid, "fallback", &d) == 1 && strcmp(it_str(d, "goto"), "operator") == 0,
             "silence: no fallback to the operator");
    cJSON_Delete(d);
    char lines[4096];
    agent_lines(sid, lines, sizeof lines);
    IT_CHECK(strstr(lines, "Nothing?") && strstr(lines, "Let me pass you to someone."),
             "silence: agent lines: %s", lines);
    it_phone_free(&p);
}

/* A key that is no choice: the no-match text and the prompt again. */
static void key_matches_nothing(void)
{
    const char *sid = "CA10000000000000000000000000000005";
    it_phone p;
    call(&p, sid, "quick");
    IT_CHECK(it_phone_until(&p, heard, NULL, WAIT_MS), "no match: no prompt");
    it_phone_key(&p, '7');
    IT_CHECK(await_events(&p, sid, "retry", 1), "no match: no retry");
    cJSON *d;
    ivr_events(sid, "retry", &d);
    IT_CHECK(strcmp(it_str(d, "reason"), "no_match") == 0 && strcmp(it_str(d, "heard"), "7") == 0,
             "no match: retry detail");
    cJSON_Delete(d);
    it_phone_hangup(&p);
    it_phone_free(&p);
}

/* The webhook fails in `mode`: an apology, an event saying why, and the fallback node. */
static void webhook_fails(enum mode mode, const char *sid, const char *why)
{
    it_phone p;
    backend_mode(mode);
    call(&p, sid, "quick");
    IT_CHECK(it_phone_until(&p, heard, NULL, WAIT_MS), "%s: no prompt", why);
    it_phone_key(&p, '1');
    IT_CHECK(await_events(&p, sid, "webhook_failed", 1), "%s: no webhook_failed event", why);
    cJSON *d;
    ivr_events(sid, "webhook_failed", &d);
    IT_CHECK(strcmp(it_str(d, "error"), why) == 0 && strcmp(it_str(d, "goto"), "ask") == 0,
             "%s: failed with '%s', going to '%s'", why, it_str(d, "error"), it_str(d, "goto"));
    cJSON_Delete(d);
    IT_CHECK(await_events(&p, sid, "node", 3), "%s: the fallback node was not entered", why);
    IT_CHECK(it_phone_quiet(&p, 200, WAIT_MS), "%s: nothing said", why);
    char lines[4096];
    agent_lines(sid, lines, sizeof lines);
    IT_CHECK(strstr(lines, "Sorry, the office is not answering."), "%s: no apology in %s", why,
             lines);
    it_phone_hangup(&p);
    it_phone_free(&p);
}

/* A message: the caller speaks after the tone and stops; the IVR goes on, and the
 * message is a WAV of its own with its span and its transcript. */
static void message_is_kept(void)
{
    const char *sid = "CA10000000000000000000000000000009";
    it_phone p;
    call(&p, sid, "quick");
    IT_CHECK(it_phone_until(&p, heard, NULL, WAIT_MS), "message: no prompt");
    it_phone_key(&p, '2');
    it_phone_run(&p, 200);
    IT_CHECK(it_phone_quiet(&p, 200, WAIT_MS), "message: no tone");
    it_phone_say(&p, clip(0, GOFWD));
    IT_CHECK(it_phone_wait_end(&p, WAIT_MS), "message: the IVR did not go on to its goodbye");
    IT_CHECK(await_events(NULL, sid, "message", 1), "message: no message event");
    cJSON *d;
    ivr_events(sid, "message", &d);
    char path[700];
    snprintf(path, sizeof path, "%s/%s", srv.data, it_str(d, "file"));
    int start = it_num(d, "startMs"), end = it_num(d, "endMs");
    printf("message: %s, %d..%d ms, \"%s\"\n", it_str(d, "file"), start, end,
           it_str(d, "transcript"));
    IT_CHECK(strstr(it_str(d, "transcript"), "forward"), "message: transcript '%s'",
             it_str(d, "transcript"));
    unsigned ch;
    long hdr, size;
    IT_CHECK(it_wav_info(path, &ch, &hdr, &size) == 0 && ch == 1 && hdr == size &&
                 labs(hdr - (long)(end - start) * 8) < 8, /* the span is in whole ms */
             "message: %s: %u channels, %ld frames (header %ld), span %d ms", path, ch, size, hdr,
             end - start);
    /* The recording holds the clip's speech: 2 s of it at least, and the silence after. */
    IT_CHECK(end - start > 2000 && end - start < 8000, "message: %d ms", end - start);
    cJSON_Delete(d);
    IT_CHECK(ivr_events(sid, "recorded", &d) == 1 && strcmp(it_str(d, "ended"), "silence") == 0,
             "message: not ended by silence");
    cJSON_Delete(d);
    it_phone_free(&p);
}

/* A message ends at max_s, or at the finish key; max_s of silence is no input. */
static void message_endings(void)
{
    const char *quiet_sid = "CA10000000000000000000000000000016";
    it_phone q;
    call(&q, quiet_sid, "quick");
    IT_CHECK(it_phone_until(&q, heard, NULL, WAIT_MS), "silent message: no prompt");
    it_phone_key(&q, '3');
    IT_CHECK(await_events(&q, quiet_sid, "retry", 1), "silent message: no retry");
    cJSON *r;
    ivr_events(quiet_sid, "retry", &r);
    IT_CHECK(strcmp(it_str(r, "node"), "short_message") == 0 &&
                 strcmp(it_str(r, "reason"), "no_input") == 0,
             "silent message: retry at %s for %s", it_str(r, "node"), it_str(r, "reason"));
    cJSON_Delete(r);
    IT_CHECK(ivr_events(quiet_sid, "recorded", NULL) == 0, "silent message: silence was kept");
    it_phone_hangup(&q);
    it_phone_free(&q);

    const char *sids[] = {"CA10000000000000000000000000000014",
                          "CA10000000000000000000000000000015"};
    for (int i = 0; i < 2; i++) {
        it_phone p;
        call(&p, sids[i], "quick");
        IT_CHECK(it_phone_until(&p, heard, NULL, WAIT_MS), "message ending: no prompt");
        it_phone_key(&p, i == 0 ? '3' : '2');
        it_phone_run(&p, 200);
        IT_CHECK(it_phone_quiet(&p, 200, WAIT_MS), "message ending: no prompt to record");
        it_phone_say(&p, clip(0, GOFWD));
        if (i == 1) {
            it_phone_run(&p, 1500); /* mid-speech */
            it_phone_key(&p, '#');
        }
        IT_CHECK(await_events(&p, sids[i], "recorded", 1), "message ending: not recorded");
        cJSON *d;
        ivr_events(sids[i], "recorded", &d);
        IT_CHECK(strcmp(it_str(d, "ended"), i == 0 ? "max_s" : "key") == 0,
                 "message ending: ended by %s", it_str(d, "ended"));
        if (i == 0)
            IT_CHECK(it_num(d, "endMs") - it_num(d, "startMs") == 2000,
                     "message ending: %d ms kept of max_s 2",
                     it_num(d, "endMs") - it_num(d, "startMs"));
        cJSON_Delete(d);
        it_phone_hangup(&p);
        it_phone_free(&p);
    }
}

/* The caller hangs up mid-message: it is kept all the same. */
static void hangup_mid_message(void)
{
    const char *sid = "CA10000000000000000000000000000010";
    it_phone p;
    call(&p, sid, "quick");
    IT_CHECK(it_phone_until(&p, heard, NULL, WAIT_MS), "hang-up message: no prompt");
    it_phone_key(&p, '2');
    it_phone_run(&p, 200);
    IT_CHECK(it_phone_quiet(&p, 200, WAIT_MS), "hang-up message: no tone");
    it_phone_say(&p, clip(0, GOFWD));
    it_phone_run(&p, 2000); /* mid-speech */
    it_phone_hangup(&p);
    IT_CHECK(await_events(NULL, sid, "message", 1), "hang-up message: not kept");
    cJSON *d;
    ivr_events(sid, "message", &d);
    IT_CHECK(it_str(d, "file")[0], "hang-up message: no file");
    cJSON_Delete(d);
    it_phone_free(&p);
}

/* Calls that end mid-prompt and mid-webhook: the agent finishes (the request is
 * cancelled), nothing is left behind (ASan runs this too). */
static void calls_end_midway(void)
{
    it_phone p;
    call(&p, "CA10000000000000000000000000000011", "rover");
    IT_CHECK(it_phone_until(&p, heard, NULL, WAIT_MS), "mid-prompt: no prompt");
    it_phone_hangup(&p);
    it_phone_free(&p);

    backend_mode(ANSWER_SLOW);
    double cancelled =
        it_metric(srv.port, "callstream_http_client_ended_total{outcome=\"cancelled\"}");
    call(&p, "CA10000000000000000000000000000012", "quick");
    IT_CHECK(it_phone_until(&p, heard, NULL, WAIT_MS), "mid-webhook: no prompt");
    it_phone_key(&p, '1');
    for (int i = 0; i < 100 && backend_count(&be.webhooks) == 0; i++) it_phone_run(&p, 50);
    IT_CHECK(backend_count(&be.webhooks) == 1, "mid-webhook: the webhook was not called");
    it_phone_hangup(&p);
    it_phone_free(&p);
    for (int i = 0; i < 100 && it_metric(srv.port, "callstream_agents") != 0; i++) it_sleep_ms(50);
    IT_CHECK(it_metric(srv.port, "callstream_agents") == 0, "agents still open");
    IT_CHECK(it_metric(srv.port, "callstream_http_client_ended_total{outcome=\"cancelled\"}") ==
                 cancelled + 1,
             "mid-webhook: the request was not cancelled");
}

/* A menu a call asks for that is not there: the call goes on without an agent. */
static void unknown_menu(void)
{
    const char *sid = "CA10000000000000000000000000000013";
    it_phone p;
    call(&p, sid, "nope");
    it_phone_run(&p, 1000);
    cJSON *call_j = it_call(srv.port, sid);
    IT_CHECK(it_call_events(call_j, "agent", "failed") == 1, "unknown menu: no failed agent");
    cJSON_Delete(call_j);
    IT_CHECK(p.media_bytes == 0, "unknown menu: the agent spoke");
    it_phone_hangup(&p);
    it_phone_free(&p);
}

static void counters(void)
{
    IT_CHECK(it_metric(srv.port, "callstream_ivr_choices_speech_total") >= 2, "speech choices");
    IT_CHECK(it_metric(srv.port, "callstream_ivr_choices_key_total") >= 5, "key choices");
    IT_CHECK(it_metric(srv.port, "callstream_ivr_webhooks_total") == 1, "webhooks");
    IT_CHECK(it_metric(srv.port, "callstream_ivr_webhook_failures_total") == 3,
             "webhook failures: %.0f",
             it_metric(srv.port, "callstream_ivr_webhook_failures_total"));
    IT_CHECK(it_metric(srv.port, "callstream_ivr_messages_total") == 4, "messages");
    IT_CHECK(it_metric(srv.port, "callstream_ivr_fallbacks_total") >= 1, "fallbacks");
    pthread_mutex_lock(&be.lock);
    IT_CHECK(be.bad_signature == 0, "%d requests badly signed", be.bad_signature);
    pthread_mutex_unlock(&be.lock);
}

/* ---- start-up ---- */

/* The server refuses to start, saying `why`. */
static void refused(const char *const *args, const char *why)
{
    it_server s;
    IT_CHECK(it_server_start(&s, args) < 0, "started with %s", why);
    IT_CHECK(it_log_count(&s, why) == 1, "no '%s' in the log", why);
    it_server_cleanup(&s);
}

static void bad_menu(const char *name, const char *json, const char *why)
{
    char path[512], msg[1024];
    snprintf(path, sizeof path, "%s/bad/%s.json", menus, name);
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(json, f);
        fclose(f);
    }
    const char *args[] = {"--agent", "ivr", "--stt", "pocketsphinx", "--ivr-file", path, NULL};
    snprintf(msg, sizeof msg, "IVR_FILE: %s: %s", path, why);
    refused(args, msg);
}

static void bad_menus_are_refused(void)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/bad", menus);
    mkdir(dir, 0700);
    bad_menu("node", "{\"start\": \"a\", \"nodes\": {\"a\": {\"say\": \"Hi.\", \"next\": \"b\"}}}",
             "/nodes/a/next: no node 'b'");
    bad_menu("word",
             "{\"start\": \"a\", \"nodes\": {\"a\": {\"say\": \"Hi.\", \"choices\": [{\"phrases\": "
             "[\"yes\", \"zorbly quux\"], \"goto\": \"a\"}]}}}",
             "/nodes/a/choices/0/phrases/1: 'zorbly quux': the speech engine does not know "
             "every word of it");
    bad_menu("empty", "{\"start\": \"a\", \"nodes\": {\"a\": {\"say\": \"Hi.\", \"choices\": []}}}",
             "/nodes/a/choices: empty: a menu needs a choice");
    bad_menu("type", "{\"start\": \"a\", \"nodes\": {\"a\": {\"say\": 3, \"hangup\": true}}}",
             "/nodes/a/say: not a string");
    bad_menu("json", "{\"start\": \"a\",\n \"nodes\": {,}}", "not JSON (line 2, column 13)");
    const char *none[] = {"--agent", "ivr", NULL};
    refused(none, "AGENT=ivr needs a menu: IVR_FILE");
    const char *mute[] = {
        "--agent", "ivr", "--tts", "none", "--ivr-file", source("examples/ivr/rover.json"), NULL};
    refused(mute, "IVR_FILE: the IVR speaks, and TTS is none");
}

int main(void)
{
    snprintf(menus, sizeof menus, "/tmp/callstream-ivr-XXXXXX");
    IT_CHECK(mkdtemp(menus) != NULL, "no temp dir");
    int port = 0;
    it_hook *hook = it_hook_start(SECRET, answer, &be, &port);
    IT_CHECK(hook != NULL, "no webhook receiver");
    menu_copy(source("examples/ivr/bank.json"), "bank", port);
    menu_copy(source("examples/ivr/rover.json"), "rover", port);
    menu_copy(source("examples/ivr/pizza.json"), "pizza", port);
    menu_copy(source("tests/data/ivr/quick.json"), "quick", port);
    char transcripts[64];
    snprintf(transcripts, sizeof transcripts, "http://127.0.0.1:%d/transcript", port);
    const char *args[] = {"--agent",
                          "ivr",
                          "--ivr-file",
                          source("examples/ivr/rover.json"),
                          "--ivr-dir",
                          menus,
                          "--agent-webhook-secret",
                          SECRET,
                          "--transcript-webhook-url",
                          transcripts,
                          "--transcript-webhook-secret",
                          SECRET,
                          "--stt",
                          "pocketsphinx",
                          "--stt-max-sessions",
                          "6",
                          NULL};
    if (it_server_up(&srv, args)) {
        bank_by_keys();
        rover_by_speech();
        rover_barge_in();
        silence_falls_back();
        key_matches_nothing();
        webhook_fails(ANSWER_500, "CA10000000000000000000000000000006", "HTTP 500");
        webhook_fails(ANSWER_SLOW, "CA10000000000000000000000000000007", "timeout");
        webhook_fails(ANSWER_NOT_JSON, "CA10000000000000000000000000000008",
                      "the answer is not a JSON object");
        message_is_kept();
        message_endings();
        hangup_mid_message();
        calls_end_midway();
        unknown_menu();
        counters();
        int rc = it_server_stop(&srv, SIGTERM, 20000);
        IT_CHECK(rc == 0, "exit status %d after SIGTERM", rc);
    }
    it_server_cleanup(&srv);
    bad_menus_are_refused();
    it_hook_stop(hook);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", menus);
    if (!it_failures && system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", menus);
    return it_done("ivr");
}
