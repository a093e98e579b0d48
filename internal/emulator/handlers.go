package emulator

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"

	"github.com/ferrypull/ferry/internal/emulator/eci"
	"github.com/ferrypull/ferry/internal/emulator/eci/cri"
	"github.com/ferrypull/ferry/internal/emulator/imds"
	"github.com/ferrypull/ferry/internal/emulator/openapi"
	"github.com/ferrypull/ferry/internal/emulator/registry"
	"github.com/ferrypull/ferry/internal/emulator/world"
)

// openAPIHandler serves the Container Registry OpenAPI and STS.
func (e *Emulator) openAPIHandler() http.Handler {
	region := "cn-hangzhou"
	if len(e.sites) > 0 {
		region = e.sites[0].Region
	}
	return openapi.New(e.ram,
		openapi.WithLogger(e.log.With("component", "openapi")),
		openapi.WithTagLister(tagLister{e.front}),
		openapi.WithDefaultRegion(region),
		// Read per request: the TLS registry port is known only once Start has bound it.
		openapi.WithDomainAdvertiser(e.Advertise),
		openapi.WithECI(e.eci))
}

// startECI connects the ECI service to its containerd, when one is configured.
func (e *Emulator) startECI(ctx context.Context) error {
	if e.opts.ECIContainerdSocket == "" {
		return nil
	}
	rt, err := cri.Dial(ctx, cri.Options{Socket: e.opts.ECIContainerdSocket, HostsDir: e.opts.ECIContainerdHostsDir,
		LogDir: filepath.Join(e.opts.DataDir, "eci", "logs"), Logger: e.log.With("component", "eci")})
	if err != nil {
		return fmt.Errorf("--eci-containerd-socket: %w", err)
	}
	e.eciRT = rt
	e.eci = eci.New(rt, eci.WithLogger(e.log.With("component", "eci")))
	return nil
}

// tagLister adapts the registry front to the OpenAPI's ListRepoTag.
type tagLister struct{ front *registry.Front }

func (t tagLister) ListTags(ctx context.Context, inst *world.Instance, ns, repo string, offset, limit int) ([]openapi.Tag, int, error) {
	site := inst.ID
	if inst.Edition() == world.EditionPersonal {
		site = registry.PersonalSiteID(inst.Region)
	}
	tags, total, err := t.front.ListTagsPage(ctx, site, ns, repo, offset, limit)
	if err != nil {
		return nil, 0, err
	}
	out := make([]openapi.Tag, 0, len(tags))
	for _, tg := range tags {
		out = append(out, openapi.Tag{Tag: tg.Tag, Digest: tg.Digest, ImageID: tg.Config, Size: tg.Size, Created: tg.Updated, Updated: tg.Updated})
	}
	return out, total, nil
}

// metadataHandler serves ECS instance metadata (also as an HTTP proxy
// target for http://100.100.100.200/).
func (e *Emulator) metadataHandler() http.Handler {
	return imds.New(e.ram, imds.WithLogger(e.log.With("component", "imds")))
}
