/* main.c: `doppler-gl <subcommand> [options]`: finds the subcommand registered by src/cli/cmd_*.c. */
#include <malloc.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "core/version.h"

static void print_help(FILE *out)
{
    const struct dg_command **cmds;
    int n = dg_command_list(&cmds);
    fprintf(out,
            "Usage: doppler-gl <command> [options]\n"
            "       doppler-gl --help | --version\n\n"
            "Runs language models on a GPU through OpenGL ES 3.1 compute shaders (headless EGL).\n\n"
            "Commands:\n");
    for (int i = 0; i < n; i++)
        fprintf(out, "  %-14s %s\n", cmds[i]->name, cmds[i]->summary);
    fprintf(out,
            "\nOptions:\n"
            "  -h, --help     show this help (or a command's, after the command)\n"
            "  -V, --version  print the version\n\n"
            "Exit status: 0 success, 1 runtime error, 2 usage error, 3 no GL device, 4 verification failed.\n"
            "See doppler-gl(1) for everything else.\n");
}

int main(int argc, char **argv)
{
    /* Mesa's llvmpipe with big shaders page-faults heavily under glibc's default mmap threshold
     * (measured 5x slower, notes/gles-facts.md); keep large blocks on the heap. */
    mallopt(M_MMAP_THRESHOLD, 64 << 20);
    mallopt(M_TRIM_THRESHOLD, 128 << 20);

    if (argc < 2) {
        print_help(stderr);
        return 2;
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0) {
        print_help(stdout);
        return 0;
    }
    if (strcmp(argv[1], "-V") == 0 || strcmp(argv[1], "--version") == 0) {
        printf("doppler-gl %s\n", DG_VERSION);
        return 0;
    }
    const struct dg_command *cmd = dg_command_find(argv[1]);
    if (!cmd) {
        fprintf(stderr, "doppler-gl: '%s' is not a command. Try 'doppler-gl --help'.\n", argv[1]);
        return 2;
    }
    return cmd->run(argc - 1, argv + 1);
}
