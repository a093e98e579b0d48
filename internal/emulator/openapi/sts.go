package openapi

import (
	"errors"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/ferrypull/ferry/internal/emulator/oidc"
	"github.com/ferrypull/ferry/internal/emulator/ram"
)

// stsTime is the only Expiration layout credentials-go accepts.
func stsTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }

type credentialsJSON struct {
	AccessKeyId     string `json:"AccessKeyId"`
	AccessKeySecret string `json:"AccessKeySecret"`
	SecurityToken   string `json:"SecurityToken"`
	Expiration      string `json:"Expiration"`
}

type assumedRoleUserJSON struct {
	Arn           string `json:"Arn"`
	AssumedRoleId string `json:"AssumedRoleId"`
}

type assumeRoleResponse struct {
	RequestId       string              `json:"RequestId"`
	AssumedRoleUser assumedRoleUserJSON `json:"AssumedRoleUser"`
	Credentials     credentialsJSON     `json:"Credentials"`
	SourceIdentity  string              `json:"SourceIdentity,omitempty"`
}

func assumeInput(c *call) (ram.AssumeRoleInput, *apiError) {
	in := ram.AssumeRoleInput{
		RoleArn: c.q.Param("RoleArn"), RoleSessionName: c.q.Param("RoleSessionName"), Policy: c.q.Param("Policy"),
		ExternalID: c.q.Param("ExternalId"), SourceIdentity: c.q.Param("SourceIdentity"),
	}
	if in.RoleArn == "" {
		return in, missing("RoleArn")
	}
	if in.RoleSessionName == "" {
		return in, missing("RoleSessionName")
	}
	if d := c.q.Param("DurationSeconds"); d != "" {
		n, err := strconv.Atoi(d)
		if err != nil {
			return in, newErr(http.StatusBadRequest, ram.ErrDuration.Code, "The parameter DurationSeconds %q is not an integer.", d)
		}
		in.DurationSeconds = n
	}
	return in, nil
}

func sessionResponse(c *call, creds ram.Credentials, p *ram.Principal) assumeRoleResponse {
	return assumeRoleResponse{
		RequestId:       c.requestID,
		AssumedRoleUser: assumedRoleUserJSON{Arn: p.ARN(), AssumedRoleId: p.PrincipalID()},
		Credentials: credentialsJSON{AccessKeyId: creds.AccessKeyID, AccessKeySecret: creds.AccessKeySecret,
			SecurityToken: creds.SecurityToken, Expiration: stsTime(creds.Expiration)},
		SourceIdentity: p.SourceIdentity,
	}
}

// AssumeRole.
func (h *Handler) assumeRole(c *call) (any, *apiError) {
	in, aerr := assumeInput(c)
	if aerr != nil {
		return nil, aerr
	}
	creds, p, err := h.svc.AssumeRole(c.p, in, c.ctx(h.svc.Now()))
	if err != nil {
		return nil, fromErr(err)
	}
	h.log.Info("sts session started", "requestId", c.requestID, "session", p.ARN(), "caller", c.p.ARN(), "expiration", stsTime(creds.Expiration))
	return sessionResponse(c, creds, p), nil
}

var providerARNRE = regexp.MustCompile(`^acs:ram::[0-9]{16}:oidc-provider/[A-Za-z0-9._@-]+$`)

