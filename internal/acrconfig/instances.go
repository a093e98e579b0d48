package acrconfig

import (
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ferrypull/ferry/internal/redact"
)

// entry field names as documented; matched case-insensitively.
const (
	fInstanceID      = "instanceId"
	fRegionID        = "regionId"
	fDomains         = "domains"
	fAssumeRoleARN   = "assumeRoleARN"
	fExpireDuration  = "expireDuration"
	fRRSARoleARN     = "rrsaRoleARN"
	fRRSAProviderARN = "rrsaOIDCProviderRoleARN"
	fCustomAK        = "customAccessKey"
	fCustomAKSecret  = "customAccessKeySecret"
)

var entryFields = []string{fInstanceID, fRegionID, fDomains, fAssumeRoleARN, fExpireDuration,
	fRRSARoleARN, fRRSAProviderARN, fCustomAK, fCustomAKSecret}

// showItem renders a list item that is not a mapping. A string that names a secret field
// ("customAccessKey: …, customAccessKeySecret=…" written as one string) is not echoed.
func showItem(v any) string {
	if s, ok := v.(string); ok && strings.Contains(strings.ToLower(s), "secret") {
		return "a string naming " + fCustomAKSecret + " (not shown)"
	}
	return show(v)
}

func parseInstances(c *collector, doc string, cfg *Config) []Instance {
	var items []any
	if strings.TrimSpace(doc) != "" {
		v, ok := decodeYAML(c, KeyACRRegistryInfo, doc)
		if !ok {
			return nil
		}
		switch t := v.(type) {
		case nil:
		case []any:
			items = t
		case map[string]any:
			c.warnf(KeyACRRegistryInfo, "a single mapping was written; it should be a list (start the entry with \"- \")")
			items = []any{t}
		default:
			c.errorf(KeyACRRegistryInfo, show(v), "must be a YAML or JSON list of instances")
			return nil
		}
	}
	if len(items) == 0 {
		if cfg.ClusterRegion == "" {
			c.errorf(KeyACRRegistryInfo, "", "is empty and no cluster region is configured (--region) for the default Personal Edition registry")
			return nil
		}
		return []Instance{{RegionID: cfg.ClusterRegion, ExpireDuration: DefaultExpireDuration}}
	}

	out := make([]Instance, 0, len(items))
	seen := map[string]int{}
	for i, item := range items {
		m, ok := item.(map[string]any)
		if !ok {
			c.errorf(fmt.Sprintf("%s[%d]", KeyACRRegistryInfo, i), showItem(item), "must be a mapping with instanceId, regionId, …")
			continue
		}
		inst, ok := parseInstance(c, i, m, cfg)
		if !ok {
			continue
		}
		if j, dup := seen[inst.Key()]; dup {
			c.errorf(fmt.Sprintf("%s[%d]", KeyACRRegistryInfo, i), "", "duplicates %s[%d] (%s)", KeyACRRegistryInfo, j, inst.Key())
			continue
		}
		seen[inst.Key()] = i
		out = append(out, inst)
	}
	return out
}

