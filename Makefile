# The README's two commands: `make run` and `make test`.
GO ?= go
PKGS := ./...

.PHONY: run build test test-go test-examples test-js bench-smoke vet cross fmt compose-check compare

# Email too, on the embedded mail server (loopback ports 2525 and 1143).
run:
	SWITCHBOARD_TRANSPORTS=$${SWITCHBOARD_TRANSPORTS:-websocket,longpoll,email} $(GO) run ./cmd/switchboard serve

build:
	$(GO) build -o bin/switchboard ./cmd/switchboard

# The whole suite: vet (for macOS and Windows too), every Go test with the race detector (fuzz seed
# corpora included), the browser client's unit tests, and one pass of every
# benchmark.
test: vet cross test-go test-examples test-js bench-smoke compose-check

vet:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet $(PKGS)

test-go:
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

# Each example is a module of its own (a custom adapter built outside the tree, with a
# replace pointing here): vet and test it as its author would. Tidying first brings its go.sum
# up to the checkout's dependencies (commit the change when there is one).
EXAMPLES := $(patsubst %/go.mod,%,$(wildcard examples/*/go.mod))
test-examples:
	@for d in $(EXAMPLES); do \
		echo "== $$d"; \
		(cd $$d && $(GO) mod tidy && $(GO) vet ./... && $(GO) test -race -count=1 -timeout 10m ./...) || exit 1; \
	done

test-js:
	@if [ -d clients/js/test ]; then node --test clients/js/test/; fi

bench-smoke:
	$(GO) test -run='^$$' -bench=. -benchtime=1x -count=1 $(PKGS)

# The code builds and vets on systems without Linux's epoll too (the
# WebSocket transport then reads with a goroutine per connection).
cross:
	GOOS=darwin $(GO) vet $(PKGS)
	GOOS=windows $(GO) vet $(PKGS)

fmt:
	gofmt -w $$(git ls-files '*.go')

# The compose file is valid (Docker's engine is not needed for this), every image it or
# the Dockerfile pulls is pinned, and every service on the local image can build it. The
# topology itself runs natively in cmd/switchboard/demo_test.go.
compose-check:
	docker-compose config -q
	bash deploy/check-images.sh

# Switchboard against PeerJS and a bare relay (several minutes); rewrites
# docs/benchmarks.md's comparison section and bench/results/latest.jsonl.
compare:
	bash bench/compare.sh
