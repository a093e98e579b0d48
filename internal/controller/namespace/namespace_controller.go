package namespace

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/ferrypull/ferry/internal/pullsecret"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"
)

// MinRequeue bounds how soon a namespace is revisited when its token is already inside the
// renewal window (the TokenSource has not renewed it yet).
const MinRequeue = 2 * time.Second

// NamespaceReconciler writes the pull Secrets of one namespace and merges them into its
// ServiceAccounts. Requests are keyed by namespace name.
type NamespaceReconciler struct {
	// Client reads from the manager's cache (see CacheOptions) and writes to the apiserver.
	Client client.Client
	// APIReader reads uncached; used only to tell a foreign Secret from a missing one.
	APIReader client.Reader
	Store     *pullsecret.Store
	Tokens    pullsecret.TokenSource
	Recorder  events.EventRecorder
	// MaxConcurrentReconciles defaults to 8.
	MaxConcurrentReconciles int
	// Now defaults to time.Now.
	Now func() time.Time

	mu      sync.Mutex
	last    map[string]pullsecret.Token // last good token per instance key
	failing map[string]bool             // instance keys whose last token call failed
	counts  map[string]int              // managed Secrets per namespace
}

// CacheOptions restricts the manager's cache to what the reconcilers read: Secrets labelled
// app.kubernetes.io/managed-by=ferry (never other Secrets) and ConfigMaps in kube-system. Managed
// fields are dropped from cached objects (they are most of an object's size and never read;
// updates without them leave the server's copy alone).
func CacheOptions() cache.Options {
	return cache.Options{DefaultTransform: cache.TransformStripManagedFields(), ByObject: map[client.Object]cache.ByObject{
		&corev1.Secret{}:    {Label: labels.SelectorFromSet(labels.Set{pullsecret.LabelManagedBy: pullsecret.ManagedByValue})},
		&corev1.ConfigMap{}: {Namespaces: map[string]cache.Config{pullsecret.ConfigMapNamespace: {}}},
	}}
}

// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=serviceaccounts,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update;patch;delete

// Reconcile implements reconcile.Reconciler.
func (r *NamespaceReconciler) Reconcile(ctx context.Context, req reconcile.Request) (ctrl.Result, error) {
	settings := r.Store.Current()
	if settings == nil {
		return ctrl.Result{}, nil // idle: no valid configuration yet
	}
	nsName := req.Name
	logger := log.FromContext(ctx).WithValues("namespace", nsName)
	ctx = log.IntoContext(ctx, logger)

	ns := &corev1.Namespace{}
	if err := r.Client.Get(ctx, types.NamespacedName{Name: nsName}, ns); err != nil {
		if apierrors.IsNotFound(err) {
			r.setCount(nsName, 0)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, fmt.Errorf("get namespace %s: %w", nsName, err)
	}
	if ns.DeletionTimestamp != nil {
		r.setCount(nsName, 0)
		return ctrl.Result{}, nil
	}

	var desired []pullsecret.Instance
	if settings.Namespaces.Has(nsName) {
		desired = settings.Instances
	}
	next, errs := r.reconcileSecrets(ctx, nsName, desired, settings.ExpiringThreshold)
	conflict, err := r.reconcileServiceAccounts(ctx, nsName, settings)
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return ctrl.Result{}, errors.Join(errs...)
	}
	if conflict {
		// Someone else updated a ServiceAccount meanwhile: read it again shortly (not an error).
		return ctrl.Result{RequeueAfter: 100*time.Millisecond + jitter(time.Second)}, nil
	}
	if next <= 0 {
		return ctrl.Result{}, nil
	}
	return ctrl.Result{RequeueAfter: next + jitter(settings.ExpiringThreshold)}, nil
}

// jitter spreads renewals: up to a tenth of the threshold, at most 30 s.
func jitter(threshold time.Duration) time.Duration {
	maxJ := min(threshold/10, 30*time.Second)
	if maxJ <= 0 {
		return 0
	}
	return rand.N(maxJ)
}

