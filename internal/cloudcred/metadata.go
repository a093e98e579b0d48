package cloudcred

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// Metadata paths of the ECS instance metadata service.
const (
	imdsTokenPath = "/latest/api/token"
	imdsRolePath  = "/latest/meta-data/ram/security-credentials/"
	imdsTokenTTL  = "21600"
)

// metadataFetch reads the worker role's credentials: IMDSv2 (PUT a token, send it with
// each GET) first, tokenless IMDSv1 only if the token request fails and v1 is allowed.
func (r *Resolver) metadataFetch(ctx context.Context) (*session, error) {
	client := r.opts.HTTPClient
	if r.opts.MetadataProxy != "" {
		pu, err := url.Parse(r.opts.MetadataProxy)
		if err != nil {
			return nil, fmt.Errorf("worker role: metadata proxy %q: %w", r.opts.MetadataProxy, err)
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		if base, ok := client.Transport.(*http.Transport); ok {
			tr = base.Clone()
		}
		tr.Proxy = http.ProxyURL(pu)
		client = &http.Client{Transport: tr, Timeout: client.Timeout}
	}
	base := strings.TrimRight(r.opts.MetadataURL, "/")

	token, err := r.metadataToken(ctx, client, base)
	if err != nil && r.opts.DisableIMDSv1 {
		return nil, err
	}
	role := r.opts.MetadataRoleName
	if role == "" {
		body, err := metadataGet(ctx, client, base+imdsRolePath, token)
		if err != nil {
			return nil, fmt.Errorf("worker role: read the RAM role name: %w", err)
		}
		role = strings.TrimSpace(strings.SplitN(string(body), "\n", 2)[0])
		if role == "" {
			return nil, fmt.Errorf("worker role: the instance has no RAM role attached")
		}
	}
	body, err := metadataGet(ctx, client, base+imdsRolePath+url.PathEscape(role), token)
	if err != nil {
		return nil, fmt.Errorf("worker role %s: read credentials: %w", role, err)
	}
	var resp struct {
		Code            string
		AccessKeyId     string
		AccessKeySecret string
		SecurityToken   string
		Expiration      string
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		return nil, fmt.Errorf("worker role %s: credentials are not JSON", role)
	}
	if resp.Code != "Success" {
		return nil, fmt.Errorf("worker role %s: metadata answered Code %q", role, resp.Code)
	}
	s, err := newSession(resp.AccessKeyId, resp.AccessKeySecret, resp.SecurityToken, resp.Expiration)
	if err != nil {
		return nil, fmt.Errorf("worker role %s: %w", role, err)
	}
	return s, nil
}

func (r *Resolver) metadataToken(ctx context.Context, c *http.Client, base string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, base+imdsTokenPath, nil)
	if err != nil {
		return "", fmt.Errorf("worker role: metadata URL: %w", err)
	}
	req.Header.Set("X-aliyun-ecs-metadata-token-ttl-seconds", imdsTokenTTL)
	resp, err := c.Do(req)
	if err != nil {
		return "", fmt.Errorf("worker role: could not get an IMDSv2 session from the metadata service (%w)", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("worker role: the metadata service refused an IMDSv2 session: HTTP %d", resp.StatusCode)
	}
	return strings.TrimSpace(string(b)), nil
}

func metadataGet(ctx context.Context, c *http.Client, u, token string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("X-aliyun-ecs-metadata-token", token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: HTTP %d", strings.TrimPrefix(u, "http://"), resp.StatusCode)
	}
	return b, nil
}
