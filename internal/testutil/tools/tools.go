// Package tools locates the binaries the test rig runs (envtest assets, kubelet, pause, Debian packages)
// and decides whether a missing one skips or fails a test.
package tools

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Require reports a missing rig component. Under -short (`make test-short`) it skips: unit tests need no
// rig. With FERRY_REQUIRE_RIG=1 (CI, and `make test` as root) it fails, so CI can never pass by skipping.
// Otherwise it skips with the reason and appends the test and reason to $FERRY_SKIP_LOG, which `make test`
// prints at the end and fails on unless FERRY_ALLOW_SKIP=1.
func Require(t testing.TB, format string, args ...any) {
	t.Helper()
	if testing.Short() {
		t.Skipf("SKIP (-short: no rig): "+format, args...)
	}
	if os.Getenv("FERRY_REQUIRE_RIG") == "1" {
		t.Fatalf("rig component unavailable (FERRY_REQUIRE_RIG=1): "+format, args...)
	}
	reason := fmt.Sprintf(format, args...)
	if p := os.Getenv("FERRY_SKIP_LOG"); p != "" {
		first, _, _ := strings.Cut(reason, "\n")
		if f, err := os.OpenFile(p, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
			_, _ = fmt.Fprintf(f, "%s: %s\n", t.Name(), first)
			_ = f.Close()
		}
	}
	t.Skipf("SKIP (rig component unavailable): %s", reason)
}

// Rig marks the start of a rig component (apiserver, containerd, kubelet, a registry process): under -short
// the test skips before anything starts.
func Rig(t testing.TB, component string) {
	t.Helper()
	if testing.Short() {
		t.Skipf("SKIP (-short: no rig): needs %s", component)
	}
}

// Broken fails the test: a rig component that was present and started but then did not work (containerd
// not serving, a kubelet that never registers) is a failure, never a skip.
func Broken(t testing.TB, format string, args ...any) {
	t.Helper()
	t.Fatalf("rig component started but broken: "+format, args...)
}

// Env returns the value of a rig variable (KUBEBUILDER_ASSETS, FERRY_KUBELET, FERRY_PAUSE) from the
// environment, or else from bin/tools.env in the module root written by hack/tools.sh.
func Env(key string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	root := ModuleRoot()
	if root == "" {
		return ""
	}
	f, err := os.Open(filepath.Join(root, "bin", "tools.env"))
	if err != nil {
		return ""
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		k, v, ok := strings.Cut(s.Text(), "=")
		if ok && k == key {
			return v
		}
	}
	return ""
}

// ModuleRoot returns the directory holding ferry's go.mod, searching upwards from the working directory.
func ModuleRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// LookPath finds a program or reports it as missing via Require.
func LookPath(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Require(t, "%s not found on PATH (install it with `make tools`)", name)
	}
	return p
}

// IsRoot reports whether the tests run as root.
func IsRoot() bool { return os.Geteuid() == 0 }

// Poll calls cond every interval until it reports done, returns an error (which ends the poll), or
// timeout passes. It is the rig's only way to wait for a component: readiness is observed, never slept on.
func Poll(ctx context.Context, timeout, interval time.Duration, cond func(context.Context) (done bool, err error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		done, err := cond(ctx)
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}
