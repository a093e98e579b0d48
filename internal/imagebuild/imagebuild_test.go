package imagebuild

import (
	"archive/tar"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

const testBundle = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"

func base(t *testing.T, bundle string) v1.ImageIndex {
	t.Helper()
	ps, err := ParsePlatforms([]string{"linux/amd64", "linux/arm64"})
	if err != nil {
		t.Fatal(err)
	}
	idx, err := Base(BaseOptions{CABundle: []byte(bundle), CAVersion: "test", Platforms: ps})
	if err != nil {
		t.Fatal(err)
	}
	return idx
}

func digest(t *testing.T, idx v1.ImageIndex) v1.Hash {
	t.Helper()
	d, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestBaseReproducible(t *testing.T) {
	a, b := base(t, testBundle), base(t, testBundle)
	if digest(t, a) != digest(t, b) {
		t.Errorf("two builds of the base differ: %s, %s", digest(t, a), digest(t, b))
	}
	if c := base(t, testBundle+"\n"); digest(t, c) == digest(t, a) {
		t.Error("a different CA bundle gives the same base")
	}
}

func TestBaseContents(t *testing.T) {
	idx := base(t, testBundle)
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var plats []string
	for _, d := range m.Manifests {
		plats = append(plats, d.Platform.String())
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cf.Config.User != "65532:65532" || cf.Architecture != d.Platform.Architecture || cf.Created.Unix() != 0 {
			t.Errorf("%s: user %q arch %s created %v", d.Platform, cf.Config.User, cf.Architecture, cf.Created)
		}
		layers, err := img.Layers()
		if err != nil || len(layers) != 1 {
			t.Fatalf("layers %d, %v", len(layers), err)
		}
		rc, err := layers[0].Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		files := map[string]string{}
		modes := map[string]int64{}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(tr)
			files[h.Name], modes[h.Name] = string(b), h.Mode
			if (h.Uid != 0 && h.Name != "home/nonroot/") || h.ModTime.Unix() != 0 {
				t.Errorf("%s: uid %d mtime %v", h.Name, h.Uid, h.ModTime)
			}
		}
		rc.Close()
		if files["etc/ssl/certs/ca-certificates.crt"] != testBundle {
			t.Errorf("CA bundle %q", files["etc/ssl/certs/ca-certificates.crt"])
		}
		if !strings.Contains(files["etc/passwd"], "nonroot:x:65532:65532:") || !strings.Contains(files["etc/group"], "nonroot:x:65532:") {
			t.Errorf("passwd %q group %q", files["etc/passwd"], files["etc/group"])
		}
		if modes["tmp/"] != 0o1777 {
			t.Errorf("/tmp mode %o", modes["tmp/"])
		}
	}
	if strings.Join(plats, ",") != "linux/amd64,linux/arm64/v8" {
		t.Errorf("platforms %v", plats)
	}
}

func TestBadInput(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    func() error
		want string
	}{
		{"platform", func() error { _, err := ParsePlatforms([]string{"amd64"}); return err }, `platform "amd64"`},
		{"no platforms", func() error { _, err := Base(BaseOptions{CABundle: []byte(testBundle)}); return err }, "no platforms"},
		{"empty CA", func() error {
			_, err := Base(BaseOptions{Platforms: []v1.Platform{{OS: "linux", Architecture: "amd64"}}})
			return err
		}, "empty CA bundle"},
		{"no ko", func() error { _, err := Build(context.Background(), Options{}); return err }, "no ko binary"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.f(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}

// TestStage fetches the base under its fixed name through the stage's proxy, as ko does, and
// checks that the proxy tunnels every other host unchanged.
func TestStage(t *testing.T) {
	s, err := StartStage(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	idx := base(t, testBundle)
	ref, err := s.PushBase(t.Context(), idx)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(ref, BaseRepo+"@sha256:") {
		t.Fatalf("base reference %s", ref)
	}
	pem, err := os.ReadFile(s.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	other := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "other host") }))
	defer other.Close()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	pool.AddCert(other.Certificate())
	proxy, _ := url.Parse(s.Proxy)
	tr := &http.Transport{Proxy: http.ProxyURL(proxy), TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}

	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	got, err := remote.Index(r, remote.WithTransport(tr), remote.WithContext(t.Context()))
	if err != nil {
		t.Fatalf("fetch %s through the proxy: %v", ref, err)
	}
	if digest(t, got) != digest(t, idx) {
		t.Errorf("proxy served %s, pushed %s", digest(t, got), digest(t, idx))
	}
	resp, err := (&http.Client{Transport: tr}).Get(other.URL)
	if err != nil {
		t.Fatalf("tunnel to another host: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "other host" {
		t.Errorf("tunnel answered %q", b)
	}
}

// TestPushLayout pushes a layout named as Build names it and reads it back.
func TestPushLayout(t *testing.T) {
	s, err := StartStage(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	dir := filepath.Join(t.TempDir(), "oci")
	lp, err := layout.Write(dir, emptyIndex())
	if err != nil {
		t.Fatal(err)
	}
	idx := base(t, testBundle)
	if err := lp.AppendIndex(idx, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "base:v1"})); err != nil {
		t.Fatal(err)
	}
	pushed, err := Push(t.Context(), PushOptions{Layout: dir, Registry: s.Addr + "/mirror"})
	if err != nil {
		t.Fatal(err)
	}
	want := s.Addr + "/mirror/base@" + digest(t, idx).String()
	if pushed["base"] != want {
		t.Fatalf("pushed %v, want base → %s", pushed, want)
	}
	r, err := name.ParseReference(s.Addr+"/mirror/base:v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	got, err := remote.Index(r, remote.WithContext(t.Context()))
	if err != nil || digest(t, got) != digest(t, idx) {
		t.Errorf("registry has %v (%v)", got, err)
	}

	// A layout entry without a usable name is refused, naming it.
	bad := filepath.Join(t.TempDir(), "oci")
	lp, _ = layout.Write(bad, emptyIndex())
	_ = lp.AppendIndex(idx)
	if _, err := Push(t.Context(), PushOptions{Layout: bad, Registry: s.Addr + "/mirror"}); err == nil || !strings.Contains(err.Error(), "want <binary>:<tag>") {
		t.Errorf("push of an unnamed entry: %v", err)
	}
}

func emptyIndex() v1.ImageIndex { return empty.Index }
