/*
 * fuzz_choices.c — the `--choices` script lines of `forkpoint write`
 * (cli_parse_command in src/cli/write.c), read exactly as write reads them:
 * fgets into an FP_MAX_TEXT buffer, one command per chunk.
 *
 * Why: scripts are files anyone can hand to the CLI (and tests and
 * benchmarks drive the CLI through them). Every line must become one
 * well-formed command or a "bad command" with a message, and the indexes of
 * the commands that choose must be in range for the code that uses them.
 */
#include "fuzz_common.h"
#include "cli/cli.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FILE *f = fmemopen((void *)data, size, "r");
    if (!f) return 0; /* fmemopen refuses size 0 */
    char buf[FP_MAX_TEXT];
    while (fgets(buf, sizeof buf, f)) {
        command c = cli_parse_command(buf);
        FZ_CHECK(memchr(c.text, 0, sizeof c.text) != NULL, "text not terminated");
        switch (c.kind) {
        case CMD_CHOOSE: case CMD_PREVIEW:
            FZ_CHECK(c.index >= 0 && c.index < 1000000, "index %d", c.index);
            break;
        case CMD_UNTIL:
            FZ_CHECK(c.index >= 0 && c.index < 1000000 && c.words >= 0 && c.words <= 1000000,
                     "index %d words %d", c.index, c.words);
            break;
        case CMD_BAD:
            FZ_CHECK(c.index == -1 || (c.index == -2 && c.text[0]), "bad command with index %d", c.index);
            break;
        case CMD_TYPE: case CMD_PREFIX: case CMD_UNDO: case CMD_CONTINUE: case CMD_QUIT: case CMD_EOF:
            break;
        default:
            FZ_CHECK(0, "unknown kind %d", (int)c.kind);
        }
    }
    fclose(f);
    return 0;
}
