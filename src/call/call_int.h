/* Shared by the files of the call layer only. */
#ifndef CS_CALL_INT_H
#define CS_CALL_INT_H

#include "call/call.h"

#define DETAIL_MAX 16384 /* event detail JSON */

/* Tells every observer that has `fn`. */
#define NOTIFY(calls, fn, ...)                                                                     \
    do {                                                                                           \
        for (size_t i_ = 0; i_ < (calls)->nobservers; i_++) {                                      \
            const cs_call_observer *o_ = &(calls)->observers[i_];                                  \
            if (o_->fn) o_->fn(o_->data, __VA_ARGS__);                                             \
        }                                                                                          \
    } while (0)

/* Agents' call control (agent_control.c): sent once the stream is quiet (the tick), let
 * go of when the agent closes. */
void cs_talk_control_due(cs_stream *s);
void cs_talk_control_detach(cs_stream *s);

#endif
