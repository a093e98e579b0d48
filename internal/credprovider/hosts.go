package credprovider

import (
	"fmt"
	"net"
	"regexp"
	"strings"

	"github.com/distribution/reference"
)

// Edition is the kind of registry a host names.
type Edition string

// Editions recognised from a registry host.
const (
	// EditionEnterprise: <name>-registry[-vpc].<region>.cr.aliyuncs.com.
	EditionEnterprise Edition = "enterprise"
	// EditionPersonal: registry[-intl][-vpc].<region>.aliyuncs.com.
	EditionPersonal Edition = "personal"
	// EditionPersonalInstance: crpi-<id>[-vpc].<region>.personal.cr.aliyuncs.com, the Personal
	// Edition instances created since 2024-09-08, for which no temporary-token API exists.
	EditionPersonalInstance Edition = "personalInstance"
)

// Registry is what a registry host says about itself.
type Registry struct {
	// Host is host[:port] as in the image, lower-cased.
	Host string
	// Hostname is Host without the port.
	Hostname string
	Edition  Edition
	// Name is the Enterprise Edition instance name.
	Name   string
	Region string
	VPC    bool
}

var (
	eeHost       = regexp.MustCompile(`^([a-z0-9][a-z0-9-]*)-registry(-vpc)?\.([a-z]{2,}-[a-z0-9-]+)\.cr\.aliyuncs\.com$`)
	personalHost = regexp.MustCompile(`^registry(?:-intl)?(-vpc)?\.([a-z]{2,}-[a-z0-9-]+)\.aliyuncs\.com$`)
	crpiHost     = regexp.MustCompile(`^crpi-[a-z0-9]+(-vpc)?\.([a-z]{2,}-[a-z0-9-]+)\.personal\.cr\.aliyuncs\.com$`)
)

// ImageHost returns the registry host[:port] of an image reference as written. A name
// without a registry (nginx, library/nginx) is Docker Hub's: docker.io.
func ImageHost(image string) (string, error) {
	named, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		// name the reference but cap it: it is echoed to the kubelet log
		return "", fmt.Errorf("%q is not an image reference: %w", truncate(image, 256), err)
	}
	return reference.Domain(named), nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// ParseRegistry reads the edition, instance name, region and VPC-ness from an ACR registry
// host (any port). ok is false for other hosts (custom domains, the emulator's bare
// address): those need a mapping in the configuration.
func ParseRegistry(host string) (Registry, bool) {
	host = strings.ToLower(host)
	r := Registry{Host: host, Hostname: hostname(host)}
	if m := eeHost.FindStringSubmatch(r.Hostname); m != nil {
		r.Edition, r.Name, r.VPC, r.Region = EditionEnterprise, m[1], m[2] != "", m[3]
		return r, true
	}
	if m := personalHost.FindStringSubmatch(r.Hostname); m != nil {
		r.Edition, r.VPC, r.Region = EditionPersonal, m[1] != "", m[2]
		return r, true
	}
	if m := crpiHost.FindStringSubmatch(r.Hostname); m != nil {
		r.Edition, r.VPC, r.Region = EditionPersonalInstance, m[1] != "", m[2]
		return r, true
	}
	return r, false
}

// hostname drops a :port (and IPv6 brackets).
func hostname(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		return h
	}
	return host
}

// hostMatches reports whether the image host (host[:port]) is the domain (host or
// host:port): equal, or equal hostnames when the domain carries no port.
func hostMatches(imageHost, domain string) bool {
	imageHost, domain = strings.ToLower(imageHost), strings.ToLower(strings.TrimSpace(domain))
	if imageHost == domain {
		return true
	}
	if _, _, err := net.SplitHostPort(domain); err == nil {
		return false // the domain names a port and it is another one
	}
	return hostname(imageHost) == domain
}
