package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"slices"
	"time"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/registry/storage"
	"github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	"github.com/distribution/reference"
)

// Tag is one tag of a repository as ListRepoTag reports it.
type Tag struct {
	Tag    string
	Digest string
	// Size is the manifest plus every blob it references, in bytes.
	Size int64
	// Updated is when the tag was last written.
	Updated time.Time
	// Config is the digest of the image configuration (the image ID), empty for an index.
	Config string
}

// ErrUnknownSite is returned for a site ID the front does not serve.
var ErrUnknownSite = errors.New("unknown registry site")

// ListTags lists the tags of ns/repo on a site, read from the registry's
// storage, sorted by tag. A repository without images has no tags.
func (f *Front) ListTags(ctx context.Context, siteID, ns, repo string) ([]Tag, error) {
	tags, _, err := f.ListTagsPage(ctx, siteID, ns, repo, 0, -1)
	return tags, err
}

// ListTagsPage lists at most limit tags of ns/repo (all with limit < 0) from
// the offset-th on, sorted by tag, and the number of tags there are. Only the
// tags of the page have their manifests read, so paging through a repository
// of many tags costs one directory listing per page.
func (f *Front) ListTagsPage(ctx context.Context, siteID, ns, repo string, offset, limit int) ([]Tag, int, error) {
	s := f.lookupSite(siteID)
	if s == nil {
		return nil, 0, fmt.Errorf("list tags of %s/%s: %w: %q", ns, repo, ErrUnknownSite, siteID)
	}
	name, err := reference.WithName(ns + "/" + repo)
	if err != nil {
		return nil, 0, fmt.Errorf("list tags: repository %q: %w", ns+"/"+repo, err)
	}
	drv := filesystem.New(filesystem.DriverParameters{RootDirectory: s.rootDir, MaxThreads: 16})
	reg, err := storage.NewRegistry(ctx, drv)
	if err != nil {
		return nil, 0, fmt.Errorf("list tags: open storage of %s: %w", s.ID, err)
	}
	r, err := reg.Repository(ctx, name)
	if err != nil {
		return nil, 0, fmt.Errorf("list tags: open %s: %w", name, err)
	}
	names, err := r.Tags(ctx).All(ctx)
	if err != nil {
		var unknown distribution.ErrRepositoryUnknown
		var notFound driver.PathNotFoundError
		if errors.As(err, &unknown) || errors.As(err, &notFound) {
			return nil, 0, nil
		}
		return nil, 0, fmt.Errorf("list tags of %s: %w", name, err)
	}
	slices.Sort(names)
	total := len(names)
	offset = min(max(offset, 0), total)
	names = names[offset:]
	if limit >= 0 && limit < len(names) {
		names = names[:limit]
	}
	manifests, err := r.Manifests(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("list tags of %s: %w", name, err)
	}
	tags := make([]Tag, 0, len(names))
	for _, t := range names {
		desc, err := r.Tags(ctx).Get(ctx, t)
		if err != nil {
			return nil, 0, fmt.Errorf("get tag %s:%s: %w", name, t, err)
		}
		tag := Tag{Tag: t, Digest: desc.Digest.String(), Size: desc.Size}
		if m, err := manifests.Get(ctx, desc.Digest); err == nil {
			if _, raw, err := m.Payload(); err == nil {
				size, config := referenced(raw)
				tag.Size, tag.Config = int64(len(raw))+size, config
			}
		}
		link := path.Join("/docker/registry/v2/repositories", name.Name(), "_manifests/tags", t, "current/link")
		if fi, err := drv.Stat(ctx, link); err == nil {
			tag.Updated = fi.ModTime()
		}
		tags = append(tags, tag)
	}
	return tags, total, nil
}

// referenced sums the sizes of the config, layers and child manifests named
// by a manifest or index, and returns the config digest (empty for an index).
func referenced(raw []byte) (size int64, config string) {
	var m struct {
		Config struct {
			Size   int64  `json:"size"`
			Digest string `json:"digest"`
		} `json:"config"`
		Layers    []struct{ Size int64 } `json:"layers"`
		Manifests []struct{ Size int64 } `json:"manifests"`
	}
	if json.Unmarshal(raw, &m) != nil {
		return 0, ""
	}
	n := m.Config.Size
	for _, l := range m.Layers {
		n += l.Size
	}
	for _, l := range m.Manifests {
		n += l.Size
	}
	return n, m.Config.Digest
}
