package schedulinggate

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/ferrypull/ferry/internal/annotations"
	"github.com/prometheus/client_golang/prometheus"
)

var gateReleases = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "ferry_pod_gate_released_total", Help: "Scheduling gates released, by outcome (ready, refused, no_agent, invalid).",
}, []string{"outcome"})

func init() { metrics.Registry.MustRegister(gateReleases) }

// Gate event reasons.
const (
	ReasonGateReleased = "RegistryConfigReady"
	ReasonGateWarning  = "RegistryConfigIncomplete"
)

// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// GateReconciler removes the ferry.dev/registry-config scheduling gate once
// every node-agent has settled the Pod's registry hosts.
type GateReconciler struct {
	Client   client.Client
	Recorder events.EventRecorder // optional
}

// CacheByObject returns the cache restrictions the gate controller needs:
// only labelled Pods, and Nodes stripped to name, annotations and the Ready
// condition (Node status carries large image lists). Merge these entries into
// the manager's cache.Options.ByObject.
func CacheByObject() map[client.Object]cache.ByObject {
	return map[client.Object]cache.ByObject{
		&corev1.Pod{}: {Label: labels.SelectorFromSet(labels.Set{annotations.RegistryConfigLabel: "true"})},
		&corev1.Node{}: {Transform: func(obj any) (any, error) {
			n, ok := obj.(*corev1.Node)
			if !ok {
				return obj, nil
			}
			slim := &corev1.Node{TypeMeta: n.TypeMeta, ObjectMeta: metav1.ObjectMeta{
				Name: n.Name, UID: n.UID, ResourceVersion: n.ResourceVersion, Annotations: n.Annotations, Labels: n.Labels,
			}}
			for _, c := range n.Status.Conditions {
				if c.Type == corev1.NodeReady {
					slim.Status.Conditions = []corev1.NodeCondition{c}
				}
			}
			return slim, nil
		}},
	}
}

// SetupWithManager registers the controller: gated Pods, and every Node
// change re-checks all gated Pods.
func (r *GateReconciler) SetupWithManager(mgr ctrl.Manager) error {
	allGated := handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, _ client.Object) []reconcile.Request {
		var pods corev1.PodList
		if err := r.Client.List(ctx, &pods, client.MatchingLabels{annotations.RegistryConfigLabel: "true"}); err != nil {
			return nil
		}
		var out []reconcile.Request
		for i := range pods.Items {
			if annotations.Gated(&pods.Items[i]) {
				out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&pods.Items[i])})
			}
		}
		return out
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named("ferry-registry-gate").
		For(&corev1.Pod{}, builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool {
			p, ok := o.(*corev1.Pod)
			return ok && annotations.Gated(p)
		}))).
		Watches(&corev1.Node{}, allGated, builder.WithPredicates(predicate.Funcs{
			UpdateFunc: func(e event.UpdateEvent) bool {
				return e.ObjectOld.GetAnnotations()[annotations.NodeRegistryStatusAnnotation] != e.ObjectNew.GetAnnotations()[annotations.NodeRegistryStatusAnnotation] ||
					nodeLost(e.ObjectOld) != nodeLost(e.ObjectNew)
			},
		})).
		Complete(r)
}

// nodeLost reports whether the node controller has lost contact with the
// node (Ready condition Unknown). A NotReady node (e.g. CNI not ready) still
// runs its hostNetwork node-agent and still counts.
func nodeLost(o client.Object) bool {
	n, ok := o.(*corev1.Node)
	if !ok {
		return true
	}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionUnknown
		}
	}
	return false
}

