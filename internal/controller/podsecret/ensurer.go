package podsecret

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ferrypull/ferry/internal/annotations"
	"github.com/ferrypull/ferry/internal/dockercfg"
	"github.com/ferrypull/ferry/internal/webhook/podpullsecret"
)

// Labels and annotations of annotation-minted Secrets.
const (
	// LabelManagedBy/ManagedByValue put the Secrets into the helper's Secret cache (the same
	// label internal/controller/pullsecret uses).
	LabelManagedBy = "app.kubernetes.io/managed-by"
	ManagedByValue = "ferry"
	// LabelSource marks Secrets minted for Pod annotations.
	LabelSource         = "ferry.dev/source"
	SourcePodAnnotation = "pod-annotation"

	// AnnotationInstance holds "regionId:instanceId".
	AnnotationInstance = "ferry.dev/instance-ref"
	// AnnotationServiceARNs and AnnotationUserARNs hold the role chain, comma separated.
	AnnotationServiceARNs = "ferry.dev/service-arns"
	AnnotationUserARNs    = "ferry.dev/user-arns"
	// AnnotationExpiresAt is the RFC 3339 expiry of the token in the Secret.
	AnnotationExpiresAt = "ferry.dev/expires-at"
	// AnnotationDomains lists the registry hosts, comma separated.
	AnnotationDomains = "ferry.dev/domains"
	// AnnotationUsedAt is the RFC 3339 time the webhook last handed the Secret to a Pod
	// (written at most every GCGrace/2).
	AnnotationUsedAt = "ferry.dev/used-at"
)

// DefaultThreshold is the renewal margin when the helper has no acr-configuration.
const DefaultThreshold = 15 * time.Minute

// GCGrace is how long an unreferenced Secret is kept after the webhook last used it: the
// Pod is created only after admission, and a Deployment may scale up again.
const GCGrace = 10 * time.Minute

// Token is a registry credential.
type Token struct {
	Username  string
	Password  string
	ExpiresAt time.Time
	Domains   []string
}

// Minter mints a registry token for inst (region filled in) with chain on top of the
// cluster identity, valid for at least minValidity where possible. Errors must not contain
// secrets; an unknown instance wraps podpullsecret.ErrUnknownInstance.
type Minter interface {
	Mint(ctx context.Context, inst annotations.InstanceRef, chain annotations.RoleChain, minValidity time.Duration) (Token, error)
}

// SecretName is the deterministic Secret name for (instance, chain).
func SecretName(instanceID string, chain annotations.RoleChain) string {
	id := strings.ToLower(instanceID)
	if chain.Empty() {
		return "acr-pull-" + id + "-pod"
	}
	h := sha256.Sum256([]byte(strings.Join(chain.ServiceARNs, ",") + "|" + strings.Join(chain.UserARNs, ",")))
	return "acr-pull-" + id + "-" + hex.EncodeToString(h[:])[:10]
}

// Ensurer implements podpullsecret.SecretEnsurer.
type Ensurer struct {
	// Client reads (cached; the cache must include Secrets labelled LabelManagedBy) and writes Secrets.
	Client client.Client
	// APIReader reads a Secret the cache does not show yet.
	APIReader client.Reader
	Minter    Minter
	// Region is the default region of an instance reference without one (--region).
	Region string
	// Threshold returns the renewal margin (acr-configuration's expiring-threshold); nil or ≤ 0: DefaultThreshold.
	Threshold func() time.Duration
	Now       func() time.Time
}

var _ podpullsecret.SecretEnsurer = (*Ensurer)(nil)

func (e *Ensurer) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

func (e *Ensurer) threshold() time.Duration {
	if e.Threshold != nil {
		if d := e.Threshold(); d > 0 {
			return d
		}
	}
	return DefaultThreshold
}

