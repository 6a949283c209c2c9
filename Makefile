# Forkpoint build. `make run` and `make test` do all set-up on a fresh Debian 12.
#
# Layout:  src/core  -> libforkpoint.a (the library: include/forkpoint.h, the
#                       writing core, and include/forkpoint_learn.h, learning)
#          src/store -> libforkpoint_store.a (decision log and profiles in SQLite)
#          src/fetch -> libforkpoint_fetch.a (the default model: find, download; libcurl)
#          src/cli   -> forkpoint (terminal front end and subcommands)
#          mk/*.mk   -> further front ends (server, benchmarks) plug in here
# Two builds: build/release (optimised) and build/asan (ASan + UBSan, for tests).

SHELL    := /bin/bash
BUILD    := build
CC       ?= cc
MODEL    ?=
ARGS     ?=

-include $(BUILD)/llama.mk

WARN     := -Wall -Wextra -Wno-unused-parameter -Wformat=2 -Wvla
CPPFLAGS := -Iinclude -Isrc -I$(LLAMA_PREFIX)/include -I/usr/include/postgresql -D_GNU_SOURCE
CFLAGS_release := -std=c11 -O2 -g $(WARN)
CFLAGS_asan    := -std=c11 -O1 -g $(WARN) -DFP_CHECKS -fsanitize=address,undefined,float-cast-overflow -fno-omit-frame-pointer -fno-sanitize-recover=undefined,float-cast-overflow
LDFLAGS_asan   := -fsanitize=address,undefined,float-cast-overflow

LLAMA_LIBS := $(LLAMA_PREFIX)/lib/libllama.a $(wildcard $(LLAMA_PREFIX)/lib/libggml.a) $(wildcard $(LLAMA_PREFIX)/lib/libggml-rpc.a) \
              $(wildcard $(LLAMA_PREFIX)/lib/libggml-cpu.a) $(wildcard $(LLAMA_PREFIX)/lib/libggml-base.a)
SYS_LIBS   := -lcjson -lcurl -lstdc++ -lm -lpthread -ldl

CORE_SRC  := $(wildcard src/core/*.c)
STORE_SRC := $(wildcard src/store/*.c)
FETCH_SRC := $(wildcard src/fetch/*.c)
CLI_SRC   := $(wildcard src/cli/*.c)

core_objs = $(patsubst src/%.c,$(BUILD)/$(1)/%.o,$(CORE_SRC))
store_objs = $(patsubst src/%.c,$(BUILD)/$(1)/%.o,$(STORE_SRC))
fetch_objs = $(patsubst src/%.c,$(BUILD)/$(1)/%.o,$(FETCH_SRC))
cli_objs  = $(patsubst src/%.c,$(BUILD)/$(1)/%.o,$(CLI_SRC))

.PHONY: all run test deps setup clean bench
all: $(BUILD)/release/forkpoint

# ---- set-up: Debian packages, then llama.cpp (fetched, verified, built once, cached)
$(BUILD)/.setup: scripts/setup.sh
	@mkdir -p $(BUILD)
	bash scripts/setup.sh
	@touch $@
$(BUILD)/llama.mk: scripts/llama.sh | $(BUILD)/.setup
	@mkdir -p $(BUILD)
	p=$$(bash scripts/llama.sh) && echo "LLAMA_PREFIX := $$p" > $@
deps: $(BUILD)/.setup $(BUILD)/llama.mk

# ---- objects and libraries, for each flavour (mk/fuzz.mk adds clang and
# fuzz: CC_<flavour> and DEFS_<flavour> say what differs), then the binaries
define flavour
$(BUILD)/$(1)/%.o: src/%.c $(wildcard include/*.h) $(wildcard src/core/*.h) $(BUILD)/llama.mk
	@mkdir -p $$(dir $$@)
	$$(or $$(CC_$(1)),$$(CC)) $$(CPPFLAGS) $$(CFLAGS_$(1)) $$(DEFS_$(1)) -MMD -MP -c $$< -o $$@
$(BUILD)/$(1)/libforkpoint.a: $(call core_objs,$(1))
	@rm -f $$@
	ar rcs $$@ $$^
$(BUILD)/$(1)/libforkpoint_store.a: $(call store_objs,$(1))
	@rm -f $$@
	ar rcs $$@ $$^
$(BUILD)/$(1)/libforkpoint_fetch.a: $(call fetch_objs,$(1))
	@rm -f $$@
	ar rcs $$@ $$^
endef
define program
$(BUILD)/$(1)/forkpoint: $(call cli_objs,$(1)) $(BUILD)/$(1)/libforkpoint_store.a $(BUILD)/$(1)/libforkpoint_fetch.a $(BUILD)/$(1)/libforkpoint.a
	$$(CC) $$(LDFLAGS_$(1)) -o $$@ $$^ $$(LLAMA_LIBS) -lsqlite3 -lpq $$(SYS_LIBS)
endef
$(foreach f,release asan,$(eval $(call flavour,$(f)))$(eval $(call program,$(f))))

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

# ---- tests: unit programs (one per file in tests/unit), linked against the ASan build
UNIT_SRC  := $(wildcard tests/unit/*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/asan/tests/%,$(UNIT_SRC))
$(BUILD)/asan/tests/%: tests/unit/%.c $(wildcard tests/unit/*.h) $(BUILD)/asan/libforkpoint_store.a $(BUILD)/asan/libforkpoint_fetch.a $(BUILD)/asan/libforkpoint.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -Itests/unit $(CFLAGS_asan) $(LDFLAGS_asan) -o $@ $< $(BUILD)/asan/libforkpoint_store.a $(BUILD)/asan/libforkpoint_fetch.a $(BUILD)/asan/libforkpoint.a $(LLAMA_LIBS) -lsqlite3 -lpq $(SYS_LIBS)

TEST_BINS := $(UNIT_BINS) $(BUILD)/asan/forkpoint $(BUILD)/release/forkpoint

-include $(wildcard mk/*.mk)

run: deps
	@$(MAKE) --no-print-directory $(BUILD)/release/forkpoint $(RUN_DEPS)
	$(RUN_CMD)

RUN_CMD ?= $(BUILD)/release/forkpoint write $(if $(MODEL),--model $(MODEL)) $(ARGS)

test: deps
	@$(MAKE) --no-print-directory $(TEST_BINS)
	bash tests/run.sh

clean:
	rm -rf $(BUILD)
