/* callstream command line: serve | sim | replay | version. Dispatch only; no logic here. */
#include <stdio.h>
#include <string.h>

#include "core/config.h"
#include "http/gateway.h"
#include "sim/sim.h"

static void usage(FILE *out)
{
    fputs("usage: callstream <command> [options]\n"
          "\n"
          "commands:\n"
          "  serve     run the gateway (settings below)\n"
          "  sim       Twilio simulator and load generator (`callstream sim --help`)\n"
          "  replay    stream a stored call back into a gateway (`callstream replay --help`)\n"
          "  user      add, list or delete users of the pages and API (`callstream user`)\n"
          "  token     create, list or revoke API tokens (`callstream token`)\n"
          "  version   print the version\n"
          "\n",
          out);
    cs_config_usage(out);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "serve") == 0) return cs_gateway_main(argc - 1, argv + 1);
    if (strcmp(cmd, "sim") == 0) return cs_sim_main(argc - 1, argv + 1);
    if (strcmp(cmd, "replay") == 0) return cs_replay_main(argc - 1, argv + 1);
    if (strcmp(cmd, "user") == 0) return cs_admin_user(argc - 1, argv + 1);
    if (strcmp(cmd, "token") == 0) return cs_admin_token(argc - 1, argv + 1);
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("callstream %s\n", CS_VERSION);
        return 0;
    }
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "callstream: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
