/* callstream replay: a stored call played back into a gateway, so what an agent did on a
 * real call can be reproduced. The call comes as an export (GET
 * /api/v1/calls/{sid}/export?audio=1, fetched with an API token or read from a file);
 * the simulator places a new call to the target (webhook, TwiML, signed media socket) and
 * sends the original caller's audio and keys at their times instead of a WAV's. With
 * --compare the new call's transcript is fetched from the target and scored against the
 * original's (word error rate). */
#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "core/wer.h"
#include "provider/twilio.h"
#include "sim/sim.h"
#include "sim/sim_int.h"

#define HTTP_TIMEOUT_MS   60000
#define API_JSON_MAX      (32u << 20) /* a transcript or call fetched for --compare */
#define COMPARE_POLL_MS   500
#define COMPARE_SETTLE_MS 3000 /* the transcript unchanged this long after the call ended */
#define COMPARE_WAIT_S    120  /* default --compare-timeout */
#define DEFAULT_MAX_WER   0.2
#define TOKEN_ENV         "CALLSTREAM_TOKEN"
#define API_URL_MAX       (SIM_URL_MAX + 128) /* a base URL and an API path */

typedef struct replay_opts {
    const char *sid, *url, *file, *to;
    const char *token, *to_token; /* API tokens: the source's, the target's */
    uint64_t from_ms, to_ms;
    bool compare;
    double max_wer, compare_wait_s;
} replay_opts;

/* ---- one HTTP GET, on a loop of its own ---- */

typedef struct get_req {
    cs_buf *body;
    int status, err;
    char reason[256];
    bool done;
} get_req;

static void on_get(void *data, const cs_fetch_result *res)
{
    get_req *g = data;
    g->done = true;
    g->status = res->status;
    g->err = res->err;
    snprintf(g->reason, sizeof g->reason, "%s", res->reason ? res->reason : "");
    if (!res->err && res->body && cs_buf_append(g->body, res->body, res->len) < 0) g->err = -ENOMEM;
}

/* GET `url` with a bearer token; the body in `body`. The HTTP status, or a negative code
 * with why in `why`. */
static int http_get(const sim_opts *so, const char *url, const char *token, size_t max,
                    cs_buf *body, char *why, size_t cap)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    cs_fetch *f = NULL;
    get_req g = {.body = body};
    char auth[512];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", token ? token : "");
    const char *headers[] = {auth};
    cs_fetch_opts o = {
        .url = url,
        .headers = headers,
        .nheaders = token ? 1 : 0,
        .timeout_ms = HTTP_TIMEOUT_MS,
        .max_body = max,
        .on_done = on_get,
        .data = &g,
    };
    int rc = cs_fetch_open(&f, &loop);
    if (rc == 0 && (so->ca_file || so->insecure)) rc = cs_fetch_tls(f, so->ca_file, !so->insecure);
    if (rc == 0) rc = cs_fetch_start(f, &o, NULL);
    if (rc == 0) uv_run(&loop, UV_RUN_DEFAULT);
    cs_fetch_close(f);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    if (rc < 0) {
        snprintf(why, cap, "%s", cs_strerror(rc));
        return rc;
    }
    if (g.err < 0) {
        snprintf(why, cap, "%s", g.reason[0] ? g.reason : cs_strerror(g.err));
        return g.err;
    }
    return g.status;
}

/* An API answer that is not 200: its error message, for a line on stderr. */
static void api_refusal(const cs_buf *body, char *out, size_t cap)
{
    cJSON *j = body->data ? cJSON_ParseWithLength(body->data, body->len) : NULL;
    const cJSON *m = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "error"), "message");
    snprintf(out, cap, "%s", cJSON_IsString(m) ? m->valuestring : "");
    cJSON_Delete(j);
}

/* ---- the export ---- */

