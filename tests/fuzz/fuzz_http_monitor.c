/* libFuzzer target for the messages browsers send on /monitor (http/monitor_msg.c). The
 * input is a text frame: whitespace around it changes nothing, anything after an
 * accepted object makes it BAD, a binary frame is always BAD, and the message written
 * back (cs_json) reads back the same: type, call, audio and ping time. The last holds for
 * UTF-8 frames only: the WebSocket reader refuses text frames that are not (RFC 6455
 * §8.1), and the JSON writer turns stray bytes into U+FFFD. */
#include <math.h>
#include <string.h>

#include "core/json.h"
#include "core/str.h"
#include "fuzz.h"
#include "http/monitor_msg.h"

static bool same(const cs_monitor_msg *a, const cs_monitor_msg *b)
{
    return a->type == b->type && (a->call == NULL) == (b->call == NULL) &&
           (!a->call || strcmp(a->call, b->call) == 0) && a->audio == b->audio &&
           a->has_t == b->has_t && (!a->has_t || a->t == b->t || (isnan(a->t) && isnan(b->t)));
}

static void parse_text(cs_monitor_msg *m, const char *s, size_t n)
{
    char *copy = fuzz_copy((const uint8_t *)s, n, 0);
    cs_monitor_msg_parse(m, true, copy, n);
    free(copy); /* the message keeps nothing of its input */
}

static void write_back(cs_buf *out, const cs_monitor_msg *m)
{
    cs_json j;
    cs_json_init(&j, out);
    cs_json_obj(&j);
    const char *type = cs_monitor_type_name(m->type);
    cs_json_kstr(&j, "type", type ? type : "not-a-type");
    if (m->call) cs_json_kstr(&j, "call", m->call);
    const char *audio = cs_monitor_audio_name(m->audio);
    fuzz_check(audio != NULL);
    cs_json_kstr(&j, "audio", audio);
    if (m->has_t) cs_json_kdouble(&j, "t", m->t);
    cs_json_obj_end(&j);
    fuzz_check(cs_json_end(&j) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cs_monitor_msg m, again;
    char *in = fuzz_copy(data, size, 0);
    cs_monitor_msg_parse(&m, false, in, size);
    fuzz_check(m.type == CS_MONITOR_BAD && !m.tree);
    cs_monitor_msg_free(&m);

    parse_text(&m, in, size);
    fuzz_check(m.type <= CS_MONITOR_PING && m.audio <= 3);
    fuzz_check(m.type != CS_MONITOR_BAD || (!m.call && !m.has_t));

    cs_buf padded = CS_BUF_INIT(size + 16);
    cs_buf_printf(&padded, " \r\n\t");
    cs_buf_append(&padded, in, size);
    cs_buf_printf(&padded, "\n ");
    parse_text(&again, padded.data, padded.len);
    fuzz_check(same(&m, &again));
    cs_monitor_msg_free(&again);

    if (m.type != CS_MONITOR_BAD) {
        cs_buf_truncate(&padded, padded.len - 2);
        cs_buf_putc(&padded, 'x');
        parse_text(&again, padded.data, padded.len);
        fuzz_check(again.type == CS_MONITOR_BAD);
        cs_monitor_msg_free(&again);
    }
    if (m.type != CS_MONITOR_BAD && cs_utf8_valid(in, size)) {
        cs_buf out = CS_BUF_INIT(1u << 20);
        write_back(&out, &m);
        parse_text(&again, out.data, out.len);
        if (!isfinite(m.t)) m.has_t = false; /* JSON has no NaN or infinity: written as null */
        if (!same(&m, &again)) fprintf(stderr, "written back: %s\n", out.data);
        fuzz_check(same(&m, &again));
        cs_monitor_msg_free(&again);
        cs_buf_free(&out);
    }
    cs_monitor_msg_free(&m);
    cs_buf_free(&padded);
    free(in);
    return 0;
}
