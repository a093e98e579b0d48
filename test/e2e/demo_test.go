//go:build demo

package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferrypull/ferry/internal/testutil/poll"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ferrypull/ferry/internal/emulator"
	"github.com/ferrypull/ferry/internal/testutil/containerdenv"
	"github.com/ferrypull/ferry/internal/testutil/etchosts"
	"github.com/ferrypull/ferry/internal/testutil/kubeenv"
	"github.com/ferrypull/ferry/internal/testutil/kubeletenv"
	"github.com/ferrypull/ferry/internal/testutil/registryenv"
	"github.com/ferrypull/ferry/internal/testutil/tools"
)

// say prints one line of the demo's story on stdout.
func say(format string, args ...any) { fmt.Printf("  "+format+"\n", args...) }

func step(n int, title string) { fmt.Printf("\n[%d] %s\n", n, title) }

// TestDemo is `make demo`: the local cloud, a local control plane, the credential helper and a real pull.
func TestDemo(t *testing.T) {
	bin := filepath.Join(tools.ModuleRoot(), "bin")
	dir := t.TempDir()
	start := time.Now()
	fmt.Println("ferry demo: secret-free pulls from a local ACR-compatible cloud")

	step(1, "Start the local cloud (bin/acr-emulator)")
	infoPath := filepath.Join(dir, "info.json")
	run(t, dir, "acr-emulator", filepath.Join(bin, "acr-emulator"), "--data-dir", filepath.Join(dir, "emulator"),
		"--info-file", infoPath, "--hosts-file", filepath.Join(dir, "hosts"), "--log-format", "json")
	info := waitInfo(t, infoPath)
	a := info.Accounts[0]
	inst := instance(t, info, "cn-hangzhou", a.UID)
	say("OpenAPI (Container Registry + STS) on %s (http) and %s (https), CA %s", info.OpenAPIEndpoint, info.OpenAPITLSEndpoint, info.CAFile)
	say("ECS metadata proxy %s; registry on %s (https)", info.MetadataProxy, info.RegistryTLSEndpoint)
	say("account %s (uid %s) owns instance %s (%s) in %s, domains %s", a.Name, a.UID, inst.InstanceID, inst.InstanceName,
		inst.RegionID, strings.Join(inst.Domains, ", "))
	say("seeded private image %s", inst.Image)

	step(2, "Start a local control plane (kube-apiserver + etcd)")
	kube := kubeenv.Start(t, kubeenv.WithControllerManager())
	say("apiserver %s", kube.Config.Host)
	ctx := t.Context()
	say("kube-controller-manager (serviceaccount controller) creates each namespace's default ServiceAccount")
	for _, ns := range []string{"demo", "elsewhere"} {
		kube.CreateNamespace(t, ns)
	}
	say("namespaces demo (watched) and elsewhere (not watched), each with ServiceAccount default")

	step(3, "Configure it the way Alibaba's add-on is configured")
	puller := user(t, a, "acr-puller")
	must(t, kube.Client.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "alibaba-addon-secret"},
		StringData: map[string]string{"access-key-id": puller.AccessKeyID, "access-key-secret": puller.AccessKeySecret},
	}))
	say("Secret kube-system/alibaba-addon-secret: AccessKey %s of RAM user %s (cr:GetAuthorizationToken, cr:ListInstanceEndpoint, cr:PullRepository only)",
		puller.AccessKeyID, puller.Name)
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "acr-configuration"},
		Data: map[string]string{
			"service-account":    "default",
			"watch-namespace":    "demo",
			"expiring-threshold": "15m",
			"acr-api-version":    "2018-12-01",
			"acr-registry-info":  fmt.Sprintf("- instanceId: %q\n  regionId: %q\n", inst.InstanceID, inst.RegionID),
		},
	}
	must(t, kube.Client.Create(ctx, cm))
	say("ConfigMap kube-system/acr-configuration: watch-namespace=demo service-account=default acr-registry-info=[%s]", inst.InstanceID)

	step(4, "Start the controller (bin/acr-credential-helper)")
	run(t, dir, "acr-credential-helper", filepath.Join(bin, "acr-credential-helper"), "--kubeconfig", kube.KubeconfigPath,
		"--region", "cn-hangzhou", "--cr-endpoint", "https://"+info.OpenAPITLSEndpoint, "--sts-endpoint", info.OpenAPITLSEndpoint,
		"--ca-file", info.CAFile, "--metrics-bind-address", "0", "--health-probe-bind-address", "0", "--webhook-port", "0",
		"--log-format", "text")
	secretName := "acr-pull-" + inst.InstanceID
	var secret corev1.Secret
	waitFor(t, 60*time.Second, "Secret demo/"+secretName, func() bool {
		return kube.Client.Get(ctx, client.ObjectKey{Namespace: "demo", Name: secretName}, &secret) == nil
	})
	var cfg struct {
		Auths map[string]struct{ Username, Password string } `json:"auths"`
	}
	must(t, json.Unmarshal(secret.Data[corev1.DockerConfigJsonKey], &cfg))
	hosts := make([]string, 0, len(cfg.Auths))
	var tokenUser, token string
	for h, e := range cfg.Auths {
		hosts = append(hosts, h)
		tokenUser, token = e.Username, e.Password
	}
	slices.Sort(hosts)
	say("Secret demo/%s (%s) holds a temporary token for %s", secretName, secret.Type, strings.Join(hosts, ", "))
	say("  user %s, password [%d characters, not shown], expires %s", tokenUser, len(token), secret.Annotations["ferry.dev/expires-at"])
	var sa corev1.ServiceAccount
	waitFor(t, 30*time.Second, "ServiceAccount demo/default patched", func() bool {
		if kube.Client.Get(ctx, client.ObjectKey{Namespace: "demo", Name: "default"}, &sa) != nil {
			return false
		}
		return slices.ContainsFunc(sa.ImagePullSecrets, func(r corev1.LocalObjectReference) bool { return r.Name == secretName })
	})
	say("ServiceAccount demo/default now lists imagePullSecrets %v (merged, user entries kept)", names(sa.ImagePullSecrets))
	var other corev1.Secret
	if err := kube.Client.Get(ctx, client.ObjectKey{Namespace: "elsewhere", Name: secretName}, &other); err == nil {
		t.Fatalf("unwatched namespace got a Secret")
	}
	say("namespace elsewhere is not watched: no Secret there")

	step(5, "A real kubelet pulls the private image with no password in the cluster")
	if !tools.IsRoot() {
		say("SKIPPED: containerd and the kubelet need root (running as uid %d)", os.Geteuid())
	} else {
		etchosts.Ensure(t, inst.Domains...)
		say("/etc/hosts maps %s to 127.0.0.1", strings.Join(inst.Domains, ", "))
		ctrd := containerdenv.Start(t, containerdenv.Options{})
		for _, d := range inst.Domains {
			ctrd.WriteHostsTOML(t, d, fmt.Sprintf("server = %q\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n  ca = %q\n",
				"https://"+d, "https://"+d, info.CAFile))
		}
		say("containerd %s trusts the emulator CA for those hosts (hosts.toml)", ctrd.Socket)
		kl := kubeletenv.Start(t, kube, ctrd)
		say("kubelet registered node %s", kl.NodeName)
		for _, tc := range []struct{ ns, want string }{{"demo", "pulled"}, {"elsewhere", "refused"}} {
			pod := kl.Pod(tc.ns, "hello", inst.Image)
			must(t, kube.Client.Create(ctx, pod))
			res, err := kubeletenv.WaitForPullEvent(ctx, kube.Client, pod)
			must(t, err)
			got := map[bool]string{true: "pulled", false: "refused"}[res.Pulled]
			say("Pod %s/hello (ServiceAccount default, no imagePullSecrets of its own): %s — %s", tc.ns, got, shorten(res.Message))
			if got != tc.want {
				t.Fatalf("pod in %s: %s, want %s", tc.ns, got, tc.want)
			}
		}
	}

	step(6, "Copy an image from a Harbor-like registry into ACR (bin/image-syncer)")
	if !tools.IsRoot() {
		say("SKIPPED: resolving the emulator's registry domains needs /etc/hosts entries (root)")
	} else {
		harbor := registryenv.StartDocker(t, registryenv.Options{Users: map[string]string{"robot$demo": "s3cr$t"}})
		img, err := random.Image(256*1024, 3)
		must(t, err)
		src := harbor.Push(t, "library/nginx:1.25", img, "robot$demo", "s3cr$t")
		syncer := user(t, a, "image-syncer")
		dst := inst.Domains[0] + "/image-syncer/nginx"
		authFile, imagesFile := filepath.Join(dir, "auth.json"), filepath.Join(dir, "images.json")
		writeJSON(t, authFile, map[string]any{
			harbor.Addr:     map[string]any{"username": "robot$demo", "password": "s3cr$t", "insecure": true},
			inst.Domains[0]: map[string]any{"username": syncer.Name, "password": syncer.Password, "caFile": info.CAFile},
		})
		writeJSON(t, imagesFile, map[string]any{harbor.Addr + "/library/nginx": dst})
		say("Harbor-like docker-registry %s (plain HTTP, robot$demo) holds library/nginx:1.25 %s", harbor.Addr, src)
		for i, what := range []string{"first sync", "re-sync "} {
			reportFile := filepath.Join(dir, fmt.Sprintf("report%d.json", i))
			runOnce(t, filepath.Join(bin, "image-syncer"), "--auth", authFile, "--images", imagesFile, "--report", reportFile)
			var rep struct {
				Summary struct {
					Seconds                 float64
					Copied, Skipped, Failed int
					Bytes                   int64
				}
			}
			b, err := os.ReadFile(reportFile)
			must(t, err)
			must(t, json.Unmarshal(b, &rep))
			sm := rep.Summary
			say("%s: %d copied, %d skipped as unchanged, %d failed, %d bytes uploaded, %.2fs", what, sm.Copied, sm.Skipped, sm.Failed, sm.Bytes, sm.Seconds)
		}
		ref, err := name.ParseReference(dst + ":1.25")
		must(t, err)
		desc, err := remote.Head(ref, remote.WithContext(ctx), remote.WithTransport(caTransport(t, info.CAFile)),
			remote.WithAuth(&authn.Basic{Username: syncer.Name, Password: syncer.Password}))
		must(t, err)
		say("%s:1.25 has digest %s (source %s: %s)", dst, desc.Digest, map[bool]string{true: "identical", false: "DIFFERENT"}[desc.Digest == src], src)
		if desc.Digest != src {
			t.Fatal("digest changed in transit")
		}
	}
	demoECI(t, 7, bin, dir)
	fmt.Printf("\nDone in %s. Everything started here is stopped and removed now.\n", time.Since(start).Round(time.Second))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func names(refs []corev1.LocalObjectReference) []string {
	out := make([]string, len(refs))
	for i, r := range refs {
		out[i] = r.Name
	}
	return out
}

