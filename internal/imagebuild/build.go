package imagebuild

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	specsv1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// Options of one build.
type Options struct {
	// Root is the module root: ko's working directory, where .ko.yaml lives.
	Root string
	// Out receives base/ (OCI layout of the base, named "base"), oci/ (OCI layout of the images, one index per
	// binary named <binary>:<version>), sbom/ (ko's SPDX documents) and images.json (Result).
	Out string
	// Ko is the ko binary.
	Ko string
	// Binaries are names below cmd/.
	Binaries []string
	// Platforms, e.g. linux/amd64 and linux/arm64.
	Platforms []string
	// Version (tag and org.opencontainers.image.version), Revision (git commit) and Source
	// (repository URL) go into the OCI labels.
	Version, Revision, Source string
	// Epoch is SOURCE_DATE_EPOCH: the creation time of the images.
	Epoch time.Time
	// BaseImage is a public base reference for ko to pull (a release's choice); empty builds and
	// serves the minimal base from CABundle.
	BaseImage string
	// CABundle is the PEM file installed in the self-built base; CAVersion describes it.
	CABundle, CAVersion string
	// Registry, host:port[/path], receives every image as <Registry>/<binary>:<Version> together
	// with ko's SBOM artifacts; empty writes the layout only.
	Registry string
	// Insecure allows plain HTTP (and unverified TLS) towards Registry.
	Insecure bool
	// RegistryCA is a PEM file trusted for Registry in addition to the system roots.
	RegistryCA string
	// Log receives ko's output and progress lines.
	Log io.Writer
}

// Result is what a build made; it is also written to Out/images.json.
type Result struct {
	Base   string  `json:"base"`
	Images []Image `json:"images"`
}

// Image is one binary's multi-arch image.
type Image struct {
	Binary string `json:"binary"`
	// Digest of the OCI image index.
	Digest string `json:"digest"`
	// Pushed is the reference written to Options.Registry, by digest; empty when not pushed.
	Pushed string `json:"pushed,omitempty"`
	// Platforms maps os/arch[/variant] to the image's compressed size (manifest, config, layers).
	Platforms map[string]int64 `json:"platforms"`
}

// Build builds the base and the images.
func Build(ctx context.Context, o Options) (*Result, error) {
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.Ko == "" {
		return nil, fmt.Errorf("no ko binary (FERRY_KO from `make tools`)")
	}
	if len(o.Binaries) == 0 || len(o.Platforms) == 0 {
		return nil, fmt.Errorf("nothing to build: binaries %v, platforms %v", o.Binaries, o.Platforms)
	}
	platforms, err := ParsePlatforms(o.Platforms)
	if err != nil {
		return nil, err
	}
	for _, sub := range []string{"base", "oci", "sbom", "images.json", "work"} {
		if err := os.RemoveAll(filepath.Join(o.Out, sub)); err != nil {
			return nil, err
		}
	}
	work := filepath.Join(o.Out, "work")
	if err := os.MkdirAll(work, 0o755); err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)

	res := &Result{}
	var stage *Stage
	roots, _ := os.ReadFile(o.CABundle)
	stage, err = StartStage(work, roots)
	if err != nil {
		return nil, err
	}
	defer stage.Close()
	res.Base = o.BaseImage
	if o.BaseImage == "" {
		if len(roots) == 0 {
			return nil, fmt.Errorf("CA bundle %q: missing or empty (Debian's ca-certificates)", o.CABundle)
		}
		base, err := Base(BaseOptions{CABundle: roots, CAVersion: o.CAVersion, Platforms: platforms})
		if err != nil {
			return nil, err
		}
		bl, err := layout.Write(filepath.Join(o.Out, "base"), empty.Index)
		if err == nil {
			err = bl.AppendIndex(base, layout.WithAnnotations(map[string]string{specsv1.AnnotationRefName: "base"}))
		}
		if err != nil {
			return nil, fmt.Errorf("write base layout: %w", err)
		}
		if res.Base, err = stage.PushBase(ctx, base); err != nil {
			return nil, err
		}
		fmt.Fprintf(o.Log, "[images] base %s (layout %s)\n", res.Base, filepath.Join(o.Out, "base"))
	}

	refs, err := runKo(ctx, o, stage, res.Base)
	if err != nil {
		return nil, err
	}

	lp, err := layout.Write(filepath.Join(o.Out, "oci"), empty.Index)
	if err != nil {
		return nil, fmt.Errorf("write image layout: %w", err)
	}
	for _, bin := range o.Binaries {
		published, ok := refs[bin]
		if !ok {
			return nil, fmt.Errorf("ko reported no image for %s", bin)
		}
		im, err := stageToLayout(ctx, o, lp, bin, published)
		if err != nil {
			return nil, err
		}
		res.Images = append(res.Images, im)
	}
	if o.Registry != "" {
		pushed, err := Push(ctx, PushOptions{Layout: filepath.Join(o.Out, "oci"), Registry: o.Registry, Insecure: o.Insecure, CAFile: o.RegistryCA, Log: o.Log})
		if err != nil {
			return nil, err
		}
		for i := range res.Images {
			res.Images[i].Pushed = pushed[res.Images[i].Binary]
		}
	}
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(o.Out, "images.json"), append(b, '\n'), 0o644); err != nil {
		return nil, err
	}
	return res, nil
}

