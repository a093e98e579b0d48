package hostsconfig

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/ferrypull/ferry/internal/annotations"
)

// Allowlist decides which registry hosts a Pod annotation may downgrade to
// plain HTTP or unverified TLS on this node. The zero value (and an empty
// list) allows nothing.
//
// Patterns:
//
//	harbor.corp           the host on any port
//	harbor.corp:5000      the host on that port only
//	*.corp, *.corp:5000   any name ending in ".corp" (not "corp" itself), any or that port
//	10.0.0.0/8, fd00::/8  any IP address in the prefix, any port
//	192.168.1.5[:5000]    one IP address, any or that port ([v6]:port for IPv6)
type Allowlist struct {
	rules []rule
}

type rule struct {
	raw    string
	host   string       // exact host (name or canonical IP)
	suffix string       // ".corp" for "*.corp"
	prefix netip.Prefix // CIDR rule when valid
	port   string       // "" = any
}

// ParseAllowlist parses --allowed-registries patterns. Blank entries are
// skipped; any malformed entry is an error naming it.
func ParseAllowlist(patterns []string) (*Allowlist, error) {
	a := &Allowlist{}
	for _, p := range patterns {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		r, err := parseRule(p)
		if err != nil {
			return nil, fmt.Errorf("--allowed-registries entry %q: %w", p, err)
		}
		a.rules = append(a.rules, r)
	}
	return a, nil
}

func parseRule(p string) (rule, error) {
	if strings.Contains(p, "/") {
		pfx, err := netip.ParsePrefix(p)
		if err != nil {
			return rule{}, fmt.Errorf("not a CIDR prefix: %w", err)
		}
		return rule{raw: p, prefix: pfx.Masked()}, nil
	}
	if rest, ok := strings.CutPrefix(p, "*."); ok {
		h, err := annotations.ParseRegistryHost("", rest)
		if err != nil || h.IP || h.Wildcard() {
			return rule{}, fmt.Errorf("wildcard must be *.<domain>[:port]")
		}
		return rule{raw: p, suffix: "." + h.Host, port: h.Port}, nil
	}
	h, err := annotations.ParseRegistryHost("", p)
	if err != nil {
		reason := err.Error()
		var ae *annotations.Error
		if errors.As(err, &ae) {
			reason = ae.Reason
		}
		return rule{}, fmt.Errorf("want host, host:port, *.domain or CIDR: %s", reason)
	}
	if h.Wildcard() {
		return rule{}, fmt.Errorf("'*' is only allowed as a leading \"*.\"")
	}
	return rule{raw: p, host: h.Host, port: h.Port}, nil
}

// Allows reports whether host (a registry host namespace: host, host:port,
// [v6]:port) matches a pattern.
func (a *Allowlist) Allows(host string) bool {
	if a == nil || len(a.rules) == 0 {
		return false
	}
	h, err := annotations.ParseRegistryHost("", host)
	if err != nil || h.Wildcard() {
		return false
	}
	for _, r := range a.rules {
		if r.port != "" && r.port != h.Port {
			continue
		}
		switch {
		case r.prefix.IsValid():
			if !h.IP {
				continue
			}
			addr, err := netip.ParseAddr(h.Host)
			if err == nil && (r.prefix.Contains(addr) || r.prefix.Contains(addr.Unmap())) {
				return true
			}
		case r.suffix != "":
			if !h.IP && strings.HasSuffix(h.Host, r.suffix) {
				return true
			}
		default:
			if h.Host == r.host {
				return true
			}
		}
	}
	return false
}

// Len returns the number of patterns.
func (a *Allowlist) Len() int {
	if a == nil {
		return 0
	}
	return len(a.rules)
}

// String lists the patterns, comma-separated.
func (a *Allowlist) String() string {
	if a == nil {
		return ""
	}
	s := make([]string, len(a.rules))
	for i, r := range a.rules {
		s[i] = r.raw
	}
	return strings.Join(s, ",")
}
