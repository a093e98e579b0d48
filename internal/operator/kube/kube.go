// Package kube is the Kubernetes half of the operator surface (internal/operator stays free of
// Kubernetes code for acr-emulator): it routes the process-global loggers of controller-runtime
// and klog (client-go) into a binary's redacting logger.
package kube

import (
	"os"
	"sync"

	"github.com/ferrypull/ferry/internal/operator"
	"github.com/go-logr/logr"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
)

var once sync.Once

// SetGlobalLoggers sets controller-runtime's and klog's global loggers to logger, once per
// process: they are process-wide, and setting them again while clients run is a data race. A
// binary runs once per process; where tests start several in one process, the first one's
// logger receives the library lines (each run's own lines go to the logger it passes explicitly).
func SetGlobalLoggers(logger logr.Logger) {
	once.Do(func() {
		ctrl.SetLogger(logger)
		klog.SetLogger(logger)
	})
}

// RunTests is the TestMain of a package whose tests run a Kubernetes binary in process: it sets the
// global loggers first (as the binary does at start-up, before any client exists; setting them while
// the tests' clients run would race), with library lines on stderr through the redacting handler,
// then runs the tests and exits with their status.
func RunTests(m interface{ Run() int }) {
	l := operator.Logging{Format: operator.FormatText}
	SetGlobalLoggers(logr.FromSlogHandler(l.Handler(os.Stderr)))
	os.Exit(m.Run())
}
