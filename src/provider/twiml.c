/* TwiML verb lists. A list is checked first and then written in one go; values are
 * always escaped, never trusted to be plain. */
#include "provider/twiml.h"

#include <errno.h>
#include <string.h>

/* <Stream track> values (§2.1). */
static const char *const stream_tracks[] = {"inbound_track", "outbound_track", "both_tracks"};

/* U+FFFE or U+FFFF (EF BF BE, EF BF BF): UTF-8, but not XML characters. */
static bool noncharacter(const char *c, size_t k)
{
    return k == 3 && memcmp(c, "\xEF\xBF", 2) == 0 && (unsigned char)c[2] >= 0xBE;
}

int cs_xml_escape(cs_buf *out, const char *s, size_t n)
{
    int rc = 0;
    size_t run = 0; /* bytes waiting to be copied as they are */
    for (size_t i = 0; i < n && rc == 0; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc;
        size_t len = 1; /* of what esc replaces */
        switch (c) {
        case '&':
            esc = "&amp;";
            break;
        case '<':
            esc = "&lt;";
            break;
        case '>':
            esc = "&gt;";
            break;
        case '"':
            esc = "&quot;";
            break;
        case '\'':
            esc = "&apos;";
            break;
        /* As references, so attribute values keep them: a parser turns literal ones
         * into spaces there (XML 1.0 §3.3.3). */
        case '\t':
            esc = "&#9;";
            break;
        case '\n':
            esc = "&#10;";
            break;
        case '\r':
            esc = "&#13;";
            break;
        default:
            if (c >= 0x20 && c < 0x80) {
                run++;
                continue;
            }
            if (c < 0x20) {
                esc = ""; /* other control characters are not allowed in XML 1.0 */
                break;
            }
            /* Bytes that are not UTF-8 would make the document unreadable, and so would
             * U+FFFE and U+FFFF (XML 1.0 §2.2): U+FFFD stands in for them. */
            size_t k = cs_utf8_char(s + i, n - i);
            if (k && !noncharacter(s + i, k)) {
                run += k;
                i += k - 1;
                continue;
            }
            if (k) len = k;
            esc = CS_UTF8_REPLACEMENT;
        }
        if (run) rc = cs_buf_append(out, s + i - run, run);
        run = 0;
        if (rc == 0) rc = cs_buf_puts(out, esc);
        i += len - 1;
    }
    if (run && rc == 0) rc = cs_buf_append(out, s + n - run, run);
    return rc;
}

/* Characters, as Twilio counts a parameter's length: code points, where each byte that
 * is not UTF-8 counts as the U+FFFD it becomes. */
static size_t chars(cs_str s)
{
    size_t n = 0;
    for (size_t i = 0; i < s.n; n++) {
        size_t k = cs_utf8_char(s.p + i, s.n - i);
        i += k ? k : 1;
    }
    return n;
}

bool cs_twiml_param_fits(cs_str name, cs_str value)
{
    return chars(name) + chars(value) <= CS_TWIML_MAX_PARAM;
}

static bool known_track(const char *track)
{
    for (size_t i = 0; i < sizeof stream_tracks / sizeof *stream_tracks; i++)
        if (strcmp(track, stream_tracks[i]) == 0) return true;
    return false;
}

/* What each kind is: its tag, the kinds it may hold, whether it has text, and whether
 * it carries <Parameter>s. */
#define K(kind) (1u << (kind))
static const struct {
    const char *tag;
    unsigned nested; /* kinds it may hold */
    bool text;
    bool params;
} kinds[] = {
    [CS_TWIML_SAY] = {"Say", 0, true, false},
    [CS_TWIML_PLAY] = {"Play", 0, true, false},
    [CS_TWIML_PAUSE] = {"Pause", 0, false, false},
    [CS_TWIML_GATHER] = {"Gather", K(CS_TWIML_SAY) | K(CS_TWIML_PLAY) | K(CS_TWIML_PAUSE), false,
                         false},
    [CS_TWIML_DIAL] = {"Dial", 0, true, false},
    [CS_TWIML_CONNECT] = {"Connect", K(CS_TWIML_STREAM) | K(CS_TWIML_RELAY), false, false},
    [CS_TWIML_START] = {"Start", K(CS_TWIML_STREAM), false, false},
    [CS_TWIML_REDIRECT] = {"Redirect", 0, true, false},
    [CS_TWIML_HANGUP] = {"Hangup", 0, false, false},
    [CS_TWIML_STREAM] = {"Stream", 0, false, true},
    [CS_TWIML_RELAY] = {"ConversationRelay", 0, false, true},
};
#define NKINDS (sizeof kinds / sizeof *kinds)
/* What a <Response> holds: the verbs, not the nouns. */
#define VERBS (K(CS_TWIML_STREAM) - 1)

