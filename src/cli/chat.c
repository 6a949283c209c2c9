/*
 * chat.c — `forkpoint chat`: a dialogue in the terminal, either side
 * co-written with forks.
 *
 * The core does the dialogue (fp_dialogue_*: the template, the turns, undo
 * across them, the log with turn and role); this file reads commands and
 * shows what happens. The options are `forkpoint write`'s (cli_write_opts:
 * one parser for the sampler and the cloud) plus --system and
 * --chat-template; the fork commands are write's script lines
 * (cli_parse_command), and a few lines drive the conversation:
 *
 *   say TEXT   the person's message, written outright
 *   me         the person's message co-written: the model predicts it
 *   reply      the assistant's reply, co-written (steer the model)
 *   end        end the open turn here
 *   3 p3 p3.2 t WORD prefix AB c   decide the open turn's fork (as in write)
 *   u          undo (inside the turn, then back into the turn before)
 *   q          quit
 *
 * A turn also ends by itself at the model's end-of-turn token (or
 * --max-tokens). Commands come from --choices FILE|- or, on a terminal, are
 * typed one per line with the open fork shown above the prompt (the raw
 * one-key mode of `write` is not here yet). Committed messages are printed
 * to stdout as "role: content"; --json writes every decision as a JSON line
 * with its turn and role.
 *
 * Exit codes as write's: 0 done, 1 the model or engine failed, 2 bad input,
 * 3 the script ended while a turn was open at a fork.
 */
#include "cli/cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f) {
    fputs("usage: forkpoint chat [options]   (and every option of forkpoint write but --prompt)\n"
          "  --system TEXT         the system prompt\n"
          "  --chat-template NAME  a template llama.cpp knows (chatml, llama3, phi3, gemma, ...);\n"
          "                        default: the model's own (tokenizer.chat_template)\n"
          "  --choices FILE|-      read commands from a script instead of the terminal\n"
          "  --json FILE|-         write every decision as a JSON line with its turn and role\n"
          "commands: say TEXT · me (your message, predicted) · reply (the model's, steered) · end ·\n"
          "          3 · p3 · p3.2 · t WORD · prefix AB · c · u (undo) · q\n", f);
}

/* Prints the open turn's fork for a person typing commands. */
static void show_fork(FILE *ui, fp_dialogue *d) {
    fp_session *s = fp_dialogue_session(d);
    const fp_fork *f = s ? fp_session_fork(s) : NULL;
    fprintf(ui, "%s (writing): %s\n", fp_dialogue_turn_role(d), fp_dialogue_turn_text(d));
    for (int32_t i = 0; f && i < f->n_candidates; i++)
        fprintf(ui, "  %d %s%s  (%.0f%%) %s\n", i + 1, f->candidates[i].is_eog ? "[end]" : "", f->candidates[i].text,
                100.0 * f->candidates[i].prob, f->candidates[i].preview);
}

/* Writes the decisions not yet written. */
static void flush_events(FILE *out, const fp_dialogue *d, int32_t *written) {
    if (!out) return;
    int32_t n = fp_dialogue_n_events(d);
    if (*written > n) *written = n;   /* an undo across a turn took some back */
    for (; *written < n; (*written)++) {
        char *j = fp_dialogue_event_json(d, *written);
        if (j) { fprintf(out, "%s\n", j); free(j); }
    }
    fflush(out);
}

/* Commits a turn whose session has ended, and prints it. */
static fp_status settle(fp_dialogue *d, FILE *out, int32_t *printed, fp_error *err) {
    fp_session *s = fp_dialogue_session(d);
    if (s && fp_session_state(s) == FP_STATE_ENDED) {
        fp_status st = fp_dialogue_end_turn(d, err);
        if (st != FP_OK) return st;
    }
    if (*printed > fp_dialogue_n_messages(d)) *printed = fp_dialogue_n_messages(d);
    for (; *printed < fp_dialogue_n_messages(d); (*printed)++) {
        fp_chat_message m = fp_dialogue_message(d, *printed);
        fprintf(out, "%s: %s\n", m.role, m.content);
    }
    fflush(out);
    return FP_OK;
}

