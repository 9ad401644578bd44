/* TLS: with TLS_CERT/TLS_KEY the gateway serves https:// and wss:// itself. The
 * simulator, trusting the test's own certificate authority, runs whole calls over it;
 * a client that does not trust it fails the handshake. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "integ_util.h"

static int num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valueint : -1;
}

int main(void)
{
    it_server srv;
    /* The temp dir and port first, then a certificate for 127.0.0.1, then the server. */
    if (it_server_prepare(&srv) < 0) return it_done("tls");
    char cert[400], key[400], cmd[1400], url[64];
    IT_CHECK(it_tls_cert(&srv, cert, key, sizeof cert) == 0,
             "openssl could not make a certificate");
    snprintf(url, sizeof url, "https://127.0.0.1:%d", srv.port);
    const char *args[] = {"--tls-cert", cert,      "--tls-key", key, "--public-url",
                          url,          "--agent", "echo",      NULL};
    snprintf(srv.url, sizeof srv.url, "%s", url);
    if (it_server_restart(&srv, args) < 0) {
        IT_CHECK(0, "the TLS server did not start");
        return it_done("tls");
    }
    IT_CHECK(it_log_count(&srv, "(TLS") == 1, "the server did not say it serves TLS");

    snprintf(cmd, sizeof cmd, "curl -s --cacert %s %s/health", cert, url);
    FILE *f = popen(cmd, "r");
    char body[256] = "";
    size_t n = f ? fread(body, 1, sizeof body - 1, f) : 0;
    body[n] = '\0';
    if (f) pclose(f);
    IT_CHECK(strstr(body, "\"ok\"") != NULL, "https /health answered: %s", body);

    int exit_status;
    cJSON *sum = it_sim(&srv, &exit_status, "--calls 3 --duration 2 --dtmf 7 --ca %s", cert);
    IT_CHECK(exit_status == 0 && num(sum, "completed") == 3, "calls over wss did not complete");
    IT_CHECK(num(sum, "missing") == 0, "echo over wss missed %d frames", num(sum, "missing"));
    cJSON_Delete(sum);

    /* Not trusting the certificate: the handshake fails and nothing is posted. */
    sum = it_sim(&srv, &exit_status, "--duration 1");
    IT_CHECK(exit_status != 0 && num(cJSON_GetObjectItem(sum, "failures"), "webhook") == 1,
             "an untrusted certificate was accepted");
    cJSON_Delete(sum);
    IT_CHECK(it_server_stop(&srv, SIGTERM, 10000) == 0, "the server did not exit cleanly");
    it_server_cleanup(&srv);
    return it_done("tls");
}
