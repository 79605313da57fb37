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

BOARD     ?= qemu-virt

.PHONY: help build run dev test prefetch test-host test-timing test-images test-vm soak screenshots mutate bench bench-vm lint fuzz deps image images flash flash-emmc vm-start vm-stop clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 14

build: ## build authd, rescue and the flasher for this host and static for linux/arm64, and print sizes
	@mkdir -p $(OUT)/host $(OUT)/arm64
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(OUT)/host/ ./authd ./rescue ./board/cmd/rknas-flash ./board/cmd/rknas-image
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(OUT)/arm64/ ./authd ./rescue ./board/cmd/rknas-flash
	@for f in $(OUT)/host/authd $(OUT)/arm64/authd $(OUT)/arm64/rescue $(OUT)/arm64/rknas-flash; do \
		printf '%-22s %6d KiB  %s\n' "$$f" $$(( $$(stat -c %s "$$f") / 1024 )) "$$(file -b "$$f" 2>/dev/null | cut -d, -f1-2 || true)"; done

run: deps ## boot the firmware image in QEMU arm64: prints the https URL, the certificate fingerprint, the admin password and how to press RESET
	RKNAS_VM_HTTP_PORT=$${RKNAS_VM_HTTP_PORT:-18079} scripts/vm boot

dev: ## run authd on this host instead: state in ./var, API on http://127.0.0.1:8080
	@mkdir -p $(OUT)/host $(STATE)
	@$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(OUT)/host/authd ./authd
	@echo "authd: API on http://$(LISTEN)  (state in $(STATE)/, Ctrl-C stops)"
	@if [[ -f $(STATE)/default-password ]]; then \
		echo "authd: default admin password: $$(cat $(STATE)/default-password) (from $(STATE)/default-password, generated on first start)"; fi
	exec $(OUT)/host/authd -state $(STATE) -listen $(LISTEN) -board none -set-clock=false -control-socket $(STATE)/control.sock $(ARGS)

deps: ## install the Debian packages the tests need (QEMU, chronyd, oathtool, ...)
	scripts/deps.sh

test: deps prefetch lint test-host test-timing mutate test-images test-vm ## everything CI runs: lint, unit, integration, timing under load, mutation, image and VM tests

# The image and VM tests need two Debian kernels, U-Boot and ca-certificates: on a fresh machine
# fetching them is mostly waiting on the network, so it starts in the background
# while lint and the Go tests run. kernel.sh holds a lock: the tests that need
# the kernels wait for it, and if the fetch failed they run it again and stop
# on its error themselves.
prefetch: ## fetch the kernels, U-Boot and the root certificates for the image and VM tests in the background (log: out/prefetch.log)
	@mkdir -p $(OUT)
	@{ scripts/kernel.sh && scripts/kernel.sh --newer-dtbs && scripts/kernel.sh --deb u-boot-rockchip:arm64 && scripts/kernel.sh --deb ca-certificates:all; } \
		>$(OUT)/prefetch.log 2>&1 </dev/null &

test-host: ## the Go test suite, under the race detector, and the allocation rules without it
	$(GO) test -race -count=1 -timeout 20m ./...
	$(GO) test -count=1 -run 'AllocatesNothing' ./authd/api

# The packages whose tests wait on timers and fake clocks, 20 times each with
# a CPU hog on every core: a test that only passes on an idle machine fails.
# The tests against real servers (netconf's DHCP against dnsmasq, mail's
# against aiosmtpd) run once, in test-host: they wait in real time on another
# process, not on the timers this target is for, and twenty runs of them took
# two minutes.
TIMING_PKGS := ./rescue/console ./authd/button ./initramfs/watchdog ./initramfs/supervise ./authd/regulate \
	./authd/session ./authd/portconf ./authd/mail ./authd/netconf

test-timing: ## the timer-driven packages 20 times each beside a CPU hog on every core
	scripts/under-load.sh $(GO) test -count=20 -skip '^(TestNetns|TestAiosmtpd.*)$$' -timeout 20m $(TIMING_PKGS)

soak: deps ## the fault and load campaign: SIGKILLs, guessing, load, full and broken storage, serial noise (about 20 min; SOAK=quick about 4)
	$(GO) test -tags soak -count=1 -v -timeout 60m ./soak

screenshots: deps ## run the browser journeys and save the pages they check into docs/screenshots (shown in docs/pages.md)
	@mkdir -p docs/screenshots
	RKNAS_SCREENSHOTS=$(CURDIR)/docs/screenshots $(GO) test -count=1 -run 'InBrowser|WrongDeviceClock' ./authd/web

