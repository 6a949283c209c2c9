/*
 * cli.h — what the subcommands of the `forkpoint` binary share.
 */
#ifndef FP_CLI_H
#define FP_CLI_H

#include "forkpoint.h"
#include "forkpoint_learn.h"

/* Resolves (flag, $FORKPOINT_MODEL, cache, ../shared, download) and loads the
 * model and an engine; prints a one-line error and returns non-zero on failure. */
int cli_load(const char *model_path, bool verbose, int threads, fp_model **model, fp_engine **engine);

int cli_write(int argc, char **argv);
int cli_export(int argc, char **argv);
int cli_profile(int argc, char **argv);
int cli_learn(int argc, char **argv);

#endif
