/*
 * bench_textentry.c — text entry efficiency: how many actions it takes to
 * write a given text with Forkpoint, with a word-prediction keyboard, and by
 * typing (issue 4).
 *
 * Why: Forkpoint claims that steering a model at its forks is a cheaper way
 * to write than typing, and cheaper than the word prediction people already
 * have on their phones. The claim is only worth something when all three
 * write the same texts with the same model in the same run, so this program:
 *
 *   1. samples held-out target stories from the model itself (temperature 1,
 *      seeds the writers never use, fork detection off, "Once upon a time");
 *   2. lets an oracle writer who knows each target write it with Forkpoint
 *      (greedy automatic continuation, fork detection on, word candidates):
 *      at a fork it chooses a candidate that matches the upcoming text (with
 *      its whole preview when that matches too; when the preview goes wrong,
 *      it points at the first wrong word of the preview, which takes the
 *      candidate with the preview words before it and opens a fork there,
 *      fp_session_choose_until), else types the next word letter by letter
 *      (each letter narrows the cloud with fp_session_type_prefix) until the
 *      word shows up, else commits the typed word; where automatic text
 *      leaves the target it points at the first wrong character
 *      (fp_session_fork_at at the start of its token) and goes on from the
 *      fork that opens there;
 *   3. lets the same writer use a word-prediction keyboard driven by the same
 *      model: at every word start and after every typed letter it shows the
 *      5 most probable whole words (the library's own word cloud, narrowed by
 *      the typed letters); a tap on one inserts the word and a space;
 *   4. counts typing as one keystroke per character.
 *
 * Actions: every choice (a candidate alone, with its preview, or by pointing
 * into its preview), every typed character (letters, punctuation, Enter),
 * every commit of typed text and every repair (pointing at a divergence)
 * costs one. It prints per-story and total actions per character and the
 * ratios Forkpoint/keyboard and Forkpoint/typing measured in this run.
 * Nothing is timed against a threshold; this is a benchmark, not a test.
 *
 * Usage: bench_textentry [--model PATH] [--stories N] [--k N] [--lookahead L] ...
 *        (--help lists every flag)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "forkpoint.h"
#include "forkpoint_learn.h"

#define PROMPT "Once upon a time"
#define MAX_DOC 8192         /* bytes of prompt + target */

/* ------------------------------------------------------------ options */

typedef struct options {
    char    model[4096];
    int32_t stories, target_tokens, seed_base, threads;
    /* the Forkpoint writer */
    int32_t k, lookahead, beam, gap, per_sentence;
    float   entropy, top1, margin;
    bool    no_preview, no_prefix, no_point;
    bool    no_profile;        /* no profile: the writer's settings stay fixed (the earlier writer) */
    bool    no_adapt;          /* a profile that learns, but the settings never adapt (ablation) */
    /* the keyboard */
    int32_t kb_k, kb_search;
    /* both */
    float   repeat_penalty;
    bool    trace, show_targets;
    bool    point_top;         /* pointing only into the top candidate's preview (the page's row) */
    char    actions[4096];     /* --actions FILE: every action as a JSON line (bench_access.mjs) */
} options;

/* Prints every flag with its default (on --help and on a bad flag). */
static void usage(void) {
    fprintf(stderr,
        "usage: bench_textentry [options]\n"
        "  --actions FILE      write every action of the Forkpoint writer, with what the page shows\n"
        "                      then, as JSON lines (input of bench/bench_access.mjs)\n"
        "  --point-top         point only into the top candidate's preview (the page's preview row)\n"
        "  --model PATH        GGUF model (default: stories260K, resolved like the library)\n"
        "  --stories N         target stories (default 24)\n"
        "  --target-tokens N   tokens sampled per target before trimming to a sentence (default 120)\n"
        "  --seed-base N       targets use seeds N, N+1, ... (default 1000)\n"
        "  --threads N         CPU threads (default 1)\n"
        " Forkpoint writer:\n"
        "  --k N               candidates per fork (default 8)\n"
        "  --lookahead L       preview tokens (default 8)\n"
        "  --beam N            beam width of the word search (default max(2k, 16), at most 64)\n"
        "  --entropy BITS      fork when entropy >= BITS (default 2.5; 0 off)\n"
        "  --top1 P            fork when top-1 < P (default 0.35; 0 off)\n"
        "  --margin M          fork when top1 - top2 < M (default 0 = off)\n"
        "  --gap N             at least N tokens between forks (default 4)\n"
        "  --per-sentence N    at most N forks per sentence (default 2; 0 = unlimited)\n"
        "  --no-preview        never accept a preview (ablation)\n"
        "  --no-prefix         never narrow by typed letters: type and commit (ablation)\n"
        "  --no-point          never point into a preview (fp_session_choose_until): a\n"
        "                      candidate whose preview goes wrong is taken alone (ablation)\n"
        "  --no-profile        no profile: the settings above stay as they are all along\n"
        "                      (by default the writer is one person with one profile over\n"
        "                      every story, new at the first, and the settings adapt to its\n"
        "                      habits: fp_prefs_adapt_settings)\n"
        "  --no-adapt          the profile learns, but the settings never adapt (ablation)\n"
        " Keyboard:\n"
        "  --kb-k N            predictions shown (default 5)\n"
        "  --kb-search N       words the keyboard's cloud ranks before it drops\n"
        "                      punctuation and keeps the best kb-k words (default 12)\n"
        " Both:\n"
        "  --repeat-penalty R  sampler chain's repetition penalty (default 1.1, the library's)\n"
        "  --trace             print every decision to stderr\n"
        "  --show-targets      print the target stories\n");
}

/* Integer flag values: shared parsing, this program's usage on junk. */
#define int_arg(flag, v, lo, hi) bench_int_arg("bench_textentry", flag, v, lo, hi, usage)

/* Reads a number flag value; exits with usage on junk or out of range. */
static float float_arg(const char *flag, const char *v, float lo, float hi) {
    char *end = NULL;
    const double x = strtod(v, &end);
    if (!*v || *end || !(x >= lo && x <= hi)) {
        fprintf(stderr, "bench_textentry: %s wants a number in [%g, %g]\n", flag, lo, hi);
        usage();
        exit(2);
    }
    return (float)x;
}

