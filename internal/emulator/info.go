package emulator

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"

	"github.com/ferrypull/ferry/internal/atomicfile"
	"github.com/ferrypull/ferry/internal/emulator/registry"
	"github.com/ferrypull/ferry/internal/emulator/world"
)

// Info is the info file (--info-file): where every listener is and which
// identities and instances exist. Clients and tests read it; its keys are
// stable. It contains secrets (AccessKey secrets, passwords) and is written
// with mode 0600.
type Info struct {
	Region              string `json:"region"`
	OpenAPIEndpoint     string `json:"openapiEndpoint"`
	OpenAPITLSEndpoint  string `json:"openapiTLSEndpoint"`
	CAFile              string `json:"caFile"`
	MetadataProxy       string `json:"metadataProxy"`
	RegistryEndpoint    string `json:"registryEndpoint"`
	RegistryTLSEndpoint string `json:"registryTLSEndpoint"`
	// AdminURL serves the fault switch (/_ferry/faults), loopback only.
	AdminURL      string         `json:"adminURL"`
	HostsFile     string         `json:"hostsFile,omitempty"`
	DataDir       string         `json:"dataDir"`
	BareDomains   bool           `json:"bareDomains"`
	Accounts      []InfoAccount  `json:"accounts"`
	Instances     []InfoInstance `json:"instances"`
	OIDCProviders []InfoOIDC     `json:"oidcProviders,omitempty"`
}

// InfoAccount is an account with its root AccessKey, roles and users.
type InfoAccount struct {
	UID             string     `json:"uid"`
	Name            string     `json:"name"`
	AccessKeyID     string     `json:"accessKeyId"`
	AccessKeySecret string     `json:"accessKeySecret"`
	Roles           []InfoRole `json:"roles"`
	Users           []InfoUser `json:"users"`
}

// InfoRole is a RAM role.
type InfoRole struct {
	ARN  string `json:"arn"`
	Name string `json:"name"`
}

// InfoUser is a RAM user with its first AccessKey and registry password.
type InfoUser struct {
	Name            string `json:"name"`
	AccessKeyID     string `json:"accessKeyId"`
	AccessKeySecret string `json:"accessKeySecret"`
	Password        string `json:"password"`
}

// InfoInstance is a registry: an Enterprise instance or a region's Personal
// Edition registry (edition "Personal", instanceId "personal-<region>").
type InfoInstance struct {
	InstanceID   string `json:"instanceId"`
	InstanceName string `json:"instanceName"`
	RegionID     string `json:"regionId"`
	OwnerUID     string `json:"ownerUid"`
	Edition      string `json:"edition"`
	// Domains are the advertised registry hosts (with the TLS port unless
	// bare domains are in use), internet first.
	Domains []string `json:"domains"`
	// Whitelist is the internet endpoint's CIDR list (empty: open).
	Whitelist []string `json:"whitelist,omitempty"`
	Namespace string   `json:"namespace"`
	// Image is a pullable seeded image reference on the first domain.
	Image  string   `json:"image"`
	Images []string `json:"images,omitempty"`
}

// InfoOIDC is an OIDC provider.
type InfoOIDC struct {
	ARN       string   `json:"arn"`
	Name      string   `json:"name"`
	IssuerURL string   `json:"issuerURL"`
	ClientIDs []string `json:"clientIds"`
}

// ReadInfo parses an info file.
func ReadInfo(r io.Reader) (*Info, error) {
	var in Info
	dec := json.NewDecoder(r)
	if err := dec.Decode(&in); err != nil {
		return nil, fmt.Errorf("parse emulator info: %w", err)
	}
	return &in, nil
}

// ReadInfoFile reads an info file from disk.
func ReadInfoFile(path string) (*Info, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read emulator info: %w", err)
	}
	defer f.Close()
	return ReadInfo(f)
}

// writeInfoFile writes the info atomically (temporary file, then rename).
func writeInfoFile(path string, in *Info) error {
	data, err := json.MarshalIndent(in, "", "  ")
	if err != nil {
		return fmt.Errorf("encode emulator info: %w", err)
	}
	return atomicfile.Write(path, append(data, '\n'), 0o600)
}

