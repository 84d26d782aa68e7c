# dyno: build, test, install.  See README.md.
#
#   make                build every program into bin/
#   make check          test dependencies (t/deps.sh), build, lint the man
#                       pages, replay every fuzz corpus (make fuzz-replay),
#                       then run every test in t/ (SAN=1: all of it under
#                       ASan+UBSan)
#   make fuzz-replay    each t/fuzz harness over its seeds in t/fuzz/corpus/,
#                       built with $(CC) and the normal flags; fails on the
#                       first input that breaks a harness's property
#                       (one harness: bats -f NAME t/fuzz/replay.bats)
#   make static         build with musl-gcc (package musl-tools)
#   make install        PREFIX=/usr/local DESTDIR=
#   make fuzz           libFuzzer harnesses from t/fuzz (clang)
#   make clean

PREFIX  ?= /usr/local
MANDIR  ?= $(PREFIX)/share/man
CC      ?= cc
CSTD     = -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE
WARN     = -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wno-format-nonliteral -Wno-format-truncation
CFLAGS  ?= -O2 -g
LDFLAGS ?=
ALL_CFLAGS = $(CSTD) $(WARN) $(CFLAGS) -Ilib

ifeq ($(SAN),1)
VARIANT    = san
ALL_CFLAGS += -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS    += -fsanitize=address,undefined
else ifeq ($(STATIC),1)
VARIANT    = static
CC         = musl-gcc
LDFLAGS   += -static
else
VARIANT    = default
endif
BUILD = build/$(VARIANT)

# Programs that need only libc; dyno-health also links libcurl (HTTP out).
PLAIN_PROGRAMS = dyno-run dyno-route dyno-scale
CURL_PROGRAMS  = dyno-health dyno-deploy dyno-backup
PROGRAMS = $(PLAIN_PROGRAMS) $(CURL_PROGRAMS)
LIBS_dyno-health = -lcurl
LIBS_dyno-deploy = -lcurl
LIBS_dyno-backup = -lcurl
LIB_SRC  = $(wildcard lib/*.c)
LIB_OBJ  = $(LIB_SRC:%.c=$(BUILD)/%.o)
BINS     = $(PROGRAMS:%=bin/%)
MANS     = $(wildcard man/man*/*.[0-9])

# bin/ holds one variant at a time; relink when the variant changes.
$(shell mkdir -p build && (echo $(VARIANT) | cmp -s - build/variant || echo $(VARIANT) > build/variant))

all: $(BINS) examples/app

$(BUILD)/%.o: %.c lib/dyno.h
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/libdyno.a: $(LIB_OBJ)
	@rm -f $@
	@ar rcs $@ $^

bin/%: $(BUILD)/src/%.o $(BUILD)/libdyno.a build/variant
	@mkdir -p bin
	@echo "  LD      $@"
	@$(CC) $(LDFLAGS) -o $@ $< $(BUILD)/libdyno.a $(LIBS_$(notdir $@))

# A program past about 800 lines is a folder, src/dyno-X/: main.c, a private
# header and one file per noun.  Its objects also depend on that header.
# dyno-route's hot path runs through all of its files: link-time
# optimisation inlines across them as one file did.
FOLDER_FLAGS_dyno-route = -flto=auto
FOLDERS = $(patsubst src/%/main.c,%,$(wildcard src/*/main.c))
define folder_rules
bin/$(1): $$(patsubst %.c,$$(BUILD)/%.o,$$(wildcard src/$(1)/*.c)) $$(BUILD)/libdyno.a build/variant
	@mkdir -p bin
	@echo "  LD      $$@"
	@$$(CC) $$(LDFLAGS) $$(FOLDER_FLAGS_$(1)) -o $$@ $$(filter %.o,$$^) $$(BUILD)/libdyno.a $$(LIBS_$(1))
$$(BUILD)/src/$(1)/%.o: src/$(1)/%.c $$(wildcard src/$(1)/*.h) lib/dyno.h
	@mkdir -p $$(dir $$@)
	@echo "  CC      $$<"
	@$$(CC) $$(ALL_CFLAGS) $$(FOLDER_FLAGS_$(1)) -c -o $$@ $$<
endef
$(foreach f,$(FOLDERS),$(eval $(call folder_rules,$(f))))

# The sample app is a user program, not ours: plain flags, threads.
examples/app: examples/app.c
	$(CC) $(CSTD) -Wall -Wextra -Werror -O2 -pthread -o $@ $< -pthread

# Test dependencies first (they include libcurl's headers, which the build
# needs), then the build, the man page lint, the fuzz seeds and every test.
check:
	@sh t/deps.sh
	@$(MAKE) --no-print-directory all
	mandoc -Tlint -Wwarning $(MANS)
	@$(MAKE) --no-print-directory fuzz-replay
	bash t/run-tests.sh $(BATS_FLAGS)

# libcurl has no musl build in Debian, so dyno-health stays dynamic.
static:
	@command -v musl-gcc >/dev/null 2>&1 || { \
	    echo "make static needs musl-gcc: apt-get install musl-tools" >&2; exit 1; }
	$(MAKE) STATIC=1 $(PLAIN_PROGRAMS:%=bin/%)
	@echo "static: $(PLAIN_PROGRAMS) (dyno-health needs libcurl: build it with make)"

install: all
	mkdir -p $(DESTDIR)$(PREFIX)/bin
	for p in $(BINS); do install -m 0755 $$p $(DESTDIR)$(PREFIX)/bin/; done
	for m in $(MANS); do \
	    d=$(DESTDIR)$(MANDIR)/$$(basename $$(dirname $$m)); \
	    mkdir -p $$d && install -m 0644 $$m $$d/; done

# Each harness t/fuzz/fuzz_NAME.c has its seeds in t/fuzz/corpus/NAME/.
FUZZ_NAMES = $(patsubst t/fuzz/fuzz_%.c,%,$(wildcard t/fuzz/fuzz_*.c))
REPLAYS    = $(FUZZ_NAMES:%=$(BUILD)/fuzz/replay_%)

$(BUILD)/fuzz/replay_%: $(BUILD)/t/fuzz/fuzz_%.o $(BUILD)/t/fuzz/replay.o $(BUILD)/libdyno.a
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	@$(CC) $(LDFLAGS) -o $@ $^

fuzz-replay: $(REPLAYS)
	@for n in $(FUZZ_NAMES); do \
	    $(BUILD)/fuzz/replay_$$n t/fuzz/corpus/$$n || exit 1; done

FUZZERS = $(patsubst t/fuzz/%.c,build/fuzz/%,$(wildcard t/fuzz/fuzz_*.c))
fuzz: $(FUZZERS)
build/fuzz/%: t/fuzz/%.c $(LIB_SRC) lib/dyno.h
	@mkdir -p build/fuzz
	clang $(CSTD) -Wall -Wextra -Werror -g -O1 -Ilib \
	    -fsanitize=fuzzer,address,undefined -o $@ $< $(LIB_SRC)

clean:
	rm -rf build bin examples/app

.PHONY: all check static install fuzz fuzz-replay clean
.PRECIOUS: $(BUILD)/%.o $(BUILD)/src/%.o $(BUILD)/t/fuzz/%.o \
    $(foreach f,$(FOLDERS),$(BUILD)/src/$(f)/%.o)