// reconcileSecrets makes the managed Secrets of the namespace match desired and returns when
// the namespace must be revisited for token renewal.
func (r *NamespaceReconciler) reconcileSecrets(ctx context.Context, ns string, desired []pullsecret.Instance, threshold time.Duration) (time.Duration, []error) {
	var list corev1.SecretList
	// Only pull Secrets (they carry the instance label): other ferry Secrets, such as the
	// webhook's serving certificate, are never touched here.
	if err := r.Client.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels{pullsecret.LabelManagedBy: pullsecret.ManagedByValue}, client.HasLabels{pullsecret.LabelInstance}); err != nil {
		return 0, []error{fmt.Errorf("list managed Secrets in %s: %w", ns, err)}
	}
	existing := make(map[string]*corev1.Secret, len(list.Items))
	for i := range list.Items {
		existing[list.Items[i].Name] = &list.Items[i]
	}

	var (
		errs  []error
		next  time.Duration
		count int
		now   = r.now()
	)
	wanted := map[string]bool{}
	for _, inst := range desired {
		name := pullsecret.SecretName(inst)
		wanted[name] = true
		tok, err := r.token(ctx, inst, threshold)
		if err != nil {
			errs = append(errs, err)
			if tok.Password == "" {
				if _, ok := existing[name]; ok {
					count++
				}
				continue // no usable token: the existing Secret stays untouched
			}
			// The last good token is still valid: it restores a deleted or edited Secret.
		}
		until := tok.ExpiresAt.Sub(now) - threshold
		if !tok.RetryAt.IsZero() {
			until = tok.RetryAt.Sub(now) // renewal failing: come back when the source retries
		}
		if until = max(until, MinRequeue); next == 0 || until < next {
			next = until
		}
		ok, err := r.ensureSecret(ctx, ns, inst, tok, existing[name])
		if err != nil {
			errs = append(errs, err)
		}
		if ok {
			count++
		}
	}
	for name, s := range existing {
		if wanted[name] {
			continue
		}
		if err := pullsecret.Delete(ctx, r.Client, s, pullsecret.SourceNamespace); err != nil {
			if !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
				errs = append(errs, fmt.Errorf("delete Secret %s/%s: %w", ns, name, err))
				count++
			}
			continue
		}
		log.FromContext(ctx).Info("deleted pull Secret no longer configured", "secret", name)
	}
	r.setCount(ns, count)
	return next, errs
}

// ensureSecret creates or corrects one Secret through the core writer. It reports whether a
// managed Secret exists afterwards.
func (r *NamespaceReconciler) ensureSecret(ctx context.Context, ns string, inst pullsecret.Instance, tok pullsecret.Token, cur *corev1.Secret) (bool, error) {
	name := pullsecret.SecretName(inst)
	domains := inst.Domains
	if len(domains) == 0 {
		domains = tok.Domains
	}
	if len(domains) == 0 {
		r.Recorder.Eventf(configRef, nil, corev1.EventTypeWarning, ReasonNoDomains, "Reconcile",
			"instance %s: no registry domains configured or discovered", inst.Key())
		return cur != nil, fmt.Errorf("instance %s: no registry domains configured or discovered", inst.Key())
	}
	op, err := pullsecret.Apply(ctx, r.Client, cur, pullsecret.Desired{
		Namespace: ns, Name: name, Source: pullsecret.SourceNamespace,
		Labels: map[string]string{pullsecret.LabelManagedBy: pullsecret.ManagedByValue, pullsecret.LabelInstance: pullsecret.InstanceLabel(inst)},
		Annotations: map[string]string{
			pullsecret.AnnotationExpiresAt: tok.ExpiresAt.UTC().Format(time.RFC3339),
			pullsecret.AnnotationDomains:   strings.Join(domains, ","),
		},
		Payload: pullsecret.Render(domains, tok),
	})
	switch {
	case apierrors.IsAlreadyExists(err):
		return false, r.explainExisting(ctx, ns, name)
	case apierrors.IsNotFound(err):
		return false, fmt.Errorf("deleted meanwhile: %w", err)
	case err != nil:
		return cur != nil, err
	case op == pullsecret.OpRevert:
		log.FromContext(ctx).Info("reverting manual edit of a managed Secret", "secret", name)
	}
	return true, nil
}

