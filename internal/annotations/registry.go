package annotations

import (
	"net/netip"
	"path"
	"strconv"
	"strings"
)

// RegistryHost is one entry of plain-http-registry or insecure-registry: a
// host name (possibly with '*' wildcards inside labels, as in the ECI example
// "harbor*.pre.com"), an IPv4 or IPv6 address, and an optional port.
type RegistryHost struct {
	Host string // lower-cased name, or an IP address without brackets
	Port string // "" when the entry has no port
	IP   bool   // Host is an IP address
}

// Wildcard reports whether the host contains a '*' pattern.
func (h RegistryHost) Wildcard() bool { return strings.Contains(h.Host, "*") }

// String renders the entry as a registry host namespace, the form used in image
// references and as containerd's certs.d directory name: host, host:port,
// [v6addr] or [v6addr]:port.
func (h RegistryHost) String() string {
	host := h.Host
	if h.IP && strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if h.Port == "" {
		return host
	}
	return host + ":" + h.Port
}

// Matches reports whether an image's registry host (as returned by ImageHost)
// is covered by this entry. The port must match exactly: an entry without a
// port matches only references without a port, as on ECI.
func (h RegistryHost) Matches(imageHost string) bool {
	other, err := ParseRegistryHost("", imageHost)
	if err != nil || other.Wildcard() || other.Port != h.Port || other.IP != h.IP {
		return false
	}
	if !h.Wildcard() {
		return other.Host == h.Host
	}
	return globHost(h.Host, other.Host)
}

// globHost matches a host name against a pattern label by label; '*' never
// crosses a dot.
func globHost(pattern, host string) bool {
	pl, hl := strings.Split(pattern, "."), strings.Split(host, ".")
	if len(pl) != len(hl) {
		return false
	}
	for i := range pl {
		ok, err := path.Match(pl[i], hl[i])
		if err != nil || !ok {
			return false
		}
	}
	return true
}

// ParseRegistryHosts parses a plain-http-registry or insecure-registry value:
// a comma list of host[:port] entries. Duplicates are dropped.
func ParseRegistryHosts(annotation, value string) ([]RegistryHost, error) {
	entries, err := splitList(annotation, value)
	if err != nil {
		return nil, err
	}
	out := make([]RegistryHost, 0, len(entries))
	seen := map[RegistryHost]bool{}
	for _, e := range entries {
		h, err := ParseRegistryHost(annotation, e)
		if err != nil {
			return nil, err
		}
		if !seen[h] {
			seen[h] = true
			out = append(out, h)
		}
	}
	return out, nil
}

// ParseRegistryHost parses one host[:port] entry. IPv6 addresses with a port
// must be bracketed ("[fd00::1]:5000"); a bare IPv6 address is accepted
// without brackets when it has no port.
func ParseRegistryHost(annotation, entry string) (RegistryHost, error) {
	if strings.Contains(entry, "://") {
		return RegistryHost{}, invalid(annotation, entry, "must be host[:port] without a scheme")
	}
	if strings.ContainsAny(entry, "/?#@ \t") {
		return RegistryHost{}, invalid(annotation, entry, "must be host[:port] without a path, user or spaces")
	}
	host, port := entry, ""
	switch {
	case strings.HasPrefix(entry, "["):
		end := strings.Index(entry, "]")
		if end < 0 {
			return RegistryHost{}, invalid(annotation, entry, "unterminated '[' in IPv6 address")
		}
		host = entry[1:end]
		rest := entry[end+1:]
		if rest != "" {
			p, ok := strings.CutPrefix(rest, ":")
			if !ok {
				return RegistryHost{}, invalid(annotation, entry, "unexpected %q after IPv6 address", rest)
			}
			port = p
		}
		a, err := netip.ParseAddr(host)
		if err != nil || !a.Is6() || a.Zone() != "" {
			return RegistryHost{}, invalid(annotation, entry, "%q is not an IPv6 address", host)
		}
		host = a.String()
		if err := checkPort(annotation, entry, port, rest != ""); err != nil {
			return RegistryHost{}, err
		}
		return RegistryHost{Host: host, Port: port, IP: true}, nil
	case strings.Count(entry, ":") > 1:
		a, err := netip.ParseAddr(entry)
		if err != nil || a.Zone() != "" {
			return RegistryHost{}, invalid(annotation, entry, "not a host[:port]; IPv6 addresses with a port need brackets")
		}
		return RegistryHost{Host: a.String(), IP: true}, nil
	}
	if h, p, ok := strings.Cut(entry, ":"); ok {
		host, port = h, p
		if err := checkPort(annotation, entry, port, true); err != nil {
			return RegistryHost{}, err
		}
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if !a.Is4() {
			return RegistryHost{}, invalid(annotation, entry, "%q is not an IPv4 address", host)
		}
		return RegistryHost{Host: a.String(), Port: port, IP: true}, nil
	}
	host = strings.ToLower(host)
	if reason := checkHostname(host); reason != "" {
		return RegistryHost{}, invalid(annotation, entry, "%s", reason)
	}
	return RegistryHost{Host: host, Port: port}, nil
}

