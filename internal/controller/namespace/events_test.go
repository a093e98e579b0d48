package namespace

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ferrypull/ferry/internal/testutil/poll"
)

// TestEveryConfigWarningVisible: a configuration with three warnings. The events.k8s.io
// recorder folds Events with the same reason and object (the ConfigMap at one resourceVersion)
// into one and keeps the first message, so one Event per warning named one field of three.
func TestEveryConfigWarningVisible(t *testing.T) {
	h := startHarness(t, harnessOptions{})
	h.namespace(t, "team")
	h.applyConfig(t, map[string]string{
		"service-account": "default", "watch-namespace": "team",
		"notify-email":      "not-an-address",
		"acr-api-version":   "2017-01-01",
		"unknown-key":       "x",
		"acr-registry-info": "- instanceId: \"cri-real\"\n  assumeRoleARN: \"acs:ram::2222222222222222:role/acr-pull\"\n",
	})
	poll.Within(t, 20*time.Second, "one ConfigWarning naming every field", func() error {
		all := strings.Join(h.events(t, ReasonConfigWarning), "\n")
		for _, field := range []string{"notify-email:", "acr-api-version:", "unknown-key:"} {
			if !strings.Contains(all, field) {
				return fmt.Errorf("no ConfigWarning names %s: %q", field, all)
			}
		}
		return nil
	})
}
