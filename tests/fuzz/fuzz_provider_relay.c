/* libFuzzer target for ConversationRelay's messages (provider/twilio_relay.c). The input
 * is one WebSocket text message, read both ways:
 * - as Twilio → us: an accepted event, written again by the peer writer (what Twilio
 *   sends), parses to the same event, its strings as Unicode text; a refused one says why;
 * - as us → Twilio: the input as the text of each outbound message (token, source,
 *   digits, hand-off) gives JSON that reads back with that text as Unicode text. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "fuzz.h"
#include "provider/twilio.h"

static cs_pscratch scratch_a, scratch_b;

/* Whether `got` is `want` written as Unicode text (a view of bytes). */
static bool same_text(cs_str got, cs_str want)
{
    char *u = malloc(3 * want.n + 1);
    if (!u) abort();
    size_t n = fuzz_unicode((const uint8_t *)(want.p ? want.p : ""), want.n, u);
    bool same = got.n == n && (n == 0 || !memcmp(got.p, u, n));
    free(u);
    return same;
}

static bool same_event(const cs_pevent *a, const cs_pevent *b)
{
    if (a->type != b->type) return false;
    switch (a->type) {
    case CS_PEV_START:
        if (!same_text(b->stream_id, a->stream_id) ||
            !same_text(b->start.call_id, a->start.call_id) ||
            !same_text(b->start.account_id, a->start.account_id) ||
            !same_text(b->start.from, a->start.from) || !same_text(b->start.to, a->start.to) ||
            a->start.nparams != b->start.nparams)
            return false;
        for (size_t i = 0; i < a->start.nparams; i++)
            if (!same_text(b->start.params[i].name, a->start.params[i].name) ||
                !same_text(b->start.params[i].value, a->start.params[i].value))
                return false;
        return true;
    case CS_PEV_PROMPT:
        return same_text(b->prompt.text, a->prompt.text) &&
               (a->prompt.lang.p == NULL) == (b->prompt.lang.p == NULL) &&
               same_text(b->prompt.lang, a->prompt.lang) && a->prompt.last == b->prompt.last;
    case CS_PEV_DTMF:
        return a->dtmf.digit == b->dtmf.digit;
    case CS_PEV_INTERRUPT:
        return same_text(b->interrupt.heard, a->interrupt.heard) &&
               a->interrupt.heard_ms == b->interrupt.heard_ms;
    case CS_PEV_PEER_ERROR:
        return same_text(b->peer_error.description, a->peer_error.description);
    default:
        return false; /* no other event comes from this parser */
    }
}

static void inbound(const uint8_t *data, size_t size)
{
    char *msg = fuzz_copy(data, size, 0);
    cs_pevent ev;
    enum cs_bad bad = CS_BAD_COUNT;
    int rc = cs_twilio_relay_parse(msg, size, &ev, &scratch_a, &bad);
    fuzz_check(rc == 0 || (rc == CS_EPARSE && bad < CS_BAD_COUNT));
    if (rc == 0) {
        cs_buf out = CS_BUF_INIT(16u << 20);
        fuzz_check(cs_twilio_relay_peer_write(&out, &ev) == 0);
        cs_pevent again;
        fuzz_check(cs_twilio_relay_parse(out.data, out.len, &again, &scratch_b, &bad) == 0);
        fuzz_check(same_event(&ev, &again));
        cs_buf_free(&out);
    }
    cs_pscratch_free(&scratch_a);
    cs_pscratch_free(&scratch_b);
    free(msg);
}

static void outbound(const uint8_t *data, size_t size)
{
    static const char *const keys[] = {"", "token", "source", "digits", "handoffData"};
    static const char *const types[] = {"", "text", "play", "sendDigits", "end"};
    cs_str text = {(const char *)data, size};
    for (int t = CS_RELAY_TEXT; t <= CS_RELAY_END; t++) {
        cs_relay_out m = {.type = t,
                          .text = text,
                          .last = size & 1,
                          .interruptible = size & 2,
                          .loop = size ? data[0] : 0};
        cs_buf out = CS_BUF_INIT(16u << 20);
        fuzz_check(cs_twilio_relay_write(&out, &m) == 0);
        cJSON *j = cJSON_ParseWithLength(out.data, out.len);
        fuzz_check(cJSON_IsObject(j));
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(j, "type");
        fuzz_check(cJSON_IsString(type) && !strcmp(type->valuestring, types[t]));
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, keys[t]);
        if (t == CS_RELAY_END && size == 0) {
            fuzz_check(v == NULL);
        } else {
            /* A NUL is written as \u0000, where cJSON's string ends: compare up to it. */
            size_t upto = strnlen((const char *)data, size);
            char *u = malloc(3 * size + 1);
            if (!u) abort();
            size_t n = fuzz_unicode(data, upto, u);
            fuzz_check(cJSON_IsString(v) && strlen(v->valuestring) == n &&
                       !memcmp(v->valuestring, u, n));
            free(u);
        }
        if (t == CS_RELAY_TEXT)
            fuzz_check(cJSON_IsBool(cJSON_GetObjectItemCaseSensitive(j, "last")) &&
                       !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "last")) == !(size & 1));
        cJSON_Delete(j);
        cs_buf_free(&out);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    inbound(data, size);
    outbound(data, size);
    return 0;
}
