package registry

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/ferrypull/ferry/internal/emulator/ram"
	"github.com/ferrypull/ferry/internal/emulator/world"
)

// PersonalSiteID is the site ID of a region's Personal Edition registry.
func PersonalSiteID(region string) string { return "personal-" + region }

// WorldDirectory is the Directory of an emulator world: Enterprise
// instances and the Personal Edition registry of each region, with logins
// and RAM decisions delegated to the ram service.
type WorldDirectory struct {
	svc *ram.Service
	w   *world.World
	// personal maps a region to the Personal instances (one per account) in it.
	personal map[string][]*world.Instance
}

var _ Directory = (*WorldDirectory)(nil)

// NewWorldDirectory returns the Directory of svc's world.
func NewWorldDirectory(svc *ram.Service) *WorldDirectory {
	d := &WorldDirectory{svc: svc, w: svc.World(), personal: map[string][]*world.Instance{}}
	for _, a := range d.w.Accounts {
		for _, p := range a.Personal {
			d.personal[p.Region] = append(d.personal[p.Region], p)
		}
	}
	return d
}

// principal adapts *ram.Principal to Principal.
type principal struct{ p *ram.Principal }

func (p principal) String() string { return p.p.ARN() }

// enterprise returns the Enterprise instances in world order (accounts,
// then instances as declared), so the first is the world's main instance.
func (d *WorldDirectory) enterprise() []*world.Instance {
	var out []*world.Instance
	for _, a := range d.w.Accounts {
		out = append(out, a.Instances...)
	}
	return out
}

