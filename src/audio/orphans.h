/* Recordings of calls an earlier run left live (killed mid-call): found by CallSid at
 * start-up on the recorder's writer, after its repair, so the calls can be ended with
 * them attached. Not for recordings of this run. */
#ifndef CS_ORPHANS_H
#define CS_ORPHANS_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "audio/recorder.h"

typedef struct cs_orphan {
    char name[64];       /* in: the CallSid */
    char path[PATH_MAX]; /* out: its newest file, <name>.wav or <name>-N.wav, repaired; ""
                            if there is none or it cannot be read */
    uint64_t frames;     /* out: its length at 8 kHz */
} cs_orphan;

/* On the loop, with `found` filled in (and sorted by name). */
typedef void (*cs_orphans_fn)(void *data, cs_orphan *found, size_t n);

/* Looks up the recordings named in found[0..n) on the writer of `r`; `fn` runs on the
 * loop afterwards. `found` must stay valid until then. 0 or -ENOMEM. */
int cs_orphans_find(cs_recorders *r, cs_orphan *found, size_t n, cs_orphans_fn fn, void *data);

#endif
