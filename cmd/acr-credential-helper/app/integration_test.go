package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	testpoll "github.com/ferrypull/ferry/internal/testutil/poll"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ferrypull/ferry/internal/emulator"
	"github.com/ferrypull/ferry/internal/emulator/world"
	"github.com/ferrypull/ferry/internal/operator"
	"github.com/ferrypull/ferry/internal/testutil/containerdenv"
	"github.com/ferrypull/ferry/internal/testutil/emulatorenv"
	"github.com/ferrypull/ferry/internal/testutil/etchosts"
	"github.com/ferrypull/ferry/internal/testutil/kubeenv"
	"github.com/ferrypull/ferry/internal/testutil/kubeletenv"
	"github.com/ferrypull/ferry/internal/testutil/logbuf"
	"github.com/ferrypull/ferry/internal/testutil/tools"
)

type rig struct {
	kube    *kubeenv.Env
	emu     *emulatorenv.Env
	kl      *kubeletenv.Kubelet
	logs    *logbuf.Buffer
	secrets []string // every secret the test knows of, searched for in the logs
}

func (r *rig) user(t *testing.T, uid, name string) emulator.InfoUser {
	t.Helper()
	u := r.emu.User(t, uid, name)
	r.secrets = append(r.secrets, u.AccessKeySecret)
	return u
}

func (r *rig) namespace(t *testing.T, name string) {
	t.Helper()
	for _, o := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: name, Name: "default"}},
	} {
		if err := r.kube.Client.Create(t.Context(), o); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
}

func (r *rig) configure(t *testing.T, data map[string]string) {
	t.Helper()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "acr-configuration"}}
	err := r.kube.Client.Get(t.Context(), client.ObjectKeyFromObject(cm), cm)
	cm.Data = data
	if err != nil {
		err = r.kube.Client.Create(t.Context(), cm)
	} else {
		err = r.kube.Client.Update(t.Context(), cm)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// waitSA waits until the namespace's default ServiceAccount lists all the Secrets.
func (r *rig) waitSA(t *testing.T, ns string, secrets ...string) {
	t.Helper()
	poll(t, 60*time.Second, "ServiceAccount "+ns+"/default lists "+strings.Join(secrets, ","), func() error {
		sa := &corev1.ServiceAccount{}
		if err := r.kube.Client.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: "default"}, sa); err != nil {
			return err
		}
		for _, s := range secrets {
			found := false
			for _, ref := range sa.ImagePullSecrets {
				found = found || ref.Name == s
			}
			if !found {
				return fmt.Errorf("has %v", sa.ImagePullSecrets)
			}
			sec := &corev1.Secret{}
			if err := r.kube.Client.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: s}, sec); err != nil {
				return err
			}
		}
		return nil
	})
}

// pull runs a Pod (ServiceAccount default, no imagePullSecrets of its own) and returns the
// kubelet's verdict.
func (r *rig) pull(t *testing.T, ns, name, image string) kubeletenv.PullResult {
	t.Helper()
	pod := r.kl.Pod(ns, name, image)
	if err := r.kube.Client.Create(t.Context(), pod); err != nil {
		t.Fatal(err)
	}
	if len(pod.Spec.ImagePullSecrets) == 0 && !strings.Contains(ns, "unwatched") {
		t.Errorf("pod %s/%s got no imagePullSecrets from its ServiceAccount", ns, name)
	}
	res, err := kubeletenv.WaitForPullEvent(t.Context(), r.kube.Client, pod)
	if err != nil {
		t.Fatalf("%v\nkubelet log tail:\n%s", err, tail(r.kl.Log(), 3000))
	}
	return res
}

