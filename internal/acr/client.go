// Package acr mints Alibaba Cloud Container Registry tokens with the official SDKs:
// Enterprise Edition GetAuthorizationToken (cr-20181201), Personal Edition GET /tokens
// (generic CallApi), and registry domains from ListInstanceEndpoint. A [Cache] keeps one
// token per (identity, instance), shared by every caller, refreshed before expiry.
//
//	c, _ := acr.NewClient(acr.ClientOptions{Endpoint: "127.0.0.1:8080", Protocol: "http"})
//	cache := acr.NewCache(c, acr.CacheOptions{})
//	tok, err := cache.Token(ctx, identity, acr.Instance{ID: "cri-abc", Region: "cn-hangzhou"}, 15*time.Minute)
package acr

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	cr "github.com/alibabacloud-go/cr-20181201/v2/client"
	openapi "github.com/alibabacloud-go/darabonba-openapi/v2/client"
	"github.com/alibabacloud-go/tea/dara"
	"github.com/aliyun/credentials-go/credentials"

	"github.com/ferrypull/ferry/internal/acrconfig"
	"github.com/ferrypull/ferry/internal/cloudcred"
	"github.com/ferrypull/ferry/internal/redact"
)

// APIError is an error answer of the Container Registry (or STS) API.
type APIError = cloudcred.APIError

// MissingAction names the RAM action a permission error is about, or "".
func MissingAction(err error) string { return cloudcred.MissingAction(err) }

// Instance is one registry to mint tokens for.
type Instance struct {
	// ID is the Enterprise Edition instance id; empty for Personal Edition.
	ID     string
	Region string
	// Domains, if set, are used as is; otherwise they are discovered.
	Domains []string
}

// Personal reports whether the instance is a Personal Edition registry.
func (i Instance) Personal() bool { return i.ID == "" }

// Key is "<region>/<id>" or "<region>/personal".
func (i Instance) Key() string {
	if i.Personal() {
		return i.Region + "/personal"
	}
	return i.Region + "/" + i.ID
}

// InstanceFor converts a configured acr-registry-info entry.
func InstanceFor(e acrconfig.Instance) Instance {
	return Instance{ID: e.InstanceID, Region: e.RegionID, Domains: slices.Clone(e.Domains)}
}

// Token is a temporary registry credential.
type Token struct {
	Username string
	Password redact.Secret
	// Expiry is when the registry stops accepting Password.
	Expiry time.Time
	// Domains are the registry hosts the credential is for.
	Domains []string
	// IssuedAt is when the token was obtained.
	IssuedAt time.Time
	// RetryAt is set when the last refresh failed and this (still valid) token was served
	// instead: the cache retries at RetryAt. Zero for a fresh token.
	RetryAt time.Time
}

// String never prints the password.
func (t Token) String() string {
	return fmt.Sprintf("Token{user=%s expiry=%s domains=%s}", t.Username, t.Expiry.UTC().Format(time.RFC3339), strings.Join(t.Domains, ","))
}

// ClientOptions say where the Container Registry API is. The zero value talks to
// cr.<region>.aliyuncs.com over HTTPS.
type ClientOptions struct {
	// Endpoint overrides the API host[:port] for every region. A URL
	// ("http://127.0.0.1:8080") is accepted too; its scheme sets Protocol.
	Endpoint string
	// DialAddr, if set, makes every connection go to this host:port while the Host header
	// (and signature) keep the real endpoint name — how one emulator serves many regions.
	DialAddr string
	// Protocol is "https" (default) or "http".
	Protocol string
	// VPC selects cr-vpc.<region>.aliyuncs.com.
	VPC bool
	// HTTPClient carries the CA bundle and timeouts (cloudcred.NewHTTPClient); nil for the
	// default.
	HTTPClient *http.Client
}

// Client calls the Container Registry API. Safe for concurrent use.
type Client struct {
	opts ClientOptions
	http *http.Client
}

