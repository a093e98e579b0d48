package imagebuild

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	specsv1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// PushOptions describe a push of an image layout written by Build.
type PushOptions struct {
	// Layout is the OCI layout directory (Out/oci).
	Layout string
	// Registry is host:port/path; "<binary>:<tag>" of each layout entry goes to <Registry>/<binary>:<tag>.
	Registry string
	// Insecure allows plain HTTP and unverified TLS.
	Insecure bool
	// CAFile is a PEM file trusted in addition to the system roots.
	CAFile string
	Log    io.Writer
}

// Push writes every named entry of the layout (images and their SBOM artifacts) to the registry
// and returns binary → pushed image reference by digest (the entries tagged with a version, not
// the SBOMs). Blobs the registry already has are not uploaded again.
func Push(ctx context.Context, o PushOptions) (map[string]string, error) {
	if o.Log == nil {
		o.Log = io.Discard
	}
	opts, err := registryOptions(ctx, o)
	if err != nil {
		return nil, err
	}
	lp, err := layout.FromPath(o.Layout)
	if err != nil {
		return nil, fmt.Errorf("image layout %s: %w", o.Layout, err)
	}
	ii, err := lp.ImageIndex()
	if err != nil {
		return nil, err
	}
	m, err := ii.IndexManifest()
	if err != nil {
		return nil, err
	}
	var nopts []name.Option
	if o.Insecure {
		nopts = append(nopts, name.Insecure)
	}
	pushed := map[string]string{}
	for _, desc := range m.Manifests {
		refName := desc.Annotations[specsv1.AnnotationRefName]
		bin, tag, ok := strings.Cut(refName, ":")
		if !ok || bin == "" || tag == "" {
			return nil, fmt.Errorf("layout %s: entry %s has ref.name %q, want <binary>:<tag>", o.Layout, desc.Digest, refName)
		}
		dst, err := name.NewTag(strings.TrimSuffix(o.Registry, "/")+"/"+bin+":"+tag, nopts...)
		if err != nil {
			return nil, fmt.Errorf("registry %q, image %q: %w", o.Registry, refName, err)
		}
		if desc.MediaType.IsIndex() {
			idx, ierr := ii.ImageIndex(desc.Digest)
			if ierr != nil {
				return nil, ierr
			}
			err = remote.WriteIndex(dst, idx, opts...)
		} else {
			img, ierr := ii.Image(desc.Digest)
			if ierr != nil {
				return nil, ierr
			}
			err = remote.Write(dst, img, opts...)
		}
		if err != nil {
			return nil, fmt.Errorf("push %s: %w", dst, err)
		}
		if !strings.HasSuffix(tag, ".sbom") {
			pushed[bin] = dst.Context().Digest(desc.Digest.String()).String()
			fmt.Fprintf(o.Log, "[images] pushed %s\n", pushed[bin])
		}
	}
	return pushed, nil
}

// registryOptions are the remote options towards the registry: system roots plus CAFile, the
// Docker keychain for credentials, HTTP proxies from the environment.
func registryOptions(ctx context.Context, o PushOptions) ([]remote.Option, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("registry CA: %w", err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("registry CA %s: no PEM certificate", o.CAFile)
		}
	}
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12, InsecureSkipVerify: o.Insecure} //nolint:gosec // only with --insecure
	return []remote.Option{remote.WithContext(ctx), remote.WithTransport(tr), remote.WithAuthFromKeychain(authn.DefaultKeychain)}, nil
}