/* Flags over the defaults; the defaults are the library's fork settings. */
static void parse(options *o, int argc, char **argv) {
    const fp_settings d = fp_default_settings();
    *o = (options){ .stories = 24, .target_tokens = 120, .seed_base = 1000, .threads = 1,
                    .k = d.k, .lookahead = d.lookahead, .beam = 0, .gap = d.min_gap_tokens,
                    .per_sentence = d.max_forks_per_sentence, .entropy = d.fork_entropy_bits,
                    .top1 = d.fork_top1_below, .margin = d.fork_margin_below,
                    .kb_k = 5, .kb_search = 12, .repeat_penalty = d.repeat_penalty };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(); exit(0); }
        if (!strcmp(a, "--no-preview")) { o->no_preview = true; continue; }
        if (!strcmp(a, "--no-prefix")) { o->no_prefix = true; continue; }
        if (!strcmp(a, "--no-point")) { o->no_point = true; continue; }
        if (!strcmp(a, "--no-profile")) { o->no_profile = true; continue; }
        if (!strcmp(a, "--no-adapt")) { o->no_adapt = true; continue; }
        if (!strcmp(a, "--trace")) { o->trace = true; continue; }
        if (!strcmp(a, "--show-targets")) { o->show_targets = true; continue; }
        if (!strcmp(a, "--point-top")) { o->point_top = true; continue; }
        if (i + 1 >= argc) { usage(); exit(2); }
        const char *v = argv[++i];
        if (!strcmp(a, "--model")) snprintf(o->model, sizeof o->model, "%s", v);
        else if (!strcmp(a, "--actions")) snprintf(o->actions, sizeof o->actions, "%s", v);
        else if (!strcmp(a, "--stories")) o->stories = int_arg(a, v, 1, 1000);
        else if (!strcmp(a, "--target-tokens")) o->target_tokens = int_arg(a, v, 8, 400);
        else if (!strcmp(a, "--seed-base")) o->seed_base = int_arg(a, v, 0, 1 << 30);
        else if (!strcmp(a, "--threads")) o->threads = int_arg(a, v, 1, 256);
        else if (!strcmp(a, "--k")) o->k = int_arg(a, v, 1, 64);
        else if (!strcmp(a, "--lookahead")) o->lookahead = int_arg(a, v, 0, FP_MAX_PREVIEW);
        else if (!strcmp(a, "--beam")) o->beam = int_arg(a, v, 1, 64);
        else if (!strcmp(a, "--entropy")) o->entropy = float_arg(a, v, 0.0f, 64.0f);
        else if (!strcmp(a, "--top1")) o->top1 = float_arg(a, v, 0.0f, 1.01f);
        else if (!strcmp(a, "--margin")) o->margin = float_arg(a, v, 0.0f, 1.01f);
        else if (!strcmp(a, "--gap")) o->gap = int_arg(a, v, 0, 1000);
        else if (!strcmp(a, "--per-sentence")) o->per_sentence = int_arg(a, v, 0, 1000);
        else if (!strcmp(a, "--kb-k")) o->kb_k = int_arg(a, v, 1, 32);
        else if (!strcmp(a, "--kb-search")) o->kb_search = int_arg(a, v, 1, 64);
        else if (!strcmp(a, "--repeat-penalty")) o->repeat_penalty = float_arg(a, v, 0.01f, 10.0f);
        else { usage(); exit(2); }
    }
    if (o->beam == 0) o->beam = o->k * 2 > 16 ? o->k * 2 : 16;
    if (o->beam > 64) o->beam = 64;
    if (o->beam < o->k) { fprintf(stderr, "bench_textentry: --beam must be >= --k\n"); exit(2); }
    if (o->kb_search < o->kb_k) o->kb_search = o->kb_k;
}

/* ------------------------------------------------------------ text rules */

/* The library's notion of a word boundary (src/core/model.c): whitespace and
 * ASCII punctuation other than ' - _ begin a new word. Mirrored here so the
 * writers split the target exactly where the model's words split. */
static bool is_ws(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
static bool is_punct(unsigned char c) {
    return c < 0x80 && c > ' ' && !(c >= '0' && c <= '9') && !((c | 0x20) >= 'a' && (c | 0x20) <= 'z')
        && c != '\'' && c != '-' && c != '_';
}
static bool is_word_char(unsigned char c) { return !is_ws(c) && !is_punct(c); }

/* Length of the UTF-8 character starting at s (1 for junk, never 0). */
static size_t char_len(const char *s) {
    const unsigned char c = (unsigned char)*s;
    size_t n = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    for (size_t i = 1; i < n; i++) if (!s[i]) return i;
    return n;
}

/* Characters (not bytes) in s[0..n): what a person presses keys for. */
static int32_t count_chars(const char *s, size_t n) {
    int32_t c = 0;
    for (size_t i = 0; i < n; i += char_len(s + i)) c++;
    return c;
}

/* One unit of the target: leading whitespace [start, body) and a body
 * [body, end) that is either one punctuation character or a run of word
 * characters (a word as the model's tokens delimit it). */
typedef struct unit { size_t start, body, end; } unit;

static unit unit_at(const char *t, size_t at, size_t n) {
    unit u = { at, at, at };
    while (u.body < n && is_ws((unsigned char)t[u.body])) u.body++;
    u.end = u.body;
    if (u.end >= n) return u;
    if (is_punct((unsigned char)t[u.end])) { u.end++; return u; }
    while (u.end < n && is_word_char((unsigned char)t[u.end])) u.end += char_len(t + u.end);
    return u;
}

/* Does appending `piece` (plen bytes) produce the next bytes of the rest of
 * the target, ending where a word ends? A candidate that is only the start
 * of the wanted word (" the" for " there") does not count. */
static bool covers(const char *rest, size_t rlen, const char *piece, size_t plen) {
    if (plen == 0 || plen > rlen || memcmp(rest, piece, plen) != 0) return false;
    return plen == rlen || !is_word_char((unsigned char)rest[plen]) ||
           !is_word_char((unsigned char)piece[plen - 1]);
}

/* Bytes on which two strings agree from the start. */
static size_t common_prefix(const char *a, size_t na, const char *b, size_t nb) {
    size_t i = 0;
    while (i < na && i < nb && a[i] == b[i]) i++;
    return i;
}

/* The last byte offset in [floor, before) holding a space, or (size_t)-1.
 * Typed text that starts with a space is the only text
 * fp_session_type_commit reproduces exactly on a SentencePiece model (see
 * the report in bench/README.md), so typed text is committed from there. */
static size_t last_space(const char *t, size_t floor, size_t before) {
    for (size_t j = before; j > floor; j--) if (t[j - 1] == ' ') return j - 1;
    return (size_t)-1;
}

/* Prints s with newlines made visible, for traces. */
static void put_visible(FILE *f, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\n') fputs("\\n", f);
        else fputc(s[i], f);
    }
}

/* ------------------------------------------------------------ targets */

/* Samples one held-out target: the model writes on its own from PROMPT at
 * temperature 1 with its own seed and no forks. A text cut by the token
 * limit is trimmed to its last complete sentence (or, failing that, its last
 * whole word), so every target ends where a writer could stop. Returns a
 * malloc'd continuation (without the prompt), or NULL on failure. */
static char *sample_target(fp_engine *e, const options *o, uint32_t seed, fp_error *err) {
    fp_settings st = fp_default_settings();
    st.sample_auto = true;
    st.seed = seed;
    st.temperature = 1.0f;
    st.repeat_penalty = o->repeat_penalty;
    st.fork_entropy_bits = 0.0f;
    st.fork_top1_below = 0.0f;
    st.fork_margin_below = 0.0f;
    st.max_tokens = o->target_tokens;
    st.lookahead = 0;
    fp_session *s = fp_session_new(e, PROMPT, &st, err);
    if (!s) return NULL;
    const char *text = fp_session_text(s) + fp_session_prompt_len(s);
    size_t n = fp_session_text_len(s) - fp_session_prompt_len(s);
    const bool cut = strcmp(fp_session_end_reason(s) ? fp_session_end_reason(s) : "", "eog") != 0;
    if (cut) {
        size_t best = 0;
        for (size_t i = 0; i < n; i++) {
            const char c = text[i];
            if (c == '.' || c == '!' || c == '?') {
                size_t j = i + 1;
                while (j < n && (text[j] == '"' || text[j] == '\'')) j++;
                best = j;
            }
        }
        if (best < n / 2) {
            best = n;
            while (best > 0 && !is_ws((unsigned char)text[best - 1])) best--;
        }
        n = best;
    }
    while (n > 0 && is_ws((unsigned char)text[n - 1])) n--;
    char *out = malloc(n + 1);
    if (out) { memcpy(out, text, n); out[n] = 0; }
    fp_session_free(s);
    return out;
}

