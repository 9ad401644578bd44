/* Agents' transfers and hang-ups (call/talk.h) through the gateway's call control: the
 * one way an agent acts on its call at the provider, so no agent names one. A request
 * waits on its stream until what the agent said has played, then goes; its result is a
 * `control` event, and the agent's callback while the agent is there. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "call/call_int.h"
#include "call/control.h"
#include "call/talk.h"
#include "core/err.h"

struct agent_ctl {
    cs_calls *calls;
    cs_stream *s;    /* while its stream is live; NULL once it ended */
    cs_agent *agent; /* NULL once the agent closed */
    cs_agent_control_cb cb;
    enum cs_rest_op op; /* CS_REST_TWIML (a transfer) or CS_REST_HANGUP */
    bool sent;
    char call_sid[CS_SID_MAX + 1];
    char to[32];
    char by[48];
    char reason[128];
};

bool cs_agent_can_control(const cs_agent *a)
{
    return a->stream && a->calls->talk.control;
}

static int ask(cs_agent *a, enum cs_rest_op op, const char *number, const char *reason,
               cs_agent_control_cb cb)
{
    cs_stream *s = a->stream;
    if (!s || !a->calls->talk.control || s->ctl) return CS_ESTATE;
    struct agent_ctl *c = calloc(1, sizeof *c);
    if (!c) return -ENOMEM;
    *c = (struct agent_ctl){.calls = a->calls, .s = s, .agent = a, .cb = cb, .op = op};
    snprintf(c->call_sid, sizeof c->call_sid, "%s", a->call_sid);
    snprintf(c->to, sizeof c->to, "%s", number ? number : "");
    snprintf(c->by, sizeof c->by, "agent:%s", a->ops->name);
    snprintf(c->reason, sizeof c->reason, "%s", reason ? reason : "");
    s->ctl = c;
    return 0;
}

int cs_agent_transfer(cs_agent *a, const char *number, const char *reason, cs_agent_control_cb cb)
{
    if (!number || !cs_e164_valid(number)) return -EINVAL;
    return ask(a, CS_REST_TWIML, number, reason, cb);
}

int cs_agent_end_call(cs_agent *a, const char *reason)
{
    cs_stream *s = a->stream;
    if (!s) return CS_ESTATE;
    /* A relay's `end` or a <Gather> turn's <Hangup/> is the provider's hang-up already. */
    if (cs_stream_relay(s) || !a->calls->talk.control || s->ctl) return cs_stream_hangup(s, true);
    return ask(a, CS_REST_HANGUP, NULL, reason, NULL);
}

static void done(void *data, int err, const cs_rest_result *res)
{
    struct agent_ctl *c = data;
    cs_control_event(c->calls, c->call_sid, c->op, c->by, c->to, NULL, c->reason, err, res);
    cs_stream *s = c->s;
    cs_agent *a = c->agent;
    if (s) s->ctl = NULL;
    /* The provider would not hang up: our side of the stream ends at least. */
    if (err < 0 && c->op == CS_REST_HANGUP && s) cs_stream_hangup(s, false);
    if (a && c->cb) c->cb(a, err, res->message);
    free(c);
}

void cs_talk_control_due(cs_stream *s)
{
    struct agent_ctl *c = s->ctl;
    if (!c || c->sent || cs_stream_talking(s)) return;
    c->sent = true;
    cs_control *ctl = s->calls->talk.control;
    char why[CS_REST_MESSAGE_MAX + 1] = "";
    int rc;
    if (c->op == CS_REST_TWIML) {
        rc = cs_control_transfer(ctl, c->call_sid, c->to, done, c, NULL, why);
    } else {
        cs_rest_req req = {.op = CS_REST_HANGUP, .call_sid = c->call_sid};
        rc = cs_control_send(ctl, &req, done, c, NULL, why);
    }
    if (rc < 0) {
        cs_rest_result res = {0};
        snprintf(res.message, sizeof res.message, "not sent: %.480s",
                 why[0]           ? why
                 : rc == CS_EFULL ? "too many call-control requests in flight"
                                  : cs_strerror(rc));
        done(c, rc, &res);
    }
}

void cs_talk_control_detach(cs_stream *s)
{
    struct agent_ctl *c = s->ctl;
    if (!c) return;
    s->ctl = NULL;
    c->s = NULL;
    c->agent = NULL;
    if (!c->sent) free(c); /* nothing was asked: the call ended first */
}
