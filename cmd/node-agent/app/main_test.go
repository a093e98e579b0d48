package app

import (
	"os"
	"testing"

	"github.com/go-logr/logr"

	"github.com/ferrypull/ferry/internal/operator"
	"github.com/ferrypull/ferry/internal/operator/kube"
)

// TestMain sets the process-global library loggers before any test starts a client, as a binary
// does at start-up: the tests run several helpers in one process, and setting them while clients
// run would race. Library lines go to stderr through the redacting handler.
func TestMain(m *testing.M) {
	l := operator.Logging{Format: operator.FormatText}
	kube.SetGlobalLoggers(logr.FromSlogHandler(l.Handler(os.Stderr)))
	os.Exit(m.Run())
}