func (r *rig) expectPulls(t *testing.T, watched, unwatched string, images ...string) {
	t.Helper()
	for i, img := range images {
		if res := r.pull(t, watched, fmt.Sprintf("p%d", i), img); !res.Pulled {
			t.Errorf("watched %s: %s not pulled: %s: %s\nhelper log tail:\n%s", watched, img, res.Reason, res.Message, tail(r.logs.String(), 3000))
		}
		res := r.pull(t, unwatched, fmt.Sprintf("p%d", i), img)
		if res.Pulled {
			t.Errorf("unwatched %s: %s was pulled without credentials", unwatched, img)
		} else if m := strings.ToLower(res.Message); !strings.Contains(m, "401") && !strings.Contains(m, "unauthorized") && !strings.Contains(m, "authoriz") {
			t.Errorf("unwatched %s: %s failed, but not with an auth error: %s", unwatched, img, res.Message)
		}
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// poll is the test rig's poll helper (internal/testutil/poll) under this package's old name.
func poll(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	testpoll.Within(t, timeout, what, cond)
}

func entry(inst emulator.InfoInstance, extra string) string {
	return fmt.Sprintf("- instanceId: %q\n  regionId: %q\n%s", inst.InstanceID, inst.RegionID, extra)
}

func personalID(inst emulator.InfoInstance) emulator.InfoInstance {
	inst.InstanceID = "" // acr-registry-info writes Personal Edition as instanceId ""
	return inst
}

// personalDomains: Personal Edition hosts are fixed per region and have no port in the real
// cloud; the emulator serves them on its TLS port, so the configuration names them (the
// documented `domains` field), as a user would for a registry behind a non-default port.
func personalDomains(inst emulator.InfoInstance) string {
	return fmt.Sprintf("  domains: %q\n", strings.Join(inst.Domains, ","))
}

// TestSecretFreePulls runs the real binary's wiring (RunWithLogs with flags) against a real
// apiserver, the acr-emulator, containerd and a kubelet: every documented way to get
// credentials must end in a Pod image pulled by the kubelet with no password in the cluster,
// and the same Pod in an unwatched namespace must fail with an auth error.
func TestSecretFreePulls(t *testing.T) {
	if !tools.IsRoot() {
		tools.Require(t, "containerd and the kubelet need root")
	}
	kube := kubeenv.Start(t) // with the ServiceAccount admission plugin: SA pull secrets reach Pods
	ctx := t.Context()
	dir := t.TempDir()

	// RRSA: the emulator trusts the apiserver as OIDC issuer; the helper reads a projected-style
	// token of kube-system/aliyun-acr-credential-helper.
	raw, err := kube.Clientset.Discovery().RESTClient().Get().AbsPath("/.well-known/openid-configuration").DoRaw(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var disc struct{ Issuer string }
	if err := json.Unmarshal(raw, &disc); err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "apiserver-ca.pem")
	if err := os.WriteFile(caFile, kube.Config.CAData, 0o600); err != nil {
		t.Fatal(err)
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "aliyun-acr-credential-helper"}}
	if err := kube.Client.Create(ctx, sa); err != nil {
		t.Fatal(err)
	}
	mint := func(aud string) string {
		tr, err := kube.Clientset.CoreV1().ServiceAccounts("kube-system").CreateToken(ctx, sa.Name, &authenticationv1.TokenRequest{
			Spec: authenticationv1.TokenRequestSpec{Audiences: []string{aud}, ExpirationSeconds: ptr.To(int64(3600))}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("TokenRequest: %v", err)
		}
		return tr.Status.Token
	}
	bearer, rrsaFile := filepath.Join(dir, "jwks-bearer"), filepath.Join(dir, "rrsa-token")
	rrsaJWT := mint("sts.aliyuncs.com")
	for f, v := range map[string]string{bearer: mint(disc.Issuer), rrsaFile: rrsaJWT} {
		if err := os.WriteFile(f, []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	w, err := world.Default(world.DefaultOptions{OIDCIssuer: disc.Issuer, OIDCJWKSURL: strings.TrimRight(kube.Config.Host, "/") + "/openid/v1/jwks",
		OIDCCAFile: caFile, OIDCBearerTokenFile: bearer, TokenTTL: 60 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	emu := emulatorenv.Start(t, emulatorenv.Options{World: w})
	info := emu.Info

	var bare []string
	for d := range emu.Domains() {
		bare = append(bare, d)
	}
	etchosts.Ensure(t, bare...)
	ctrd := containerdenv.Start(t, containerdenv.Options{})
	for _, in := range info.Instances {
		for _, d := range in.Domains {
			ctrd.WriteHostsTOML(t, d, fmt.Sprintf("server = %q\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n  ca = %q\n",
				"https://"+d, "https://"+d, info.CAFile))
		}
	}
	kl := kubeletenv.Start(t, kube, ctrd)
	r := &rig{kube: kube, emu: emu, kl: kl, logs: &logbuf.Buffer{}, secrets: []string{rrsaJWT}}

	o := DefaultOptions()
	o.Kubeconfig, o.Region, o.Namespace = kube.KubeconfigPath, "cn-hangzhou", "kube-system"
	o.CloudDialAddr, o.STSEndpoint, o.CAFile = info.OpenAPITLSEndpoint, info.OpenAPITLSEndpoint, info.CAFile
	o.MetadataProxy, o.TokenMode, o.RRSATokenFile = info.MetadataProxy, "workerRole", rrsaFile
	o.MetricsAddr, o.HealthAddr, o.WebhookPort, o.AddonRefresh = "0", "0", 0, time.Nanosecond
	o.Verbosity = 1
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	hctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- run(hctx, o, operator.Streams{Out: io.Discard, Err: r.logs}, nil) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("helper: %v", err)
		}
	})

	hzA := emu.Instance(t, world.DemoInstanceAHangzhou)
	bjA := emu.Instance(t, world.DemoInstanceABeijing)
	hzB := emu.Instance(t, world.DemoInstanceBHangzhou)
	var personal emulator.InfoInstance
	for _, in := range info.Instances {
		if in.Edition == world.EditionPersonal && in.RegionID == "cn-hangzhou" {
			personal = in
		}
	}
	pullRoleB := "acs:ram::" + world.DemoAccountB + ":role/" + world.DemoPullRole
	base := func(ns string, entries ...string) map[string]string {
		return map[string]string{"service-account": "default", "watch-namespace": ns, "expiring-threshold": "45s",
			"acr-registry-info": strings.Join(entries, "")}
	}

	t.Run("worker role + assumeRoleARN (cross-account)", func(t *testing.T) {
		r.namespace(t, "wr")
		r.namespace(t, "wr-unwatched")
		r.configure(t, base("wr", entry(hzB, fmt.Sprintf("  assumeRoleARN: %q\n  expireDuration: 3600\n", pullRoleB))))
		r.waitSA(t, "wr", "acr-pull-"+hzB.InstanceID)
		r.expectPulls(t, "wr", "wr-unwatched", hzB.Image)
	})

	// From here on the registered-cluster AccessKey (seed 001) is the base identity.
	puller := r.user(t, world.DemoAccountA, "acr-puller")
	if err := kube.Client.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "alibaba-addon-secret"},
		StringData: map[string]string{"access-key-id": puller.AccessKeyID, "access-key-secret": puller.AccessKeySecret},
	}); err != nil {
		t.Fatal(err)
	}

	t.Run("seed 001 scenario 1: Enterprise and Personal Edition", func(t *testing.T) {
		r.namespace(t, "s1")
		r.namespace(t, "s1-unwatched")
		r.configure(t, base("s1", entry(hzA, ""), entry(personalID(personal), personalDomains(personal))))
		r.waitSA(t, "s1", "acr-pull-"+hzA.InstanceID, "acr-pull-personal-cn-hangzhou")
		r.expectPulls(t, "s1", "s1-unwatched", hzA.Image, personal.Image)
	})

	t.Run("seed 001 scenario 2: instances in cn-beijing and cn-hangzhou", func(t *testing.T) {
		r.namespace(t, "s2")
		r.namespace(t, "s2-unwatched")
		r.configure(t, base("s2", entry(bjA, ""), entry(personalID(personal), personalDomains(personal))))
		r.waitSA(t, "s2", "acr-pull-"+bjA.InstanceID, "acr-pull-personal-cn-hangzhou")
		r.expectPulls(t, "s2", "s2-unwatched", bjA.Image, personal.Image)
	})

	t.Run("customAccessKey of the registry owner's account", func(t *testing.T) {
		admin := r.user(t, world.DemoAccountB, "admin")
		r.namespace(t, "ak")
		r.namespace(t, "ak-unwatched")
		r.configure(t, base("ak", entry(hzB, fmt.Sprintf("  customAccessKey: %q\n  customAccessKeySecret: %q\n", admin.AccessKeyID, admin.AccessKeySecret))))
		r.waitSA(t, "ak", "acr-pull-"+hzB.InstanceID)
		r.expectPulls(t, "ak", "ak-unwatched", hzB.Image)
	})

	t.Run("RRSA + assumeRoleARN (cross-account)", func(t *testing.T) {
		rrsaRole := "acs:ram::" + world.DemoAccountA + ":role/" + world.DemoRRSARole
		provider := "acs:ram::" + world.DemoAccountA + ":oidc-provider/ack-rrsa-" + world.DemoClusterID
		r.namespace(t, "rrsa")
		r.namespace(t, "rrsa-unwatched")
		cfg := base("rrsa", entry(hzB, fmt.Sprintf("  rrsaRoleARN: %q\n  rrsaOIDCProviderRoleARN: %q\n  assumeRoleARN: %q\n", rrsaRole, provider, pullRoleB)))
		cfg["rrsa"] = "enable: true\n"
		r.configure(t, cfg)
		r.waitSA(t, "rrsa", "acr-pull-"+hzB.InstanceID)
		r.expectPulls(t, "rrsa", "rrsa-unwatched", hzB.Image)
	})

	// Rotation: 60 s tokens, 45 s threshold (set above for every scenario).
	passwordOf := func(ns, name string) (string, time.Time) {
		s := &corev1.Secret{}
		if err := kube.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, s); err != nil {
			t.Fatal(err)
		}
		var cfg struct {
			Auths map[string]struct{ Password string } `json:"auths"`
		}
		if err := json.Unmarshal(s.Data[corev1.DockerConfigJsonKey], &cfg); err != nil {
			t.Fatal(err)
		}
		exp, _ := time.Parse(time.RFC3339, s.Annotations["ferry.dev/expires-at"])
		for _, a := range cfg.Auths {
			r.secrets = append(r.secrets, a.Password)
			return a.Password, exp
		}
		t.Fatal("empty Secret")
		return "", time.Time{}
	}

	t.Run("rotation: renewed before expiry, pulls keep working", func(t *testing.T) {
		r.namespace(t, "rot")
		r.configure(t, base("rot", entry(hzA, "")))
		name := "acr-pull-" + hzA.InstanceID
		r.waitSA(t, "rot", name)
		seen := map[string]bool{}
		for rotation := 0; rotation < 2; rotation++ {
			pw, exp := passwordOf("rot", name)
			seen[pw] = true
			poll(t, 60*time.Second, "token rotated", func() error {
				now := time.Now()
				p, _ := passwordOf("rot", name)
				if seen[p] {
					if now.After(exp) {
						t.Fatalf("token expired at %s before it was rotated", exp)
					}
					return fmt.Errorf("same token (expires %s)", exp)
				}
				return nil
			})
			if res := r.pull(t, "rot", fmt.Sprintf("after-rotation-%d", rotation), hzA.Image); !res.Pulled {
				t.Fatalf("pull after rotation %d: %s", rotation, res.Message)
			}
		}
	})

	t.Run("token API outage shorter than the remaining life: no failed pull, Secret untouched", func(t *testing.T) {
		name := "acr-pull-" + hzA.InstanceID
		// Start right after a rotation, so the token has its whole life ahead.
		before, _ := passwordOf("rot", name)
		poll(t, 60*time.Second, "fresh token", func() error {
			if p, _ := passwordOf("rot", name); p == before {
				return fmt.Errorf("waiting for the next rotation")
			}
			return nil
		})
		pw, exp := passwordOf("rot", name)
		emu.Fault("GetAuthorizationToken", 503)
		outageEnd := time.Now().Add(25 * time.Second) // < 60 s life
		for i := 0; time.Now().Before(outageEnd); i++ {
			if res := r.pull(t, "rot", fmt.Sprintf("outage-%d", i), hzA.Image); !res.Pulled {
				t.Fatalf("pull failed during the outage (token expires %s, now %s): %s\nhelper log tail:\n%s", exp, time.Now(), res.Message, tail(r.logs.String(), 4000))
			}
			if p, e := passwordOf("rot", name); p != pw {
				t.Fatalf("Secret changed during the outage (old expiry %s, new %s)\nhelper log tail:\n%s", exp, e, tail(r.logs.String(), 4000))
			}
		}
		emu.ClearFaults()
		if time.Now().After(exp) {
			t.Fatalf("outage outlived the token (%s)", exp)
		}
		t.Logf("outage of 25 s with the token valid until %s: all pulls succeeded, Secret unchanged", exp.Format(time.RFC3339))
		poll(t, 60*time.Second, "renewal after the outage", func() error {
			if p, _ := passwordOf("rot", name); p == pw {
				return fmt.Errorf("not renewed yet")
			}
			return nil
		})
		if res := r.pull(t, "rot", "after-outage", hzA.Image); !res.Pulled {
			t.Fatalf("pull after the outage: %s", res.Message)
		}
	})

	t.Run("no secret or token in the helper's logs or Events", func(t *testing.T) {
		logs := r.logs.String()
		if !strings.Contains(logs, "acr-configuration loaded") {
			t.Fatalf("logs not captured:\n%s", tail(logs, 2000))
		}
		var events corev1.EventList
		if err := kube.Client.List(ctx, &events); err != nil {
			t.Fatal(err)
		}
		var eventText strings.Builder
		for _, e := range events.Items {
			eventText.WriteString(e.Reason + " " + e.Message + "\n")
		}
		if !strings.Contains(eventText.String(), "ConfigLoaded") {
			t.Fatalf("helper Events not found among %d events", len(events.Items))
		}
		for _, s := range r.secrets {
			if len(s) >= 8 && strings.Contains(logs, s) {
				t.Errorf("a secret (%d chars, starting %.3s…) appears in the logs", len(s), s)
			}
			if len(s) >= 8 && strings.Contains(eventText.String(), s) {
				t.Errorf("a secret (%d chars, starting %.3s…) appears in an Event", len(s), s)
			}
		}
	})
}
