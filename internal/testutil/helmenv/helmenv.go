// Package helmenv runs the real Helm CLI in tests — Helm 4 (FERRY_HELM) and Helm 3 (FERRY_HELM3),
// both built from the Go module proxy by `make tools` — to render, lint, install and uninstall
// ferry's chart, and decodes what Helm renders into typed Kubernetes objects.
package helmenv

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/ferrypull/ferry/internal/testutil/tools"
)

// Helm is one Helm binary.
type Helm struct {
	Bin string
	// Major is 4 or 3.
	Major int
	// Home isolates Helm's config, cache and data directories (one per test).
	Home string
}

// V4 returns Helm 4 (FERRY_HELM), or skips/fails the test through tools.Require.
func V4(t testing.TB) *Helm { t.Helper(); return find(t, "FERRY_HELM", 4) }

// V3 returns Helm 3 (FERRY_HELM3), or skips/fails the test through tools.Require.
func V3(t testing.TB) *Helm { t.Helper(); return find(t, "FERRY_HELM3", 3) }

// Both returns Helm 4 and Helm 3.
func Both(t testing.TB) []*Helm { t.Helper(); return []*Helm{V4(t), V3(t)} }

func find(t testing.TB, key string, major int) *Helm {
	t.Helper()
	bin := tools.Env(key)
	if _, err := os.Stat(bin); bin == "" || err != nil {
		tools.Require(t, "Helm %d unavailable (%s=%q; run `make tools`)", major, key, bin)
	}
	return &Helm{Bin: bin, Major: major, Home: t.TempDir()}
}

// Name is "helm4" or "helm3", for subtest names.
func (h *Helm) Name() string { return "helm" + string(rune('0'+h.Major)) }

// ChartDir is charts/ferry in the module.
func ChartDir() string { return filepath.Join(tools.ModuleRoot(), "charts", "ferry") }

// Run runs helm with args and returns its combined output and error. It also works in a
// t.Cleanup function (the test's context is cancelled by then), bounded by five minutes.
func (h *Helm) Run(t testing.TB, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(t.Context()), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.Bin, args...)
	cmd.Env = append(os.Environ(),
		"HELM_CONFIG_HOME="+filepath.Join(h.Home, "config"),
		"HELM_CACHE_HOME="+filepath.Join(h.Home, "cache"),
		"HELM_DATA_HOME="+filepath.Join(h.Home, "data"),
	)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// MustRun runs helm and fails the test on error.
func (h *Helm) MustRun(t testing.TB, args ...string) string {
	t.Helper()
	out, err := h.Run(t, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", h.Name(), strings.Join(args, " "), err, out)
	}
	return out
}

// ValuesFile writes values as a YAML file for -f.
func ValuesFile(t testing.TB, values map[string]any) string {
	t.Helper()
	b, err := yaml.Marshal(values)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Template renders the chart as `helm template <release> charts/ferry -n <namespace> -f <values>`
// plus args, failing the test when Helm fails.
func (h *Helm) Template(t testing.TB, release, namespace string, values map[string]any, args ...string) string {
	t.Helper()
	full := append([]string{"template", release, ChartDir(), "--namespace", namespace, "-f", ValuesFile(t, values)}, args...)
	return h.MustRun(t, full...)
}

var strict = serializer.NewCodecFactory(clientgoscheme.Scheme, serializer.EnableStrict).UniversalDeserializer()

// Decode splits a rendered manifest into typed objects of client-go's scheme, strictly: an unknown
// or duplicated field fails the test. Kinds outside the scheme (CRD-backed ones such as
// ServiceMonitor) come back as *unstructured.Unstructured.
func Decode(t testing.TB, manifest string) []client.Object {
	t.Helper()
	var objs []client.Object
	for _, doc := range splitDocs(manifest) {
		obj, _, err := strict.Decode([]byte(doc), nil, nil)
		if err != nil {
			if runtime.IsNotRegisteredError(err) {
				u, err := unstructuredFrom(doc)
				if err != nil {
					t.Fatalf("decode rendered object: %v\n%s", err, doc)
				}
				objs = append(objs, u)
				continue
			}
			t.Fatalf("decode rendered object: %v\n%s", err, doc)
		}
		co, ok := obj.(client.Object)
		if !ok {
			t.Fatalf("rendered %T is not an object", obj)
		}
		objs = append(objs, co)
	}
	return objs
}

// splitDocs splits YAML documents, dropping empty ones and comments-only ones.
func unstructuredFrom(doc string) (*unstructured.Unstructured, error) {
	var m map[string]any
	if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
		return nil, err
	}
	return &unstructured.Unstructured{Object: m}, nil
}

func splitDocs(manifest string) []string {
	var docs []string
	for _, d := range strings.Split("\n"+manifest, "\n---") {
		keep := false
		for _, l := range strings.Split(d, "\n") {
			if s := strings.TrimSpace(l); s != "" && !strings.HasPrefix(s, "#") {
				keep = true
				break
			}
		}
		if keep {
			docs = append(docs, d)
		}
	}
	return docs
}
