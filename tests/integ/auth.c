/* Who may use the pages, the API and the monitor socket: the first admin, sign-in with
 * its cookie, the per-address limit, pages that send strangers to the login page, API
 * tokens, the command line, logout, deleted users, changed passwords and revoked tokens
 * refused within AUTH_CACHE_S, where a sign-in may lead — and Twilio's routes, which
 * take signatures only. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "integ_util.h"

static it_server srv;

#define REVOKE_WAIT_MS 20000 /* generous, for a 2 s AUTH_CACHE_S on a busy machine */

/* POST /login; returns the status and the Set-Cookie line (if any) in *cookie. */
static int login(const char *user, const char *password, bool json, char *cookie, size_t cap,
                 char *location, size_t lcap)
{
    char body[512];
    snprintf(body, sizeof body, "username=%s&password=%s&next=/calls_monitoring/x", user, password);
    it_resp r;
    int status =
        it_http_browser(srv.port, "POST", "/login",
                        json ? "Content-Type: application/x-www-form-urlencoded\r\nAccept: "
                               "application/json\r\n"
                             : "Content-Type: application/x-www-form-urlencoded\r\n",
                        body, &r) == 0
            ? r.status
            : -1;
    const char *c = it_header(&r, "Set-Cookie");
    if (cookie) snprintf(cookie, cap, "%.*s", c ? (int)strcspn(c, "\r\n") : 0, c ? c : "");
    const char *l = it_header(&r, "Location");
    if (location) snprintf(location, lcap, "%.*s", l ? (int)strcspn(l, "\r\n") : 0, l ? l : "");
    it_resp_free(&r);
    return status;
}

/* "Cookie: cs_session=…" from a Set-Cookie line. */
static void cookie_header(char *out, size_t cap, const char *set_cookie)
{
    const char *v = strstr(set_cookie, "cs_session=");
    snprintf(out, cap, "Cookie: %.*s\r\n", v ? (int)strcspn(v, ";") : 0, v ? v : "");
}

/* GET as a browser with `cookie` (or nothing). */
static int get_as(const char *target, const char *cookie, it_resp *r)
{
    return it_http_browser(srv.port, "GET", target, cookie, NULL, r) == 0 ? r->status : -1;
}

static void first_admin_and_sign_in(void)
{
    char pw[64], set[512], cookie[256], loc[512];
    it_admin_password(&srv, pw, sizeof pw);
    IT_CHECK(strlen(pw) == 24, "no admin password in the log");
    IT_CHECK(login("admin", pw, true, set, sizeof set, NULL, 0) == 200, "admin could not sign in");
    IT_CHECK(strstr(set, "HttpOnly") && strstr(set, "SameSite=Strict") && strstr(set, "Path=/"),
             "cookie attributes: %s", set);
    IT_CHECK(!strstr(set, "Secure"), "Secure on plain HTTP: %s", set);
    cookie_header(cookie, sizeof cookie, set);

    it_resp r;
    IT_CHECK(get_as("/api/v1/me", cookie, &r) == 200 && r.json &&
                 !strcmp(cJSON_GetObjectItem(r.json, "user")->valuestring, "admin"),
             "the session does not reach the API");
    it_resp_free(&r);
    IT_CHECK(get_as("/calls_monitoring", cookie, &r) == 200 && strstr(r.body, "<html"),
             "the list page with a session: %d", r.status);
    IT_CHECK(it_header(&r, "Content-Security-Policy") != NULL, "pages without a CSP");
    it_resp_free(&r);

    /* a form sign-in goes where `next` says */
    IT_CHECK(login("admin", pw, false, NULL, 0, loc, sizeof loc) == 303 &&
                 strstr(loc, "/calls_monitoring/x"),
             "form sign-in went to %s", loc);
    /* wrong password, unknown user: the same answer */
    IT_CHECK(login("admin", "nope", true, NULL, 0, NULL, 0) == 401, "wrong password accepted");
    IT_CHECK(login("nobody", "nope", false, NULL, 0, loc, sizeof loc) == 303 &&
                 strstr(loc, "error=invalid"),
             "unknown user went to %s", loc);

    /* logout ends the session here at once */
    IT_CHECK(it_http_browser(srv.port, "POST", "/logout", cookie, "", &r) == 0 && r.status == 303 &&
                 strstr(r.head, "Max-Age=0"),
             "logout: %d", r.status);
    it_resp_free(&r);
    IT_CHECK(get_as("/api/v1/me", cookie, &r) == 401, "the session outlived logout");
    it_resp_free(&r);
}

