#include "sim/sim.h"

#include <stdio.h>

int cs_sim_main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fputs("callstream sim: not built yet\n", stderr);
    return 2;
}
