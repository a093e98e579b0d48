// Package imagecache is the Pod admission webhook for ECI's ImageCache annotations: it points
// Pods at the nodes that hold a cache.
//
// On Pod CREATE:
//
//   - k8s.aliyun.com/eci-imc-id (legacy k8s.aliyun.com/eci-image-snapshot-id) names a cache by
//     its imageCacheId. The Pod is refused unless that cache exists and is Ready (as on ECI),
//     with a message naming the annotation, the cache, its phase and progress. A Ready cache
//     adds a required node affinity on imagecache.ferry.dev/<imageCacheId>=ready — the label
//     node-agent puts on nodes that hold the whole cache — and sets
//     k8s.aliyun.com/eci-matched-image-cache. It overrides automatic matching.
//   - k8s.aliyun.com/eci-auto-imc: "true" (legacy k8s.aliyun.com/eci-image-cache) matches a
//     Ready cache automatically, ranked as ECI does: most of the Pod's images held, then the
//     largest matched size, then the newest cache. k8s.aliyun.com/imc-perfect-match: "true"
//     takes only a cache holding every image of the Pod (it wins over
//     k8s.aliyun.com/imc-match-count-request, the minimum number of matched images; default
//     1). The best cache adds a preferred node affinity (weight 100) on its label and sets
//     k8s.aliyun.com/eci-matched-image-cache. No match leaves the Pod alone (ECI would build
//     a cache; ferry does not).
//
// Images match exactly after normalisation ("nginx" is docker.io/library/nginx:latest), over
// containers and init containers. Malformed annotation values refuse the Pod, naming the
// annotation and the value. The webhook is idempotent (reinvocation adds nothing twice).
//
// Wiring (acr-credential-helper, next to the Pod webhook of internal/webhook/podpullsecret):
//
//	mgr.GetWebhookServer().Register(imagecache.Path, &admission.Webhook{Handler: &imagecache.Mutator{Client: mgr.GetClient()}})
//	// and imagecache.MutatingWebhook(...) in the MutatingWebhookConfiguration
//
// Metrics (controller-runtime registry):
//
//	ferry_imagecache_webhook_admissions_total{result}   explicit, matched, unmatched, denied, unchanged
package imagecache

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/distribution/reference"
	"github.com/prometheus/client_golang/prometheus"
	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	eciv1 "github.com/ferrypull/ferry/api/eci/v1"
	"github.com/ferrypull/ferry/internal/annotations"
)

// Path is where the webhook is served.
const Path = "/mutate-v1-pod-imagecache"

// WebhookName is the name of the webhook entry.
const WebhookName = "imagecache.pods.ferry.dev"

// preferredWeight is the weight of the automatic match's preferred node affinity.
const preferredWeight = 100

var admissions = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "ferry_imagecache_webhook_admissions_total", Help: "Pod admissions by the ImageCache webhook, by result.",
}, []string{"result"})

func init() { metrics.Registry.MustRegister(admissions) }

// Mutator is the admission handler.
type Mutator struct {
	// Client lists ImageCaches (the manager's cached client).
	Client client.Reader
}

var _ admission.Handler = (*Mutator)(nil)

// Handle implements admission.Handler.
func (m *Mutator) Handle(ctx context.Context, req admission.Request) admission.Response {
	if req.Operation != admissionv1.Create || req.Kind.Kind != "Pod" || req.SubResource != "" {
		return admission.Allowed("")
	}
	pod := &corev1.Pod{}
	if err := json.Unmarshal(req.Object.Raw, pod); err != nil {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("decode pod: %w", err))
	}
	sel, err := parse(pod.Annotations)
	if err != nil {
		admissions.WithLabelValues("denied").Inc()
		return admission.Denied(err.Error())
	}
	if sel == nil {
		admissions.WithLabelValues("unchanged").Inc()
		return admission.Allowed("")
	}
	var list eciv1.ImageCacheList
	if err := m.Client.List(ctx, &list); err != nil {
		return admission.Errored(http.StatusInternalServerError, fmt.Errorf("list image caches: %w", err))
	}
	mutated := pod.DeepCopy()
	var result string
	if sel.explicit != "" {
		ic := find(list.Items, sel.explicit)
		if ic == nil {
			admissions.WithLabelValues("denied").Inc()
			return admission.Denied(fmt.Sprintf("annotation %s: image cache %q does not exist", sel.key, sel.explicit))
		}
		if ic.Status.Phase != eciv1.PhaseReady {
			admissions.WithLabelValues("denied").Inc()
			return admission.Denied(notReady(sel.key, ic))
		}
		requireCache(mutated, ic.Status.ImageCacheID)
		result = "explicit"
	} else {
		ic := best(list.Items, podImages(pod), sel)
		if ic == nil {
			admissions.WithLabelValues("unmatched").Inc()
			return admission.Allowed("no Ready image cache matches the Pod's images")
		}
		preferCache(mutated, ic.Status.ImageCacheID)
		result = "matched"
	}
	raw, err := json.Marshal(mutated)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	}
	admissions.WithLabelValues(result).Inc()
	return admission.PatchResponseFromRaw(req.Object.Raw, raw)
}