func shorten(s string) string {
	if len(s) > 160 {
		return s[:160] + "…"
	}
	return s
}

// run starts a ferry binary for the rest of the test, logging to <dir>/<name>.log; on failure the log's
// tail is printed.
func run(t *testing.T, dir, name string, argv ...string) {
	t.Helper()
	p := tools.StartProcess(t, name, filepath.Join(dir, name+".log"), argv...)
	t.Cleanup(func() {
		if t.Failed() {
			b := p.Log()
			t.Logf("%s log (tail):\n%s", name, b[max(0, len(b)-4000):])
		}
	})
}

func runOnce(t *testing.T, argv ...string) string {
	t.Helper()
	out, err := exec.CommandContext(t.Context(), argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", filepath.Base(argv[0]), err, out)
	}
	return string(out)
}

func waitInfo(t *testing.T, path string) *emulator.Info {
	t.Helper()
	var info emulator.Info
	waitFor(t, 30*time.Second, "acr-emulator info file", func() bool {
		b, err := os.ReadFile(path)
		return err == nil && json.Unmarshal(b, &info) == nil
	})
	return &info
}

func instance(t *testing.T, info *emulator.Info, region, owner string) emulator.InfoInstance {
	t.Helper()
	for _, in := range info.Instances {
		if in.RegionID == region && in.OwnerUID == owner && strings.HasPrefix(in.InstanceID, "cri-") {
			return in
		}
	}
	t.Fatalf("no EE instance of %s in %s", owner, region)
	return emulator.InfoInstance{}
}

func user(t *testing.T, a emulator.InfoAccount, name string) emulator.InfoUser {
	t.Helper()
	for _, u := range a.Users {
		if u.Name == name {
			return u
		}
	}
	t.Fatalf("account %s has no user %s", a.Name, name)
	return emulator.InfoUser{}
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	poll.Within(t, timeout, "waiting for "+what, func() error {
		if cond() {
			return nil
		}
		return errors.New("not yet")
	})
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	must(t, err)
	must(t, os.WriteFile(path, b, 0o600))
}

// caTransport trusts the emulator's CA (the registry domains resolve through /etc/hosts).
func caTransport(t *testing.T, caFile string) *http.Transport {
	t.Helper()
	pem, err := os.ReadFile(caFile)
	must(t, err)
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("no certificate in %s", caFile)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return tr
}
