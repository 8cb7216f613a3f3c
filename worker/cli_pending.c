/* cli_pending.c: TEMPORARY: commands whose modules are still being written. */
#include <stdio.h>
#include "cli.h"

int iw_cli_replay(int argc, char **argv)
{
    fprintf(stderr, "invoice-worker replay: not available in this build yet\n");
    return 2;
}
