package imagecache

import (
	"context"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	eciv1 "github.com/ferrypull/ferry/api/eci/v1"
	ferryv1alpha1 "github.com/ferrypull/ferry/api/ferry/v1alpha1"
	"github.com/ferrypull/ferry/internal/annotations"
	"github.com/ferrypull/ferry/internal/redact"
)

// Token is an ACR registry credential minted for an instance.
type Token struct {
	Username  string
	Password  redact.Secret
	ExpiresAt time.Time
	// Domains are the registry hosts the token is valid for (the instance's endpoints).
	Domains []string
}

// Minter mints a registry token for an ACR instance (region filled in by the caller's
// default when empty) with an optional role chain (acr-service-arns, then acr-user-arns) on
// top of the controller's identity. Errors must not contain secrets.
type Minter interface {
	Mint(ctx context.Context, inst annotations.InstanceRef, chain annotations.RoleChain) (Token, error)
}

// MinterFunc adapts a function to Minter.
type MinterFunc func(ctx context.Context, inst annotations.InstanceRef, chain annotations.RoleChain) (Token, error)

// Mint implements Minter.
func (f MinterFunc) Mint(ctx context.Context, inst annotations.InstanceRef, chain annotations.RoleChain) (Token, error) {
	return f(ctx, inst, chain)
}

// Event reasons beyond the phases (which are reasons too).
const (
	ReasonExpired                  = "Expired"
	ReasonCredentialsRefreshFailed = "CredentialsRefreshFailed"
	ReasonNoTargetNodes            = "NoTargetNodes"
)

// ConditionReady is the Ready condition type.
const ConditionReady = "Ready"

// failedRetention is how long a failed cache is kept (ECI keeps it a day).
const failedRetention = 24 * time.Hour

// maxEvents bounds status.events; maxNodes bounds status.nodes.
const (
	maxEvents = 20
	maxNodes  = 256
)

var (
	cachesGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "ferry_imagecache_caches", Help: "ImageCaches by phase.",
	}, []string{"phase"})
	readySeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "ferry_imagecache_ready_seconds", Help: "Time from an ImageCache's creation (or spec change) to Ready.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 14),
	})
	failures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ferry_imagecache_failures_total", Help: "ImageCaches that failed (Failed or UpdateFailed), by reason.",
	}, []string{"reason"})
)

func init() { metrics.Registry.MustRegister(cachesGauge, readySeconds, failures) }

// Reconciler reconciles ImageCaches.
type Reconciler struct {
	Client client.Client
	// APIReader reads the imagePullSecrets and the credentials Secrets (uncached: the
	// controller does not cache Secrets cluster-wide).
	APIReader client.Reader
	Recorder  events.EventRecorder
	// Minter mints ACR tokens for the acr-instance-id(s) annotations; nil refuses them.
	Minter Minter
	// Namespace holds the credentials Secrets node-agents read.
	Namespace string
	// RegistryCAFile is a PEM bundle trusted for registries besides the system roots.
	RegistryCAFile string
	// Transport optionally wraps the registry transport (tests).
	Transport func(http.RoundTripper) http.RoundTripper
	// Now is the clock (default time.Now).
	Now func() time.Time

	mu      sync.Mutex
	refresh map[types.UID]time.Time // when minted tokens in the credentials Secret need renewing
	started map[types.UID]time.Time // when the current generation began (for ready_seconds)
}

func (r *Reconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// ID returns the stable imageCacheId of a cache: "imc-" and 20 characters derived from its UID.
func ID(uid types.UID) string {
	sum := sha256.Sum256([]byte(uid))
	return "imc-" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:]))[:20]
}

