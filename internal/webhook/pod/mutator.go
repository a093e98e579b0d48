package pod

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/ferrypull/ferry/internal/annotations"
	"github.com/ferrypull/ferry/internal/pullsecret"
)

// Path is where the webhook is served.
const Path = "/mutate-v1-pod-ferry"

// Event reasons.
const (
	ReasonInvalidAnnotation = "InvalidECIAnnotation"
	ReasonPullSecretFailed  = "ACRPullSecretFailed"
	ReasonBoundAtCreation   = "RegistryConfigNotOrdered"
)

// FailurePolicy decides what a bad annotation or a failed Secret does to the Pod.
type FailurePolicy string

const (
	// Fail rejects the Pod.
	Fail FailurePolicy = "Fail"
	// Ignore admits the Pod without the failed part.
	Ignore FailurePolicy = "Ignore"
)

// ErrUnknownInstance is what a SecretEnsurer wraps when the instance is not
// known to the helper (not configured, not found in the region).
var ErrUnknownInstance = pullsecret.ErrUnknownInstance

// SecretEnsurer makes sure a managed kubernetes.io/dockerconfigjson Secret for
// one ACR instance exists in namespace and returns its name. chain is empty for
// the cluster identity; otherwise the Secret must be specific to that chain.
// Errors must not contain secrets; they are shown to the user.
type SecretEnsurer interface {
	EnsureInstanceSecret(ctx context.Context, namespace string, instance annotations.InstanceRef, chain annotations.RoleChain) (secretName string, err error)
}

// EnsurerFunc adapts a function to SecretEnsurer.
type EnsurerFunc func(ctx context.Context, namespace string, instance annotations.InstanceRef, chain annotations.RoleChain) (string, error)

// EnsureInstanceSecret calls f.
func (f EnsurerFunc) EnsureInstanceSecret(ctx context.Context, ns string, i annotations.InstanceRef, c annotations.RoleChain) (string, error) {
	return f(ctx, ns, i, c)
}

// Options configure the Mutator.
type Options struct {
	// Ensurer mints instance Secrets; nil means acr-instance-id(s) are
	// treated as failures (per FailurePolicy) because nothing can serve them.
	Ensurer       SecretEnsurer
	FailurePolicy FailurePolicy // default Ignore
	// DisableGate stops the webhook from gating registry-annotated Pods
	// (it still labels them).
	DisableGate bool
	Recorder    events.EventRecorder // optional
}

var (
	admissions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ferry_pod_webhook_admissions_total", Help: "Pod admissions by result (mutated, unchanged, denied, warned).",
	}, []string{"result"})
	secretErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "ferry_pod_webhook_secret_errors_total", Help: "EnsureInstanceSecret failures.",
	})
)

func init() {
	metrics.Registry.MustRegister(admissions, secretErrors)
}

// Mutator is the admission.Handler.
type Mutator struct {
	opts Options
}

// NewMutator returns the handler.
func NewMutator(opts Options) *Mutator {
	if opts.FailurePolicy == "" {
		opts.FailurePolicy = Ignore
	}
	return &Mutator{opts: opts}
}

// NewWebhook returns the handler wrapped for a webhook server.
func NewWebhook(opts Options) *admission.Webhook {
	return &admission.Webhook{Handler: NewMutator(opts)}
}

var _ admission.Handler = (*Mutator)(nil)

// Handle mutates a Pod at creation.
func (m *Mutator) Handle(ctx context.Context, req admission.Request) admission.Response {
	if req.Operation != admissionv1.Create || req.Kind.Kind != "Pod" || req.SubResource != "" {
		return admission.Allowed("")
	}
	pod := &corev1.Pod{}
	if err := json.Unmarshal(req.Object.Raw, pod); err != nil {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("decode pod: %w", err))
	}
	ann := pod.Annotations
	hasRegistry := annotations.HasRegistryAnnotations(ann)
	_, hasID := ann[annotations.AcrInstanceID]
	_, hasIDs := ann[annotations.AcrInstanceIDs]
	if !hasRegistry && !hasID && !hasIDs {
		admissions.WithLabelValues("unchanged").Inc()
		return admission.Allowed("")
	}
	ns := req.Namespace
	if ns == "" {
		ns = pod.Namespace
	}
	mutated := pod.DeepCopy()
	var warnings []string
	// fail reports a problem; it returns a non-nil response when the policy rejects the Pod.
	fail := func(reason, msg string) *admission.Response {
		m.event(pod, ns, reason, msg)
		if m.opts.FailurePolicy == Fail {
			admissions.WithLabelValues("denied").Inc()
			r := admission.Denied(msg)
			return &r
		}
		warnings = append(warnings, msg)
		return nil
	}

	if hasRegistry {
		if resp := m.registry(pod, mutated, fail, &warnings); resp != nil {
			return *resp
		}
	}
	if (hasID || hasIDs) && req.DryRun != nil && *req.DryRun {
		warnings = append(warnings, "dry run: ACR pull Secrets for acr-instance-id(s) are not created or added")
	} else if hasID || hasIDs {
		if resp := m.instances(ctx, ns, pod, mutated, fail); resp != nil {
			return *resp
		}
	}

	raw, err := json.Marshal(mutated)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, fmt.Errorf("encode pod: %w", err))
	}
	resp := admission.PatchResponseFromRaw(req.Object.Raw, raw)
	resp.Warnings = warnings
	switch {
	case len(warnings) > 0:
		admissions.WithLabelValues("warned").Inc()
	case len(resp.Patches) > 0:
		admissions.WithLabelValues("mutated").Inc()
	default:
		admissions.WithLabelValues("unchanged").Inc()
	}
	return resp
}

