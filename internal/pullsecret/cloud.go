package pullsecret

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ferrypull/ferry/internal/acr"
	"github.com/ferrypull/ferry/internal/acrconfig"
	"github.com/ferrypull/ferry/internal/annotations"
	"github.com/ferrypull/ferry/internal/cloudcred"
	"github.com/ferrypull/ferry/internal/redact"
)

// CloudTokens is the production token source of every pull-Secret path: the identity from
// internal/cloudcred (documented precedence: customAccessKey, RRSA, alibaba-addon-secret,
// tokenMode; then assumeRoleARN or a Pod's role chain), tokens from the internal/acr
// single-flight cache, so equal identities share one token. Errors are classified: an unknown
// instance wraps ErrUnknownInstance, a missing permission names the RAM action and the identity;
// none contains a secret.
type CloudTokens struct {
	Resolver *cloudcred.Resolver
	Cache    *acr.Cache
	// Reader reads the add-on Secret (uncached).
	Reader client.Reader
	// AddonSecret is kube-system/alibaba-addon-secret or nil (not used).
	AddonSecret *types.NamespacedName
	// AddonTTL is how long a read add-on key is reused.
	AddonTTL time.Duration
	// Store gives the acr-registry-info entries a Pod-annotation instance is matched against.
	Store *Store
	// TokenMode applies when no entry names the instance and acr-configuration sets none.
	TokenMode acrconfig.TokenMode
	// Now defaults to time.Now.
	Now func() time.Time

	mu      sync.Mutex
	addon   *cloudcred.AccessKey
	addonAt time.Time
}

var _ TokenSource = (*CloudTokens)(nil)

func (t *CloudTokens) now() time.Time {
	if t.Now != nil {
		return t.Now()
	}
	return time.Now()
}

// Token implements TokenSource for an acr-registry-info entry (Instance.Source is an ACRSource).
func (t *CloudTokens) Token(ctx context.Context, inst Instance, minValidity time.Duration) (Token, error) {
	src, ok := inst.Source.(ACRSource)
	if !ok {
		return Token{}, fmt.Errorf("instance %s: no acr-registry-info entry attached", inst.Key())
	}
	addon, err := t.AddonAccessKey(ctx)
	if err != nil {
		return Token{}, err
	}
	return t.mint(ctx, cloudcred.RequestFor(src.Config, src.Entry, addon), acr.InstanceFor(src.Entry), minValidity)
}

// Mint mints a token for a Pod-annotation instance (region filled in) with chain on top of the
// cluster identity (ClusterRequest). A non-empty chain replaces the entry's own assumeRoleARN.
func (t *CloudTokens) Mint(ctx context.Context, inst annotations.InstanceRef, chain annotations.RoleChain, minValidity time.Duration) (Token, error) {
	req, err := t.ClusterRequest(ctx, inst)
	if err != nil {
		return Token{}, fmt.Errorf("cluster identity: %w", err)
	}
	if !chain.Empty() {
		req.AssumeRoleARN = ""
		req.AssumeRoleChain = chain.Roles()
	}
	return t.mint(ctx, req, acr.Instance{ID: inst.InstanceID, Region: inst.RegionID}, minValidity)
}

// ClusterRequest is the identity a Pod annotation's instance is minted with before the Pod's
// role chain: the instance's acr-registry-info entry when acr-configuration lists it (its
// customAccessKey, RRSA role, assumeRoleARN), else alibaba-addon-secret, else the token mode.
func (t *CloudTokens) ClusterRequest(ctx context.Context, inst annotations.InstanceRef) (cloudcred.Request, error) {
	addon, err := t.AddonAccessKey(ctx)
	if err != nil {
		return cloudcred.Request{}, err
	}
	mode := t.TokenMode
	if cur := t.Store.Current(); cur != nil {
		for _, i := range cur.Instances {
			src, ok := i.Source.(ACRSource)
			if !ok {
				continue
			}
			if strings.EqualFold(i.ID, inst.InstanceID) {
				return cloudcred.RequestFor(src.Config, src.Entry, addon), nil
			}
			mode = src.Config.TokenMode
		}
	}
	return cloudcred.Request{AddonAccessKey: addon, TokenMode: mode}, nil
}

func (t *CloudTokens) mint(ctx context.Context, req cloudcred.Request, inst acr.Instance, minValidity time.Duration) (Token, error) {
	id, err := t.Resolver.Resolve(ctx, req)
	if err != nil {
		return Token{}, fmt.Errorf("identity for %s: %w", inst.ID, err)
	}
	tok, err := t.Cache.Token(ctx, id, inst, minValidity)
	if err != nil {
		return Token{}, classify(err, inst, id)
	}
	return Token{Username: tok.Username, Password: tok.Password, ExpiresAt: tok.Expiry, Domains: tok.Domains, RetryAt: tok.RetryAt}, nil
}

// classify names the cause of a token error (never a secret).
func classify(err error, inst acr.Instance, id *cloudcred.Identity) error {
	var ae *cloudcred.APIError
	if errors.As(err, &ae) && ae.Service == "cr" && (ae.Code == "INSTANCE_NOT_EXIST" || ae.HTTPStatus == http.StatusNotFound) {
		return fmt.Errorf("%w: %s not found in region %s: %w", ErrUnknownInstance, inst.ID, inst.Region, err)
	}
	if a := acr.MissingAction(err); a != "" {
		return fmt.Errorf("identity %s lacks RAM permission %s: %w", id.Key(), a, err)
	}
	return fmt.Errorf("token with identity %s: %w", id.Key(), err)
}

// AddonAccessKey reads kube-system/alibaba-addon-secret (uncached; at most once per AddonTTL).
// A missing Secret is not an error: the next source in the precedence applies. Through an
// apiserver hiccup the last good key is kept.
func (t *CloudTokens) AddonAccessKey(ctx context.Context) (*cloudcred.AccessKey, error) {
	if t.AddonSecret == nil {
		return nil, nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.addonAt.IsZero() && t.now().Sub(t.addonAt) < t.AddonTTL {
		return t.addon, nil
	}
	s := &corev1.Secret{}
	err := t.Reader.Get(ctx, *t.AddonSecret, s)
	switch {
	case apierrors.IsNotFound(err):
		t.addon = nil
	case err != nil:
		if t.addon != nil {
			return t.addon, nil
		}
		return nil, fmt.Errorf("read Secret %s: %w", t.AddonSecret, err)
	default:
		id, secret := strings.TrimSpace(string(s.Data["access-key-id"])), strings.TrimSpace(string(s.Data["access-key-secret"]))
		if id == "" || secret == "" {
			return nil, errors.New("Secret " + t.AddonSecret.String() + ": access-key-id and access-key-secret must both be set")
		}
		t.addon = &cloudcred.AccessKey{ID: id, Secret: redact.Secret(secret)}
	}
	t.addonAt = t.now()
	return t.addon, nil
}