// +kubebuilder:rbac:groups=eci.alibabacloud.com,resources=imagecaches,verbs=get;list;watch;delete
// +kubebuilder:rbac:groups=eci.alibabacloud.com,resources=imagecaches/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=ferry.dev,resources=nodeimagecaches,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;create;update;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// SetupWithManager registers the controller. Node-agent reports and Node label changes
// re-check every cache.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Client == nil || r.APIReader == nil || r.Namespace == "" {
		return errors.New("imagecache: client, API reader and namespace are required")
	}
	all := handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, _ client.Object) []reconcile.Request {
		var list eciv1.ImageCacheList
		if err := r.Client.List(ctx, &list); err != nil {
			return nil
		}
		out := make([]reconcile.Request, 0, len(list.Items))
		for _, ic := range list.Items {
			out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Name: ic.Name}})
		}
		return out
	})
	nodeChanges := predicate.Or(predicate.LabelChangedPredicate{}, predicate.Funcs{
		CreateFunc: func(event.CreateEvent) bool { return true }, DeleteFunc: func(event.DeleteEvent) bool { return true },
		UpdateFunc: func(event.UpdateEvent) bool { return false }, GenericFunc: func(event.GenericEvent) bool { return false },
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named("imagecache").
		For(&eciv1.ImageCache{}).
		Watches(&ferryv1alpha1.NodeImageCache{}, all).
		Watches(&corev1.Node{}, all, builder.WithPredicates(nodeChanges)).
		Complete(r)
}

// Reconcile implements reconcile.Reconciler.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (ctrl.Result, error) {
	logger := log.FromContext(ctx).WithValues("imagecache", req.Name)
	ctx = log.IntoContext(ctx, logger)
	defer r.updateGauge(ctx)
	var ic eciv1.ImageCache
	if err := r.Client.Get(ctx, req.NamespacedName, &ic); err != nil {
		if apierrors.IsNotFound(err) {
			return ctrl.Result{}, r.collectSecrets(ctx)
		}
		return ctrl.Result{}, fmt.Errorf("get image cache %s: %w", req.Name, err)
	}
	if ic.DeletionTimestamp != nil {
		return ctrl.Result{}, nil
	}
	now := r.now()
	if exp := ic.Status.ExpireDateTime; exp != nil && !now.Before(exp.Time) {
		r.emit(&ic, corev1.EventTypeNormal, ReasonExpired, fmt.Sprintf("the cache expired at %s and is deleted", exp.UTC().Format(time.RFC3339)))
		uid := ic.UID
		if err := r.Client.Delete(ctx, &ic, client.Preconditions{UID: &uid}); err != nil && !apierrors.IsNotFound(err) {
			return ctrl.Result{}, fmt.Errorf("delete expired image cache %s: %w", ic.Name, err)
		}
		logger.Info("deleted expired image cache", "expired", exp.Time)
		return ctrl.Result{}, r.collectSecrets(ctx)
	}

	st := ic.Status.DeepCopy()
	if st.ImageCacheID == "" {
		st.ImageCacheID = ID(ic.UID)
	}
	if st.StartTime == nil {
		st.StartTime = ptrTime(now)
	}
	targets, platforms, reports, err := r.targets(ctx, &ic)
	if err != nil {
		return ctrl.Result{}, err
	}

	if st.ObservedGeneration != ic.Generation || st.Phase == "" {
		done, err := r.prepare(ctx, &ic, st, platforms, now)
		if err != nil {
			return ctrl.Result{}, err // transient: retried with backoff
		}
		if done { // the generation failed
			return ctrl.Result{RequeueAfter: r.requeue(&ic, st, now)}, nil
		}
	} else if at, known := r.refreshTime(ic.UID); active(st.Phase) && (known && !now.Before(at) || !known && hasACR(&ic)) {
		r.refreshCredentials(ctx, &ic, st, platforms)
	}

	if active(st.Phase) {
		r.aggregate(&ic, st, targets, reports, now)
	}
	if err := r.writeStatus(ctx, &ic, st, now); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: r.requeue(&ic, st, now)}, nil
}

func active(p eciv1.Phase) bool {
	return p == eciv1.PhaseCreating || p == eciv1.PhaseUpdating || p == eciv1.PhaseReady
}

func hasACR(ic *eciv1.ImageCache) bool {
	_, a := ic.Annotations[annotations.AcrInstanceID]
	_, b := ic.Annotations[annotations.AcrInstanceIDs]
	return a || b
}