// runKo builds every binary with ko, pushing to the stage, and returns binary → the references
// ko published (the index and each platform's image).
func runKo(ctx context.Context, o Options, stage *Stage, base string) (map[string][]name.Digest, error) {
	refsFile := filepath.Join(o.Out, "work", "refs")
	labels := []string{
		specsv1.AnnotationSource + "=" + o.Source,
		specsv1.AnnotationRevision + "=" + o.Revision,
		specsv1.AnnotationVersion + "=" + o.Version,
	}
	args := []string{"build", "--base-import-paths", "--platform=" + strings.Join(o.Platforms, ","),
		"--sbom=spdx", "--sbom-dir=" + filepath.Join(o.Out, "sbom"), "--image-refs=" + refsFile,
		"--tags=" + o.Version, "--image-label=" + strings.Join(labels, ","),
		"--image-annotation=" + strings.Join(labels, ",")}
	for _, b := range o.Binaries {
		args = append(args, "./cmd/"+b)
	}
	cmd := exec.CommandContext(ctx, o.Ko, args...)
	cmd.Dir = o.Root
	epoch := strconv.FormatInt(o.Epoch.Unix(), 10)
	cmd.Env = append(os.Environ(),
		"KO_CONFIG_PATH="+filepath.Join(o.Root, ".ko.yaml"),
		"KO_DOCKER_REPO="+stage.Addr+"/ferrypull",
		"KO_DEFAULTBASEIMAGE="+base,
		"SOURCE_DATE_EPOCH="+epoch, "KO_DATA_DATE_EPOCH="+epoch,
		"CGO_ENABLED=0",
		// The base host is answered by the stage's proxy; every other HTTPS host is tunnelled.
		"HTTPS_PROXY="+stage.Proxy, "https_proxy="+stage.Proxy, "SSL_CERT_FILE="+stage.CAFile,
		"NO_PROXY=", "no_proxy=",
	)
	cmd.Stdout, cmd.Stderr = o.Log, o.Log
	t0 := time.Now()
	fmt.Fprintf(o.Log, "[images] %s %s\n", o.Ko, strings.Join(args, " "))
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("ko build: %w", err)
	}
	fmt.Fprintf(o.Log, "[images] ko built %d images in %s\n", len(o.Binaries), time.Since(t0).Round(time.Second))
	f, err := os.Open(refsFile)
	if err != nil {
		return nil, fmt.Errorf("ko image refs: %w", err)
	}
	defer f.Close()
	refs := map[string][]name.Digest{}
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := strings.TrimSpace(s.Text())
		if line == "" {
			continue
		}
		d, err := name.NewDigest(line, name.Insecure)
		if err != nil {
			return nil, fmt.Errorf("ko image ref %q: %w", line, err)
		}
		repo := d.Context().RepositoryStr()
		bin := repo[strings.LastIndex(repo, "/")+1:]
		refs[bin] = append(refs[bin], d)
	}
	return refs, s.Err()
}

