package prepull

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	eciv1 "github.com/ferrypull/ferry/api/eci/v1"
	ferryv1alpha1 "github.com/ferrypull/ferry/api/ferry/v1alpha1"
	"github.com/ferrypull/ferry/internal/annotations"
	"github.com/ferrypull/ferry/internal/dockercfg"
	"github.com/ferrypull/ferry/internal/nodeagent/hostsconfig"
)

// HostsSource is the hostsconfig source name of ImageCache registry hosts.
const HostsSource = "imagecache"

// PinningRepull is the NodeImageCache pinning mode of this agent (see the package doc).
const PinningRepull = "repull"

const reconcileRequestName = "imagecache-prepull"

var (
	pulls = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ferry_node_agent_prepull_pulls_total", Help: "ImageCache image pre-pulls on this node by result (pulled, present, failed).",
	}, []string{"result"})
	pullDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "ferry_node_agent_prepull_pull_duration_seconds", Help: "CRI PullImage latency of successful ImageCache pre-pulls.",
		Buckets: prometheus.ExponentialBuckets(0.1, 2, 14),
	})
	pulledBytes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "ferry_node_agent_prepull_pulled_bytes_total", Help: "Runtime size of the images pre-pulled for ImageCaches.",
	})
	released = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "ferry_node_agent_prepull_released_total", Help: "Images removed from this node when their ImageCache was released.",
	})
	imagesGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "ferry_node_agent_prepull_images", Help: "ImageCache images on this node by phase.",
	}, []string{"phase"})
)

func init() {
	metrics.Registry.MustRegister(pulls, pullDuration, pulledBytes, released, imagesGauge)
}

// Options configure a Reconciler.
type Options struct {
	NodeName string
	Runtime  *Runtime
	// Hosts is node-agent's hosts.toml writer (shared with the Pod-annotation reconciler).
	Hosts     *hostsconfig.Manager
	Allowlist *hostsconfig.Allowlist
	// CredentialsNamespace holds the controller's per-cache credentials Secrets.
	CredentialsNamespace string
	// Parallelism bounds concurrent pulls (default 2).
	Parallelism int
	// MaxAttempts bounds pull attempts per image and generation (default 3).
	MaxAttempts int
	// Backoff is the delay after the first failed attempt, doubled after each (default 10s).
	Backoff time.Duration
	// PullTimeout bounds one pull (default 30m).
	PullTimeout time.Duration
	// Resync is how often cached images are checked and re-pulled if removed (default 1m).
	Resync time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Reconciler pre-pulls ImageCache images on one node.
type Reconciler struct {
	client client.Client
	opts   Options
	wake   chan event.GenericEvent
	ready  atomic.Bool
	sem    chan struct{}

	mu       sync.Mutex
	inflight map[string]bool       // image refs being pulled
	results  map[string]pullResult // finished pulls not yet folded into the report
	retryAt  map[string]time.Time  // "<uid>/<image>" → earliest next attempt
}

type pullResult struct {
	imageID  string
	err      error
	finished time.Time
}

// New returns a Reconciler.
func New(c client.Client, opts Options) (*Reconciler, error) {
	if opts.NodeName == "" || opts.Runtime == nil || opts.Hosts == nil || opts.CredentialsNamespace == "" {
		return nil, errors.New("image pre-pull: node name, CRI runtime, hosts manager and credentials namespace are required")
	}
	if opts.Parallelism <= 0 {
		opts.Parallelism = 2
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 3
	}
	if opts.Backoff <= 0 {
		opts.Backoff = 10 * time.Second
	}
	if opts.PullTimeout <= 0 {
		opts.PullTimeout = 30 * time.Minute
	}
	if opts.Resync <= 0 {
		opts.Resync = time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Reconciler{client: c, opts: opts, wake: make(chan event.GenericEvent, 1), sem: make(chan struct{}, opts.Parallelism),
		inflight: map[string]bool{}, results: map[string]pullResult{}, retryAt: map[string]time.Time{}}, nil
}

// CacheByObject restricts the manager's cache for the pre-puller: this node's NodeImageCache
// and the credentials Secrets (labelled) of the credentials namespace. ImageCaches are
// cluster-scoped and all watched; merge the result into the manager's cache.Options.
func CacheByObject(nodeName, credentialsNamespace string) map[client.Object]cache.ByObject {
	sel, _ := labels.Parse(annotations.ImageCacheCredentialsLabel)
	return map[client.Object]cache.ByObject{
		&ferryv1alpha1.NodeImageCache{}: {Field: fields.OneTermEqualSelector("metadata.name", nodeName)},
		&corev1.Secret{}:                {Namespaces: map[string]cache.Config{credentialsNamespace: {}}, Label: sel},
	}
}

// SetupWithManager registers the controller: any ImageCache, credentials Secret, this node's
// Node or NodeImageCache change, and every finished pull, triggers one reconcile of the node.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	one := handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: reconcileRequestName}}}
	})
	thisNode := predicate.NewPredicateFuncs(func(o client.Object) bool { return o.GetName() == r.opts.NodeName })
	return ctrl.NewControllerManagedBy(mgr).
		Named("imagecache-prepull").
		Watches(&eciv1.ImageCache{}, one).
		Watches(&corev1.Secret{}, one).
		Watches(&corev1.Node{}, one, builder.WithPredicates(thisNode, predicate.LabelChangedPredicate{})).
		Watches(&ferryv1alpha1.NodeImageCache{}, one, builder.WithPredicates(thisNode)).
		WatchesRawSource(source.Channel(r.wake, one)).
		WithOptions(controller.Options{MaxConcurrentReconciles: 1}).
		Complete(r)
}

