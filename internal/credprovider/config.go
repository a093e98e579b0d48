package credprovider

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/yaml"

	"github.com/ferrypull/ferry/internal/acrconfig"
	"github.com/ferrypull/ferry/internal/cloudcred"
)

// The provider's own configuration file (--config).
const (
	ConfigAPIVersion = "ferry.dev/v1alpha1"
	ConfigKind       = "ACRCredentialProviderConfig"
)

// MaxConfigSize bounds the configuration file and every acr-configuration file.
const MaxConfigSize = 1 << 20

// Config is the file given with --config:
//
//	apiVersion: ferry.dev/v1alpha1
//	kind: ACRCredentialProviderConfig
//	instances:
//	- instanceId: cri-xxxxxxxx            # Enterprise Edition; "" or absent = Personal Edition
//	  region: cn-hangzhou
//	  name: prod                          # matches prod-registry[-vpc].cn-hangzhou.cr.aliyuncs.com
//	  domains: [registry.example.com]     # custom domains (host or host:port) of this instance
//	  assumeRoleARN: acs:ram::2222222222222222:role/acr-pull   # cross-account hop
//	  expireDuration: 3600                # seconds of the hop's session (900..43200)
type Config struct {
	APIVersion string           `json:"apiVersion"`
	Kind       string           `json:"kind"`
	Instances  []InstanceConfig `json:"instances,omitempty"`
}

// InstanceConfig is one entry of Config.Instances.
type InstanceConfig struct {
	InstanceID     string   `json:"instanceId,omitempty"`
	Region         string   `json:"region,omitempty"`
	Name           string   `json:"name,omitempty"`
	Domains        []string `json:"domains,omitempty"`
	AssumeRoleARN  string   `json:"assumeRoleARN,omitempty"`
	ExpireDuration int64    `json:"expireDuration,omitempty"`
}

// Instance is a registry the provider can mint tokens for, from the configuration file or
// from acr-configuration.
type Instance struct {
	// ID is the Enterprise Edition instance ID; empty for Personal Edition.
	ID     string
	Region string
	// Name is the Enterprise Edition instance name (the <name> of its system domains).
	Name string
	// Domains are hosts (host or host:port) that belong to the instance: custom domains,
	// or the configured domains of an acr-registry-info entry.
	Domains []string
	// AssumeRoleARN is assumed on top of the chosen identity for ExpireDuration.
	AssumeRoleARN  string
	ExpireDuration time.Duration
	// CustomAccessKey is the acr-registry-info entry's customAccessKey (nil if none).
	CustomAccessKey *cloudcred.AccessKey
	// Source says where the entry came from ("config instances[1]",
	// "acr-configuration acr-registry-info[0]").
	Source string
}

// Personal reports whether the instance is a Personal Edition registry.
func (i Instance) Personal() bool { return i.ID == "" }

