// Package acrconfig parses the kube-system/acr-configuration ConfigMap of Alibaba Cloud's
// aliyun-acr-credential-helper add-on into a typed, validated [Config] with defaults.
//
// Every key of the add-on is accepted (see docs/configuration.md). Problems are reported as
// an [ErrorList] of field paths with the offending value, e.g.
// "acr-registry-info[1].expireDuration: 99 is outside 3600..43200"; customAccessKeySecret
// is never echoed. Unknown keys and ignored values are returned as warnings.
//
//	cfg, warnings, err := acrconfig.Parse(cm.Data, acrconfig.Options{ClusterRegion: "cn-hangzhou"})
package acrconfig

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/ferrypull/ferry/internal/lazyre"
	"github.com/ferrypull/ferry/internal/redact"
)

// Where the add-on reads its configuration.
const (
	Namespace     = "kube-system"
	ConfigMapName = "acr-configuration"
)

// ConfigMap keys.
const (
	KeyServiceAccount    = "service-account"
	KeyWatchNamespace    = "watch-namespace"
	KeyExpiringThreshold = "expiring-threshold"
	KeyNotifyEmail       = "notify-email"
	KeyACRAPIVersion     = "acr-api-version"
	KeyACRRegistryInfo   = "acr-registry-info"
	KeyRRSA              = "rrsa"
	KeyWebhook           = "webhook-configuration"
)

// Defaults and limits.
const (
	DefaultExpiringThreshold = 15 * time.Minute
	DefaultExpireDuration    = 3600 * time.Second
	MinExpireDuration        = 3600
	MaxExpireDuration        = 43200
	DefaultWebhookTimeout    = 10
	DefaultAPIVersion        = "2018-12-01"
	// TokenLifetime is the documented life of an ACR temporary password requested with a
	// long-term AccessKey.
	TokenLifetime = time.Hour
)

// FailurePolicy of the ServiceAccount-creation webhook.
type FailurePolicy string

// Webhook failure policies.
const (
	FailurePolicyIgnore FailurePolicy = "Ignore"
	FailurePolicyFail   FailurePolicy = "Fail"
)

// Config is a validated acr-configuration.
type Config struct {
	// ServiceAccounts whose imagePullSecrets receive the Secrets ("service-account").
	ServiceAccounts Selector
	// WatchNamespaces that receive the Secrets ("watch-namespace").
	WatchNamespaces Selector
	// ExpiringThreshold: renew a token when less than this is left ("expiring-threshold").
	ExpiringThreshold time.Duration
	// NotifyEmail is accepted for compatibility and not used by ferry.
	NotifyEmail string
	// APIVersion as written ("acr-api-version"); ferry always speaks 2018-12-01 to
	// Enterprise Edition and GET /tokens to Personal Edition.
	APIVersion string
	// Instances to mint tokens for, in the order written; never empty.
	Instances []Instance
	// RRSA ("rrsa").
	RRSA RRSA
	// Webhook ("webhook-configuration").
	Webhook Webhook
	// ClusterRegion and TokenMode come from [Options] (flags), not from the ConfigMap.
	ClusterRegion string
	TokenMode     TokenMode
}

// Selector selects all names or a list of names.
type Selector struct {
	All   bool
	Names []string
}

// Matches reports whether name is selected.
func (s Selector) Matches(name string) bool { return s.All || slices.Contains(s.Names, name) }

// String renders the selector as it would be written in the ConfigMap.
func (s Selector) String() string {
	if s.All {
		return "*"
	}
	return strings.Join(s.Names, ",")
}

// RRSA is the "rrsa" block.
type RRSA struct {
	Enable bool
}

// Webhook is the "webhook-configuration" block.
type Webhook struct {
	Enable         bool
	FailurePolicy  FailurePolicy
	TimeoutSeconds int32
}

