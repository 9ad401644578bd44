/* callstream sim: a Twilio simulator and load generator (see tools/sim/README.md). */
#ifndef CS_SIM_H
#define CS_SIM_H

/* `callstream sim …`: returns the process exit code. */
int cs_sim_main(int argc, char **argv);

#endif