var (
	instanceIDRE   = regexp.MustCompile(`^cri-[a-z0-9]{1,64}$`)
	instanceNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,63}$`)
	regionRE       = regexp.MustCompile(`^[a-z]{2,}(-[a-z0-9]+)+$`)
	roleARNRE      = regexp.MustCompile(`^acs:ram::[0-9]{1,32}:role/[A-Za-z0-9._@/-]{1,128}$`)
	domainLabelRE  = regexp.MustCompile(`^[a-z0-9_]([-a-z0-9_]{0,61}[a-z0-9_])?$`)
)

// ParseConfig reads and validates the configuration file. Errors name the field path and
// the value, e.g. "instances[1].region: Invalid value: "cn hangzhou": ...".
func ParseConfig(r io.Reader) (*Config, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxConfigSize+1))
	if err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	if len(data) > MaxConfigSize {
		return nil, fmt.Errorf("larger than %d bytes", MaxConfigSize)
	}
	var c Config
	if err := yaml.UnmarshalStrict(data, &c); err != nil {
		return nil, fmt.Errorf("not a valid %s: %w", ConfigKind, err)
	}
	if errs := c.validate(); len(errs) > 0 {
		return nil, errs.ToAggregate()
	}
	return &c, nil
}

// LoadConfig is ParseConfig on a file.
func LoadConfig(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	defer f.Close()
	c, err := ParseConfig(f)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

func (c *Config) validate() field.ErrorList {
	var errs field.ErrorList
	if c.APIVersion != ConfigAPIVersion {
		errs = append(errs, field.NotSupported(field.NewPath("apiVersion"), c.APIVersion, []string{ConfigAPIVersion}))
	}
	if c.Kind != ConfigKind {
		errs = append(errs, field.NotSupported(field.NewPath("kind"), c.Kind, []string{ConfigKind}))
	}
	for i, in := range c.Instances {
		p := field.NewPath("instances").Index(i)
		if in.InstanceID != "" && !instanceIDRE.MatchString(in.InstanceID) {
			errs = append(errs, field.Invalid(p.Child("instanceId"), in.InstanceID, "must look like cri-xxxxxxxx (empty for Personal Edition)"))
		}
		if in.Region == "" {
			errs = append(errs, field.Required(p.Child("region"), "the instance's region, like cn-hangzhou"))
		} else if !regionRE.MatchString(in.Region) {
			errs = append(errs, field.Invalid(p.Child("region"), in.Region, "is not a region id (like cn-hangzhou)"))
		}
		if in.Name != "" && !instanceNameRE.MatchString(in.Name) {
			errs = append(errs, field.Invalid(p.Child("name"), in.Name, "must be lower-case letters, digits and hyphens"))
		}
		if in.Name != "" && in.InstanceID == "" {
			errs = append(errs, field.Invalid(p.Child("name"), in.Name, "a name belongs to an Enterprise Edition instance: set instanceId"))
		}
		for j, d := range in.Domains {
			if err := validDomain(d); err != nil {
				errs = append(errs, field.Invalid(p.Child("domains").Index(j), d, err.Error()))
			}
		}
		if in.AssumeRoleARN != "" && !roleARNRE.MatchString(in.AssumeRoleARN) {
			errs = append(errs, field.Invalid(p.Child("assumeRoleARN"), in.AssumeRoleARN, "must look like acs:ram::<uid>:role/<name>"))
		}
		if in.ExpireDuration != 0 && (in.ExpireDuration < 900 || in.ExpireDuration > 43200) {
			errs = append(errs, field.Invalid(p.Child("expireDuration"), in.ExpireDuration, "must be between 900 and 43200 seconds"))
		}
	}
	return errs
}

// validDomain accepts host or host:port (a DNS name or an IP address).
func validDomain(d string) error {
	if d == "" || d != strings.ToLower(strings.TrimSpace(d)) {
		return errors.New("must be a lower-case host or host:port")
	}
	host := d
	if h, port, err := net.SplitHostPort(d); err == nil {
		if port == "" || strings.Trim(port, "0123456789") != "" {
			return errors.New("the port must be a number")
		}
		host = h
	}
	if net.ParseIP(host) != nil {
		return nil
	}
	if len(host) > 253 {
		return errors.New("is longer than 253 characters")
	}
	for l := range strings.SplitSeq(host, ".") {
		if !domainLabelRE.MatchString(l) {
			return errors.New("is not a DNS name or IP address")
		}
	}
	return nil
}

// ConfigInstances converts the file's instances.
func (c *Config) ConfigInstances() []Instance {
	var out []Instance
	for i, in := range c.Instances {
		out = append(out, Instance{ID: in.InstanceID, Region: in.Region, Name: in.Name, Domains: slices.Clone(in.Domains),
			AssumeRoleARN: in.AssumeRoleARN, ExpireDuration: time.Duration(in.ExpireDuration) * time.Second,
			Source: fmt.Sprintf("config instances[%d]", i)})
	}
	return out
}

// LoadACRConfiguration reads kube-system/acr-configuration as it reaches a node: a directory
// holding one file per key (a ConfigMap volume, or a copy of one), or a file holding the
// ConfigMap object (YAML or JSON, as `kubectl get cm -o yaml` writes it). It returns the
// acr-registry-info entries as instances; the rest of the ConfigMap is for the Secret-based
// helper (see docs/acr-credential-provider.md for what the provider uses).
func LoadACRConfiguration(path, clusterRegion string) ([]Instance, error) {
	data, err := readConfigMapData(path)
	if err != nil {
		return nil, fmt.Errorf("acr-configuration %s: %w", path, err)
	}
	cfg, _, err := acrconfig.Parse(data, acrconfig.Options{ClusterRegion: clusterRegion})
	if err != nil {
		return nil, fmt.Errorf("acr-configuration %s: %w", path, err)
	}
	var out []Instance
	for i, e := range cfg.Instances {
		in := Instance{ID: e.InstanceID, Region: e.RegionID, Domains: slices.Clone(e.Domains), AssumeRoleARN: e.AssumeRoleARN,
			Source: fmt.Sprintf("acr-configuration %s[%d]", acrconfig.KeyACRRegistryInfo, i)}
		if e.AssumeRoleARN != "" {
			in.ExpireDuration = e.ExpireDuration
		}
		if e.HasCustomAccessKey() {
			in.CustomAccessKey = &cloudcred.AccessKey{ID: e.CustomAccessKeyID, Secret: e.CustomAccessKeySecret}
		}
		out = append(out, in)
	}
	return out, nil
}

func readConfigMapData(path string) (map[string]string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		b, err := readLimited(path)
		if err != nil {
			return nil, err
		}
		var cm struct {
			Kind string            `json:"kind"`
			Data map[string]string `json:"data"`
		}
		if err := yaml.Unmarshal(b, &cm); err != nil {
			return nil, fmt.Errorf("not a ConfigMap in YAML or JSON: %w", err)
		}
		if cm.Kind != "ConfigMap" {
			return nil, fmt.Errorf("kind %q: want ConfigMap (or give the directory of a ConfigMap volume)", cm.Kind)
		}
		return cm.Data, nil
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, err
	}
	data := map[string]string{}
	for _, e := range entries {
		// a ConfigMap volume also holds ..data and ..<timestamp> (the atomic-update links)
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		p := filepath.Join(path, e.Name())
		if st, err := os.Stat(p); err != nil || st.IsDir() {
			continue
		}
		b, err := readLimited(p)
		if err != nil {
			return nil, err
		}
		data[e.Name()] = string(b)
	}
	if len(data) == 0 {
		return nil, errors.New("the directory holds no keys")
	}
	return data, nil
}

func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxConfigSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxConfigSize {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, MaxConfigSize)
	}
	return b, nil
}

// ReadAccessKeyFile reads the node's AccessKey: a directory with the files access-key-id
// and access-key-secret (a Secret volume like kube-system/alibaba-addon-secret), or a YAML
// or JSON file with those two keys. The error never contains the secret.
func ReadAccessKeyFile(path string) (*cloudcred.AccessKey, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("access key file: %w", err)
	}
	data := map[string][]byte{}
	if st.IsDir() {
		for _, k := range []string{cloudcred.AddonSecretKeyID, cloudcred.AddonSecretKeySecret} {
			b, err := readLimited(filepath.Join(path, k))
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("access key file: %w", err)
			}
			data[k] = b
		}
	} else {
		b, err := readLimited(path)
		if err != nil {
			return nil, fmt.Errorf("access key file: %w", err)
		}
		var m map[string]string
		if err := yaml.Unmarshal(b, &m); err != nil {
			// the YAML error may quote the file: never show it
			return nil, fmt.Errorf("access key file %s: not a YAML or JSON map of %s and %s", path, cloudcred.AddonSecretKeyID, cloudcred.AddonSecretKeySecret)
		}
		for k, v := range m {
			data[k] = []byte(v)
		}
	}
	ak, err := cloudcred.AccessKeyFromSecretData(data)
	if err != nil {
		return nil, fmt.Errorf("access key file %s: %w", path, err)
	}
	return ak, nil
}
