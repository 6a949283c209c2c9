# mk/models.mk — test fixtures: tiny random-weight models on other vocabularies.
#
# tests/unit/test_vocab.c runs the whole pipeline (tokenizer, word grouping,
# candidates, prefix narrowing, saving) on models with the tokenizers of
# ../shared/models/vocab-only, which hold no weights. bench/gen_model --tiny
# builds a 2-layer, 64-wide F16 body with random weights around each (about
# a second and 10-20 MB apiece, in build/models, never in the repository);
# --no-marks builds one whose pieces carry no word marks, which Forkpoint
# must refuse.
FP_MODELS_DIR ?= $(or $(FP_TEST_MODELS),../shared/models)
TINY_DIR      := $(BUILD)/models
TINY_MODELS   := $(TINY_DIR)/tiny-falcon.gguf $(TINY_DIR)/tiny-phi-3.gguf $(TINY_DIR)/tiny-bert-bge.gguf \
                 $(TINY_DIR)/tiny-nomarks.gguf

$(TINY_DIR)/tiny-nomarks.gguf: $(BUILD)/release/bench/gen_model
	@mkdir -p $(dir $@)
	$(BUILD)/release/bench/gen_model --tiny --no-marks --force --vocab $(FP_MODELS_DIR)/stories260K.gguf --out $@ >/dev/null
$(TINY_DIR)/tiny-%.gguf: $(BUILD)/release/bench/gen_model
	@mkdir -p $(dir $@)
	$(BUILD)/release/bench/gen_model --tiny --force --vocab $(FP_MODELS_DIR)/vocab-only/ggml-vocab-$*.gguf --out $@ >/dev/null

$(BUILD)/asan/tests/test_vocab $(BUILD)/clang/tests/test_vocab: | $(TINY_MODELS)
TEST_BINS += $(TINY_MODELS)