// explainExisting handles a name clash: a Secret the cache does not show exists. If it is not
// ferry's, ferry leaves it alone and says so; if it is, the cache is merely behind.
func (r *NamespaceReconciler) explainExisting(ctx context.Context, ns, name string) error {
	s := &corev1.Secret{}
	if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, s); err != nil {
		return fmt.Errorf("create Secret %s/%s: exists but cannot be read: %w", ns, name, err)
	}
	if s.Labels[pullsecret.LabelManagedBy] == pullsecret.ManagedByValue {
		return fmt.Errorf("create Secret %s/%s: exists, waiting for the cache", ns, name)
	}
	r.Recorder.Eventf(s, nil, corev1.EventTypeWarning, ReasonSecretNameConflict, "Reconcile",
		"Secret %s/%s exists and is not managed by ferry (label %s=%s missing); ferry leaves it alone", ns, name, pullsecret.LabelManagedBy, pullsecret.ManagedByValue)
	log.FromContext(ctx).Info("Secret name taken by a Secret ferry does not manage; leaving it alone", "secret", name)
	return nil
}

// token asks the TokenSource and falls back to the last good, unexpired token when it fails, so
// a deleted or edited Secret can still be restored during an outage. The error is returned
// either way so the namespace is retried with backoff.
func (r *NamespaceReconciler) token(ctx context.Context, inst pullsecret.Instance, threshold time.Duration) (pullsecret.Token, error) {
	key := inst.Key()
	start := time.Now()
	tok, err := r.Tokens.Token(ctx, inst, threshold)
	pullsecret.TokenLatency.WithLabelValues(key).Observe(time.Since(start).Seconds())
	if err == nil && tok.Password == "" {
		err = errors.New("token source returned an empty password")
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	if r.last == nil {
		r.last, r.failing = map[string]pullsecret.Token{}, map[string]bool{}
	}
	prev, hadPrev := r.last[key]
	if err != nil {
		pullsecret.TokenRefresh.WithLabelValues(key, "failure").Inc()
		if !r.failing[key] {
			r.failing[key] = true
			log.FromContext(ctx).Error(err, "token refresh failed; existing Secrets are kept", "instance", key)
			r.Recorder.Eventf(configRef, nil, corev1.EventTypeWarning, ReasonTokenFailed, "Refresh",
				"instance %s: %v (existing Secrets are kept)", key, err)
		}
		err = fmt.Errorf("instance %s: %w", key, err)
		if hadPrev && prev.ExpiresAt.After(r.now()) {
			return prev, err
		}
		return pullsecret.Token{}, err
	}
	if !tok.RetryAt.IsZero() {
		// The source could not renew the token and serves the still-valid one.
		pullsecret.TokenRefresh.WithLabelValues(key, "failure").Inc()
		if !r.failing[key] {
			r.failing[key] = true
			log.FromContext(ctx).Info("token renewal failing; the still-valid token stays in use", "instance", key,
				"expiresAt", tok.ExpiresAt, "retryAt", tok.RetryAt)
			r.Recorder.Eventf(configRef, nil, corev1.EventTypeWarning, ReasonTokenFailed, "Refresh",
				"instance %s: token renewal failing; the current token (valid until %s) stays in use, next attempt at %s",
				key, tok.ExpiresAt.UTC().Format(time.RFC3339), tok.RetryAt.UTC().Format(time.RFC3339))
		}
	} else if r.failing[key] {
		delete(r.failing, key)
		log.FromContext(ctx).Info("token refresh recovered", "instance", key)
		r.Recorder.Eventf(configRef, nil, corev1.EventTypeNormal, ReasonTokenRecovered, "Refresh", "instance %s: token refresh works again", key)
	}
	if !hadPrev || prev.Password != tok.Password || !prev.ExpiresAt.Equal(tok.ExpiresAt) {
		r.last[key] = tok
		pullsecret.TokenRefresh.WithLabelValues(key, "success").Inc()
		pullsecret.TokenExpiry.WithLabelValues(key).Set(float64(tok.ExpiresAt.Unix()))
	}
	return tok, nil
}

func (r *NamespaceReconciler) setCount(ns string, n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.counts == nil {
		r.counts = map[string]int{}
	}
	pullsecret.ManagedSecrets.Add(float64(n - r.counts[ns]))
	if n == 0 {
		delete(r.counts, ns)
	} else {
		r.counts[ns] = n
	}
}

func (r *NamespaceReconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// reconcileServiceAccounts merges the namespace's Secret names into the selected
// ServiceAccounts and removes ferry's entries from the others.
func (r *NamespaceReconciler) reconcileServiceAccounts(ctx context.Context, ns string, settings *pullsecret.Settings) (conflict bool, _ error) {
	var list corev1.ServiceAccountList
	if err := r.Client.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return false, fmt.Errorf("list ServiceAccounts in %s: %w", ns, err)
	}
	var errs []error
	for i := range list.Items {
		sa := list.Items[i].DeepCopy()
		if sa.DeletionTimestamp != nil {
			continue
		}
		changed, added, removed := pullsecret.ApplyToServiceAccount(sa, settings.PullSecretsFor(ns, sa.Name))
		if !changed {
			continue
		}
		if err := r.Client.Update(ctx, sa); err != nil {
			switch {
			case apierrors.IsConflict(err):
				conflict = true
			case !apierrors.IsNotFound(err):
				errs = append(errs, fmt.Errorf("update ServiceAccount %s/%s: %w", ns, sa.Name, err))
			}
			continue
		}
		if added > 0 {
			pullsecret.ServiceAccountsPatched.WithLabelValues("add").Inc()
		}
		if removed > 0 {
			pullsecret.ServiceAccountsPatched.WithLabelValues("remove").Inc()
		}
		log.FromContext(ctx).V(1).Info("merged pull secrets into ServiceAccount", "serviceAccount", sa.Name,
			"added", added, "removed", removed, "owned", sa.Annotations[pullsecret.AnnotationPullSecrets])
	}
	return conflict, errors.Join(errs...)
}

// SetupWithManager registers the reconciler: namespaces, managed Secrets, ServiceAccounts and
// every Settings change (which revisits all namespaces).
func (r *NamespaceReconciler) SetupWithManager(mgr ctrl.Manager) error {
	byNamespace := handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: o.GetNamespace()}}}
	})
	changes := r.Store.Subscribe()
	all := source.Func(func(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case <-changes:
				}
				var list corev1.NamespaceList
				if err := mgr.GetCache().List(ctx, &list); err != nil {
					log.FromContext(ctx).Error(err, "list namespaces after a configuration change")
					continue
				}
				for _, ns := range list.Items {
					q.Add(reconcile.Request{NamespacedName: types.NamespacedName{Name: ns.Name}})
				}
			}
		}()
		return nil
	})
	n := r.MaxConcurrentReconciles
	if n <= 0 {
		n = 8
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("pullsecret").
		For(&corev1.Namespace{}).
		Watches(&corev1.Secret{}, byNamespace).
		Watches(&corev1.ServiceAccount{}, byNamespace).
		WatchesRawSource(all).
		WithOptions(ctrlOptions(n)).
		Complete(r)
}

// ctrlOptions bounds the retry backoff: a namespace whose token call failed is retried within
// 30 s, well inside any token's remaining life.
func ctrlOptions(workers int) controller.Options {
	return controller.Options{
		MaxConcurrentReconciles: workers,
		RateLimiter:             workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](200*time.Millisecond, 30*time.Second),
	}
}