// AssumeRoleWithOIDC (anonymous).
func (h *Handler) assumeRoleWithOIDC(c *call) (any, *apiError) {
	c.product, c.action = "sts", "AssumeRoleWithOIDC"
	provARN := c.q.Param("OIDCProviderArn")
	if provARN == "" {
		return nil, missing("OIDCProviderArn")
	}
	in, aerr := assumeInput(c)
	if aerr != nil {
		return nil, aerr
	}
	token := c.q.Param("OIDCToken")
	if token == "" {
		return nil, newErr(http.StatusUnauthorized, "AuthenticationFail.OIDCToken.Invalid", "The OIDCToken can not empty.")
	}
	if !providerARNRE.MatchString(provARN) {
		return nil, newErr(http.StatusBadRequest, "InvalidParameter.OIDCProviderArn", "The parameter OIDCProviderArn is wrongly formed.")
	}
	prov, found := h.w.OIDCProviderByARN(provARN)
	if !found {
		return nil, fromErr(ram.ErrOIDCProvider)
	}
	claims, err := h.oidc.Verify(c.r.Context(), prov, token)
	if err != nil {
		ae := oidcError(err)
		if errors.Is(err, oidc.ErrJWKS) {
			h.log.Warn("oidc provider keys unavailable", "requestId", c.requestID, "provider", provARN, "error", err)
		}
		return nil, ae
	}
	creds, p, err := h.svc.AssumeRoleWithOIDC(prov, ram.OIDCIdentity{Issuer: claims.Issuer, Audience: claims.Audience, Subject: claims.Subject}, in)
	if err != nil {
		return nil, fromErr(err)
	}
	h.log.Info("sts session started", "requestId", c.requestID, "session", p.ARN(), "caller", "oidc:"+claims.Subject, "expiration", stsTime(creds.Expiration))
	type tokenInfo struct {
		Subject          string `json:"Subject"`
		Issuer           string `json:"Issuer"`
		ClientIds        string `json:"ClientIds"`
		IssuanceTime     string `json:"IssuanceTime"`
		ExpirationTime   string `json:"ExpirationTime"`
		VerificationInfo string `json:"VerificationInfo"`
	}
	issued := claims.IssuedAt
	if issued.IsZero() {
		issued = h.svc.Now()
	}
	return struct {
		assumeRoleResponse
		OIDCTokenInfo tokenInfo `json:"OIDCTokenInfo"`
	}{sessionResponse(c, creds, p), tokenInfo{claims.Subject, claims.Issuer, strings.Join(claims.Audience, ","),
		stsTime(issued), stsTime(claims.Expiry), "Success"}}, nil
}

func oidcError(err error) *apiError {
	switch {
	case errors.Is(err, oidc.ErrExpired):
		return newErr(http.StatusUnauthorized, "AuthenticationFail.OIDCToken.Expired", "This JsonWebToken is expired.")
	case errors.Is(err, oidc.ErrInvalidSignature):
		return newErr(http.StatusUnauthorized, "AuthenticationFail.OIDCToken.InvalidSignature", "OIDC token validate failed: invalid signature.")
	case errors.Is(err, oidc.ErrAudience):
		return newErr(http.StatusUnauthorized, "AuthenticationFail.OIDCToken.AudienceNotMatch", "Invalid audience.")
	case errors.Is(err, oidc.ErrIssuer):
		return newErr(http.StatusUnauthorized, "AuthenticationFail.OIDCToken.Invalid", "Invalid issuer.")
	case errors.Is(err, oidc.ErrJWKS):
		return newErr(http.StatusUnauthorized, "AuthenticationFail.OIDCToken.HttpsUrlInvalid", "The keys of the OIDC provider cannot be fetched.")
	}
	return newErr(http.StatusUnauthorized, "AuthenticationFail.OIDCToken.Invalid", "The number of Jwt field should be divided into 3 parts with '.' or the token is malformed.")
}

// GetCallerIdentity.
func (h *Handler) getCallerIdentity(c *call) (any, *apiError) {
	out := struct {
		RequestId    string `json:"RequestId"`
		AccountId    string `json:"AccountId"`
		Arn          string `json:"Arn"`
		IdentityType string `json:"IdentityType"`
		PrincipalId  string `json:"PrincipalId"`
		UserId       string `json:"UserId,omitempty"`
		RoleId       string `json:"RoleId,omitempty"`
	}{RequestId: c.requestID, AccountId: c.p.Account.UID, Arn: c.p.ARN(), IdentityType: c.p.IdentityType(), PrincipalId: c.p.PrincipalID()}
	switch c.p.Kind {
	case ram.KindUser:
		out.UserId = c.p.User.ID()
	case ram.KindAssumedRole:
		out.RoleId = c.p.Role.ID()
	}
	return out, nil
}
