// Package openapi serves the acr-emulator's Alibaba Cloud OpenAPI endpoint: Container Registry
// 2018-12-01 (RPC), Container Registry Personal Edition GET /tokens (2016-06-07, ROA) and STS
// 2015-04-01, with ACS3, RPC v1 and ROA v1 signatures verified and RAM checked for every call.
// One structured log line is written per call (action, principal, decision, reason).
//
//	svc := ram.New(w)
//	h := openapi.New(svc, openapi.WithLogger(log), openapi.WithTagLister(tags))
//	srv := httptest.NewTLSServer(h) // point the SDK's Endpoint at srv's host:port
package openapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/ferrypull/ferry/internal/emulator/eci"
	"github.com/ferrypull/ferry/internal/emulator/oidc"
	"github.com/ferrypull/ferry/internal/emulator/ram"
	"github.com/ferrypull/ferry/internal/emulator/signature"
	"github.com/ferrypull/ferry/internal/emulator/world"
)

// API versions served.
const (
	VersionCR         = "2018-12-01"
	VersionCRPersonal = "2016-06-07"
	VersionSTS        = "2015-04-01"
)

// Tag is one image tag, as ListRepoTag reports it.
type Tag struct {
	Tag    string
	Digest string
	// ImageID is the image configuration digest (sha256:…); empty for an index,
	// which then reports its manifest digest as its ImageId.
	ImageID string
	Size    int64
	Created time.Time
	Updated time.Time
}

// TagLister lists the tags of a repository one page at a time; the registry
// side implements it. It returns at most limit tags from the offset-th on, in
// a stable order, and how many tags the repository has.
type TagLister interface {
	ListTags(ctx context.Context, inst *world.Instance, namespace, repo string, offset, limit int) (tags []Tag, total int, err error)
}

// Handler is the OpenAPI http.Handler.
type Handler struct {
	svc    *ram.Service
	w      *world.World
	log    *slog.Logger
	tags   TagLister
	sig    *signature.Verifier
	oidc   *oidc.Verifier
	region string
	domain func(string) string
	eci    *eci.Service
}

var _ http.Handler = (*Handler)(nil)

// Option configures a Handler.
type Option func(*Handler)

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(h *Handler) { h.log = l } }

// WithTagLister sets the source of ListRepoTag (default: no tags).
func WithTagLister(t TagLister) Option { return func(h *Handler) { h.tags = t } }

// WithSignatureVerifier replaces the freshness and nonce checker.
func WithSignatureVerifier(v *signature.Verifier) Option { return func(h *Handler) { h.sig = v } }

// WithOIDCVerifier replaces the OIDC token verifier (e.g. one with an apiserver HTTP client).
func WithOIDCVerifier(v *oidc.Verifier) Option { return func(h *Handler) { h.oidc = v } }

// WithDefaultRegion sets the region assumed when the Host does not name one
// (cr.<region>.aliyuncs.com); default cn-hangzhou. It selects the Personal Edition region.
func WithDefaultRegion(r string) Option { return func(h *Handler) { h.region = r } }

// WithDomainAdvertiser sets how a registry domain is reported in endpoint
// responses (ListInstanceEndpoint): f maps the instance's domain to the host
// name clients use, e.g. with the port of a local registry listener, so that
// pull-secret keys written from the response match image references. It is
// called for every response. Default: the domain itself.
func WithDomainAdvertiser(f func(domain string) string) Option {
	return func(h *Handler) { h.domain = f }
}

// New returns the OpenAPI handler over svc.
func New(svc *ram.Service, opts ...Option) *Handler {
	h := &Handler{svc: svc, w: svc.World(), log: slog.New(slog.DiscardHandler), region: "cn-hangzhou",
		domain: func(d string) string { return d }}
	for _, o := range opts {
		o(h)
	}
	if h.sig == nil {
		h.sig = signature.NewVerifier()
		h.sig.Now = svc.Now
	}
	if h.oidc == nil {
		h.oidc = oidc.NewVerifier(oidc.WithClock(svc.Now))
	}
	return h
}

