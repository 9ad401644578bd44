/* The calls list's filters and transcript search through the real binary: two calls with
 * different speech transcribed by pocketsphinx (one a caller on a media stream after the
 * voice webhook, one from the simulator), each found by a word only it said, with the
 * snippet of that line; from/to/status/since/until alone and together, pages of a
 * filtered list, and every bad parameter refused with a 400 that names it, hostile
 * search text included. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "integ_util.h"

#define CALL_A "CA5e000000000000000000000000000001"
#define FROM_A "+15550003001"
#define TO_A   "+15550009000"
#define FROM_B "+15550003002"
#define TO_B   "+15550009001"
#define FORM   "Content-Type: application/x-www-form-urlencoded\r\n"

static it_server srv;
static char sid_b[64];

static bool transcribed(void *data)
{
    (void)data;
    return it_metric(srv.port, "callstream_stt_sessions") == 0;
}

/* The sids of the calls `target` lists, "A B" for CALL_A and sid_b, newest first, or
 * the HTTP status when not 200; *next the next_cursor ("" when null). */
static void listed(const char *target, char *out, size_t cap, char *next, size_t next_cap)
{
    it_resp r;
    out[0] = '\0';
    if (next) next[0] = '\0';
    IT_CHECK(it_http(srv.port, "GET", target, NULL, NULL, &r) == 0, "GET %s", target);
    if (r.status != 200) {
        snprintf(out, cap, "%d", r.status);
        it_resp_free(&r);
        return;
    }
    size_t n = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(r.json, "calls"))
    {
        const char *sid = it_str(c, "sid");
        const char *name = !strcmp(sid, CALL_A) ? "A" : !strcmp(sid, sid_b) ? "B" : sid;
        n += (size_t)snprintf(out + n, cap - n, "%s%s", n ? " " : "", name);
        if (n >= cap) n = cap - 1;
    }
    const cJSON *cursor = cJSON_GetObjectItem(r.json, "next_cursor");
    if (next && cJSON_IsString(cursor)) snprintf(next, next_cap, "%s", cursor->valuestring);
    it_resp_free(&r);
}

static void expect(const char *target, const char *want)
{
    char got[512];
    listed(target, got, sizeof got, NULL, 0);
    IT_CHECK(strcmp(got, want) == 0, "GET %s: '%s', want '%s'", target, got, want);
}

/* A 400 whose message says `why`. */
static void refused(const char *target, const char *why)
{
    it_resp r;
    IT_CHECK(it_http(srv.port, "GET", target, NULL, NULL, &r) == 0, "GET %s", target);
    IT_CHECK(r.status == 400 && r.body && strstr(r.body, why), "GET %s: %d %s, want 400 '%s'",
             target, r.status, r.body ? r.body : "", why);
    it_resp_free(&r);
}

/* The longest word of `text` that `other` does not have (as a word). */
static void own_word(const char *text, const char *other, char *out, size_t cap)
{
    out[0] = '\0';
    char copy[4096], pad[4200];
    snprintf(copy, sizeof copy, "%s", text);
    snprintf(pad, sizeof pad, " %s ", other);
    for (char *save, *w = strtok_r(copy, " |", &save); w; w = strtok_r(NULL, " |", &save)) {
        char needle[128];
        snprintf(needle, sizeof needle, " %s ", w);
        if (!strstr(pad, needle) && strlen(w) > strlen(out) && strlen(w) < cap) strcpy(out, w);
    }
}

