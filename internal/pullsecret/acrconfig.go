package pullsecret

import (
	corev1 "k8s.io/api/core/v1"

	"github.com/ferrypull/ferry/internal/acrconfig"
)

// ACRSource is what NewLoader puts in Instance.Source: the whole validated configuration (RRSA
// switch, token mode, cluster region) and the instance's own entry, for the TokenSource to pick
// the identity from.
type ACRSource struct {
	Config *acrconfig.Config
	Entry  acrconfig.Instance
}

// NewLoader returns the Loader for the real acr-configuration format (internal/acrconfig).
func NewLoader(opts acrconfig.Options) Loader {
	return func(cm *corev1.ConfigMap) (*Settings, []Warning, error) {
		cfg, warns, err := acrconfig.Parse(cm.Data, opts)
		var out []Warning
		for _, w := range warns {
			out = append(out, Warning{Field: w.Field, Message: w.Message})
		}
		if err != nil {
			return nil, out, err
		}
		return FromACRConfig(cfg), out, nil
	}
}

// FromACRConfig converts a validated acr-configuration into Settings.
func FromACRConfig(cfg *acrconfig.Config) *Settings {
	s := &Settings{
		ServiceAccounts:   NameSet{All: cfg.ServiceAccounts.All, Names: cfg.ServiceAccounts.Names},
		Namespaces:        NameSet{All: cfg.WatchNamespaces.All, Names: cfg.WatchNamespaces.Names},
		ExpiringThreshold: cfg.ExpiringThreshold,
		Webhook: WebhookSettings{
			Enable:         cfg.Webhook.Enable,
			FailurePolicy:  string(cfg.Webhook.FailurePolicy),
			TimeoutSeconds: cfg.Webhook.TimeoutSeconds,
		},
	}
	for _, e := range cfg.Instances {
		s.Instances = append(s.Instances, Instance{
			ID: e.InstanceID, Region: e.RegionID, Domains: e.Domains,
			Source: ACRSource{Config: cfg, Entry: e},
		})
	}
	return s
}