static const char *attr_value(const cs_twiml_verb *v, const char *name)
{
    for (size_t i = 0; i < v->nattrs; i++)
        if (strcmp(v->attrs[i].name, name) == 0) return v->attrs[i].value;
    return NULL;
}

static bool letters(const char *s)
{
    if (!s || !*s) return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z'))) return false;
    return true;
}

static int check_verb(const cs_twiml_verb *v, unsigned allowed)
{
    if ((unsigned)v->kind >= NKINDS || !(allowed & K(v->kind))) return -EINVAL;
    bool has_text = v->text && *v->text;
    if (kinds[v->kind].text != has_text || (v->text && !has_text)) return -EINVAL;
    /* A name given twice would make the document unreadable. */
    for (size_t i = 0; i < v->nattrs; i++) {
        if (!letters(v->attrs[i].name)) return -EINVAL;
        for (size_t k = 0; k < i; k++)
            if (strcmp(v->attrs[k].name, v->attrs[i].name) == 0) return -EINVAL;
    }
    if (v->kind == CS_TWIML_STREAM || v->kind == CS_TWIML_RELAY) {
        /* Twilio drops a query string from the stream URL: data goes in <Parameter>s. */
        const char *url = attr_value(v, "url");
        if (!url || !*url || strchr(url, '?')) return -EINVAL;
        const char *track = attr_value(v, "track");
        if (v->kind == CS_TWIML_STREAM && track && !known_track(track)) return -EINVAL;
    }
    if (v->nparams && !kinds[v->kind].params) return -EINVAL;
    /* More would be refused when they come back in `start` (CS_PEV_MAX_PARAMS). */
    if (v->nparams > CS_PEV_MAX_PARAMS) return -EMSGSIZE;
    for (size_t i = 0; i < v->nparams; i++)
        if (!cs_twiml_param_fits(v->params[i].name, v->params[i].value)) return -EMSGSIZE;
    /* <Connect> and <Start> hold exactly their one noun. */
    bool one = v->kind == CS_TWIML_CONNECT || v->kind == CS_TWIML_START;
    if (one ? v->nnested != 1 : v->nnested && !kinds[v->kind].nested) return -EINVAL;
    for (size_t i = 0; i < v->nnested; i++) {
        int rc = check_verb(&v->nested[i], kinds[v->kind].nested);
        if (rc) return rc;
    }
    return 0;
}

/* Appends with the first error kept, like cs_json. */
typedef struct xml {
    cs_buf *out;
    int err;
} xml;

static void raw(xml *x, const char *s)
{
    if (!x->err) x->err = cs_buf_puts(x->out, s);
}

static void text(xml *x, cs_str s)
{
    if (!x->err) x->err = cs_xml_escape(x->out, s.p, s.n);
}

static void attr(xml *x, const char *name, cs_str value)
{
    raw(x, " ");
    raw(x, name);
    raw(x, "=\"");
    text(x, value);
    raw(x, "\"");
}

/* An element with no content is written empty (<Hangup/>). */
static void write_verb(xml *x, const cs_twiml_verb *v)
{
    const char *tag = kinds[v->kind].tag;
    raw(x, "<");
    raw(x, tag);
    for (size_t i = 0; i < v->nattrs; i++)
        if (v->attrs[i].value) attr(x, v->attrs[i].name, cs_str_of(v->attrs[i].value));
    if (!v->text && !v->nnested && !v->nparams) {
        raw(x, "/>");
        return;
    }
    raw(x, ">");
    if (v->text) text(x, cs_str_of(v->text));
    for (size_t i = 0; i < v->nnested; i++) write_verb(x, &v->nested[i]);
    for (size_t i = 0; i < v->nparams; i++) {
        raw(x, "<Parameter");
        attr(x, "name", v->params[i].name);
        attr(x, "value", v->params[i].value);
        raw(x, "/>");
    }
    raw(x, "</");
    raw(x, tag);
    raw(x, ">");
}

int cs_twiml_verbs_write(cs_buf *out, const cs_twiml_verb *verbs, size_t n)
{
    if (n == 0) return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        int rc = check_verb(&verbs[i], VERBS);
        if (rc) return rc;
    }
    size_t start = out->len;
    xml x = {out, 0};
    raw(&x, "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response>");
    for (size_t i = 0; i < n; i++) write_verb(&x, &verbs[i]);
    raw(&x, "</Response>");
    if (!x.err && out->len - start > CS_TWIML_MAX_BYTES) x.err = -EMSGSIZE;
    if (x.err) cs_buf_truncate(out, start); /* leave `out` as it was */
    return x.err;
}
