package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferrypull/ferry/internal/credprovider"
	"github.com/ferrypull/ferry/internal/emulator/world"
	"github.com/ferrypull/ferry/internal/operator"
	"github.com/ferrypull/ferry/internal/testutil/emulatorenv"
)

func requestJSON(image string) string {
	return fmt.Sprintf(`{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderRequest","image":%q}`, image)
}

type response struct {
	APIVersion, Kind string
	CacheKeyType     string
	CacheDuration    string
	Auth             map[string]struct{ Username, Password string }
}

func run(t *testing.T, stdin string, args ...string) (response, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := NewCommand(Run, operator.Streams{In: strings.NewReader(stdin), Out: &out, Err: &errb}, args)
	err := cmd.ExecuteContext(t.Context())
	var r response
	if err == nil {
		if jerr := json.Unmarshal(out.Bytes(), &r); jerr != nil {
			t.Fatalf("stdout is not JSON: %v\n%s", jerr, out.String())
		}
	} else if out.Len() != 0 {
		t.Fatalf("stdout on failure: %s", out.String())
	}
	return r, errb.String(), err
}

// emulatorFlags point the provider at the emulator (what the kubelet's args would hold).
func emulatorFlags(env *emulatorenv.Env) []string {
	return []string{"--cloud-dial-address", env.Info.OpenAPITLSEndpoint, "--sts-endpoint", env.Info.OpenAPITLSEndpoint,
		"--ca-file", env.Info.CAFile, "--metadata-proxy", env.Info.MetadataProxy}
}

func TestCommandAgainstEmulator(t *testing.T) {
	env := emulatorenv.Start(t, emulatorenv.Options{})
	hzA, hzB := env.Instance(t, world.DemoInstanceAHangzhou), env.Instance(t, world.DemoInstanceBHangzhou)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	writeFile(t, cfg, "apiVersion: ferry.dev/v1alpha1\nkind: ACRCredentialProviderConfig\ninstances:\n- {instanceId: "+hzA.InstanceID+", region: cn-hangzhou, name: ferry-a}\n")
	acrcfg := filepath.Join(dir, "acr-configuration")
	if err := os.Mkdir(acrcfg, 0o700); err != nil {
		t.Fatal(err)
	}
	pullB := "acs:ram::" + world.DemoAccountB + ":role/" + world.DemoPullRole
	writeFile(t, filepath.Join(acrcfg, "acr-registry-info"), fmt.Sprintf("- instanceId: %s\n  regionId: cn-hangzhou\n  assumeRoleARN: %s\n", hzB.InstanceID, pullB))
	plainB := filepath.Join(dir, "acr-configuration-b.yaml")
	writeFile(t, plainB, "apiVersion: v1\nkind: ConfigMap\ndata:\n  acr-registry-info: |\n    - instanceId: "+hzB.InstanceID+"\n")
	puller := env.User(t, world.DemoAccountA, "acr-puller")
	akDir := filepath.Join(dir, "ak")
	_ = os.Mkdir(akDir, 0o700)
	writeFile(t, filepath.Join(akDir, "access-key-id"), puller.AccessKeyID)
	writeFile(t, filepath.Join(akDir, "access-key-secret"), puller.AccessKeySecret)

	tests := []struct {
		name  string
		image string
		args  []string
	}{
		{"--config, worker role", hzA.Image, []string{"--config", cfg}},
		{"--acr-configuration: the instance's assumeRoleARN (cross-account), domains discovered", hzB.Image, []string{"--acr-configuration", acrcfg, "--region", "cn-hangzhou"}},
		{"--access-key-file", hzA.Image, []string{"--config", cfg, "--access-key-file", akDir, "-v", "1"}},
		{"--token-mode managedRole --managed-role-arn", hzB.Image, []string{"--acr-configuration", plainB, "--region", "cn-hangzhou", "--token-mode", "managedRole", "--managed-role-arn", pullB}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, stderr, err := run(t, requestJSON(tt.image), append(emulatorFlags(env), tt.args...)...)
			if err != nil {
				t.Fatalf("%v (exit %d)\nstderr: %s", err, credprovider.ExitCode(err), stderr)
			}
			host := strings.SplitN(tt.image, "/", 2)[0]
			a, ok := resp.Auth[host]
			if resp.APIVersion != "credentialprovider.kubelet.k8s.io/v1" || resp.Kind != "CredentialProviderResponse" ||
				resp.CacheKeyType != "Registry" || !ok || a.Password == "" {
				t.Fatalf("response %+v", resp)
			}
			if !strings.Contains(stderr, "registry token issued") || strings.Contains(stderr, a.Password) || strings.Contains(stderr, puller.AccessKeySecret) {
				t.Fatalf("stderr:\n%s", stderr)
			}
		})
	}
}

