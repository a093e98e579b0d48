// Package testimage builds small random container images and image indexes,
// with a chosen manifest media type and platform, for registry tests.
package testimage

import (
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Image returns an image made of base and one random layer of size bytes.
// Its manifest has media type mt (an OCI manifest also gets the OCI config
// media type) and its config names platform p.
func Image(t testing.TB, base v1.Layer, size int64, mt types.MediaType, p v1.Platform) v1.Image {
	t.Helper()
	l, err := random.Layer(size, types.DockerLayer)
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, base, l)
	if err != nil {
		t.Fatal(err)
	}
	img = mutate.MediaType(img, mt)
	if mt == types.OCIManifestSchema1 {
		img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// Index returns an index of media type mt with one child image per platform:
// child i is Image(t, base, size+i, childMT, platforms[i]), and its index
// entry carries that platform.
func Index(t testing.TB, base v1.Layer, size int64, mt, childMT types.MediaType, platforms ...v1.Platform) v1.ImageIndex {
	t.Helper()
	var idx v1.ImageIndex = mutate.IndexMediaType(empty.Index, mt)
	for i, p := range platforms {
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        Image(t, base, size+int64(i), childMT, p),
			Descriptor: v1.Descriptor{Platform: &p},
		})
	}
	return idx
}
