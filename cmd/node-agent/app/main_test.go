package app

import (
	"testing"

	"github.com/ferrypull/ferry/internal/operator/kube"
)

// TestMain sets the process-global library loggers before any test starts a client (kube.RunTests).
func TestMain(m *testing.M) { kube.RunTests(m) }
