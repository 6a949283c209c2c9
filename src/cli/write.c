/*
 * write.c — `forkpoint write`: the terminal front end.
 *
 * One loop, whoever decides: at every fork a *chooser* returns a command
 * (choose N, take N with its preview or its first K preview words, type a word, narrow by a prefix, undo,
 * continue, quit). The keyboard chooser reads keys in raw mode and redraws
 * the screen; the script chooser reads the same commands from a file or
 * stdin, so tests and benchmarks run exactly the code a person runs.
 *
 * Script format, one command per line ('#' starts a comment):
 *   3          choose candidate 3 (1-based, as shown on screen)
 *   p3         choose candidate 3 with its whole preview
 *   p3.2       choose candidate 3 with the first 2 words of its preview; a
 *              fork opens at the 3rd (p3.0: the word alone, then a fork)
 *   t WORD     commit your own text
 *   prefix AB  narrow the cloud to words starting with AB ("prefix" alone clears it)
 *   u          undo (back to the previous fork)
 *   c          let the model continue (Enter)
 *   q          quit
 *
 * Exit codes: 0 done, 1 the model or engine failed, 2 bad input (usage, a
 * bad prompt, an out-of-range choice, a malformed command), 3 the script
 * ended while a fork was still open.
 */
#include "cli/cli.h"
#include "forkpoint_store.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_PROMPT "Once upon a time, there was a little"

/* command, cmd_kind and write_opts are in cli/cli.h (the fuzz harnesses call the parsers) */

/* ------------------------------------------------------------ options */

static void usage(FILE *f) {
    fputs("usage: forkpoint write [options]\n"
          "  --model PATH          GGUF model (default: stories260K, resolved automatically)\n"
          "  --hf OWNER/REPO[:Q]   download a GGUF model from the Hugging Face hub, picked by its\n"
          "                        quantization Q (default Q4_K_M), into the cache, and use it\n"
          "  --models-dir DIR      where --hf downloads go (default: the cache's models folder)\n"
          "  --prompt TEXT         the start of the text (default: \"" DEFAULT_PROMPT "\")\n"
          "  --choices FILE|-      read decisions from a script instead of the keyboard\n"
          "  --json FILE|-         write every fork event as a JSON line\n"
          "  --k N                 candidates per fork (default 8)\n"
          "  --lookahead N         preview length in tokens (default 8)\n"
          "  --granularity G       token | word | phrase (default word)\n"
          "  --entropy BITS        fork when entropy >= BITS (default 2.5; 0 disables)\n"
          "  --top1 P              fork when top-1 probability < P (default 0.35; 0 disables)\n"
          "  --margin M            fork when top1 - top2 < M (default 0 = off)\n"
          "  --gap N               at least N tokens between forks (default 4)\n"
          "  --per-sentence N      at most N forks per sentence (default 2; 0 = unlimited)\n"
          "  --temp T --top-k N --top-p P --min-p P --repeat-penalty R   sampler chain\n"
          "  --sample --seed N     sample between forks (default greedy), seeded\n"
          "  --max-tokens N        stop after N generated tokens (default 200)\n"
          "  --threads N           CPU threads (default: all)\n"
          "  --ctx N               the model's context window in tokens (default: the model's, up to 4096);\n"
          "                        when the text outgrows it, the start and the newest part stay in view\n"
          "  --grammar FILE        a GBNF grammar (llama.cpp's, rule root) every candidate, preview and\n"
          "                        continuation keeps to\n"
          "  --verbose             let llama.cpp log to stderr\n"
          "  --rpc HOST:PORT,...   put the model's layers on these RPC workers (forkpoint worker;\n"
          "                        unauthenticated: loopback or a private network, docs/deploy.md)\n"
          "  --db PATH             log every decision to this database (SQLite file or postgresql:// URL)\n"
          "  --profile NAME        learn NAME's preferences (needs --db): clouds in their order,\n"
          "                        their logit bias between forks\n"
          "  --auto-resolve        with --profile: forks the preferences are sure of decide themselves\n"
          "  --adapt               with --profile: start from the settings NAME's habits ask for (more\n"
          "                        candidates if they keep typing, longer previews if they point into\n"
          "                        them, more forks if they repair; fp_prefs_adapt_settings)\n"
          CLI_BACKEND_HELP
          "  --lora PATH           apply a LoRA adapter (see forkpoint learn --help)\n"
          "  --lora-scale S        its strength (default: the scale learn chose, else 1; 0 = off)\n"
          "  --steer PATH          apply a steering vector (forkpoint learn --steer; llama.cpp control vector)\n"
          "  --steer-strength S    its strength (default: the one learn chose, else 1)\n"
          "keys: 1-9 choose · p then 1-9 take with preview · w then 1-9 then 0-9 take with the first\n"
          "      K preview words (a fork opens after them) · / type a word · Backspace undo · Enter continue · q quit\n"
          "script lines: 3 · p3 (with preview) · p3.2 (with its first 2 preview words, then a fork) ·\n"
          "      t WORD · prefix AB · u · c · q\n", f);
}

