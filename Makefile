# Portcullis: the two commands are `make run` and `make test`.
SHELL := /bin/bash
JOBS ?= $(shell nproc)
FUZZ_SECONDS ?= 20

.PHONY: all deps build run test unit fuzz asan e2e-release bench format clean

all: build

deps:
	@scripts/bootstrap.sh

build: deps
	@cmake --preset release >/dev/null
	@cmake --build --preset release -j $(JOBS)

# Installs what is missing, builds, writes var/portcullis.toml on first use, runs in the foreground.
run: build
	@mkdir -p var
	@[ -f var/portcullis.toml ] || cp config/portcullis.toml var/portcullis.toml
	@[ -f var/policy.toml ] || cp config/policy.toml var/policy.toml
	exec build/release/src/app/portcullis run -c var/portcullis.toml

# Installs what is missing, builds with warnings as errors, runs every test, then each fuzzer briefly.
test: deps
	@cmake --preset dev >/dev/null
	@cmake --build --preset dev -j $(JOBS)
	@ctest --preset dev -j $(JOBS)
	@$(MAKE) --no-print-directory fuzz

fuzz: deps
	@cmake --preset fuzz >/dev/null
	@cmake --build --preset fuzz -j $(JOBS) --target fuzz_all
	@tests/fuzz/run-smoke.sh build/fuzz $(FUZZ_SECONDS)

# AddressSanitizer + UBSan build of everything, with the whole suite.
asan: deps
	@cmake --preset asan >/dev/null
	@cmake --build --preset asan -j $(JOBS)
	@ctest --preset asan -j $(JOBS)

# The end-to-end tests against the optimised build that `make run` starts (`make test` builds
# with g++ -O0 and `make asan` with clang -O1; optimised code can fail differently).
e2e-release: deps
	@cmake --preset release >/dev/null
	@cmake --build --preset release -j $(JOBS) --target portcullis
	@ctest --preset release -L e2e -j $(JOBS)

bench:
	@scripts/bootstrap.sh bench
	@bench/run.sh

format:
	@git ls-files '*.cpp' '*.h' | xargs clang-format -i

clean:
	rm -rf build
