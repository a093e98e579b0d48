// Command images builds ferry's container images (`make images`): the self-built minimal base
// and one multi-arch image per binary with ko, into an OCI layout, optionally pushed to a
// registry. See internal/imagebuild and docs/development.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ferrypull/ferry/internal/imagebuild"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "images:", err)
		os.Exit(1)
	}
}

func run() error {
	var o imagebuild.Options
	var binaries, platforms, epoch string
	flag.StringVar(&o.Out, "out", "bin/images", "output directory (OCI layouts base/ and oci/, sbom/, images.json)")
	flag.StringVar(&o.Ko, "ko", os.Getenv("FERRY_KO"), "ko binary (FERRY_KO in bin/tools.env)")
	flag.StringVar(&binaries, "binaries", "acr-credential-helper,node-agent,image-syncer,acr-emulator,acr-credential-provider", "binaries below cmd/")
	flag.StringVar(&platforms, "platforms", "linux/amd64,linux/arm64", "platforms of each index")
	flag.StringVar(&o.Version, "version", "", "image tag and org.opencontainers.image.version (default: git describe --tags --always --dirty)")
	flag.StringVar(&o.Revision, "revision", "", "org.opencontainers.image.revision (default: git rev-parse HEAD)")
	flag.StringVar(&o.Source, "source", "https://github.com/ferrypull/ferry", "org.opencontainers.image.source")
	flag.StringVar(&epoch, "epoch", os.Getenv("SOURCE_DATE_EPOCH"), "SOURCE_DATE_EPOCH (default: the commit time)")
	flag.StringVar(&o.BaseImage, "base-image", "", "a public base image (by digest) instead of the self-built one")
	flag.StringVar(&o.CABundle, "ca-bundle", imagebuild.CABundlePath, "CA bundle for the self-built base (Debian's ca-certificates)")
	flag.StringVar(&o.Registry, "registry", "", "push to host:port[/path] as <registry>/<binary>:<version> (default: ferrypull below host:port)")
	flag.BoolVar(&o.Insecure, "insecure", false, "allow plain HTTP or unverified TLS towards --registry")
	flag.StringVar(&o.RegistryCA, "registry-ca", "", "PEM file to trust for --registry")
	pushOnly := flag.Bool("push-only", false, "push the layout in --out/oci to --registry without building")
	flag.Parse()

	root, err := git("rev-parse", "--show-toplevel")
	if err != nil {
		return err
	}
	o.Root = root
	if !filepath.IsAbs(o.Out) {
		o.Out = filepath.Join(root, o.Out)
	}
	o.Binaries = strings.Split(binaries, ",")
	o.Platforms = strings.Split(platforms, ",")
	if o.Version == "" {
		if o.Version, err = git("describe", "--tags", "--always", "--dirty"); err != nil {
			return err
		}
	}
	if o.Revision == "" {
		if o.Revision, err = git("rev-parse", "HEAD"); err != nil {
			return err
		}
	}
	if epoch == "" {
		if epoch, err = git("log", "-1", "--format=%ct"); err != nil {
			return err
		}
	}
	sec, err := strconv.ParseInt(epoch, 10, 64)
	if err != nil {
		return fmt.Errorf("--epoch %q: want seconds since 1970", epoch)
	}
	o.Epoch = time.Unix(sec, 0)
	if o.Registry != "" && !strings.Contains(o.Registry, "/") {
		o.Registry += "/ferrypull"
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *pushOnly {
		if o.Registry == "" {
			return fmt.Errorf("--push-only needs --registry")
		}
		pushed, err := imagebuild.Push(ctx, imagebuild.PushOptions{Layout: filepath.Join(o.Out, "oci"), Registry: o.Registry,
			Insecure: o.Insecure, CAFile: o.RegistryCA, Log: os.Stderr})
		for _, b := range o.Binaries {
			if p, ok := pushed[b]; ok {
				fmt.Printf("%-22s %s\n", b, p)
			}
		}
		return err
	}
	if o.BaseImage == "" {
		o.CAVersion = debVersion("ca-certificates")
	}
	o.Log = os.Stderr
	t0 := time.Now()
	res, err := imagebuild.Build(ctx, o)
	if err != nil {
		return err
	}
	for _, im := range res.Images {
		var sizes []string
		for _, p := range slices.Sorted(maps.Keys(im.Platforms)) {
			sizes = append(sizes, fmt.Sprintf("%s %.1f MiB", p, float64(im.Platforms[p])/(1<<20)))
		}
		fmt.Printf("%-22s %s  %s %s\n", im.Binary, im.Digest, strings.Join(sizes, ", "), im.Pushed)
	}
	fmt.Fprintf(os.Stderr, "[images] done in %s: %s\n", time.Since(t0).Round(time.Second), filepath.Join(o.Out, "oci"))
	return nil
}

func git(args ...string) (string, error) {
	out, err := exec.Command("git", args...).Output()
	if err != nil {
		return "", fmt.Errorf("git %s: %w", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out)), nil
}

// debVersion is the installed version of a Debian package, or "unknown".
func debVersion(pkg string) string {
	out, err := exec.Command("dpkg-query", "-W", "-f=${Version}", pkg).Output()
	if err != nil || len(out) == 0 {
		return "unknown"
	}
	return pkg + " " + string(out)
}
