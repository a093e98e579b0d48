package engine

import (
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Manifests come from registries: untrusted input.

func FuzzManifestDeps(f *testing.F) {
	f.Add([]byte(`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":1}]}`), 0)
	f.Add([]byte(`{"schemaVersion":2,"config":{"digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":2},"layers":[{"digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111","size":3,"urls":["http://x"],"mediaType":"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"}]}`), 1)
	f.Add([]byte(`{"schemaVersion":1,"fsLayers":[{"blobSum":"sha256:0000000000000000000000000000000000000000000000000000000000000000"}]}`), 2)
	mts := []types.MediaType{types.OCIImageIndex, types.DockerManifestSchema2, types.DockerManifestSchema1Signed, types.OCIManifestSchema1, "application/x-unknown"}
	f.Fuzz(func(t *testing.T, raw []byte, mt int) {
		if mt < 0 {
			mt = -mt
		}
		_, _, _ = manifestDeps(raw, mts[mt%len(mts)])
	})
}

func FuzzFilterIndex(f *testing.F) {
	f.Add([]byte(`{"schemaVersion":2,"x":1,"manifests":[{"digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":1,"platform":{"os":"linux","architecture":"arm","variant":"v7"}},{"digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111","size":1}]}`))
	pf, err := ParsePlatformFilter([]string{"linux"}, []string{"arm:v7"}, false)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		kept, ignored, out, err := pf.filterIndex(raw)
		if err != nil {
			return
		}
		if len(ignored) == 0 && string(out) != string(raw) {
			t.Fatal("an index with nothing filtered must keep its bytes")
		}
		for _, d := range kept {
			if !pf.Match(d.Platform) {
				t.Fatalf("kept %v", d.Platform)
			}
		}
	})
}
