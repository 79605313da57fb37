# The entry point for building, running and testing. `make help` lists targets.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c

GO        ?= go
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
OUT       := out
STATE     ?= var
LISTEN    ?= 127.0.0.1:8080
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.7.0

.PHONY: help build run dev test test-host test-vm bench bench-vm lint fuzz deps image vm-start vm-stop clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 14

build: ## build authd and rescue for this host and static for linux/arm64, and print sizes
	@mkdir -p $(OUT)/host $(OUT)/arm64
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(OUT)/host/ ./authd ./rescue
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(OUT)/arm64/ ./authd ./rescue
	@for f in $(OUT)/host/authd $(OUT)/arm64/authd $(OUT)/arm64/rescue; do \
		printf '%-22s %6d KiB  %s\n' "$$f" $$(( $$(stat -c %s "$$f") / 1024 )) "$$(file -b "$$f" 2>/dev/null | cut -d, -f1-2 || true)"; done

run: deps ## boot the firmware image in QEMU arm64: prints the API URL, the admin password and how to press RESET
	scripts/vm boot

dev: ## run authd on this host instead: state in ./var, API on http://127.0.0.1:8080
	@mkdir -p $(OUT)/host $(STATE)
	@$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(OUT)/host/authd ./authd
	@echo "authd: API on http://$(LISTEN)  (state in $(STATE)/, Ctrl-C stops)"
	@if [[ -f $(STATE)/default-password ]]; then \
		echo "authd: default admin password: $$(cat $(STATE)/default-password) (from $(STATE)/default-password, generated on first start)"; fi
	exec $(OUT)/host/authd -state $(STATE) -listen $(LISTEN) -board none -set-clock=false -control-socket $(STATE)/control.sock $(ARGS)

deps: ## install the Debian packages the tests need (QEMU, chronyd, oathtool, ...)
	scripts/deps.sh

test: deps lint test-host test-vm ## everything CI runs: lint, unit, integration and VM tests

test-host: ## the Go test suite, under the race detector
	$(GO) test -race -count=1 -timeout 20m ./...

test-vm: deps ## the firmware booted in QEMU arm64: RESET through the kernel's GPIO, recovery, power cut, rescue
	$(GO) test -tags vmtest -count=1 -v -timeout 25m ./initramfs/vmtest

image: ## build the arm64 u-root initramfs (out/image/rknas.cpio.xz) and print its size
	scripts/build-image.sh

vm-start: ## boot the VM in the background (scripts/vm press-reset N holds RESET)
	scripts/vm start

vm-stop: ## power the background VM off cleanly
	scripts/vm stop

bench: ## benchmarks that print figures (ratios measured in one run)
	$(GO) test -run '^$$' -bench . -benchtime 3s -timeout 30m ./authd/...

bench-vm: deps ## image size and boot time against a bare u-root image, in QEMU
	scripts/vm-measure.sh

lint: ## gofmt, go vet, staticcheck and shellcheck
	@fmt=$$(gofmt -l $$(git ls-files '*.go')); if [[ -n "$$fmt" ]]; then echo "gofmt needed:"; echo "$$fmt"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags vmtest ./initramfs/vmtest
	$(GO) vet -tags hwtest ./authd/button ./authd/timesync
	$(GO) run $(STATICCHECK) ./...
	shellcheck scripts/*.sh scripts/vm .ci/run

fuzz: ## run every fuzz target for FUZZTIME each (default 20s)
	@for pkg in $$($(GO) list ./...); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $${FUZZTIME:-20s} $$pkg; done; done

clean: ## remove build output (not the state in ./var)
	rm -rf $(OUT)
