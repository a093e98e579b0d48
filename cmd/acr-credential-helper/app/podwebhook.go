package app

import (
	"fmt"
	"maps"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/ferrypull/ferry/internal/controller/podsecret"
	"github.com/ferrypull/ferry/internal/controller/schedulinggate"
	"github.com/ferrypull/ferry/internal/pullsecret"
	"github.com/ferrypull/ferry/internal/webhook/pod"
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
	maps.Copy(opts.ByObject, schedulinggate.CacheByObject())
	return opts
}

// setupPodWebhook serves the ECI Pod annotations (docs/annotations.md): it registers the Pod
// webhook at pod.Path with the Secret ensurer on the shared token source, the refresher of the
// Secrets it mints, and the scheduling-gate controller. It returns the entries to add to the
// MutatingWebhookConfiguration (webhook.ConfigManager.Extra).
func setupPodWebhook(mgr ctrl.Manager, o *Options, store *pullsecret.Store, tokens *pullsecret.CloudTokens, rec events.EventRecorder) (
	func(admissionregistrationv1.WebhookClientConfig, string, int32) []admissionregistrationv1.MutatingWebhook, error) {
	threshold := func() time.Duration {
		if cur := store.Current(); cur != nil {
			return cur.ExpiringThreshold
		}
		return podsecret.DefaultThreshold
	}
	ensurer := &podsecret.Ensurer{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Minter: tokens, Region: o.Region, Threshold: threshold}
	if err := (&podsecret.Reconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Minter: tokens, Threshold: threshold, Recorder: rec}).
		SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("set up pod-annotation Secret controller: %w", err)
	}
	if err := (&schedulinggate.GateReconciler{Client: mgr.GetClient(), Recorder: rec}).SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("set up scheduling-gate controller: %w", err)
	}
	mk := func(p pod.FailurePolicy) admission.Handler {
		return pod.NewMutator(pod.Options{Ensurer: ensurer, FailurePolicy: p, Recorder: rec})
	}
	mgr.GetWebhookServer().Register(pod.Path, &admission.Webhook{Handler: &pod.PolicyHandler{
		Policy: func() (string, bool) { _, fp, _, ok := store.WebhookSettings(); return fp, ok },
		Fail:   mk(pod.Fail), Ignore: mk(pod.Ignore),
	}})
	return func(cc admissionregistrationv1.WebhookClientConfig, failurePolicy string, timeout int32) []admissionregistrationv1.MutatingWebhook {
		return []admissionregistrationv1.MutatingWebhook{pod.MutatingWebhook(cc, pod.ParseFailurePolicy(failurePolicy), timeout, o.Namespace)}
	}, nil
}