/* ------------------------------------------------------- the Forkpoint writer */

/* What the Forkpoint writer did for one target. */
typedef struct fork_tally {
    int32_t choices;         /* a candidate chosen alone, no letters typed */
    int32_t previews;        /* a candidate chosen with its whole preview, no letters typed */
    int32_t prefix_choices;  /* chosen (alone or with preview) after typing letters */
    int32_t prefix_previews; /* ... of which with the preview */
    int32_t points;          /* a candidate taken by pointing into its preview, no letters typed */
    int32_t prefix_points;   /* ... after typing letters (counted in prefix_choices too) */
    int32_t letters;         /* typed characters (narrowing letters and typed text) */
    int32_t commits;         /* typed words committed (Enter) */
    int32_t repairs;         /* pointing at a divergence (fp_session_fork_at) */
    int32_t glue_fixes;      /* back-ups because typed text cannot start without a space */
    int32_t glue_extra;      /* actions those back-ups cost (repair + characters typed again) */
    int32_t newline_types;   /* paragraph breaks typed (no candidate can be a newline) */
    int32_t word_runons;     /* repairs right after a chosen word that the model went on spelling */
    size_t  word_end;        /* where the last word chosen alone ended, or SIZE_MAX */
    int32_t forks;           /* forks the writer had to decide */
    int32_t auto_bytes;      /* bytes of the final text the model wrote unasked */
    int32_t chosen_bytes;    /* bytes taken by choices (words and previews) */
    int32_t typed_bytes;     /* bytes committed as typed text */
    bool    ok;
} fork_tally;

/* The writer's cost: every choice, typed character, commit and repair is one
 * action (the breakdown is kept so the report can say where they went). */
static int32_t fork_actions(const fork_tally *t) {
    return t->choices + t->previews + t->points + t->prefix_choices + t->letters + t->commits + t->repairs;
}

/* The best candidate of the open fork for the rest of the target: the one
 * whose text (with its preview, when that matches too and is allowed)
 * covers the most upcoming bytes; ties go to the more probable. Returns the
 * index or -1; *with_preview and *gain describe the pick. */
static int32_t best_match(const fp_fork *f, const char *rest, size_t rlen, bool allow_preview,
                          bool *with_preview, size_t *gain) {
    int32_t best = -1;
    *gain = 0;
    *with_preview = false;
    for (int32_t i = 0; i < f->n_candidates; i++) {
        const fp_candidate *c = &f->candidates[i];
        if (c->is_eog) continue;
        const size_t wl = strlen(c->text);
        if (!covers(rest, rlen, c->text, wl)) continue;
        size_t g = wl;
        bool wp = false;
        const size_t pl = strlen(c->preview);
        if (allow_preview && c->n_preview > 0 && pl > 0 && wl + pl <= rlen &&
            covers(rest + wl, rlen - wl, c->preview, pl)) {
            g = wl + pl;
            wp = true;
        }
        if (g > *gain) { best = i; *gain = g; *with_preview = wp; }
    }
    return best;
}

/* Logs one decision of a writer when --trace is on. */
static void trace(const options *o, const char *who, const char *what, const char *s, size_t n) {
    if (!o->trace) return;
    fprintf(stderr, "  [%s] %-10s |", who, what);
    put_visible(stderr, s, n);
    fputs("|\n", stderr);
}

/* --actions: the Forkpoint writer's actions, one JSON line each, with what
 * the page shows at that moment, so bench/bench_access.mjs can cost them on
 * the page's own scan order (web/access/scanorder.js viewItems): k
 * candidates, which have a "+ phrase" button, the preview words of the top
 * candidate, the "other" marker, the story's words. Cost: O(text) per line. */
static FILE   *g_act;
static int32_t g_story;

/* Words of t[a..b) as the page splits the story: a word starts at a
 * non-space after a space, and at every punctuation mark. */
static int32_t words_in(const char *t, size_t a, size_t b) {
    int32_t n = 0;
    for (size_t i = a; i < b; i++) {
        const unsigned char c = (unsigned char)t[i];
        if (is_ws(c)) continue;
        if (i == 0 || is_ws((unsigned char)t[i - 1]) || is_punct(c) || is_punct((unsigned char)t[i - 1])) n++;
    }
    return n;
}

/* One action line. rank: the candidate (or -1); word: the preview word
 * pointed at (or -1); ch: the character typed (or 0); at: for repairs, the
 * byte pointed at. */
static void act(const fp_session *s, const char *what, int32_t rank, int32_t word, int ch, size_t at) {
    if (!g_act) return;
    const fp_fork *f = fp_session_state(s) == FP_STATE_AT_FORK ? fp_session_fork(s) : NULL;
    const char *text = fp_session_text(s);
    const size_t len = fp_session_text_len(s);
    fprintf(g_act, "{\"s\":%d,\"a\":\"%s\",\"r\":%d,\"w\":%d,\"ch\":%d,\"k\":%d,\"ph\":\"", g_story, what,
            rank, word, ch, f ? f->n_candidates : 0);
    for (int32_t i = 0; f && i < f->n_candidates; i++)
        fputc(f->candidates[i].n_preview > 0 && f->candidates[i].preview[0] && !f->candidates[i].is_eog ? '1' : '0', g_act);
    fprintf(g_act, "\",\"pv\":%d,\"o\":%d,\"sw\":%d,\"back\":%d}\n",
            f && f->n_candidates > 0 && !f->candidates[0].is_eog ? f->candidates[0].n_preview_words : 0,
            f && f->other > 0.005f, words_in(text, fp_session_prompt_len(s), len),
            at <= len ? words_in(text, at, len) : 0);
}

/* The preview word of candidate c that begins at preview token tok (the
 * page's button for it), or -1. */
static int32_t word_at_token(const fp_candidate *c, int32_t tok) {
    for (int32_t w = 0; w < c->n_preview_words; w++) if (c->preview_word_tok[w] == tok) return w;
    return -1;
}

/* How the writer takes a candidate. */
typedef enum take { TAKE_ALONE, TAKE_PREVIEW, TAKE_POINT } take;

typedef struct pick {
    int32_t index;      /* candidate, or -1 */
    take    how;
    int32_t n_preview;  /* TAKE_POINT: preview tokens taken before the pointed word */
    size_t  gain;       /* target bytes the pick writes */
} pick;

static const fp_model *g_model; /* for the pieces of preview tokens */

