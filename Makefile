# Entry points. `make` builds build/cutover; `make test` installs what the
# tests need, builds and runs every test; `make demo` runs the demo.
BUILD ?= build
BUILD_TYPE ?= RelWithDebInfo
JOBS ?= $(shell nproc)

.PHONY: all build setup test demo bench format format-check clean

all: build

$(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE)

build: $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS)

setup:
	scripts/setup

test: setup
	$(MAKE) build
	scripts/check-format
	cd $(BUILD) && ctest --output-on-failure -j 2 --timeout 600

demo: setup
	$(MAKE) build
	scripts/demo

bench: setup
	$(MAKE) build
	bench/peers.sh
	bench/idle.sh
	bench/switch.sh

format:
	clang-format -i $$(git ls-files '*.cc' '*.h')

format-check:
	scripts/check-format

clean:
	rm -rf $(BUILD)