// apiError is an error response.
type apiError struct {
	status  int
	code    string
	message string
	denied  *ram.DeniedError
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

func newErr(status int, code, format string, args ...any) *apiError {
	return &apiError{status: status, code: code, message: fmt.Sprintf(format, args...)}
}

// call is one request in flight.
type call struct {
	r         *http.Request
	q         *signature.Request
	p         *ram.Principal
	requestID string
	action    string
	product   string
	source    netip.Addr
	secure    bool
}

func (c *call) ctx(now time.Time) ram.Context { return ram.NewContext(c.source, c.secure, now) }

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c := &call{r: r, requestID: newRequestID(), secure: r.TLS != nil}
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		c.source, _ = netip.ParseAddr(host)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, signature.MaxBody+1))
	var resp any
	var aerr *apiError
	switch {
	case err != nil:
		aerr = newErr(http.StatusBadRequest, "InvalidParameter", "The request body cannot be read.")
	case len(body) > signature.MaxBody:
		aerr = newErr(http.StatusRequestEntityTooLarge, "InvalidParameter", "The request body is too large.")
	default:
		resp, aerr = h.serve(c, body)
	}
	h.finish(w, c, resp, aerr)
}

func (h *Handler) serve(c *call, body []byte) (any, *apiError) {
	q, err := signature.Parse(c.r, body)
	if err != nil {
		return nil, fromErr(err)
	}
	c.q = q
	c.action = q.Action
	personal := c.r.URL.Path == "/tokens"
	switch {
	case personal:
		c.product = "cr"
		if c.action == "" {
			c.action = "GetAuthorizationToken"
		}
	case q.Version == VersionSTS || (q.Version == "" && stsActions[q.Action]):
		c.product = "sts"
	case q.Version == VersionECI:
		c.product = "eci"
	case q.Version == VersionCR || q.Version == "":
		c.product = "cr"
	default:
		return nil, newErr(http.StatusBadRequest, "InvalidVersion", "Specified parameter Version %q is not valid.", q.Version)
	}
	if c.action == "" {
		return nil, newErr(http.StatusBadRequest, "MissingParameter", "The input parameter \"Action\" that is mandatory for processing this request is not supplied.")
	}
	if q.Scheme == signature.Anonymous {
		if !(c.product == "sts" && c.action == "AssumeRoleWithOIDC") {
			return nil, newErr(http.StatusBadRequest, "MissingAccessKeyId", "AccessKeyId is mandatory for this action.")
		}
		if err := h.sig.Check(q); err != nil {
			return nil, fromErr(err)
		}
		return h.assumeRoleWithOIDC(c)
	}
	secret, p, err := h.svc.ResolveAccessKey(q.AccessKeyID, q.SecurityToken)
	if err != nil {
		return nil, fromErr(err)
	}
	if err := q.Verify(secret); err != nil {
		return nil, fromErr(err)
	}
	if err := h.sig.Check(q); err != nil {
		return nil, fromErr(err)
	}
	c.p = p
	if personal {
		return h.personalToken(c)
	}
	if c.product == "sts" {
		switch c.action {
		case "AssumeRole":
			return h.assumeRole(c)
		case "GetCallerIdentity":
			return h.getCallerIdentity(c)
		case "AssumeRoleWithOIDC":
			return h.assumeRoleWithOIDC(c)
		}
	} else if c.product == "eci" {
		if fn, ok := eciActions[c.action]; ok {
			return fn(h, c)
		}
	} else if fn, ok := crActions[c.action]; ok {
		return fn(h, c)
	}
	return nil, newErr(http.StatusNotFound, "InvalidAction.NotFound", "Specified api %s is not found, please check your url and method.", c.action)
}

var stsActions = map[string]bool{"AssumeRole": true, "AssumeRoleWithOIDC": true, "GetCallerIdentity": true}

