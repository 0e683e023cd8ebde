# Thin wrapper around CMake/CTest for the README Quick start.
#   make demo    install deps, build, mount a demo repository
#   make test    install deps, build (release + ASan), run ctest
#   make bench   build, run bench/seqread (BENCH_SIZE=256M for a quick run)
#
# LFSFS_ASAN_INTEGRATION=0 skips the integration tests against the
# ASan+UBSan build (by default both suites run under ASan too).

MAKEFLAGS += --no-print-directory
NPROC := $(shell nproc 2>/dev/null || echo 2)
CTEST_JOBS ?= 2
LFSFS_ASAN_INTEGRATION ?= 1

.PHONY: all deps build build-asan demo test test-release test-asan bench clean

all: build

deps:
	bash scripts/install-deps.sh

build:
	cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLFSFS_WERROR=ON
	cmake --build build -j$(NPROC)

build-asan:
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DLFSFS_WERROR=ON -DLFSFS_SANITIZE=ON
	cmake --build build-asan -j$(NPROC)

demo: deps
	$(MAKE) build
	LFSFS_BIN=$(CURDIR)/build/lfsfs bash scripts/demo.sh

# Both suites run even if the first fails; the target fails if either did.
test: deps
	$(MAKE) build
	$(MAKE) build-asan
	@failed=""; \
	$(MAKE) test-release || failed="$$failed release"; \
	$(MAKE) test-asan || failed="$$failed asan"; \
	if [ -n "$$failed" ]; then \
		echo "make test: FAILED:$$failed (see the ctest output above)"; exit 1; \
	fi

test-release:
	cd build && ctest --output-on-failure -j$(CTEST_JOBS)

test-asan:
ifeq ($(LFSFS_ASAN_INTEGRATION),1)
	cd build-asan && ctest --output-on-failure -j$(CTEST_JOBS)
else
	cd build-asan && ctest --output-on-failure -j$(CTEST_JOBS) -L unit
endif

bench: build
	LFSFS_BIN=$(CURDIR)/build/lfsfs bash bench/seqread

clean:
	rm -rf build build-asan build-bench
