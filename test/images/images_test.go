package images

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	specsv1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferrypull/ferry/internal/imagebuild"
	"github.com/ferrypull/ferry/internal/testutil/registryenv"
	"github.com/ferrypull/ferry/internal/testutil/tools"
)

var binaries = []string{"acr-credential-helper", "node-agent", "image-syncer", "acr-emulator", "acr-credential-provider"}

var platforms = []string{"linux/amd64", "linux/arm64/v8"}

// hackImages runs hack/images as `make images` does and returns its output.
func hackImages(t *testing.T, args ...string) string {
	t.Helper()
	ko := tools.Env("FERRY_KO")
	if _, err := os.Stat(ko); ko == "" || err != nil {
		tools.Require(t, "ko unavailable (FERRY_KO=%q; run `make tools`)", ko)
	}
	cmd := exec.CommandContext(t.Context(), "go", append([]string{"run", "./hack/images", "--ko", ko}, args...)...)
	cmd.Dir = tools.ModuleRoot()
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Run(); err != nil {
		t.Fatalf("hack/images %v: %v\n%s", args, err, log.String())
	}
	return log.String()
}

// build runs a build into out and reads its images.json.
func build(t *testing.T, out string, args ...string) imagebuild.Result {
	t.Helper()
	log := hackImages(t, append([]string{"--out", out}, args...)...)
	t.Logf("hack/images %v:\n%s", args, tail(log, 1200))
	var res imagebuild.Result
	b, err := os.ReadFile(filepath.Join(out, "images.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	return res
}

// TestImages builds every image twice — into an OCI layout, then again pushing to a TLS
// registry — and requires the same index digests; checks what the images hold; and pushes the
// layout as it is to a plain-HTTP registry.
func TestImages(t *testing.T) {
	if testing.Short() {
		t.Skip("builds every image twice (heavy; runs without -short)")
	}
	out := t.TempDir()
	first := build(t, out)
	tlsReg := registryenv.StartDistribution(t, registryenv.Options{TLS: true})
	second := build(t, t.TempDir(), "--registry", tlsReg.Addr+"/ferrypull", "--registry-ca", tlsReg.CAFile)

	if got := names(first); !slices.Equal(got, binaries) {
		t.Fatalf("built %v, want %v", got, binaries)
	}
	if first.Base != second.Base || !strings.HasPrefix(first.Base, imagebuild.BaseRepo+"@sha256:") {
		t.Errorf("base %s, then %s; want the same %s@sha256:…", first.Base, second.Base, imagebuild.BaseRepo)
	}
	for i, im := range first.Images {
		again := second.Images[i]
		if im.Binary != again.Binary || im.Digest != again.Digest {
			t.Errorf("not reproducible: %s %s, then %s %s", im.Binary, im.Digest, again.Binary, again.Digest)
		}
		// The TLS registry holds what was built.
		ref, err := name.ParseReference(again.Pushed)
		if err != nil {
			t.Fatalf("pushed reference %q: %v", again.Pushed, err)
		}
		if desc, err := remote.Head(ref, tlsReg.Options(t.Context(), "", "")...); err != nil {
			t.Errorf("%s is not in the TLS registry: %v", again.Pushed, err)
		} else if desc.Digest.String() != im.Digest {
			t.Errorf("%s: the TLS registry has %s, built %s", im.Binary, desc.Digest, im.Digest)
		}
		t.Logf("%s %s, compressed sizes %v", im.Binary, im.Digest, im.Platforms)
	}

	revision := strings.TrimSpace(git(t, "rev-parse", "HEAD"))
	checkLayout(t, out, first, revision)

	// Another tool reads the layout by name: skopeo (Debian's, containers/image).
	skopeo := tools.LookPath(t, "skopeo")
	for _, im := range first.Images {
		ref := "oci:" + filepath.Join(out, "oci") + ":" + im.Binary + ":" + version(t, out, im.Binary)
		raw, err := exec.CommandContext(t.Context(), skopeo, "inspect", "--raw", ref).Output()
		if err != nil {
			t.Fatalf("skopeo inspect --raw %s: %v", ref, err)
		}
		if got := fmt.Sprintf("sha256:%x", sha256.Sum256(raw)); got != im.Digest {
			t.Errorf("skopeo reads %s as %s, built %s", ref, got, im.Digest)
		}
	}

	// The layout pushes as it is to a plain-HTTP registry (Debian's docker-registry), SBOMs included.
	plain := registryenv.StartDocker(t, registryenv.Options{})
	hackImages(t, "--push-only", "--out", out, "--registry", plain.Addr+"/mirror", "--insecure")
	for _, im := range first.Images {
		ref := plain.Ref(t, "mirror/"+im.Binary+"@"+im.Digest)
		if _, err := remote.Index(ref, plain.Options(t.Context(), "", "")...); err != nil {
			t.Errorf("%s: not in the plain-HTTP registry: %v", ref, err)
		}
		tags, err := remote.List(ref.Context(), plain.Options(t.Context(), "", "")...)
		if err != nil {
			t.Fatal(err)
		}
		if want := strings.Replace(im.Digest, ":", "-", 1) + ".sbom"; !slices.Contains(tags, want) {
			t.Errorf("%s: tags %v lack the index SBOM %s", ref.Context(), tags, want)
		}
	}
}

// checkLayout reads the first build's OCI layouts and checks every image.
func checkLayout(t *testing.T, out string, res imagebuild.Result, revision string) {
	t.Helper()
	base, err := layout.ImageIndexFromPath(filepath.Join(out, "base"))
	if err != nil {
		t.Fatalf("base layout: %v", err)
	}
	bm, err := base.IndexManifest()
	if err != nil || len(bm.Manifests) != 1 {
		t.Fatalf("base layout holds %v (%v), want one index", bm, err)
	}
	if !strings.HasSuffix(res.Base, "@"+bm.Manifests[0].Digest.String()) {
		t.Errorf("base layout has %s, the images were built on %s", bm.Manifests[0].Digest, res.Base)
	}

	ii, err := layout.ImageIndexFromPath(filepath.Join(out, "oci"))
	if err != nil {
		t.Fatalf("image layout: %v", err)
	}
	m, err := ii.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	entries := map[string]v1.Descriptor{}
	for _, d := range m.Manifests {
		entries[d.Annotations[specsv1.AnnotationRefName]] = d
	}
	caBundle, err := os.ReadFile(imagebuild.CABundlePath)
	if err != nil {
		t.Fatal(err)
	}
	for _, im := range res.Images {
		t.Run(im.Binary, func(t *testing.T) {
			var desc v1.Descriptor
			for ref, d := range entries {
				if strings.HasPrefix(ref, im.Binary+":") && !strings.HasSuffix(ref, ".sbom") {
					desc = d
				}
			}
			if desc.Digest.String() != im.Digest || !desc.MediaType.IsIndex() {
				t.Fatalf("layout entry %+v, want index %s", desc, im.Digest)
			}
			if desc.Annotations[specsv1.AnnotationRevision] != revision {
				t.Errorf("layout annotations %v, want revision %s", desc.Annotations, revision)
			}
			idx, err := ii.ImageIndex(desc.Digest)
			if err != nil {
				t.Fatal(err)
			}
			hasSBOM(t, entries, im.Binary, desc.Digest)
			im2, err := idx.IndexManifest()
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, pd := range im2.Manifests {
				got = append(got, pd.Platform.String())
				img, err := idx.Image(pd.Digest)
				if err != nil {
					t.Fatal(err)
				}
				checkImage(t, img, im.Binary, pd.Platform, revision, caBundle)
				hasSBOM(t, entries, im.Binary, pd.Digest)
			}
			slices.Sort(got)
			if !slices.Equal(got, platforms) {
				t.Errorf("platforms %v, want %v", got, platforms)
			}
		})
	}
}

// hasSBOM requires ko's SPDX SBOM for digest in the layout.
func hasSBOM(t *testing.T, entries map[string]v1.Descriptor, bin string, digest v1.Hash) {
	t.Helper()
	if _, ok := entries[bin+":"+digest.Algorithm+"-"+digest.Hex+".sbom"]; !ok {
		t.Errorf("no SBOM for %s@%s in the layout", bin, digest)
	}
}

// checkImage checks one platform's image: config, labels and files.
func checkImage(t *testing.T, img v1.Image, bin string, p *v1.Platform, revision string, caBundle []byte) {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Config.User != "65532:65532" {
		t.Errorf("%s: user %q, want 65532:65532 (nonroot)", p, cf.Config.User)
	}
	if cf.Architecture != p.Architecture || cf.OS != "linux" {
		t.Errorf("%s: config says %s/%s", p, cf.OS, cf.Architecture)
	}
	if want := []string{"/ko-app/" + bin}; !slices.Equal(cf.Config.Entrypoint, want) {
		t.Errorf("%s: entrypoint %v, want %v", p, cf.Config.Entrypoint, want)
	}
	for k, want := range map[string]string{
		specsv1.AnnotationSource: "https://github.com/ferrypull/ferry", specsv1.AnnotationRevision: revision,
	} {
		if cf.Config.Labels[k] != want {
			t.Errorf("%s: label %s=%q, want %q", p, k, cf.Config.Labels[k], want)
		}
	}
	if cf.Config.Labels[specsv1.AnnotationVersion] == "" {
		t.Errorf("%s: no %s label", p, specsv1.AnnotationVersion)
	}

	files := map[string][]byte{}
	want := map[string]bool{"etc/passwd": true, "etc/group": true, "etc/ssl/certs/ca-certificates.crt": true, "ko-app/" + bin: true}
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n := strings.TrimPrefix(h.Name, "/")
		if want[n] {
			if files[n], err = io.ReadAll(tr); err != nil {
				t.Fatal(err)
			}
		}
	}
	if !bytes.Contains(files["etc/passwd"], []byte("nonroot:x:65532:65532:")) || !bytes.Contains(files["etc/group"], []byte("nonroot:x:65532:")) {
		t.Errorf("%s: passwd/group lack nonroot 65532:\n%s%s", p, files["etc/passwd"], files["etc/group"])
	}
	if !bytes.Equal(files["etc/ssl/certs/ca-certificates.crt"], caBundle) {
		t.Errorf("%s: CA bundle (%d bytes) differs from Debian's %s (%d bytes)", p, len(files["etc/ssl/certs/ca-certificates.crt"]), imagebuild.CABundlePath, len(caBundle))
	}
	exe, err := elf.NewFile(bytes.NewReader(files["ko-app/"+bin]))
	if err != nil {
		t.Fatalf("%s: /ko-app/%s is not an ELF binary: %v", p, bin, err)
	}
	machine := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[p.Architecture]
	if exe.Machine != machine {
		t.Errorf("%s: binary for %s", p, exe.Machine)
	}
	for _, prog := range exe.Progs {
		if prog.Type == elf.PT_INTERP {
			t.Errorf("%s: /ko-app/%s has a dynamic loader (not static; CGO_ENABLED=0?)", p, bin)
		}
	}
	if libs, _ := exe.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("%s: /ko-app/%s links %v", p, bin, libs)
	}
}

// version is the tag the layout names bin with.
func version(t *testing.T, out, bin string) string {
	t.Helper()
	ii, err := layout.ImageIndexFromPath(filepath.Join(out, "oci"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := ii.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range m.Manifests {
		if n := d.Annotations[specsv1.AnnotationRefName]; strings.HasPrefix(n, bin+":") && !strings.HasSuffix(n, ".sbom") {
			return strings.TrimPrefix(n, bin+":")
		}
	}
	t.Fatalf("no %s in the layout", bin)
	return ""
}

func names(r imagebuild.Result) []string {
	var out []string
	for _, im := range r.Images {
		out = append(out, im.Binary)
	}
	return out
}

func git(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), "git", args...)
	cmd.Dir = tools.ModuleRoot()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git %v: %v", args, err)
	}
	return string(out)
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
