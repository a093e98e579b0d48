package etchosts

import (
	"net"
	"testing"

	"github.com/ferrypull/ferry/internal/testutil/tools"
)

func TestEnsureResolves(t *testing.T) {
	if !tools.IsRoot() {
		tools.Require(t, "writing /etc/hosts needs root")
	}
	names := []string{"ferry-etchosts-selftest.example.test:5000", "FERRY-ETCHOSTS-SELFTEST.example.test"}
	Ensure(t, names...)
	Ensure(t, names...) // idempotent
	addrs, err := net.DefaultResolver.LookupHost(t.Context(), "ferry-etchosts-selftest.example.test")
	if err != nil || len(addrs) == 0 || addrs[0] != "127.0.0.1" {
		t.Fatalf("lookup = %v, %v; want 127.0.0.1", addrs, err)
	}
}
