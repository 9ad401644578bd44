/* The monitoring pages and their static files, served from the binary (assets.h).
 * Pages need a session; the login page and static files do not (they hold no data). */
#include <string.h>

#include "http/assets.h"
#include "http/auth.h"
#include "http/gateway.h"
#include "provider/twilio.h"

/* Pages load only from here; audio comes from here or from the page itself (blob:). */
#define SECURITY_HEADERS                                                                           \
    "X-Content-Type-Options: nosniff\r\n"                                                          \
    "Referrer-Policy: same-origin\r\n"                                                             \
    "Content-Security-Policy: default-src 'self'; img-src 'self' data:; media-src 'self' blob:; "  \
    "style-src 'self' 'unsafe-inline'; frame-ancestors 'none'\r\n"

const cs_asset *cs_asset_find(const char *path, size_t n)
{
    for (size_t i = 0; i < cs_nassets; i++)
        if (strlen(cs_assets[i].path) == n && memcmp(cs_assets[i].path, path, n) == 0)
            return &cs_assets[i];
    return NULL;
}

static const char *content_type(const char *path)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".ico", "image/x-icon"},
        {".json", "application/json"},
    };
    const char *dot = strrchr(path, '.');
    for (size_t i = 0; dot && i < sizeof types / sizeof *types; i++)
        if (strcmp(dot, types[i].ext) == 0) return types[i].type;
    return "application/octet-stream";
}

static void send_asset(cs_request *r, const char *path)
{
    const cs_asset *a = cs_asset_find(path, strlen(path));
    if (!a) {
        cs_respond_error(r, 404, "no such file");
        return;
    }
    char extra[768];
    snprintf(extra, sizeof extra, "ETag: %s\r\nCache-Control: no-cache\r\n" SECURITY_HEADERS,
             a->etag);
    const cs_str *inm = cs_request_header(r, "If-None-Match");
    if (inm && cs_str_eqz(*inm, a->etag)) {
        cs_respond(r, 304, NULL, NULL, 0, extra);
        return;
    }
    cs_respond(r, 200, content_type(a->path), a->data, a->len, extra);
}

void cs_web_root(cs_request *r)
{
    cs_respond(r, 303, NULL, NULL, 0, "Location: /calls_monitoring\r\n");
}

void cs_web_login(cs_request *r)
{
    send_asset(r, "login.html");
}

void cs_web_calls(cs_request *r)
{
    if (!cs_auth_check(r, CS_ACCESS_PAGE, cs_web_calls)) return;
    send_asset(r, "calls.html");
}

void cs_web_call(cs_request *r)
{
    if (!cs_auth_check(r, CS_ACCESS_PAGE, cs_web_call)) return;
    if (!cs_call_sid_valid(r->params[0])) {
        cs_respond_error(r, 404, "no such call");
        return;
    }
    send_asset(r, "call.html");
}

void cs_web_static(cs_request *r)
{
    char path[512];
    if (r->params[0].n + 8 > sizeof path) {
        cs_respond_error(r, 404, "no such file");
        return;
    }
    snprintf(path, sizeof path, "static/%.*s", (int)r->params[0].n, r->params[0].p);
    send_asset(r, path);
}