bool cli_parse_num(const char *s, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi)) return false;   /* NaN fails too */
    *out = v;
    return true;
}

/* Returns 0 on success, 2 on a usage error (message printed). */
int cli_write_opts(int argc, char **argv, write_opts *o) {
    o->st = fp_default_settings();
    o->lora_scale = NAN;   /* the adapter's own recommendation */
    o->steer_strength = NAN;
    o->prompt = DEFAULT_PROMPT;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        double d;
#define NEED() do { if (!v) { fprintf(stderr, "forkpoint write: %s needs a value\n", a); return 2; } i++; } while (0)
#define NUM(lo, hi) do { NEED(); if (!cli_parse_num(v, lo, hi, &d)) { fprintf(stderr, "forkpoint write: bad value for %s: %s\n", a, v); return 2; } } while (0)
        int bf = cli_backend_flag("forkpoint write", a, v, &o->be);
        if (bf < 0) return 2;
        if (bf > 0) { i++; continue; }
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); exit(0); }
        else if (!strcmp(a, "--model")) { NEED(); o->model_path = v; }
        else if (!strcmp(a, "--hf")) { NEED(); o->hf = v; }
        else if (!strcmp(a, "--models-dir")) { NEED(); o->models_dir = v; }
        else if (!strcmp(a, "--prompt")) { NEED(); o->prompt = v; }
        else if (!strcmp(a, "--choices")) { NEED(); o->choices = v; }
        else if (!strcmp(a, "--json")) { NEED(); o->json = v; }
        else if (!strcmp(a, "--k")) { NUM(1, 64); o->st.k = (int)d; if (o->st.beam_width < o->st.k) o->st.beam_width = o->st.k; }
        else if (!strcmp(a, "--lookahead")) { NUM(0, FP_MAX_PREVIEW); o->st.lookahead = (int)d; }
        else if (!strcmp(a, "--granularity")) {
            NEED();
            if (!strcmp(v, "token")) o->st.granularity = FP_GRAN_TOKEN;
            else if (!strcmp(v, "word")) o->st.granularity = FP_GRAN_WORD;
            else if (!strcmp(v, "phrase")) o->st.granularity = FP_GRAN_PHRASE;
            else { fprintf(stderr, "forkpoint write: granularity must be token, word or phrase\n"); return 2; }
        }
        else if (!strcmp(a, "--entropy")) { NUM(0, 64); o->st.fork_entropy_bits = (float)d; }
        else if (!strcmp(a, "--top1")) { NUM(0, 1.01); o->st.fork_top1_below = (float)d; }
        else if (!strcmp(a, "--margin")) { NUM(0, 1.01); o->st.fork_margin_below = (float)d; }
        else if (!strcmp(a, "--gap")) { NUM(0, 1e6); o->st.min_gap_tokens = (int)d; }
        else if (!strcmp(a, "--per-sentence")) { NUM(0, 1e6); o->st.max_forks_per_sentence = (int)d; }
        else if (!strcmp(a, "--temp")) { NUM(0.01, 100); o->st.temperature = (float)d; }
        else if (!strcmp(a, "--top-k")) { NUM(0, 1e9); o->st.top_k = (int)d; }
        else if (!strcmp(a, "--top-p")) { NUM(0.01, 1); o->st.top_p = (float)d; }
        else if (!strcmp(a, "--min-p")) { NUM(0, 0.99); o->st.min_p = (float)d; }
        else if (!strcmp(a, "--repeat-penalty")) { NUM(0.01, 10); o->st.repeat_penalty = (float)d; }
        else if (!strcmp(a, "--sample")) o->st.sample_auto = true;
        else if (!strcmp(a, "--seed")) { NUM(0, 4294967295.0); o->st.seed = (uint32_t)d; }
        else if (!strcmp(a, "--max-tokens")) { NUM(0, 1e7); o->st.max_tokens = (int)d; }
        else if (!strcmp(a, "--threads")) { NUM(1, 512); o->threads = (int)d; }
        else if (!strcmp(a, "--ctx")) { NUM(16, 1 << 20); o->ctx = (int)d; }
        else if (!strcmp(a, "--grammar")) { NEED(); o->grammar = v; }
        else if (!strcmp(a, "--verbose")) o->verbose = true;
        else if (!strcmp(a, "--rpc")) {
            NEED();
            fp_rpc_endpoint eps[FP_RPC_MAX];
            int n;
            fp_error err = {0};
            if (fp_rpc_parse(v, eps, FP_RPC_MAX, &n, &err) != FP_OK) { fprintf(stderr, "forkpoint write: %s\n", err.message); return 2; }
            o->rpc = v;
        }
        else if (!strcmp(a, "--db")) { NEED(); o->db = v; }
        else if (!strcmp(a, "--profile")) { NEED(); o->profile = v; }
        else if (!strcmp(a, "--auto-resolve")) o->auto_resolve = true;
        else if (!strcmp(a, "--adapt")) o->adapt = true;
        else if (!strcmp(a, "--lora")) { NEED(); o->lora = v; }
        else if (!strcmp(a, "--lora-scale")) { NUM(-16, 16); o->lora_scale = (float)d; }
        else if (!strcmp(a, "--steer")) { NEED(); o->steer = v; }
        else if (!strcmp(a, "--steer-strength")) { NUM(-64, 64); o->steer_strength = (float)d; }
        else { fprintf(stderr, "forkpoint write: unknown option %s (see --help)\n", a); return 2; }
