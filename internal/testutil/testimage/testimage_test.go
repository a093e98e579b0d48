package testimage

import (
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func TestIndex(t *testing.T) {
	base, err := random.Layer(512, types.DockerLayer)
	if err != nil {
		t.Fatal(err)
	}
	amd64 := v1.Platform{OS: "linux", Architecture: "amd64"}
	armv7 := v1.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}
	tests := []struct {
		name         string
		mt, childMT  types.MediaType
		wantConfigMT types.MediaType
		platforms    []v1.Platform
	}{
		{"docker list", types.DockerManifestList, types.DockerManifestSchema2, types.DockerConfigJSON, []v1.Platform{amd64, armv7}},
		{"oci index", types.OCIImageIndex, types.OCIManifestSchema1, types.OCIConfigJSON, []v1.Platform{amd64}},
		{"empty", types.OCIImageIndex, types.OCIManifestSchema1, types.OCIConfigJSON, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			idx := Index(t, base, 1000, tt.mt, tt.childMT, tt.platforms...)
			if mt, err := idx.MediaType(); err != nil || mt != tt.mt {
				t.Fatalf("index media type %s %v, want %s", mt, err, tt.mt)
			}
			m, err := idx.IndexManifest()
			if err != nil {
				t.Fatal(err)
			}
			if len(m.Manifests) != len(tt.platforms) {
				t.Fatalf("%d children, want %d", len(m.Manifests), len(tt.platforms))
			}
			for i, d := range m.Manifests {
				if d.MediaType != tt.childMT || d.Platform == nil || !d.Platform.Equals(tt.platforms[i]) {
					t.Errorf("child %d: %s %+v", i, d.MediaType, d.Platform)
				}
				img, err := idx.Image(d.Digest)
				if err != nil {
					t.Fatal(err)
				}
				cf, err := img.ConfigFile()
				if err != nil {
					t.Fatal(err)
				}
				if cf.OS != tt.platforms[i].OS || cf.Architecture != tt.platforms[i].Architecture || cf.Variant != tt.platforms[i].Variant {
					t.Errorf("child %d config platform %s/%s/%s", i, cf.OS, cf.Architecture, cf.Variant)
				}
				im, err := img.Manifest()
				if err != nil {
					t.Fatal(err)
				}
				if im.Config.MediaType != tt.wantConfigMT {
					t.Errorf("child %d config media type %s, want %s", i, im.Config.MediaType, tt.wantConfigMT)
				}
				layers, err := img.Layers()
				if err != nil {
					t.Fatal(err)
				}
				if len(layers) != 2 {
					t.Fatalf("child %d has %d layers, want base + 1", i, len(layers))
				}
				if d0, _ := layers[0].Digest(); d0 != mustDigest(t, base) {
					t.Errorf("child %d does not start with the base layer", i)
				}
			}
		})
	}
}

func mustDigest(t *testing.T, l interface{ Digest() (v1.Hash, error) }) v1.Hash {
	t.Helper()
	d, err := l.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}
