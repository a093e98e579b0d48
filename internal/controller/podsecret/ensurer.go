package podsecret

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ferrypull/ferry/internal/annotations"
	"github.com/ferrypull/ferry/internal/pullsecret"
)

// DefaultThreshold is the renewal margin when the helper has no acr-configuration.
const DefaultThreshold = 15 * time.Minute

// GCGrace is how long an unreferenced Secret is kept after the webhook last used it: the
// Pod is created only after admission, and a Deployment may scale up again.
const GCGrace = 10 * time.Minute

// Minter mints a registry token for inst (region filled in) with chain on top of the
// cluster identity, valid for at least minValidity where possible. Errors must not contain
// secrets; an unknown instance wraps pullsecret.ErrUnknownInstance. *pullsecret.CloudTokens
// is the production Minter.
type Minter interface {
	Mint(ctx context.Context, inst annotations.InstanceRef, chain annotations.RoleChain, minValidity time.Duration) (pullsecret.Token, error)
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

// Ensurer makes sure the Pod-annotation Secret of (namespace, instance, role chain) exists and is
// fresh; the Pod webhook calls it at admission.
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

// EnsureInstanceSecret returns the Secret's name. A Secret whose token is still
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
	case cur.Labels[pullsecret.LabelSource] != pullsecret.SourcePodAnnotation:
		return "", fmt.Errorf("secret %s/%s exists and is not managed by ferry (label %s=%s missing); ferry leaves it alone",
			ns, name, pullsecret.LabelSource, pullsecret.SourcePodAnnotation)
	}
	now := e.now()
	if cur != nil && fresh(cur, now, e.threshold()) && cur.Annotations[pullsecret.AnnotationInstance] == inst.String() {
		if used, _ := time.Parse(time.RFC3339, cur.Annotations[pullsecret.AnnotationUsedAt]); now.Sub(used) > GCGrace/2 {
			patch := client.MergeFrom(cur.DeepCopy())
			cur.Annotations[pullsecret.AnnotationUsedAt] = now.UTC().Format(time.RFC3339)
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
	exp, err := time.Parse(time.RFC3339, s.Annotations[pullsecret.AnnotationExpiresAt])
	return err == nil && exp.Sub(now) > threshold && len(s.Data[corev1.DockerConfigJsonKey]) > 0
}

// write creates or updates the Secret with tok through the core writer; used marks a webhook use
// (AnnotationUsedAt; a renewal keeps the recorded use).
func write(ctx context.Context, c client.Client, ns, name string, inst annotations.InstanceRef, chain annotations.RoleChain, tok pullsecret.Token, cur *corev1.Secret, now time.Time, used bool) error {
	if len(tok.Domains) == 0 {
		return fmt.Errorf("instance %s: no registry domains discovered", inst)
	}
	data := pullsecret.Render(tok.Domains, tok)
	expires := tok.ExpiresAt.UTC().Format(time.RFC3339)
	if cur != nil && bytes.Equal(cur.Data[corev1.DockerConfigJsonKey], data) && cur.Annotations[pullsecret.AnnotationExpiresAt] == expires {
		return nil // the same token: nothing to write
	}
	ann := map[string]string{
		pullsecret.AnnotationInstance:  inst.String(),
		pullsecret.AnnotationExpiresAt: expires,
		pullsecret.AnnotationDomains:   strings.Join(tok.Domains, ","),
		pullsecret.AnnotationUsedAt:    now.UTC().Format(time.RFC3339),
	}
	if !used && cur != nil && cur.Annotations[pullsecret.AnnotationUsedAt] != "" {
		ann[pullsecret.AnnotationUsedAt] = cur.Annotations[pullsecret.AnnotationUsedAt] // a renewal is not a use
	}
	if len(chain.ServiceARNs) > 0 {
		ann[pullsecret.AnnotationServiceARNs] = strings.Join(chain.ServiceARNs, ",")
	}
	if len(chain.UserARNs) > 0 {
		ann[pullsecret.AnnotationUserARNs] = strings.Join(chain.UserARNs, ",")
	}
	_, err := pullsecret.Apply(ctx, c, cur, pullsecret.Desired{
		Namespace: ns, Name: name, Source: pullsecret.SourcePodAnnotation, Payload: data, Annotations: ann,
		Labels: map[string]string{pullsecret.LabelManagedBy: pullsecret.ManagedByValue, pullsecret.LabelSource: pullsecret.SourcePodAnnotation},
	})
	if apierrors.IsAlreadyExists(err) {
		return nil // another admission created it meanwhile with an equally fresh token
	}
	return err
}
