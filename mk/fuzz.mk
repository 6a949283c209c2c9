# mk/fuzz.mk — the clang sanitizer build and the libFuzzer harnesses (fuzz/),
# included by the top-level Makefile.
#
# Why clang as well as gcc: gcc's -fsanitize=undefined leaves out
# float-cast-overflow (the asan flavour now names it), and gcc has neither
# clang's -fsanitize=integer checks nor libFuzzer. Two more flavours:
#
#   build/clang   the library, store, CLI and unit tests built by clang with
#                 ASan + UBSan + float-cast-overflow + the integer checks
#                 below; `make test` runs the unit tests in this build too
#   build/fuzz    the same sources with libFuzzer coverage (fuzzer-no-link),
#                 and one fuzzer per parser: build/fuzz/fuzz_<target>
#
#   make fuzz                    run every target for FUZZ_SECONDS (60) each,
#                                one after the other, on one core (nice)
#   make fuzz FUZZ_SECONDS=600   longer
#   make fuzz FUZZ_TARGETS=store only some targets
#   make fuzz-build              only build the fuzzers
#
# A run's new inputs go to build/fuzz/corpus/<target> (the committed seeds in
# fuzz/corpus/<target> are only read); crashes to build/fuzz/artifacts/.
# A crash found is minimised and copied to fuzz/regressions/<target>/, which
# `make test` replays (tests/fuzz_smoke.sh). docs/fuzzing.md has the rest.
#
# llama.cpp's static libraries are gcc/g++ builds without instrumentation;
# clang links them with -lstdc++ like gcc does (its code is fuzzed black-box).

CLANG ?= clang

# Integer checks: signed overflow, shifts, division by zero and the implicit
# conversions that lose value in signed types. Not unsigned-integer-overflow,
# unsigned-shift-base, implicit-unsigned-integer-truncation or
# implicit-integer-sign-change: hashes, the RNG and byte packing wrap unsigned
# values on purpose, and those checks would flag every one of them.
CLANG_SAN := -fsanitize=address,undefined,float-cast-overflow,integer \
             -fno-sanitize=unsigned-integer-overflow,unsigned-shift-base,implicit-unsigned-integer-truncation,implicit-integer-sign-change \
             -fno-sanitize-recover=all
CFLAGS_clang  := -std=c11 -O1 -g $(WARN) $(CLANG_SAN) -fno-omit-frame-pointer
LDFLAGS_clang := $(CLANG_SAN)

# The fuzz flavour: the same checks, plus coverage for libFuzzer. Every
# source's main() is renamed (fpi_main_cli_main, fpi_main_server_main) so the
# option parsers of both programs can be linked into a fuzzer.
CFLAGS_fuzz  := $(CFLAGS_clang) -fsanitize=fuzzer-no-link
LDFLAGS_fuzz := $(CLANG_SAN) -fsanitize=fuzzer

