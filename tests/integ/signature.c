/* X-Twilio-Signature on the webhook, the callbacks and the media upgrade, as Twilio
 * sends it: accepted when right, refused with 403 when wrong, missing or signed for
 * another URL; and a stream of another account is refused when TWILIO_ACCOUNT_SID is
 * set. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "integ_util.h"
#include "net/form.h"
#include "provider/twilio.h"
#include "provider/twilio_sig.h"

#define TOKEN   "s3cr3t-auth-token"
#define ACCOUNT "AC0123456789abcdef0123456789abcdef"
#define CALL    "CA0123456789abcdef0123456789abcdef"

static it_server srv;

static int num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valueint : -1;
}

/* POSTs a form to `path`, signed for `signed_url` with `token` (NULL: unsigned). */
static int post(const char *path, const char *token, const char *signed_url)
{
    const char *names[] = {"AccountSid", "CallSid", "CallStatus", "From", "To"};
    const char *values[] = {ACCOUNT, CALL, "ringing", "+15551230000", "+15554560000"};
    cs_buf form = CS_BUF_INIT(4096);
    cs_form_write(&form, names, values, 5);
    char headers[256] = "Content-Type: application/x-www-form-urlencoded\r\n";
    if (token) {
        cs_kv params[5];
        for (int i = 0; i < 5; i++) params[i] = (cs_kv){cs_str_of(names[i]), cs_str_of(values[i])};
        char sig[CS_TWILIO_SIG_LEN + 1];
        cs_twilio_sig_compute(sig, token, signed_url, params, 5);
        size_t n = strlen(headers);
        snprintf(headers + n, sizeof headers - n, "X-Twilio-Signature: %s\r\n", sig);
    }
    it_resp r;
    int status = it_http(srv.port, "POST", path, headers, form.data, &r) == 0 ? r.status : -1;
    it_resp_free(&r);
    cs_buf_free(&form);
    return status;
}

static void webhooks(void)
{
    char url[128], other[128];
    snprintf(url, sizeof url, "%s/twilio/voice", srv.url);
    snprintf(other, sizeof other, "%s/twilio/other", srv.url);
    IT_CHECK(post("/twilio/voice", TOKEN, url) == 200, "a signed webhook was refused");
    IT_CHECK(post("/twilio/voice", NULL, url) == 403, "an unsigned webhook was taken");
    IT_CHECK(post("/twilio/voice", "wrong", url) == 403, "a webhook signed with another token");
    IT_CHECK(post("/twilio/voice", TOKEN, other) == 403, "a webhook signed for another URL");
    /* Twilio's libraries also accept the URL signed without its port. */
    char no_port[128];
    snprintf(no_port, sizeof no_port, "http://127.0.0.1/twilio/voice");
    IT_CHECK(post("/twilio/voice", TOKEN, no_port) == 200, "the port-less variant was refused");
    snprintf(url, sizeof url, "%s/twilio/status", srv.url);
    IT_CHECK(post("/twilio/status", TOKEN, url) == 204, "a signed status callback was refused");
    IT_CHECK(post("/twilio/status", NULL, url) == 403, "an unsigned status callback was taken");
    snprintf(url, sizeof url, "%s/twilio/stream-status", srv.url);
    IT_CHECK(post("/twilio/stream-status", TOKEN, url) == 204, "signed stream status refused");
    IT_CHECK(post("/twilio/stream-status", "nope", url) == 403, "bad stream status taken");
    IT_CHECK(it_metric(srv.port, "callstream_signature_refused_total{route=\"webhook\"}") == 5,
             "webhook refusals not counted");
}

static int upgrade(const char *sig_url, const char *token, bool lowercase)
{
    char extra[160] = "";
    if (token) {
        char sig[CS_TWILIO_SIG_LEN + 1];
        cs_twilio_sig_compute(sig, token, sig_url, NULL, 0);
        snprintf(extra, sizeof extra, "%s: %s\r\n",
                 lowercase ? "x-twilio-signature" : "X-Twilio-Signature", sig);
    }
    it_ws w;
    int st = it_ws_connect(&w, srv.port, "/twilio/media", extra);
    it_ws_close(&w);
    return st;
}