static int read_file(const char *path, cs_buf *out)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "replay: cannot open %s: %s\n", path, strerror(errno));
        return -errno;
    }
    struct stat st;
    int rc = fstat(fileno(f), &st) < 0 ? -errno : 0;
    if (rc == 0 && (uint64_t)st.st_size > SIM_EXPORT_MAX_BYTES) rc = CS_ELIMIT;
    char chunk[65536];
    size_t n;
    while (rc == 0 && (n = fread(chunk, 1, sizeof chunk, f)) > 0) rc = cs_buf_append(out, chunk, n);
    if (rc == 0 && ferror(f)) rc = -EIO;
    fclose(f);
    if (rc < 0)
        fprintf(stderr, "replay: cannot read %s: %s\n", path,
                rc == CS_ELIMIT || rc == CS_EFULL ? "larger than an export may be"
                                                  : cs_strerror(rc));
    return rc;
}

static int fetch_export(const replay_opts *o, const sim_opts *so, cs_buf *out)
{
    char url[API_URL_MAX], why[256];
    snprintf(url, sizeof url, "%s/api/v1/calls/%s/export?audio=1", o->url, o->sid);
    int status = http_get(so, url, o->token, SIM_EXPORT_MAX_BYTES, out, why, sizeof why);
    if (status < 0) {
        fprintf(stderr, "replay: cannot fetch %s: %s\n", url, why);
        return status;
    }
    if (status != 200) {
        char msg[256];
        api_refusal(out, msg, sizeof msg);
        fprintf(stderr, "replay: %s answered %d%s%s\n", url, status, msg[0] ? ": " : "", msg);
        return CS_EPARSE;
    }
    return 0;
}

/* ---- --compare ---- */

/* The new call's caller words once its transcript is final: the call ended and nothing
 * changed for COMPARE_SETTLE_MS. 0, or a negative code after a line on stderr. */
static int replayed_words(const replay_opts *o, const sim_opts *so, const char *sid, cs_buf *words)
{
    char url[API_URL_MAX], why[256];
    uint64_t deadline = uv_hrtime() + (uint64_t)(o->compare_wait_s * 1e9), stable_since = 0;
    bool ended = false;
    for (;;) {
        cs_buf body = CS_BUF_INIT(API_JSON_MAX);
        if (!ended)
            snprintf(url, sizeof url, "%s/api/v1/calls/%s", o->to, sid);
        else
            snprintf(url, sizeof url, "%s/api/v1/calls/%s/transcript", o->to, sid);
        int status = http_get(so, url, o->to_token, API_JSON_MAX, &body, why, sizeof why);
        cJSON *j = status == 200 ? cJSON_ParseWithLength(body.data, body.len) : NULL;
        if (status < 0 || (status != 200 && status != 404)) {
            char msg[256] = "";
            if (status > 0) api_refusal(&body, msg, sizeof msg);
            fprintf(stderr, "replay: --compare: %s: %s\n", url, status < 0 ? why : msg);
            cs_buf_free(&body);
            return status < 0 ? status : CS_EPARSE;
        }
        if (!ended) {
            const cJSON *end = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "call"), "ended_at");
            ended = cJSON_IsString(end);
        } else if (j) {
            cs_buf now = CS_BUF_INIT(API_JSON_MAX);
            const cJSON *g;
            cJSON_ArrayForEach(g, cJSON_GetObjectItem(j, "segments"))
            {
                const cJSON *who = cJSON_GetObjectItem(g, "speaker");
                const cJSON *text = cJSON_GetObjectItem(g, "text");
                if (cJSON_IsString(who) && strcmp(who->valuestring, "caller") == 0 &&
                    cJSON_IsString(text))
                    cs_buf_printf(&now, "%s%s", now.len ? " " : "", text->valuestring);
            }
            bool same =
                now.len == words->len && (!now.len || memcmp(now.data, words->data, now.len) == 0);
            if (!same || !stable_since) {
                cs_buf_reset(words);
                if (now.len) cs_buf_append(words, now.data, now.len);
                stable_since = uv_hrtime();
            }
            cs_buf_free(&now);
        }
        cJSON_Delete(j);
        cs_buf_free(&body);
        if (stable_since && uv_hrtime() - stable_since >= COMPARE_SETTLE_MS * 1000000ull) return 0;
        if (uv_hrtime() > deadline) {
            fprintf(stderr, "replay: --compare: the call %s %s within %.0f s\n", sid,
                    ended ? "kept transcribing" : "did not end", o->compare_wait_s);
            return -ETIMEDOUT;
        }
        usleep(COMPARE_POLL_MS * 1000);
    }
}

