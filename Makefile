# doppler-gl build. `make` builds build/doppler-gl; `make test` builds and runs the suite twice, plainly and
# under AddressSanitizer + UBSan; `make run` generates text on the default model. See README.md.

CC       ?= cc
PREFIX   ?= /usr/local
DESTDIR  ?=
BUILD    ?= build
SAN      ?=
PKGS     := egl glesv2 gbm inih libcjson libpcre2-8 libutf8proc libcrypto

# Debian packages: what `make deps` installs (as root) or names (otherwise).
DEB_BUILD   := gcc make pkg-config libc6-dev libegl-dev libgles-dev libgbm-dev libinih-dev libcjson-dev \
               libpcre2-dev libutf8proc-dev libssl-dev xz-utils
DEB_RUNTIME := libegl1 libgles2 libegl-mesa0 libgbm1 libgl1-mesa-dri libinih1 libcjson1 libpcre2-8-0 \
               libutf8proc2 libssl3
# The fuzz target needs clang with libFuzzer; optional (the suite skips it when clang is absent).
DEB_FUZZ    := clang libclang-rt-14-dev

GIT_COMMIT := $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

CFLAGS   ?= -O2 -g
CFLAGS   += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wno-missing-field-initializers -Isrc -MMD -MP \
            -pthread $(PKG_CFLAGS) -DDG_GIT_COMMIT='"$(GIT_COMMIT)"'
LDLIBS   += $(PKG_LIBS) -lm -ldl -pthread

ifeq ($(SAN),1)
CFLAGS   += -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -DDG_SANITIZE=1
LDFLAGS  += -fsanitize=address,undefined
endif

SRC       := $(shell find src -name '*.c' | sort)
LIB_SRC   := $(filter-out src/main.c,$(SRC))
TEST_SRC  := $(shell find tests -name '*.c' -not -path 'tests/fuzz/*' | sort)
LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
MAIN_OBJ  := $(BUILD)/obj/src/main.o
TEST_OBJ  := $(TEST_SRC:%.c=$(BUILD)/obj/%.o)

.PHONY: FORCE all run test test-plain test-asan deps install uninstall clean fuzz

all: $(BUILD)/doppler-gl $(BUILD)/dg-tests

$(BUILD)/doppler-gl: $(MAIN_OBJ) $(LIB_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/dg-tests: $(TEST_OBJ) $(LIB_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests -c -o $@ $<

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

# The commit is baked into version.o alone, rebuilt every time (FORCE), so results name the right commit.
$(BUILD)/obj/src/core/version.o: FORCE
FORCE:

deps:
	@missing=""; for p in $(DEB_BUILD) $(DEB_RUNTIME); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then echo "make deps: all Debian packages present"; exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then \
	  echo "make deps: installing$$missing"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing || \
	  { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing; }; \
	else \
	  echo "make deps: missing Debian packages; run as root:" >&2; \
	  echo "  sudo apt-get install -y$$missing" >&2; exit 1; \
	fi
	@if [ "$$(id -u)" = 0 ] && ! command -v clang >/dev/null; then \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(DEB_FUZZ) || \
	  echo "make deps: clang/libFuzzer not installed; the fuzz test will be skipped"; fi

run: deps
	$(MAKE) $(BUILD)/doppler-gl
	./tools/run-default.sh $(BUILD)/doppler-gl

FUZZ_SECONDS ?= 60

# All three parts run even when one fails, so the last line counts everything: "N passed, N failed (...)".
test: deps
	@rm -f $(BUILD)/test-counts build-asan/test-counts; status=0; fz=0; \
	$(MAKE) test-plain || status=1; \
	$(MAKE) test-asan || status=1; \
	$(MAKE) fuzz || { fz=1; status=1; }; \
	./tests/summary.sh $$fz $(BUILD) build-asan || status=1; \
	exit $$status

# The GGUF reader under libFuzzer for a bounded time (skips with a message when clang/libFuzzer are absent).
fuzz:
	./tests/fuzz/run.sh $(FUZZ_SECONDS)

test-plain: all
	./tests/run.sh $(BUILD)

test-asan:
	$(MAKE) BUILD=build-asan SAN=1 all
	./tests/run.sh build-asan

install: $(BUILD)/doppler-gl
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/doppler-gl/glsl \
	  $(DESTDIR)$(PREFIX)/share/doppler-gl/kernel-paths $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 755 $(BUILD)/doppler-gl $(DESTDIR)$(PREFIX)/bin/doppler-gl
	cp -R glsl/. $(DESTDIR)$(PREFIX)/share/doppler-gl/glsl/
	cp -R kernel-paths/. $(DESTDIR)$(PREFIX)/share/doppler-gl/kernel-paths/
	install -m 644 man/doppler-gl.1 $(DESTDIR)$(PREFIX)/share/man/man1/doppler-gl.1

uninstall:
	rm -rf $(DESTDIR)$(PREFIX)/bin/doppler-gl $(DESTDIR)$(PREFIX)/share/doppler-gl \
	  $(DESTDIR)$(PREFIX)/share/man/man1/doppler-gl.1

clean:
	rm -rf build build-asan build-fuzz
