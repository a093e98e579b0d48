// Package agent is node-agent's reconciler: it turns the plain-http-registry
// and insecure-registry annotations of Pods into containerd hosts.toml entries
// on its node (through hostsconfig), refuses hosts outside the allow-list with
// a Warning Event on the Pod, and publishes what it configured on its Node
// object so the Pod gate controller can release gated Pods.
//
// Which Pods count (ScopeCluster, the default): every Pod labelled
// ferry.dev/registry-config that is not finished and is either not yet bound to
// a node or bound to this one. Unbound Pods are included so that every node is
// ready before the scheduler picks one; once the Pod is bound elsewhere this
// node drops the entry again (unless another Pod still needs it). ScopeNode
// watches only the Pods bound to this node (field selector spec.nodeName) and
// needs no webhook, but cannot order itself before the kubelet's first pull.
//
// Metrics (registered on controller-runtime's registry):
//
//	ferry_node_agent_registry_hosts{mode}                 ferry-owned hosts.toml entries
//	ferry_node_agent_registry_refusals_total{annotation}  hosts refused by the allow-list (per Pod and host)
//	ferry_node_agent_hosts_write_errors_total             failed hosts.toml writes and conflicts
//	ferry_node_agent_reconcile_total{result}              reconciles by result (success, error)
package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/ferrypull/ferry/internal/annotations"
	"github.com/ferrypull/ferry/internal/nodeagent/hostsconfig"
)

// Scope selects which Pods the agent watches.
type Scope string

const (
	// ScopeCluster: labelled Pods cluster-wide (unbound, or bound to this node).
	ScopeCluster Scope = "cluster"
	// ScopeNode: all Pods bound to this node.
	ScopeNode Scope = "node"
)

// Event reasons emitted on Pods.
const (
	ReasonNotAllowed     = "RegistryNotAllowed"
	ReasonInvalid        = "InvalidRegistryAnnotation"
	ReasonConfigFailed   = "RegistryConfigFailed"
	ReasonConfigured     = "RegistryConfigured"
	resyncPeriod         = 5 * time.Minute
	reconcileRequestName = "registry-config"
)

var (
	hostsGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "ferry_node_agent_registry_hosts", Help: "ferry-owned hosts.toml entries on this node, by mode.",
	}, []string{"mode"})
	refusals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ferry_node_agent_registry_refusals_total", Help: "Registry hosts refused by the allow-list, per Pod and host.",
	}, []string{"annotation"})
	writeErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "ferry_node_agent_hosts_write_errors_total", Help: "hosts.toml entries that could not be written (conflicts, I/O).",
	})
	reconciles = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ferry_node_agent_reconcile_total", Help: "node-agent reconciles by result.",
	}, []string{"result"})
)

func init() {
	metrics.Registry.MustRegister(hostsGauge, refusals, writeErrors, reconciles)
}

// Options configure a Reconciler.
type Options struct {
	NodeName  string
	Scope     Scope // default ScopeCluster
	Hosts     *hostsconfig.Manager
	Allowlist *hostsconfig.Allowlist
	Recorder  events.EventRecorder // optional
}

// Reconciler keeps hosts.toml in line with the Pods that need it.
type Reconciler struct {
	client client.Client
	opts   Options
	ready  atomic.Bool

	mu       sync.Mutex
	reported map[string]bool // "<uid>/<reason>/<host>" Events already emitted
}

// New returns a Reconciler; c must be able to list Pods as selected by
// CacheOptions and patch this node's Node object.
func New(c client.Client, opts Options) (*Reconciler, error) {
	if opts.NodeName == "" {
		return nil, errors.New("node-agent: node name is required")
	}
	if opts.Hosts == nil {
		return nil, errors.New("node-agent: hosts manager is required")
	}
	if opts.Scope == "" {
		opts.Scope = ScopeCluster
	}
	if opts.Scope != ScopeCluster && opts.Scope != ScopeNode {
		return nil, fmt.Errorf("node-agent: unknown scope %q (want %q or %q)", opts.Scope, ScopeCluster, ScopeNode)
	}
	return &Reconciler{client: c, opts: opts, reported: map[string]bool{}}, nil
}

// CacheOptions restricts the manager's Pod cache to the Pods the agent needs.
func CacheOptions(nodeName string, scope Scope) cache.Options {
	var by cache.ByObject
	if scope == ScopeNode {
		by.Field = fields.OneTermEqualSelector("spec.nodeName", nodeName)
	} else {
		by.Label = labels.SelectorFromSet(labels.Set{annotations.RegistryConfigLabel: "true"})
	}
	return cache.Options{ByObject: map[client.Object]cache.ByObject{
		&corev1.Pod{}:  by,
		&corev1.Node{}: {Field: fields.OneTermEqualSelector("metadata.name", nodeName)},
	}}
}

