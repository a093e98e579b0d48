package imagebuild

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// NonRootUID is the uid and gid of the nonroot user, as in distroless and Chainguard images.
const NonRootUID = 65532

// CABundlePath is where the base keeps the CA bundle (Debian's path; Go reads it by default).
const CABundlePath = "/etc/ssl/certs/ca-certificates.crt"

// BaseOptions describe the minimal base.
type BaseOptions struct {
	// CABundle is the PEM bundle installed at CABundlePath (Debian's ca-certificates).
	CABundle []byte
	// CAVersion names the bundle's source in the image history (e.g. "ca-certificates 20230311").
	CAVersion string
	// Platforms of the index; "linux/amd64", "linux/arm64", ...
	Platforms []v1.Platform
	// Created is the time recorded in the configs; the zero value means the Unix epoch, as
	// distroless does, so the base changes only when its files do.
	Created time.Time
}

// files of the base, besides the CA bundle.
var (
	passwd = fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n", NonRootUID, NonRootUID)
	group  = fmt.Sprintf("root:x:0:\nnobody:x:65534:\nnonroot:x:%d:\n", NonRootUID)
	// Go's resolver reads nsswitch.conf for the order of /etc/hosts and DNS.
	nsswitch = "hosts: files dns\n"
)

// BaseLayer returns the base's single layer: a tar with fixed times and owners.
func BaseLayer(caBundle []byte) (v1.Layer, error) {
	if len(caBundle) == 0 {
		return nil, fmt.Errorf("base image: empty CA bundle")
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	epoch := time.Unix(0, 0)
	dir := func(name string, mode int64, uid int) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, Uid: uid, Gid: uid, ModTime: epoch, Format: tar.FormatPAX})
	}
	file := func(name string, mode int64, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	steps := []func() error{
		func() error { return dir("etc", 0o755, 0) },
		func() error { return file("etc/passwd", 0o644, []byte(passwd)) },
		func() error { return file("etc/group", 0o644, []byte(group)) },
		func() error { return file("etc/nsswitch.conf", 0o644, []byte(nsswitch)) },
		func() error { return dir("etc/ssl", 0o755, 0) },
		func() error { return dir("etc/ssl/certs", 0o755, 0) },
		func() error { return file(CABundlePath[1:], 0o644, caBundle) },
		func() error { return dir("home", 0o755, 0) },
		func() error { return dir("home/nonroot", 0o700, NonRootUID) },
		func() error { return dir("tmp", 0o1777, 0) },
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return nil, fmt.Errorf("base image layer: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("base image layer: %w", err)
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil },
		tarball.WithMediaType(types.OCILayer))
}

// Base builds the minimal base as an OCI image index with one image per platform, all sharing
// one layer. The same options always give the same digest.
func Base(o BaseOptions) (v1.ImageIndex, error) {
	if len(o.Platforms) == 0 {
		return nil, fmt.Errorf("base image: no platforms")
	}
	layer, err := BaseLayer(o.CABundle)
	if err != nil {
		return nil, err
	}
	created := o.Created
	if created.IsZero() {
		created = time.Unix(0, 0)
	}
	created = created.UTC()
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{Layer: layer, History: v1.History{
		Created:   v1.Time{Time: created},
		CreatedBy: "ferry minimal base: " + CABundlePath + " (" + o.CAVersion + "), /etc/passwd and /etc/group with nonroot 65532",
	}})
	if err != nil {
		return nil, fmt.Errorf("base image: %w", err)
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range o.Platforms {
		cf, err := img.ConfigFile()
		if err != nil {
			return nil, fmt.Errorf("base image: %w", err)
		}
		cf = cf.DeepCopy()
		cf.OS, cf.Architecture, cf.Variant, cf.Created = p.OS, p.Architecture, p.Variant, v1.Time{Time: created}
		cf.Config.User = fmt.Sprintf("%d:%d", NonRootUID, NonRootUID)
		cf.Config.WorkingDir = "/home/nonroot"
		cf.Config.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "SSL_CERT_FILE=" + CABundlePath}
		pimg, err := mutate.ConfigFile(img, cf)
		if err != nil {
			return nil, fmt.Errorf("base image %s: %w", p, err)
		}
		pp := p
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: pimg, Descriptor: v1.Descriptor{Platform: &pp}})
	}
	return idx, nil
}

// ParsePlatforms parses "linux/amd64,linux/arm64" (arm64 gets variant v8, as registries list it).
func ParsePlatforms(list []string) ([]v1.Platform, error) {
	var out []v1.Platform
	for _, s := range list {
		p, err := v1.ParsePlatform(s)
		if err != nil || p.OS == "" || p.Architecture == "" {
			return nil, fmt.Errorf("platform %q: want os/arch[/variant]", s)
		}
		if p.Architecture == "arm64" && p.Variant == "" {
			p.Variant = "v8"
		}
		out = append(out, *p)
	}
	return out, nil
}