// ReadyCheck is a healthz.Checker that passes after the first successful reconcile.
func (r *Reconciler) ReadyCheck(*http.Request) error {
	if !r.ready.Load() {
		return errors.New("image pre-pull not reconciled yet")
	}
	return nil
}

// cacheWork is one ImageCache this node serves in this reconcile.
type cacheWork struct {
	ic      *eciv1.ImageCache
	hold    bool // Preparing: keep the report entry as it is
	creds   *dockercfg.Config
	credErr string // why credentials are not usable yet ("" = usable)
	refused map[string]string
}

// Reconcile brings the node in line with the ImageCaches: hosts.toml, pulls, releases, the
// NodeImageCache report and the Node's cache labels.
func (r *Reconciler) Reconcile(ctx context.Context, _ reconcile.Request) (ctrl.Result, error) {
	logger := log.FromContext(ctx).WithValues("node", r.opts.NodeName)
	now := r.opts.Now()
	var node corev1.Node
	if err := r.client.Get(ctx, client.ObjectKey{Name: r.opts.NodeName}, &node); err != nil {
		return ctrl.Result{}, fmt.Errorf("get node %s: %w", r.opts.NodeName, err)
	}
	report, err := r.loadReport(ctx, &node)
	if err != nil {
		return ctrl.Result{}, err
	}
	var list eciv1.ImageCacheList
	if err := r.client.List(ctx, &list); err != nil {
		return ctrl.Result{}, fmt.Errorf("list image caches: %w", err)
	}

	// Which caches this node serves, and the registry hosts they need.
	var work []*cacheWork
	desired := map[string]annotations.RegistryMode{}
	for i := range list.Items {
		ic := &list.Items[i]
		hold, ok := r.serves(ic, &node)
		if !ok {
			continue
		}
		w := &cacheWork{ic: ic, hold: hold, refused: map[string]string{}}
		work = append(work, w)
		if hold {
			continue
		}
		reqs, err := annotations.RegistryRequests(ic.Annotations, statusImages(ic))
		if err != nil {
			w.credErr = err.Error()
			continue
		}
		for _, req := range reqs {
			if !r.opts.Allowlist.Allows(req.Host) {
				w.refused[req.Host] = fmt.Sprintf("annotation %s: registry host %q is not in node-agent's --allowed-registries on node %s", req.Annotation, req.Host, r.opts.NodeName)
				continue
			}
			if cur, ok := desired[req.Host]; !ok || req.Mode == annotations.ModePlainHTTP {
				desired[req.Host] = req.Mode
			} else {
				desired[req.Host] = cur
			}
		}
	}
	res, hostsErr := r.opts.Hosts.ApplySource(HostsSource, desired)
	if hostsErr != nil {
		logger.Error(hostsErr, "some ImageCache registry hosts could not be configured")
	}
	for h := range desired {
		_, owned := res.Owned[h]
		if !owned && !slices.Contains(res.Satisfied, h) {
			for _, w := range work {
				if _, uses := w.refused[h]; !uses && wantsHost(w.ic, h) {
					w.refused[h] = fmt.Sprintf("registry host %q could not be configured in containerd's hosts.toml on node %s: %v", h, r.opts.NodeName, hostsErr)
				}
			}
		}
	}
	for _, w := range work {
		if !w.hold && w.credErr == "" {
			w.creds, w.credErr = r.credentials(ctx, w.ic)
		}
	}

	// Fold everything into the new report.
	old := map[string]ferryv1alpha1.CacheReport{}
	for _, c := range report.Status.Caches {
		old[c.Name] = c
	}
	status := ferryv1alpha1.NodeImageCacheStatus{Pinning: PinningRepull}
	wantedRefs := map[string]bool{}
	heldByFerry := map[string]bool{} // refs some entry pulled (Present=false)
	for _, c := range report.Status.Caches {
		for _, im := range c.Images {
			if !im.Present && im.Phase == ferryv1alpha1.PhaseReady {
				heldByFerry[im.Image] = true
			}
		}
	}
	var release []ferryv1alpha1.ImageReport
	requeue := r.opts.Resync
	served := map[string]bool{}
	r.mu.Lock()
	results := maps.Clone(r.results)
	clear(r.results)
	r.mu.Unlock()
	for _, w := range work {
		prev, had := old[w.ic.Name]
		if had && prev.UID != string(w.ic.UID) {
			release = append(release, prev.Images...)
			had = false
		}
		served[w.ic.Name] = true
		if w.hold {
			if had {
				status.Caches = append(status.Caches, prev)
				for _, im := range prev.Images {
					wantedRefs[im.Image] = true
				}
			}
			continue
		}
		entry, rel, next := r.cacheEntry(ctx, w, prev, had, results, heldByFerry, now)
		release = append(release, rel...)
		if next > 0 && next < requeue {
			requeue = next
		}
		for _, im := range entry.Images {
			wantedRefs[im.Image] = true
		}
		status.Caches = append(status.Caches, entry)
	}
	for name, c := range old {
		if !served[name] {
			release = append(release, c.Images...)
		}
	}
	r.forgetRetries(work)
	r.release(ctx, release, status.Caches, wantedRefs)

	slices.SortFunc(status.Caches, func(a, b ferryv1alpha1.CacheReport) int { return strings.Compare(a.Name, b.Name) })
	status.CacheCount = int32(len(status.Caches))
	r.setGauges(status.Caches)
	if err := r.writeReport(ctx, report, status, now); err != nil {
		return ctrl.Result{}, err
	}
	if err := r.labelNode(ctx, &node, status.Caches, list.Items); err != nil {
		return ctrl.Result{}, err
	}
	r.ready.Store(true)
	return ctrl.Result{RequeueAfter: requeue}, nil
}

