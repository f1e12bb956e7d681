# Front door: `make demo` and `make test` install what is missing, build, then serve or test.
BUILD ?= build
ASAN_BUILD ?= build-asan
JOBS ?= $(shell nproc)

.PHONY: all deps build test test-fast asan demo bench package clean

all: build

deps:
	@bash scripts/install-deps.sh test

$(BUILD)/Makefile: CMakeLists.txt
	@command -v cmake >/dev/null || { echo "pneumo needs cmake, which was not found: install the Debian package 'cmake', or run \`make deps\` to install every dependency." >&2; exit 1; }
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null

build: $(BUILD)/Makefile
	@cmake --build $(BUILD) -j $(JOBS)

# The whole suite, then the same suite under ASan+UBSan.
test: deps
	@$(MAKE) --no-print-directory build
	cd $(BUILD) && ctest --output-on-failure -j 1
	@$(MAKE) --no-print-directory asan

test-fast: build
	cd $(BUILD) && ctest --output-on-failure -j 1

asan:
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DPNEUMO_SANITIZE=ON >/dev/null
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && PNEUMO_SANITIZED=1 ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp \
	  ctest --output-on-failure -j 1 -LE slow

demo:
	@bash scripts/install-deps.sh build
	@$(MAKE) --no-print-directory build
	./$(BUILD)/pneumo serve --host 127.0.0.1 --port 8080

# The Debian package build/pneumo_<version>-1_<arch>.deb (cmake/package.cmake).
package:
	@bash scripts/install-deps.sh package
	@$(MAKE) --no-print-directory build
	cd $(BUILD) && cpack -G DEB

bench: build
	@bash scripts/install-deps.sh bench
	bash bench/run.sh

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