func TestCommandErrors(t *testing.T) {
	good := requestJSON("registry.cn-hangzhou.aliyuncs.com/ns/app:v1")
	tests := []struct {
		name, stdin string
		args        []string
		code        int
		want        string
	}{
		{"bad token mode", good, []string{"--token-mode", "node"}, credprovider.ExitConfig, `--token-mode "node"`},
		{"fallback without ServiceAccount mode", good, []string{"--service-account-fallback-to-node"}, credprovider.ExitConfig, "needs --oidc-provider-arn"},
		{"bad OIDC provider", good, []string{"--oidc-provider-arn", "acs:ram::1:role/x"}, credprovider.ExitConfig, "--oidc-provider-arn"},
		{"missing config file", good, []string{"--config", "/nonexistent/config.yaml"}, credprovider.ExitConfig, "--config: config /nonexistent/config.yaml"},
		{"missing AccessKey file", good, []string{"--access-key-file", "/nonexistent/ak"}, credprovider.ExitConfig, "--access-key-file"},
		{"managedRole without ARN", good, []string{"--token-mode", "managedRole"}, credprovider.ExitConfig, "needs --managed-role-arn"},
		{"bad log format", good, []string{"--log-format", "xml"}, credprovider.ExitConfig, "--log-format"},
		{"unknown flag", good, []string{"--kubeconfig", "x"}, credprovider.ExitConfig, "unknown flag"},
		{"empty stdin", "", nil, credprovider.ExitBadRequest, "empty request"},
		{"v1alpha1 request", strings.Replace(good, "/v1\"", "/v1alpha1\"", 1), nil, credprovider.ExitBadRequest, "is not supported"},
		{"unknown host", requestJSON("quay.io/x/y:1"), nil, credprovider.ExitUnknownHost, "quay.io is not an ACR domain"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := run(t, tt.stdin, tt.args...)
			if err == nil || credprovider.ExitCode(err) != tt.code || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v (exit %d), want %q (exit %d)", err, credprovider.ExitCode(err), tt.want, tt.code)
			}
		})
	}
}

// TestBinary runs the built binary as the kubelet does: request on stdin, response on stdout,
// the exit code and one line of stderr on failure.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "acr-credential-provider")
	if out, err := exec.CommandContext(t.Context(), "go", "build", "-o", bin, "github.com/ferrypull/ferry/cmd/acr-credential-provider").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	env := emulatorenv.Start(t, emulatorenv.Options{})
	pers := ""
	for _, in := range env.Info.Instances {
		if in.Edition == world.EditionPersonal {
			pers = in.Image
		}
	}
	exe := func(stdin string, args ...string) (string, string, int) {
		cmd := exec.CommandContext(context.WithoutCancel(t.Context()), bin, args...)
		cmd.Stdin = strings.NewReader(stdin)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		return out.String(), errb.String(), cmd.ProcessState.ExitCode()
	}
	out, stderr, code := exe(requestJSON(pers), emulatorFlags(env)...)
	if code != 0 || !strings.Contains(out, `"kind":"CredentialProviderResponse"`) {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", code, out, stderr)
	}
	env.Fault("/tokens", 503)
	for _, tt := range []struct {
		name, stdin string
		code        int
		want        string
	}{
		{"malformed", `{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderRequest","image":"a.b/c","x":1}`, 2, `unknown field "x"`},
		{"unknown host", requestJSON("quay.io/x/y:1"), 3, "quay.io is not an ACR domain"},
		{"token API failure", requestJSON(pers), 5, "HTTP 503"},
	} {
		out, stderr, code := exe(tt.stdin, emulatorFlags(env)...)
		lines := strings.Split(strings.TrimSpace(stderr), "\n")
		if code != tt.code || out != "" || len(lines) != 1 || !strings.HasPrefix(lines[0], "acr-credential-provider: ") || !strings.Contains(stderr, tt.want) {
			t.Errorf("%s: exit %d (want %d)\nstdout %q\nstderr %q (want one line with %q)", tt.name, code, tt.code, out, stderr, tt.want)
		}
	}
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