// serves reports whether the node serves ic, and whether it only holds what it has (Preparing).
func (r *Reconciler) serves(ic *eciv1.ImageCache, node *corev1.Node) (hold, ok bool) {
	if ic.DeletionTimestamp != nil || ic.Status.ImageCacheID == "" {
		return false, false
	}
	if ic.Spec.NodeSelector != nil {
		sel, err := metav1.LabelSelectorAsSelector(ic.Spec.NodeSelector)
		if err != nil || !sel.Matches(labels.Set(node.Labels)) {
			return false, false
		}
	}
	switch ic.Status.Phase {
	case eciv1.PhasePreparing:
		return true, true
	case eciv1.PhaseCreating, eciv1.PhaseUpdating, eciv1.PhaseReady, eciv1.PhaseUpdateFailed:
		return false, len(ic.Status.Images) > 0
	}
	return false, false
}

func statusImages(ic *eciv1.ImageCache) []string {
	out := make([]string, 0, len(ic.Status.Images))
	for _, im := range ic.Status.Images {
		out = append(out, im.Image)
	}
	return out
}

func wantsHost(ic *eciv1.ImageCache, host string) bool {
	for _, im := range ic.Status.Images {
		if annotations.ImageHost(im.Image) == host {
			return true
		}
	}
	return false
}