static void strangers(void)
{
    it_resp r;
    IT_CHECK(get_as("/api/v1/calls", NULL, &r) == 401 && it_header(&r, "WWW-Authenticate"),
             "the API without a session: %d", r.status);
    it_resp_free(&r);
    IT_CHECK(get_as("/metrics", NULL, &r) == 401, "metrics without a session");
    it_resp_free(&r);
    IT_CHECK(get_as("/calls_monitoring/CA0123456789abcdef0123456789abcdef", NULL, &r) == 303 &&
                 strstr(r.head, "/login?next=%2Fcalls_monitoring%2FCA0123"),
             "a page without a session: %d %s", r.status, r.head);
    it_resp_free(&r);
    IT_CHECK(get_as("/", NULL, &r) == 303 && strstr(r.head, "Location: /calls_monitoring"),
             "/ does not lead to the list");
    it_resp_free(&r);
    IT_CHECK(get_as("/login", NULL, &r) == 200 && strstr(r.body, "password"), "no login page");
    it_resp_free(&r);
    IT_CHECK(get_as("/health", NULL, &r) == 200, "/health is for anyone");
    it_resp_free(&r);
    IT_CHECK(get_as("/api/v1/me", "Authorization: Bearer cs_nope\r\n", &r) == 401,
             "a made-up token");
    it_resp_free(&r);
}

/* GETs `target` with `headers` until it answers `want` or timeout_ms has passed; the
 * last status. */
static int status_within(const char *target, const char *headers, int want, int timeout_ms)
{
    long long deadline = it_now_ms() + timeout_ms;
    int status;
    for (;;) {
        it_resp r;
        status = get_as(target, headers, &r);
        it_resp_free(&r);
        if (status == want || it_now_ms() > deadline) return status;
        it_sleep_ms(200);
    }
}

/* A sign-in leads only to a page of ours: a hostile `next` (as sent in the form's body)
 * lands on the list. */
static void hostile_next(void)
{
    static const char *const hostile[] = {
        "/%09/evil.example",  "//evil.example/",       "/%5Cevil.example",    "/%252F/evil.example",
        "/%0d%0aX-Evil:%201", "https://evil.example/", "javascript:alert(1)", "",
    };
    char pw[64], body[512], loc[512];
    it_admin_password(&srv, pw, sizeof pw);
    for (size_t i = 0; i < sizeof hostile / sizeof *hostile; i++) {
        snprintf(body, sizeof body, "username=admin&password=%s&next=%s", pw, hostile[i]);
        it_resp r;
        int rc = it_http_browser(srv.port, "POST", "/login",
                                 "Content-Type: application/x-www-form-urlencoded\r\n", body, &r);
        const char *l = rc == 0 ? it_header(&r, "Location") : NULL;
        snprintf(loc, sizeof loc, "%.*s", l ? (int)strcspn(l, "\r\n") : 0, l ? l : "");
        IT_CHECK(rc == 0 && r.status == 303 && strcmp(loc, "Location: /calls_monitoring") == 0,
                 "next=%s led to %d %s", hostile[i], rc == 0 ? r.status : -1, loc);
        it_resp_free(&r);
    }
}

/* Without a restart, a deleted user's session, a session from before a password change
 * and a revoked token stop working within AUTH_CACHE_S (2 s on this server), though each
 * was in the cache. */
