# mk/bench.mk — the benchmarks (bench/), included by the top-level Makefile.
#
# Why a separate file: benchmarks are a front end like the others; they plug
# in here without touching the core build. Binaries go to build/release/bench/.
#
#   make bench-tools   build gen_model, bench_fork, bench_throughput, bench_serve and bench_pick
#   make bench         build them, then run every benchmark on stories260K and
#                      on the synthetic 0.5B-shaped model (generated once into
#                      the cache by gen_model; about 0.5 GB while it is made)
#   make bench-serve   only bench_serve: time from a selection to the next fork
#                      through a real forkpoint-serve, with and without
#                      prefetch, and with concurrent sessions (about 5 minutes)
#   make bench-deploy  SQLite vs PostgreSQL vs three servers behind nginx
#                      (starts its own PostgreSQL; BENCH_DEPLOY_ARGS, e.g.
#                      "--clients 1,4 --choices 10")
#   make bench-batch   one server with cross-session batching vs --no-batching,
#                      the API load at 1, 4, 16 and 64 clients (BENCH_BATCH_ARGS,
#                      e.g. "--clients 1,16 --repeats 1")
#   make bench-remote  only bench_remote: a fork's cloud and previews over a remote
#                      engine (--backend llama-server:URL, a forkpoint-serve child
#                      on loopback) vs the local engine (BENCH_REMOTE_ARGS)
#   make bench-rpc     only bench_rpc: a fork's preparation local vs over 1 and
#                      2 RPC workers on loopback (its own worker processes;
#                      BENCH_RPC_ARGS, e.g. "--model PATH --threads 1")
#   make bench-persist only bench_persist: bytes and ms per click of saving a
#                      story at 10, 100 and 1,000 forks, old full rewrite vs
#                      append-only (BENCH_PERSIST_ARGS, e.g. "--forks 10,100")
#
# BENCH_THREADS sets the thread count of every run (default 2); BENCH_ARGS is
# passed to both bench_fork runs (e.g. BENCH_ARGS="--k 4 --reps 3").
# bench_serve keeps the server at one thread unless BENCH_SERVE_ARGS says
# otherwise (e.g. BENCH_SERVE_ARGS="--threads 2 --forks 200").
# Each benchmark prints ratios measured in its own run; nothing asserts a time.

BENCH_DIR     := $(BUILD)/release/bench
BENCH_THREADS ?= 2
BENCH_ARGS    ?=
BENCH_SERVE_ARGS ?=
BENCH_TOOLS   := $(BENCH_DIR)/gen_model $(BENCH_DIR)/bench_fork $(BENCH_DIR)/bench_throughput \
                 $(BENCH_DIR)/bench_serve $(BENCH_DIR)/bench_pick

.PHONY: bench bench-tools bench-serve bench-batch bench-rpc bench-remote
BENCH_BATCH_ARGS ?=

bench-tools: deps
	@$(MAKE) --no-print-directory $(BENCH_TOOLS)

# (The server is built by a line of its own: a recipe line that names
# $(MAKE) runs even under `make -n`, so it must not also run benchmarks.)
bench: bench-tools
	@$(MAKE) --no-print-directory $(BUILD)/release/forkpoint-serve
	$(BENCH_DIR)/bench_fork --threads $(BENCH_THREADS) $(BENCH_ARGS)
	$(BENCH_DIR)/bench_throughput --threads $(BENCH_THREADS)
	synth=$$($(BENCH_DIR)/gen_model --threads $(BENCH_THREADS)) && \
	  $(BENCH_DIR)/bench_fork --model "$$synth" --threads $(BENCH_THREADS) $(BENCH_ARGS) && \
	  $(BENCH_DIR)/bench_throughput --model "$$synth" --threads $(BENCH_THREADS) && \
	  $(BENCH_DIR)/bench_serve --synth "$$synth" $(BENCH_SERVE_ARGS)
	@$(MAKE) --no-print-directory $(BENCH_DIR)/bench_textentry $(BENCH_DIR)/bench_learning
	$(BENCH_DIR)/bench_textentry $(BENCH_TEXTENTRY_ARGS)
	$(BENCH_DIR)/bench_learning $(BENCH_LEARNING_ARGS)
	node bench/bench_access.mjs --textentry $(BENCH_DIR)/bench_textentry $(BENCH_ACCESS_ARGS)
	@$(MAKE) --no-print-directory $(BENCH_DIR)/bench_persist
	$(BENCH_DIR)/bench_persist $(BENCH_PERSIST_ARGS)
	node bench/bench_batch.mjs $(BENCH_BATCH_ARGS)

bench-batch: deps
	@$(MAKE) --no-print-directory $(BUILD)/release/forkpoint-serve
	node bench/bench_batch.mjs $(BENCH_BATCH_ARGS)

# bench_serve drives the server binary, so it needs that built too.
bench-serve: deps
	@$(MAKE) --no-print-directory $(BENCH_DIR)/bench_serve $(BUILD)/release/forkpoint-serve
	$(BENCH_DIR)/bench_serve $(BENCH_SERVE_ARGS)

$(BENCH_DIR)/%.o: bench/%.c bench/bench_util.h include/forkpoint.h $(BUILD)/llama.mk
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS_release) -MMD -MP -c $< -o $@

# gen_model needs only llama.cpp (and ggml's gguf API), not the library.
$(BENCH_DIR)/gen_model: $(BENCH_DIR)/gen_model.o
	$(CC) -o $@ $^ $(LLAMA_LIBS) $(SYS_LIBS)