// credentials reads the cache's credentials Secret; the second result says why it is not usable.
func (r *Reconciler) credentials(ctx context.Context, ic *eciv1.ImageCache) (*dockercfg.Config, string) {
	var s corev1.Secret
	name := annotations.ImageCacheCredentialsSecret(ic.Status.ImageCacheID)
	if err := r.client.Get(ctx, client.ObjectKey{Namespace: r.opts.CredentialsNamespace, Name: name}, &s); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Sprintf("waiting for credentials Secret %s/%s", r.opts.CredentialsNamespace, name)
		}
		return nil, fmt.Sprintf("credentials Secret %s/%s: %v", r.opts.CredentialsNamespace, name, err)
	}
	if s.Annotations[annotations.ImageCacheUIDAnnotation] != string(ic.UID) ||
		s.Annotations[annotations.ImageCacheGenerationAnnotation] != strconv.FormatInt(ic.Status.ObservedGeneration, 10) {
		return nil, fmt.Sprintf("waiting for credentials Secret %s/%s of generation %d", r.opts.CredentialsNamespace, name, ic.Status.ObservedGeneration)
	}
	cfg, err := dockercfg.Parse(s.Data[corev1.DockerConfigJsonKey])
	if err != nil {
		return nil, fmt.Sprintf("credentials Secret %s/%s: %v", r.opts.CredentialsNamespace, name, err)
	}
	return cfg, ""
}

