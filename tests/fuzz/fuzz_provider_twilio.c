/* libFuzzer target for the Twilio Media Streams messages (provider/twilio.c). The input is
 * one WebSocket text message, read both ways:
 * - as Twilio → us: the fast path and cJSON must give the same answer whenever the fast
 *   path takes the message, the ops' parse must give that answer, and an accepted event
 *   written again by the peer writers (what Twilio sends) must parse to the same event
 *   (its strings as Unicode text);
 * - as us → Twilio (the simulator's side): an accepted message written again by the
 *   ops' writers must parse the same, and a media payload, stream id and mark name taken
 *   from the input must survive the writers and the peer parser: the payload byte for
 *   byte, the strings as Unicode text (U+FFFD for each byte that is not UTF-8). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "fuzz.h"
#include "provider/twilio.h"
#include "provider/twilio_int.h"

static cs_pscratch scratch_a, scratch_b;

static bool str_same(cs_str a, cs_str b)
{
    return (a.p == NULL) == (b.p == NULL) && cs_str_eq(a, b);
}

/* Every field of two events of the same message. */
static bool same_event(const cs_pevent *a, const cs_pevent *b)
{
    if (a->type != b->type || a->seq != b->seq || !str_same(a->stream_id, b->stream_id))
        return false;
    switch (a->type) {
    case CS_PEV_CONNECTED:
        return str_same(a->connected.protocol, b->connected.protocol) &&
               str_same(a->connected.version, b->connected.version);
    case CS_PEV_START:
        if (!str_same(a->start.account_id, b->start.account_id) ||
            !str_same(a->start.call_id, b->start.call_id) ||
            !str_same(a->start.stream_id, b->start.stream_id) ||
            a->start.tracks != b->start.tracks || !str_same(a->start.encoding, b->start.encoding) ||
            a->start.sample_rate != b->start.sample_rate ||
            a->start.channels != b->start.channels || a->start.nparams != b->start.nparams)
            return false;
        for (size_t i = 0; i < a->start.nparams; i++)
            if (!str_same(a->start.params[i].name, b->start.params[i].name) ||
                !str_same(a->start.params[i].value, b->start.params[i].value))
                return false;
        return true;
    case CS_PEV_MEDIA:
        return a->media.track == b->media.track && a->media.chunk == b->media.chunk &&
               a->media.timestamp_ms == b->media.timestamp_ms && a->media.len == b->media.len &&
               (a->media.len == 0 || !memcmp(a->media.payload, b->media.payload, a->media.len));
    case CS_PEV_DTMF:
        return a->dtmf.digit == b->dtmf.digit;
    case CS_PEV_MARK:
        return str_same(a->mark.name, b->mark.name);
    case CS_PEV_STOP:
        return str_same(a->stop.account_id, b->stop.account_id) &&
               str_same(a->stop.call_id, b->stop.call_id);
    case CS_PEV_PROMPT:
    case CS_PEV_INTERRUPT:
    case CS_PEV_PEER_ERROR:
        break; /* relay events: never from this parser */
    }
    return false;
}

/* A C string of a view (the writers take some fields so); caller frees. */
static char *z(cs_str s)
{
    return fuzz_copy((const uint8_t *)(s.p ? s.p : ""), s.n, 1);
}

/* What Twilio would send for `ev`, with the fields its writers carry. */
static int rewrite(cs_buf *out, const cs_pevent *ev)
{
    uint64_t seq = ev->seq < 0 ? 0 : (uint64_t)ev->seq;
    char *stream = z(ev->stream_id);
    int rc = -EINVAL;
    switch (ev->type) {
    case CS_PEV_CONNECTED:
        rc = cs_twilio_peer_connected(out);
        break;
    case CS_PEV_START: {
        char *acc = z(ev->start.account_id), *call = z(ev->start.call_id);
        cs_twilio_start s = {
            acc, call, stream, ev->start.tracks, ev->start.params, ev->start.nparams};
        rc = cs_twilio_peer_start(out, seq, &s);
        free(acc);
        free(call);
        break;
    }
    case CS_PEV_MEDIA:
        rc = cs_twilio_peer_media(out, stream, seq, ev->media.track, ev->media.chunk,
                                  ev->media.timestamp_ms, ev->media.payload, ev->media.len);
        break;
    case CS_PEV_DTMF:
        rc = cs_twilio_peer_dtmf(out, stream, seq, ev->dtmf.digit);
        break;
    case CS_PEV_MARK:
        rc = cs_twilio_peer_mark(out, stream, seq, ev->mark.name);
        break;
    case CS_PEV_STOP: {
        char *acc = z(ev->stop.account_id), *call = z(ev->stop.call_id);
        rc = cs_twilio_peer_stop(out, stream, seq, acc, call);
        free(acc);
        free(call);
        break;
    }
    case CS_PEV_PROMPT:
    case CS_PEV_INTERRUPT:
    case CS_PEV_PEER_ERROR:
        break;
    }
    free(stream);
    return rc;
}

