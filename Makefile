# ferry — see README.md. `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
BIN := bin
BINARIES := acr-emulator acr-credential-helper node-agent image-syncer acr-credential-provider
PKGS := ./...
# Tools (envtest assets, kubelet, pause) are described by bin/tools.env, written by hack/tools.sh.
TOOLS_ENV := set -a; [ -f $(BIN)/tools.env ] && source $(BIN)/tools.env; set +a;

.PHONY: help
help: ## list targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: tools
tools: ## install apt packages, build envtest assets (kube-apiserver, etcd, kubectl), kubelet and pause (idempotent)
	bash hack/tools.sh

# controller-gen from the Go module proxy, pinned (no go.mod entry needed).
CONTROLLER_GEN ?= $(GO) run sigs.k8s.io/controller-tools/cmd/controller-gen@v0.23.0
CRD_DIR := config/crd/bases

.PHONY: generate
generate: ## deepcopy code and CRDs (config/crd/bases) from api/ with controller-gen v0.23.0
	$(CONTROLLER_GEN) object paths=./api/... crd paths=./api/... output:crd:artifacts:config=$(CRD_DIR)

.PHONY: verify-generate
verify-generate: ## fail when `make generate` would change anything (also checked by go test ./api)
	$(GO) test -count=1 -run TestGeneratedUpToDate ./api

.PHONY: build
build: ## build the binaries into bin/
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/ $(addprefix ./cmd/,$(BINARIES))

# make images [REGISTRY=host:port[/path]] [INSECURE=1] [REGISTRY_CA=ca.pem] [BASE_IMAGE=ref@sha256:…]
IMAGES_FLAGS = $(if $(REGISTRY),--registry $(REGISTRY)) $(if $(filter 1 true yes,$(INSECURE)),--insecure) \
  $(if $(REGISTRY_CA),--registry-ca $(REGISTRY_CA)) $(if $(BASE_IMAGE),--base-image $(BASE_IMAGE))

.PHONY: images
images: tools ## container images (ko, self-built base; multi-arch, reproducible) into bin/images; REGISTRY=host:port also pushes
	$(TOOLS_ENV) $(GO) run ./hack/images --out $(BIN)/images $(IMAGES_FLAGS)

.PHONY: test
test: tools ## unit + integration tests (-race) against real apiserver, containerd, kubelet, registries and acr-emulator
	@mkdir -p $(BIN); rm -f $(BIN)/skipped.log
	$(TOOLS_ENV) FERRY_REQUIRE_RIG=$${FERRY_REQUIRE_RIG:-$$( [ "$$(id -u)" = 0 ] && echo 1 || echo 0 )} \
	  FERRY_SKIP_LOG=$(CURDIR)/$(BIN)/skipped.log $(GO) test -race -count=1 -timeout 30m $(PKGS)
	@if [ -s $(BIN)/skipped.log ]; then \
	  echo "=================================================================="; \
	  echo "make test: $$(wc -l < $(BIN)/skipped.log) test(s) SKIPPED because a rig component is unavailable:"; \
	  sed 's/^/  /' $(BIN)/skipped.log; \
	  echo "Run as root after \`make tools\` to run them, or set FERRY_ALLOW_SKIP=1 to accept the skips."; \
	  echo "=================================================================="; \
	  [ "$${FERRY_ALLOW_SKIP:-0}" = 1 ] || exit 1; \
	fi

.PHONY: test-short
test-short: ## unit tests only: -short, no rig is started (no apiserver, containerd, kubelet or registry process)
	$(GO) test -short -count=1 $(PKGS)

CHART := charts/ferry
HELM_DOCS = "$$FERRY_HELM_DOCS" --chart-search-root $(CHART) --template-files README.md.gotmpl

.PHONY: lint
lint: tools ## gofmt, go vet, staticcheck; helm lint --strict (Helm 4 and 3); chart README up to date
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 $(PKGS)
	@$(TOOLS_ENV) set -e; for h in "$$FERRY_HELM" "$$FERRY_HELM3"; do \
	  for v in "" $(CHART)/ci/*-values.yaml; do echo "== $$("$$h" version --short) lint --strict $(CHART) $${v:+-f $$v}"; \
	    "$$h" lint --strict $(CHART) $${v:+-f $$v}; done; done
	@$(TOOLS_ENV) $(HELM_DOCS) --dry-run | diff -u $(CHART)/README.md - >/dev/null || \
	  { echo "$(CHART)/README.md is out of date: run make chart-docs"; $(HELM_DOCS) --dry-run | diff -u $(CHART)/README.md -; exit 1; }

.PHONY: chart-docs
chart-docs: tools ## regenerate charts/ferry/README.md from values.yaml and README.md.gotmpl (helm-docs v1.14.2)
	$(TOOLS_ENV) $(HELM_DOCS)

FUZZTIME ?= 30s
.PHONY: fuzz
fuzz: ## every fuzz target for FUZZTIME each (default 30s; nightly: FUZZTIME=10m); new corpus entries kept in testdata/fuzz
	FUZZTIME=$(FUZZTIME) GO=$(GO) bash hack/fuzz.sh

.PHONY: fuzz-smoke
fuzz-smoke: ## run every fuzz target for a few seconds
	@set -e; for pkg in $$($(GO) list $(PKGS)); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime 5s $$pkg; \
	  done; done

.PHONY: bench
bench: tools ## Go benchmarks (see docs/ for the numbers and bench/ for peer comparisons)
	$(TOOLS_ENV) $(GO) test -run '^$$' -bench . -benchmem $(PKGS)

.PHONY: demo
demo: build tools ## local cloud + control plane + controller + a real pull, narrated; cleans up after itself
	$(TOOLS_ENV) bash hack/demo.sh

.PHONY: clean
clean: ## remove build outputs
	rm -rf $(BIN)