// cacheEntry computes one cache's report entry, starting pulls as needed. It returns the images
// to release (dropped from the cache) and when to look again (0: on the next event).
func (r *Reconciler) cacheEntry(ctx context.Context, w *cacheWork, prev ferryv1alpha1.CacheReport, had bool,
	results map[string]pullResult, heldByFerry map[string]bool, now time.Time) (ferryv1alpha1.CacheReport, []ferryv1alpha1.ImageReport, time.Duration) {
	ic := w.ic
	gen := ic.Status.ObservedGeneration
	entry := ferryv1alpha1.CacheReport{Name: ic.Name, UID: string(ic.UID), ImageCacheID: ic.Status.ImageCacheID, Generation: gen}
	prevImages := map[string]ferryv1alpha1.ImageReport{}
	if had {
		for _, im := range prev.Images {
			prevImages[im.Image] = im
		}
	}
	var next time.Duration
	wanted := statusImages(ic)
	for _, ref := range wanted {
		im, ok := prevImages[ref]
		delete(prevImages, ref)
		if !ok {
			im = ferryv1alpha1.ImageReport{Image: ref, Phase: ferryv1alpha1.PhasePulling}
		}
		if had && prev.Generation != gen && im.Phase != ferryv1alpha1.PhaseReady {
			im.Phase, im.Attempts, im.Error = ferryv1alpha1.PhasePulling, 0, "" // a new generation retries
		}
		retryKey := string(ic.UID) + "/" + ref
		if res, done := results[ref]; done && im.Phase == ferryv1alpha1.PhasePulling {
			if res.err != nil {
				im.Attempts++
				im.Error = res.err.Error()
				if int(im.Attempts) >= r.opts.MaxAttempts {
					im.Phase = ferryv1alpha1.PhaseFailed
				} else {
					r.setRetry(retryKey, now.Add(r.opts.Backoff<<(im.Attempts-1)))
				}
			} else {
				im.Attempts++
				r.markReady(ctx, &im, false, res.finished)
			}
		}
		switch im.Phase {
		case ferryv1alpha1.PhaseReady:
			st, err := r.opts.Runtime.Status(ctx, ref)
			if err == nil && st == nil { // removed behind our back (kubelet image GC): pull again
				log.FromContext(ctx).Info("cached image disappeared; pulling it again", "image", ref, "cache", ic.Name)
				im = ferryv1alpha1.ImageReport{Image: ref, Phase: ferryv1alpha1.PhasePulling, Present: im.Present}
			} else if st != nil {
				im.Pinned = st.Pinned
			}
		case ferryv1alpha1.PhaseFailed:
			entry.Images = append(entry.Images, im)
			continue
		}
		if im.Phase != ferryv1alpha1.PhasePulling {
			entry.Images = append(entry.Images, im)
			continue
		}
		switch {
		case r.isInflight(ref):
		case refusedHost(w, ref) != "":
			im.Phase, im.Error = ferryv1alpha1.PhaseFailed, refusedHost(w, ref)
		case w.credErr != "":
			im.Error = w.credErr
		default:
			if at := r.retryTime(retryKey); at.After(now) {
				if d := at.Sub(now); next == 0 || d < next {
					next = d
				}
				break
			}
			st, err := r.opts.Runtime.Status(ctx, ref)
			if err != nil {
				im.Error = err.Error()
				next = r.opts.Backoff
				break
			}
			if st != nil {
				present := !heldByFerry[ref] && !im.Present && im.Attempts == 0
				if im.Present {
					present = true
				}
				r.markReady(ctx, &im, present, now)
				if present {
					pulls.WithLabelValues("present").Inc()
				}
				break
			}
			r.startPull(ref, authFor(w.creds, ref))
		}
		entry.Images = append(entry.Images, im)
	}
	var dropped []ferryv1alpha1.ImageReport
	for _, im := range prevImages {
		dropped = append(dropped, im)
	}
	entry.Phase = ferryv1alpha1.PhaseReady
	for _, im := range entry.Images {
		switch {
		case im.Phase == ferryv1alpha1.PhaseFailed && entry.Phase == ferryv1alpha1.PhaseReady:
			entry.Phase = ferryv1alpha1.PhaseFailed
		case im.Phase == ferryv1alpha1.PhasePulling:
			entry.Phase = ferryv1alpha1.PhasePulling
		}
	}
	return entry, dropped, next
}

func refusedHost(w *cacheWork, ref string) string { return w.refused[annotations.ImageHost(ref)] }

// markReady fills a ready image's runtime detail.
func (r *Reconciler) markReady(ctx context.Context, im *ferryv1alpha1.ImageReport, present bool, at time.Time) {
	im.Phase, im.Error, im.Present = ferryv1alpha1.PhaseReady, "", present
	t := metav1.NewTime(at)
	im.CompletionTime = &t
	st, err := r.opts.Runtime.Status(ctx, im.Image)
	if err != nil || st == nil {
		return
	}
	im.ImageRef, im.Size, im.Pinned = st.Id, int64(st.Size), st.Pinned //nolint:gosec // image sizes fit int64
	im.Digest = repoDigest(st, im.Image)
}

// repoDigest picks the digest of ref's repository from the runtime's repo digests.
func repoDigest(st *runtimeapi.Image, ref string) string {
	repo := ref
	if i := strings.LastIndex(repo, "@"); i >= 0 {
		repo = repo[:i]
	} else if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
		repo = repo[:i]
	}
	for _, d := range st.RepoDigests {
		r, dig, ok := strings.Cut(d, "@")
		if ok && (r == repo || strings.HasSuffix(r, "/"+repo)) {
			return dig
		}
	}
	if len(st.RepoDigests) > 0 {
		_, dig, _ := strings.Cut(st.RepoDigests[0], "@")
		return dig
	}
	return ""
}

