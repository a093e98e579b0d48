package depcheck

import (
	"encoding/json"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/ferrypull/ferry"

type pkg struct {
	ImportPath string
	Doc        string
	Name       string
	Imports    []string // direct, non-test
	Deps       []string // transitive, non-test
	Standard   bool
}

func listPackages(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), "go", "list", "-json", module+"/...")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(out)
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("go list: %v", err)
	}
	return pkgs
}

// sameBinary reports whether both packages live under the same cmd/<bin>.
func sameBinary(a, b string) bool {
	bin := func(p string) string {
		parts := strings.Split(strings.TrimPrefix(p, module+"/"), "/")
		if len(parts) < 2 || parts[0] != "cmd" {
			return ""
		}
		return parts[1]
	}
	return bin(a) != "" && bin(a) == bin(b)
}

func isStd(path string) bool { return !strings.Contains(strings.SplitN(path, "/", 2)[0], ".") }

func under(path, prefix string) bool {
	full := module + "/" + prefix
	return path == full || strings.HasPrefix(path, full+"/")
}

func anyUnder(path string, prefixes ...string) bool {
	for _, p := range prefixes {
		if under(path, p) {
			return true
		}
	}
	return false
}

var (
	// Feature packages may import shared packages, never the other way round, and never another
	// feature. In internal/controller and internal/webhook every child is its own feature (one
	// reconciler or one webhook each; a webhook may import its parent internal/webhook, which holds
	// what the webhooks share); the other areas are one feature each.
	perChild  = []string{"internal/controller", "internal/webhook"}
	wholeArea = []string{"internal/nodeagent", "internal/imagesync", "internal/emulator", "internal/credprovider", "internal/imagebuild"}
	shared    = []string{"internal/acrconfig", "internal/acr", "internal/cloudcred", "internal/registry", "internal/pullsecret",
		"internal/dockercfg", "internal/redact", "internal/annotations", "internal/atomicfile", "internal/pki", "internal/lazyre", "internal/operator"}
	alibabaSDKs = []string{"github.com/alibabacloud-go/", "github.com/aliyun/"}
	kubernetes  = []string{"k8s.io/", "sigs.k8s.io/"}
	// criAPI is the CRI protocol: generated message types and gRPC stubs (it depends only on
	// grpc and protobuf), not a Kubernetes client library. The emulator's ECI runtime speaks it
	// to containerd; no other emulator package may import it. Outside the emulator only
	// criAPIUsers may: node-agent's ImageCache pre-puller (CRI PullImage/ImageStatus/RemoveImage on
	// the node's runtime) and the rig's containerdenv.
	criAPI      = "k8s.io/cri-api/pkg/apis/runtime/v1"
	criAPIUsers = []string{"internal/emulator/eci/cri", "internal/nodeagent/prepull", "internal/testutil/containerdenv"}
	// emulatorCloud is the emulator's cloud side: it verifies signatures with its own code, the
	// Alibaba SDKs appear only in its tests, as clients.
	emulatorCloud = []string{"internal/emulator/world", "internal/emulator/ram", "internal/emulator/signature",
		"internal/emulator/oidc", "internal/emulator/openapi", "internal/emulator/imds"}
)

// feature returns the feature a package belongs to ("" for none).
func feature(path string) string {
	rel := strings.TrimPrefix(path, module+"/")
	for _, a := range perChild {
		if rel == a {
			return "" // the area's shared base (internal/webhook)
		}
		if strings.HasPrefix(rel, a+"/") {
			child, _, _ := strings.Cut(strings.TrimPrefix(rel, a+"/"), "/")
			return a + "/" + child
		}
	}
	for _, a := range wholeArea {
		if rel == a || strings.HasPrefix(rel, a+"/") {
			return a
		}
	}
	return ""
}

// TestClassified keeps the rule lists honest: every entry names packages that exist, and every
// internal package is classified (a new package must be put in its place here).
func TestClassified(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list over the module")
	}
	pkgs := listPackages(t)
	for _, prefix := range slices.Concat(perChild, shared, emulatorCloud) {
		if !slices.ContainsFunc(pkgs, func(p pkg) bool { return under(p.ImportPath, prefix) }) {
			t.Errorf("depcheck lists %s, which has no package", prefix)
		}
	}
	for _, p := range pkgs {
		if !under(p.ImportPath, "internal") || anyUnder(p.ImportPath, "internal/testutil", "internal/depcheck", "internal/webhook") {
			continue
		}
		if feature(p.ImportPath) == "" && !anyUnder(p.ImportPath, shared...) {
			t.Errorf("%s is neither a feature nor a shared package: classify it in internal/depcheck", strings.TrimPrefix(p.ImportPath, module+"/"))
		}
	}
}