// selection is what a Pod's annotations ask for.
type selection struct {
	key, explicit string // the annotation used and the cache id
	perfect       bool
	minCount      int
}

func parse(ann map[string]string) (*selection, error) {
	for _, key := range []string{annotations.EciImcID, annotations.EciImageSnapshotID} {
		if v, ok := ann[key]; ok {
			v = strings.TrimSpace(v)
			if !validID(v) {
				return nil, fmt.Errorf("annotation %s: value %q is not an image cache id (imc- followed by letters and digits)", key, truncate(v))
			}
			return &selection{key: key, explicit: v}, nil
		}
	}
	auto := false
	for _, key := range []string{annotations.EciAutoImc, annotations.EciImageCache} {
		if v, ok := ann[key]; ok {
			b, err := strconv.ParseBool(strings.TrimSpace(v))
			if err != nil {
				return nil, fmt.Errorf("annotation %s: value %q: want true or false", key, truncate(v))
			}
			auto = auto || b
		}
	}
	if !auto {
		return nil, nil
	}
	s := &selection{key: annotations.EciAutoImc, minCount: 1}
	if v, ok := ann[annotations.ImcPerfectMatch]; ok {
		b, err := strconv.ParseBool(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("annotation %s: value %q: want true or false", annotations.ImcPerfectMatch, truncate(v))
		}
		s.perfect = b
	}
	if v, ok := ann[annotations.ImcMatchCountRequest]; ok {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < 1 || n > 1000 {
			return nil, fmt.Errorf("annotation %s: value %q: want a count from 1 to 1000", annotations.ImcMatchCountRequest, truncate(v))
		}
		s.minCount = n
	}
	return s, nil
}

func validID(v string) bool {
	rest, ok := strings.CutPrefix(v, "imc-")
	if !ok || rest == "" || len(v) > 63 {
		return false
	}
	for _, c := range rest {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

func truncate(v string) string {
	if len(v) > 128 {
		return v[:128] + "…"
	}
	return v
}

func find(caches []eciv1.ImageCache, id string) *eciv1.ImageCache {
	for i := range caches {
		if caches[i].Status.ImageCacheID == id && caches[i].DeletionTimestamp == nil {
			return &caches[i]
		}
	}
	return nil
}

func notReady(key string, ic *eciv1.ImageCache) string {
	phase := string(ic.Status.Phase)
	if phase == "" {
		phase = "not reconciled yet"
	}
	msg := fmt.Sprintf("annotation %s: image cache %s (ImageCache %s) is %s, not Ready", key, ic.Status.ImageCacheID, ic.Name, phase)
	if ic.Status.Progress != "" {
		msg += ", progress " + ic.Status.Progress
	}
	if ic.Status.Reason != "" {
		msg += "; " + ic.Status.Reason + ": " + truncate(ic.Status.Message)
	}
	return msg + "; a Pod can use an image cache only when it is Ready"
}

// normalize returns the canonical "docker.io/library/nginx:latest" form ("" if unparseable).
func normalize(img string) string {
	named, err := reference.ParseNormalizedNamed(img)
	if err != nil {
		return ""
	}
	return reference.TagNameOnly(named).String()
}

func podImages(pod *corev1.Pod) []string {
	seen := map[string]bool{}
	var out []string
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for _, c := range cs {
			if n := normalize(c.Image); n != "" && !seen[n] {
				seen[n] = true
				out = append(out, n)
			}
		}
	}
	return out
}

// best ranks the Ready caches: matched count, matched size, newest, then name.
func best(caches []eciv1.ImageCache, images []string, sel *selection) *eciv1.ImageCache {
	type cand struct {
		ic    *eciv1.ImageCache
		count int
		size  int64
	}
	var cands []cand
	for i := range caches {
		ic := &caches[i]
		if ic.Status.Phase != eciv1.PhaseReady || ic.Status.ImageCacheID == "" || ic.DeletionTimestamp != nil {
			continue
		}
		held := map[string]int64{}
		for _, im := range ic.Status.Images {
			if n := normalize(im.Image); n != "" {
				held[n] = im.CompressedSize
			}
		}
		c := cand{ic: ic}
		for _, img := range images {
			if size, ok := held[img]; ok {
				c.count++
				c.size += size
			}
		}
		if c.count == 0 || sel.perfect && c.count != len(images) || !sel.perfect && c.count < sel.minCount {
			continue
		}
		cands = append(cands, c)
	}
	if len(cands) == 0 {
		return nil
	}
	slices.SortFunc(cands, func(a, b cand) int {
		return cmp.Or(cmp.Compare(b.count, a.count), cmp.Compare(b.size, a.size),
			b.ic.CreationTimestamp.Compare(a.ic.CreationTimestamp.Time), strings.Compare(a.ic.Name, b.ic.Name))
	})
	return cands[0].ic
}

func requirement(id string) corev1.NodeSelectorRequirement {
	return corev1.NodeSelectorRequirement{Key: annotations.ImageCacheNodeLabel(id), Operator: corev1.NodeSelectorOpIn,
		Values: []string{annotations.ImageCacheNodeLabelReady}}
}

func hasRequirement(exprs []corev1.NodeSelectorRequirement, req corev1.NodeSelectorRequirement) bool {
	return slices.ContainsFunc(exprs, func(e corev1.NodeSelectorRequirement) bool {
		return e.Key == req.Key && e.Operator == req.Operator && slices.Equal(e.Values, req.Values)
	})
}

// requireCache adds the cache's label to every required node-selector term (terms are ORed,
// so each must carry it).
func requireCache(pod *corev1.Pod, id string) {
	setMatched(pod, id)
	aff := affinity(pod)
	req := requirement(id)
	if aff.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		aff.RequiredDuringSchedulingIgnoredDuringExecution = &corev1.NodeSelector{}
	}
	ns := aff.RequiredDuringSchedulingIgnoredDuringExecution
	if len(ns.NodeSelectorTerms) == 0 {
		ns.NodeSelectorTerms = []corev1.NodeSelectorTerm{{}}
	}
	for i := range ns.NodeSelectorTerms {
		if t := &ns.NodeSelectorTerms[i]; !hasRequirement(t.MatchExpressions, req) {
			t.MatchExpressions = append(t.MatchExpressions, req)
		}
	}
}