#undef NEED
#undef NUM
    }
    if (o->hf && o->model_path) { fprintf(stderr, "forkpoint write: give --model or --hf, not both\n"); return 2; }
    if (o->profile && !o->db) { fprintf(stderr, "forkpoint write: --profile needs --db\n"); return 2; }
    if (o->auto_resolve && !o->profile) { fprintf(stderr, "forkpoint write: --auto-resolve needs --profile\n"); return 2; }
    if (o->adapt && !o->profile) { fprintf(stderr, "forkpoint write: --adapt needs --profile\n"); return 2; }
    return 0;
}

/* ------------------------------------------------------------ commands */

/* Parses one script line. Blank lines and comments return CMD_EOF with index -1 (skip). */
command cli_parse_command(char *line) {
    command c = { .kind = CMD_BAD, .index = -1 };
    char *hash = strchr(line, '#');
    if (hash) *hash = 0;
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' ' || line[n - 1] == '\t')) line[--n] = 0;
    while (*line == ' ' || *line == '\t') line++;
    if (!*line) { c.kind = CMD_EOF; return c; }
    double d;
    if (cli_parse_num(line, 1, 1e6, &d) && d == (int)d) { c.kind = CMD_CHOOSE; c.index = (int)d - 1; return c; }
    if (line[0] == 'p' && line[1] >= '0' && line[1] <= '9' && strchr(line, '.')) {
        /* pN.K: candidate N with its first K preview words */
        char *dot = strchr(line, '.');
        *dot = 0;
        double k;
        bool okn = cli_parse_num(line + 1, 1, 1e6, &d) && d == (int)d;
        bool okk = dot[1] >= '0' && dot[1] <= '9' && cli_parse_num(dot + 1, 0, 1e6, &k) && k == (int)k;
        *dot = '.';
        if (okn && okk) { c.kind = CMD_UNTIL; c.index = (int)d - 1; c.words = (int)k; return c; }
        snprintf(c.text, sizeof c.text, "\"%.80s\": want pN.K, N a candidate (1, 2, ...) and K a count of preview words (0, 1, ...)", line);
        c.index = -2; /* malformed, text is the message */
        return c;
    }
    if (line[0] == 'p' && cli_parse_num(line + 1, 1, 1e6, &d) && d == (int)d) { c.kind = CMD_PREVIEW; c.index = (int)d - 1; return c; }
    if (!strcmp(line, "u") || !strcmp(line, "undo")) { c.kind = CMD_UNDO; return c; }
    if (!strcmp(line, "c") || !strcmp(line, "continue")) { c.kind = CMD_CONTINUE; return c; }
    if (!strcmp(line, "q") || !strcmp(line, "quit")) { c.kind = CMD_QUIT; return c; }
    if (!strncmp(line, "t ", 2) || !strncmp(line, "type ", 5)) {
        c.kind = CMD_TYPE;
        snprintf(c.text, sizeof c.text, "%s", line + (line[1] == ' ' ? 2 : 5));
        return c;
    }
    if (!strcmp(line, "prefix") || !strncmp(line, "prefix ", 7)) {
        c.kind = CMD_PREFIX;
        snprintf(c.text, sizeof c.text, "%s", line[6] ? line + 7 : "");
        return c;
    }
    snprintf(c.text, sizeof c.text, "%s", line);
    return c;
}