$(BENCH_DIR)/bench_fork $(BENCH_DIR)/bench_throughput $(BENCH_DIR)/bench_rpc $(BENCH_DIR)/bench_remote $(BENCH_DIR)/bench_pick: $(BENCH_DIR)/%: $(BENCH_DIR)/%.o \
		$(BENCH_DIR)/bench_util.o $(BUILD)/release/libforkpoint_fetch.a $(BUILD)/release/libforkpoint.a
	$(CC) -o $@ $^ $(LLAMA_LIBS) $(SYS_LIBS)

# bench_serve is an HTTP client of forkpoint-serve: libcurl and cJSON only,
# neither the library nor llama.cpp.
$(BENCH_DIR)/bench_serve: $(BENCH_DIR)/bench_serve.o
	$(CC) -o $@ $^ -lcurl -lcjson -lpthread -lm

# ---- bench_textentry: actions per character with Forkpoint vs a word-prediction
# keyboard vs typing, on stories the model samples itself (issue 4).
# BENCH_TEXTENTRY_ARGS is passed on (e.g. "--k 16 --per-sentence 0").
BENCH_TEXTENTRY_ARGS ?=
.PHONY: bench-textentry
bench-textentry: deps
	@$(MAKE) --no-print-directory $(BENCH_DIR)/bench_textentry
	$(BENCH_DIR)/bench_textentry $(BENCH_TEXTENTRY_ARGS)

# ---- bench_access: a one-switch user (scanning) and a gaze user (dwell,
# look-then-confirm) writing held-out stories on the page's own scan order
# (web/access/scanorder.js), vs a row-column scanning keyboard and a dwell
# keyboard (issue 11). Runs bench_textentry --actions itself.
BENCH_ACCESS_ARGS ?= -- --per-sentence 0 --gap 1
.PHONY: bench-access
bench-access: deps
	@$(MAKE) --no-print-directory $(BENCH_DIR)/bench_textentry
	node bench/bench_access.mjs --textentry $(BENCH_DIR)/bench_textentry $(BENCH_ACCESS_ARGS)

$(BENCH_DIR)/bench_textentry: $(BENCH_DIR)/bench_textentry.o $(BENCH_DIR)/bench_util.o \
		$(BUILD)/release/libforkpoint_fetch.a $(BUILD)/release/libforkpoint.a
	$(CC) -o $@ $^ $(LLAMA_LIBS) $(SYS_LIBS)

# ---- bench_learning: simulated users with hidden tastes; does the learned
# preference model agree with them, and do interventions drop? (issues 4, 14)
# (default: 5 seeds, and the learning-curve figure the README shows)
BENCH_LEARNING_ARGS ?= --svg docs/img/learning_curves.svg
.PHONY: bench-learning
bench-learning: deps
	@$(MAKE) --no-print-directory $(BENCH_DIR)/bench_learning
	$(BENCH_DIR)/bench_learning $(BENCH_LEARNING_ARGS)

$(BENCH_DIR)/bench_learning: $(BENCH_DIR)/bench_learning.o $(BENCH_DIR)/bench_util.o \
		$(BUILD)/release/libforkpoint_store.a $(BUILD)/release/libforkpoint_fetch.a $(BUILD)/release/libforkpoint.a
	$(CC) -o $@ $^ $(LLAMA_LIBS) -lsqlite3 -lpq $(SYS_LIBS)

# ---- bench_persist: saving a story per click, old full rewrite vs append-only
# (it reads library internals to run the old writer: -Isrc is in CPPFLAGS)
BENCH_PERSIST_ARGS ?=
.PHONY: bench-deploy
bench-deploy: deps
	@$(MAKE) --no-print-directory $(BUILD)/release/forkpoint-serve
	bash bench/deploy_bench.sh $(BENCH_DEPLOY_ARGS)

.PHONY: bench-persist
bench-persist: deps
	@$(MAKE) --no-print-directory $(BENCH_DIR)/bench_persist
	$(BENCH_DIR)/bench_persist $(BENCH_PERSIST_ARGS)

$(BENCH_DIR)/bench_persist: $(BENCH_DIR)/bench_persist.o $(BENCH_DIR)/bench_util.o $(BUILD)/release/libforkpoint_fetch.a \
		$(BUILD)/release/libforkpoint_store.a $(BUILD)/release/libforkpoint.a
	$(CC) -o $@ $^ $(LLAMA_LIBS) -lsqlite3 -lpq $(SYS_LIBS)

# benchmarks are not run by `make test`, but they are built, so they cannot rot
TEST_BINS += $(BENCH_TOOLS) $(BENCH_DIR)/bench_textentry $(BENCH_DIR)/bench_learning $(BENCH_DIR)/bench_persist

# ---- bench_oai: what log-probabilities cost on the compatible API (/completion
# with n_probs 0, 20, 20 post-sampling, 256, streamed), one server, one run.
# BENCH_OAI_ARGS is passed on (e.g. "--model PATH --tokens 32").
BENCH_OAI_ARGS ?=
.PHONY: bench-oai
bench-oai: deps
	@$(MAKE) --no-print-directory $(BUILD)/release/forkpoint-serve
	node bench/bench_oai.mjs $(BENCH_OAI_ARGS)

# ---- bench_remote: --backend's cost, a fork over a remote engine (a
# forkpoint-serve child on loopback) vs the local engine, same run.
BENCH_REMOTE_ARGS ?=
bench-remote: deps
	@$(MAKE) --no-print-directory $(BENCH_DIR)/bench_remote $(BUILD)/release/forkpoint-serve
	$(BENCH_DIR)/bench_remote $(BENCH_REMOTE_ARGS)

# ---- bench_rpc: --rpc's cost (docs/deploy.md "RPC workers"); the workers are
# the program's own children on free loopback ports.
BENCH_RPC_ARGS ?=
bench-rpc: deps
	@$(MAKE) --no-print-directory $(BENCH_DIR)/bench_rpc
	$(BENCH_DIR)/bench_rpc $(BENCH_RPC_ARGS)
