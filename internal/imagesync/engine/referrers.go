package engine

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferrypull/ferry/internal/imagesync/plan"
)

// cosignSuffixes are the tag-schema attachments cosign writes next to an image.
var cosignSuffixes = []string{".sig", ".att", ".sbom"}

// copyReferrers copies what refers to the image digest d (Options.Referrers):
//   - the OCI referrers: the fallback tag "sha256-<hex>" is copied byte-exact as an index (its
//     children are the referrer manifests), or, when the source has no such tag, each descriptor
//     returned by the referrers API is copied by digest;
//   - cosign's "sha256-<hex>.sig/.att/.sbom" tags.
//
// Each item already present in the destination is skipped after one HEAD.
func (e *Engine) copyReferrers(ctx context.Context, t plan.Task, srcRepo, dstRepo name.Repository, d string, counter *atomic.Int64) error {
	h, err := v1.NewHash(d)
	if err != nil {
		return err
	}
	base := h.Algorithm + "-" + h.Hex
	tagged := false
	for _, tag := range append([]string{base}, func() []string {
		out := make([]string, len(cosignSuffixes))
		for i, s := range cosignSuffixes {
			out[i] = base + s
		}
		return out
	}()...) {
		ok, err := e.copyTagIfPresent(ctx, t, srcRepo, dstRepo, tag, counter)
		if err != nil {
			return fmt.Errorf("referrers tag %s: %w", tag, err)
		}
		if tag == base {
			tagged = ok
		}
	}
	if tagged {
		return nil
	}
	idx, err := remote.Referrers(srcRepo.Digest(d), append(e.ropts, remote.WithContext(ctx))...)
	if err != nil {
		if isNotFound(err) || strings.Contains(err.Error(), "does not support the Referrers API") {
			return nil
		}
		return fmt.Errorf("list referrers of %s@%s: %w", srcRepo, d, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return err
	}
	for _, r := range im.Manifests {
		cref := dstRepo.Digest(r.Digest.String())
		if dd, found, err := e.head(ctx, cref); err == nil && found && dd == r.Digest {
			continue
		}
		desc, err := e.puller.Get(ctx, srcRepo.Digest(r.Digest.String()))
		if err != nil {
			return fmt.Errorf("get referrer %s: %w", r.Digest, err)
		}
		if err := e.copyTree(ctx, t, srcRepo, dstRepo, desc.Manifest, desc.MediaType, nil, cref, counter); err != nil {
			return err
		}
	}
	return nil
}

// copyTagIfPresent copies srcRepo:tag to dstRepo:tag byte-exact when the source has it and the
// destination differs; it reports whether the source has the tag.
func (e *Engine) copyTagIfPresent(ctx context.Context, t plan.Task, srcRepo, dstRepo name.Repository, tag string, counter *atomic.Int64) (bool, error) {
	sd, found, err := e.head(ctx, srcRepo.Tag(tag))
	if err != nil || !found {
		return false, err
	}
	if dd, dfound, err := e.head(ctx, dstRepo.Tag(tag)); err == nil && dfound && dd == sd {
		return true, nil
	}
	desc, err := e.puller.Get(ctx, srcRepo.Digest(sd.String()))
	if err != nil {
		return true, err
	}
	return true, e.copyTree(ctx, t, srcRepo, dstRepo, desc.Manifest, desc.MediaType, nil, dstRepo.Tag(tag), counter)
}
