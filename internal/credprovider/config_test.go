package credprovider

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseConfig(t *testing.T) {
	const head = "apiVersion: ferry.dev/v1alpha1\nkind: ACRCredentialProviderConfig\n"
	good := head + `instances:
- instanceId: cri-abc123
  region: cn-hangzhou
  name: prod
  domains: [registry.example.com, "10.0.0.5:5000"]
  assumeRoleARN: acs:ram::2222222222222222:role/acr-pull
  expireDuration: 3600
- region: cn-beijing
  domains: [personal.example.com]
`
	c, err := ParseConfig(strings.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	ins := c.ConfigInstances()
	if len(ins) != 2 || ins[0].ID != "cri-abc123" || ins[0].Name != "prod" || ins[0].ExpireDuration != time.Hour ||
		ins[0].Source != "config instances[0]" || !ins[1].Personal() || ins[1].Domains[0] != "personal.example.com" {
		t.Fatalf("instances %+v", ins)
	}
	bad := []struct{ name, doc, want string }{
		{"wrong apiVersion", "apiVersion: v1\nkind: ACRCredentialProviderConfig\n", `apiVersion: Unsupported value: "v1"`},
		{"wrong kind", "apiVersion: ferry.dev/v1alpha1\nkind: Config\n", `kind: Unsupported value: "Config"`},
		{"unknown field", head + "instance: []\n", `unknown field "instance"`},
		{"duplicate field", head + "instances: []\ninstances: []\n", `"instances" already set`},
		{"bad instance id", head + "instances: [{instanceId: abc, region: cn-hangzhou}]\n", `instances[0].instanceId: Invalid value: "abc"`},
		{"no region", head + "instances: [{instanceId: cri-abc}]\n", `instances[0].region: Required value`},
		{"bad region", head + "instances: [{instanceId: cri-abc, region: 'cn hangzhou'}]\n", `instances[0].region: Invalid value: "cn hangzhou"`},
		{"name without id", head + "instances: [{name: prod, region: cn-hangzhou}]\n", `instances[0].name: Invalid value: "prod": a name belongs`},
		{"bad domain", head + "instances: [{region: cn-hangzhou, domains: [ok.example, 'x/y']}]\n", `instances[0].domains[1]: Invalid value: "x/y"`},
		{"bad port", head + "instances: [{region: cn-hangzhou, domains: ['a.example:http']}]\n", `the port must be a number`},
		{"bad role", head + "instances: [{region: cn-hangzhou, assumeRoleARN: 'role/x'}]\n", `instances[0].assumeRoleARN: Invalid value: "role/x"`},
		{"bad duration", head + "instances: [{region: cn-hangzhou, expireDuration: 60}]\n", `instances[0].expireDuration: Invalid value: 60`},
		{"not YAML", "\t::", `not a valid ACRCredentialProviderConfig`},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig(strings.NewReader(tt.doc))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
}

func TestLoadACRConfiguration(t *testing.T) {
	const info = `- instanceId: cri-abc123
  regionId: cn-beijing
  domains: a-registry.cn-beijing.cr.aliyuncs.com
  assumeRoleARN: acs:ram::2222222222222222:role/acr-pull
  expireDuration: 7200
- instanceId: ""
  customAccessKey: LTAIcustom
  customAccessKeySecret: custom-secret-value
`
	// a ConfigMap volume: one file per key, plus the ..data links of the atomic writer
	dir := t.TempDir()
	for k, v := range map[string]string{"acr-registry-info": info, "watch-namespace": "all", "..data": "ignored"} {
		if err := os.WriteFile(filepath.Join(dir, k), []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// the same as a ConfigMap object
	file := filepath.Join(t.TempDir(), "cm.yaml")
	cm := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: acr-configuration, namespace: kube-system}\ndata:\n  acr-registry-info: |\n" +
		indent(info, "    ")
	if err := os.WriteFile(file, []byte(cm), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{dir, file} {
		ins, err := LoadACRConfiguration(path, "cn-hangzhou")
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if len(ins) != 2 || ins[0].ID != "cri-abc123" || ins[0].Region != "cn-beijing" || ins[0].ExpireDuration != 2*time.Hour ||
			ins[0].Domains[0] != "a-registry.cn-beijing.cr.aliyuncs.com" || ins[0].Source != "acr-configuration acr-registry-info[0]" {
			t.Fatalf("%s: %+v", path, ins[0])
		}
		if !ins[1].Personal() || ins[1].Region != "cn-hangzhou" || ins[1].CustomAccessKey == nil || ins[1].CustomAccessKey.Secret.Reveal() != "custom-secret-value" {
			t.Fatalf("%s: %+v", path, ins[1])
		}
	}
	// errors name the field and keep the secret out
	badDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(badDir, "acr-registry-info"), []byte("- instanceId: cri-x\n  regionId: 'bad region'\n  customAccessKeySecret: custom-secret-value\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadACRConfiguration(badDir, "cn-hangzhou")
	if err == nil || !strings.Contains(err.Error(), "acr-registry-info[0].regionId") || strings.Contains(err.Error(), "custom-secret-value") {
		t.Fatalf("bad acr-configuration: %v", err)
	}
	notCM := filepath.Join(t.TempDir(), "secret.yaml")
	_ = os.WriteFile(notCM, []byte("kind: Secret\ndata: {}\n"), 0o600)
	if _, err := LoadACRConfiguration(notCM, ""); err == nil || !strings.Contains(err.Error(), `kind "Secret": want ConfigMap`) {
		t.Fatalf("not a ConfigMap: %v", err)
	}
	if _, err := LoadACRConfiguration(t.TempDir(), ""); err == nil || !strings.Contains(err.Error(), "no keys") {
		t.Fatalf("empty directory: %v", err)
	}
}

func indent(s, prefix string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i := range lines {
		lines[i] = prefix + lines[i]
	}
	return strings.Join(lines, "\n") + "\n"
}

func TestReadAccessKeyFile(t *testing.T) {
	dir := t.TempDir()
	_ = os.WriteFile(filepath.Join(dir, "access-key-id"), []byte("LTAInode\n"), 0o600)
	_ = os.WriteFile(filepath.Join(dir, "access-key-secret"), []byte("node-secret-value\n"), 0o600)
	file := filepath.Join(t.TempDir(), "ak.yaml")
	_ = os.WriteFile(file, []byte(`{"access-key-id": "LTAInode", "access-key-secret": "node-secret-value"}`), 0o600)
	for _, p := range []string{dir, file} {
		ak, err := ReadAccessKeyFile(p)
		if err != nil || ak.ID != "LTAInode" || ak.Secret.Reveal() != "node-secret-value" {
			t.Fatalf("%s: %+v %v", p, ak, err)
		}
	}
	half := t.TempDir()
	_ = os.WriteFile(filepath.Join(half, "access-key-secret"), []byte("node-secret-value"), 0o600)
	garbled := filepath.Join(t.TempDir(), "ak")
	_ = os.WriteFile(garbled, []byte("node-secret-value: [unclosed"), 0o600)
	for p, want := range map[string]string{half: "has no access-key-id", garbled: "not a YAML or JSON map", filepath.Join(dir, "absent"): "no such file"} {
		_, err := ReadAccessKeyFile(p)
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "node-secret-value") {
			t.Errorf("%s: %v, want %q and no secret", p, err, want)
		}
	}
}
