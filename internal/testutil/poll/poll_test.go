package poll

import (
	"context"
	"fmt"
	"testing"
)

// recorder is a testing.TB that records Fatalf instead of stopping the test
// and hands out its own context.
type recorder struct {
	testing.TB
	ctx    context.Context
	failed string
}

func (r *recorder) Helper()                  {}
func (r *recorder) Context() context.Context { return r.ctx }
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = fmt.Sprintf(format, args...)
}

func TestUntil(t *testing.T) {
	tests := []struct {
		name      string
		okAfter   int  // cond succeeds on this call; 0 = never
		cancelled bool // the test's context is already done
		wantCalls int
		wantFail  string
	}{
		{name: "at once", okAfter: 1, wantCalls: 1},
		{name: "after a few calls", okAfter: 4, wantCalls: 4},
		{name: "never, test context done", cancelled: true, wantCalls: 1, wantFail: "thing: not yet (call 1)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			if tt.cancelled {
				cancel()
			}
			r := &recorder{TB: t, ctx: ctx}
			calls := 0
			Until(r, "thing", func() error {
				calls++
				if calls == tt.okAfter {
					return nil
				}
				return fmt.Errorf("not yet (call %d)", calls)
			})
			if r.failed != tt.wantFail || calls != tt.wantCalls {
				t.Fatalf("failure %q after %d calls, want %q after %d", r.failed, calls, tt.wantFail, tt.wantCalls)
			}
		})
	}
}
