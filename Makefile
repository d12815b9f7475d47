# backy Makefile. `make test` is the whole test suite (what CI runs);
# `make demo` shows a backup cycle on a generated disk image.

PREFIX  ?= /usr/local
DESTDIR ?=
SYSCONFDIR ?= /etc
BINDIR  := $(DESTDIR)$(PREFIX)/bin
MANDIR  := $(DESTDIR)$(PREFIX)/share/man
UNITDIR := $(DESTDIR)$(PREFIX)/lib/systemd/system
LOGROTATEDIR := $(DESTDIR)$(SYSCONFDIR)/logrotate.d
BASHCOMPDIR := $(DESTDIR)$(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR := $(DESTDIR)$(PREFIX)/share/zsh/site-functions
GO      ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/backy/backy/pkg/cli.Version=$(VERSION)
# The librbd engine needs Debian's librbd-dev; go-ceph selects its API with
# the release tag "pacific". Build with LIBRBD= to leave it out.
LIBRBD  ?= librbd,pacific
TAGS    := $(LIBRBD)
CMDS    := backy-extract backy-store backy-restore backy-schedule backy-check backy-nbd
MANSRC  := $(wildcard man/*.md)
MANPAGES := $(MANSRC:.md=)
FUZZTIME ?= 60s
SHORTFUZZ ?= 15s

.PHONY: all build test test-go test-faults-long test-fresh lint fuzz deps demo bench man install clean

all: build man

build:
	@mkdir -p bin
	$(GO) build -tags '$(TAGS)' -ldflags '$(LDFLAGS)' -o bin/ ./cmd/...

deps:
	@scripts/deps.sh

# The whole suite: tools installed (as root) or named, lint, race tests with
# every external component required (no silent skips), then fuzzing.
test: deps lint test-go fuzz
	@echo "make test: all passed"

# gofmt over every Go directory, go.mod and go.sum exactly what go mod tidy
# makes them, go vet.
lint:
	@out=$$(gofmt -l cmd pkg internal scripts test); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@$(GO) mod tidy -diff || { echo "go.mod/go.sum are not tidy: run go mod tidy"; exit 1; }
	$(GO) vet -tags '$(TAGS)' ./...

test-go:
	BACKY_REQUIRE_TOOLS=1 BACKY_REQUIRE_CEPH=1 $(GO) test -tags '$(TAGS)' -race -timeout 40m ./...

# The fault suite's long mode (hundreds of kills, thousands of mutated
# streams, thousands of power cuts, the RADOS faults with the paused OSD):
# for local runs, not CI.
test-faults-long:
	BACKY_FAULTS_LONG=1 $(GO) test -tags '$(TAGS)' -count=1 -v -timeout 90m ./test/faults ./test/powercut ./test/rados
	BACKY_FAULTS_LONG=1 $(GO) test -tags '$(TAGS)' -count=1 -v -timeout 30m -run '^(TestFleet|TestExtractKilledWhileFrozen)$$' ./cmd/backy-schedule

# Fuzz every parser for a bounded time; the extent stream for FUZZTIME.
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzReader$$' -fuzztime $(FUZZTIME) ./pkg/extent
	@for target in $$($(GO) run ./scripts/fuzztargets); do \
		pkg=$${target%%:*}; fn=$${target#*:}; \
		echo "fuzz $$pkg $$fn"; \
		$(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(SHORTFUZZ) $$pkg || exit 1; \
	done

# The first command on a fresh machine: installs (as root) the little the
# demo needs, and without librbd-dev builds without the librbd engine.
demo:
	@scripts/deps.sh --demo
	@if [ -n "$(LIBRBD)" ] && [ ! -e /usr/include/rbd/librbd.h ]; then \
		echo "demo: no librbd-dev here: building without the librbd engine (make deps or make test installs it)"; \
		$(MAKE) --no-print-directory build LIBRBD=; \
	else $(MAKE) --no-print-directory build; fi
	@scripts/demo.sh

# make demo in a fresh Debian bookworm chroot (debootstrap; a few minutes):
# proves the demo needs nothing the host happens to have.
test-fresh:
	@scripts/deps.sh --fresh
	@scripts/test-fresh.sh

# File backups against cp, borg and restic (writes docs/benchmarks.md), then
# backy-nbd against qemu-nbd, then a RADOS pool against the directory on the
# test cluster (backup, re-backup, restore, clones sharing a pool, a pool
# purge), then the RBD engines; the last three print their tables (kept in
# docs/benchmarks-rbd-nbd.md); last the idle lease
# traffic and CPU of a fleet of three members with 1,000 jobs. A script
# whose target is missed exits 1: the others still run, and make bench
# names the ones that missed and fails at the end.
bench: build
	@scripts/deps.sh --bench
	@missed=; \
	for s in run nbd mount rados; do scripts/bench/$$s.sh || missed="$$missed $$s.sh"; done; \
	BACKY_REQUIRE_CEPH=1 $(GO) test -tags '$(TAGS)' -run '^$$' -bench . -benchtime 3x ./pkg/rbd || missed="$$missed pkg/rbd"; \
	BACKY_REQUIRE_CEPH=1 $(GO) test -tags '$(TAGS)' -run '^$$' -bench BenchmarkFleetIdle -benchtime 1x -timeout 20m ./pkg/fleet || missed="$$missed pkg/fleet"; \
	if [ -n "$$missed" ]; then echo "make bench: missed a target or failed:$$missed" >&2; exit 1; fi; \
	echo "make bench: every target met"

man: $(MANPAGES)

man/%: man/%.md
	go-md2man -in $< -out $@

# Binaries, man pages, the systemd unit of backy-schedule, an example
# logrotate file, and the bash and zsh completion each command prints
# (--completion bash|zsh; loaded on demand from these directories); DESTDIR for a staged install (cmd/backy-schedule's
# TestInstall installs into a scratch root and runs systemd-analyze verify).
install: build man
	install -d $(BINDIR) $(MANDIR)/man1 $(MANDIR)/man5 $(UNITDIR) $(LOGROTATEDIR) $(BASHCOMPDIR) $(ZSHCOMPDIR)
	install -m 0755 $(addprefix bin/,$(CMDS)) $(BINDIR)/
	for p in $(MANPAGES); do \
		sec=$${p##*.}; install -m 0644 $$p $(MANDIR)/man$$sec/; \
	done
	sed 's|@BINDIR@|$(PREFIX)/bin|g' dist/backy-schedule.service > $(UNITDIR)/backy-schedule.service
	chmod 0644 $(UNITDIR)/backy-schedule.service
	install -m 0644 dist/backy.logrotate $(LOGROTATEDIR)/backy
	for c in $(CMDS); do \
		bin/$$c --completion bash > $(BASHCOMPDIR)/$$c && \
		bin/$$c --completion zsh > $(ZSHCOMPDIR)/_$$c || exit 1; \
	done
	chmod 0644 $(BASHCOMPDIR)/* $(ZSHCOMPDIR)/*

clean:
	rm -rf bin $(MANPAGES)
	$(GO) clean -testcache