/* The best way to take a candidate of the open fork for the rest of the
 * target, as a person who sees the cloud and its previews would: the
 * candidate with its whole preview when that matches (automatic text
 * follows); else, when the preview goes wrong somewhere, the candidate with
 * the preview words before the first wrong one, by pointing at that word
 * (fp_session_choose_until: a fork opens there); else the candidate alone.
 * The pick that writes the most target text wins; on a tie, one after which
 * the model goes on by itself (alone or whole preview) beats pointing. */
static pick best_pick(const fp_fork *f, const char *rest, size_t rlen, const options *o) {
    pick best = { -1, TAKE_ALONE, 0, 0 };
    for (int32_t i = 0; i < f->n_candidates; i++) {
        const fp_candidate *c = &f->candidates[i];
        if (c->is_eog) continue;
        const size_t wl = strlen(c->text);
        if (!covers(rest, rlen, c->text, wl)) continue;
        pick p = { i, TAKE_ALONE, 0, wl };
        const size_t pl = strlen(c->preview);
        if (!o->no_preview && c->n_preview > 0 && pl > 0 && wl + pl <= rlen &&
            covers(rest + wl, rlen - wl, c->preview, pl)) {
            p.how = TAKE_PREVIEW;
            p.gain = wl + pl;
        } else if (!o->no_preview && !o->no_point && c->n_preview > 0 && (i == 0 || !o->point_top)) {
            /* the longest run of whole preview words that matches */
            p.how = TAKE_POINT;
            size_t at = 0;
            for (int32_t j = 0; j < c->n_preview; j++) {
                char piece[64];
                const int32_t n = fp_token_piece(g_model, c->preview_tokens[j], piece, (int32_t)sizeof piece);
                if (n < 0) break;
                /* a word of the preview may begin at token j (a space-led or
                 * punctuation token, or a token after an opening quote): it
                 * may be pointed at. Never after a bare space: the space
                 * belongs to the word that follows it. */
                const unsigned char prev = at > 0 ? (unsigned char)c->preview[at - 1] : ' ';
                if (j > 0 && at > 0 && !is_ws(prev) &&
                    (n == 0 || !is_word_char((unsigned char)piece[0]) || is_punct(prev)) &&
                    covers(rest + wl, rlen - wl, c->preview, at)) {
                    p.n_preview = j;
                    p.gain = wl + at;
                }
                at += (size_t)n;
                if (at > pl || wl + at > rlen || memcmp(rest + wl, c->preview, at) != 0) break;
            }
        }
        const bool runs_on = p.how != TAKE_POINT;
        if (p.gain > best.gain || (p.gain == best.gain && runs_on && best.how == TAKE_POINT)) best = p;
    }
    return best;
}

/* Takes pick p at the open fork, counting it (after_letters: letters were typed first). */
static fp_status take_pick(fp_session *s, const pick *p, size_t len, bool after_letters, fork_tally *t,
                           const options *o, const char *rest, fp_error *err) {
    if (after_letters) {
        t->prefix_choices++;
        if (p->how == TAKE_PREVIEW) t->prefix_previews++;
        if (p->how == TAKE_POINT) t->prefix_points++;
    } else if (p->how == TAKE_PREVIEW) t->previews++;
    else if (p->how == TAKE_POINT) t->points++;
    else t->choices++;
    t->chosen_bytes += (int32_t)p->gain;
    t->word_end = p->how == TAKE_ALONE ? len + p->gain : SIZE_MAX;
    static const char *what[2][3] = { { "choose", "choose+pv", "point" }, { "pfx-choose", "pfx+pv", "pfx-point" } };
    trace(o, "fp", what[after_letters][p->how], rest, p->gain);
    {
        const fp_candidate *c = &fp_session_fork(s)->candidates[p->index];
        act(s, p->how == TAKE_PREVIEW ? "phrase" : p->how == TAKE_POINT ? "point" : "choose", p->index,
            p->how == TAKE_POINT ? word_at_token(c, p->n_preview) : -1, 0, SIZE_MAX);
    }
    if (p->how == TAKE_POINT) return fp_session_choose_until(s, p->index, p->n_preview, FP_BY_SCRIPT, err);
    return fp_session_choose(s, p->index, p->how == TAKE_PREVIEW, FP_BY_SCRIPT, err);
}

/* Where the token holding byte d of the text begins. Callers round down
 * themselves before fp_session_fork_at: the library rounds down correctly
 * inside the text, but an offset inside the LAST token of the text returns
 * the fork already open at the end, cutting nothing (see bench/README.md). */
static size_t token_start(const fp_session *s, size_t d) {
    for (int32_t i = fp_session_n_positions(s) - 1; i >= 0; i--) {
        const size_t a = fp_session_position_offset(s, i);
        if (a <= d) return a;
    }
    return fp_session_prompt_len(s);
}


/* Commits typed target text full[len..upto) that does not start with a
 * space. fp_session_type_commit cannot write such text exactly (it comes out
 * with a space in front: "time" + "," gives "time ,"), so the writer points
 * back at the last space before it (1 repair) and types again from there:
 * the characters between that space and len are typed a second time. Both
 * costs are counted, and also kept apart in glue_extra so the report can say
 * what the library limitation costs. */
static fp_status commit_backed_up(fp_session *s, const char *full, size_t len, size_t upto,
                                  size_t floor, fork_tally *t, const options *o, fp_error *err) {
    const size_t j = last_space(full, floor, len);
    if (j == (size_t)-1) {
        snprintf(err->message, sizeof err->message, "no space to back up to before byte %zu", len);
        return err->code = FP_ERR_STATE;
    }
    act(s, "repair", -1, -1, 0, token_start(s, j));
    fp_status st = fp_session_fork_at(s, token_start(s, j), err);
    if (st != FP_OK) return st;
    const size_t from = fp_session_text_len(s);
    if (from > j || full[from] != ' ') {
        snprintf(err->message, sizeof err->message, "backing up to byte %zu landed at %zu", j, from);
        return err->code = FP_ERR_STATE;
    }
    const int32_t again = count_chars(full + from + 1, len - from - 1);
    t->repairs++;
    t->glue_fixes++;
    t->letters += again;
    t->glue_extra += 1 + again;
    t->commits++;
    t->typed_bytes += (int32_t)(upto - len);
    char chunk[FP_MAX_TEXT];
    const size_t n = upto - from;
    if (n + 2 >= sizeof chunk) return FP_ERR_ARG;
    memcpy(chunk, full + from, n);
    chunk[n] = 0;
    for (size_t b = from + 1; b < upto; b++) act(s, "letter", -1, -1, (unsigned char)full[b], SIZE_MAX);
    act(s, "commit", -1, -1, 0, SIZE_MAX);
    trace(o, "fp", "back+type", chunk, n);
    return fp_session_type_commit(s, chunk, FP_BY_SCRIPT, err);
}

/* Commits typed target text full[len..upto): directly when it starts with a
 * space, else by backing up (commit_backed_up). */