// Instance is one entry of "acr-registry-info".
type Instance struct {
	// InstanceID is the Enterprise Edition instance ("cri-…"); empty means Personal Edition.
	InstanceID string
	// RegionID of the instance; defaults to the cluster region.
	RegionID string
	// Domains to write into the Secret; nil means discover them (ListInstanceEndpoint for
	// Enterprise Edition, the regional registry hosts for Personal Edition).
	Domains []string
	// AssumeRoleARN is assumed on top of the base identity for ExpireDuration.
	AssumeRoleARN  string
	ExpireDuration time.Duration
	// RRSARoleARN and RRSAOIDCProviderARN ("rrsaOIDCProviderRoleARN") select RRSA when
	// rrsa.enable is true.
	RRSARoleARN         string
	RRSAOIDCProviderARN string
	// CustomAccessKeyID / CustomAccessKeySecret: a RAM user's AccessKey written in plaintext
	// in the ConfigMap.
	CustomAccessKeyID     string
	CustomAccessKeySecret redact.Secret
}

// Personal reports whether the entry is a Personal Edition registry.
func (i Instance) Personal() bool { return i.InstanceID == "" }

// Key identifies the instance: "<region>/<instanceId>" or "<region>/personal".
func (i Instance) Key() string {
	if i.Personal() {
		return i.RegionID + "/personal"
	}
	return i.RegionID + "/" + i.InstanceID
}

// UsesRRSA reports whether RRSA applies to this entry under cfg.
func (i Instance) UsesRRSA(rrsa RRSA) bool {
	return rrsa.Enable && i.RRSARoleARN != "" && i.RRSAOIDCProviderARN != ""
}

// HasCustomAccessKey reports whether the entry carries its own AccessKey.
func (i Instance) HasCustomAccessKey() bool {
	return i.CustomAccessKeyID != "" && !i.CustomAccessKeySecret.IsZero()
}

// Options are the settings that come from flags rather than the ConfigMap.
type Options struct {
	// ClusterRegion is the default regionId (and the region of the default Personal
	// Edition registry when acr-registry-info is empty).
	ClusterRegion string
	// TokenMode selects the base identity when no per-instance source applies.
	TokenMode TokenMode
}

// Validate checks the options.
func (o Options) Validate() error {
	var c collector
	if o.ClusterRegion != "" && !regionRE().MatchString(o.ClusterRegion) {
		c.errorf("region", show(o.ClusterRegion), "is not a region id (like cn-hangzhou)")
	}
	if o.TokenMode != "" {
		if _, err := ParseTokenMode(string(o.TokenMode)); err != nil {
			c.errorf("tokenMode", show(string(o.TokenMode)), "must be auto, managedRole or workerRole")
		}
	}
	if len(c.errs) > 0 {
		return c.errs
	}
	return nil
}

// TokenMode is the add-on parameter that selects the base identity.
type TokenMode string

// Token modes.
const (
	TokenModeAuto        TokenMode = "auto"
	TokenModeManagedRole TokenMode = "managedRole"
	TokenModeWorkerRole  TokenMode = "workerRole"
)

// ParseTokenMode accepts auto, managedRole and workerRole in any case; "" means auto.
func ParseTokenMode(s string) (TokenMode, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "auto":
		return TokenModeAuto, nil
	case "managedrole":
		return TokenModeManagedRole, nil
	case "workerrole":
		return TokenModeWorkerRole, nil
	}
	return "", &FieldError{Field: "tokenMode", Value: show(s), Detail: "must be auto, managedRole or workerRole"}
}

var (
	regionRE     = lazyre.New(`^[a-z]{2,}(-[a-z0-9]+)+$`)
	instanceRE   = lazyre.New(`^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$`)
	roleARNRE    = lazyre.New(`^acs:ram::[0-9]{1,32}:role/[A-Za-z0-9._@/-]{1,128}$`)
	providerRE   = lazyre.New(`^acs:ram::[0-9]{1,32}:oidc-provider/[A-Za-z0-9._@/-]{1,128}$`)
	akIDRE       = lazyre.New(`^[A-Za-z0-9._-]{1,128}$`)
	dnsLabelRE   = lazyre.New(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)
	subdomainRE  = lazyre.New(`^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$`)
	hostLabelRE  = lazyre.New(`^[a-z0-9_]([-a-z0-9_]{0,61}[a-z0-9_])?$`)
	knownTopKeys = []string{KeyServiceAccount, KeyWatchNamespace, KeyExpiringThreshold, KeyNotifyEmail,
		KeyACRAPIVersion, KeyACRRegistryInfo, KeyRRSA, KeyWebhook}
)