func preferCache(pod *corev1.Pod, id string) {
	setMatched(pod, id)
	aff := affinity(pod)
	req := requirement(id)
	for _, p := range aff.PreferredDuringSchedulingIgnoredDuringExecution {
		if hasRequirement(p.Preference.MatchExpressions, req) {
			return
		}
	}
	aff.PreferredDuringSchedulingIgnoredDuringExecution = append(aff.PreferredDuringSchedulingIgnoredDuringExecution,
		corev1.PreferredSchedulingTerm{Weight: preferredWeight, Preference: corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{req}}})
}

func setMatched(pod *corev1.Pod, id string) {
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	pod.Annotations[annotations.EciMatchedImageCache] = id
}

func affinity(pod *corev1.Pod) *corev1.NodeAffinity {
	if pod.Spec.Affinity == nil {
		pod.Spec.Affinity = &corev1.Affinity{}
	}
	if pod.Spec.Affinity.NodeAffinity == nil {
		pod.Spec.Affinity.NodeAffinity = &corev1.NodeAffinity{}
	}
	return pod.Spec.Affinity.NodeAffinity
}

// MutatingWebhook is the webhook's entry in the MutatingWebhookConfiguration: Pod CREATE,
// namespaces outside excludeNamespaces, no side effects.
func MutatingWebhook(cc admissionregistrationv1.WebhookClientConfig, failurePolicy admissionregistrationv1.FailurePolicyType, timeoutSeconds int32, excludeNamespaces ...string) admissionregistrationv1.MutatingWebhook {
	se := admissionregistrationv1.SideEffectClassNone
	reinvoke := admissionregistrationv1.IfNeededReinvocationPolicy
	match := admissionregistrationv1.Equivalent
	scope := admissionregistrationv1.NamespacedScope
	if cc.Service != nil { // a copy: the ServiceReference may be shared with other entries
		svc := *cc.Service
		p := Path
		svc.Path = &p
		cc.Service = &svc
	}
	if cc.URL != nil {
		u := strings.TrimSuffix(*cc.URL, "/") + Path
		cc.URL = &u
	}
	w := admissionregistrationv1.MutatingWebhook{
		Name:         WebhookName,
		ClientConfig: cc,
		Rules: []admissionregistrationv1.RuleWithOperations{{
			Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
			Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}, Scope: &scope},
		}},
		FailurePolicy: &failurePolicy, MatchPolicy: &match, SideEffects: &se, TimeoutSeconds: &timeoutSeconds,
		AdmissionReviewVersions: []string{"v1"}, ReinvocationPolicy: &reinvoke,
	}
	if len(excludeNamespaces) > 0 {
		w.NamespaceSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
			Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn, Values: excludeNamespaces,
		}}}
	}
	return w
}