/* `s` as Unicode text (fuzz_unicode), stored at *at, which has room for it. */
static cs_str unicode(cs_str s, char **at)
{
    if (!s.p) return s;
    cs_str u = {*at, fuzz_unicode((const uint8_t *)s.p, s.n, *at)};
    *at += u.n + 1;
    return u;
}

/* The rewritten event: what the writers do not carry is set as they write it, and its
 * strings are Unicode text (the JSON writer turns bytes that are not UTF-8 into U+FFFD),
 * stored in `text` (3 bytes for each of the message's, and a NUL each). */
static void as_rewritten(cs_pevent *ev, char *text)
{
    static cs_kv params[CS_PEV_MAX_PARAMS];
    ev->stream_id = unicode(ev->stream_id, &text);
    if (ev->type == CS_PEV_START) {
        ev->start.account_id = unicode(ev->start.account_id, &text);
        ev->start.call_id = unicode(ev->start.call_id, &text);
        ev->start.stream_id = unicode(ev->start.stream_id, &text);
        for (size_t i = 0; i < ev->start.nparams; i++)
            params[i] = (cs_kv){unicode(ev->start.params[i].name, &text),
                                unicode(ev->start.params[i].value, &text)};
        ev->start.params = params;
    }
    if (ev->type == CS_PEV_MARK) ev->mark.name = unicode(ev->mark.name, &text);
    if (ev->type == CS_PEV_STOP) {
        ev->stop.account_id = unicode(ev->stop.account_id, &text);
        ev->stop.call_id = unicode(ev->stop.call_id, &text);
    }
    if (ev->seq < 0) ev->seq = 0;
    if (ev->type == CS_PEV_CONNECTED) {
        ev->connected.protocol = CS_STR("Call");
        ev->connected.version = CS_STR("1.0.0");
        ev->seq = -1; /* connected has no sequenceNumber */
    }
    if (ev->type == CS_PEV_STOP) {
        if (!ev->stop.account_id.p) ev->stop.account_id = CS_STR("");
        if (!ev->stop.call_id.p) ev->stop.call_id = CS_STR("");
    }
}

static void inbound(const uint8_t *data, size_t size)
{
    static const cs_pevent none;
    cs_pevent fast = none, slow = none, ops = none;
    enum cs_bad bad_fast = CS_BAD_COUNT, bad_slow = CS_BAD_COUNT, bad_ops = CS_BAD_COUNT;
    char *m1 = fuzz_copy(data, size, 0), *m2 = fuzz_copy(data, size, 0);
    char *m3 = fuzz_copy(data, size, 0);
    int rc_fast = cs_twilio_parse_fast(m1, size, &fast, &scratch_a, &bad_fast);
    int rc_slow = cs_twilio_parse_slow(m2, size, &slow, &scratch_b, &bad_slow);
    fuzz_check(rc_fast == 0 || rc_fast == CS_EPARSE || rc_fast == -EAGAIN);
    fuzz_check(rc_slow == 0 || rc_slow == CS_EPARSE);
    fuzz_check(rc_slow == 0 || bad_slow < CS_BAD_COUNT);
    if (rc_fast != -EAGAIN) { /* the fast path took it: cJSON must agree */
        fuzz_check(rc_fast == rc_slow);
        fuzz_check(rc_fast == 0 ? fast.type == CS_PEV_MEDIA && same_event(&fast, &slow)
                                : bad_fast == bad_slow);
    }
    /* the ops' parse is the fast path, then the slow one */
    cs_pscratch ops_scratch;
    cs_pscratch_init(&ops_scratch);
    int rc_ops = cs_provider_twilio.parse(m3, size, &ops, &ops_scratch, &bad_ops);
    fuzz_check(rc_ops == rc_slow && (rc_ops ? bad_ops == bad_slow : same_event(&ops, &slow)));
    cs_pscratch_free(&ops_scratch);

    if (rc_slow == 0) { /* what Twilio would send for it reads back the same */
        cs_buf out = CS_BUF_INIT(1u << 20);
        fuzz_check(rewrite(&out, &slow) == 0);
        cs_pevent again = none, want = slow;
        enum cs_bad bad = CS_BAD_COUNT;
        int rc = cs_provider_twilio.parse(out.data, out.len, &again, &scratch_a, &bad);
        if (rc) fprintf(stderr, "rewritten: %s (bad %d)\n", out.data, (int)bad);
        char *text = malloc(3 * size + 2 * CS_PEV_MAX_PARAMS + 8);
        if (!text) abort();
        as_rewritten(&want, text);
        fuzz_check(rc == 0 && same_event(&again, &want));
        free(text);
        cs_buf_free(&out);
    }
    free(m1);
    free(m2);
    free(m3);
}

