/* libFuzzer target for the simulator's TwiML reader (tools/sim/twiml_read.c). The first
 * byte picks the mode. Even: the rest is a TwiML answer, read from a buffer of exactly its
 * size (the reader must stay inside it); what it returns must lie inside its own storage. Odd: the
 * rest is cut at NULs into a stream URL and parameter names and values, written as TwiML by the
 * gateway's writer (provider/twiml.c), and the reader must find the same URL, mode and parameters
 * (less the control characters XML cannot carry, and with U+FFFD for what is not Unicode
 * text).
 */
#include <string.h>

#include "core/err.h"
#include "fuzz.h"
#include "provider/twiml.h"
#include "sim/sim_int.h"

/* A view inside the reader's storage, NUL-terminated there (the text itself may hold a
 * NUL: the reader is tolerant, and the views carry their length). */
static bool inside(const sim_doc *d, const char *p)
{
    return p >= d->text && (size_t)(p - d->text) < d->used &&
           memchr(p, '\0', d->used - (size_t)(p - d->text));
}

static sim_doc doc;

static void read_any(const uint8_t *data, size_t size)
{
    char *xml = fuzz_copy(data, size, 0);
    int rc = sim_doc_parse(&doc, xml, size);
    fuzz_check(rc == 0 || rc == CS_EPARSE || rc == -EMSGSIZE);
    fuzz_check(doc.used <= doc.cap && doc.n <= SIM_NODES_MAX && doc.nattrs <= SIM_ATTRS_MAX);
    for (size_t i = 0; rc == 0 && i < doc.n; i++) {
        const sim_node *n = &doc.nodes[i];
        fuzz_check(inside(&doc, n->name) && inside(&doc, n->text));
        fuzz_check(n->parent < (int)i && n->attr + n->nattrs <= doc.nattrs);
    }
    for (size_t i = 0; rc == 0 && i < doc.nattrs; i++)
        fuzz_check(inside(&doc, doc.attrs[i].name.p) && inside(&doc, doc.attrs[i].value.p));
    sim_doc_free(&doc);
    free(xml);
}

/* The stream a document opens first, as the simulator follows it. */
static int first_stream(const char *xml, size_t n, sim_step *st)
{
    static sim_flow f;
    static const sim_flow_opts o = {.dial_status = "completed", .max_docs = 1};
    sim_flow_init(&f, &o, "https://gw.example.com/twilio/voice");
    sim_flow_answer(&f, "POST", "https://gw.example.com/twilio/voice", 200, 0, "", xml, n);
    sim_flow_next(&f, st);
    /* the views point into the flow's document: copied out before it goes */
    static char copy[1u << 20];
    size_t used = 0;
    int rc = st->kind == SIM_STEP_STREAM ? 0 : CS_EPARSE;
    if (rc == 0) {
        size_t len = strlen(st->stream.url) + 1;
        memcpy(copy, st->stream.url, len);
        st->stream.url = copy;
        used = len;
        for (size_t i = 0; i < st->stream.nparams; i++) {
            cs_kv *p = &st->stream.params[i];
            memcpy(copy + used, p->name.p, p->name.n + 1);
            p->name.p = copy + used;
            used += p->name.n + 1;
            memcpy(copy + used, p->value.p, p->value.n + 1);
            p->value.p = copy + used;
            used += p->value.n + 1;
        }
    }
    sim_flow_free(&f);
    return rc;
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
    static sim_step t;
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
        int got = first_stream(xml, out.len, &t);
        char *url = xml_chars(piece[0]), *names[CS_PEV_MAX_PARAMS], *values[CS_PEV_MAX_PARAMS];
        for (size_t i = 0; i < np; i++) {
            names[i] = xml_chars(piece[1 + 2 * i]);
            values[i] = xml_chars(piece[2 + 2 * i]);
        }
        sim_stream *st = &t.stream;
        if (got != 0 || strcmp(st->url, url) != 0) fprintf(stderr, "TwiML: %s\n", out.data);
        fuzz_check(got == 0 && strcmp(st->url, url) == 0);
        bool connect = knobs[0] & 2;
        fuzz_check(st->connect == connect && st->nparams == np);
        fuzz_check(st->both_tracks == (!connect && (knobs[0] & 8)));
        for (size_t i = 0; i < np; i++) {
            if (!cs_str_eqz(st->params[i].name, names[i]) ||
                !cs_str_eqz(st->params[i].value, values[i]))
                fprintf(stderr, "TwiML: %s\nparameter %zu: %.*s=%.*s, not %s=%s\n", out.data, i,
                        (int)st->params[i].name.n, st->params[i].name.p, (int)st->params[i].value.n,
                        st->params[i].value.p, names[i], values[i]);
            fuzz_check(cs_str_eqz(st->params[i].name, names[i]) &&
                       cs_str_eqz(st->params[i].value, values[i]));
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