func (m *Mutator) registry(pod, mutated *corev1.Pod, fail func(string, string) *admission.Response, warnings *[]string) *admission.Response {
	if _, err := annotations.PodRegistryRequests(pod); err != nil {
		return fail(ReasonInvalidAnnotation, err.Error()+"; no registry configuration will be written for this Pod")
	}
	if mutated.Labels == nil {
		mutated.Labels = map[string]string{}
	}
	mutated.Labels[annotations.RegistryConfigLabel] = "true"
	if m.opts.DisableGate {
		return nil
	}
	if pod.Spec.NodeName != "" {
		*warnings = append(*warnings, fmt.Sprintf("%s: Pod is bound to node %s at creation, so ferry cannot hold it until the node's registry configuration exists; the kubelet retries a failed pull",
			ReasonBoundAtCreation, pod.Spec.NodeName))
		return nil
	}
	if !slices.ContainsFunc(mutated.Spec.SchedulingGates, func(g corev1.PodSchedulingGate) bool { return g.Name == annotations.RegistryConfigGate }) {
		mutated.Spec.SchedulingGates = append(mutated.Spec.SchedulingGates, corev1.PodSchedulingGate{Name: annotations.RegistryConfigGate})
	}
	return nil
}

func (m *Mutator) instances(ctx context.Context, ns string, pod, mutated *corev1.Pod, fail func(string, string) *admission.Response) *admission.Response {
	refs, err := annotations.Instances(pod.Annotations)
	if err != nil {
		return fail(ReasonInvalidAnnotation, err.Error()+"; no ACR pull Secret added")
	}
	chain, err := annotations.Roles(pod.Annotations)
	if err != nil {
		return fail(ReasonInvalidAnnotation, err.Error()+"; no ACR pull Secret added")
	}
	for _, ref := range refs {
		key := annotations.AcrInstanceIDs
		if v, ok := pod.Annotations[annotations.AcrInstanceID]; ok && strings.Contains(v, ref.InstanceID) {
			key = annotations.AcrInstanceID
		}
		if m.opts.Ensurer == nil {
			if resp := fail(ReasonPullSecretFailed, fmt.Sprintf("annotation %s: value %q: this webhook has no token source configured; no ACR pull Secret added", key, ref)); resp != nil {
				return resp
			}
			continue
		}
		name, err := m.opts.Ensurer.EnsureInstanceSecret(ctx, ns, ref, chain)
		if err != nil {
			secretErrors.Inc()
			msg := fmt.Sprintf("annotation %s: value %q: %v; no ACR pull Secret added", key, ref, err)
			if !chain.Empty() {
				msg = fmt.Sprintf("annotation %s: value %q (role chain %s): %v; no ACR pull Secret added", key, ref, chain, err)
			}
			if resp := fail(ReasonPullSecretFailed, msg); resp != nil {
				return resp
			}
			continue
		}
		if !slices.ContainsFunc(mutated.Spec.ImagePullSecrets, func(r corev1.LocalObjectReference) bool { return r.Name == name }) {
			mutated.Spec.ImagePullSecrets = append(mutated.Spec.ImagePullSecrets, corev1.LocalObjectReference{Name: name})
		}
	}
	return nil
}

// event records a Warning about pod. A Pod being created has no UID yet (and
// may never exist if rejected), so the Event goes to its controller (e.g. the
// ReplicaSet) when it has one, else to the Pod by name.
func (m *Mutator) event(pod *corev1.Pod, ns, reason, msg string) {
	if m.opts.Recorder == nil {
		return
	}
	ref := &corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: ns, Name: pod.Name}
	if owner := metav1.GetControllerOf(pod); owner != nil {
		ref = &corev1.ObjectReference{Kind: owner.Kind, APIVersion: owner.APIVersion, Namespace: ns, Name: owner.Name, UID: owner.UID}
	} else if ref.Name == "" {
		ref.Name = strings.TrimRight(pod.GenerateName, "-.")
	}
	if ref.Name == "" {
		return
	}
	m.opts.Recorder.Eventf(ref, nil, corev1.EventTypeWarning, reason, "Admit", "%s", msg)
}

// PolicyHandler applies acr-configuration's current failure-policy (default Ignore) to each
// admission, so a ConfigMap edit takes effect without a restart: Policy returns the policy in
// force (failurePolicy, ok as in the Store's WebhookSettings).
type PolicyHandler struct {
	Policy       func() (failurePolicy string, ok bool)
	Fail, Ignore admission.Handler
}

// Handle implements admission.Handler.
func (p *PolicyHandler) Handle(ctx context.Context, req admission.Request) admission.Response {
	if fp, ok := p.Policy(); ok && ParseFailurePolicy(fp) == Fail {
		return p.Fail.Handle(ctx, req)
	}
	return p.Ignore.Handle(ctx, req)
}

// ParseFailurePolicy maps acr-configuration's failure-policy to the webhook's (anything but
// "Fail" is Ignore).
func ParseFailurePolicy(v string) FailurePolicy {
	if v == string(admissionregistrationv1.Fail) {
		return Fail
	}
	return Ignore
}