// authFor returns the credential for ref: the "host/repository" entry, else the host entry.
func authFor(cfg *dockercfg.Config, ref string) *runtimeapi.AuthConfig {
	if cfg == nil {
		return nil
	}
	e, ok := cfg.Lookup(annotations.ImageRepository(ref))
	if !ok {
		e, ok = cfg.Lookup(annotations.ImageHost(ref))
	}
	if !ok {
		return nil
	}
	return &runtimeapi.AuthConfig{Username: e.Username, Password: e.Password.Reveal(),
		IdentityToken: e.IdentityToken.Reveal(), RegistryToken: e.RegistryToken.Reveal()}
}

func (r *Reconciler) isInflight(ref string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.inflight[ref]
}

func (r *Reconciler) setRetry(key string, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.retryAt[key] = at
}

// forgetRetries drops the backoff state of caches this node no longer serves.
func (r *Reconciler) forgetRetries(work []*cacheWork) {
	live := map[string]bool{}
	for _, w := range work {
		live[string(w.ic.UID)] = true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for k := range r.retryAt {
		if uid, _, _ := strings.Cut(k, "/"); !live[uid] {
			delete(r.retryAt, k)
		}
	}
}

func (r *Reconciler) retryTime(key string) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.retryAt[key]
}

// startPull pulls ref in the background (at most Parallelism at a time) and wakes the
// reconciler when it is done.
func (r *Reconciler) startPull(ref string, auth *runtimeapi.AuthConfig) {
	r.mu.Lock()
	if r.inflight[ref] {
		r.mu.Unlock()
		return
	}
	r.inflight[ref] = true
	r.mu.Unlock()
	go func() {
		r.sem <- struct{}{}
		ctx, cancel := context.WithTimeout(context.Background(), r.opts.PullTimeout)
		start := time.Now()
		id, err := r.opts.Runtime.Pull(ctx, ref, auth)
		cancel()
		<-r.sem
		if err == nil {
			pulls.WithLabelValues("pulled").Inc()
			pullDuration.Observe(time.Since(start).Seconds())
			if st, serr := r.opts.Runtime.Status(context.Background(), ref); serr == nil && st != nil {
				pulledBytes.Add(float64(st.Size))
			}
		} else {
			pulls.WithLabelValues("failed").Inc()
		}
		r.mu.Lock()
		delete(r.inflight, ref)
		r.results[ref] = pullResult{imageID: id, err: err, finished: r.opts.Now()}
		r.mu.Unlock()
		select {
		case r.wake <- event.GenericEvent{Object: &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: r.opts.NodeName}}}:
		default: // a wake-up is already queued
		}
	}()
}

// release removes images ferry pulled that no live cache wants any more.
func (r *Reconciler) release(ctx context.Context, candidates []ferryv1alpha1.ImageReport, live []ferryv1alpha1.CacheReport, wantedRefs map[string]bool) {
	if len(candidates) == 0 {
		return
	}
	logger := log.FromContext(ctx)
	keepIDs := map[string]bool{}
	for _, c := range live {
		for _, im := range c.Images {
			if im.ImageRef != "" {
				keepIDs[im.ImageRef] = true
			}
		}
	}
	inUse, err := r.opts.Runtime.ImagesInUse(ctx)
	if err != nil {
		logger.Error(err, "cannot tell which images containers use; keeping released images for now")
		return
	}
	done := map[string]bool{}
	for _, im := range candidates {
		if done[im.Image] || wantedRefs[im.Image] || im.Present {
			continue
		}
		done[im.Image] = true
		st, err := r.opts.Runtime.Status(ctx, im.Image)
		if err != nil || st == nil {
			continue
		}
		if keepIDs[st.Id] || inUse[st.Id] {
			logger.Info("released image kept: another cache or a container uses it", "image", im.Image)
			continue
		}
		if err := r.opts.Runtime.Remove(ctx, im.Image); err != nil {
			logger.Error(err, "release cached image", "image", im.Image)
			continue
		}
		released.Inc()
		logger.Info("released cached image", "image", im.Image)
	}
}

