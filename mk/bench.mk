# mk/bench.mk — the benchmarks (bench/), included by the top-level Makefile.
#
# Why a separate file: benchmarks are a front end like the others; they plug
# in here without touching the core build. Binaries go to build/release/bench/.
#
#   make bench-tools   build gen_model, bench_fork and bench_throughput
#   make bench         build them, then run every benchmark on stories260K and
#                      on the synthetic 0.5B-shaped model (generated once into
#                      the cache by gen_model; about 0.5 GB while it is made)
#
# BENCH_THREADS sets the thread count of every run (default 2); BENCH_ARGS is
# passed to both bench_fork runs (e.g. BENCH_ARGS="--k 4 --reps 3").
# Each benchmark prints ratios measured in its own run; nothing asserts a time.

BENCH_DIR     := $(BUILD)/release/bench
BENCH_THREADS ?= 2
BENCH_ARGS    ?=
BENCH_TOOLS   := $(BENCH_DIR)/gen_model $(BENCH_DIR)/bench_fork $(BENCH_DIR)/bench_throughput

.PHONY: bench bench-tools

bench-tools: deps
	@$(MAKE) --no-print-directory $(BENCH_TOOLS)

bench: bench-tools
	$(BENCH_DIR)/bench_fork --threads $(BENCH_THREADS) $(BENCH_ARGS)
	$(BENCH_DIR)/bench_throughput --threads $(BENCH_THREADS)
	synth=$$($(BENCH_DIR)/gen_model --threads $(BENCH_THREADS)) && \
	  $(BENCH_DIR)/bench_fork --model "$$synth" --threads $(BENCH_THREADS) $(BENCH_ARGS) && \
	  $(BENCH_DIR)/bench_throughput --model "$$synth" --threads $(BENCH_THREADS)

$(BENCH_DIR)/%.o: bench/%.c bench/bench_util.h include/forkpoint.h $(BUILD)/llama.mk
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS_release) -MMD -MP -c $< -o $@

# gen_model needs only llama.cpp (and ggml's gguf API), not the library.
$(BENCH_DIR)/gen_model: $(BENCH_DIR)/gen_model.o
	$(CC) -o $@ $^ $(LLAMA_LIBS) $(SYS_LIBS)

$(BENCH_DIR)/bench_fork $(BENCH_DIR)/bench_throughput: $(BENCH_DIR)/%: $(BENCH_DIR)/%.o \
		$(BENCH_DIR)/bench_util.o $(BUILD)/release/libforkpoint.a
	$(CC) -o $@ $^ $(LLAMA_LIBS) $(SYS_LIBS)