/* Scores the words; whether the WER is within --max-wer. */
static bool compare_json(cs_json *j, const replay_opts *o, const char *ref, const char *hyp,
                         bool *ok)
{
    cs_wer_count c = {0};
    int rc = cs_wer_add(&c, ref, hyp);
    cs_json_key(j, "compare");
    cs_json_obj(j);
    cs_json_kstr(j, "original", ref);
    cs_json_kstr(j, "replayed", hyp);
    if (rc < 0) {
        cs_json_kstr(j, "error", "a transcript is longer than can be scored");
        cs_json_obj_end(j);
        *ok = false;
        return false;
    }
    /* No words to match: the replay matches only if it heard none either. */
    double wer = c.words ? cs_wer_rate(&c) : (hyp[0] ? 1.0 : 0.0);
    cs_json_kuint(j, "words", c.words);
    cs_json_kuint(j, "errors", c.errors);
    cs_json_kdouble(j, "wer", wer);
    cs_json_kdouble(j, "max_wer", o->max_wer);
    *ok = wer <= o->max_wer;
    cs_json_kbool(j, "match", *ok);
    cs_json_obj_end(j);
    return true;
}

/* ---- the command ---- */

static void usage(FILE *f)
{
    fputs("usage: callstream replay CALLSID --url URL [options]\n"
          "       callstream replay --file EXPORT.json --to URL [options]\n"
          "\n"
          "Streams a stored call's caller audio and DTMF back into a gateway at their\n"
          "original times, as a new call placed the way Twilio places one (signed webhook,\n"
          "TwiML, media socket). Prints a JSON report; exits 0 when the call completed\n"
          "(and, with --compare, its transcript matched).\n"
          "\n"
          "  --url URL            the gateway that holds the call: its export is fetched\n"
          "                       from URL/api/v1/calls/CALLSID/export?audio=1\n"
          "  --token TOKEN        its API token (default: $" TOKEN_ENV ")\n"
          "  --file FILE          an export saved before (with audio=1), instead of --url\n"
          "  --to URL             the gateway to replay into (default: --url)\n"
          "  --to-token TOKEN     its API token, for --compare (default: --token)\n"
          "  --auth-token TOKEN   sign the webhook and upgrade with the target's\n"
          "                       TWILIO_AUTH_TOKEN\n"
          "  --from-ms N          start N ms into the original call (default 0)\n"
          "  --to-ms N            stop N ms into it (default: its end)\n"
          "  --compare            fetch the new call's transcript from the target and score\n"
          "                       it against the original's (word error rate)\n"
          "  --max-wer X          --compare: fail above this (default 0.2)\n"
          "  --compare-timeout S  --compare: wait this long for the transcript (default 120)\n"
          "  --from, --to-number  caller and called numbers (default: the original's)\n"
          "  --ca FILE / --insecure  TLS for https/wss\n"
          "  --setup-timeout S    webhook and upgrade must finish within S (default 10)\n",
          f);
}

static bool parse_num(const char *arg, double *out)
{
    char *end = NULL;
    *out = strtod(arg, &end);
    if (end == arg || *end) {
        fprintf(stderr, "replay: '%s' is not a number\n", arg);
        return false;
    }
    return true;
}