func (r *Reconciler) setGauges(caches []ferryv1alpha1.CacheReport) {
	imagesGauge.Reset()
	for _, p := range []string{ferryv1alpha1.PhasePulling, ferryv1alpha1.PhaseReady, ferryv1alpha1.PhaseFailed} {
		imagesGauge.WithLabelValues(p).Set(0)
	}
	for _, c := range caches {
		for _, im := range c.Images {
			imagesGauge.WithLabelValues(im.Phase).Inc()
		}
	}
}

// loadReport returns this node's NodeImageCache, creating it (owned by the Node, so it goes
// with it) when missing. Its existence tells the controller that the node takes caches.
func (r *Reconciler) loadReport(ctx context.Context, node *corev1.Node) (*ferryv1alpha1.NodeImageCache, error) {
	var nic ferryv1alpha1.NodeImageCache
	err := r.client.Get(ctx, client.ObjectKey{Name: r.opts.NodeName}, &nic)
	if err == nil {
		return &nic, nil
	}
	if !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("get NodeImageCache %s: %w", r.opts.NodeName, err)
	}
	nic = ferryv1alpha1.NodeImageCache{ObjectMeta: metav1.ObjectMeta{Name: r.opts.NodeName, OwnerReferences: []metav1.OwnerReference{{
		APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID,
	}}}, Status: ferryv1alpha1.NodeImageCacheStatus{Pinning: PinningRepull}}
	if err := r.client.Create(ctx, &nic); err != nil {
		return nil, fmt.Errorf("create NodeImageCache %s: %w", r.opts.NodeName, err)
	}
	return &nic, nil
}

// writeReport updates the NodeImageCache when the report changed.
func (r *Reconciler) writeReport(ctx context.Context, nic *ferryv1alpha1.NodeImageCache, status ferryv1alpha1.NodeImageCacheStatus, now time.Time) error {
	status.UpdateTime = nic.Status.UpdateTime
	if equality.Semantic.DeepEqual(nic.Status, status) && nic.Status.UpdateTime != nil {
		return nil
	}
	t := metav1.NewTime(now)
	status.UpdateTime = &t
	nic.Status = status
	if err := r.client.Update(ctx, nic); err != nil {
		return fmt.Errorf("write NodeImageCache %s: %w", r.opts.NodeName, err)
	}
	return nil
}

// labelNode sets imagecache.ferry.dev/<id>=ready for the complete caches and removes the labels
// of the others.
func (r *Reconciler) labelNode(ctx context.Context, node *corev1.Node, caches []ferryv1alpha1.CacheReport, live []eciv1.ImageCache) error {
	currentGen := map[string]int64{}
	for _, ic := range live {
		currentGen[string(ic.UID)] = ic.Status.ObservedGeneration
	}
	want := map[string]bool{}
	for _, c := range caches {
		if c.Phase == ferryv1alpha1.PhaseReady && c.ImageCacheID != "" && currentGen[c.UID] == c.Generation {
			want[annotations.ImageCacheNodeLabel(c.ImageCacheID)] = true
		}
	}
	patch := map[string]any{}
	for k, v := range node.Labels {
		if strings.HasPrefix(k, annotations.ImageCacheNodeLabelPrefix) && (!want[k] || v != annotations.ImageCacheNodeLabelReady) {
			patch[k] = nil
		}
	}
	for k := range want {
		if node.Labels[k] != annotations.ImageCacheNodeLabelReady {
			patch[k] = annotations.ImageCacheNodeLabelReady
		}
	}
	if len(patch) == 0 {
		return nil
	}
	data, err := json.Marshal(map[string]any{"metadata": map[string]any{"labels": patch}})
	if err != nil {
		return err
	}
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node.Name}}
	if err := r.client.Patch(ctx, n, client.RawPatch(types.MergePatchType, data)); err != nil {
		return fmt.Errorf("label node %s with its image caches: %w", node.Name, err)
	}
	return nil
}

var _ reconcile.Reconciler = (*Reconciler)(nil)
