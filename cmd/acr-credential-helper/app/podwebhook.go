package app

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/ferrypull/ferry/internal/acrconfig"
	"github.com/ferrypull/ferry/internal/annotations"
	"github.com/ferrypull/ferry/internal/cloudcred"
	"github.com/ferrypull/ferry/internal/controller/podsecret"
	"github.com/ferrypull/ferry/internal/controller/pullsecret"
	"github.com/ferrypull/ferry/internal/webhook/podpullsecret"
)

// The Pod webhook's gate controller and Secret refresher.
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// podWebhookCache adds the gate controller's cache restrictions (labelled Pods, slim Nodes).
func podWebhookCache(opts cache.Options) cache.Options {
	if opts.ByObject == nil {
		opts.ByObject = map[client.Object]cache.ByObject{}
	}
	maps.Copy(opts.ByObject, podpullsecret.CacheByObject())
	return opts
}

// setupPodWebhook serves the ECI Pod annotations (docs/annotations.md): it registers the Pod
// webhook at podpullsecret.Path with the production Secret ensurer, the refresher of the
// Secrets it mints, and the scheduling-gate controller. It returns the entry to add to the
// MutatingWebhookConfiguration (serviceaccount.ConfigManager.Extra).
func setupPodWebhook(ctx context.Context, mgr ctrl.Manager, o *Options, store *pullsecret.Store, tokens pullsecret.TokenSource, rec events.EventRecorder) (
	func(admissionregistrationv1.WebhookClientConfig, string, int32) []admissionregistrationv1.MutatingWebhook, error) {
	ct, ok := tokens.(*cloudTokens)
	if !ok { // a TokenSource injected by a test: the Pod webhook still uses the real machinery
		ts, err := newTokenSource(ctx, o, mgr.GetAPIReader())
		if err != nil {
			return nil, err
		}
		ct = ts.(*cloudTokens)
	}
	minter := &podsecret.CloudMinter{Resolver: ct.resolver, Cache: ct.cache, Base: func(ctx context.Context, inst annotations.InstanceRef) (cloudcred.Request, error) {
		return clusterIdentity(ctx, ct, store, o, inst)
	}}
	threshold := func() time.Duration {
		if cur := store.Current(); cur != nil {
			return cur.ExpiringThreshold
		}
		return podsecret.DefaultThreshold
	}
	ensurer := &podsecret.Ensurer{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Minter: minter, Region: o.Region, Threshold: threshold}
	if err := (&podsecret.Reconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Minter: minter, Threshold: threshold, Recorder: rec}).
		SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("set up pod-annotation Secret controller: %w", err)
	}
	if err := (&podpullsecret.GateReconciler{Client: mgr.GetClient(), Recorder: rec}).SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("set up scheduling-gate controller: %w", err)
	}
	mk := func(p podpullsecret.FailurePolicy) admission.Handler {
		return podpullsecret.NewMutator(podpullsecret.Options{Ensurer: ensurer, FailurePolicy: p, Recorder: rec})
	}
	mgr.GetWebhookServer().Register(podpullsecret.Path, &admission.Webhook{
		Handler: &policyMutator{store: store, fail: mk(podpullsecret.Fail), ignore: mk(podpullsecret.Ignore)}})

	return func(cc admissionregistrationv1.WebhookClientConfig, failurePolicy string, timeout int32) []admissionregistrationv1.MutatingWebhook {
		if cc.URL != nil {
			cc.URL = ptr.To(*cc.URL + podpullsecret.Path)
		}
		return []admissionregistrationv1.MutatingWebhook{podpullsecret.MutatingWebhook(cc, podFailurePolicy(failurePolicy), timeout, o.Namespace)}
	}, nil
}

func podFailurePolicy(v string) podpullsecret.FailurePolicy {
	if v == string(admissionregistrationv1.Fail) {
		return podpullsecret.Fail
	}
	return podpullsecret.Ignore
}

// policyMutator applies acr-configuration's current failure-policy (default Ignore) to each
// admission, so a ConfigMap edit takes effect without a restart.
type policyMutator struct {
	store        *pullsecret.Store
	fail, ignore admission.Handler
}

func (p *policyMutator) Handle(ctx context.Context, req admission.Request) admission.Response {
	if _, fp, _, ok := p.store.WebhookSettings(); ok && podFailurePolicy(fp) == podpullsecret.Fail {
		return p.fail.Handle(ctx, req)
	}
	return p.ignore.Handle(ctx, req)
}

// clusterIdentity is the identity a Pod annotation's Secret is minted with before the Pod's
// role chain: the instance's acr-registry-info entry when acr-configuration lists it (its
// customAccessKey, RRSA role, assumeRoleARN), else alibaba-addon-secret, else the token mode.
func clusterIdentity(ctx context.Context, ct *cloudTokens, store *pullsecret.Store, o *Options, inst annotations.InstanceRef) (cloudcred.Request, error) {
	addon, err := ct.addonAccessKey(ctx)
	if err != nil {
		return cloudcred.Request{}, err
	}
	mode, _ := acrconfig.ParseTokenMode(o.TokenMode)
	if cur := store.Current(); cur != nil {
		for _, i := range cur.Instances {
			src, ok := i.Source.(pullsecret.ACRSource)
			if !ok {
				continue
			}
			if strings.EqualFold(i.ID, inst.InstanceID) {
				return cloudcred.RequestFor(src.Config, src.Entry, addon), nil
			}
			mode = src.Config.TokenMode
		}
	}
	return cloudcred.Request{AddonAccessKey: addon, TokenMode: mode}, nil
}
