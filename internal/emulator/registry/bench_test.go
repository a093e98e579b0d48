package registry

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferrypull/ferry/internal/emulator/ram"
	"github.com/ferrypull/ferry/internal/emulator/world"
)

// BenchmarkPull measures pull throughput of a ~50 MB image (one layer) with
// go-containerregistry: through the emulator's front with token auth (every
// iteration does the full challenge, realm login with an AuthorizationToken,
// RAM check and JWT verification), against the same distribution
// configuration without auth. Target: auth >= 0.9x noauth.
func BenchmarkPull(b *testing.B) {
	const size = 50 << 20
	img, err := random.Image(size, 1)
	if err != nil {
		b.Fatal(err)
	}
	layers, _ := img.Layers()
	layerSize, _ := layers[0].Size()

	// Baseline: distribution with identical storage settings, no auth.
	plainApp, err := newApp(b.Context(), b.TempDir(), "", "", "secret")
	if err != nil {
		b.Fatal(err)
	}
	plain := httptest.NewServer(plainApp)
	defer plain.Close()

	// The emulator front over the demo world.
	w, err := world.Default(world.DefaultOptions{})
	if err != nil {
		b.Fatal(err)
	}
	svc := ram.New(w)
	front, err := New(NewWorldDirectory(svc), Options{DataDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer front.Close()
	srv := httptest.NewServer(front)
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	addr := srv.Listener.Addr().String()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return dialer.DialContext(ctx, network, addr)
	}

	mint := func(ak string) authn.Authenticator {
		_, p, err := svc.ResolveAccessKey(ak, "")
		if err != nil {
			b.Fatal(err)
		}
		inst, _ := w.InstanceByID(world.DemoInstanceAHangzhou)
		u, tok, _ := svc.IssueRegistryToken(p, inst)
		return &authn.Basic{Username: u, Password: tok}
	}
	authRef, _ := name.ParseReference("ferry-a-registry.cn-hangzhou.cr.aliyuncs.com:"+port+"/apps/bench:v1", name.Insecure)
	plainRef, _ := name.ParseReference(plain.Listener.Addr().String()+"/apps/bench:v1", name.Insecure)
	if err := remote.Write(authRef, img, remote.WithAuth(mint("LTAI5tFerryAAdmin001")), remote.WithTransport(tr)); err != nil {
		b.Fatal(err)
	}
	plainTr := http.DefaultTransport.(*http.Transport).Clone()
	if err := remote.Write(plainRef, img, remote.WithTransport(plainTr)); err != nil {
		b.Fatal(err)
	}
	puller := mint("LTAI5tFerryAPuller01")

	pull := func(b *testing.B, ref name.Reference, opts ...remote.Option) {
		b.SetBytes(layerSize)
		b.ReportAllocs()
		for b.Loop() {
			im, err := remote.Image(ref, append(opts, remote.WithContext(b.Context()))...)
			if err != nil {
				b.Fatal(err)
			}
			readLayers(b, im)
		}
	}
	b.Run("noauth", func(b *testing.B) { pull(b, plainRef, remote.WithTransport(plainTr)) })
	b.Run("emulator-auth", func(b *testing.B) { pull(b, authRef, remote.WithAuth(puller), remote.WithTransport(tr)) })
	// paired alternates the two pulls in every iteration, so background load
	// (a shared 2-core machine) hits both alike, and reports their ratio.
	b.Run("paired", func(b *testing.B) {
		var tAuth, tPlain time.Duration
		one := func(ref name.Reference, opts ...remote.Option) time.Duration {
			start := time.Now()
			im, err := remote.Image(ref, append(opts, remote.WithContext(b.Context()))...)
			if err != nil {
				b.Fatal(err)
			}
			readLayers(b, im)
			return time.Since(start)
		}
		i := 0
		for b.Loop() {
			// Alternate which goes first, so neither always follows the other's garbage.
			if i%2 == 0 {
				tPlain += one(plainRef, remote.WithTransport(plainTr))
				tAuth += one(authRef, remote.WithAuth(puller), remote.WithTransport(tr))
			} else {
				tAuth += one(authRef, remote.WithAuth(puller), remote.WithTransport(tr))
				tPlain += one(plainRef, remote.WithTransport(plainTr))
			}
			i++
		}
		n := float64(b.N)
		b.ReportMetric(float64(layerSize)*n/tPlain.Seconds()/1e6, "noauth-MB/s")
		b.ReportMetric(float64(layerSize)*n/tAuth.Seconds()/1e6, "auth-MB/s")
		b.ReportMetric(tPlain.Seconds()/tAuth.Seconds(), "auth/noauth")
	})
}

func readLayers(b *testing.B, im v1.Image) {
	layers, err := im.Layers()
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			b.Fatal(err)
		}
		rc.Close()
	}
}
