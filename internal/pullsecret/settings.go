package pullsecret

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// ConfigMapNamespace and ConfigMapName locate the acr-configuration ConfigMap.
const (
	ConfigMapNamespace = "kube-system"
	ConfigMapName      = "acr-configuration"
)

// Settings is the controller's view of a valid acr-configuration.
type Settings struct {
	// ServiceAccounts selects the ServiceAccounts that get the Secrets.
	ServiceAccounts NameSet
	// Namespaces selects the watched namespaces.
	Namespaces NameSet
	// ExpiringThreshold: a token is renewed this long before it expires.
	ExpiringThreshold time.Duration
	// Instances are the registries to mint tokens for.
	Instances []Instance
	// Webhook configures the ServiceAccount-creation webhook.
	Webhook WebhookSettings
}

// NameSet selects names: every name when All, else the listed ones.
type NameSet struct {
	All   bool
	Names []string
}

// Has reports whether name is selected.
func (s NameSet) Has(name string) bool {
	return s.All || slices.Contains(s.Names, name)
}

// ParseNameSet parses the comma list form of service-account and watch-namespace. allWord is
// the token meaning "everything" ("*" or "all"); empty items are dropped.
func ParseNameSet(v string, allWords ...string) NameSet {
	var s NameSet
	for _, item := range strings.Split(v, ",") {
		item = strings.TrimSpace(item)
		switch {
		case item == "":
		case slices.Contains(allWords, item):
			s.All = true
		case !slices.Contains(s.Names, item):
			s.Names = append(s.Names, item)
		}
	}
	return s
}

// WebhookSettings is the webhook-configuration block.
type WebhookSettings struct {
	Enable         bool
	FailurePolicy  string // "Ignore" or "Fail"
	TimeoutSeconds int32
}

// Instance is one acr-registry-info entry, with defaults applied.
type Instance struct {
	// ID is the Enterprise Edition instance ID; empty for Personal Edition.
	ID string
	// Region is the instance's region (the cluster's region when the entry left it out).
	Region string
	// Domains are the configured registry hosts; empty means "ask the TokenSource".
	Domains []string
	// Source is opaque to this package: the Loader puts the full configuration entry here and
	// the TokenSource reads it back (identity, assumeRoleARN, …).
	Source any
}

// Key identifies the instance: its ID, or "personal-<region>" for Personal Edition.
func (i Instance) Key() string {
	if i.ID != "" {
		return i.ID
	}
	return "personal-" + i.Region
}

// SecretName is the deterministic name of the instance's Secret in every namespace:
// "acr-pull-<instanceId>" for Enterprise Edition and "acr-pull-personal-<region>" for Personal
// Edition, lower-cased. A key that would not make a valid Secret name (or label value) is
// replaced by the first 16 hex digits of its SHA-256.
func SecretName(inst Instance) string {
	return SecretPrefix + safeKey(inst.Key())
}

// InstanceLabel is the LabelInstance value of inst's namespace Secrets.
func InstanceLabel(inst Instance) string { return safeKey(inst.Key()) }

func safeKey(key string) string {
	k := strings.ToLower(key)
	if len(validation.IsDNS1123Label(SecretPrefix+k)) == 0 && len(validation.IsValidLabelValue(k)) == 0 {
		return k
	}
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:8])
}

// Validate checks what this package relies on: distinct Secret names and a positive threshold.
func (s *Settings) Validate() error {
	if s.ExpiringThreshold <= 0 {
		return fmt.Errorf("expiring-threshold: must be positive, got %s", s.ExpiringThreshold)
	}
	seen := map[string]int{}
	for i, inst := range s.Instances {
		n := SecretName(inst)
		if j, dup := seen[n]; dup {
			return fmt.Errorf("acr-registry-info[%d]: instance %q duplicates acr-registry-info[%d]", i, inst.Key(), j)
		}
		seen[n] = i
	}
	return nil
}

// SecretNames returns the managed Secret names, in configuration order.
func (s *Settings) SecretNames() []string {
	out := make([]string, 0, len(s.Instances))
	for _, inst := range s.Instances {
		out = append(out, SecretName(inst))
	}
	return out
}

// PullSecretsFor returns the Secret names ServiceAccount sa in namespace ns must carry; nil when
// the namespace or the ServiceAccount is not selected.
func (s *Settings) PullSecretsFor(ns, sa string) []string {
	if s == nil || !s.Namespaces.Has(ns) || !s.ServiceAccounts.Has(sa) {
		return nil
	}
	return s.SecretNames()
}

// Warning is a non-fatal remark about a ConfigMap (unknown key, AccessKey in plain text…).
type Warning struct {
	Field   string
	Message string
}

// A Loader turns the acr-configuration ConfigMap into Settings. Errors name the field and its
// value and never contain secrets.
type Loader func(cm *corev1.ConfigMap) (*Settings, []Warning, error)

// Store holds the Settings in force (the last good ones) and tells subscribers when they change.
// The zero value is idle (no Settings).
type Store struct {
	mu   sync.RWMutex
	cur  *Settings
	subs []chan struct{}
}

// Current returns the Settings in force, or nil when idle. Callers must not modify them.
func (s *Store) Current() *Settings {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cur
}

// Set replaces the Settings in force (nil = idle) and notifies subscribers.
func (s *Store) Set(v *Settings) {
	s.mu.Lock()
	s.cur = v
	subs := slices.Clone(s.subs)
	s.mu.Unlock()
	for _, c := range subs {
		select {
		case c <- struct{}{}:
		default: // a notification is already pending
		}
	}
}

// Subscribe returns a channel that receives a value after each Set (coalesced).
func (s *Store) Subscribe() <-chan struct{} {
	c := make(chan struct{}, 1)
	s.mu.Lock()
	s.subs = append(s.subs, c)
	s.mu.Unlock()
	return c
}

// PullSecretsFor implements the webhook's view: the Secret names for a ServiceAccount.
func (s *Store) PullSecretsFor(ns, sa string) []string {
	return s.Current().PullSecretsFor(ns, sa)
}

// ApplyTo merges the Secret names selected for sa into its imagePullSecrets (the same merge the
// reconciler does, recorded in AnnotationPullSecrets) and reports whether sa changed. It is what
// the ServiceAccount-creation webhook calls.
func (s *Store) ApplyTo(sa *corev1.ServiceAccount) bool {
	want := s.PullSecretsFor(sa.Namespace, sa.Name)
	if len(want) == 0 {
		return false
	}
	changed, _, _ := ApplyToServiceAccount(sa, want)
	return changed
}

// WebhookSettings returns the webhook-configuration in force; ok is false when idle.
func (s *Store) WebhookSettings() (enable bool, failurePolicy string, timeoutSeconds int32, ok bool) {
	cur := s.Current()
	if cur == nil {
		return false, "", 0, false
	}
	return cur.Webhook.Enable, cur.Webhook.FailurePolicy, cur.Webhook.TimeoutSeconds, true
}