// prepare checks a new generation. It reports done when the generation failed (recorded in the
// status) and returns an error for transient problems.
func (r *Reconciler) prepare(ctx context.Context, ic *eciv1.ImageCache, st *eciv1.ImageCacheStatus, platforms []v1.Platform, now time.Time) (done bool, _ error) {
	prev := st.Phase
	switch prev {
	case "", eciv1.PhasePreparing, eciv1.PhaseFailed:
		st.Phase = eciv1.PhasePreparing
	default:
		st.Phase = eciv1.PhaseUpdating
	}
	if st.Phase != prev {
		r.setStarted(ic.UID, now)
		msg := fmt.Sprintf("checking %d image(s) and their credentials", len(ic.Spec.Images))
		if st.Phase == eciv1.PhaseUpdating {
			msg = fmt.Sprintf("spec changed (generation %d): checking %d image(s) and their credentials", ic.Generation, len(ic.Spec.Images))
		}
		r.transition(ic, st, corev1.EventTypeNormal, string(st.Phase), msg, now)
		st.Reason, st.Message = "", ""
		if err := r.writeStatus(ctx, ic, st, now); err != nil {
			return false, err
		}
	}
	res, err := r.resolve(ctx, ic, platforms)
	var f *failure
	if errors.As(err, &f) {
		st.ObservedGeneration = ic.Generation
		st.Reason, st.Message = f.reason, f.message
		if st.Phase == eciv1.PhasePreparing {
			st.Phase = eciv1.PhaseFailed
			st.ExpireDateTime = ptrTime(now.Add(failedRetention))
		} else {
			st.Phase = eciv1.PhaseUpdateFailed
			st.ExpireDateTime = retention(ic)
		}
		failures.WithLabelValues(f.reason).Inc()
		r.transition(ic, st, corev1.EventTypeWarning, string(st.Phase), f.reason+": "+f.message, now)
		if err := r.writeStatus(ctx, ic, st, now); err != nil {
			return false, err
		}
		return true, nil
	}
	if err != nil {
		st.Message = "retrying: " + err.Error()
		if werr := r.writeStatus(ctx, ic, st, now); werr != nil {
			return false, werr
		}
		return false, err
	}
	if err := r.writeCredentials(ctx, ic, st.ImageCacheID, res); err != nil {
		return false, err
	}
	st.Images, st.CompressedSize, st.ObservedGeneration = res.images, res.size, ic.Generation
	st.Reason, st.Message = "", ""
	st.ExpireDateTime = retention(ic)
	r.setRefresh(ic.UID, res.refreshAt)
	if st.Phase == eciv1.PhasePreparing {
		st.Phase = eciv1.PhaseCreating
		r.transition(ic, st, corev1.EventTypeNormal, string(eciv1.PhaseCreating),
			fmt.Sprintf("%d image(s), %s compressed: pulling onto the target nodes", len(res.images), humanBytes(res.size)), now)
	}
	return false, nil
}

// refreshCredentials re-mints expiring tokens into the credentials Secret; a failure keeps the
// old Secret and is retried in a minute.
func (r *Reconciler) refreshCredentials(ctx context.Context, ic *eciv1.ImageCache, st *eciv1.ImageCacheStatus, platforms []v1.Platform) {
	res, err := r.resolve(ctx, ic, platforms)
	if err == nil {
		err = r.writeCredentials(ctx, ic, st.ImageCacheID, res)
	}
	if err != nil {
		r.emit(ic, corev1.EventTypeWarning, ReasonCredentialsRefreshFailed, "renewing the cache's registry credentials: "+err.Error())
		r.setRefresh(ic.UID, r.now().Add(time.Minute))
		return
	}
	r.setRefresh(ic.UID, res.refreshAt)
}

func retention(ic *eciv1.ImageCache) *metav1.Time {
	if ic.Spec.RetentionDays == nil {
		return nil
	}
	return ptrTime(ic.CreationTimestamp.Add(time.Duration(*ic.Spec.RetentionDays) * 24 * time.Hour))
}

func ptrTime(t time.Time) *metav1.Time {
	mt := metav1.NewTime(t.UTC().Truncate(time.Second))
	return &mt
}

// targets returns the nodes that must hold the cache, their platforms (the controller's own
// when there is none yet) and every node's report.
func (r *Reconciler) targets(ctx context.Context, ic *eciv1.ImageCache) ([]corev1.Node, []v1.Platform, map[string]*ferryv1alpha1.NodeImageCache, error) {
	var nodes corev1.NodeList
	if err := r.Client.List(ctx, &nodes); err != nil {
		return nil, nil, nil, fmt.Errorf("list nodes: %w", err)
	}
	var nics ferryv1alpha1.NodeImageCacheList
	if err := r.Client.List(ctx, &nics); err != nil {
		return nil, nil, nil, fmt.Errorf("list node image caches: %w", err)
	}
	reports := map[string]*ferryv1alpha1.NodeImageCache{}
	for i := range nics.Items {
		reports[nics.Items[i].Name] = &nics.Items[i]
	}
	sel := labels.Everything()
	if ic.Spec.NodeSelector != nil {
		s, err := metav1.LabelSelectorAsSelector(ic.Spec.NodeSelector)
		if err != nil {
			sel = labels.Nothing() // reported by resolve as InvalidSpec
		} else {
			sel = s
		}
	}
	var out []corev1.Node
	seen := map[string]bool{}
	var platforms []v1.Platform
	for _, n := range nodes.Items {
		if n.DeletionTimestamp != nil || reports[n.Name] == nil || !sel.Matches(labels.Set(n.Labels)) {
			continue
		}
		out = append(out, n)
		p := v1.Platform{OS: n.Labels[corev1.LabelOSStable], Architecture: n.Labels[corev1.LabelArchStable]}
		if p.OS == "" {
			p.OS = "linux"
		}
		if p.Architecture == "" {
			p.Architecture = runtime.GOARCH
		}
		if !seen[p.String()] {
			seen[p.String()] = true
			platforms = append(platforms, p)
		}
	}
	if len(platforms) == 0 {
		platforms = []v1.Platform{{OS: "linux", Architecture: runtime.GOARCH}}
	}
	slices.SortFunc(platforms, func(a, b v1.Platform) int { return strings.Compare(a.String(), b.String()) })
	return out, platforms, reports, nil
}

