# Thin wrapper around meson/ninja and the test runners.
BUILD ?= build
PYTHON ?= /usr/bin/python3

.PHONY: all deps build demo check unit functional bench clean

all: build

build:
	@./scripts/deps.sh build
	@[ -f $(BUILD)/build.ninja ] || meson setup $(BUILD) -Dwerror=true
	ninja -C $(BUILD)

demo:
	@./scripts/deps.sh demo
	@$(MAKE) --no-print-directory build
	$(PYTHON) scripts/demo.py --build $(BUILD)

check:
	@./scripts/deps.sh check
	@$(MAKE) --no-print-directory build
	MINIVM_BUILD=$(abspath $(BUILD)) $(PYTHON) -m pytest -q -p no:cacheprovider tests

bench:
	@./scripts/deps.sh bench
	@$(MAKE) --no-print-directory build
	$(PYTHON) bench/bench.py --build $(BUILD)

clean:
	rm -rf $(BUILD)