// NewClient validates opts.
func NewClient(opts ClientOptions) (*Client, error) {
	var err error
	if opts.Endpoint, opts.Protocol, err = cloudcred.ResolveEndpoint(opts.Endpoint, opts.Protocol); err != nil {
		return nil, fmt.Errorf("acr: %w", err)
	}
	hc := opts.HTTPClient
	if hc == nil {
		var err error
		if hc, err = cloudcred.NewHTTPClient(""); err != nil {
			return nil, err
		}
	}
	if opts.DialAddr != "" {
		if _, _, err := net.SplitHostPort(opts.DialAddr); err != nil {
			return nil, fmt.Errorf("acr: dial address %q: %w", opts.DialAddr, err)
		}
		tr, ok := hc.Transport.(*http.Transport)
		if !ok || tr == nil {
			tr = http.DefaultTransport.(*http.Transport)
		}
		tr = tr.Clone()
		d := &net.Dialer{Timeout: 10 * time.Second}
		addr := opts.DialAddr
		tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		}
		tr.Proxy = nil
		hc = &http.Client{Transport: tr, Timeout: hc.Timeout}
	}
	return &Client{opts: opts, http: hc}, nil
}

// Endpoint returns the API host for a region: the override, or cr[-vpc].<region>.aliyuncs.com.
func (c *Client) Endpoint(region string) string {
	if c.opts.Endpoint != "" {
		return c.opts.Endpoint
	}
	if c.opts.VPC {
		return "cr-vpc." + region + ".aliyuncs.com"
	}
	return "cr." + region + ".aliyuncs.com"
}

// ctxHTTP binds one call's context to the SDK's requests (the SDK itself takes none).
type ctxHTTP struct {
	ctx context.Context
	c   *http.Client
}

func (d ctxHTTP) Call(req *http.Request, _ *http.Transport) (*http.Response, error) {
	return d.c.Do(req.WithContext(d.ctx))
}

func (c *Client) config(ctx context.Context, cred credentials.Credential, region string) *openapi.Config {
	return &openapi.Config{
		Credential: cred,
		RegionId:   dara.String(region),
		Endpoint:   dara.String(c.Endpoint(region)),
		Protocol:   dara.String(c.opts.Protocol),
		HttpClient: ctxHTTP{ctx: ctx, c: c.http},
	}
}

// AuthorizationToken mints a temporary registry password for inst (no domains).
func (c *Client) AuthorizationToken(ctx context.Context, cred credentials.Credential, inst Instance) (Token, error) {
	if inst.Region == "" {
		return Token{}, fmt.Errorf("acr: instance %q has no region", inst.ID)
	}
	if inst.Personal() {
		return c.personalToken(ctx, cred, inst)
	}
	client, err := cr.NewClient(c.config(ctx, cred, inst.Region))
	if err != nil {
		return Token{}, fmt.Errorf("acr: client for %s: %w", inst.Region, err)
	}
	res, err := client.GetAuthorizationTokenWithOptions(&cr.GetAuthorizationTokenRequest{InstanceId: dara.String(inst.ID)}, &dara.RuntimeOptions{})
	if err != nil {
		return Token{}, fmt.Errorf("acr: token for %s: %w", inst.Key(), c.apiErr("GetAuthorizationToken", err, cred))
	}
	b := res.Body
	if b == nil {
		return Token{}, fmt.Errorf("acr: token for %s: empty response", inst.Key())
	}
	if !dara.BoolValue(b.IsSuccess) || (b.Code != nil && !strings.EqualFold(dara.StringValue(b.Code), "success")) {
		return Token{}, fmt.Errorf("acr: token for %s: %w", inst.Key(), &APIError{Service: "cr", Action: "GetAuthorizationToken",
			HTTPStatus: int(dara.Int32Value(res.StatusCode)), Code: dara.StringValue(b.Code), Message: "IsSuccess is false", RequestID: dara.StringValue(b.RequestId)})
	}
	return checkToken(inst, dara.StringValue(b.TempUsername), dara.StringValue(b.AuthorizationToken), dara.Int64Value(b.ExpireTime))
}