// aggregate folds the node reports into the status and moves Creating/Updating on.
func (r *Reconciler) aggregate(ic *eciv1.ImageCache, st *eciv1.ImageCacheStatus, targets []corev1.Node, reports map[string]*ferryv1alpha1.NodeImageCache, now time.Time) {
	var nodes []eciv1.NodeStatus
	ready := 0
	var failed []string
	for _, n := range targets {
		ns := eciv1.NodeStatus{Name: n.Name, Phase: "Pending"}
		if e := entryFor(reports[n.Name], ic); e != nil && e.Generation == st.ObservedGeneration {
			ns.Phase = e.Phase
			var msgs []string
			for _, im := range e.Images {
				if im.Error != "" && im.Phase != ferryv1alpha1.PhaseReady {
					msgs = append(msgs, fmt.Sprintf("image %s: %s", im.Image, im.Error))
				}
			}
			ns.Message = truncate(strings.Join(msgs, "; "), 1024)
			switch e.Phase {
			case ferryv1alpha1.PhaseReady:
				ready++
			case ferryv1alpha1.PhaseFailed:
				failed = append(failed, fmt.Sprintf("node %s: %s", n.Name, ns.Message))
			}
		}
		nodes = append(nodes, ns)
	}
	slices.SortFunc(nodes, func(a, b eciv1.NodeStatus) int {
		if ar, br := a.Phase == ferryv1alpha1.PhaseReady, b.Phase == ferryv1alpha1.PhaseReady; ar != br {
			if ar {
				return 1
			}
			return -1
		}
		return strings.Compare(a.Name, b.Name)
	})
	if len(nodes) > maxNodes {
		nodes = nodes[:maxNodes]
	}
	st.Nodes = nodes
	st.TargetNodes, st.ReadyNodes = int32(len(targets)), int32(ready) //nolint:gosec // node counts fit int32
	st.Progress = "0%"
	if len(targets) > 0 {
		st.Progress = strconv.Itoa(ready*100/len(targets)) + "%"
	}
	if st.Phase != eciv1.PhaseCreating && st.Phase != eciv1.PhaseUpdating {
		return
	}
	switch {
	case len(failed) > 0:
		msg := truncate(strings.Join(failed, "; "), 2048)
		st.Reason, st.Message = ReasonPullFailed, msg
		if st.Phase == eciv1.PhaseCreating {
			st.Phase = eciv1.PhaseFailed
			st.ExpireDateTime = ptrTime(now.Add(failedRetention))
		} else {
			st.Phase = eciv1.PhaseUpdateFailed
		}
		failures.WithLabelValues(ReasonPullFailed).Inc()
		r.transition(ic, st, corev1.EventTypeWarning, string(st.Phase), ReasonPullFailed+": "+msg, now)
	case len(targets) == 0:
		if st.Message == "" {
			st.Message = "no target node: no node matching spec.nodeSelector runs node-agent with --image-cache"
			r.transition(ic, st, corev1.EventTypeWarning, ReasonNoTargetNodes, st.Message, now)
		}
	case ready == len(targets):
		st.Phase, st.Message = eciv1.PhaseReady, ""
		if at, ok := r.startedAt(ic); ok {
			readySeconds.Observe(now.Sub(at).Seconds())
		}
		r.transition(ic, st, corev1.EventTypeNormal, string(eciv1.PhaseReady),
			fmt.Sprintf("%d image(s) on %d node(s)", len(st.Images), len(targets)), now)
	default:
		if strings.HasPrefix(st.Message, "no target node") {
			st.Message = ""
		}
	}
}