static void two_calls(void)
{
    /* A: the voice webhook, then a caller on the media stream saying "go forward ten
     * meters" */
    it_resp r;
    IT_CHECK(it_http(srv.port, "POST", "/twilio/voice", FORM,
                     "CallSid=" CALL_A "&From=%2B15550003001&To=%2B15550009000", &r) == 0 &&
                 r.status == 200,
             "voice webhook: %d", r.status);
    it_resp_free(&r);
    it_phone p;
    IT_CHECK(it_phone_start(&p, srv.port, CALL_A, "MZ5e000000000000000000000000000001", NULL) == 0,
             "no media stream");
    IT_CHECK(it_phone_say(&p, it_corpus("ulaw8k/pocketsphinx_goforward.wav")) == 0, "no clip");
    it_phone_run(&p, 4500);
    it_phone_hangup(&p);
    it_phone_free(&p);
    /* B: the simulator saying "he was not an ill disposed young man" */
    int exit_status;
    cJSON_Delete(it_sim(&srv, &exit_status, "--wav %s --from %s --to %s",
                        it_corpus("ulaw8k/librivox_sense_sensibility_01-0880.wav"), FROM_B, TO_B));
    IT_CHECK(exit_status == 0, "the simulated call failed");
    IT_CHECK(it_call_from(srv.port, FROM_B, sid_b, sizeof sid_b, 10000), "no call B");
    IT_CHECK(it_until(transcribed, NULL, 60000), "transcription still going on");
}

static void search(void)
{
    char a[4096], b[4096], word_a[64], word_b[64], target[512];
    it_transcript(srv.port, CALL_A, "caller", a, sizeof a);
    it_transcript(srv.port, sid_b, "caller", b, sizeof b);
    printf("search: A said '%s', B said '%s'\n", a, b);
    own_word(a, b, word_a, sizeof word_a);
    own_word(b, a, word_b, sizeof word_b);
    IT_CHECK(word_a[0] && word_b[0], "no word only one call said");
    if (!word_a[0] || !word_b[0]) return;

    snprintf(target, sizeof target, "/api/v1/calls?q=%s", word_a);
    expect(target, "A");
    snprintf(target, sizeof target, "/api/v1/calls?q=%s", word_b);
    expect(target, "B");
    snprintf(target, sizeof target, "/api/v1/calls?q=%s+%s", word_a, word_b);
    expect(target, "");

    /* the snippet: the line in parts, the word a hit */
    snprintf(target, sizeof target, "/api/v1/calls?q=%s", word_a);
    cJSON *j = it_get_json(srv.port, target);
    const cJSON *match =
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "calls"), 0), "match");
    IT_CHECK(!strcmp(it_str(match, "speaker"), "caller"), "match speaker '%s'",
             it_str(match, "speaker"));
    char line[1024] = "";
    const cJSON *part;
    cJSON_ArrayForEach(part, cJSON_GetObjectItem(match, "snippet"))
    {
        bool hit = cJSON_IsTrue(cJSON_GetObjectItem(part, "hit"));
        snprintf(line + strlen(line), sizeof line - strlen(line), hit ? "[%s]" : "%s",
                 it_str(part, "text"));
    }
    cJSON_Delete(j);
    char want[128];
    snprintf(want, sizeof want, "[%s]", word_a);
    IT_CHECK(strstr(line, want) != NULL, "snippet '%s' has no %s", line, want);
    /* without q, no match member */
    j = it_get_json(srv.port, "/api/v1/calls?from=%2B15550003001");
    IT_CHECK(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "calls"), 0), "match") ==
                 NULL,
             "a match without q");
    cJSON_Delete(j);
}

