/* Messages from /monitor browsers; see monitor_msg.h. */
#include "http/monitor_msg.h"

#include <cjson/cJSON.h>
#include <string.h>

static const char *const type_names[] = {
    [CS_MONITOR_WATCH_CALLS] = "watch_calls",
    [CS_MONITOR_SUBSCRIBE] = "subscribe",
    [CS_MONITOR_AUDIO] = "audio",
    [CS_MONITOR_UNSUBSCRIBE] = "unsubscribe",
    [CS_MONITOR_PING] = "ping",
};

static const char *const audio_names[] = {
    [0] = "none",
    [CS_MONITOR_AUDIO_CALLER] = "caller",
    [CS_MONITOR_AUDIO_AGENT] = "agent",
    [CS_MONITOR_AUDIO_CALLER | CS_MONITOR_AUDIO_AGENT] = "both",
};

#define COUNT(a) (sizeof(a) / sizeof *(a))

const char *cs_monitor_type_name(enum cs_monitor_type type)
{
    return (size_t)type < COUNT(type_names) ? type_names[type] : NULL;
}

const char *cs_monitor_audio_name(unsigned audio)
{
    return audio < COUNT(audio_names) ? audio_names[audio] : NULL;
}

static const char *string(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static unsigned audio_bits(const char *audio)
{
    if (!audio) return CS_MONITOR_AUDIO_CALLER | CS_MONITOR_AUDIO_AGENT;
    for (unsigned i = 0; i < COUNT(audio_names); i++)
        if (strcmp(audio, audio_names[i]) == 0) return i;
    return 0; /* unknown: none */
}

static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

void cs_monitor_msg_parse(cs_monitor_msg *m, bool text, const char *data, size_t len)
{
    memset(m, 0, sizeof *m);
    if (!text || (len && memchr(data, '\0', len))) return; /* NUL is never in JSON text */
    const char *end = NULL;
    cJSON *o = cJSON_ParseWithLengthOpts(data, len, &end, false);
    m->tree = o;
    while (o && end < data + len && is_ws(*end)) end++;
    const char *type = cJSON_IsObject(o) && end == data + len ? string(o, "type") : NULL;
    if (!type) return;
    m->type = CS_MONITOR_UNKNOWN;
    for (size_t i = 0; i < COUNT(type_names); i++)
        if (type_names[i] && strcmp(type, type_names[i]) == 0) m->type = (enum cs_monitor_type)i;
    m->call = string(o, "call");
    m->audio = audio_bits(string(o, "audio"));
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "t");
    m->has_t = cJSON_IsNumber(t);
    m->t = m->has_t ? t->valuedouble : 0;
}

void cs_monitor_msg_free(cs_monitor_msg *m)
{
    cJSON_Delete(m->tree);
    m->tree = NULL;
}
