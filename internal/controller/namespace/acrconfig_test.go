package namespace

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ferrypull/ferry/internal/testutil/poll"
)

// TestRealConfigMapThroughController drives the real acr-configuration parser through the
// controller on a real apiserver: a valid ConfigMap is served, an invalid edit yields an Event
// naming the field path and the value, and the last good configuration keeps serving.
func TestRealConfigMapThroughController(t *testing.T) {
	h := startHarness(t, harnessOptions{})
	h.namespace(t, "team")
	h.applyConfig(t, map[string]string{
		"service-account": "default", "watch-namespace": "team",
		"acr-registry-info": "- instanceId: \"" + instHZ + "\"\n  expireDuration: 3600\n",
	})
	poll.Within(t, 20*time.Second, "Secret from the real parser", func() error { _, err := h.secret("team", nameHZ); return err })

	h.applyConfig(t, map[string]string{
		"service-account": "default", "watch-namespace": "team,newteam",
		"acr-registry-info": "- instanceId: \"" + instHZ + "\"\n  assumeRoleARN: \"acs:ram::2222222222222222:role/acr-pull\"\n  expireDuration: 99\n",
	})
	poll.Within(t, 20*time.Second, "ConfigInvalid event naming the field and value", func() error {
		for _, n := range h.events(t, ReasonConfigInvalid) {
			if strings.Contains(n, "acr-registry-info[0].expireDuration") && strings.Contains(n, "99") && strings.Contains(n, "last good configuration keeps running") {
				return nil
			}
		}
		return errors.New("no such event")
	})
	if !strings.Contains(h.logs.String(), "acr-registry-info[0].expireDuration") {
		t.Error("no log line names the field")
	}
	if st := h.store.Current(); st == nil || st.Namespaces.Has("newteam") {
		t.Errorf("the invalid configuration took effect: %+v", st)
	}
}