mutate: ## break each rule in scripts/mutate/mutations.txt on purpose and check that its tests fail
	$(GO) run ./scripts/mutate -j 2

test-images: deps ## build every board's disk image and check it with sfdisk, sgdisk, fsck, mtools, fdtget
	$(GO) test -tags imagetest -count=1 -v -timeout 30m ./board/imagetest

test-vm: deps ## the firmware booted in QEMU arm64 through U-Boot: RESET, recovery, power cut, rescue, flashing
	$(GO) test -tags vmtest -count=1 -v -timeout 25m ./initramfs/vmtest

image: deps ## build BOARD's disk image (default qemu-virt): out/images/rknas-BOARD.img; BOOTLOADER=file adds U-Boot
	scripts/image.sh $(BOARD)

images: deps ## build the disk image of every board the kernel has a device tree for
	scripts/image.sh --all

flash: deps ## write BOARD's image to DEVICE (a TF card or USB disk; ARGS=--yes, --hostname H, ...)
	@[[ -n "$(DEVICE)" ]] || { echo "usage: make flash BOARD=<board> DEVICE=/dev/sdX [ARGS=...]"; exit 2; }
	@img=$$(scripts/image.sh $(BOARD)) && $(GO) build -o $(OUT)/bin/rknas-flash ./board/cmd/rknas-flash && \
		$(OUT)/bin/rknas-flash $(ARGS) "$$img" $(DEVICE)

flash-emmc: deps ## write BOARD's image to the eMMC of a board in Maskrom mode over USB (LOADER=rkXXXX_loader.bin)
	@[[ -n "$(LOADER)" ]] || { echo "usage: make flash-emmc BOARD=<board> LOADER=<rkbin loader> [ARGS=...]"; exit 2; }
	@img=$$(scripts/image.sh $(BOARD)) && $(GO) build -o $(OUT)/bin/rknas-flash ./board/cmd/rknas-flash && \
		$(OUT)/bin/rknas-flash emmc-usb --loader $(LOADER) $(ARGS) "$$img"

vm-start: ## boot the VM in the background (scripts/vm press-reset N holds RESET)
	scripts/vm start

vm-stop: ## power the background VM off cleanly
	scripts/vm stop

bench: ## benchmarks that print figures (ratios measured in one run), then one table of the goals: out/bench/host.md; the flasher's needs root
	@mkdir -p $(OUT)/bench
	{ $(GO) test -run '^$$' -bench 'PasswordStepRatio' -benchtime 20x -count 5 -timeout 30m ./authd/api && \
	  $(GO) test -run '^$$' -bench 'TLSLoginRatio' -benchtime 40x -count 5 -timeout 30m ./authd/api && \
	  $(GO) test -run '^$$' -bench 'SessionGetRatio' -benchtime 200x -count 5 -timeout 30m ./authd/api && \
	  $(GO) test -run '^$$' -bench 'DaemonMemory' -benchtime 1x -count 3 -timeout 30m ./authd && \
	  $(GO) test -run '^$$' -bench . -benchtime 3s -timeout 30m $$($(GO) list ./authd/... | grep -v -e '/authd$$' -e '/authd/api$$') && \
	  $(GO) test -run '^$$' -bench . -benchtime 100x -timeout 30m ./board/flash; } 2>&1 | \
	  $(GO) run ./scripts/benchtable -set host -o $(OUT)/bench/host.md

bench-vm: deps ## the VM's figures against their floors (initramfs size, boot, U-Boot, RESET to durable), then one table: out/bench/vm.md
	scripts/vm-measure.sh

lint: ## gofmt, go vet, staticcheck and shellcheck
	@fmt=$$(gofmt -l $$(git ls-files '*.go')); if [[ -n "$$fmt" ]]; then echo "gofmt needed:"; echo "$$fmt"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags vmtest ./initramfs/vmtest
	$(GO) vet -tags vmtest,soak ./initramfs/vmtest
	$(GO) vet -tags soak ./soak
	$(GO) vet -tags imagetest ./board/imagetest
	$(GO) vet -tags hwtest ./authd/button ./authd/timesync ./board/flash
	$(GO) run $(STATICCHECK) ./...
	$(GO) run $(STATICCHECK) -tags soak ./soak
	shellcheck scripts/*.sh scripts/vm .ci/run

fuzz: ## run every fuzz target for FUZZTIME each (default 20s)
	@for pkg in $$($(GO) list ./...); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $${FUZZTIME:-20s} $$pkg; done; done

clean: ## remove build output (not the state in ./var)
	rm -rf $(OUT)