func parseInstance(c *collector, i int, m map[string]any, cfg *Config) (Instance, bool) {
	before := len(c.errs)
	vals := map[string]any{}
	present := map[string]bool{}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		var canon string
		for _, f := range entryFields {
			if strings.EqualFold(k, f) {
				canon = f
			}
		}
		if canon == "" {
			c.warnf(fmtField(i, k), "unknown field, ignored")
			continue
		}
		if present[canon] {
			c.errorf(fmtField(i, k), "", "is set twice (field names are case-insensitive)")
			continue
		}
		present[canon] = true
		vals[canon] = m[k]
	}

	str := func(f string) string {
		v := vals[f]
		s, ok := asString(v)
		if !ok {
			if f == fCustomAKSecret {
				c.errorf(fmtField(i, f), "", "must be a string")
			} else {
				c.errorf(fmtField(i, f), show(v), "must be a string")
			}
		}
		return s
	}

	inst := Instance{ExpireDuration: DefaultExpireDuration}
	inst.InstanceID = str(fInstanceID)
	if inst.InstanceID != "" && !instanceRE().MatchString(inst.InstanceID) {
		c.errorf(fmtField(i, fInstanceID), show(inst.InstanceID), "is not an instance id (like cri-xxxxxxxx; \"\" for Personal Edition)")
	}

	inst.RegionID = str(fRegionID)
	switch {
	case inst.RegionID == "" && cfg.ClusterRegion == "":
		c.errorf(fmtField(i, fRegionID), "", "is required because no cluster region is configured (--region)")
	case inst.RegionID == "":
		inst.RegionID = cfg.ClusterRegion
	case !regionRE().MatchString(inst.RegionID):
		c.errorf(fmtField(i, fRegionID), show(inst.RegionID), "is not a region id (like cn-hangzhou)")
	}

	inst.Domains = parseDomains(c, fmtField(i, fDomains), vals[fDomains])
	for _, d := range inst.Domains {
		if IsNewPersonalHost(d) {
			c.warnf(fmtField(i, fDomains), "%s is a Personal Edition instance created after 2024-09-08 (crpi-…); the add-on's token APIs do not cover it and pulls from it may fail", show(d))
		}
	}

	inst.AssumeRoleARN = str(fAssumeRoleARN)
	if inst.AssumeRoleARN != "" && !roleARNRE().MatchString(inst.AssumeRoleARN) {
		c.errorf(fmtField(i, fAssumeRoleARN), show(inst.AssumeRoleARN), "is not a RAM role ARN (acs:ram::<account>:role/<name>)")
	}

	if v, ok := vals[fExpireDuration]; ok && v != nil && v != "" {
		n, isInt := asInt(v)
		switch {
		case !isInt:
			c.errorf(fmtField(i, fExpireDuration), show(v), "is not an integer number of seconds")
		case n < MinExpireDuration || n > MaxExpireDuration:
			c.errorf(fmtField(i, fExpireDuration), show(v), "is outside %d..%d", MinExpireDuration, MaxExpireDuration)
		default:
			inst.ExpireDuration = time.Duration(n) * time.Second
			if inst.AssumeRoleARN == "" {
				c.warnf(fmtField(i, fExpireDuration), "ignored: it applies only with assumeRoleARN")
			}
		}
	}

	inst.RRSARoleARN = str(fRRSARoleARN)
	inst.RRSAOIDCProviderARN = str(fRRSAProviderARN)
	if inst.RRSARoleARN != "" && !roleARNRE().MatchString(inst.RRSARoleARN) {
		c.errorf(fmtField(i, fRRSARoleARN), show(inst.RRSARoleARN), "is not a RAM role ARN (acs:ram::<account>:role/<name>)")
	}
	if p := inst.RRSAOIDCProviderARN; p != "" && !providerRE().MatchString(p) {
		hint := ""
		if roleARNRE().MatchString(p) {
			hint = "; despite its name this field takes the OIDC provider ARN, not a role ARN"
		}
		c.errorf(fmtField(i, fRRSAProviderARN), show(p), "is not an OIDC provider ARN (acs:ram::<account>:oidc-provider/<name>)%s", hint)
	}
	switch {
	case inst.RRSARoleARN != "" && inst.RRSAOIDCProviderARN == "":
		c.errorf(fmtField(i, fRRSAProviderARN), "", "is required with rrsaRoleARN")
	case inst.RRSARoleARN == "" && inst.RRSAOIDCProviderARN != "":
		c.errorf(fmtField(i, fRRSARoleARN), "", "is required with rrsaOIDCProviderRoleARN")
	case inst.RRSARoleARN != "" && !cfg.RRSA.Enable:
		c.warnf(fmtField(i, fRRSARoleARN), "ignored because rrsa.enable is not true")
	}

	inst.CustomAccessKeyID = str(fCustomAK)
	inst.CustomAccessKeySecret = redact.Secret(str(fCustomAKSecret))
	switch {
	case inst.CustomAccessKeyID != "" && inst.CustomAccessKeySecret.IsZero():
		c.errorf(fmtField(i, fCustomAKSecret), "", "is required with customAccessKey")
	case inst.CustomAccessKeyID == "" && !inst.CustomAccessKeySecret.IsZero():
		c.errorf(fmtField(i, fCustomAK), "", "is required with customAccessKeySecret")
	case inst.CustomAccessKeyID != "":
		if !akIDRE().MatchString(inst.CustomAccessKeyID) {
			c.errorf(fmtField(i, fCustomAK), show(inst.CustomAccessKeyID), "is not an AccessKey ID")
		}
		if strings.ContainsAny(inst.CustomAccessKeySecret.Reveal(), " \t\r\n") {
			c.errorf(fmtField(i, fCustomAKSecret), "", "contains whitespace")
		}
		c.warnf(fmtField(i, fCustomAK), "AccessKey stored in plaintext in the ConfigMap; prefer RRSA or an AccessKey in the Secret kube-system/alibaba-addon-secret")
	}
	return inst, len(c.errs) == before
}

// parseDomains accepts "a,b" or a YAML list; each domain is host or host:port, written
// with or without a scheme.
func parseDomains(c *collector, field string, v any) []string {
	var parts []string
	switch t := v.(type) {
	case nil:
		return nil
	case string:
		parts = strings.Split(t, ",")
	case []any:
		for j, e := range t {
			s, ok := e.(string)
			if !ok {
				c.errorf(fmt.Sprintf("%s[%d]", field, j), show(e), "must be a string")
				continue
			}
			parts = append(parts, s)
		}
	default:
		c.errorf(field, show(v), "must be a comma-separated string or a list of hostnames")
		return nil
	}
	var out []string
	for _, p := range parts {
		d := normalizeDomain(p)
		if d == "" {
			continue
		}
		if !validHostPort(d) {
			c.errorf(field, show(strings.TrimSpace(p)), "is not a hostname (host or host:port)")
			continue
		}
		if !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	return out
}

func normalizeDomain(s string) string {
	d := strings.TrimSpace(s)
	lower := strings.ToLower(d)
	for _, p := range []string{"https://", "http://"} {
		if strings.HasPrefix(lower, p) {
			d = d[len(p):]
			break
		}
	}
	return strings.ToLower(strings.TrimRight(d, "/"))
}

func validHostPort(d string) bool {
	host := d
	if h, port, err := net.SplitHostPort(d); err == nil {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return false
		}
		host = h
	}
	if net.ParseIP(host) != nil {
		return true
	}
	if len(host) > 253 || host == "" {
		return false
	}
	for label := range strings.SplitSeq(host, ".") {
		if !hostLabelRE().MatchString(label) {
			return false
		}
	}
	return true
}

// IsNewPersonalHost reports whether host is a per-instance Personal Edition domain
// (crpi-xxxx.<region>.personal.cr.aliyuncs.com), which the original add-on does not support.
func IsNewPersonalHost(host string) bool {
	h := strings.ToLower(host)
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.Contains(h[i:], "]") {
		h = h[:i]
	}
	return strings.HasPrefix(h, "crpi-") && strings.HasSuffix(h, ".personal.cr.aliyuncs.com")
}