/* Next command from the script; blank and comment lines are skipped. */
static command script_next(FILE *f, int *line_no) {
    char buf[FP_MAX_TEXT];
    while (fgets(buf, sizeof buf, f)) {
        (*line_no)++;
        command c = cli_parse_command(buf);
        if (c.kind == CMD_EOF) continue;
        return c;
    }
    command eof = { .kind = CMD_EOF };
    return eof;
}

/* ------------------------------------------------------------ display */

static struct termios g_saved_tty;
static bool g_raw;
static FILE *g_ui; /* the screen: the terminal itself, so stdout can carry the final text */

void cli_tty_restore(void) {
    if (g_raw) { tcsetattr(STDIN_FILENO, TCSAFLUSH, &g_saved_tty); g_raw = false; }
}

static void tty_raw(void) {
    if (tcgetattr(STDIN_FILENO, &g_saved_tty) != 0) return;
    struct termios t = g_saved_tty;
    t.c_lflag &= (tcflag_t)~(ICANON | ECHO);
    t.c_cc[VMIN] = 1;
    t.c_cc[VTIME] = 0;
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &t);
    g_raw = true;
    atexit(cli_tty_restore);
}

/* The screen's width in columns: the terminal's, else $COLUMNS, else 80. */
static int screen_cols(void) {
    struct winsize ws;
    if (g_ui && ioctl(fileno(g_ui), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
    const char *c = getenv("COLUMNS");
    int n = c ? atoi(c) : 0;
    return n > 0 ? n : 80;
}

/* Prints t[from..to) with style, starting a new line at each break offset
 * in it (*next walks the sorted breaks). */
static void put_wrapped(const char *t, size_t from, size_t to, const char *style, const size_t *breaks, int32_t nb,
                        int32_t *next) {
    while (*next < nb && breaks[*next] < from) (*next)++;
    while (from < to) {
        if (*next < nb && breaks[*next] == from) { fputc('\n', g_ui); (*next)++; continue; }
        size_t end = *next < nb && breaks[*next] < to ? breaks[*next] : to;
        fprintf(g_ui, "%s%.*s\x1b[0m", style, (int)(end - from), t + from);
        from = end;
    }
}

/* Prints the text: prompt dim, automatic text plain, chosen text bold;
 * lines break before a word that would not fit, counted in columns (wide
 * characters take two: width.c). */
static void draw_text(const fp_session *s) {
    const char *t = fp_session_text(s);
    size_t len = fp_session_text_len(s), pl = fp_session_prompt_len(s);
    static size_t breaks[4096];
    int32_t nb = cli_wrap(t, len, screen_cols(), breaks, 4096), next = 0;
    put_wrapped(t, 0, pl, "\x1b[2m", breaks, nb, &next);
    int32_t n = fp_session_n_positions(s);
    size_t off = pl;
    for (int32_t i = 0; i < n; i++) {
        const fp_position *p = fp_session_position(s, i);
        size_t nx = i + 1 < n ? fp_session_position_offset(s, i + 1) : len;
        if (nx > len) nx = len;
        if (nx < off) continue;
        put_wrapped(t, off, nx, p->by != FP_BY_AUTO ? "\x1b[1;36m" : "", breaks, nb, &next);
        off = nx;
    }
    fprintf(g_ui, "\n");
}

/* Prints a candidate or a preview on one line: a line break shows as a
 * mark, a tab or carriage return as a space, so the list stays a list.
 * Returns the columns it took. */
static int put_visible(const char *text) {
    int w = 0;
    for (const char *q = text; *q;) {
        size_t run = strcspn(q, "\n\t\r");
        fwrite(q, 1, run, g_ui);
        w += cli_text_width(q, run);
        q += run;
        if (!*q) break;
        fputs(*q == '\n' ? "\u21b5" : " ", g_ui);
        w++;
        q++;
    }
    return w;
}

/* Prints a candidate's text padded to w columns (not bytes: "девочка" is 14
 * bytes and 7 columns, "女孩" 6 bytes and 4 columns). */
static void put_padded(const char *text, int w) {
    for (int cw = put_visible(text); cw < w; cw++) fputc(' ', g_ui);
}

/* The w key's second step: candidate `pick`'s preview with its gaps numbered
 * (press the number where the new fork should open). */
static void draw_gaps(const fp_model *m, const fp_candidate *c, int pick) {
    const int all = c->n_preview_words;
    int n = all > 9 ? 9 : all;
    fprintf(g_ui, "\n\x1b[1mw %d\x1b[0m: %s", pick + 1, c->text);
    for (int w = 0; w < n; w++) {
        size_t end = w + 1 < all ? (size_t)c->preview_word_byte[w + 1] : strlen(c->preview);
        fprintf(g_ui, " \x1b[1;33m%d\x1b[0m%.*s", w, (int)(end - (size_t)c->preview_word_byte[w]),
                c->preview + c->preview_word_byte[w]);
    }
    fprintf(g_ui, " \x1b[1;33m%d\x1b[0m\n", n);
    fprintf(g_ui, "   press the number where a new fork should open: the words before it are taken (0-%d, Esc cancels)\n", n);
}

static void draw_fork(const fp_fork *f, bool preview_mode, const char *typing) {
    fprintf(g_ui, "\n\x1b[2mfork %d · entropy %.2f bits · top-1 %.2f · %s\x1b[0m\n", f->id, f->unc.entropy_bits,
           f->unc.top1, fp_reason_name(f->reason));
    for (int32_t i = 0; i < f->n_candidates; i++) {
        const fp_candidate *c = &f->candidates[i];
        int bars = (int)(c->prob * 20 + 0.5f);
        fprintf(g_ui, " \x1b[1m%d\x1b[0m ", i + 1);
        put_padded(c->is_eog ? "[end]" : c->text, 14);
        fputc(' ', g_ui);
        for (int b = 0; b < 20; b++) fputs(b < bars ? "\u2588" : " ", g_ui);
        fprintf(g_ui, " %5.1f%%  \x1b[2m", c->prob * 100.0f);
        put_visible(c->preview);
        fputs("\x1b[0m\n", g_ui);
    }
    fprintf(g_ui, "   \x1b[2mother %5.1f%%\x1b[0m\n", f->other * 100.0f);
    if (typing) fprintf(g_ui, "\ntype a word: %s\x1b[2m_  (Enter commits, 1-9 picks, Esc cancels)\x1b[0m\n", typing);
    else if (preview_mode) fprintf(g_ui, "\n\x1b[1mp\x1b[0m: which candidate to take with its preview? (1-9)\n");
    else fprintf(g_ui, "\n\x1b[2m1-9 choose · p+digit with preview · w+digit+digit with some preview words · / type · Backspace undo · Enter continue · q quit\x1b[0m\n");
}

/* words_mode: 0 off, 1 waiting for the candidate, 2 waiting for the gap of candidate pick */
static void redraw_w(const fp_session *s, const fp_model *m, bool preview_mode, const char *typing, const char *msg,
                     int words_mode, int pick) {
    fprintf(g_ui, "\x1b[H\x1b[2J");
    draw_text(s);
    const fp_fork *f = fp_session_fork(s);
    if (f && words_mode == 1) {
        draw_fork(f, false, NULL);
        fprintf(g_ui, "\x1b[1mw\x1b[0m: which candidate to take with some of its preview words? (1-9, Esc cancels)\n");
    } else if (f && words_mode == 2 && pick < f->n_candidates) {
        draw_fork(f, false, NULL);
        draw_gaps(m, &f->candidates[pick], pick);
    } else if (f) draw_fork(f, preview_mode, typing);
    else fprintf(g_ui, "\n\x1b[2m(the end: %s) — Backspace undo · q quit\x1b[0m\n", fp_session_end_reason(s));
    if (msg && *msg) fprintf(g_ui, "\x1b[31m%s\x1b[0m\n", msg);
    fflush(g_ui);
}

static void redraw(const fp_session *s, bool preview_mode, const char *typing, const char *msg) {
    redraw_w(s, NULL, preview_mode, typing, msg, 0, 0);
}

/* Reads keys until a full command is formed; typing narrows the cloud live. */
static command keyboard_next(fp_session *s, const fp_model *m, char *msg) {
    command c = { .kind = CMD_BAD, .index = -1 };
    bool preview_mode = false, typing = false;
    int words_mode = 0, pick = 0;
    char typed[FP_MAX_TEXT] = "";
    redraw(s, false, NULL, msg);
    msg[0] = 0;
    for (;;) {
        unsigned char k;
        ssize_t r = read(STDIN_FILENO, &k, 1);
        if (r <= 0) { c.kind = CMD_QUIT; return c; }
        if (typing) {
            size_t n = strlen(typed);
            if (k == 27) { typing = false; typed[0] = 0; fp_session_type_prefix(s, "", NULL); }
            else if (k == '\r' || k == '\n') {
                if (n) { c.kind = CMD_TYPE; snprintf(c.text, sizeof c.text, "%s", typed); return c; }
            } else if (k == 127 || k == 8) {
                if (n) {
                    do typed[--n] = 0; while (n && ((unsigned char)typed[n] & 0xC0) == 0x80);
                    fp_session_type_prefix(s, typed, NULL);
                }
            } else if (k >= '1' && k <= '9') {
                c.kind = CMD_CHOOSE; c.index = k - '1'; return c;
            } else if (k >= 0x20 && n + 1 < sizeof typed) {
                typed[n] = (char)k; typed[n + 1] = 0;
                if (fp_utf8_valid(typed, n + 1)) fp_session_type_prefix(s, typed, NULL);
            }
            redraw(s, false, typing ? typed : NULL, NULL);
            continue;
        }
        if (words_mode == 1 && k >= '1' && k <= '9') {
            const fp_fork *f = fp_session_fork(s);
            if (f && k - '1' < f->n_candidates) { words_mode = 2; pick = k - '1'; redraw_w(s, m, false, NULL, NULL, 2, pick); }
            else { words_mode = 0; redraw(s, false, NULL, "no such candidate"); }
            continue;
        }
        if (words_mode == 2 && k >= '0' && k <= '9') { c.kind = CMD_UNTIL; c.index = pick; c.words = k - '0'; return c; }
        if (words_mode && k != 27) continue; /* only digits or Esc here */
        if (k >= '1' && k <= '9') { c.kind = preview_mode ? CMD_PREVIEW : CMD_CHOOSE; c.index = k - '1'; return c; }
        if (k == 'p') { preview_mode = !preview_mode; redraw(s, preview_mode, NULL, NULL); continue; }
        if (k == 'w' && fp_session_fork(s)) { preview_mode = false; words_mode = 1; redraw_w(s, m, false, NULL, NULL, 1, 0); continue; }
        if (k == '/' || k == 't') { typing = true; redraw(s, false, typed, NULL); continue; }
        if (k == 127 || k == 8) { c.kind = CMD_UNDO; return c; }
        if (k == '\r' || k == '\n') { c.kind = CMD_CONTINUE; return c; }
        if (k == 'q' || k == 4) { c.kind = CMD_QUIT; return c; }
        if (k == 27) { preview_mode = false; words_mode = 0; redraw(s, false, NULL, NULL); continue; }
    }
}

/* ------------------------------------------------------------ the loop */

static FILE *open_out(const char *path) {
    if (!strcmp(path, "-")) return stdout;
    return fopen(path, "w");
}

/* Writes the events not yet written. */
static void flush_events(FILE *out, const fp_session *s, int32_t *written) {
    if (!out) return;
    for (; *written < fp_session_n_events(s); (*written)++) {
        char *j = fp_fork_to_json(s, fp_session_event(s, *written));
        if (j) { fprintf(out, "%s\n", j); free(j); }
    }
    fflush(out);
}

int cli_write(int argc, char **argv) {
    write_opts o = {0};
    int rc = cli_write_opts(argc, argv, &o);
    if (rc) return rc;
    fp_error err = {0};
    if (fp_settings_validate(&o.st, &err) != FP_OK) { fprintf(stderr, "forkpoint write: %s\n", err.message); return 2; }

    fp_model *model = NULL;
    fp_engine *engine = NULL;
    fp_session *s = NULL;
    fp_store *store = NULL;
    fp_prefs *prefs = NULL;
    char sha[65] = "", sid[17] = "";
    fp_decision_meta meta;
    int32_t logged = 0;
    /* the window the person asked for, and room for a fork's branches beside it */
    uint32_t n_ctx = o.ctx > 0 ? (uint32_t)(o.ctx + fp_settings_branch_cells(&o.st)) : 0;
    rc = cli_load(o.model_path, o.hf, o.models_dir, o.rpc, o.verbose, o.threads, n_ctx, &o.be, &model, &engine);
    if (rc) return rc;
    if (o.lora) {
        fp_error lerr = {0};
        float scale = isnan(o.lora_scale) ? fp_lora_scale_hint(o.lora) : o.lora_scale;
        if (fp_engine_set_lora(engine, o.lora, scale, &lerr) != FP_OK) {
            fprintf(stderr, "forkpoint write: %s\n", lerr.message);
            fp_engine_free(engine); fp_model_free(model);
            return 2;
        }
    }
    fp_error rerr = {0};
    if (o.steer && fp_engine_set_steer(engine, NULL, 1.0f, &rerr) != FP_OK) {   /* a remote engine: its one line */
        fprintf(stderr, "forkpoint write: %s\n", rerr.message);
        fp_engine_free(engine); fp_model_free(model);
        return 2;
    }
    if (o.steer) {
        fp_error serr = {0};
        float stored = 1.0f;
        fp_steer *v = fp_steer_load(model, o.steer, &stored, &serr);
        if (!v || fp_engine_set_steer(engine, v, isnan(o.steer_strength) ? stored : o.steer_strength, &serr) != FP_OK) {
            fprintf(stderr, "forkpoint write: %s\n", serr.message);
            fp_steer_free(v);
            fp_engine_free(engine); fp_model_free(model);
            return 2;
        }
        fp_steer_free(v);   /* the engine keeps its own copy of the directions */
    }

    bool keyboard = !o.choices && isatty(STDIN_FILENO);
    if (keyboard && !(g_ui = fopen("/dev/tty", "w"))) g_ui = stderr;
    FILE *script = NULL;
    if (!keyboard) {
        script = !o.choices || !strcmp(o.choices, "-") ? stdin : fopen(o.choices, "r");
        if (!script) {
            fprintf(stderr, "forkpoint write: cannot open choices file %s: %s\n", o.choices, strerror(errno));
            fp_engine_free(engine); fp_model_free(model);
            return 2;
        }
    }
    FILE *events = NULL;
    if (o.json && !(events = open_out(o.json))) {
        fprintf(stderr, "forkpoint write: cannot write %s: %s\n", o.json, strerror(errno));
        if (script && script != stdin) fclose(script);
        fp_engine_free(engine); fp_model_free(model);
        return 2;
    }

    char *grammar = NULL;
    if (o.grammar) {
        /* a GBNF file: JSON output, a fixed vocabulary for a board, ... */
        FILE *gf = fopen(o.grammar, "rb");
        long gn = -1;
        if (gf && fseek(gf, 0, SEEK_END) == 0) gn = ftell(gf);
        if (gf && gn >= 0 && gn < (1 << 20) && fseek(gf, 0, SEEK_SET) == 0 && (grammar = calloc(1, (size_t)gn + 1)))
            if (fread(grammar, 1, (size_t)gn, gf) != (size_t)gn) { free(grammar); grammar = NULL; }
        if (gf) fclose(gf);
        if (!grammar) {
            fprintf(stderr, "forkpoint write: cannot read the grammar %s%s\n", o.grammar, gn >= (1 << 20) ? " (over 1 MB)" : "");
            rc = 2;
            goto out;
        }
    }
    s = fp_session_new_grammar(engine, o.prompt, &o.st, grammar, &err);
    free(grammar);
    if (!s) {
        fprintf(stderr, "forkpoint write: %s\n", err.message);
        rc = err.code == FP_ERR_DECODE || err.code == FP_ERR_NOMEM ? 1 : 2;
        goto out;
    }
    /* the decision log and the person's preferences */
    meta = (fp_decision_meta){ .session_id = sid, .profile = o.profile, .model_sha256 = sha,
                               .modality = keyboard ? "keyboard" : "script" };
    if (o.db) {
        snprintf(sid, sizeof sid, "%08lx%08lx", (unsigned long)time(NULL), (unsigned long)getpid());
        if (fp_sha256_file(fp_model_path(model), sha, &err) != FP_OK || !(store = fp_store_open(o.db, true, &err))) {
            fprintf(stderr, "forkpoint write: %s\n", err.message);
            rc = 2;
            goto out;
        }
        if (o.profile) {
            if (fp_store_profile_load(store, o.profile, sha, &prefs, &err) != FP_OK) {
                fprintf(stderr, "forkpoint write: %s\n", err.message);
                rc = 2;
                goto out;
            }
            if (!prefs && !(prefs = fp_prefs_new(fp_model_n_vocab(model)))) { fprintf(stderr, "forkpoint write: out of memory\n"); rc = 1; goto out; }
            fp_prefs_set_auto(prefs, o.auto_resolve, 0.95f);
            if (fp_session_set_prefs(s, prefs, &err) != FP_OK) { fprintf(stderr, "forkpoint write: %s\n", err.message); rc = 2; goto out; }
            if (o.adapt) {   /* the first fork is recomputed with them */
                const fp_settings a = fp_prefs_adapt_settings(prefs, fp_session_settings(s));
                if (o.ctx > 0 && fp_settings_branch_cells(&a) > fp_settings_branch_cells(&o.st))
                    fprintf(stderr, "forkpoint write: --adapt: the adapted settings need more than --ctx leaves; kept yours\n");
                else if (fp_session_set_settings(s, &a, &err) != FP_OK) { fprintf(stderr, "forkpoint write: %s\n", err.message); rc = 1; goto out; }
            }
        }
    }
    if (keyboard) tty_raw();
    int32_t written = 0, line_no = 0;
    char msg[300] = "";
    for (;;) {
        if (fp_session_state(s) == FP_STATE_ENDED && !keyboard) break;
        command c = keyboard ? keyboard_next(s, model, msg) : script_next(script, &line_no);
        fp_chooser by = keyboard ? FP_BY_HUMAN : FP_BY_SCRIPT;
        fp_status st = FP_OK;
        err.message[0] = 0;
        switch (c.kind) {
        case CMD_QUIT: goto done;
        case CMD_EOF:
            if (fp_session_state(s) == FP_STATE_AT_FORK) {
                fprintf(stderr, "forkpoint write: the choices ended at fork %d (line %d); add a command or 'q'\n",
                        fp_session_fork(s)->id, line_no);
                rc = 3;
                goto out;
            }
            goto done;
        case CMD_BAD:
            if (!keyboard) {
                if (c.index == -2) fprintf(stderr, "forkpoint write: line %d: bad command %s\n", line_no, c.text);
            else fprintf(stderr, "forkpoint write: line %d: unknown command \"%s\"\n", line_no, c.text);
                rc = 2;
                goto out;
            }
            continue;
        case CMD_CHOOSE: st = fp_session_choose(s, c.index, false, by, &err); break;
        case CMD_PREVIEW: st = fp_session_choose(s, c.index, true, by, &err); break;
        case CMD_UNTIL: st = fp_session_choose_words(s, c.index, c.words, by, &err); break;
        case CMD_TYPE: st = fp_session_type_commit(s, c.text, by, &err); break;
        case CMD_PREFIX: st = fp_session_type_prefix(s, c.text, &err); break;
        case CMD_UNDO: st = fp_session_undo(s, &err); break;
        case CMD_CONTINUE: st = fp_session_continue(s, by, &err); break;
        }
        flush_events(events, s, &written);
        if (store) { /* durable the moment it is made */
            fp_error lerr = {0};
            logged = fp_store_log_events(store, s, logged, &meta, &lerr);
            if (logged < fp_session_n_events(s) || (prefs && fp_store_profile_save(store, o.profile, sha, prefs, &lerr) != FP_OK)) {
                if (keyboard) cli_tty_restore();
                fprintf(stderr, "forkpoint write: %s\n", lerr.message);
                rc = 1;
                goto out;
            }
        }
        if (st != FP_OK) {
            bool input_error = st == FP_ERR_ARG || st == FP_ERR_STATE || st == FP_ERR_UTF8 || st == FP_ERR_EMPTY || st == FP_ERR_CONTEXT;
            if (keyboard && input_error) { snprintf(msg, sizeof msg, "%s", err.message); continue; }
            if (keyboard) cli_tty_restore();
            fprintf(stderr, "forkpoint write: %s\n", err.message);
            if (!keyboard) fprintf(stderr, "forkpoint write: (at line %d of the choices)\n", line_no);
            rc = input_error ? 2 : 1;
            goto out;
        }
    }
done:
    flush_events(events, s, &written);
    if (keyboard) { cli_tty_restore(); fprintf(g_ui, "\x1b[H\x1b[2J"); fflush(g_ui); }
    if (!events || events != stdout) printf("%s\n", fp_session_text(s));
    rc = 0;
out:
    cli_tty_restore();
    if (s) fp_session_set_prefs(s, NULL, NULL); /* the session borrows prefs: detach before freeing */
    fp_prefs_free(prefs);
    fp_store_close(store);
    fp_session_free(s);
    if (events && events != stdout) fclose(events);
    if (script && script != stdin) fclose(script);
    fp_engine_free(engine);
    fp_model_free(model);
    if (g_ui && g_ui != stderr) fclose(g_ui);
    g_ui = NULL;
    return rc;
}