/* Options into `o` and `so`. 0, or the exit code of a usage error. */
static int parse_args(int argc, char **argv, replay_opts *o, sim_opts *so)
{
    static const struct option longopts[] = {
        {"url", required_argument, 0, 'u'},
        {"token", required_argument, 0, 'k'},
        {"file", required_argument, 0, 'f'},
        {"to", required_argument, 0, 't'},
        {"to-token", required_argument, 0, 'K'},
        {"auth-token", required_argument, 0, 'a'},
        {"from-ms", required_argument, 0, 'F'},
        {"to-ms", required_argument, 0, 'T'},
        {"compare", no_argument, 0, 'c'},
        {"max-wer", required_argument, 0, 'w'},
        {"compare-timeout", required_argument, 0, 'W'},
        {"from", required_argument, 0, 'n'},
        {"to-number", required_argument, 0, 'N'},
        {"ca", required_argument, 0, 'C'},
        {"insecure", no_argument, 0, 'i'},
        {"setup-timeout", required_argument, 0, 's'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    int opt;
    double v;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'u':
            o->url = optarg;
            break;
        case 'k':
            o->token = optarg;
            break;
        case 'f':
            o->file = optarg;
            break;
        case 't':
            o->to = optarg;
            break;
        case 'K':
            o->to_token = optarg;
            break;
        case 'a':
            so->auth_token = optarg;
            break;
        case 'c':
            o->compare = true;
            break;
        case 'n':
            so->from = optarg;
            break;
        case 'N':
            so->to = optarg;
            break;
        case 'C':
            so->ca_file = optarg;
            break;
        case 'i':
            so->insecure = true;
            break;
        case 'F':
        case 'T':
        case 'w':
        case 'W':
        case 's':
            if (!parse_num(optarg, &v)) return 2;
            if (v < 0 || ((opt == 'F' || opt == 'T') && v > (double)SIM_REPLAY_MAX_MS)) {
                fprintf(stderr, "replay: '%s' is out of range\n", optarg);
                return 2;
            }
            if (opt == 'F') o->from_ms = (uint64_t)v;
            if (opt == 'T') o->to_ms = (uint64_t)v;
            if (opt == 'w') o->max_wer = v;
            if (opt == 'W') o->compare_wait_s = v;
            if (opt == 's') so->setup_timeout_s = v;
            break;
        case 'h':
            usage(stdout);
            return -1;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) o->sid = argv[optind++];
    const char *bad = NULL;
    if (optind < argc)
        bad = "one CALLSID at most";
    else if (!o->file == !o->url)
        bad = "give either CALLSID --url URL or --file FILE";
    else if (o->url && !o->sid)
        bad = "--url needs the CALLSID of the call to replay";
    else if (o->sid && !cs_twilio_sid_valid(cs_str_of(o->sid), "CA"))
        bad = "the CALLSID is not one (CA and 32 hex digits)";
    else if (!o->to && !o->url)
        bad = "--file needs --to, the gateway to replay into";
    else if (o->to_ms && o->to_ms <= o->from_ms)
        bad = "--to-ms must be past --from-ms";
    if (bad) {
        fprintf(stderr, "replay: %s\n", bad);
        return 2;
    }
    if (!o->token) o->token = getenv(TOKEN_ENV);
    if (!o->to) o->to = o->url;
    if (!o->to_token) o->to_token = o->token;
    return 0;
}

/* A base URL without its trailing slash, into out[SIM_URL_MAX]. */
static const char *trim_url(const char *url, char *out)
{
    size_t n = strlen(url);
    snprintf(out, SIM_URL_MAX, "%.*s", (int)(n && url[n - 1] == '/' ? n - 1 : n), url);
    return out;
}

static void report(const sim *s, const replay_opts *o, const sim_export *e, const sim_replay *r,
                   double wall_s, bool *ok)
{
    cs_buf out = CS_BUF_INIT(API_JSON_MAX);
    cs_json j;
    cs_json_init(&j, &out);
    cs_json_obj(&j);
    const char *sid = s->n.completed + s->n.failed ? sim_call_sid(sim_call_at((sim *)s, 0)) : "";
    cs_json_kstr(&j, "call_sid", sid);
    cs_json_key(&j, "original");
    cs_json_obj(&j);
    cs_json_kstr(&j, "call_sid", e->call_sid);
    cs_json_kstr(&j, "source", o->file ? o->file : o->url);
    cs_json_kuint(&j, "from_ms", r->from_ms);
    cs_json_kuint(&j, "to_ms", r->end_ms);
    cs_json_kuint(&j, "dtmf", e->nkeys);
    cs_json_kuint(&j, "marks", e->nmarks);
    cs_json_kbool(&j, "events_truncated", e->events_truncated);
    cs_json_obj_end(&j);
    sim_report(s, &j, wall_s);
    *ok = s->n.completed == 1;
    if (o->compare && *ok) {
        cs_buf ref = CS_BUF_INIT(API_JSON_MAX), hyp = CS_BUF_INIT(API_JSON_MAX);
        sim_export_words(e, r->from_ms, o->to_ms, &ref);
        sim_opts so = s->o;
        if (replayed_words(o, &so, sid, &hyp) == 0)
            compare_json(&j, o, ref.data ? ref.data : "", hyp.data ? hyp.data : "", ok);
        else
            *ok = false;
        cs_buf_free(&ref);
        cs_buf_free(&hyp);
    }
    cs_json_obj_end(&j);
    if (cs_json_end(&j) == 0) puts(out.data);
    fflush(stdout);
    cs_buf_free(&out);
}

int cs_replay_main(int argc, char **argv)
{
    replay_opts o = {.max_wer = DEFAULT_MAX_WER, .compare_wait_s = COMPARE_WAIT_S};
    sim s = {0};
    s.o = (sim_opts){
        .calls = 1,
        .account_sid = "AC00000000000000000000000000000000",
        .setup_timeout_s = 10,
    };
    int rc = parse_args(argc, argv, &o, &s.o);
    if (rc) return rc < 0 ? 0 : rc;
    cs_log_min = CS_LOG_WARN;
    char url[SIM_URL_MAX], to[SIM_URL_MAX];
    if (o.url) o.url = trim_url(o.url, url);
    o.to = s.o.url = trim_url(o.to, to);

    cs_buf doc = CS_BUF_INIT(SIM_EXPORT_MAX_BYTES);
    rc = o.file ? read_file(o.file, &doc) : fetch_export(&o, &s.o, &doc);
    sim_export e;
    char err[256];
    if (rc == 0 && (rc = sim_export_parse(doc.data, doc.len, &e, err, sizeof err)) < 0)
        fprintf(stderr, "replay: %s: %s\n", o.file ? o.file : "the export", err);
    cs_buf_free(&doc);
    if (rc < 0) return 1;
    sim_replay r;
    if (!e.ulaw) {
        fprintf(stderr, "replay: the export holds no audio (%s): export it with audio=1\n",
                e.audio_url[0] ? "not embedded" : "the call has no recording");
        rc = CS_EPARSE;
    } else if (sim_replay_cut(&r, &e, o.from_ms, o.to_ms) < 0) {
        fprintf(stderr, "replay: nothing to replay from %llu ms on\n",
                (unsigned long long)o.from_ms);
        rc = CS_EPARSE;
    }
    if (rc < 0) {
        sim_export_free(&e);
        return 1;
    }
    if (e.events_truncated)
        fprintf(stderr, "replay: the export's events were cut short: keys after them are not "
                        "replayed\n");
    if (!s.o.from) s.o.from = e.from[0] ? e.from : "+15550001111";
    if (!s.o.to) s.o.to = e.to[0] ? e.to : "+15550002222";
    s.replay = &r;
    s.frames = r.frames;
    double wall_s = 0;
    bool ok = false;
    rc = sim_run(&s, &wall_s);
    if (rc == 0) report(&s, &o, &e, &r, wall_s, &ok);
    sim_release(&s);
    sim_export_free(&e);
    return rc == 0 && ok ? 0 : 1;
}
