/* TwiML for the voice webhook (protocol.md §2). The document is checked first and then
 * written in one go; values are always escaped, never trusted to be plain. */
#include "provider/twiml.h"

#include <errno.h>
#include <stdio.h>
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

static int check(const cs_twiml *t)
{
    /* Twilio drops a query string from the stream URL: data goes in <Parameter>s. */
    if (!t->stream_url || !*t->stream_url || strchr(t->stream_url, '?')) return -EINVAL;
    if (t->relay && !t->connect) return -EINVAL;
    /* <Start> returns at once; with nothing after it Twilio hangs up. */
    if (!t->connect && ((t->track && !known_track(t->track)) || (t->dial && !*t->dial) ||
                        (!t->dial && t->pause_seconds == 0)))
        return -EINVAL;
    /* More would be refused when they come back in `start` (CS_PEV_MAX_PARAMS). */
    if (t->nparams > CS_PEV_MAX_PARAMS) return -EMSGSIZE;
    for (size_t i = 0; i < t->nparams; i++)
        if (!cs_twiml_param_fits(t->params[i].name, t->params[i].value)) return -EMSGSIZE;
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

static void opt_attr(xml *x, const char *name, const char *value)
{
    if (value) attr(x, name, cs_str_of(value));
}

static void params(xml *x, const cs_twiml *t)
{
    for (size_t i = 0; i < t->nparams; i++) {
        raw(x, "<Parameter");
        attr(x, "name", t->params[i].name);
        attr(x, "value", t->params[i].value);
        raw(x, "/>");
    }
}

/* Attribute names as in Twilio's <ConversationRelay> reference. */
static void relay(xml *x, const cs_twiml *t)
{
    const cs_twiml_relay *r = t->relay;
    raw(x, "<ConversationRelay");
    opt_attr(x, "url", t->stream_url);
    opt_attr(x, "welcomeGreeting", r->welcome);
    if (r->welcome) opt_attr(x, "welcomeGreetingInterruptible", r->interruptible);
    opt_attr(x, "language", r->language);
    opt_attr(x, "ttsProvider", r->tts_provider);
    opt_attr(x, "voice", r->voice);
    opt_attr(x, "transcriptionProvider", r->transcription_provider);
    opt_attr(x, "speechModel", r->speech_model);
    opt_attr(x, "interruptible", r->interruptible);
    raw(x, " dtmfDetection=\"true\">");
    params(x, t);
    raw(x, "</ConversationRelay>");
}

static void stream(xml *x, const cs_twiml *t)
{
    if (t->relay) return relay(x, t);
    raw(x, "<Stream");
    opt_attr(x, "url", t->stream_url);
    opt_attr(x, "name", t->stream_name);
    if (!t->connect) opt_attr(x, "track", t->track);
    if (t->status_callback) {
        attr(x, "statusCallback", cs_str_of(t->status_callback));
        attr(x, "statusCallbackMethod", CS_STR("POST"));
    }
    if (t->nparams == 0) {
        raw(x, "/>");
        return;
    }
    raw(x, ">");
    params(x, t);
    raw(x, "</Stream>");
}

static void dial(xml *x, const char *number)
{
    raw(x, "<Dial>");
    text(x, cs_str_of(number));
    raw(x, "</Dial>");
}

int cs_twiml_write(cs_buf *out, const cs_twiml *t)
{
    int rc = check(t);
    if (rc) return rc;
    size_t start = out->len;
    xml x = {out, 0};
    raw(&x, "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response>");
    if (t->say) {
        raw(&x, "<Say");
        opt_attr(&x, "voice", t->voice);
        raw(&x, ">");
        text(&x, cs_str_of(t->say));
        raw(&x, "</Say>");
    }
    if (t->connect && t->relay && t->relay->action) {
        raw(&x, "<Connect");
        attr(&x, "action", cs_str_of(t->relay->action));
        raw(&x, ">");
    } else {
        raw(&x, t->connect ? "<Connect>" : "<Start>");
    }
    stream(&x, t);
    raw(&x, t->connect ? "</Connect>" : "</Start>");
    if (!t->connect && t->dial) {
        dial(&x, t->dial);
    } else if (!t->connect) {
        char len[16];
        snprintf(len, sizeof len, "%u", t->pause_seconds);
        raw(&x, "<Pause length=\"");
        raw(&x, len);
        raw(&x, "\"/>");
    }
    raw(&x, "</Response>");
    if (x.err) cs_buf_truncate(out, start); /* leave `out` as it was */
    return x.err;
}

int cs_twiml_dial_write(cs_buf *out, const char *number)
{
    if (!number || !*number) return -EINVAL;
    size_t start = out->len;
    xml x = {out, 0};
    raw(&x, "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response>");
    dial(&x, number);
    raw(&x, "</Response>");
    if (x.err) cs_buf_truncate(out, start);
    return x.err;
}