static fp_status commit_typed(fp_session *s, const char *full, size_t len, size_t upto, size_t floor,
                              fork_tally *t, const options *o, fp_error *err) {
    if (full[len] != ' ') return commit_backed_up(s, full, len, upto, floor, t, o, err);
    char chunk[FP_MAX_TEXT];
    const size_t n = upto - len;
    if (n + 2 >= sizeof chunk) return FP_ERR_ARG;
    memcpy(chunk, full + len, n);
    chunk[n] = 0;
    act(s, "commit", -1, -1, 0, SIZE_MAX);
    t->commits++;
    t->typed_bytes += (int32_t)n;
    trace(o, "fp", "type", chunk, n);
    return fp_session_type_commit(s, chunk, FP_BY_SCRIPT, err);
}

/* Decides one fork the way the oracle writer would: a matching candidate at
 * once; else letters of the next word, one at a time, until the word is
 * offered; else commit the typed word. rest is the target after the text. */
static fp_status decide_fork(fp_session *s, const char *full, size_t len, size_t n_full, size_t floor,
                             fork_tally *t, const options *o, fp_error *err) {
    const char *rest = full + len;
    const size_t rlen = n_full - len;
    const fp_fork *f = fp_session_fork(s);
    t->forks++;
    pick p = best_pick(f, rest, rlen, o);
    if (p.index >= 0) return take_pick(s, &p, len, false, t, o, rest, err);
    const unit u = unit_at(full, len, n_full);
    /* a paragraph break: no candidate can be a newline, so it is typed */
    if (memchr(full + u.start, '\n', u.body - u.start)) {
        for (size_t j = u.start; j < u.body; j++)
            if (full[j] != ' ' || j > u.start) { t->letters++; act(s, "letter", -1, -1, (unsigned char)full[j], SIZE_MAX); }
        t->newline_types++;
        return commit_typed(s, full, len, u.body, floor, t, o, err);
    }
    char prefix[FP_MAX_TEXT];
    size_t pl = 0;
    if (!o->no_prefix) {
        for (size_t b = u.body; b < u.end; ) {
            const size_t cl = char_len(full + b);
            if (pl + cl >= sizeof prefix) break;
            memcpy(prefix + pl, full + b, cl);
            pl += cl;
            prefix[pl] = 0;
            b += cl;
            t->letters++;
            act(s, "letter", -1, -1, (unsigned char)full[b - cl], SIZE_MAX);
            fp_status st = fp_session_type_prefix(s, prefix, err);
            if (st != FP_OK) return st;
            f = fp_session_fork(s);
            p = best_pick(f, rest, rlen, o);
            if (p.index >= 0) return take_pick(s, &p, len, true, t, o, rest, err);
        }
    } else {
        t->letters += count_chars(full + u.body, u.end - u.body);
        for (size_t b = u.body; b < u.end; b += char_len(full + b)) act(s, "letter", -1, -1, (unsigned char)full[b], SIZE_MAX);
    }
    /* the word is not offered: commit it as typed */
    if (u.end == u.start) return FP_ERR_STATE;
    return commit_typed(s, full, len, u.end, floor, t, o, err);
}

/* Writes full = PROMPT + target with Forkpoint, counting every action.
 * The loop compares the document with the target after each step: a
 * divergence is repaired by pointing at the first wrong character (a fork
 * opens at the start of its token), a premature end by asking for a fork at
 * the end, text run on past the target by one cut, and an open fork is
 * decided. */
#define ADAPT_EVERY 16   /* decisions between two adaptations of the settings */

/* Do a and b agree on what fp_prefs_adapt_settings changes? */
static bool same_fork_settings(const fp_settings *a, const fp_settings *b) {
    return a->k == b->k && a->beam_width == b->beam_width && a->lookahead == b->lookahead &&
           a->min_gap_tokens == b->min_gap_tokens && a->max_forks_per_sentence == b->max_forks_per_sentence &&
           a->fork_top1_below == b->fork_top1_below && a->fork_entropy_bits == b->fork_entropy_bits;
}

/* prefs: the person's profile (NULL: --no-profile), shared by every story. */
static fork_tally write_forkpoint(fp_engine *e, const char *full, size_t n_full, const options *o, fp_prefs *prefs) {
    fork_tally t = { .word_end = SIZE_MAX };
    fp_error err = {0};
    fp_settings st = fp_default_settings();
    st.k = o->k;
    st.beam_width = o->beam;
    st.lookahead = o->lookahead;
    st.fork_entropy_bits = o->entropy;
    st.fork_top1_below = o->top1;
    st.fork_margin_below = o->margin;
    st.min_gap_tokens = o->gap;
    st.max_forks_per_sentence = o->per_sentence;
    st.repeat_penalty = o->repeat_penalty;
    st.sample_auto = false;
    st.max_tokens = 0;
    const fp_settings base = st;
    if (prefs && !o->no_adapt) st = fp_prefs_adapt_settings(prefs, &base);
    fp_session *s = fp_session_new(e, PROMPT, &st, &err);
    if (!s) { fprintf(stderr, "bench_textentry: session: %s\n", err.message); return t; }
    if (prefs && fp_session_set_prefs(s, prefs, &err) != FP_OK) {
        fprintf(stderr, "bench_textentry: profile: %s\n", err.message);
        fp_session_free(s);
        return t;
    }
    int64_t adapted_at = prefs ? fp_prefs_habits_get(prefs).decisions : 0;
    const size_t floor = fp_session_prompt_len(s);
    size_t best_len = 0;
    int32_t stalls = 0;
    for (int32_t step = 0; step < 20000; step++) {
        const char *text = fp_session_text(s);
        const size_t len = fp_session_text_len(s);
        const size_t d = common_prefix(text, len, full, n_full);
        fp_status rc = FP_OK;
        /* every ADAPT_EVERY decisions the settings follow the person's
         * habits, as a front end would at a fork (the fork is recomputed) */
        if (prefs && !o->no_adapt && d == len && fp_session_state(s) == FP_STATE_AT_FORK &&
            fp_prefs_habits_get(prefs).decisions - adapted_at >= ADAPT_EVERY) {
            adapted_at = fp_prefs_habits_get(prefs).decisions;
            const fp_settings now = fp_prefs_adapt_settings(prefs, &base);
            if (!same_fork_settings(&now, fp_session_settings(s))) {
                if (fp_session_set_settings(s, &now, &err) != FP_OK) {
                    fprintf(stderr, "bench_textentry: adapted settings: %s\n", err.message);
                    break;
                }
                continue;
            }
        }
        if (d == n_full) {
            if (len > n_full) {   /* cut the run-on text */
                t.repairs++;
                act(s, "repair", -1, -1, 0, token_start(s, n_full));
                trace(o, "fp", "stop", "", 0);
            }
            t.ok = true;
            break;
        }
        if (d < len) {
            /* point at the first wrong character (the library rounds down to its token) */
            t.repairs++;
            if (d == t.word_end && d > 0 && is_word_char((unsigned char)text[d - 1]) &&
                is_word_char((unsigned char)text[d]))
            {
                t.word_runons++;  /* " in" chosen, the model wrote " inside" */
                trace(o, "fp", "run-on in", text, len);
            }
            t.word_end = SIZE_MAX;
            trace(o, "fp", "repair@", text + d, len - d < 40 ? len - d : 40);
            act(s, "repair", -1, -1, 0, token_start(s, d));
            rc = fp_session_fork_at(s, token_start(s, d), &err);
        } else if (fp_session_state(s) == FP_STATE_ENDED) {
            t.repairs++;  /* the model stopped early: ask for a fork at the end */
            trace(o, "fp", "continue", "", 0);
            act(s, "continue", -1, -1, 0, SIZE_MAX);
            rc = fp_session_fork_at(s, len, &err);
        } else {
            t.word_end = SIZE_MAX;
            rc = decide_fork(s, full, len, n_full, floor, &t, o, &err);
        }
        if (rc != FP_OK) {
            fprintf(stderr, "bench_textentry: forkpoint writer stuck at byte %zu: %s %s\n", len,
                    fp_status_name(rc), err.message);
            break;
        }
        if (d > best_len) { best_len = d; stalls = 0; }
        else if (++stalls > 50) {
            fprintf(stderr, "bench_textentry: forkpoint writer makes no progress at byte %zu\n", d);
            break;
        }
    }
    /* who wrote the final text: the model unasked, or a decision */
    for (int32_t i = 0; i < fp_session_n_positions(s); i++) {
        const fp_position *p = fp_session_position(s, i);
        const size_t a = fp_session_position_offset(s, i);
        const size_t b = i + 1 < fp_session_n_positions(s) ? fp_session_position_offset(s, i + 1)
                                                           : fp_session_text_len(s);
        if (p->by == FP_BY_AUTO && a < n_full) t.auto_bytes += (int32_t)((b < n_full ? b : n_full) - a);
    }
    fp_session_free(s);
    return t;
}