// MaxValueSize bounds each ConfigMap value (a whole ConfigMap holds at most 1 MiB).
const MaxValueSize = 1 << 20

// Parse validates the ConfigMap data and returns the configuration with defaults applied,
// the warnings (unknown keys, ignored values), and an [ErrorList] when any field is invalid.
// When err is non-nil the returned Config is nil: callers keep their last good one.
func Parse(data map[string]string, opts Options) (*Config, []Warning, error) {
	var c collector
	cfg := &Config{
		ServiceAccounts:   Selector{Names: []string{"default"}},
		WatchNamespaces:   Selector{Names: []string{"default"}},
		ExpiringThreshold: DefaultExpiringThreshold,
		Webhook:           Webhook{FailurePolicy: FailurePolicyIgnore, TimeoutSeconds: DefaultWebhookTimeout},
		ClusterRegion:     opts.ClusterRegion,
	}
	if err := opts.Validate(); err != nil {
		if l, ok := err.(ErrorList); ok {
			c.errs = append(c.errs, l...)
		}
	}
	mode, _ := ParseTokenMode(string(opts.TokenMode))
	cfg.TokenMode = mode

	for _, k := range slices.Sorted(maps.Keys(data)) {
		if !slices.Contains(knownTopKeys, k) {
			c.warnf(k, "unknown key, ignored")
			continue
		}
		if len(data[k]) > MaxValueSize {
			c.errorf(k, "", "is %d bytes, more than %d", len(data[k]), MaxValueSize)
		}
	}
	if len(c.errs) > 0 {
		return nil, c.warns, c.errs
	}

	if v, ok := data[KeyServiceAccount]; ok {
		cfg.ServiceAccounts = parseSelector(&c, KeyServiceAccount, v, []string{"*"}, subdomainRE(), 253)
	}
	if v, ok := data[KeyWatchNamespace]; ok {
		cfg.WatchNamespaces = parseSelector(&c, KeyWatchNamespace, v, []string{"all", "*"}, dnsLabelRE(), 63)
	}
	if v, ok := data[KeyExpiringThreshold]; ok && strings.TrimSpace(v) != "" {
		d, err := time.ParseDuration(strings.TrimSpace(v))
		switch {
		case err != nil:
			c.errorf(KeyExpiringThreshold, show(v), "is not a duration (write it like 15m or 900s)")
		case d <= 0:
			c.errorf(KeyExpiringThreshold, show(v), "must be greater than 0")
		default:
			cfg.ExpiringThreshold = d
			if d >= TokenLifetime {
				c.warnf(KeyExpiringThreshold, "%s is not shorter than the %s token life; tokens are renewed as early as the refresh floor allows", d, TokenLifetime)
			}
		}
	}
	if v, ok := data[KeyNotifyEmail]; ok {
		cfg.NotifyEmail = strings.TrimSpace(v)
		if cfg.NotifyEmail != "" && !strings.Contains(cfg.NotifyEmail, "@") {
			c.warnf(KeyNotifyEmail, "%s is not an e-mail address (the value is accepted and not used)", show(cfg.NotifyEmail))
		}
	}
	if v, ok := data[KeyACRAPIVersion]; ok {
		cfg.APIVersion = strings.TrimSpace(v)
		if cfg.APIVersion != "" && cfg.APIVersion != DefaultAPIVersion {
			c.warnf(KeyACRAPIVersion, "%s ignored: ferry uses %s for Enterprise Edition and GET /tokens for Personal Edition", show(cfg.APIVersion), DefaultAPIVersion)
		}
	}
	if v, ok := data[KeyRRSA]; ok {
		cfg.RRSA = parseRRSA(&c, v)
	}
	if v, ok := data[KeyWebhook]; ok {
		cfg.Webhook = parseWebhook(&c, v)
	}
	cfg.Instances = parseInstances(&c, data[KeyACRRegistryInfo], cfg)
	if cfg.RRSA.Enable && !slices.ContainsFunc(cfg.Instances, func(i Instance) bool { return i.UsesRRSA(cfg.RRSA) }) {
		c.warnf(KeyRRSA+".enable", "true, but no acr-registry-info entry sets rrsaRoleARN and rrsaOIDCProviderRoleARN")
	}

	scrubSecrets(&c, data[KeyACRRegistryInfo])
	if len(c.errs) > 0 {
		return nil, c.warns, c.errs
	}
	return cfg, c.warns, nil
}