// Reconcile releases one Pod's gate when its hosts are settled everywhere.
func (r *GateReconciler) Reconcile(ctx context.Context, req reconcile.Request) (ctrl.Result, error) {
	logger := log.FromContext(ctx)
	pod := &corev1.Pod{}
	if err := r.Client.Get(ctx, req.NamespacedName, pod); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !annotations.Gated(pod) {
		return ctrl.Result{}, nil
	}
	reqs, err := annotations.PodRegistryRequests(pod)
	if err != nil {
		r.event(pod, corev1.EventTypeWarning, ReasonGateWarning, "%v; releasing the scheduling gate without registry configuration", err)
		return ctrl.Result{}, r.release(ctx, pod, "invalid")
	}
	var nodes corev1.NodeList
	if err := r.Client.List(ctx, &nodes); err != nil {
		return ctrl.Result{}, fmt.Errorf("list nodes: %w", err)
	}
	type agentNode struct {
		name   string
		status annotations.NodeRegistryStatus
	}
	var agents []agentNode
	for i := range nodes.Items {
		n := &nodes.Items[i]
		v, ok := n.Annotations[annotations.NodeRegistryStatusAnnotation]
		if !ok || nodeLost(n) {
			continue
		}
		st, err := annotations.ParseNodeRegistryStatus(v)
		if err != nil {
			logger.Info("ignoring unreadable node-agent status", "node", n.Name, "error", err.Error())
			continue
		}
		agents = append(agents, agentNode{n.Name, st})
	}
	if len(agents) == 0 {
		r.event(pod, corev1.EventTypeWarning, ReasonGateWarning,
			"no reachable node reports a running ferry node-agent; releasing the scheduling gate, registry hosts %s are not configured anywhere", hostList(reqs))
		return ctrl.Result{}, r.release(ctx, pod, "no_agent")
	}
	problems := map[string][]string{} // "annotation host" -> nodes
	for _, q := range reqs {
		for _, a := range agents {
			if !a.status.Decided(q.Host) {
				logger.V(1).Info("waiting for node-agent", "node", a.name, "host", q.Host)
				return ctrl.Result{}, nil // a Node update re-triggers us
			}
			if _, ok := a.status.Ready[q.Host]; !ok {
				k := fmt.Sprintf("annotation %s: host %q", q.Annotation, q.Host)
				problems[k] = append(problems[k], a.name)
			}
		}
	}
	outcome := "ready"
	if len(problems) > 0 {
		outcome = "refused"
		keys := slices.Sorted(maps.Keys(problems))
		var parts []string
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%s refused or failed on %s", k, strings.Join(problems[k], ",")))
		}
		r.event(pod, corev1.EventTypeWarning, ReasonGateWarning, "%s; releasing the scheduling gate (pulls from those hosts will fail there)", strings.Join(parts, "; "))
	} else {
		r.event(pod, corev1.EventTypeNormal, ReasonGateReleased, "registry hosts %s configured by node-agent on %d node(s); scheduling gate released", hostList(reqs), len(agents))
	}
	return ctrl.Result{}, r.release(ctx, pod, outcome)
}

func hostList(reqs []annotations.RegistryRequest) string {
	s := make([]string, len(reqs))
	for i, q := range reqs {
		s[i] = q.Host
	}
	return "[" + strings.Join(s, ",") + "]"
}

func (r *GateReconciler) release(ctx context.Context, pod *corev1.Pod, outcome string) error {
	orig := pod.DeepCopy()
	pod.Spec.SchedulingGates = slices.DeleteFunc(pod.Spec.SchedulingGates, func(g corev1.PodSchedulingGate) bool {
		return g.Name == annotations.RegistryConfigGate
	})
	if err := r.Client.Patch(ctx, pod, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("remove scheduling gate from pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	gateReleases.WithLabelValues(outcome).Inc()
	log.FromContext(ctx).Info("released registry scheduling gate", "pod", client.ObjectKeyFromObject(pod), "outcome", outcome)
	return nil
}

func (r *GateReconciler) event(pod *corev1.Pod, eventType, reason, format string, args ...any) {
	if r.Recorder == nil {
		return
	}
	ref := &corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID}
	r.Recorder.Eventf(ref, nil, eventType, reason, "ReleaseGate", format, args...)
}
