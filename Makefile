# Entry points. `make` builds build/cutover; `make test` installs what the
# tests need, builds and runs every test; `make demo` deploys the example shop
# in four releases under traffic (SQLite), `make demo-services` the same with
# Redis and PostgreSQL; `make demo-router` shows the router alone.
# DEMO_ARGS=--keep leaves a demo running.
BUILD ?= build
BUILD_TYPE ?= RelWithDebInfo
JOBS ?= $(shell nproc)

.PHONY: all build setup test demo demo-services demo-router bench format format-check clean

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

# The demos build only the programs they run, once setup has installed what
# the build needs.
SHOP_PROGRAMS = cutover cutover-shop cutover-shopper

demo: setup
	$(MAKE) $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS) --target $(SHOP_PROGRAMS)
	BUILD=$(BUILD) examples/shop/demo.sh $(DEMO_ARGS)

demo-services: setup
	$(MAKE) demo DEMO_ARGS="--services $(DEMO_ARGS)"

demo-router: setup
	$(MAKE) $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS) --target cutover cutover-testapp
	BUILD=$(BUILD) scripts/demo-router $(DEMO_ARGS)

bench: setup
	bench/peers.sh
	bench/idle.sh
	bench/switch.sh

format:
	clang-format -i $$(git ls-files '*.cc' '*.h')

format-check:
	scripts/check-format

clean:
	rm -rf $(BUILD)
