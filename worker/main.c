/* main.c: the invoice-worker command line. */
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        printf("invoice-worker %s\n", IW_VERSION);
        return 0;
    }
    fprintf(stderr, "usage: invoice-worker --version\n");
    return 2;
}
