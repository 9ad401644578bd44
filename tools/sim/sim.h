/* callstream sim: a Twilio simulator and load generator (see tools/sim/README.md). */
#ifndef CS_SIM_H
#define CS_SIM_H

#include <stddef.h>
#include <stdint.h>

/* `callstream sim …`: returns the process exit code. */
int cs_sim_main(int argc, char **argv);
/* `callstream replay …` (replay.c): returns the process exit code. */
int cs_replay_main(int argc, char **argv);
/* The μ-law a call sends for `wav` (any WAV, mixed to mono, resampled to 8 kHz), for
 * tests that check what was recorded: *ulaw is malloc'd (caller frees). 0, or a negative
 * code after a line on stderr. */
int cs_sim_audio(const char *wav, uint8_t **ulaw, size_t *n);

#endif
