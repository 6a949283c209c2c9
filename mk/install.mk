# mk/install.mk — `make install`, as C projects are packaged.
#
#   make install [PREFIX=/usr/local] [DESTDIR=staging]
#
# installs:
#   bin/forkpoint, bin/forkpoint-serve
#   lib/libforkpoint.so.$(SOVERSION) (+ .so.0 and .so links): the core with
#       llama.cpp linked in, exporting fp_* only (mk/libforkpoint.map)
#   lib/libforkpoint.a: the same as one static archive (llama.cpp's objects inside)
#   lib/libforkpoint_store.a, lib/libforkpoint_fetch.a: the decision log
#       (SQLite or PostgreSQL: link -lsqlite3 -lpq) and the default model
#       (libcurl), for front ends
#   include/forkpoint*.h, lib/pkgconfig/forkpoint.pc, share/man/man1/*.1
#
# Why a separate "pic" build: a shared library needs position-independent
# objects; the release and test builds do not pay for it.

PREFIX     ?= /usr/local
DESTDIR    ?=
SOVERSION  := 0.1.0
SOMAJOR    := 0
PIC_DIR    := $(BUILD)/pic
PIC_OBJS   := $(patsubst src/%.c,$(PIC_DIR)/%.o,$(CORE_SRC))
MAN_PAGES  := $(wildcard docs/man/*.1)
PUB_HEADERS := $(wildcard include/*.h)

$(PIC_DIR)/%.o: src/%.c $(wildcard include/*.h) $(wildcard src/core/*.h) $(BUILD)/llama.mk
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS_release) -fPIC -MMD -MP -c $< -o $@

$(PIC_DIR)/libforkpoint.so.$(SOVERSION): $(PIC_OBJS) mk/libforkpoint.map mk/install.mk
	$(CC) -shared -Wl,-soname,libforkpoint.so.$(SOMAJOR) -Wl,--version-script,mk/libforkpoint.map \
	  -o $@ $(PIC_OBJS) $(LLAMA_LIBS) -lcjson -lcurl -lstdc++ -lm -lpthread -ldl

# one static archive: the core and llama.cpp's objects (ar's MRI script)
$(PIC_DIR)/libforkpoint.a: $(BUILD)/release/libforkpoint.a
	@mkdir -p $(dir $@)
	@rm -f $@
	{ echo "create $@"; echo "addlib $<"; for l in $(LLAMA_LIBS); do echo "addlib $$l"; done; echo save; echo end; } | ar -M

FP_VERSION_STR := $(shell sed -n 's/^#define FP_VERSION "\(.*\)"/\1/p' include/forkpoint.h)

.PHONY: install uninstall
install: deps
	@$(MAKE) --no-print-directory $(BUILD)/release/forkpoint $(BUILD)/release/forkpoint-serve \
	  $(BUILD)/release/libforkpoint_store.a $(BUILD)/release/libforkpoint_fetch.a \
	  $(PIC_DIR)/libforkpoint.so.$(SOVERSION) $(PIC_DIR)/libforkpoint.a
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include \
	  $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 755 $(BUILD)/release/forkpoint $(BUILD)/release/forkpoint-serve $(DESTDIR)$(PREFIX)/bin/
	install -m 755 $(PIC_DIR)/libforkpoint.so.$(SOVERSION) $(DESTDIR)$(PREFIX)/lib/
	ln -sf libforkpoint.so.$(SOVERSION) $(DESTDIR)$(PREFIX)/lib/libforkpoint.so.$(SOMAJOR)
	ln -sf libforkpoint.so.$(SOMAJOR) $(DESTDIR)$(PREFIX)/lib/libforkpoint.so
	install -m 644 $(PIC_DIR)/libforkpoint.a $(BUILD)/release/libforkpoint_store.a \
	  $(BUILD)/release/libforkpoint_fetch.a $(DESTDIR)$(PREFIX)/lib/
	install -m 644 $(PUB_HEADERS) $(DESTDIR)$(PREFIX)/include/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(FP_VERSION_STR)|' mk/forkpoint.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/forkpoint.pc
	install -m 644 $(MAN_PAGES) $(DESTDIR)$(PREFIX)/share/man/man1/

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/forkpoint $(DESTDIR)$(PREFIX)/bin/forkpoint-serve \
	  $(DESTDIR)$(PREFIX)/lib/libforkpoint.so* $(DESTDIR)$(PREFIX)/lib/libforkpoint.a \
	  $(DESTDIR)$(PREFIX)/lib/libforkpoint_store.a $(DESTDIR)$(PREFIX)/lib/libforkpoint_fetch.a \
	  $(DESTDIR)$(PREFIX)/lib/pkgconfig/forkpoint.pc \
	  $(addprefix $(DESTDIR)$(PREFIX)/include/,$(notdir $(PUB_HEADERS))) \
	  $(addprefix $(DESTDIR)$(PREFIX)/share/man/man1/,$(notdir $(MAN_PAGES)))

