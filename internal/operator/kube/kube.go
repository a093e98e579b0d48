// Package kube is the Kubernetes half of the operator surface (internal/operator stays free of
// Kubernetes code for acr-emulator): it routes the process-global loggers of controller-runtime
// and klog (client-go) into a binary's redacting logger.
package kube

import (
	"sync"

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
