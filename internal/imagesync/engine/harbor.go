package engine

// Registry-native listing for namespace rules when the catalog is refused: Harbor's project API.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// harborPageSize is the page size asked of Harbor's repository list (its maximum is 100).
const harborPageSize = 100

// maxHarborPage caps one page of Harbor's JSON (100 repositories are a few KiB).
const maxHarborPage = 16 << 20

// Repositories lists the repositories of registry reg under namespace ns ("" = all): the /v2/_catalog
// when the registry allows it, else — when it answers 401 or 403, as Harbor does for robot accounts,
// which cannot list the catalog — Harbor's project API (GET /api/v2.0/projects/{project}/repositories,
// paginated) with the same credentials. The names are filtered to ns by the caller (plan).
func (e *Engine) Repositories(ctx context.Context, reg, ns string) ([]string, error) {
	repos, err := e.Catalog(ctx, reg)
	var te *transport.Error
	if err == nil || ns == "" || !errors.As(err, &te) || te.StatusCode != http.StatusUnauthorized && te.StatusCode != http.StatusForbidden {
		return repos, err
	}
	project, _, _ := strings.Cut(ns, "/")
	hr, herr := e.harborRepositories(ctx, reg, project)
	if herr != nil {
		return nil, fmt.Errorf("%w; and Harbor's project API: %w", err, herr)
	}
	return hr, nil
}

// harborRepositories reads every page of Harbor's repository list of project.
func (e *Engine) harborRepositories(ctx context.Context, reg, project string) ([]string, error) {
	r, err := name.NewRegistry(reg, e.nameOpts(reg)...)
	if err != nil {
		return nil, err
	}
	auth, err := e.o.Keychain.Resolve(r)
	if err != nil {
		return nil, err
	}
	cfg, err := authn.Authorization(ctx, auth)
	if err != nil {
		return nil, err
	}
	client := &http.Client{Transport: e.o.Transport}
	var out []string
	for page := 1; ; page++ {
		if page > MaxListPages {
			return nil, fmt.Errorf("project %s has more than %d pages of repositories; refusing to read further", project, MaxListPages)
		}
		u := fmt.Sprintf("%s://%s/api/v2.0/projects/%s/repositories?page=%d&page_size=%d", r.Scheme(), r.RegistryStr(), url.PathEscape(project), page, harborPageSize)
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Accept", "application/json")
		if cfg.Username != "" || cfg.Password != "" {
			req.SetBasicAuth(cfg.Username, cfg.Password)
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxHarborPage+1))
		_ = resp.Body.Close()
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("GET /api/v2.0/projects/%s/repositories: %s", project, resp.Status)
		}
		if len(body) > maxHarborPage {
			return nil, fmt.Errorf("GET /api/v2.0/projects/%s/repositories: a page over %d bytes", project, maxHarborPage)
		}
		var repos []struct {
			Name string `json:"name"`
		}
		if err := json.Unmarshal(body, &repos); err != nil {
			return nil, fmt.Errorf("GET /api/v2.0/projects/%s/repositories: %w", project, err)
		}
		for _, rp := range repos {
			out = append(out, rp.Name) // "project/repository", as the catalog names it
		}
		if len(out) > MaxListEntries {
			return nil, fmt.Errorf("project %s has more than %d repositories; refusing to read further", project, MaxListEntries)
		}
		if len(repos) < harborPageSize && !strings.Contains(resp.Header.Get("Link"), `rel="next"`) {
			return out, nil
		}
		if len(repos) == 0 {
			return out, nil // a next link without entries: stop rather than loop
		}
	}
}
