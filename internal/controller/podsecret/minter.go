package podsecret

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/ferrypull/ferry/internal/acr"
	"github.com/ferrypull/ferry/internal/annotations"
	"github.com/ferrypull/ferry/internal/cloudcred"
	"github.com/ferrypull/ferry/internal/webhook/podpullsecret"
)

// CloudMinter is the production Minter: internal/cloudcred identities and the internal/acr
// token cache (shared with the pullsecret controller, so equal identities share tokens).
type CloudMinter struct {
	Resolver *cloudcred.Resolver
	Cache    *acr.Cache
	// Base returns the cluster identity request for inst, as configured for the helper. When
	// the Pod names a role chain, the chain replaces the request's own AssumeRoleARN.
	Base func(ctx context.Context, inst annotations.InstanceRef) (cloudcred.Request, error)
}

var _ Minter = (*CloudMinter)(nil)

// Mint implements Minter.
func (m *CloudMinter) Mint(ctx context.Context, inst annotations.InstanceRef, chain annotations.RoleChain, minValidity time.Duration) (Token, error) {
	req, err := m.Base(ctx, inst)
	if err != nil {
		return Token{}, fmt.Errorf("cluster identity: %w", err)
	}
	if !chain.Empty() {
		req.AssumeRoleARN = ""
		req.AssumeRoleChain = chain.Roles()
	}
	id, err := m.Resolver.Resolve(ctx, req)
	if err != nil {
		return Token{}, fmt.Errorf("identity: %w", err)
	}
	tok, err := m.Cache.Token(ctx, id, acr.Instance{ID: inst.InstanceID, Region: inst.RegionID}, minValidity)
	if err != nil {
		return Token{}, classify(err, inst, id)
	}
	return Token{Username: tok.Username, Password: tok.Password.Reveal(), ExpiresAt: tok.Expiry, Domains: tok.Domains}, nil
}

// classify names the cause: an unknown instance wraps podpullsecret.ErrUnknownInstance, a
// missing permission names the RAM action and the identity (never a secret).
func classify(err error, inst annotations.InstanceRef, id *cloudcred.Identity) error {
	var ae *cloudcred.APIError
	if errors.As(err, &ae) && ae.Service == "cr" && (ae.Code == "INSTANCE_NOT_EXIST" || ae.HTTPStatus == http.StatusNotFound) {
		return fmt.Errorf("%w: %s not found in region %s: %w", podpullsecret.ErrUnknownInstance, inst.InstanceID, inst.RegionID, err)
	}
	if a := acr.MissingAction(err); a != "" {
		return fmt.Errorf("identity %s lacks RAM permission %s: %w", id.Key(), a, err)
	}
	return fmt.Errorf("token with identity %s: %w", id.Key(), err)
}