// describeIndex records the size of each platform's image.
func describeIndex(im *Image, idx v1.ImageIndex) error {
	m, err := idx.IndexManifest()
	if err != nil {
		return err
	}
	for _, desc := range m.Manifests {
		if desc.Platform == nil {
			continue
		}
		img, err := idx.Image(desc.Digest)
		if err != nil {
			return err
		}
		if err := addSize(im, desc.Platform.String(), desc.Size, img); err != nil {
			return err
		}
	}
	return nil
}

// addSize records an image's compressed size: manifest, config and layers.
func addSize(im *Image, platform string, manifestSize int64, img v1.Image) error {
	mf, err := img.Manifest()
	if err != nil {
		return err
	}
	size := manifestSize + mf.Config.Size
	for _, l := range mf.Layers {
		size += l.Size
	}
	im.Platforms[platform] = size
	return nil
}

// stageToLayout copies one binary's image (index, or image for a single platform) and ko's SBOM
// artifacts (tags sha256-<hex>.sbom) from the stage into the layout, named by the
// org.opencontainers.image.ref.name annotation "<binary>:<tag>". The image is the one ko tagged
// with the version; it must be one ko reported publishing.
func stageToLayout(ctx context.Context, o Options, lp layout.Path, bin string, published []name.Digest) (Image, error) {
	im := Image{Binary: bin, Platforms: map[string]int64{}}
	ref := published[0]
	tags, err := remote.List(ref.Context(), remote.WithContext(ctx))
	if err != nil {
		return im, fmt.Errorf("list %s on the stage: %w", bin, err)
	}
	sort.Strings(tags)
	for _, tag := range tags {
		if tag != o.Version && !strings.HasSuffix(tag, ".sbom") {
			continue
		}
		desc, err := remote.Get(ref.Context().Tag(tag), remote.WithContext(ctx))
		if err != nil {
			return im, fmt.Errorf("read %s:%s on the stage: %w", bin, tag, err)
		}
		anns := map[string]string{specsv1.AnnotationRefName: bin + ":" + tag}
		if tag == o.Version {
			im.Digest = desc.Digest.String()
			if !slices.ContainsFunc(published, func(d name.Digest) bool { return d.DigestStr() == im.Digest }) {
				return im, fmt.Errorf("%s:%s is %s on the stage, not one ko reported (%v)", bin, tag, desc.Digest, published)
			}
			anns[specsv1.AnnotationVersion], anns[specsv1.AnnotationRevision], anns[specsv1.AnnotationSource] = o.Version, o.Revision, o.Source
		}
		if desc.MediaType.IsIndex() {
			idx, err := desc.ImageIndex()
			if err != nil {
				return im, err
			}
			if tag == o.Version {
				if err := describeIndex(&im, idx); err != nil {
					return im, fmt.Errorf("%s: %w", bin, err)
				}
			}
			if err := lp.AppendIndex(idx, layout.WithAnnotations(anns)); err != nil {
				return im, fmt.Errorf("write %s:%s to the layout: %w", bin, tag, err)
			}
		} else {
			img, err := desc.Image()
			if err != nil {
				return im, err
			}
			if tag == o.Version { // one platform: ko makes an image, not an index
				cf, err := img.ConfigFile()
				if err != nil {
					return im, err
				}
				if err := addSize(&im, cf.Platform().String(), desc.Size, img); err != nil {
					return im, err
				}
			}
			if err := lp.AppendImage(img, layout.WithAnnotations(anns)); err != nil {
				return im, fmt.Errorf("write %s:%s to the layout: %w", bin, tag, err)
			}
		}
	}
	if len(im.Platforms) == 0 {
		return im, fmt.Errorf("stage has no %s:%s", bin, o.Version)
	}
	return im, nil
}
