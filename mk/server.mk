# mk/server.mk — the web app: forkpoint-serve (HTTP + WebSocket + SQLite), its
# page compiled in from web/, the example WebSocket client, and the API and
# browser test hooks. Included by the top-level Makefile.
#
# Why a generator step: the page must live inside the binary (no file serving
# from disk), so web/* become a C array in $(BUILD)/gen/web_assets.c, written
# by a small host tool built from src/server/embed_tool.c.

SERVER_SRC  := $(filter-out src/server/embed_tool.c,$(wildcard src/server/*.c))
# every file below web/ is compiled in, served at its path below web/
WEB_FILES   := $(sort $(shell find web -type f ! -name '.*'))
# -lssl/-lcrypto and the exported SSL_get_peer_certificate: see src/server/tls.c;
# the exported recv: see src/server/wsmask.c
SERVER_LIBS := -lcivetweb -lsqlite3 -lpq -lssl -lcrypto -Wl,--export-dynamic-symbol=SSL_get_peer_certificate \
               -Wl,--export-dynamic-symbol=SSL_read -Wl,--export-dynamic-symbol=SSL_write \
               -Wl,--export-dynamic-symbol=SSL_pending -Wl,--export-dynamic-symbol=SSL_shutdown \
               -Wl,--export-dynamic-symbol=SSL_get_error -Wl,--export-dynamic-symbol=SSL_free \
               -Wl,--export-dynamic-symbol=recv
# the camera-gaze library and the three face models it needs (detector,
# mesh, iris), from vendor/node_modules (scripts/setup.sh), served below
# /vendor/human/; left out when not installed (the page then says so)
HUMAN_DIR   := vendor/node_modules/@vladmandic/human
HUMAN_FILES := $(wildcard $(HUMAN_DIR)/dist/human.esm.js $(addprefix $(HUMAN_DIR)/models/,\
                 blazeface.json blazeface.bin facemesh.json facemesh.bin iris.json iris.bin))
EMBED_ARGS  := $(WEB_FILES) $(foreach f,$(HUMAN_FILES),$(f)=/vendor/human/$(patsubst $(HUMAN_DIR)/%,%,$(f)))

server_objs = $(patsubst src/%.c,$(BUILD)/$(1)/%.o,$(SERVER_SRC)) $(BUILD)/$(1)/gen/web_assets.o

$(BUILD)/tools/embed_tool: src/server/embed_tool.c
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -O1 $(WARN) -o $@ $<

$(BUILD)/gen/web_assets.c: $(WEB_FILES) $(HUMAN_FILES) $(BUILD)/tools/embed_tool
	@mkdir -p $(dir $@)
	$(BUILD)/tools/embed_tool $@ $(EMBED_ARGS)

define server_flavour
$(BUILD)/$(1)/gen/web_assets.o: $(BUILD)/gen/web_assets.c src/server/serve.h $(wildcard include/*.h)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CPPFLAGS) $$(CFLAGS_$(1)) -c $$< -o $$@
$(BUILD)/$(1)/forkpoint-serve: $(call server_objs,$(1)) $(BUILD)/$(1)/libforkpoint_store.a $(BUILD)/$(1)/libforkpoint_fetch.a $(BUILD)/$(1)/libforkpoint.a
	$$(CC) $$(LDFLAGS_$(1)) -o $$@ $$^ $$(LLAMA_LIBS) $$(SERVER_LIBS) $$(SYS_LIBS)
$(BUILD)/$(1)/ws_client: examples/ws_client.c
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CFLAGS_$(1)) $$(LDFLAGS_$(1)) -o $$@ $$< -lcivetweb -lcjson -lpthread
endef
$(eval $(call server_flavour,release))
$(eval $(call server_flavour,asan))

TEST_BINS += $(BUILD)/asan/forkpoint-serve $(BUILD)/release/forkpoint-serve \
             $(BUILD)/release/ws_client
RUN_DEPS  := $(BUILD)/release/forkpoint-serve
RUN_CMD    = $(BUILD)/release/forkpoint-serve $(if $(MODEL),--model $(MODEL)) $(ARGS)

# Run one suite on its own: `make test-api`, `make test-browser`.
.PHONY: serve test-api test-browser
serve: deps
	@$(MAKE) --no-print-directory $(BUILD)/release/forkpoint-serve
	$(RUN_CMD)
test-api: deps
	@$(MAKE) --no-print-directory $(BUILD)/asan/forkpoint-serve $(BUILD)/release/ws_client $(BUILD)/release/bench/gen_model \
	  $(BUILD)/release/forkpoint $(BUILD)/models/tiny-phi-3.gguf
	bash tests/api/run.sh
test-browser: deps
	@$(MAKE) --no-print-directory $(BUILD)/release/forkpoint-serve $(BUILD)/release/forkpoint
	bash tests/browser/run.sh

# test_reqparse compiles the server's request parser in (tests/unit/test_reqparse.c);
# GCC's -fsanitize=undefined leaves out float-to-integer overflow, which is
# exactly what "index": 1e300 must not reach, so that test adds it.
$(BUILD)/asan/tests/test_reqparse: CFLAGS_asan += -fsanitize=float-cast-overflow -fno-sanitize-recover=float-cast-overflow