func (c *Client) personalToken(ctx context.Context, cred credentials.Credential, inst Instance) (Token, error) {
	client, err := openapi.NewClient(c.config(ctx, cred, inst.Region))
	if err != nil {
		return Token{}, fmt.Errorf("acr: client for %s: %w", inst.Region, err)
	}
	params := &openapi.Params{
		Action: dara.String("GetAuthorizationToken"), Version: dara.String("2016-06-07"),
		Protocol: dara.String(strings.ToUpper(c.opts.Protocol)), Pathname: dara.String("/tokens"), Method: dara.String("GET"),
		AuthType: dara.String("AK"), Style: dara.String("ROA"), ReqBodyType: dara.String("json"), BodyType: dara.String("json"),
	}
	res, err := client.CallApi(params, &openapi.OpenApiRequest{}, &dara.RuntimeOptions{})
	if err != nil {
		return Token{}, fmt.Errorf("acr: Personal Edition token for %s: %w", inst.Region, c.apiErr("GetAuthorizationToken", err, cred))
	}
	body, _ := res["body"].(map[string]any)
	data, _ := body["data"].(map[string]any)
	if data == nil {
		ae := &APIError{Service: "cr", Action: "GetAuthorizationToken", Message: "response has no data"}
		if body != nil {
			ae.Code, _ = body["code"].(string)
			ae.RequestID, _ = body["requestId"].(string)
			if m, ok := body["message"].(string); ok {
				ae.Message = m
			}
		}
		return Token{}, fmt.Errorf("acr: Personal Edition token for %s: %w", inst.Region, ae)
	}
	user, _ := data["tempUserName"].(string)
	pass, _ := data["authorizationToken"].(string)
	return checkToken(inst, user, pass, jsonInt64(data["expireDate"]))
}

func jsonInt64(v any) int64 {
	switch t := v.(type) {
	case float64:
		return int64(t)
	case int64:
		return t
	case int:
		return int64(t)
	case string:
		n, _ := strconv.ParseInt(t, 10, 64)
		return n
	case interface{ Int64() (int64, error) }:
		n, _ := t.Int64()
		return n
	}
	return 0
}

func checkToken(inst Instance, user, pass string, expireMillis int64) (Token, error) {
	if user == "" || pass == "" {
		return Token{}, fmt.Errorf("acr: token for %s: response has no username or password", inst.Key())
	}
	if expireMillis <= 0 {
		return Token{}, fmt.Errorf("acr: token for %s: response has no expiry", inst.Key())
	}
	return Token{Username: user, Password: redact.Secret(pass), Expiry: time.UnixMilli(expireMillis)}, nil
}