/* --------------------------------------------------------------- the keyboard */

/* What the word-prediction keyboard writer did for one target. */
typedef struct kb_tally {
    int32_t selections;      /* taps on a prediction (inserts the word and a space) */
    int32_t sel_at_start;    /* ... of which before any letter of the word was typed */
    int32_t letters;         /* letters of words typed */
    int32_t other_keys;      /* punctuation, spaces and Enter */
    int32_t words;           /* words the keyboard was asked to predict */
    bool    ok;
} kb_tally;

/* The keyboard's cost: taps, letters and other keys, one action each. */
static int32_t kb_actions(const kb_tally *t) { return t->selections + t->letters + t->other_keys; }

/* Brings the keyboard's model session to exactly full[0..o) with a fork open
 * at its end, whatever the session holds now: cut back where it differs or
 * runs on, and add missing target text (typed when it starts with a space,
 * else the model's own candidate for it, else typed from the last space).
 * This is bookkeeping for the prediction model, not the person's work (the
 * keyboard knows the text the person has entered), so nothing is counted. */
static fp_status kb_sync(fp_session *s, const char *full, size_t o, size_t floor, fp_error *err) {
    for (int32_t iter = 0; iter < 64; iter++) {
        const char *text = fp_session_text(s);
        const size_t len = fp_session_text_len(s);
        const size_t d = common_prefix(text, len, full, o);
        fp_status st = FP_OK;
        if (d == o && len == o && fp_session_state(s) == FP_STATE_AT_FORK) return FP_OK;
        if (d < len) st = fp_session_fork_at(s, token_start(s, d), err);
        else if (fp_session_state(s) == FP_STATE_ENDED) st = fp_session_fork_at(s, len, err);
        else if (full[len] == ' ') {
            char chunk[FP_MAX_TEXT];
            size_t n = o - len;
            if (n > sizeof chunk - 2) n = fp_utf8_complete_prefix(full + len, sizeof chunk - 2);
            memcpy(chunk, full + len, n);
            chunk[n] = 0;
            st = fp_session_type_commit(s, chunk, FP_BY_SCRIPT, err);
        } else {
            const unit u = unit_at(full, len, o);
            char prefix[FP_MAX_TEXT];
            const size_t pl = u.end - u.body < sizeof prefix - 1 ? u.end - u.body : sizeof prefix - 1;
            memcpy(prefix, full + u.body, pl);
            prefix[pl] = 0;
            bool wp;
            size_t gain;
            int32_t i = -1;
            if (u.body == len && pl > 0) {
                st = fp_session_type_prefix(s, prefix, err);
                if (st != FP_OK) return st;
                i = best_match(fp_session_fork(s), full + len, o - len, false, &wp, &gain);
            }
            if (i >= 0) st = fp_session_choose(s, i, false, FP_BY_SCRIPT, err);
            else {
                const size_t j = last_space(full, floor, len);
                if (j == (size_t)-1) break;
                st = fp_session_fork_at(s, token_start(s, j), err);
            }
        }
        if (st != FP_OK) return st;
    }
    snprintf(err->message, sizeof err->message, "the keyboard's model session does not settle at byte %zu", o);
    return err->code = FP_ERR_STATE;
}

/* Is the wanted word among the keyboard's predictions? The keyboard shows
 * the kb_k most probable candidates that are words (punctuation and the end
 * of text are not offered on a word-prediction bar), compared without their
 * leading space and exactly otherwise (case included). */
static bool kb_offers(const fp_fork *f, const char *body, size_t blen, int32_t kb_k) {
    int32_t shown = 0;
    for (int32_t i = 0; i < f->n_candidates && shown < kb_k; i++) {
        const fp_candidate *c = &f->candidates[i];
        if (c->is_eog) continue;
        const char *key = c->text;
        while (is_ws((unsigned char)*key)) key++;
        if (!*key || !is_word_char((unsigned char)*key)) continue;
        shown++;
        if (strlen(key) == blen && memcmp(key, body, blen) == 0) return true;
    }
    return false;
}

/* Writes full = PROMPT + target with a top-kb_k word-prediction keyboard.
 * Words: a tap on a prediction as soon as the word is offered (before the
 * first letter or after any letter but the last), else all its letters.
 * A tap inserts the word and a space; the space counts as typed when the
 * next text starts with a space, and is removed for free before punctuation
 * or a line break (as phone keyboards do). Punctuation, spaces and Enter are
 * one keystroke each. The predictions come from the library's word cloud on
 * a session that forks at every word start, narrowed by the typed letters
 * with fp_session_type_prefix: the same model, sampler chain and word search
 * as the Forkpoint writer. */