func checkPort(annotation, entry, port string, present bool) error {
	if !present {
		return nil
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
		return invalid(annotation, entry, "port %q must be a number from 1 to 65535", port)
	}
	return nil
}

// checkHostname validates a DNS name whose labels may contain '*' wildcards.
// It returns "" when the name is acceptable, else the reason.
func checkHostname(h string) string {
	if h == "" {
		return "empty host"
	}
	if len(h) > 253 {
		return "host name longer than 253 characters"
	}
	labels := strings.Split(h, ".")
	for _, l := range labels {
		if l == "" {
			return "host name has an empty label"
		}
		if len(l) > 63 {
			return "host name label longer than 63 characters"
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return "host name label starts or ends with '-'"
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '*') {
				return "host name may contain only letters, digits, '-', '.' and '*'"
			}
		}
	}
	if labels[len(labels)-1] == "*" || strings.Trim(h, "*.") == "" {
		return "wildcard must leave a concrete domain"
	}
	return ""
}

// ImageHost returns the registry host namespace of an image reference, the way
// container runtimes normalise it: the first path component when it contains
// '.' or ':' or is "localhost", otherwise docker.io.
func ImageHost(ref string) string {
	first, _, ok := strings.Cut(ref, "/")
	if !ok {
		return "docker.io"
	}
	if strings.ContainsAny(first, ".:") || first == "localhost" {
		return strings.ToLower(first)
	}
	return "docker.io"
}

// RegistryMode is how a registry host must be reached.
type RegistryMode string

const (
	// ModePlainHTTP: plain HTTP instead of HTTPS.
	ModePlainHTTP RegistryMode = "plain-http"
	// ModeInsecure: HTTPS without certificate verification.
	ModeInsecure RegistryMode = "insecure"
)

// RegistryRequest is one concrete registry host a Pod asks to reach with a
// downgraded transport.
type RegistryRequest struct {
	Annotation string       // the annotation that asked for it
	Host       string       // host namespace (RegistryHost.String), never a wildcard
	Mode       RegistryMode // ModePlainHTTP or ModeInsecure
}

// RegistryRequests returns the concrete hosts a Pod asks to reach over plain
// HTTP or insecure TLS. Literal entries are returned as written (normalised);
// wildcard entries are expanded against the hosts of the Pod's images, since
// containerd's hosts.toml has no wildcards. A host listed under both
// annotations is returned once, as plain HTTP. It returns nil and no error when
// neither annotation is set.
func RegistryRequests(annotations map[string]string, images []string) ([]RegistryRequest, error) {
	var out []RegistryRequest
	seen := map[string]bool{}
	for _, a := range []struct {
		key  string
		mode RegistryMode
	}{{PlainHTTPRegistry, ModePlainHTTP}, {InsecureRegistry, ModeInsecure}} {
		v, ok := annotations[a.key]
		if !ok {
			continue
		}
		hosts, err := ParseRegistryHosts(a.key, v)
		if err != nil {
			return nil, err
		}
		add := func(h string) {
			if !seen[h] {
				seen[h] = true
				out = append(out, RegistryRequest{Annotation: a.key, Host: h, Mode: a.mode})
			}
		}
		for _, h := range hosts {
			if !h.Wildcard() {
				add(h.String())
				continue
			}
			for _, img := range images {
				if ih := ImageHost(img); h.Matches(ih) {
					add(ih)
				}
			}
		}
	}
	return out, nil
}

// HasRegistryAnnotations reports whether a Pod carries plain-http-registry or
// insecure-registry.
func HasRegistryAnnotations(annotations map[string]string) bool {
	_, a := annotations[PlainHTTPRegistry]
	_, b := annotations[InsecureRegistry]
	return a || b
}
