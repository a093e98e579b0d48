package annotations

import (
	"encoding/json"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
)

// ferry's own keys that tie the Pod webhook, the gate controller and
// node-agent together (see docs/annotations.md, "Ordering").
const (
	// RegistryConfigLabel marks Pods that carry plain-http-registry or
	// insecure-registry; node-agents watch only Pods with this label.
	RegistryConfigLabel = "ferry.dev/registry-config"
	// RegistryConfigGate is the scheduling gate that holds such a Pod until
	// every node-agent has configured (or refused) its registry hosts.
	RegistryConfigGate = "ferry.dev/registry-config"
	// NodeRegistryStatusAnnotation is the Node annotation in which each
	// node-agent publishes a NodeRegistryStatus.
	NodeRegistryStatusAnnotation = "node-agent.ferry.dev/registry-hosts"
)

// NodeRegistryStatus is what one node-agent reports about its node: which
// registry hosts are ready (ferry's entry written, or the user's own
// hosts.toml already does it), which it refused (not in the allow-list) and
// which it could not configure (conflicting user file, write error).
type NodeRegistryStatus struct {
	Ready   map[string]RegistryMode `json:"ready,omitempty"`
	Refused []string                `json:"refused,omitempty"`
	Failed  []string                `json:"failed,omitempty"`
}

// Decided reports whether the node has settled host: ready, refused or failed.
func (s NodeRegistryStatus) Decided(host string) bool {
	if _, ok := s.Ready[host]; ok {
		return true
	}
	return slices.Contains(s.Refused, host) || slices.Contains(s.Failed, host)
}

// Encode renders the status as compact JSON with sorted lists.
func (s NodeRegistryStatus) Encode() string {
	slices.Sort(s.Refused)
	slices.Sort(s.Failed)
	b, _ := json.Marshal(s) // maps and string slices always marshal
	return string(b)
}

// ParseNodeRegistryStatus decodes the Node annotation value.
func ParseNodeRegistryStatus(v string) (NodeRegistryStatus, error) {
	var s NodeRegistryStatus
	if len(v) > maxValueLen*4 {
		return s, fmt.Errorf("annotation %s: value longer than %d bytes", NodeRegistryStatusAnnotation, maxValueLen*4)
	}
	if err := json.Unmarshal([]byte(v), &s); err != nil {
		return NodeRegistryStatus{}, fmt.Errorf("annotation %s: %w", NodeRegistryStatusAnnotation, err)
	}
	return s, nil
}

// Gated reports whether pod still carries the RegistryConfigGate scheduling gate.
func Gated(pod *corev1.Pod) bool {
	return slices.ContainsFunc(pod.Spec.SchedulingGates, func(g corev1.PodSchedulingGate) bool { return g.Name == RegistryConfigGate })
}