static kb_tally write_keyboard(fp_engine *e, const char *full, size_t n_full, const options *o) {
    kb_tally t = {0};
    fp_error err = {0};
    fp_settings st = fp_default_settings();
    st.k = o->kb_search;
    st.beam_width = o->beam > o->kb_search ? o->beam : o->kb_search;
    st.lookahead = 0;                 /* a keyboard shows no previews */
    st.fork_entropy_bits = 0.0f;
    st.fork_top1_below = 1.01f;       /* every word start is a fork */
    st.fork_margin_below = 0.0f;
    st.min_gap_tokens = 0;
    st.max_forks_per_sentence = 0;
    st.repeat_penalty = o->repeat_penalty;
    st.sample_auto = false;
    st.max_tokens = 0;
    fp_session *s = fp_session_new(e, PROMPT, &st, &err);
    if (!s) { fprintf(stderr, "bench_textentry: keyboard session: %s\n", err.message); return t; }
    const size_t floor = fp_session_prompt_len(s);
    size_t pos = floor;
    bool auto_space = false;
    while (pos < n_full) {
        const unit u = unit_at(full, pos, n_full);
        for (size_t j = u.start; j < u.body; j++)
            if (!(j == u.start && auto_space && full[j] == ' ')) t.other_keys++;
        auto_space = false;
        if (u.body == u.end) break;
        if (is_punct((unsigned char)full[u.body])) {
            t.other_keys += count_chars(full + u.body, u.end - u.body);
            pos = u.end;
            continue;
        }
        /* a word: its context ends before its space (the model's words carry it) */
        t.words++;
        const size_t ctx = u.body > u.start && full[u.body - 1] == ' ' ? u.body - 1 : u.body;
        const fp_status rc = kb_sync(s, full, ctx, floor, &err);
        if (rc != FP_OK) {
            fprintf(stderr, "bench_textentry: keyboard stuck at byte %zu: %s %s\n", ctx,
                    fp_status_name(rc), err.message);
            fp_session_free(s);
            return t;
        }
        const char *body = full + u.body;
        const size_t blen = u.end - u.body;
        bool picked = kb_offers(fp_session_fork(s), body, blen, o->kb_k);
        if (picked) t.sel_at_start++;
        char prefix[FP_MAX_TEXT];
        size_t pl = 0;
        while (!picked && pl < blen) {
            const size_t cl = char_len(body + pl);
            pl += cl;
            t.letters++;
            if (pl >= blen) break;   /* the whole word is typed */
            if (pl >= sizeof prefix) { t.letters += count_chars(body + pl, blen - pl); break; }
            memcpy(prefix, body, pl);
            prefix[pl] = 0;
            if (fp_session_type_prefix(s, prefix, &err) != FP_OK) {
                fprintf(stderr, "bench_textentry: keyboard prefix: %s\n", err.message);
                fp_session_free(s);
                return t;
            }
            picked = kb_offers(fp_session_fork(s), body, blen, o->kb_k);
        }
        if (picked) { t.selections++; auto_space = true; }
        if (o->trace) {
            fprintf(stderr, "  [kb] %-10s |%.*s| after %zu letters\n", picked ? "select" : "typed",
                    (int)blen, body, picked ? pl : blen);
        }
        pos = u.end;
    }
    t.ok = pos >= n_full;
    fp_session_free(s);
    return t;
}

/* ------------------------------------------------------------------ main */