func entryFor(nic *ferryv1alpha1.NodeImageCache, ic *eciv1.ImageCache) *ferryv1alpha1.CacheReport {
	if nic == nil {
		return nil
	}
	for i := range nic.Status.Caches {
		if c := &nic.Status.Caches[i]; c.Name == ic.Name && c.UID == string(ic.UID) {
			return c
		}
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// transition records a phase change (or another notable event) in status.events and as a
// Kubernetes Event.
func (r *Reconciler) transition(ic *eciv1.ImageCache, st *eciv1.ImageCacheStatus, typ, reason, msg string, now time.Time) {
	t := metav1.NewTime(now.UTC().Truncate(time.Second))
	if n := len(st.Events); n > 0 && st.Events[n-1].Name == reason && st.Events[n-1].Message == msg {
		st.Events[n-1].Count++
		st.Events[n-1].LastTimestamp = t
	} else {
		st.Events = append(st.Events, eciv1.ImageCacheEvent{Type: typ, Name: reason, Message: msg, Count: 1, FirstTimestamp: t, LastTimestamp: t})
		if len(st.Events) > maxEvents {
			st.Events = st.Events[len(st.Events)-maxEvents:]
		}
	}
	r.emit(ic, typ, reason, msg)
}

func (r *Reconciler) emit(ic *eciv1.ImageCache, typ, reason, msg string) {
	if r.Recorder != nil {
		r.Recorder.Eventf(ic, nil, typ, reason, "ImageCache", "%s", msg)
	}
}

// writeStatus updates the status when it changed, keeping lastUpdatedTime and the Ready
// condition in step with the phase and progress.
func (r *Reconciler) writeStatus(ctx context.Context, ic *eciv1.ImageCache, st *eciv1.ImageCacheStatus, now time.Time) error {
	cond := metav1.Condition{Type: ConditionReady, Status: metav1.ConditionFalse, Reason: string(st.Phase), Message: truncate(st.Message, 1024),
		ObservedGeneration: st.ObservedGeneration, LastTransitionTime: metav1.NewTime(now.UTC().Truncate(time.Second))}
	if st.Phase == eciv1.PhaseReady {
		cond.Status = metav1.ConditionTrue
	}
	if cond.Reason == "" {
		cond.Reason = "Unknown"
	}
	meta.SetStatusCondition(&st.Conditions, cond)
	if st.Phase != ic.Status.Phase || st.Progress != ic.Status.Progress || st.Updated() == nil {
		st.LastUpdatedTime = ptrTime(now)
	}
	if equality.Semantic.DeepEqual(&ic.Status, st) {
		return nil
	}
	ic.Status = *st
	if err := r.Client.Status().Update(ctx, ic); err != nil {
		return fmt.Errorf("update status of image cache %s: %w", ic.Name, err)
	}
	st.DeepCopyInto(&ic.Status)
	return nil
}

// requeue is when the cache needs a look without any event: expiry or token renewal.
func (r *Reconciler) requeue(ic *eciv1.ImageCache, st *eciv1.ImageCacheStatus, now time.Time) time.Duration {
	var d time.Duration
	if st.ExpireDateTime != nil {
		d = max(st.ExpireDateTime.Sub(now), time.Second)
	}
	if at, ok := r.refreshTime(ic.UID); ok && active(st.Phase) {
		if rd := max(at.Sub(now), time.Second); d == 0 || rd < d {
			d = rd
		}
	}
	return min(d, 24*time.Hour)
}

func (r *Reconciler) setRefresh(uid types.UID, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.refresh == nil {
		r.refresh = map[types.UID]time.Time{}
	}
	if at.IsZero() {
		r.refresh[uid] = time.Time{}
		return
	}
	r.refresh[uid] = at
}

// refreshTime returns when to renew; ok is false when this process has not resolved the cache
// yet (after a restart), and the time is zero when nothing expires.
func (r *Reconciler) refreshTime(uid types.UID) (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	at, ok := r.refresh[uid]
	if ok && at.IsZero() {
		return time.Time{}, false
	}
	return at, ok
}

func (r *Reconciler) setStarted(uid types.UID, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started == nil {
		r.started = map[types.UID]time.Time{}
	}
	r.started[uid] = at
}

func (r *Reconciler) startedAt(ic *eciv1.ImageCache) (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	at, ok := r.started[ic.UID]
	delete(r.started, ic.UID)
	return at, ok
}

func (r *Reconciler) updateGauge(ctx context.Context) {
	var list eciv1.ImageCacheList
	if err := r.Client.List(ctx, &list); err != nil {
		return
	}
	cachesGauge.Reset()
	for _, p := range []eciv1.Phase{eciv1.PhasePreparing, eciv1.PhaseCreating, eciv1.PhaseReady, eciv1.PhaseFailed, eciv1.PhaseUpdating, eciv1.PhaseUpdateFailed} {
		cachesGauge.WithLabelValues(string(p)).Set(0)
	}
	for _, ic := range list.Items {
		if ic.Status.Phase != "" {
			cachesGauge.WithLabelValues(string(ic.Status.Phase)).Inc()
		}
	}
}
