package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferrypull/ferry/internal/imagesync/config"
	"github.com/ferrypull/ferry/internal/imagesync/plan"
	"github.com/ferrypull/ferry/internal/registry"
)

// harborContract is a CONTRACT SERVER for Harbor's v2.0 API (there is no Harbor here), built from
// Harbor's published API: in front of a real registry (distribution/v3) it refuses /v2/_catalog to
// everybody (401, as Harbor does for robot accounts) and serves GET
// /api/v2.0/projects/{project}/repositories?page=&page_size= (Basic auth, JSON array of {"name":
// "project/repo"}, X-Total-Count, Link rel="next") from the repositories it is given;
// every other /v2/ request is proxied to the registry.
type harborContract struct {
	*httptest.Server
	apiCalls atomic.Int32
}

func startHarborContract(t *testing.T, backing, user, pass string, repos []string) *harborContract {
	t.Helper()
	target, _ := url.Parse("http://" + backing)
	proxy := httputil.NewSingleHostReverseProxy(target)
	h := &harborContract{}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/v2/_catalog":
			w.Header().Set("WWW-Authenticate", `Basic realm="harbor"`)
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"unauthorized to list catalog"}]}`, http.StatusUnauthorized)
		case strings.HasPrefix(r.URL.Path, "/api/v2.0/projects/"):
			h.apiCalls.Add(1)
			if u, p, ok := r.BasicAuth(); !ok || u != user || p != pass {
				http.Error(w, `{"errors":[{"code":"UNAUTHORIZED"}]}`, http.StatusUnauthorized)
				return
			}
			project, ok := strings.CutSuffix(strings.TrimPrefix(r.URL.Path, "/api/v2.0/projects/"), "/repositories")
			if !ok {
				http.NotFound(w, r)
				return
			}
			var names []string
			for _, repo := range repos {
				if strings.HasPrefix(repo, project+"/") {
					names = append(names, repo)
				}
			}
			page, _ := strconv.Atoi(r.URL.Query().Get("page"))
			size, _ := strconv.Atoi(r.URL.Query().Get("page_size"))
			page, size = max(page, 1), min(max(size, 1), 2) // two per page: pagination is exercised
			from, to := min((page-1)*size, len(names)), min(page*size, len(names))
			out := []map[string]any{}
			for _, n := range names[from:to] {
				out = append(out, map[string]any{"name": n, "artifact_count": 1})
			}
			w.Header().Set("X-Total-Count", strconv.Itoa(len(names)))
			if to < len(names) {
				w.Header().Set("Link", fmt.Sprintf(`</api/v2.0/projects/%s/repositories?page=%d&page_size=%d>; rel="next"`, project, page+1, size))
			}
			_ = json.NewEncoder(w).Encode(out)
		default:
			proxy.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(h.Close)
	return h
}

// TestHarborRobotListsProjectThroughAPI: a namespace rule against Harbor with a robot account that
// gets 401 on /v2/_catalog lists the project through Harbor's API (paginated) and copies it.
func TestHarborRobotListsProjectThroughAPI(t *testing.T) {
	f := corpus(t)
	const user, pass = "robot$ci", "robot-secret"
	h := startHarborContract(t, f.src.Addr, user, pass, []string{"proj/app", "proj/list", "proj/oci", "proj/raw", "other/x"})
	host := strings.TrimPrefix(h.URL, "http://")
	ht, err := registry.NewHostTransport(nil)
	if err != nil {
		t.Fatal(err)
	}
	e, c := newEngine(t, ht, Options{})
	e.o.Keychain = registry.Keychain(func(_ context.Context, reg string) (authn.Authenticator, bool, error) {
		if reg == host {
			return &authn.Basic{Username: user, Password: pass}, true, nil
		}
		return nil, false, nil
	}, nil)
	r, err := config.ParseRule(config.Entry{Source: host + "/proj/*", Destination: f.dst.Addr + "/mirror"}, config.Defaults{})
	if err != nil {
		t.Fatal(err)
	}
	res := plan.Expand(t.Context(), []config.Rule{r}, e, 4)
	if len(res.Failed) > 0 {
		t.Fatalf("expand: %v", res.Failed[0].Err)
	}
	if n := h.apiCalls.Load(); n < 2 {
		t.Errorf("%d Harbor API calls, want the pages of the project (>= 2)", n)
	}
	if n := c.count(host, "GET", ""); n == 0 {
		t.Error("no registry request counted")
	}
	results := e.Run(t.Context(), res.Tasks, RunOptions{Jobs: 4})
	for _, rr := range results {
		if rr.Status == Failed {
			t.Errorf("%s: %v", rr.Task.Source, rr.Err)
		}
	}
	for src, d := range f.digests {
		ref, _ := name.ParseReference(f.dst.Addr+"/mirror/"+strings.TrimPrefix(src, "proj/"), name.Insecure)
		got, err := remote.Head(ref, remote.WithContext(t.Context()))
		if err != nil || got.Digest != d {
			t.Errorf("mirror of %s: %v %v, want %s", src, got, err, d)
		}
	}
	var repos []string
	for _, tk := range res.Tasks {
		if !slices.Contains(repos, tk.SrcRepo) {
			repos = append(repos, tk.SrcRepo)
		}
	}
	if len(repos) != 4 { // proj/app, proj/list, proj/oci, proj/raw
		t.Errorf("repositories %v, want the project's 4", repos)
	}
}