// Sites lists every Enterprise instance in world order, then one Personal
// site per region.
func (d *WorldDirectory) Sites() []Site {
	var out []Site
	for _, inst := range d.enterprise() {
		s := Site{
			ID: inst.ID, Name: inst.Name, Region: inst.Region, OwnerUID: inst.Owner().UID,
			InternetEnabled: inst.InternetEndpoint.Enable,
			PublicDomains:   []string{inst.InternetDomain()},
		}
		if inst.VPCEndpoint.Enable {
			s.VPCDomains = []string{inst.VPCDomain()}
		}
		for _, c := range inst.InternetEndpoint.Whitelist {
			if p, err := parsePrefix(c); err == nil {
				s.Whitelist = append(s.Whitelist, p)
			}
		}
		out = append(out, s)
	}
	regions := slices.Sorted(maps.Keys(d.personal))
	for _, r := range regions {
		first := d.personal[r][0]
		out = append(out, Site{
			ID: PersonalSiteID(r), Region: r, OwnerUID: first.Owner().UID, Personal: true,
			InternetEnabled: true,
			PublicDomains:   []string{first.InternetDomain()},
			VPCDomains:      []string{first.VPCDomain()},
		})
	}
	return out
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		return netip.ParsePrefix(s)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// instances returns the world instances behind a site.
func (d *WorldDirectory) instances(siteID string) []*world.Instance {
	if region, ok := strings.CutPrefix(siteID, "personal-"); ok {
		return d.personal[region]
	}
	if inst, ok := d.w.InstanceByID(siteID); ok {
		return []*world.Instance{inst}
	}
	return nil
}

// instanceFor returns the instance holding namespace ns on a site.
func (d *WorldDirectory) instanceFor(siteID, ns string) (*world.Instance, bool) {
	if region, ok := strings.CutPrefix(siteID, "personal-"); ok {
		inst, _, ok := d.w.PersonalNamespace(region, ns)
		return inst, ok
	}
	inst, ok := d.w.InstanceByID(siteID)
	return inst, ok
}

// Login authenticates a TempUsername/AuthorizationToken pair or a RAM
// user's access-credential password.
func (d *WorldDirectory) Login(siteID, username, password string) (Principal, error) {
	insts := d.instances(siteID)
	if len(insts) == 0 {
		return nil, fmt.Errorf("login on %s: %w", siteID, ErrBadCredentials)
	}
	var lastErr error
	for _, inst := range insts {
		p, err := d.svc.AuthenticateRegistry(username, password, inst)
		if err == nil {
			return principal{p}, nil
		}
		lastErr = err
		if errors.Is(err, ram.ErrRegistryTokenExpired) {
			return nil, fmt.Errorf("login on %s: %w", siteID, ErrTokenExpired)
		}
	}
	return nil, fmt.Errorf("login on %s: %w (%w)", siteID, ErrBadCredentials, lastErr)
}

// Authorize asks the RAM service.
func (d *WorldDirectory) Authorize(p Principal, action, resource string, source netip.Addr) error {
	rp, ok := p.(principal)
	if !ok || rp.p == nil {
		return fmt.Errorf("%s on %s: not an authenticated RAM identity", action, resource)
	}
	return d.svc.Authorize(rp.p, action, resource, ram.NewContext(source, false, d.svc.Now()))
}

// Namespace looks a namespace up in the world.
func (d *WorldDirectory) Namespace(siteID, ns string) (Namespace, bool) {
	inst, ok := d.instanceFor(siteID, ns)
	if !ok {
		return Namespace{}, false
	}
	n, ok := d.w.Namespace(inst, ns)
	if !ok {
		return Namespace{}, false
	}
	return Namespace{OwnerUID: inst.Owner().UID, AutoCreateRepo: n.AutoCreateRepo, DefaultPublic: n.DefaultRepoType == world.RepoTypePublic}, true
}

// Repository looks a repository up in the world.
func (d *WorldDirectory) Repository(siteID, ns, repo string) (Repository, bool) {
	inst, ok := d.instanceFor(siteID, ns)
	if !ok {
		return Repository{}, false
	}
	r, ok := d.w.Repository(inst, ns, repo)
	if !ok {
		return Repository{}, false
	}
	return Repository{Public: r.RepoType == world.RepoTypePublic}, true
}

// CreateRepository records a pushed repository in the world.
func (d *WorldDirectory) CreateRepository(siteID, ns, repo string, public bool) error {
	inst, ok := d.instanceFor(siteID, ns)
	if !ok {
		return fmt.Errorf("create repository %s/%s on %s: namespace not found", ns, repo, siteID)
	}
	t := world.RepoTypePrivate
	if public {
		t = world.RepoTypePublic
	}
	_, err := d.w.CreateRepository(inst, world.Repository{Namespace: ns, Name: repo, RepoType: t})
	if err != nil && !errors.Is(err, world.ErrAlreadyExists) {
		return fmt.Errorf("create repository %s/%s on %s: %w", ns, repo, siteID, err)
	}
	return nil
}

// Seed names an image the emulator seeds at start.
type Seed struct {
	SiteID, Namespace, Repo, Tag string
}

// Reference renders the seed as <domain>/<ns>/<repo>:<tag> for a registry host.
func (s Seed) Reference(host string) string {
	return host + "/" + s.Namespace + "/" + s.Repo + ":" + s.Tag
}

// Seeds lists the world's seeded images (instance Images, "ns/repo:tag").
func (d *WorldDirectory) Seeds() ([]Seed, error) {
	var out []Seed
	add := func(siteID string, images []string) error {
		for _, ref := range images {
			path, tag, ok := strings.Cut(ref, ":")
			if !ok {
				tag = "latest"
			}
			ns, repo, ok := splitRepository(path)
			if !ok {
				return fmt.Errorf("seed image %q of %s: want <namespace>/<repo>:<tag>", ref, siteID)
			}
			out = append(out, Seed{SiteID: siteID, Namespace: ns, Repo: repo, Tag: tag})
		}
		return nil
	}
	for _, inst := range d.enterprise() {
		if err := add(inst.ID, inst.Images); err != nil {
			return nil, err
		}
	}
	regions := slices.Sorted(maps.Keys(d.personal))
	for _, r := range regions {
		for _, inst := range d.personal[r] {
			if err := add(PersonalSiteID(r), inst.Images); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}