// EnsureInstanceSecret implements podpullsecret.SecretEnsurer. A Secret whose token is still
// valid beyond the threshold is reused without a cloud call.
func (e *Ensurer) EnsureInstanceSecret(ctx context.Context, ns string, inst annotations.InstanceRef, chain annotations.RoleChain) (string, error) {
	if inst.RegionID == "" {
		inst.RegionID = e.Region
	}
	if inst.RegionID == "" {
		return "", errors.New("no region: give regionId:instanceId or start acr-credential-helper with --region")
	}
	name := SecretName(inst.InstanceID, chain)
	key := types.NamespacedName{Namespace: ns, Name: name}
	cur := &corev1.Secret{}
	err := e.Client.Get(ctx, key, cur)
	if apierrors.IsNotFound(err) && e.APIReader != nil {
		err = e.APIReader.Get(ctx, key, cur)
	}
	switch {
	case apierrors.IsNotFound(err):
		cur = nil
	case err != nil:
		return "", fmt.Errorf("read Secret %s/%s: %w", ns, name, err)
	case cur.Labels[LabelSource] != SourcePodAnnotation:
		return "", fmt.Errorf("secret %s/%s exists and is not managed by ferry (label %s=%s missing); ferry leaves it alone",
			ns, name, LabelSource, SourcePodAnnotation)
	}
	now := e.now()
	if cur != nil && fresh(cur, now, e.threshold()) && cur.Annotations[AnnotationInstance] == inst.String() {
		if used, _ := time.Parse(time.RFC3339, cur.Annotations[AnnotationUsedAt]); now.Sub(used) > GCGrace/2 {
			patch := client.MergeFrom(cur.DeepCopy())
			cur.Annotations[AnnotationUsedAt] = now.UTC().Format(time.RFC3339)
			if err := e.Client.Patch(ctx, cur, patch); err != nil && !apierrors.IsNotFound(err) {
				return "", fmt.Errorf("mark Secret %s/%s used: %w", ns, name, err)
			}
		}
		return name, nil
	}
	tok, err := e.Minter.Mint(ctx, inst, chain, e.threshold())
	if err != nil {
		return "", err
	}
	if err := write(ctx, e.Client, ns, name, inst, chain, tok, cur, now, true); err != nil {
		return "", err
	}
	return name, nil
}

// fresh reports whether s holds a token valid beyond now+threshold.
func fresh(s *corev1.Secret, now time.Time, threshold time.Duration) bool {
	exp, err := time.Parse(time.RFC3339, s.Annotations[AnnotationExpiresAt])
	return err == nil && exp.Sub(now) > threshold && len(s.Data[corev1.DockerConfigJsonKey]) > 0
}

// write creates or updates the Secret with tok; used marks a webhook use (AnnotationUsedAt).
func write(ctx context.Context, c client.Client, ns, name string, inst annotations.InstanceRef, chain annotations.RoleChain, tok Token, cur *corev1.Secret, now time.Time, used bool) error {
	if len(tok.Domains) == 0 {
		return fmt.Errorf("instance %s: no registry domains discovered", inst)
	}
	cfg := dockercfg.New()
	cfg.Set(tok.Username, tok.Password, tok.Domains...)
	data := cfg.Render()
	labels := map[string]string{LabelManagedBy: ManagedByValue, LabelSource: SourcePodAnnotation}
	ann := map[string]string{
		AnnotationInstance:  inst.String(),
		AnnotationExpiresAt: tok.ExpiresAt.UTC().Format(time.RFC3339),
		AnnotationDomains:   strings.Join(tok.Domains, ","),
		AnnotationUsedAt:    now.UTC().Format(time.RFC3339),
	}
	if len(chain.ServiceARNs) > 0 {
		ann[AnnotationServiceARNs] = strings.Join(chain.ServiceARNs, ",")
	}
	if len(chain.UserARNs) > 0 {
		ann[AnnotationUserARNs] = strings.Join(chain.UserARNs, ",")
	}
	if cur == nil {
		s := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels, Annotations: ann},
			Type:       corev1.SecretTypeDockerConfigJson,
			Data:       map[string][]byte{corev1.DockerConfigJsonKey: data},
		}
		err := c.Create(ctx, s)
		if apierrors.IsAlreadyExists(err) {
			// Another admission created it meanwhile with an equally fresh token.
			return nil
		}
		if err != nil {
			return fmt.Errorf("create Secret %s/%s: %w", ns, name, err)
		}
		secretWrites.WithLabelValues("create").Inc()
		return nil
	}
	if bytes.Equal(cur.Data[corev1.DockerConfigJsonKey], data) && cur.Annotations[AnnotationExpiresAt] == ann[AnnotationExpiresAt] {
		return nil
	}
	s := cur.DeepCopy()
	s.Data = map[string][]byte{corev1.DockerConfigJsonKey: data}
	s.StringData = nil
	if s.Labels == nil {
		s.Labels = map[string]string{}
	}
	if s.Annotations == nil {
		s.Annotations = map[string]string{}
	}
	maps.Copy(s.Labels, labels)
	if !used && cur.Annotations[AnnotationUsedAt] != "" {
		ann[AnnotationUsedAt] = cur.Annotations[AnnotationUsedAt] // a renewal is not a use
	}
	maps.Copy(s.Annotations, ann)
	if err := c.Update(ctx, s); err != nil {
		return fmt.Errorf("update Secret %s/%s: %w", ns, name, err)
	}
	secretWrites.WithLabelValues("update").Inc()
	return nil
}
