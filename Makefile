# Thin wrapper around meson/ninja and the test runners.
BUILD ?= build
PYTHON ?= /usr/bin/python3

.PHONY: all build build-asan demo check bench fuzz clean

all: build

build:
	@./scripts/deps.sh build
	@[ -f $(BUILD)/build.ninja ] || meson setup $(BUILD) -Dwerror=true
	ninja -C $(BUILD)

build-asan:
	@[ -f build-asan/build.ninja ] || meson setup build-asan -Dwerror=true \
		-Dbuildtype=debug -Db_sanitize=address,undefined
	ninja -C build-asan

demo:
	@./scripts/deps.sh demo
	@$(MAKE) --no-print-directory build
	$(PYTHON) scripts/demo.py --build $(BUILD)

check:
	@./scripts/deps.sh check
	@$(MAKE) --no-print-directory build BUILD=build
	@$(MAKE) --no-print-directory build-asan
	$(PYTHON) scripts/check.py

bench:
	@./scripts/deps.sh bench
	@$(MAKE) --no-print-directory build
	$(PYTHON) bench/bench.py --build $(BUILD)

fuzz:
	@./scripts/deps.sh fuzz
	@$(MAKE) --no-print-directory build
	tests/fuzz/run.sh

clean:
	rm -rf $(BUILD) build-asan build-fuzz