// SetupWithManager registers the controller: every Pod change, and any change
// of this node's Node object (including its appearance in the cache at start),
// triggers one level-based reconcile of the whole node.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	one := handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: reconcileRequestName}}}
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named("node-agent").
		Watches(&corev1.Pod{}, one).
		Watches(&corev1.Node{}, one).
		WithOptions(controller.Options{MaxConcurrentReconciles: 1}).
		Complete(r)
}

// ReadyCheck is a healthz.Checker that passes after the first successful reconcile.
func (r *Reconciler) ReadyCheck(*http.Request) error {
	if !r.ready.Load() {
		return errors.New("registry configuration not applied yet")
	}
	return nil
}

// Ready reports whether the first reconcile has succeeded.
func (r *Reconciler) Ready() bool { return r.ready.Load() }

type want struct {
	mode annotations.RegistryMode
	pods []*corev1.Pod // bound to this node, for Events
	ann  string
}

// Reconcile recomputes the desired hosts from all relevant Pods, applies them
// and publishes the node status.
func (r *Reconciler) Reconcile(ctx context.Context, _ reconcile.Request) (ctrl.Result, error) {
	logger := log.FromContext(ctx).WithValues("node", r.opts.NodeName)
	var pods corev1.PodList
	if err := r.client.List(ctx, &pods); err != nil {
		reconciles.WithLabelValues("error").Inc()
		return ctrl.Result{}, fmt.Errorf("list pods: %w", err)
	}
	events := r.newEvents()
	wants := map[string]*want{}
	refused := map[string]bool{}
	alive := map[types.UID]bool{}
	for i := range pods.Items {
		pod := &pods.Items[i]
		if !r.relevant(pod) {
			continue
		}
		alive[pod.UID] = true
		onNode := pod.Spec.NodeName == r.opts.NodeName
		reqs, err := annotations.PodRegistryRequests(pod)
		if err != nil {
			if onNode {
				events.once(pod, corev1.EventTypeWarning, ReasonInvalid, "", "%v; no registry configuration written for this Pod", err)
			}
			continue
		}
		for _, req := range reqs {
			if !r.opts.Allowlist.Allows(req.Host) {
				refused[req.Host] = true
				if onNode && events.once(pod, corev1.EventTypeWarning, ReasonNotAllowed, req.Host,
					"annotation %s: host %q is not in node-agent's --allowed-registries; TLS is not weakened for it and pulls from it will fail",
					req.Annotation, req.Host) {
					refusals.WithLabelValues(req.Annotation).Inc()
				}
				continue
			}
			w := wants[req.Host]
			if w == nil {
				w = &want{mode: req.Mode, ann: req.Annotation}
				wants[req.Host] = w
			} else if req.Mode == annotations.ModePlainHTTP {
				w.mode = annotations.ModePlainHTTP // plain HTTP wins when Pods disagree
			}
			if onNode {
				w.pods = append(w.pods, pod)
			}
		}
	}
	r.forget(alive)

	desired := make(map[string]annotations.RegistryMode, len(wants))
	for h, w := range wants {
		desired[h] = w.mode
	}
	res, applyErr := r.opts.Hosts.Apply(desired)
	status := annotations.NodeRegistryStatus{Ready: map[string]annotations.RegistryMode{}}
	for h, m := range res.Owned {
		if _, ok := desired[h]; ok {
			status.Ready[h] = m
		}
	}
	for _, h := range res.Satisfied {
		status.Ready[h] = desired[h]
	}
	for h := range refused {
		if _, ok := wants[h]; !ok {
			status.Refused = append(status.Refused, h)
		}
	}
	for _, h := range slices.Sorted(maps.Keys(desired)) {
		if _, ok := status.Ready[h]; ok {
			continue
		}
		status.Failed = append(status.Failed, h)
		writeErrors.Inc()
		for _, p := range wants[h].pods {
			events.once(p, corev1.EventTypeWarning, ReasonConfigFailed, h, "annotation %s: could not configure host %q on node %s: %v",
				wants[h].ann, h, r.opts.NodeName, applyErr)
		}
	}
	for _, h := range slices.Sorted(maps.Keys(status.Ready)) {
		for _, p := range wants[h].pods {
			events.once(p, corev1.EventTypeNormal, ReasonConfigured, h,
				"annotation %s: node %s reaches registry %q with %s (node-wide setting)", wants[h].ann, r.opts.NodeName, h, describe(status.Ready[h]))
		}
	}
	events.flush()
	hostsGauge.Reset()
	for _, m := range res.Owned {
		hostsGauge.WithLabelValues(string(m)).Inc()
	}
	if len(res.Added)+len(res.Removed) > 0 {
		logger.Info("registry host configuration changed", "added", res.Added, "removed", res.Removed, "dir", r.opts.Hosts.Dir())
	}
	if applyErr != nil {
		logger.Error(applyErr, "some registry hosts could not be configured", "failed", status.Failed)
	}
	if err := r.publish(ctx, status); err != nil {
		reconciles.WithLabelValues("error").Inc()
		return ctrl.Result{}, err
	}
	reconciles.WithLabelValues("success").Inc()
	r.ready.Store(true)
	// Failed hosts are retried with the periodic resync (a user may fix the file).
	return ctrl.Result{RequeueAfter: resyncPeriod}, nil
}

