/* libFuzzer target for replay's export reader and schedule (tools/sim/replay_export.c):
 * any input is read from a buffer of exactly its size; what is taken must lie inside the
 * bounds (keys in time order and in number, audio as long as it says, strings within
 * their fields), and a schedule cut from it must give each frame and each key once,
 * in order. */
#include "core/err.h"
#include "fuzz.h"
#include "sim/sim_int.h"

#define FRAMES_CHECKED 2000 /* of a schedule, at most: the rest is the same arithmetic */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *json = fuzz_copy(data, size, 0);
    sim_export e;
    char err[256];
    int rc = sim_export_parse(json, size, &e, err, sizeof err);
    fuzz_check(rc == 0 || rc == CS_EPARSE || rc == CS_ELIMIT);
    free(json);
    if (rc < 0) {
        fuzz_check(!e.ulaw && !e.keys && !e.segs && strlen(err) < sizeof err);
        return 0;
    }
    fuzz_check(strlen(e.call_sid) == 34 && strlen(e.from) <= SIM_REPLAY_FIELD_MAX &&
               strlen(e.to) <= SIM_REPLAY_FIELD_MAX);
    fuzz_check(e.nkeys <= SIM_REPLAY_KEYS_MAX && e.nsegs <= SIM_REPLAY_SEGS_MAX);
    for (size_t i = 0; i < e.nkeys; i++) {
        fuzz_check(e.keys[i].at_ms <= SIM_REPLAY_MAX_MS &&
                   strchr("0123456789*#ABCD", e.keys[i].digit));
        fuzz_check(i == 0 || e.keys[i - 1].at_ms <= e.keys[i].at_ms);
    }
    fuzz_check(e.nulaw <= SIM_REPLAY_MAX_MS * 8 && (e.ulaw || !e.nulaw));
    sim_replay r;
    if (sim_replay_cut(&r, &e, 0, 0) == 0) {
        uint8_t frame[SIM_FRAME_BYTES];
        size_t next = 0, sent = 0;
        uint64_t n = r.frames < FRAMES_CHECKED ? r.frames : FRAMES_CHECKED;
        for (uint64_t k = 0; k < n; k++) {
            sim_replay_frame(&r, k, frame);
            while (sim_replay_key(&r, &next, k)) sent++;
        }
        fuzz_check(sent <= e.nkeys && next <= e.nkeys);
        if (r.frames <= FRAMES_CHECKED) fuzz_check(sent == e.nkeys); /* every key within */
    }
    sim_export_free(&e);
    return 0;
}