/* Runs both writers over every target and prints the record. */
int main(int argc, char **argv) {
    options o;
    parse(&o, argc, argv);
    char path[4096];
    fp_model *model = bench_load_model("bench_textentry", o.model[0] ? o.model : NULL, path, sizeof path);
    fp_error err = {0};
    fp_engine_params ep = fp_engine_default_params();
    ep.n_threads = o.threads;
    /* cells: a 512-token text plus the branch cells of the widest fork asked for */
    /* (with a profile, the widest the adapted settings can be: k and beam 64, twice the lookahead up to 32) */
    const bool adapts = !o.no_profile && !o.no_adapt;
    const int32_t kw = adapts ? 64 : o.k, bw = adapts ? 64 : o.beam;
    const int32_t lw = adapts && o.lookahead < 16 ? 2 * o.lookahead : adapts && o.lookahead < 32 ? 32 : o.lookahead;
    const int32_t kmax = kw > o.kb_search ? kw : o.kb_search;
    const int32_t cells = 512 + (bw > o.beam ? bw : o.beam) * FP_MAX_PATH + kmax * (lw + 1);
    ep.n_ctx = (uint32_t)((cells + 255) / 256 * 256);
    ep.n_seq_max = 160;     /* a 64-path beam plus the shown words' own copies */
    g_model = model;
    fp_engine *e = fp_engine_new(model, &ep, &err);
    if (!e) { fprintf(stderr, "bench_textentry: %s\n", err.message); fp_model_free(model); return 1; }

    char today[16];
    bench_today(today);
    printf("bench_textentry  %s  model %s  threads %d  load %.2f\n", today, bench_basename(path),
           o.threads, bench_loadavg());
    printf("targets: %d stories sampled at temperature 1 (seeds %d..%d, %d tokens, trimmed to a sentence)"
           " after \"%s\"\n", o.stories, o.seed_base, o.seed_base + o.stories - 1, o.target_tokens, PROMPT);
    printf("forkpoint: word candidates k %d, beam %d, lookahead %d, entropy >= %.2f, top1 < %.2f, "
           "margin < %.2f, gap %d, per sentence %d%s%s%s\n", o.k, o.beam, o.lookahead, o.entropy, o.top1,
           o.margin, o.gap, o.per_sentence, o.no_preview ? ", no previews" : "",
           o.no_prefix ? ", no prefix narrowing" : "", o.no_point ? ", no pointing into previews" : "");
    printf("           %s\n", o.no_profile ? "no profile: these settings all along"
                               : o.no_adapt ? "one profile over every story, settings fixed (--no-adapt)"
                               : "one profile over every story, new at the first; settings adapt to its habits"
                                 " every 16 decisions (the above are where they start)");
    printf("keyboard:  top-%d word predictions (from the %d best cloud words), repeat penalty %.2f for both\n\n",
           o.kb_k, o.kb_search, o.repeat_penalty);

    if (o.actions[0] && !(g_act = fopen(o.actions, "w"))) {
        fprintf(stderr, "bench_textentry: cannot write %s\n", o.actions);
        return 2;
    }
    /* the writer is one person: one profile over every story, new at the first */
    fp_prefs *prefs = o.no_profile ? NULL : fp_prefs_new(fp_model_n_vocab(model));
    if (!o.no_profile && !prefs) { fprintf(stderr, "bench_textentry: out of memory\n"); return 1; }
    const double t0 = bench_now_ms();
    char **targets = calloc((size_t)o.stories, sizeof *targets);
    if (!targets) return 1;
    for (int32_t i = 0; i < o.stories; i++) {
        targets[i] = sample_target(e, &o, (uint32_t)(o.seed_base + i), &err);
        if (!targets[i]) { fprintf(stderr, "bench_textentry: target %d: %s\n", i, err.message); return 1; }
        if (o.show_targets) printf("target %2d: %s%s\n", i, PROMPT, targets[i]);
    }
    if (o.show_targets) printf("\n");
    const double t_targets = bench_now_ms() - t0;

    printf("%5s %5s | %5s %5s %4s %4s %4s %4s %4s %4s %4s %4s | %5s %5s %4s %4s %4s | %6s\n",
           "story", "chars", "fp", "a/ch", "cho", "pv", "pt", "pfx", "ltr", "cmt", "rep", "auto%",
           "kb", "a/ch", "sel", "ltr", "oth", "fp/kb");
    fork_tally ft = {0};
    kb_tally kt = {0};
    int64_t chars = 0;
    int32_t failed = 0;
    double t_fp = 0, t_kb = 0;
    for (int32_t i = 0; i < o.stories; i++) {
        char full[MAX_DOC];
        const int w = snprintf(full, sizeof full, "%s%s", PROMPT, targets[i]);
        if (w < 0 || (size_t)w >= sizeof full) { fprintf(stderr, "bench_textentry: target too long\n"); return 1; }
        const size_t n_full = (size_t)w;
        const int32_t n_chars = count_chars(targets[i], strlen(targets[i]));
        if (o.trace) fprintf(stderr, "story %d\n", i);
        g_story = i;
        if (g_act) {   /* the target, for the letter-by-letter keyboards */
            fprintf(g_act, "{\"s\":%d,\"target\":\"", i);
            for (const char *c = targets[i]; *c; c++) {
                if (*c == '"' || *c == '\\') fprintf(g_act, "\\%c", *c);
                else if ((unsigned char)*c < 0x20) fprintf(g_act, "\\u%04x", (unsigned char)*c);
                else fputc(*c, g_act);
            }
            fputs("\"}\n", g_act);
        }
        double a = bench_now_ms();
        const fork_tally f = write_forkpoint(e, full, n_full, &o, prefs);
        double b = bench_now_ms();
        const kb_tally k = write_keyboard(e, full, n_full, &o);
        double c = bench_now_ms();
        t_fp += b - a;
        t_kb += c - b;
        const int32_t fa = fork_actions(&f), ka = kb_actions(&k);
        printf("%5d %5d | %5d %5.3f %4d %4d %4d %4d %4d %4d %4d %4.0f%% | %5d %5.3f %4d %4d %4d | %6.3f%s\n",
               i, n_chars, fa, (double)fa / n_chars, f.choices, f.previews, f.points, f.prefix_choices, f.letters,
               f.commits, f.repairs, 100.0 * f.auto_bytes / (double)strlen(targets[i]),
               ka, (double)ka / n_chars, k.selections, k.letters, k.other_keys,
               ka ? (double)fa / ka : 0.0, f.ok && k.ok ? "" : "  (FAILED: left out of the totals)");
        if (!f.ok || !k.ok) { failed++; continue; }
        chars += n_chars;
        ft.choices += f.choices; ft.previews += f.previews; ft.prefix_choices += f.prefix_choices;
        ft.prefix_previews += f.prefix_previews; ft.points += f.points; ft.prefix_points += f.prefix_points;
        ft.letters += f.letters; ft.commits += f.commits;
        ft.repairs += f.repairs; ft.glue_fixes += f.glue_fixes; ft.glue_extra += f.glue_extra;
        ft.word_runons += f.word_runons; ft.newline_types += f.newline_types;
        ft.forks += f.forks; ft.auto_bytes += f.auto_bytes; ft.chosen_bytes += f.chosen_bytes;
        ft.typed_bytes += f.typed_bytes;
        kt.selections += k.selections; kt.sel_at_start += k.sel_at_start; kt.letters += k.letters;
        kt.other_keys += k.other_keys; kt.words += k.words;
    }
    if (chars == 0) { fprintf(stderr, "bench_textentry: no story was written\n"); return 1; }
    const double fa = fork_actions(&ft), ka = kb_actions(&kt), ch = (double)chars;
    printf("\ntotals over %d stories, %lld characters%s\n", o.stories - failed, (long long)chars,
           failed ? " (some stories failed, see above)" : "");
    printf("  forkpoint: %6.0f actions = %d choices + %d choices with preview + %d points into a preview\n"
           "                              + %d choices after letters (%d with preview, %d pointing)\n"
           "                              + %d typed characters + %d commits + %d repairs"
           " (%d line breaks typed)\n"
           "             %d of the repairs follow a word chosen alone that the model went on spelling"
           " (\" in\" -> \" inside\")\n"
           "             of these, %d actions (%d back-ups to a space + characters typed again) are spent\n"
           "             because typed text cannot start without a space; without them: %.3f actions/char\n",
           fa, ft.choices, ft.previews, ft.points, ft.prefix_choices, ft.prefix_previews, ft.prefix_points,
           ft.letters, ft.commits, ft.repairs, ft.newline_types, ft.word_runons, ft.glue_extra, ft.glue_fixes,
           (fa - ft.glue_extra) / (double)chars);
    printf("             %d forks decided; of the text %.0f%% written by the model unasked (auto), "
           "%.0f%% accepted at forks (words + previews, incl. text later repaired), %.0f%% typed\n",
           ft.forks, 100.0 * ft.auto_bytes / ch, 100.0 * ft.chosen_bytes / ch, 100.0 * ft.typed_bytes / ch);
    printf("  keyboard:  %6.0f actions = %d prediction taps (%d before any letter) + %d letters"
           " + %d other keys; %d words, %.0f%% of them taken from the bar\n",
           ka, kt.selections, kt.sel_at_start, kt.letters, kt.other_keys, kt.words,
           kt.words ? 100.0 * kt.selections / kt.words : 0.0);
    printf("  typing:    %6.0f keystrokes (one per character)\n", ch);
    if (prefs) {
        const fp_prefs_habits h = fp_prefs_habits_get(prefs);
        fp_settings base = fp_default_settings();
        base.k = o.k; base.beam_width = o.beam; base.lookahead = o.lookahead;
        base.fork_entropy_bits = o.entropy; base.fork_top1_below = o.top1; base.fork_margin_below = o.margin;
        base.min_gap_tokens = o.gap; base.max_forks_per_sentence = o.per_sentence;
        const fp_settings a = fp_prefs_adapt_settings(prefs, &base);
        printf("  profile:   %lld decisions: typed %.2f, pointed %.2f, preview depth %.2f (%lld with a preview),"
               " repairs %.2f per decision\n", (long long)h.decisions, h.typed, h.pointed, h.depth,
               (long long)h.depth_n, h.repairs);
        printf("             settings at the end%s: k %d, beam %d, lookahead %d, gap %d, per sentence %d, top1 < %.2f\n",
               o.no_adapt ? " (not applied: --no-adapt)" : "", a.k, a.beam_width, a.lookahead, a.min_gap_tokens,
               a.max_forks_per_sentence, a.fork_top1_below);
    }
    printf("\n");
    printf("actions per character:  forkpoint %.3f   keyboard %.3f   typing 1.000\n", fa / ch, ka / ch);
    printf("keystroke savings:      forkpoint %.1f%%   keyboard %.1f%%\n", 100.0 * (1.0 - fa / ch),
           100.0 * (1.0 - ka / ch));
    printf("forkpoint / keyboard:   %.3f  (goal <= 0.600: %s)\n", fa / ka, fa / ka <= 0.6 ? "met" : "not met");
    printf("forkpoint per char:     %.3f  (goal <= 0.350: %s)\n", fa / ch, fa / ch <= 0.35 ? "met" : "not met");
    printf("time: targets %.1f s, forkpoint writer %.1f s, keyboard %.1f s; load %.2f\n",
           t_targets / 1e3, t_fp / 1e3, t_kb / 1e3, bench_loadavg());

    for (int32_t i = 0; i < o.stories; i++) free(targets[i]);
    free(targets);
    if (g_act && fclose(g_act) != 0) { fprintf(stderr, "bench_textentry: writing %s failed\n", o.actions); return 1; }
    fp_prefs_free(prefs);
    fp_engine_free(e);
    fp_model_free(model);
    return 0;
}