func (r *Reconciler) relevant(pod *corev1.Pod) bool {
	if pod.DeletionTimestamp != nil || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return false
	}
	if !annotations.HasRegistryAnnotations(pod.Annotations) {
		return false
	}
	return pod.Spec.NodeName == r.opts.NodeName || pod.Spec.NodeName == "" && r.opts.Scope == ScopeCluster
}

func describe(m annotations.RegistryMode) string {
	if m == annotations.ModePlainHTTP {
		return "plain HTTP"
	}
	return "TLS verification disabled"
}

// eventNoteLimit is the longest Event note the API server accepts (events.k8s.io: 1 KB).
const eventNoteLimit = 1024

// podEvents collects one reconcile's Events per (Pod, reason) and emits each as one Event that
// lists every host: the events.k8s.io recorder folds Events with the same reason and object into
// one series and keeps only the first message, so one Event per host would show a Pod's first
// plain-HTTP host and hide the second.
type podEvents struct {
	r     *Reconciler
	order []string
	m     map[string]*podEvent
}

type podEvent struct {
	pod               *corev1.Pod
	eventType, reason string
	msgs              []string
}

func (r *Reconciler) newEvents() *podEvents { return &podEvents{r: r, m: map[string]*podEvent{}} }

// once adds a message for (pod, reason, host) unless one was already emitted for it, and
// reports whether it did.
func (b *podEvents) once(pod *corev1.Pod, eventType, reason, host, format string, args ...any) bool {
	key := string(pod.UID) + "/" + reason + "/" + host
	b.r.mu.Lock()
	done := b.r.reported[key]
	b.r.reported[key] = true
	b.r.mu.Unlock()
	if done {
		return false
	}
	k := string(pod.UID) + "/" + reason
	e, ok := b.m[k]
	if !ok {
		e = &podEvent{pod: pod, eventType: eventType, reason: reason}
		b.m[k] = e
		b.order = append(b.order, k)
	}
	e.msgs = append(e.msgs, fmt.Sprintf(format, args...))
	return true
}

// flush emits one Event per (Pod, reason). The reference carries the Pod's resourceVersion, so
// an annotation edit starts a new series instead of being folded into the last one.
func (b *podEvents) flush() {
	if b.r.opts.Recorder == nil {
		return
	}
	for _, k := range b.order {
		e := b.m[k]
		note := strings.Join(e.msgs, "; ")
		for n := len(e.msgs) - 1; len(note) > eventNoteLimit && n > 0; n-- {
			note = strings.Join(e.msgs[:n], "; ") + fmt.Sprintf("; and %d more (see the node's %s annotation)", len(e.msgs)-n, annotations.NodeRegistryStatusAnnotation)
		}
		if len(note) > eventNoteLimit {
			note = note[:eventNoteLimit-3] + "..."
		}
		p := e.pod
		ref := &corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: p.Namespace, Name: p.Name, UID: p.UID, ResourceVersion: p.ResourceVersion}
		b.r.opts.Recorder.Eventf(ref, nil, e.eventType, e.reason, "ConfigureRegistry", "%s", note)
	}
}

func (r *Reconciler) forget(alive map[types.UID]bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k := range r.reported {
		uid, _, _ := strings.Cut(k, "/")
		if !alive[types.UID(uid)] {
			delete(r.reported, k)
		}
	}
}

// publish writes the status into this node's annotation when it changed.
func (r *Reconciler) publish(ctx context.Context, s annotations.NodeRegistryStatus) error {
	v := s.Encode()
	var cur corev1.Node
	if err := r.client.Get(ctx, client.ObjectKey{Name: r.opts.NodeName}, &cur); err != nil {
		return fmt.Errorf("get node %s: %w", r.opts.NodeName, err)
	}
	if cur.Annotations[annotations.NodeRegistryStatusAnnotation] == v {
		return nil
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{annotations.NodeRegistryStatusAnnotation: v}}})
	if err != nil {
		return err
	}
	node := &corev1.Node{}
	node.Name = r.opts.NodeName
	if err := r.client.Patch(ctx, node, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return fmt.Errorf("publish registry status on node %s: %w", r.opts.NodeName, err)
	}
	return nil
}

var _ reconcile.Reconciler = (*Reconciler)(nil)