// buildInfo collects the info of a started emulator.
func (e *Emulator) buildInfo() *Info {
	in := &Info{
		Region:              "cn-hangzhou",
		OpenAPIEndpoint:     e.addrs.openapi,
		OpenAPITLSEndpoint:  e.addrs.openapiTLS,
		CAFile:              e.caFile,
		MetadataProxy:       "http://" + e.addrs.metadata,
		RegistryEndpoint:    e.addrs.registry,
		RegistryTLSEndpoint: e.addrs.registryTLS,
		AdminURL:            "http://" + e.addrs.openapi + FaultsPath,
		HostsFile:           e.opts.HostsFile,
		DataDir:             e.opts.DataDir,
		BareDomains:         e.opts.BareDomains,
	}
	for _, a := range e.world.Accounts {
		ia := InfoAccount{UID: a.UID, Name: a.Name, Roles: []InfoRole{}, Users: []InfoUser{}}
		if len(a.AccessKeys) > 0 {
			ia.AccessKeyID, ia.AccessKeySecret = a.AccessKeys[0].ID, a.AccessKeys[0].Secret
		}
		for _, r := range a.Roles {
			ia.Roles = append(ia.Roles, InfoRole{ARN: r.ARN(), Name: r.Name})
		}
		for _, u := range a.Users {
			iu := InfoUser{Name: u.Name, Password: u.Password}
			if len(u.AccessKeys) > 0 {
				iu.AccessKeyID, iu.AccessKeySecret = u.AccessKeys[0].ID, u.AccessKeys[0].Secret
			}
			ia.Users = append(ia.Users, iu)
		}
		for _, p := range a.OIDCProviders {
			in.OIDCProviders = append(in.OIDCProviders, InfoOIDC{ARN: p.ARN(), Name: p.Name, IssuerURL: p.IssuerURL, ClientIDs: p.ClientIDs})
		}
		in.Accounts = append(in.Accounts, ia)
	}
	seedsBySite := map[string][]registry.Seed{}
	for _, s := range e.seeds {
		seedsBySite[s.SiteID] = append(seedsBySite[s.SiteID], s)
	}
	for _, s := range e.sites {
		ii := InfoInstance{
			InstanceID: s.ID, InstanceName: s.Name, RegionID: s.Region, OwnerUID: s.OwnerUID,
			Edition: world.EditionEnterprise, Domains: []string{},
		}
		if s.Personal {
			ii.Edition = world.EditionPersonal
		}
		if s.InternetEnabled {
			for _, d := range s.PublicDomains {
				ii.Domains = append(ii.Domains, e.Advertise(d))
			}
		}
		for _, d := range s.VPCDomains {
			ii.Domains = append(ii.Domains, e.Advertise(d))
		}
		for _, p := range s.Whitelist {
			ii.Whitelist = append(ii.Whitelist, p.String())
		}
		for i, sd := range seedsBySite[s.ID] {
			if len(ii.Domains) == 0 {
				break
			}
			ref := sd.Reference(ii.Domains[0])
			if i == 0 {
				ii.Namespace, ii.Image = sd.Namespace, ref
			}
			ii.Images = append(ii.Images, ref)
		}
		in.Instances = append(in.Instances, ii)
	}
	if len(in.Instances) > 0 {
		in.Region = in.Instances[0].RegionID
	}
	return in
}

// Advertise returns the host name clients use for a bare domain: with the
// TLS registry listener's port unless bare domains are in use.
func (e *Emulator) Advertise(domain string) string {
	if e.opts.BareDomains || e.addrs.registryTLS == "" {
		return domain
	}
	_, port, err := net.SplitHostPort(e.addrs.registryTLS)
	if err != nil || port == "443" {
		return domain
	}
	return net.JoinHostPort(domain, port)
}

// hostsLines renders /etc/hosts lines for every registry domain.
func (e *Emulator) hostsLines() []byte {
	var b []byte
	b = append(b, "# acr-emulator registry domains (data dir "+strconv.Quote(e.opts.DataDir)+")\n"...)
	for _, s := range e.sites {
		for _, d := range append(append([]string{}, s.PublicDomains...), s.VPCDomains...) {
			b = append(b, "127.0.0.1 "+d+"\n"...)
		}
	}
	return b
}
