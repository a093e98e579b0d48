package podsecret

import (
	"context"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/ferrypull/ferry/internal/annotations"
	"github.com/ferrypull/ferry/internal/pullsecret"
)

// ReasonRefreshFailed is the Warning Event reason on a Secret whose renewal failed.
const ReasonRefreshFailed = "ACRPullSecretRefreshFailed"

// MinRequeue bounds how soon a Secret is revisited.
const MinRequeue = time.Second

// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch

// Reconciler renews and garbage-collects the Secrets written by Ensurer.
type Reconciler struct {
	Client client.Client
	// APIReader lists Pods (the manager's cache may hold only some Pods).
	APIReader client.Reader
	Minter    Minter
	// Threshold as in Ensurer.
	Threshold func() time.Duration
	Now       func() time.Time
	Recorder  events.EventRecorder // optional
}

// SetupWithManager watches the Secrets labelled LabelSource=SourcePodAnnotation.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).Named("podsecret").
		For(&corev1.Secret{}, builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool {
			return o.GetLabels()[pullsecret.LabelSource] == pullsecret.SourcePodAnnotation
		}))).
		Complete(r)
}

func (r *Reconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// Reconcile implements reconcile.Reconciler.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (ctrl.Result, error) {
	s := &corev1.Secret{}
	if err := r.Client.Get(ctx, req.NamespacedName, s); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if s.Labels[pullsecret.LabelSource] != pullsecret.SourcePodAnnotation || s.DeletionTimestamp != nil {
		return ctrl.Result{}, nil
	}
	logger := log.FromContext(ctx)
	now := r.now()

	// Garbage collection: no Pod lists the Secret and the webhook has not used it for GCGrace.
	var next time.Duration
	used, _ := time.Parse(time.RFC3339, s.Annotations[pullsecret.AnnotationUsedAt])
	if used.IsZero() {
		used = s.CreationTimestamp.Time
	}
	if gcAt := used.Add(GCGrace); !gcAt.After(now) {
		referenced, err := r.referenced(ctx, s)
		if err != nil {
			return ctrl.Result{}, err
		}
		if !referenced {
			if err := pullsecret.Delete(ctx, r.Client, s, pullsecret.SourcePodAnnotation); err != nil {
				if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
					return ctrl.Result{}, nil
				}
				return ctrl.Result{}, fmt.Errorf("delete Secret %s/%s: %w", s.Namespace, s.Name, err)
			}
			logger.Info("deleted pull Secret no Pod uses any more", "secret", s.Name)
			return ctrl.Result{}, nil
		}
		next = GCGrace // check again later
	} else {
		next = gcAt.Sub(now)
	}

	threshold := DefaultThreshold
	if r.Threshold != nil && r.Threshold() > 0 {
		threshold = r.Threshold()
	}
	if !fresh(s, now, threshold) {
		inst, chain, err := parseSecret(s)
		if err != nil {
			// Edited annotations cannot be fixed by retrying: a terminal error (logged and counted by
			// controller-runtime, not requeued); the Secret stays as it is.
			return ctrl.Result{}, reconcile.TerminalError(fmt.Errorf("annotation-minted Secret %s/%s cannot be renewed; leaving it: %w", s.Namespace, s.Name, err))
		}
		tok, err := r.Minter.Mint(ctx, inst, chain, threshold)
		if err != nil {
			pullsecret.CountRenewal(inst.String(), "failure")
			if r.Recorder != nil {
				r.Recorder.Eventf(s, nil, corev1.EventTypeWarning, ReasonRefreshFailed, "Refresh", "renew token for %s: %v", inst, err)
			}
			return ctrl.Result{}, fmt.Errorf("renew Secret %s/%s for %s: %w", s.Namespace, s.Name, inst, err) // the Secret stays as it is
		}
		if err := write(ctx, r.Client, s.Namespace, s.Name, inst, chain, tok, s, now, false); err != nil {
			pullsecret.CountRenewal(inst.String(), "failure")
			return ctrl.Result{}, err
		}
		pullsecret.CountRenewal(inst.String(), "success")
		logger.Info("renewed annotation-minted pull Secret", "secret", s.Name, "instance", inst.String(), "expiresAt", tok.ExpiresAt)
		s.Annotations[pullsecret.AnnotationExpiresAt] = tok.ExpiresAt.UTC().Format(time.RFC3339)
	}
	if exp, err := time.Parse(time.RFC3339, s.Annotations[pullsecret.AnnotationExpiresAt]); err == nil {
		next = min(next, exp.Sub(now)-threshold)
	}
	return ctrl.Result{RequeueAfter: max(next, MinRequeue)}, nil
}

// referenced reports whether an unfinished Pod in the Secret's namespace lists it.
func (r *Reconciler) referenced(ctx context.Context, s *corev1.Secret) (bool, error) {
	var pods corev1.PodList
	if err := r.APIReader.List(ctx, &pods, client.InNamespace(s.Namespace)); err != nil {
		return false, fmt.Errorf("list Pods in %s: %w", s.Namespace, err)
	}
	for _, p := range pods.Items {
		if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		if slices.ContainsFunc(p.Spec.ImagePullSecrets, func(ref corev1.LocalObjectReference) bool { return ref.Name == s.Name }) {
			return true, nil
		}
	}
	return false, nil
}

// parseSecret reads the instance and role chain back from the Secret's annotations.
func parseSecret(s *corev1.Secret) (annotations.InstanceRef, annotations.RoleChain, error) {
	refs, err := annotations.ParseInstanceIDs(pullsecret.AnnotationInstance, s.Annotations[pullsecret.AnnotationInstance])
	if err != nil {
		return annotations.InstanceRef{}, annotations.RoleChain{}, err
	}
	if len(refs) != 1 || refs[0].RegionID == "" {
		return annotations.InstanceRef{}, annotations.RoleChain{}, fmt.Errorf("annotation %s: value %q: want one regionId:instanceId", pullsecret.AnnotationInstance, s.Annotations[pullsecret.AnnotationInstance])
	}
	var chain annotations.RoleChain
	for key, dst := range map[string]*[]string{pullsecret.AnnotationServiceARNs: &chain.ServiceARNs, pullsecret.AnnotationUserARNs: &chain.UserARNs} {
		if v := s.Annotations[key]; v != "" {
			if *dst, err = annotations.ParseRoleARNs(key, v); err != nil {
				return annotations.InstanceRef{}, annotations.RoleChain{}, err
			}
			if len(*dst) == 0 {
				*dst = nil
			}
		}
	}
	// The name is derived from (instance, chain): an edited annotation cannot redirect the Secret.
	if want := SecretName(refs[0].InstanceID, chain); s.Name != want {
		return annotations.InstanceRef{}, annotations.RoleChain{}, fmt.Errorf("annotations name instance %s and chain %q, which belong to Secret %s, not %s",
			refs[0], chain, want, s.Name)
	}
	return refs[0], chain, nil
}