int cli_chat(int argc, char **argv) {
    const char *system = NULL, *tmpl = NULL;
    /* chat's own options out; the rest are write's */
    char **rest = malloc(sizeof(char *) * (size_t)(argc + 1));
    int n_rest = 0;
    if (!rest) { fprintf(stderr, "forkpoint chat: out of memory\n"); return 1; }
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { usage(stdout); free(rest); return 0; }
        if (!strcmp(argv[i], "--prompt")) { fprintf(stderr, "forkpoint chat: no --prompt in a chat; use --system, or 'say TEXT'\n"); free(rest); return 2; }
        bool own = !strcmp(argv[i], "--system") || !strcmp(argv[i], "--chat-template");
        if (own && i + 1 >= argc) { fprintf(stderr, "forkpoint chat: %s needs a value\n", argv[i]); free(rest); return 2; }
        if (own) { *(argv[i][2] == 's' ? &system : &tmpl) = argv[i + 1]; i++; continue; }
        rest[n_rest++] = argv[i];
    }
    write_opts o = {0};
    int rc = cli_write_opts(n_rest, rest, &o);
    free(rest);
    if (rc) return rc;
    if (o.db || o.profile || o.lora || o.steer) {
        fprintf(stderr, "forkpoint chat: --db, --profile, --lora and --steer are not available in chat yet\n");
        return 2;
    }
    fp_error err = {0};
    if (fp_settings_validate(&o.st, &err) != FP_OK) { fprintf(stderr, "forkpoint chat: %s\n", err.message); return 2; }

    fp_model *model = NULL;
    fp_engine *engine = NULL;
    fp_dialogue *d = NULL;
    FILE *script = NULL, *events = NULL;
    /* --ctx as in write: the window asked for, and room for a fork's branches beside it */
    uint32_t n_ctx = o.ctx > 0 ? (uint32_t)(o.ctx + fp_settings_branch_cells(&o.st)) : 0;
    rc = cli_load(o.model_path, o.hf, o.models_dir, o.rpc, o.verbose, o.threads, n_ctx, &o.be, &model, &engine);
    if (rc) return rc;
    bool person = !o.choices && isatty(STDIN_FILENO);
    FILE *ui = stderr;
    script = !o.choices || !strcmp(o.choices, "-") ? stdin : fopen(o.choices, "r");
    if (!script) {
        fprintf(stderr, "forkpoint chat: cannot open choices file %s: %s\n", o.choices, strerror(errno));
        rc = 2;
        goto out;
    }
    if (o.json && !(events = !strcmp(o.json, "-") ? stdout : fopen(o.json, "w"))) {
        fprintf(stderr, "forkpoint chat: cannot write %s: %s\n", o.json, strerror(errno));
        rc = 2;
        goto out;
    }
    if (!(d = fp_dialogue_new(engine, tmpl, system, &o.st, &err))) {
        fprintf(stderr, "forkpoint chat: %s\n", err.message);
        rc = err.code == FP_ERR_NOMEM ? 1 : 2;
        goto out;
    }
    int32_t written = 0, printed = 0, line_no = 0;
    char buf[FP_MAX_TEXT * 4];
    FILE *out = events == stdout ? stderr : stdout;
    settle(d, out, &printed, &err);   /* the system message */
    for (;;) {
        if (person) {
            if (fp_dialogue_session(d)) show_fork(ui, d);
            fputs(fp_dialogue_session(d) ? "> " : "(say TEXT · me · reply · u · q) > ", ui);
            fflush(ui);
        }
        if (!fgets(buf, sizeof buf, script)) {
            fp_session *s = fp_dialogue_session(d);
            if (!person && s && fp_session_state(s) == FP_STATE_AT_FORK) {
                fprintf(stderr, "forkpoint chat: the choices ended at a fork of the %s's turn (line %d); add a command or 'q'\n",
                        fp_dialogue_turn_role(d), line_no);
                rc = 3;
                goto out;
            }
            break;
        }
        line_no++;
        fp_status st = FP_OK;
        err.message[0] = 0;
        size_t n = strlen(buf);
        while (n && strchr("\r\n", buf[n - 1])) buf[--n] = 0;
        fp_session *s = fp_dialogue_session(d);
        fp_chooser by = person ? FP_BY_HUMAN : FP_BY_SCRIPT;
        if (!strncmp(buf, "say ", 4)) st = fp_dialogue_add(d, "user", buf + 4, &err);
        else if (!strcmp(buf, "me")) st = fp_dialogue_begin(d, "user", &err);
        else if (!strcmp(buf, "reply")) st = fp_dialogue_begin(d, "assistant", &err);
        else if (!strcmp(buf, "end")) st = fp_dialogue_end_turn(d, &err);
        else {
            command c = cli_parse_command(buf);
            if (c.kind == CMD_EOF) continue;
            if (c.kind == CMD_QUIT) break;
            if (c.kind == CMD_BAD) {
                if (c.index == -2) snprintf(err.message, sizeof err.message, "bad command %.200s", c.text);
                else snprintf(err.message, sizeof err.message, "unknown command \"%.200s\"", c.text);
                st = FP_ERR_ARG;
            } else if (c.kind == CMD_UNDO) st = fp_dialogue_undo(d, &err);
            else if (!s) { snprintf(err.message, sizeof err.message, "no turn is open: say TEXT, me or reply first"); st = FP_ERR_STATE; }
            else switch (c.kind) {
            case CMD_CHOOSE: st = fp_session_choose(s, c.index, false, by, &err); break;
            case CMD_PREVIEW: st = fp_session_choose(s, c.index, true, by, &err); break;
            case CMD_UNTIL: st = fp_session_choose_words(s, c.index, c.words, by, &err); break;
            case CMD_TYPE: st = fp_session_type_commit(s, c.text, by, &err); break;
            case CMD_PREFIX: st = fp_session_type_prefix(s, c.text, &err); break;
            case CMD_CONTINUE: st = fp_session_continue(s, by, &err); break;
            default: break;
            }
        }
        if (st == FP_OK) st = settle(d, out, &printed, &err);
        flush_events(events, d, &written);
        if (st != FP_OK) {
            bool input_error = st == FP_ERR_ARG || st == FP_ERR_STATE || st == FP_ERR_UTF8 || st == FP_ERR_EMPTY || st == FP_ERR_CONTEXT;
            if (person && input_error) { fprintf(ui, "%s\n", err.message); continue; }
            fprintf(stderr, "forkpoint chat: %s\n", err.message);
            if (!person) fprintf(stderr, "forkpoint chat: (at line %d of the choices)\n", line_no);
            rc = input_error ? 2 : 1;
            goto out;
        }
    }
    flush_events(events, d, &written);
    rc = 0;
out:
    fp_dialogue_free(d);
    if (events && events != stdout) fclose(events);
    if (script && script != stdin) fclose(script);
    fp_engine_free(engine);
    fp_model_free(model);
    return rc;
}