/* Whether `b` is what `a` reads back as once written: its strings as Unicode text (the
 * JSON writer turns bytes that are not UTF-8 into U+FFFD), its payload byte for byte. */
static bool out_same(const cs_twilio_out *a, const cs_twilio_out *b)
{
    char *sid = malloc(3 * a->stream_sid.n + 1), *name = malloc(3 * a->mark_name.n + 1);
    if (!sid || !name) abort();
    cs_str want_sid = {sid, fuzz_unicode((const uint8_t *)a->stream_sid.p, a->stream_sid.n, sid)};
    cs_str want_name = {name, fuzz_unicode((const uint8_t *)a->mark_name.p, a->mark_name.n, name)};
    bool same = a->type == b->type && cs_str_eq(want_sid, b->stream_sid) && a->len == b->len &&
                (a->len == 0 || !memcmp(a->payload, b->payload, a->len)) &&
                cs_str_eq(want_name, b->mark_name);
    free(sid);
    free(name);
    return same;
}

/* Our writers, as the ops table has them. */
static int write_out(cs_buf *out, const cs_twilio_out *o)
{
    switch (o->type) {
    case CS_TWOUT_MEDIA:
        return cs_provider_twilio.write_media(out, o->stream_sid, o->payload, o->len);
    case CS_TWOUT_MARK:
        return cs_provider_twilio.write_mark(out, o->stream_sid, o->mark_name);
    case CS_TWOUT_CLEAR:
        return cs_provider_twilio.write_clear(out, o->stream_sid);
    }
    return -EINVAL;
}

static void outbound(const uint8_t *data, size_t size)
{
    static uint8_t buf_a[CS_PEV_MAX_PAYLOAD], buf_b[CS_PEV_MAX_PAYLOAD];
    char *msg = fuzz_copy(data, size, 0);
    cs_twilio_out a, b;
    if (cs_twilio_peer_parse(msg, size, &a, buf_a, sizeof buf_a) == 0) {
        /* views over the start of msg, which they were copied to */
        fuzz_check(a.stream_sid.n + a.mark_name.n <= size);
        fuzz_check(a.type == CS_TWOUT_MEDIA || a.len == 0);
        cs_buf out = CS_BUF_INIT(1u << 20);
        fuzz_check(write_out(&out, &a) == 0);
        fuzz_check(cs_twilio_peer_parse(out.data, out.len, &b, buf_b, sizeof buf_b) == 0);
        fuzz_check(out_same(&a, &b));
        cs_buf_free(&out);
    }
    free(msg);

    /* The input's bytes as a media payload, stream id and mark name. */
    size_t cut = size / 3;
    cs_str sid = {(const char *)data, cut}, name = {(const char *)data + cut, cut};
    const uint8_t *payload = data + 2 * cut;
    size_t plen = size - 2 * cut;
    if (plen > CS_PEV_MAX_PAYLOAD || memchr(data, '\0', 2 * cut)) return; /* views, not strings */
    cs_twilio_out want_media = {CS_TWOUT_MEDIA, sid, payload, plen, CS_STR("")};
    cs_twilio_out want_mark = {CS_TWOUT_MARK, sid, NULL, 0, name};
    cs_twilio_out want_clear = {CS_TWOUT_CLEAR, sid, NULL, 0, CS_STR("")};
    const cs_twilio_out *wants[] = {&want_media, &want_mark, &want_clear};
    for (size_t i = 0; i < 3; i++) {
        cs_buf out = CS_BUF_INIT(1u << 20);
        fuzz_check(write_out(&out, wants[i]) == 0);
        fuzz_check(cs_twilio_peer_parse(out.data, out.len, &b, buf_b, sizeof buf_b) == 0);
        fuzz_check(out_same(wants[i], &b));
        cs_buf_free(&out);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    if (!ready) {
        cs_pscratch_init(&scratch_a);
        cs_pscratch_init(&scratch_b);
        ready = true;
    }
    inbound(data, size);
    outbound(data, size);
    return 0;
}
