package pullsecret

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ferrypull/ferry/internal/dockercfg"
)

// Labels and annotations of the pull Secrets ferry writes (both sources).
const (
	// LabelManagedBy marks every Secret ferry writes; its value is ManagedByValue. The helper's
	// Secret cache holds only Secrets with this label.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	ManagedByValue = "ferry"
	// LabelInstance holds the instance key (see Instance.Key) of a namespace pull Secret.
	LabelInstance = "ferry.dev/instance"
	// LabelSource marks Secrets minted for Pod annotations (value SourcePodAnnotation).
	LabelSource         = "ferry.dev/source"
	SourcePodAnnotation = "pod-annotation"

	// AnnotationExpiresAt holds the RFC 3339 expiry of the token in a managed Secret.
	AnnotationExpiresAt = "ferry.dev/expires-at"
	// AnnotationDomains lists the registry hosts in a managed Secret, comma separated.
	AnnotationDomains = "ferry.dev/domains"
	// AnnotationInstance holds "regionId:instanceId" of a Pod-annotation Secret.
	AnnotationInstance = "ferry.dev/instance-ref"
	// AnnotationServiceARNs and AnnotationUserARNs hold a Pod-annotation Secret's role chain,
	// comma separated.
	AnnotationServiceARNs = "ferry.dev/service-arns"
	AnnotationUserARNs    = "ferry.dev/user-arns"
	// AnnotationUsedAt is the RFC 3339 time the Pod webhook last handed the Secret to a Pod.
	AnnotationUsedAt = "ferry.dev/used-at"
	// AnnotationPullSecrets on a ServiceAccount lists, comma separated, the imagePullSecrets
	// entries ferry added. Only those are ever removed by ferry.
	AnnotationPullSecrets = "ferry.dev/pull-secrets"

	// SecretPrefix starts every managed Secret name.
	SecretPrefix = "acr-pull-"
)

// Write sources: the metric label of [Desired.Source].
const (
	SourceNamespace = "namespace"
)

// Render returns the .dockerconfigjson payload: one auths entry per domain, all with the
// token's credentials, in deterministic order (internal/dockercfg). This is the only place a
// token's password leaves its redact.Secret.
func Render(domains []string, tok Token) []byte {
	cfg := dockercfg.New()
	cfg.Set(tok.Username, tok.Password.Reveal(), domains...)
	return cfg.Render()
}

// Desired is the pull Secret a reconciler wants.
type Desired struct {
	Namespace, Name string
	// Source is the metric label (SourceNamespace or SourcePodAnnotation).
	Source string
	// Labels and Annotations are merged into the Secret's own (others are kept).
	Labels, Annotations map[string]string
	// Payload is the .dockerconfigjson (Render).
	Payload []byte
}

// Op is what Apply did.
type Op string

// Apply's results.
const (
	OpNone    Op = ""
	OpCreate  Op = "create"
	OpUpdate  Op = "update"
	OpRevert  Op = "revert" // same token, different content: someone edited the Secret
	OpReplace Op = "replace"
	OpDelete  Op = "delete"
)

// Apply makes the Secret cur (nil: none exists) match want: it creates it, replaces it when its
// type or immutability forbids an update, updates it when the payload, labels or annotations
// differ, and otherwise does nothing. A create that meets an existing Secret returns the
// AlreadyExists error unchanged so the caller can tell a foreign Secret from a stale cache.
func Apply(ctx context.Context, c client.Client, cur *corev1.Secret, want Desired) (Op, error) {
	if cur != nil && (cur.Type != corev1.SecretTypeDockerConfigJson || cur.Immutable != nil && *cur.Immutable) {
		// The type (or, once set, the whole Secret) is immutable: replace the object.
		if err := c.Delete(ctx, cur, client.Preconditions{UID: &cur.UID}); err != nil && !apierrors.IsNotFound(err) {
			return OpNone, fmt.Errorf("replace Secret %s/%s of type %s: %w", want.Namespace, want.Name, cur.Type, err)
		}
		cur = nil
	}
	if cur == nil {
		s := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: want.Namespace, Name: want.Name, Labels: want.Labels, Annotations: want.Annotations},
			Type:       corev1.SecretTypeDockerConfigJson,
			Data:       map[string][]byte{corev1.DockerConfigJsonKey: want.Payload},
		}
		if err := c.Create(ctx, s); err != nil {
			if apierrors.IsAlreadyExists(err) {
				return OpNone, err
			}
			return OpNone, fmt.Errorf("create Secret %s/%s: %w", want.Namespace, want.Name, err)
		}
		countWrite(want.Source, OpCreate)
		return OpCreate, nil
	}
	if len(cur.Data) == 1 && bytes.Equal(cur.Data[corev1.DockerConfigJsonKey], want.Payload) &&
		hasAll(cur.Labels, want.Labels) && hasAll(cur.Annotations, want.Annotations) {
		return OpNone, nil
	}
	op := OpUpdate
	if cur.Annotations[AnnotationExpiresAt] == want.Annotations[AnnotationExpiresAt] &&
		!bytes.Equal(cur.Data[corev1.DockerConfigJsonKey], want.Payload) {
		op = OpRevert
	}
	s := cur.DeepCopy()
	s.Data = map[string][]byte{corev1.DockerConfigJsonKey: want.Payload}
	s.StringData = nil
	if s.Labels == nil {
		s.Labels = map[string]string{}
	}
	if s.Annotations == nil {
		s.Annotations = map[string]string{}
	}
	maps.Copy(s.Labels, want.Labels)
	maps.Copy(s.Annotations, want.Annotations)
	if err := c.Update(ctx, s); err != nil {
		return OpNone, fmt.Errorf("update Secret %s/%s: %w", want.Namespace, want.Name, err)
	}
	countWrite(want.Source, op)
	return op, nil
}

// Delete deletes s only if it is still the object that was read (UID and resourceVersion
// preconditions: a Secret changed meanwhile gets a Conflict) and counts it.
func Delete(ctx context.Context, c client.Client, s *corev1.Secret, source string) error {
	if err := c.Delete(ctx, s, client.Preconditions{UID: &s.UID, ResourceVersion: &s.ResourceVersion}); err != nil {
		return err
	}
	countWrite(source, OpDelete)
	return nil
}

// ExpiresAt reads AnnotationExpiresAt; ok is false when it is missing or malformed.
func ExpiresAt(s *corev1.Secret) (time.Time, bool) {
	t, err := time.Parse(time.RFC3339, s.Annotations[AnnotationExpiresAt])
	return t, err == nil
}

func hasAll(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}
