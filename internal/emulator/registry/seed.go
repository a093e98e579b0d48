package registry

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"time"

	"github.com/distribution/distribution/v3/registry/auth/token"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// SeedImage makes sure ns/repo:tag exists on a site: unless the tag is
// already there (a restart), it pushes a small generated linux image for the
// running architecture through the site's registry handler, and records the
// repository in the directory with the namespace's default type. It returns
// the manifest digest.
func (f *Front) SeedImage(ctx context.Context, siteID, ns, repo, tag string) (string, error) {
	s := f.lookupSite(siteID)
	if s == nil {
		return "", fmt.Errorf("seed %s/%s:%s: %w: %q", ns, repo, tag, ErrUnknownSite, siteID)
	}
	if _, _, ok := splitRepository(ns + "/" + repo); !ok {
		return "", fmt.Errorf("seed %s/%s:%s: repository name is not <namespace>/<repo>", ns, repo, tag)
	}
	if _, ok := f.dir.Repository(s.ID, ns, repo); !ok {
		nsInfo, ok := f.dir.Namespace(s.ID, ns)
		if !ok {
			return "", fmt.Errorf("seed %s/%s:%s on %s: namespace %q does not exist", ns, repo, tag, s.ID, ns)
		}
		if err := f.dir.CreateRepository(s.ID, ns, repo, nsInfo.DefaultPublic); err != nil {
			return "", fmt.Errorf("seed %s/%s:%s on %s: %w", ns, repo, tag, s.ID, err)
		}
	}
	raw, err := f.internalToken(s, ns+"/"+repo)
	if err != nil {
		return "", fmt.Errorf("seed %s/%s:%s: %w", ns, repo, tag, err)
	}
	// The reference host is only a label: the transport hands every request
	// to the site's handler in process.
	ref, err := name.NewTag("seed.invalid/"+ns+"/"+repo+":"+tag, name.Insecure)
	if err != nil {
		return "", fmt.Errorf("seed %s/%s:%s: %w", ns, repo, tag, err)
	}
	opts := []remote.Option{remote.WithContext(ctx), remote.WithTransport(&inProcess{h: s.app, bearer: raw})}
	if desc, err := remote.Head(ref, opts...); err == nil {
		return desc.Digest.String(), nil
	}
	img, err := SeedImageFor(ns + "/" + repo)
	if err != nil {
		return "", fmt.Errorf("seed %s/%s:%s: %w", ns, repo, tag, err)
	}
	if err := remote.Write(ref, img, opts...); err != nil {
		return "", fmt.Errorf("seed %s/%s:%s on %s: %w", ns, repo, tag, s.ID, err)
	}
	d, err := img.Digest()
	if err != nil {
		return "", fmt.Errorf("seed %s/%s:%s: %w", ns, repo, tag, err)
	}
	f.log.Info("registry seed", "site", s.ID, "repository", ns+"/"+repo, "tag", tag, "digest", d.String())
	return d.String(), nil
}

// SeedImageFor builds the small deterministic image seeded into repository:
// one layer holding /ferry-seed.txt, a linux config for runtime.GOARCH.
func SeedImageFor(repository string) (v1.Image, error) {
	layer, err := crane.Layer(map[string][]byte{"ferry-seed.txt": []byte("seeded by acr-emulator into " + repository + "\n")})
	if err != nil {
		return nil, fmt.Errorf("build seed layer: %w", err)
	}
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.DockerManifestSchema2), layer)
	if err != nil {
		return nil, fmt.Errorf("build seed image: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("build seed image: %w", err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	cf.Created = v1.Time{Time: time.Unix(0, 0).UTC()}
	cf.Config.Cmd = []string{"/ferry-seed.txt"}
	return mutate.ConfigFile(img, cf)
}

// internalToken mints a short bearer token with pull and push on one
// repository, for the emulator's own seeding.
func (f *Front) internalToken(s *site, repository string) (string, error) {
	now := time.Now()
	claims := token.ClaimSet{
		Issuer: Issuer, Subject: "acr-emulator", Audience: token.AudienceList{s.Service()},
		Expiration: now.Add(5 * time.Minute).Unix(), NotBefore: now.Add(-time.Minute).Unix(), IssuedAt: now.Unix(),
		JWTID:  randomID(),
		Access: []*token.ResourceActions{{Type: "repository", Name: repository, Actions: []string{"pull", "push"}}},
	}
	raw, err := jwt.Signed(f.realm.signer).Claims(claims).Serialize()
	if err != nil {
		return "", fmt.Errorf("sign internal token: %w", err)
	}
	return raw, nil
}

// inProcess is an http.RoundTripper that serves requests with a handler.
type inProcess struct {
	h      http.Handler
	bearer string
}

func (t *inProcess) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Header.Set("Authorization", "Bearer "+t.bearer)
	req.Header.Set("X-Forwarded-Proto", "http")
	if req.RemoteAddr == "" {
		req.RemoteAddr = "127.0.0.1:1"
	}
	if req.Body == nil {
		req.Body = http.NoBody
	}
	if req.RequestURI == "" {
		req.RequestURI = req.URL.RequestURI()
	}
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, req)
	resp := rec.Result()
	resp.Request = req
	return resp, nil
}

// SeedAll seeds every image of seeds and returns their digests in order.
func (f *Front) SeedAll(ctx context.Context, seeds []Seed) ([]string, error) {
	out := make([]string, 0, len(seeds))
	for _, s := range seeds {
		d, err := f.SeedImage(ctx, s.SiteID, s.Namespace, s.Repo, s.Tag)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}