func fromErr(err error) *apiError {
	var se *signature.Error
	var re *ram.Error
	var de *ram.DeniedError
	switch {
	case errors.As(err, &se):
		return &apiError{status: se.HTTPStatus, code: se.Code, message: se.Message}
	case errors.As(err, &re):
		return &apiError{status: re.HTTPStatus, code: re.Code, message: re.Message}
	case errors.As(err, &de):
		return &apiError{status: http.StatusForbidden, code: "NoPermission", message: "You are not authorized to do this action. You should be authorized by RAM.", denied: de}
	}
	return &apiError{status: http.StatusInternalServerError, code: "SystemError", message: "Unknown error."}
}

// authorize runs a RAM check; CR denials use the CR code NoPrivilege.
func (h *Handler) authorize(c *call, action, resource string) *apiError {
	err := h.svc.Authorize(c.p, action, resource, c.ctx(h.svc.Now()))
	if err == nil {
		return nil
	}
	ae := fromErr(err)
	if c.product == "cr" && ae.denied != nil {
		ae.code, ae.message = "NoPrivilege", "Access denied for this user."
	}
	return ae
}

func (h *Handler) finish(w http.ResponseWriter, c *call, resp any, aerr *apiError) {
	principal := "anonymous"
	if c.p != nil {
		principal = c.p.ARN()
	}
	attrs := []slog.Attr{
		slog.String("requestId", c.requestID), slog.String("product", c.product), slog.String("action", c.action),
		slog.String("principal", principal), slog.String("source", c.source.String()),
	}
	if c.q != nil {
		attrs = append(attrs, slog.String("scheme", string(c.q.Scheme)))
	}
	if aerr == nil {
		attrs = append(attrs, slog.String("decision", "allow"), slog.Int("status", http.StatusOK))
		h.log.LogAttrs(c.r.Context(), slog.LevelInfo, "openapi call", attrs...)
		writeJSON(w, http.StatusOK, resp)
		return
	}
	reason := aerr.code + ": " + firstLine(aerr.message)
	if aerr.denied != nil {
		reason = aerr.code + ": " + aerr.denied.Reason + " (" + aerr.denied.Action + " on " + aerr.denied.Resource + ")"
	}
	attrs = append(attrs, slog.String("decision", "deny"), slog.Int("status", aerr.status), slog.String("reason", reason))
	h.log.LogAttrs(c.r.Context(), slog.LevelInfo, "openapi call", attrs...)
	if c.r.URL.Path == "/tokens" {
		writeJSON(w, aerr.status, map[string]any{"code": aerr.code, "message": aerr.message, "requestId": c.requestID})
		return
	}
	body := map[string]any{
		"RequestId": c.requestID, "HostId": c.r.Host, "Code": aerr.code, "Message": aerr.message,
		"Recommend": "https://api.aliyun.com/troubleshoot?q=" + aerr.code + "&product=" + productName(c.product),
	}
	if d := aerr.denied; d != nil {
		typ := "ImplicitDeny"
		if d.Explicit {
			typ = "ExplicitDeny"
		}
		body["AccessDeniedDetail"] = map[string]any{
			"AuthAction": d.Action, "AuthResource": d.Resource, "AuthPrincipalDisplayName": d.Principal,
			"AuthPrincipalType": c.p.IdentityType(), "AuthPrincipalOwnerId": c.p.Account.UID,
			"NoPermissionType": typ, "PolicyType": "AccountLevelIdentityBasedPolicy",
		}
	}
	writeJSON(w, aerr.status, body)
}

func productName(p string) string {
	switch p {
	case "sts":
		return "Sts"
	case "eci":
		return "Eci"
	}
	return "cr"
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + "…"
	}
	return s
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"Code":"SystemError","Message":"Unknown error."}`)
	}
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func newRequestID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	s := strings.ToUpper(hex.EncodeToString(b))
	return s[0:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:32]
}