FUZZ_TARGETS ?= settings restore choices flags store prefs model request oai dialogue remote
FUZZ_SECONDS ?= 60
FUZZ_BINS    := $(patsubst %,$(BUILD)/fuzz/fuzz_%,$(FUZZ_TARGETS))
FUZZ_HDRS    := $(wildcard fuzz/*.h)

# ---- the clang flavour (library, store, CLI objects; unit tests): the
# Makefile's flavour rules, compiled by clang with FP_CHECKS and main renamed
CC_clang   = $(CLANG)
CC_fuzz    = $(CLANG)
DEFS_clang = -DFP_CHECKS -Dmain=fpi_main_$(subst /,_,$*)
DEFS_fuzz  = $(DEFS_clang)
$(eval $(call flavour,clang))
$(eval $(call flavour,fuzz))

CLANG_UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/clang/tests/%,$(UNIT_SRC))
$(BUILD)/clang/tests/%: tests/unit/%.c $(wildcard tests/unit/*.h) $(BUILD)/clang/libforkpoint_store.a $(BUILD)/clang/libforkpoint_fetch.a $(BUILD)/clang/libforkpoint.a
	@mkdir -p $(dir $@)
	$(CLANG) $(CPPFLAGS) -Itests/unit $(CFLAGS_clang) -DFP_CHECKS $(LDFLAGS_clang) -o $@ $< $(BUILD)/clang/libforkpoint_store.a $(BUILD)/clang/libforkpoint_fetch.a $(BUILD)/clang/libforkpoint.a $(LLAMA_LIBS) -lsqlite3 -lpq $(SYS_LIBS)

# ---- the fuzzers: the CLI and server objects go into archives, so each
# fuzzer pulls in only the modules it calls.
# (mk/server.mk is read after this file, so its SERVER_SRC is not known yet)
FUZZ_CLI_OBJS    := $(call cli_objs,fuzz)
FUZZ_SERVER_OBJS := $(patsubst src/%.c,$(BUILD)/fuzz/%.o,$(filter-out src/server/embed_tool.c,$(wildcard src/server/*.c))) \
                    $(BUILD)/fuzz/gen/web_assets.o
$(BUILD)/fuzz/gen/web_assets.o: $(BUILD)/gen/web_assets.c src/server/serve.h include/forkpoint.h
	@mkdir -p $(dir $@)
	$(CLANG) $(CPPFLAGS) $(CFLAGS_fuzz) -c $< -o $@
$(BUILD)/fuzz/libfp_cli.a: $(FUZZ_CLI_OBJS)
	@rm -f $@
	ar rcs $@ $^
$(BUILD)/fuzz/libfp_server.a: $(FUZZ_SERVER_OBJS)
	@rm -f $@
	ar rcs $@ $^
FUZZ_LIBS := $(BUILD)/fuzz/libfp_server.a $(BUILD)/fuzz/libfp_cli.a $(BUILD)/fuzz/libforkpoint_store.a \
             $(BUILD)/fuzz/libforkpoint_fetch.a $(BUILD)/fuzz/libforkpoint.a

$(BUILD)/fuzz/harness/%.o: fuzz/%.c $(FUZZ_HDRS) $(wildcard include/*.h) src/cli/cli.h src/server/serve.h $(BUILD)/llama.mk
	@mkdir -p $(dir $@)
	$(CLANG) $(CPPFLAGS) -Ifuzz $(CFLAGS_fuzz) -c $< -o $@
$(BUILD)/fuzz/fuzz_%: $(BUILD)/fuzz/harness/fuzz_%.o $(BUILD)/fuzz/harness/fuzz_common.o $(FUZZ_LIBS)
	$(CLANG) $(LDFLAGS_fuzz) -o $@ $< $(BUILD)/fuzz/harness/fuzz_common.o $(FUZZ_LIBS) $(LLAMA_LIBS) \
	  -lcivetweb -lssl -lcrypto -lsqlite3 -lpq $(SYS_LIBS)

# seedgen writes the seed corpora that need a real model (sessions, decision
# log rows); run by hand when a format changes: build/fuzz/seedgen fuzz/corpus
$(BUILD)/fuzz/seedgen: fuzz/seedgen.c $(BUILD)/clang/libforkpoint_store.a $(BUILD)/clang/libforkpoint_fetch.a $(BUILD)/clang/libforkpoint.a
	$(CLANG) $(CPPFLAGS) $(CFLAGS_clang) $(LDFLAGS_clang) -o $@ $< $(BUILD)/clang/libforkpoint_store.a \
	  $(BUILD)/clang/libforkpoint_fetch.a $(BUILD)/clang/libforkpoint.a $(LLAMA_LIBS) -lsqlite3 -lpq $(SYS_LIBS)

.PHONY: fuzz fuzz-build
fuzz-build: deps
	@$(MAKE) --no-print-directory $(FUZZ_BINS)

# One target at a time on one core (fuzz/campaign.sh says how).
fuzz: fuzz-build
	bash fuzz/campaign.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

TEST_BINS += $(CLANG_UNIT_BINS) $(FUZZ_BINS)