// secretInText finds what follows a customAccessKeySecret key in the raw text, however
// broken the YAML around it is, so that no message can echo it: "key: value", "key=value" (a
// list item written as one string), and past a YAML tag or anchor ("key: !!int value"), which
// is not itself the secret.
var secretInText = lazyre.New(`(?i)customAccessKeySecret["']?\s*[:=]\s*(?:![^\s]*\s+)?(?:&[^\s]+\s+)?["']?([^\s"',}\]]+)`)

func scrubSecrets(c *collector, raw string) {
	var secrets []string
	for _, m := range secretInText().FindAllStringSubmatch(raw, -1) {
		secrets = append(secrets, m[1])
	}
	if len(secrets) == 0 {
		return
	}
	for _, e := range c.errs {
		e.Value = redact.Strings(e.Value, secrets...)
		e.Detail = redact.Strings(e.Detail, secrets...)
	}
	for i := range c.warns {
		c.warns[i].Message = redact.Strings(c.warns[i].Message, secrets...)
	}
}

func parseSelector(c *collector, key, v string, allWords []string, nameRE *regexp.Regexp, maxLen int) Selector {
	var s Selector
	seen := map[string]bool{}
	for part := range strings.SplitSeq(v, ",") {
		name := strings.TrimSpace(part)
		if name == "" {
			continue
		}
		if slices.Contains(allWords, strings.ToLower(name)) {
			s.All = true
			continue
		}
		if len(name) > maxLen || !nameRE.MatchString(name) {
			c.errorf(key, show(name), "is not a valid Kubernetes name")
			continue
		}
		if !seen[name] {
			seen[name] = true
			s.Names = append(s.Names, name)
		}
	}
	switch {
	case s.All && len(s.Names) > 0:
		c.warnf(key, "%s selects everything; the names %s are redundant", allWords[0], strings.Join(s.Names, ","))
		s.Names = nil
	case !s.All && len(s.Names) == 0 && len(seen) == 0:
		c.warnf(key, "empty, using the default %q", "default")
		s.Names = []string{"default"}
	}
	return s
}

// decodeYAML turns a YAML (or JSON) document into plain values. Syntax error messages are
// stripped of quoted content so that no value (possibly a secret) is echoed.
func decodeYAML(c *collector, field, doc string) (any, bool) {
	j, err := yaml.YAMLToJSONStrict([]byte(doc))
	if err != nil {
		c.errorf(field, "", "is not valid YAML or JSON: %s", sanitizeYAMLError(err.Error()))
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		c.errorf(field, "", "is not valid YAML or JSON")
		return nil, false
	}
	return v, true
}

var quotedRE = lazyre.New("'[^']*'|`[^`]*`|\"[^\"]*\"")

// knownKeys are the key names of every block, which a YAML error may quote ("key "regionId"
// already set in map"): names, never secrets.
var knownKeys = func() map[string]bool {
	m := map[string]bool{}
	for _, k := range append(append([]string{}, knownTopKeys...), append(entryFields, "enable", "enabled", "failurePolicy", "timeoutSeconds")...) {
		m[normKey(k)] = true
	}
	return m
}()