static void filters(void)
{
    expect("/api/v1/calls", "B A");
    expect("/api/v1/calls?from=%2B15550003001", "A");
    expect("/api/v1/calls?from=+15550003001", "A"); /* an unencoded + */
    expect("/api/v1/calls?from=%2B1555000300", "");
    expect("/api/v1/calls?from=%2B1555000300*", "B A");
    expect("/api/v1/calls?to=%2B15550009001", "B");
    expect("/api/v1/calls?to=%2B15550009001&from=%2B15550003001", "");
    expect("/api/v1/calls?status=completed", "B A");
    expect("/api/v1/calls?status=ringing,busy", "");
    expect("/api/v1/calls?status=busy,completed,busy", "B A");
    expect("/api/v1/calls?status=&from=&to=&since=&until=&q=", "B A"); /* empty fields */
    expect("/api/v1/calls?since=2020-01-01T00:00:00Z", "B A");
    expect("/api/v1/calls?until=2020-01-01", "");
    char target[256], iso[25];
    cs_iso8601(iso, it_wall_ms() + 3600000);
    snprintf(target, sizeof target, "/api/v1/calls?since=%s", iso);
    expect(target, "");
    snprintf(target, sizeof target, "/api/v1/calls?until=%lld&status=completed",
             it_wall_ms() + 1000);
    expect(target, "B A");

    /* pages of a filtered list */
    char got[256], next[128];
    listed("/api/v1/calls?limit=1&from=%2B1555000300*&status=completed", got, sizeof got, next,
           sizeof next);
    IT_CHECK(!strcmp(got, "B") && next[0], "page 1: '%s' next '%s'", got, next);
    snprintf(target, sizeof target,
             "/api/v1/calls?limit=1&from=%%2B1555000300*&status=completed&cursor=%s", next);
    listed(target, got, sizeof got, next, sizeof next);
    IT_CHECK(!strcmp(got, "A") && !next[0], "page 2: '%s' next '%s'", got, next);
}

static void bad_parameters(void)
{
    refused("/api/v1/calls?status=bogus", "status 'bogus' is not one of");
    refused("/api/v1/calls?status=completed,Completed", "status 'Completed'");
    refused("/api/v1/calls?from=*", "from is a number");
    refused("/api/v1/calls?to=%2B1*5*", "to is a number");
    refused("/api/v1/calls?from=12345678901234567890123456789012345678901234567890123456789012345",
            "from is a number");
    refused("/api/v1/calls?since=yesterday", "since is an ISO 8601 time");
    refused("/api/v1/calls?until=2026-02-30", "until is an ISO 8601 time");
    refused("/api/v1/calls?since=1969-12-31T23:00:00Z", "since is an ISO 8601 time");
    refused("/api/v1/calls?since=99999999999999999999", "since is an ISO 8601 time");
    refused("/api/v1/calls?since=2026-01-02&until=2026-01-01", "since must be before until");
    /* hostile search text: words or a 400, never FTS5 syntax */
    refused("/api/v1/calls?q=%22", "q has no words");
    refused("/api/v1/calls?q=*", "q has no words");
    refused("/api/v1/calls?q=-", "q has no words");
    refused("/api/v1/calls?q=%28%29%3A%5E%2B", "q has no words");
    expect("/api/v1/calls?q=NEAR(", "");
    expect("/api/v1/calls?q=NEAR(go+forward%2C+2)", "");
    expect("/api/v1/calls?q=%22go%22+OR+young", "");
    expect("/api/v1/calls?q=text%3Ago", "");
    expect("/api/v1/calls?q=call_sid%3A*", "");
    char target[1200] = "/api/v1/calls?q=";
    for (int i = 0; i < 300; i++) strcat(target, "a");
    refused(target, "q is longer than 256 bytes");
    snprintf(target, sizeof target, "/api/v1/calls?q=");
    for (int i = 0; i < 17; i++) strcat(target, "go+");
    refused(target, "or 16 words");
    /* longer than any request target: the server's own bound */
    char *huge = malloc(8200);
    snprintf(huge, 8200, "/api/v1/calls?q=");
    for (int i = 0; i < 8000; i++) strcat(huge, "x");
    it_resp r;
    IT_CHECK(it_http(srv.port, "GET", huge, NULL, NULL, &r) == 0 && r.status == 414, "huge q: %d",
             r.status);
    it_resp_free(&r);
    free(huge);
    IT_CHECK(it_metric(srv.port, "callstream_store_reads_failed_total{cause=\"failed\"}") == 0,
             "a query failed in the store");
}

int main(void)
{
    const char *args[] = {"--stt", "pocketsphinx", "--stt-max-sessions", "2", NULL};
    if (it_server_up(&srv, args)) {
        two_calls();
        search();
        filters();
        bad_parameters();
        int rc = it_server_stop(&srv, SIGTERM, 20000);
        IT_CHECK(rc == 0, "exit status %d after SIGTERM", rc);
    }
    it_server_cleanup(&srv);
    return it_done("search");
}