// Domains lists the registry hosts of inst: the configured ones; for Enterprise Edition
// every domain of every enabled Registry endpoint (internet and VPC); for Personal Edition
// registry.<region>.aliyuncs.com and registry-vpc.<region>.aliyuncs.com.
func (c *Client) Domains(ctx context.Context, cred credentials.Credential, inst Instance) ([]string, error) {
	if len(inst.Domains) > 0 {
		return slices.Clone(inst.Domains), nil
	}
	if inst.Personal() {
		return PersonalDomains(inst.Region), nil
	}
	client, err := cr.NewClient(c.config(ctx, cred, inst.Region))
	if err != nil {
		return nil, fmt.Errorf("acr: client for %s: %w", inst.Region, err)
	}
	res, err := client.ListInstanceEndpointWithOptions(&cr.ListInstanceEndpointRequest{
		InstanceId: dara.String(inst.ID), ModuleName: dara.String("Registry")}, &dara.RuntimeOptions{})
	if err != nil {
		return nil, fmt.Errorf("acr: endpoints of %s: %w", inst.Key(), c.apiErr("ListInstanceEndpoint", err, cred))
	}
	b := res.Body
	if b == nil || !dara.BoolValue(b.IsSuccess) {
		ae := &APIError{Service: "cr", Action: "ListInstanceEndpoint", HTTPStatus: int(dara.Int32Value(res.StatusCode)), Message: "IsSuccess is false"}
		if b != nil {
			ae.Code, ae.RequestID = dara.StringValue(b.Code), dara.StringValue(b.RequestId)
		}
		return nil, fmt.Errorf("acr: endpoints of %s: %w", inst.Key(), ae)
	}
	var out []string
	for _, ep := range b.Endpoints {
		if ep == nil || !dara.BoolValue(ep.Enable) {
			continue
		}
		for _, d := range ep.Domains {
			if d == nil {
				continue
			}
			host := strings.ToLower(strings.TrimSpace(dara.StringValue(d.Domain)))
			if host != "" && !slices.Contains(out, host) {
				out = append(out, host)
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("acr: endpoints of %s: no enabled Registry endpoint has a domain", inst.Key())
	}
	return out, nil
}

// ErrInstanceNotFound means ListInstance shows no Enterprise Edition instance of that name
// to the caller.
var ErrInstanceNotFound = errors.New("acr: no such instance")

// InstanceIDByName finds the ID of the Enterprise Edition instance called name in region
// with ListInstance (RAM action cr:ListInstance), as a registry domain
// <name>-registry.<region>.cr.aliyuncs.com names the instance but not its ID.
func (c *Client) InstanceIDByName(ctx context.Context, cred credentials.Credential, region, name string) (string, error) {
	if region == "" || name == "" {
		return "", fmt.Errorf("acr: instance lookup needs a region and a name (got %q, %q)", region, name)
	}
	client, err := cr.NewClient(c.config(ctx, cred, region))
	if err != nil {
		return "", fmt.Errorf("acr: client for %s: %w", region, err)
	}
	res, err := client.ListInstanceWithOptions(&cr.ListInstanceRequest{InstanceName: dara.String(name), PageSize: dara.Int32(100)}, &dara.RuntimeOptions{})
	if err != nil {
		return "", fmt.Errorf("acr: find instance %s in %s: %w", name, region, c.apiErr("ListInstance", err, cred))
	}
	b := res.Body
	if b == nil || !dara.BoolValue(b.IsSuccess) {
		ae := &APIError{Service: "cr", Action: "ListInstance", HTTPStatus: int(dara.Int32Value(res.StatusCode)), Message: "IsSuccess is false"}
		if b != nil {
			ae.Code, ae.RequestID = dara.StringValue(b.Code), dara.StringValue(b.RequestId)
		}
		return "", fmt.Errorf("acr: find instance %s in %s: %w", name, region, ae)
	}
	for _, in := range b.Instances {
		if in != nil && dara.StringValue(in.InstanceName) == name && (in.RegionId == nil || dara.StringValue(in.RegionId) == region) {
			return dara.StringValue(in.InstanceId), nil
		}
	}
	return "", fmt.Errorf("%w: %s in %s", ErrInstanceNotFound, name, region)
}

// PersonalDomains are the registry hosts of a region's Personal Edition.
func PersonalDomains(region string) []string {
	return []string{"registry." + region + ".aliyuncs.com", "registry-vpc." + region + ".aliyuncs.com"}
}

// apiErr converts an SDK error and scrubs the caller's secrets from its text.
func (c *Client) apiErr(action string, err error, cred credentials.Credential) error {
	ae := cloudcred.AsAPIError("cr", action, err)
	if cred == nil {
		return ae
	}
	if m, cerr := cred.GetCredential(); cerr == nil && m != nil {
		return redact.Error(ae, dara.StringValue(m.AccessKeySecret), dara.StringValue(m.SecurityToken))
	}
	return ae
}
