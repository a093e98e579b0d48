package engine

import (
	"encoding/json"
	"fmt"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// PlatformFilter selects index children by platform, like upstream's --os/--arch. An empty filter
// selects everything and never changes a digest.
type PlatformFilter struct {
	OS   []osSpec
	Arch []archSpec
	// Sparse keeps the original index bytes (and digest) and copies only the selected children;
	// otherwise (the upstream behaviour, "rewrite") a new index listing only them is pushed.
	Sparse bool
}

type osSpec struct{ os, version string }
type archSpec struct{ os, arch, variant string }

// ParsePlatformFilter accepts repeatable values and comma lists: --os linux, --os windows:10.0.17763,
// --arch amd64, --arch arm:v7 (upstream's colon variant), --arch linux/arm64/v8.
func ParsePlatformFilter(oses, arches []string, sparse bool) (PlatformFilter, error) {
	f := PlatformFilter{Sparse: sparse}
	for _, v := range splitAll(oses) {
		o, ver, _ := strings.Cut(v, ":")
		if o == "" || strings.ContainsAny(o, "/ ") {
			return f, fmt.Errorf("--os %q: want os or os:osversion", v)
		}
		f.OS = append(f.OS, osSpec{os: o, version: ver})
	}
	for _, v := range splitAll(arches) {
		var s archSpec
		if strings.Contains(v, "/") {
			parts := strings.Split(v, "/")
			if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
				return f, fmt.Errorf("--arch %q: want arch, arch:variant or os/arch[/variant]", v)
			}
			s.os, s.arch = parts[0], parts[1]
			if len(parts) == 3 {
				s.variant = parts[2]
			}
		} else {
			s.arch, s.variant, _ = strings.Cut(v, ":")
			if s.arch == "" || strings.Contains(s.variant, ":") {
				return f, fmt.Errorf("--arch %q: want arch, arch:variant or os/arch[/variant]", v)
			}
		}
		f.Arch = append(f.Arch, s)
	}
	return f, nil
}

// String is the filter in a canonical form ("" when inactive), e.g. "os=linux arch=/arm/v7
// sparse"; the state records it so a copy made with one filter is not taken for another's.
func (f PlatformFilter) String() string {
	if !f.Active() {
		return ""
	}
	var parts []string
	for _, o := range f.OS {
		parts = append(parts, "os="+strings.TrimSuffix(o.os+":"+o.version, ":"))
	}
	for _, a := range f.Arch {
		parts = append(parts, "arch="+a.os+"/"+a.arch+"/"+a.variant)
	}
	if f.Sparse {
		parts = append(parts, "sparse")
	}
	return strings.Join(parts, " ")
}

func splitAll(vs []string) []string {
	var out []string
	for _, v := range vs {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

// Active reports whether the filter selects anything less than everything.
func (f PlatformFilter) Active() bool { return len(f.OS) > 0 || len(f.Arch) > 0 }

// Match reports whether a platform passes the filter. A descriptor without a platform passes only
// an inactive filter.
func (f PlatformFilter) Match(p *v1.Platform) bool {
	if !f.Active() {
		return true
	}
	if p == nil {
		return false
	}
	osOK := len(f.OS) == 0
	for _, o := range f.OS {
		if o.os == p.OS && (o.version == "" || o.version == p.OSVersion) {
			osOK = true
		}
	}
	archOK := len(f.Arch) == 0
	for _, a := range f.Arch {
		if a.arch == p.Architecture && (a.variant == "" || a.variant == p.Variant) && (a.os == "" || a.os == p.OS) {
			archOK = true
		}
	}
	return osOK && archOK
}

// filterIndex returns the selected children and, for rewrite mode, the new index bytes. The new
// index keeps every top-level field and every kept descriptor byte-for-byte (only the manifests
// array shrinks; top-level keys are re-ordered alphabetically by encoding/json).
func (f PlatformFilter) filterIndex(raw []byte) (kept []v1.Descriptor, ignored []v1.Descriptor, out []byte, err error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(raw, &top); err != nil {
		return nil, nil, nil, fmt.Errorf("parse index: %w", err)
	}
	var items []json.RawMessage
	if err := json.Unmarshal(top["manifests"], &items); err != nil {
		return nil, nil, nil, fmt.Errorf("parse index manifests: %w", err)
	}
	var keptRaw []json.RawMessage
	for _, it := range items {
		var d v1.Descriptor
		if err := json.Unmarshal(it, &d); err != nil {
			return nil, nil, nil, fmt.Errorf("parse index descriptor: %w", err)
		}
		if f.Match(d.Platform) {
			kept = append(kept, d)
			keptRaw = append(keptRaw, it)
		} else {
			ignored = append(ignored, d)
		}
	}
	if f.Sparse || len(ignored) == 0 {
		return kept, ignored, raw, nil
	}
	if keptRaw == nil {
		keptRaw = []json.RawMessage{}
	}
	top["manifests"], err = json.Marshal(keptRaw)
	if err != nil {
		return nil, nil, nil, err
	}
	out, err = json.Marshal(top)
	return kept, ignored, out, err
}