static void revoked_within_the_cache_window(void)
{
    char eve[256], fay[256], token[80], bearer[160];
    IT_CHECK(it_cli(&srv, "user add eve --password-stdin", "eve's password\n", NULL, 0) == 0 &&
                 it_cli(&srv, "user add fay --password-stdin", "fay's password\n", NULL, 0) == 0,
             "user add failed");
    IT_CHECK(it_cli(&srv, "token create bot", NULL, token, sizeof token) == 0, "no token");
    snprintf(bearer, sizeof bearer, "Authorization: Bearer %s\r\n", token);
    IT_CHECK(it_sign_in(&srv, "eve", "eve's password", eve, sizeof eve) == 0 &&
                 it_sign_in(&srv, "fay", "fay's password", fay, sizeof fay) == 0,
             "the new users cannot sign in");
    IT_CHECK(status_within("/api/v1/me", eve, 200, 0) == 200 &&
                 status_within("/api/v1/me", fay, 200, 0) == 200 &&
                 status_within("/api/v1/me", bearer, 200, 0) == 200,
             "a fresh session or token refused");

    IT_CHECK(it_cli(&srv, "user delete eve", NULL, NULL, 0) == 0, "user delete failed");
    IT_CHECK(it_cli(&srv, "user add fay --password-stdin", "fay's new password\n", NULL, 0) == 0,
             "the password change failed");
    IT_CHECK(it_cli(&srv, "token revoke bot", NULL, NULL, 0) == 0, "revoke failed");
    IT_CHECK(status_within("/api/v1/me", eve, 401, REVOKE_WAIT_MS) == 401,
             "a deleted user is still signed in");
    IT_CHECK(status_within("/api/v1/me", fay, 401, REVOKE_WAIT_MS) == 401,
             "a session from before the password change still works");
    IT_CHECK(status_within("/api/v1/me", bearer, 401, REVOKE_WAIT_MS) == 401,
             "a revoked token still works");
    IT_CHECK(it_sign_in(&srv, "fay", "fay's password", fay, sizeof fay) < 0,
             "the old password still signs in");
    IT_CHECK(it_sign_in(&srv, "fay", "fay's new password", fay, sizeof fay) == 0 &&
                 status_within("/api/v1/me", fay, 200, 0) == 200,
             "the new password does not sign in");
    IT_CHECK(it_sign_in(&srv, "eve", "eve's password", eve, sizeof eve) < 0,
             "a deleted user signed in");
}

/* A server of its own, where the cache lasts 2 s and sign-ins are not limited. */
static void on_a_quick_server(void)
{
    it_server main_srv = srv;
    const char *args[] = {"--auth-cache-s", "2", "--login-attempts-per-min", "10000", NULL};
    if (it_server_start(&srv, args) < 0) {
        IT_CHECK(0, "no server with a short cache");
        srv = main_srv;
        return;
    }
    revoked_within_the_cache_window();
    hostile_next();
    IT_CHECK(it_server_stop(&srv, SIGTERM, 10000) == 0, "the server did not exit cleanly");
    it_server_cleanup(&srv);
    srv = main_srv;
    snprintf(it_auth, sizeof it_auth, "Authorization: Bearer %s\r\n", srv.token);
}

static void static_files(void)
{
    it_resp r;
    IT_CHECK(get_as("/static/app.css", NULL, &r) == 200 && strstr(r.head, "text/css"),
             "app.css: %d", r.status);
    const char *etag = it_header(&r, "ETag");
    char inm[128];
    snprintf(inm, sizeof inm, "If-None-Match: %.*s\r\n", etag ? (int)strcspn(etag + 6, "\r\n") : 0,
             etag ? etag + 6 : "");
    it_resp_free(&r);
    IT_CHECK(etag && get_as("/static/app.css", inm, &r) == 304, "no 304 for a known ETag");
    it_resp_free(&r);
    IT_CHECK(get_as("/static/../login.html", NULL, &r) == 404, "a path escaping static/");
    it_resp_free(&r);
}

