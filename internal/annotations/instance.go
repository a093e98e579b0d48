package annotations

import (
	"strings"
)

// InstanceRef names one ACR Enterprise Edition instance, optionally in another
// region than the cluster's default ("cn-beijing:cri-xxxx").
type InstanceRef struct {
	RegionID   string // empty: the default region configured for the helper
	InstanceID string // cri-…
}

// String renders the reference in annotation form: [regionId:]instanceId.
func (r InstanceRef) String() string {
	if r.RegionID == "" {
		return r.InstanceID
	}
	return r.RegionID + ":" + r.InstanceID
}

// ParseInstanceIDs parses the value of acr-instance-id or acr-instance-ids:
// a comma list of [regionId:]cri-… entries. Whitespace around entries is
// ignored, empty entries are skipped and duplicates are dropped (first wins).
// annotation names the key in errors.
func ParseInstanceIDs(annotation, value string) ([]InstanceRef, error) {
	entries, err := splitList(annotation, value)
	if err != nil {
		return nil, err
	}
	out := make([]InstanceRef, 0, len(entries))
	seen := make(map[InstanceRef]bool, len(entries))
	for _, e := range entries {
		ref, err := parseInstanceRef(annotation, e)
		if err != nil {
			return nil, err
		}
		if seen[ref] {
			continue
		}
		seen[ref] = true
		out = append(out, ref)
	}
	return out, nil
}

func parseInstanceRef(annotation, entry string) (InstanceRef, error) {
	region, id, hasRegion := strings.Cut(entry, ":")
	if !hasRegion {
		id, region = region, ""
	}
	region, id = strings.TrimSpace(region), strings.TrimSpace(id)
	if hasRegion && !validRegion(region) {
		return InstanceRef{}, invalid(annotation, entry, "region %q is not a region id like cn-beijing", region)
	}
	if !validInstanceID(id) {
		return InstanceRef{}, invalid(annotation, entry, "instance id %q is not an ACR Enterprise Edition id like cri-abc123", id)
	}
	return InstanceRef{RegionID: region, InstanceID: id}, nil
}

// validRegion accepts Alibaba Cloud region ids: lower-case words joined by
// dashes, at least two of them (cn-beijing, ap-southeast-1, cn-hangzhou-finance).
func validRegion(s string) bool {
	if len(s) < 3 || len(s) > 64 {
		return false
	}
	parts := strings.Split(s, "-")
	if len(parts) < 2 {
		return false
	}
	for i, p := range parts {
		if p == "" {
			return false
		}
		for _, c := range p {
			switch {
			case c >= 'a' && c <= 'z':
			case c >= '0' && c <= '9' && i > 0:
			default:
				return false
			}
		}
	}
	return true
}

// validInstanceID accepts "cri-" followed by 1–60 ASCII letters or digits.
func validInstanceID(s string) bool {
	rest, ok := strings.CutPrefix(s, "cri-")
	if !ok || rest == "" || len(rest) > 60 {
		return false
	}
	for _, c := range rest {
		if !isAlnum(c) {
			return false
		}
	}
	return true
}

func isAlnum(c rune) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// Instances returns the instances requested by a Pod's annotations: the union
// of acr-instance-id and acr-instance-ids, deduplicated, singular first. It
// returns nil and no error when neither annotation is set.
func Instances(annotations map[string]string) ([]InstanceRef, error) {
	var out []InstanceRef
	seen := map[InstanceRef]bool{}
	for _, key := range []string{AcrInstanceID, AcrInstanceIDs} {
		v, ok := annotations[key]
		if !ok {
			continue
		}
		refs, err := ParseInstanceIDs(key, v)
		if err != nil {
			return nil, err
		}
		for _, r := range refs {
			if !seen[r] {
				seen[r] = true
				out = append(out, r)
			}
		}
	}
	return out, nil
}