static void upgrades(void)
{
    char ws[128], slash[128], other[128];
    snprintf(ws, sizeof ws, "ws://127.0.0.1:%d/twilio/media", srv.port);
    snprintf(slash, sizeof slash, "ws://127.0.0.1:%d/twilio/media/", srv.port);
    snprintf(other, sizeof other, "ws://127.0.0.1:%d/elsewhere", srv.port);
    IT_CHECK(upgrade(ws, TOKEN, true) == 0, "a signed upgrade (lowercase header) was refused");
    IT_CHECK(upgrade(ws, TOKEN, false) == 0, "a signed upgrade was refused");
    IT_CHECK(upgrade(slash, TOKEN, true) == 0, "the trailing-slash variant was refused");
    IT_CHECK(upgrade(ws, NULL, true) == 403, "an unsigned upgrade was taken");
    IT_CHECK(upgrade(ws, "wrong", true) == 403, "an upgrade with another token was taken");
    IT_CHECK(upgrade(other, TOKEN, true) == 403, "an upgrade signed for another URL was taken");
    IT_CHECK(it_metric(srv.port, "callstream_signature_refused_total{route=\"upgrade\"}") == 3,
             "upgrade refusals not counted");
}

static void whole_calls(void)
{
    int exit_status;
    cJSON *sum = it_sim(&srv, &exit_status,
                        "--calls 2 --duration 1 --auth-token %s --account-sid %s", TOKEN, ACCOUNT);
    IT_CHECK(exit_status == 0 && num(sum, "completed") == 2, "signed calls did not complete");
    cJSON_Delete(sum);
    sum = it_sim(&srv, &exit_status, "--duration 1 --auth-token wrong --account-sid %s", ACCOUNT);
    IT_CHECK(exit_status != 0 && num(cJSON_GetObjectItem(sum, "failures"), "webhook") == 1,
             "a call signed with the wrong token was not refused at the webhook");
    cJSON_Delete(sum);
    /* Signed right, but another account: the stream is refused with 1008. */
    sum = it_sim(&srv, &exit_status,
                 "--duration 1 --auth-token %s --account-sid "
                 "AC99999999999999999999999999999999",
                 TOKEN);
    IT_CHECK(it_log_count(&srv, "media: refused a stream of account") == 1,
             "a stream of another account was not refused");
    cJSON_Delete(sum);
    /* Nor does it talk in <Gather> turns when its stream comes back (<Connect action>). */
    IT_CHECK(it_metric(srv.port, "callstream_gather_refused_total{reason=\"account\"}") >= 1,
             "the call of another account was not refused its <Gather> turns");
    IT_CHECK(it_metric(srv.port, "callstream_gather_conversations") == 0,
             "the call of another account talks in <Gather> turns");
}

int main(void)
{
    /* PUBLIC_URL must name the port Twilio signs: start once to learn a free port. */
    const char *probe[] = {NULL};
    if (it_server_start(&srv, probe) < 0) return it_done("signature");
    it_server_stop(&srv, SIGTERM, 5000);
    const char *args[] = {"--twilio-auth-token",
                          TOKEN,
                          "--twilio-account-sid",
                          ACCOUNT,
                          "--public-url",
                          srv.url,
                          "--agent",
                          "echo",
                          NULL};
    if (it_server_restart(&srv, args) < 0) {
        IT_CHECK(0, "the server did not start");
        return it_done("signature");
    }
    /* Only the run without a token warned that it was unauthenticated. */
    IT_CHECK(it_log_count(&srv, "NOT authenticated") == 1,
             "the warning about running "
             "unauthenticated appeared %d times over two runs",
             it_log_count(&srv, "NOT authenticated"));
    webhooks();
    upgrades();
    whole_calls();
    IT_CHECK(it_server_stop(&srv, SIGTERM, 10000) == 0, "the server did not exit cleanly");
    it_server_cleanup(&srv);
    return it_done("signature");
}