/* A server of its own: three attempts a minute from one address. */
static void throttling(void)
{
    it_server main_srv = srv;
    const char *args[] = {"--login-attempts-per-min", "3", NULL};
    if (it_server_start(&srv, args) < 0) {
        IT_CHECK(0, "no server for the limit");
        srv = main_srv;
        return;
    }
    char pw[64], loc[512];
    it_admin_password(&srv, pw, sizeof pw);
    int statuses[4];
    for (int i = 0; i < 4; i++) statuses[i] = login("admin", "wrong", true, NULL, 0, NULL, 0);
    IT_CHECK(statuses[0] == 401 && statuses[3] == 429, "attempts answered %d … %d", statuses[0],
             statuses[3]);
    IT_CHECK(login("admin", pw, false, NULL, 0, loc, sizeof loc) == 303 &&
                 strstr(loc, "error=throttled"),
             "the right password still passed the limit: %s", loc);
    it_server_stop(&srv, SIGTERM, 5000);
    it_server_cleanup(&srv);
    srv = main_srv;
    snprintf(it_auth, sizeof it_auth, "Authorization: Bearer %s\r\n", srv.token);
}

static void tokens_and_users(void)
{
    char token[80];
    IT_CHECK(it_cli(&srv, "token create dashboard", NULL, token, sizeof token) == 0 &&
                 strncmp(token, "cs_", 3) == 0,
             "token create printed %s", token);
    char hdr[160];
    snprintf(hdr, sizeof hdr, "Authorization: Bearer %s\r\n", token);
    it_resp r;
    IT_CHECK(get_as("/api/v1/me", hdr, &r) == 200 && r.json &&
                 !strcmp(cJSON_GetObjectItem(r.json, "user")->valuestring, "dashboard"),
             "a new token is refused");
    it_resp_free(&r);
    IT_CHECK(it_cli(&srv, "token create dashboard", NULL, NULL, 0) != 0,
             "a second token, same name");
    IT_CHECK(it_cli(&srv, "user add ann --password-stdin", "short\n", NULL, 0) != 0,
             "a short password was taken");
    IT_CHECK(it_cli(&srv, "user add ann --password-stdin", "correct horse battery\n", NULL, 0) == 0,
             "user add failed");
    IT_CHECK(login("ann", "correct%20horse%20battery", true, NULL, 0, NULL, 0) == 200,
             "the new user cannot sign in");
    IT_CHECK(it_cli(&srv, "token revoke dashboard", NULL, NULL, 0) == 0, "revoke failed");
    /* identities are cached for a minute; a restart forgets them */
    IT_CHECK(it_server_stop(&srv, SIGTERM, 10000) == 0, "the server did not exit cleanly");
    IT_CHECK(it_server_restart(&srv, NULL) == 0, "no restart");
    IT_CHECK(get_as("/api/v1/me", hdr, &r) == 401, "a revoked token still works");
    it_resp_free(&r);
    IT_CHECK(it_log_count(&srv, "created 'admin'") == 1, "a second admin was made on restart");
}

/* Twilio's routes take signatures, never sessions. */
static void twilio_routes_ignore_sessions(void)
{
    it_server s2;
    const char *args[] = {"--twilio-auth-token", "secret", NULL};
    if (it_server_start(&s2, args) < 0) {
        IT_CHECK(0, "no second server");
        return;
    }
    it_resp r;
    IT_CHECK(it_http(s2.port, "POST", "/twilio/voice",
                     "Content-Type: application/x-www-form-urlencoded\r\n",
                     "CallSid=CA0123456789abcdef0123456789abcdef", &r) == 0 &&
                 r.status == 403,
             "the webhook took a bearer token instead of a signature: %d", r.status);
    it_resp_free(&r);
    it_server_stop(&s2, SIGTERM, 5000);
    it_server_cleanup(&s2);
    snprintf(it_auth, sizeof it_auth, "Authorization: Bearer %s\r\n", srv.token);
}

int main(void)
{
    if (it_server_start(&srv, NULL) < 0) return it_done("auth");
    first_admin_and_sign_in();
    strangers();
    static_files();
    tokens_and_users();
    throttling();
    on_a_quick_server();
    twilio_routes_ignore_sessions();
    IT_CHECK(it_server_stop(&srv, SIGTERM, 10000) == 0, "the server did not exit cleanly");
    it_server_cleanup(&srv);
    return it_done("auth");
}