func hasPrefixAny(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// TestImportDirection checks the non-test imports of every package in the module.
func TestImportDirection(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list over the module")
	}
	pkgs := listPackages(t)
	if len(pkgs) < 5 {
		t.Fatalf("go list found only %d packages", len(pkgs))
	}
	for _, p := range pkgs {
		self := strings.TrimPrefix(p.ImportPath, module+"/")
		// Direct imports.
		for _, imp := range p.Imports {
			var why string
			switch {
			case under(imp, "cmd") && !sameBinary(p.ImportPath, imp):
				why = "nothing imports cmd/ (except cmd/<bin> importing its own cmd/<bin>/app)"
			case under(p.ImportPath, "api") && !isStd(imp) && !strings.HasPrefix(imp, "k8s.io/apimachinery/") && !under(imp, "api"):
				why = "api/ imports only apimachinery"
			case under(p.ImportPath, "internal/emulator") && hasPrefixAny(imp, kubernetes) && imp != "sigs.k8s.io/yaml" &&
				!(imp == criAPI && under(p.ImportPath, "internal/emulator/eci/cri")):
				why = "the emulator imports no Kubernetes (sigs.k8s.io/yaml, a YAML library, is fine; internal/emulator/eci/cri may import the CRI protocol " + criAPI + ")"
			case strings.HasPrefix(imp, "k8s.io/cri-api/") && !anyUnder(p.ImportPath, criAPIUsers...):
				why = "only " + strings.Join(criAPIUsers, ", ") + " speak CRI (" + criAPI + ")"
			case hasPrefixAny(imp, alibabaSDKs) && !anyUnder(p.ImportPath, "internal/acr", "internal/cloudcred"):
				why = "only internal/acr and internal/cloudcred import the Alibaba SDKs (the emulator uses them in tests only)"
			}
			if why != "" {
				t.Errorf("%s imports %s: %s", self, imp, why)
			}
		}
		// Transitive dependencies: no rule can be bypassed through a package in between.
		for _, dep := range p.Deps {
			var why string
			switch {
			case under(dep, "internal/testutil") && !under(p.ImportPath, "internal/testutil"):
				why = "internal/testutil is for _test.go files only"
			case anyUnder(p.ImportPath, shared...) && feature(dep) != "":
				why = "shared packages must not depend on feature packages"
			case feature(p.ImportPath) != "" && feature(dep) != "" && feature(dep) != feature(p.ImportPath):
				why = "a feature must not depend on another feature (" + feature(p.ImportPath) + " → " + feature(dep) + "); move what both need into a shared package"
			case anyUnder(p.ImportPath, "internal/dockercfg", "internal/redact") && !isStd(dep) &&
				!anyUnder(dep, "internal/dockercfg", "internal/redact"):
				why = "dockercfg and redact are stdlib-only leaves"
			case anyUnder(p.ImportPath, emulatorCloud...) && (hasPrefixAny(dep, alibabaSDKs) || hasPrefixAny(dep, kubernetes) && dep != "sigs.k8s.io/yaml"):
				why = "the emulator's cloud side depends on neither Kubernetes nor the Alibaba SDKs"
			case anyUnder(p.ImportPath, "internal/emulator") && hasPrefixAny(dep, alibabaSDKs):
				why = "the emulator depends on no Alibaba SDK (they are its clients, in tests)"
			case anyUnder(p.ImportPath, "internal/credprovider") && hasPrefixAny(dep, []string{"k8s.io/client-go/", "sigs.k8s.io/controller-runtime", "k8s.io/kubernetes/"}):
				why = "the credential provider runs once per image pull on every node: the kubelet's API types and nothing else of Kubernetes (no client-go, no controller-runtime)"
			}
			if why != "" {
				t.Errorf("%s depends on %s: %s", self, dep, why)
			}
		}
	}
}

// TestPackageDocs checks that every package states its purpose in a doc comment.
func TestPackageDocs(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list over the module")
	}
	for _, p := range listPackages(t) {
		if strings.TrimSpace(p.Doc) == "" {
			t.Errorf("%s has no package doc comment", p.ImportPath)
		}
	}
}