func sanitizeYAMLError(msg string) string {
	msg = strings.TrimPrefix(msg, "error converting YAML to JSON: ")
	msg = quotedRE().ReplaceAllStringFunc(msg, func(q string) string {
		if len(q) <= 5 || knownKeys[normKey(q[1:len(q)-1])] { // a quoted character or two, like '-', or a key name: never a secret
			return q
		}
		return "'…'"
	})
	msg = strings.NewReplacer("unmarshal errors:\n  ", "", "\n  ", "; ", "already set in map", "is listed twice").Replace(msg)
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	return msg
}

// block decodes a YAML mapping such as "rrsa" and "webhook-configuration"; keys are matched
// case-insensitively.
func block(c *collector, field, doc string) (map[string]any, bool) {
	if strings.TrimSpace(doc) == "" {
		return nil, true
	}
	v, ok := decodeYAML(c, field, doc)
	if !ok {
		return nil, false
	}
	if v == nil {
		return nil, true
	}
	m, isMap := v.(map[string]any)
	if !isMap {
		c.errorf(field, show(v), "must be a YAML mapping")
		return nil, false
	}
	return m, true
}

func parseRRSA(c *collector, doc string) RRSA {
	var r RRSA
	m, ok := block(c, KeyRRSA, doc)
	if !ok {
		return r
	}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		switch strings.ToLower(k) {
		case "enable", "enabled":
			r.Enable, _ = asBool(c, KeyRRSA+"."+k, m[k])
		default:
			c.warnf(KeyRRSA+"."+k, "unknown field, ignored")
		}
	}
	return r
}

func parseWebhook(c *collector, doc string) Webhook {
	w := Webhook{FailurePolicy: FailurePolicyIgnore, TimeoutSeconds: DefaultWebhookTimeout}
	m, ok := block(c, KeyWebhook, doc)
	if !ok {
		return w
	}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		field := KeyWebhook + "." + k
		v := m[k]
		switch normKey(k) {
		case "enable", "enabled":
			w.Enable, _ = asBool(c, field, v)
		case "failurepolicy":
			s, ok := v.(string)
			switch {
			case v == nil:
			case ok && strings.EqualFold(strings.TrimSpace(s), "ignore"):
				w.FailurePolicy = FailurePolicyIgnore
			case ok && strings.EqualFold(strings.TrimSpace(s), "fail"):
				w.FailurePolicy = FailurePolicyFail
			default:
				c.errorf(field, show(v), "must be Ignore or Fail")
			}
		case "timeoutseconds":
			if v == nil {
				continue
			}
			n, ok := asInt(v)
			if !ok {
				c.errorf(field, show(v), "is not an integer")
				continue
			}
			if n < 1 || n > 30 {
				c.errorf(field, show(v), "is outside 1..30")
				continue
			}
			w.TimeoutSeconds = int32(n)
		default:
			c.warnf(field, "unknown field, ignored")
		}
	}
	return w
}

func normKey(k string) string {
	return strings.ToLower(strings.NewReplacer("-", "", "_", "").Replace(k))
}

func asBool(c *collector, field string, v any) (bool, bool) {
	switch t := v.(type) {
	case nil:
		return false, true
	case bool:
		return t, true
	case string:
		if b, err := strconv.ParseBool(strings.TrimSpace(t)); err == nil {
			return b, true
		}
	}
	c.errorf(field, show(v), "must be true or false")
	return false, false
}

// asInt accepts a JSON number or a quoted integer.
func asInt(v any) (int64, bool) {
	var s string
	switch t := v.(type) {
	case json.Number:
		s = t.String()
	case string:
		s = strings.TrimSpace(t)
	default:
		return 0, false
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, true
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil && f == math.Trunc(f) && math.Abs(f) < 1<<53 {
		return int64(f), true
	}
	return 0, false
}

// asString accepts a string or null ("" for null).
func asString(v any) (string, bool) {
	switch t := v.(type) {
	case nil:
		return "", true
	case string:
		return strings.TrimSpace(t), true
	}
	return "", false
}

func fmtField(i int, name string) string {
	return fmt.Sprintf("%s[%d].%s", KeyACRRegistryInfo, i, name)
}
