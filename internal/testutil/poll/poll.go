// Package poll waits in tests for a condition that a real component makes
// true asynchronously (an object reconciled, a file written), by observing
// it rather than sleeping.
package poll

import (
	"context"
	"testing"
	"time"

	"github.com/ferrypull/ferry/internal/testutil/tools"
)

// Timeout and Interval bound Until.
const (
	Timeout  = 30 * time.Second
	Interval = 20 * time.Millisecond
)

// Until calls cond every Interval until it returns nil, and fails the test
// with what and cond's last error if that has not happened within Timeout
// (or once the test's context ends).
func Until(t testing.TB, what string, cond func() error) {
	t.Helper()
	Within(t, Timeout, what, cond)
}

// Within is Until with its own timeout, for conditions that take longer than
// Timeout by design (token renewals, a kubelet's pull).
func Within(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	last := context.DeadlineExceeded
	err := tools.Poll(t.Context(), timeout, Interval, func(context.Context) (bool, error) {
		last = cond()
		return last == nil, nil
	})
	if err != nil {
		t.Fatalf("%s: %v", what, last)
	}
}
