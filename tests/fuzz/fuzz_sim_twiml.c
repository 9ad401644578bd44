/* libFuzzer target for the simulator's TwiML reader (tools/sim/twiml_read.c). The first
 * byte picks the mode. Even: the rest is a TwiML answer, read from a buffer of exactly its
 * size (the reader must stay inside it); what it returns must lie inside its own storage. Odd: the
 * rest is cut at NULs into a stream URL and parameter names and values, written as TwiML by the
 * gateway's writer (provider/twiml.c), and the reader must find the same URL, mode and parameters
 * (less the control characters XML cannot carry, and with U+FFFD for what is not Unicode
 * text), or refuse only when they do not fit its storage.
 */
#include <string.h>

#include "core/err.h"
#include "fuzz.h"
#include "provider/twiml.h"
#include "sim/sim_int.h"

/* A view inside the reader's storage, NUL-terminated there (the text itself may hold a
 * NUL: the reader is tolerant, and the views carry their length). */
static bool inside(const sim_twiml *t, cs_str s)
{
    return s.p >= t->storage && s.n < sizeof t->storage &&
           (size_t)(s.p - t->storage) < sizeof t->storage - s.n && s.p[s.n] == '\0';
}

static void read_any(const uint8_t *data, size_t size)
{
    static sim_twiml t;
    char *xml = fuzz_copy(data, size, 0);
    int rc = sim_twiml_parse(xml, size, &t);
    fuzz_check(rc == 0 || rc == CS_EPARSE);
    if (rc == 0) {
        fuzz_check(strnlen(t.stream_url, sizeof t.stream_url) < sizeof t.stream_url);
        fuzz_check(t.nparams <= SIM_MAX_PARAMS);
        for (size_t i = 0; i < t.nparams; i++)
            fuzz_check(inside(&t, t.params[i].name) && inside(&t, t.params[i].value));
    }
    free(xml);
}

/* s as the TwiML writer puts it: Unicode text (bytes that are not UTF-8, and U+FFFE and
 * U+FFFF, become U+FFFD) without the control characters XML 1.0 cannot carry. */
static char *xml_chars(const char *s)
{
    char *u = malloc(3 * strlen(s) + 1), *o = malloc(3 * strlen(s) + 1);
    if (!u || !o) abort();
    size_t len = fuzz_unicode((const uint8_t *)s, strlen(s), u), n = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)u[i];
        if (i + 3 <= len && !memcmp(u + i, "\xEF\xBF", 2) &&
            ((unsigned char)u[i + 2] & 0xFE) == 0xBE) {
            memcpy(o + n, "\xEF\xBF\xBD", 3); /* U+FFFE, U+FFFF */
            n += 3;
            i += 2;
        } else if (c >= 0x20 || c == '\t' || c == '\n' || c == '\r') {
            o[n++] = (char)c;
        }
    }
    o[n] = '\0';
    free(u);
    return o;
}

static void write_then_read(const uint8_t *knobs, const uint8_t *data, size_t size)
{
    static sim_twiml t;
    static cs_kv params[CS_PEV_MAX_PARAMS];
    char *text = fuzz_copy(data, size, 1);
    /* pieces: url, then name, value, name, value, … */
    const char *piece[1 + 2 * CS_PEV_MAX_PARAMS];
    size_t npieces = 0;
    for (size_t i = 0; i <= size && npieces < sizeof piece / sizeof *piece;
         i += strlen(text + i) + 1)
        piece[npieces++] = text + i;
    size_t np = (npieces - 1) / 2;
    for (size_t i = 0; i < np; i++)
        params[i] = (cs_kv){cs_str_of(piece[1 + 2 * i]), cs_str_of(piece[2 + 2 * i])};
    const cs_twiml_attr attrs[] = {
        {"url", piece[0]},
        {"name", knobs[0] & 4 ? "callstream" : NULL},
        {"track", knobs[0] & 2   ? NULL
                  : knobs[0] & 8 ? "both_tracks"
                                 : "inbound_track"},
        {"statusCallback", knobs[0] & 16 ? "https://gw.example.com/twilio/stream-status" : NULL},
    };
    const cs_twiml_verb stream = {CS_TWIML_STREAM, .attrs = attrs, .nattrs = 4, .params = params,
                                  .nparams = np};
    const cs_twiml_attr len = {"length", "30"};
    cs_twiml_verb tw[3];
    size_t nv = 0;
    if (knobs[0] & 32)
        tw[nv++] = (cs_twiml_verb){CS_TWIML_SAY, .text = "<Stream url=\"wss://not.this/one\"/>"};
    tw[nv++] = (cs_twiml_verb){knobs[0] & 2 ? CS_TWIML_CONNECT : CS_TWIML_START, .nested = &stream,
                               .nnested = 1};
    if (!(knobs[0] & 2)) tw[nv++] = (cs_twiml_verb){CS_TWIML_PAUSE, .attrs = &len, .nattrs = 1};
    cs_buf out = CS_BUF_INIT(1u << 20);
    int rc = cs_twiml_verbs_write(&out, tw, nv);
    if (rc == 0) {
        char *xml = fuzz_copy((const uint8_t *)out.data, out.len, 0);
        int got = sim_twiml_parse(xml, out.len, &t);
        char *url = xml_chars(piece[0]), *names[CS_PEV_MAX_PARAMS], *values[CS_PEV_MAX_PARAMS];
        size_t need = 0;
        for (size_t i = 0; i < np; i++) {
            names[i] = xml_chars(piece[1 + 2 * i]);
            values[i] = xml_chars(piece[2 + 2 * i]);
            need += strlen(names[i]) + strlen(values[i]) + 2;
        }
        if (need <= sizeof t.storage && strlen(url) < sizeof t.stream_url) {
            if (got != 0 || strcmp(t.stream_url, url) != 0)
                fprintf(stderr, "TwiML: %s\n", out.data);
            fuzz_check(got == 0 && strcmp(t.stream_url, url) == 0);
            bool connect = knobs[0] & 2;
            fuzz_check(t.connect == connect && t.nparams == np);
            fuzz_check(t.both_tracks == (!connect && (knobs[0] & 8)));
            for (size_t i = 0; i < np; i++) {
                if (!cs_str_eqz(t.params[i].name, names[i]) ||
                    !cs_str_eqz(t.params[i].value, values[i]))
                    fprintf(stderr, "TwiML: %s\nparameter %zu: %.*s=%.*s, not %s=%s\n", out.data, i,
                            (int)t.params[i].name.n, t.params[i].name.p, (int)t.params[i].value.n,
                            t.params[i].value.p, names[i], values[i]);
                fuzz_check(cs_str_eqz(t.params[i].name, names[i]) &&
                           cs_str_eqz(t.params[i].value, values[i]));
            }
        } else {
            fuzz_check(got == CS_EPARSE);
        }
        for (size_t i = 0; i < np; i++) {
            free(names[i]);
            free(values[i]);
        }
        free(url);
        free(xml);
    } else {
        fuzz_check(rc == -EINVAL || rc == -EMSGSIZE);
    }
    cs_buf_free(&out);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    if (data[0] & 1)
        write_then_read(data, data + 1, size - 1);
    else
        read_any(data + 1, size - 1);
    return 0;
}
