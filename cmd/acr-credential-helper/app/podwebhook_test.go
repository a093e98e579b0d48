package app

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ferrypull/ferry/internal/annotations"
	"github.com/ferrypull/ferry/internal/controller/podsecret"
	"github.com/ferrypull/ferry/internal/dockercfg"
	"github.com/ferrypull/ferry/internal/emulator/world"
	"github.com/ferrypull/ferry/internal/operator"
	"github.com/ferrypull/ferry/internal/pullsecret"
	"github.com/ferrypull/ferry/internal/testutil/containerdenv"
	"github.com/ferrypull/ferry/internal/testutil/emulatorenv"
	"github.com/ferrypull/ferry/internal/testutil/etchosts"
	"github.com/ferrypull/ferry/internal/testutil/kubeenv"
	"github.com/ferrypull/ferry/internal/testutil/kubeletenv"
	"github.com/ferrypull/ferry/internal/testutil/logbuf"
	"github.com/ferrypull/ferry/internal/testutil/tools"
	"github.com/ferrypull/ferry/internal/webhook/pod"
)

// TestPodWebhookServedByHelper runs the real binary's wiring (RunWithLogs with flags, the
// webhook reached by the apiserver through --webhook-url) against a real apiserver and the
// acr-emulator's demo world: a Pod with acr-instance-id and no imagePullSecrets is admitted
// with a minted Secret whose token pulls the instance's image; a cross-account Pod with
// acr-user-arns gets a Secret that pulls account B's image; with failure-policy Fail in
// acr-configuration a malformed or unknown instance rejects the Pod, naming the annotation
// and value. No minted password or AccessKey secret appears in the helper's logs.
func TestPodWebhookServedByHelper(t *testing.T) {
	ctx := t.Context()
	kube := kubeenv.Start(t)
	emu := emulatorenv.Start(t, emulatorenv.Options{})
	logs, needles := startPodWebhookHelper(t, kube, emu)

	// No acr-configuration yet: the Pod webhook is there anyway, with failure policy Ignore.
	waitPodWebhook(t, kube, admissionregistrationv1.Ignore, logs)

	beijing := emu.Instance(t, world.DemoInstanceABeijing)
	hzB := emu.Instance(t, world.DemoInstanceBHangzhou)
	pullRoleB := "acs:ram::" + world.DemoAccountB + ":role/" + world.DemoPullRole
	chainB := annotations.RoleChain{UserARNs: []string{pullRoleB}}
	tests := []struct {
		name    string
		ann     map[string]string
		secret  string // expected imagePullSecrets entry ("" = none)
		image   string // pulled with the Secret
		blocked string // must NOT be pulled with the Secret
	}{
		{name: "no annotation: unchanged", ann: nil},
		{name: "acr-instance-id with region (account A, cn-beijing)",
			ann:    map[string]string{annotations.AcrInstanceID: "cn-beijing:" + world.DemoInstanceABeijing},
			secret: podsecret.SecretName(world.DemoInstanceABeijing, annotations.RoleChain{}), image: beijing.Image, blocked: hzB.Image},
		{name: "cross-account: acr-user-arns = account B's acr-pull, region from --region",
			ann:    map[string]string{annotations.AcrInstanceIDs: world.DemoInstanceBHangzhou, annotations.AcrUserARNs: pullRoleB},
			secret: podsecret.SecretName(world.DemoInstanceBHangzhou, chainB), image: hzB.Image, blocked: beijing.Image},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := testPod(fmt.Sprintf("p%d", i), tt.ann)
			if err := kube.Client.Create(ctx, pod); err != nil {
				t.Fatalf("create: %v\nhelper log tail:\n%s", err, tail(logs.String(), 3000))
			}
			if tt.secret == "" {
				if len(pod.Spec.ImagePullSecrets) != 0 {
					t.Fatalf("imagePullSecrets %v, want none", pod.Spec.ImagePullSecrets)
				}
				return
			}
			if len(pod.Spec.ImagePullSecrets) != 1 || pod.Spec.ImagePullSecrets[0].Name != tt.secret {
				t.Fatalf("imagePullSecrets %v, want [%s]\nhelper log tail:\n%s", pod.Spec.ImagePullSecrets, tt.secret, tail(logs.String(), 3000))
			}
			s := &corev1.Secret{}
			if err := kube.Client.Get(ctx, client.ObjectKey{Namespace: "app", Name: tt.secret}, s); err != nil {
				t.Fatal(err)
			}
			if s.Type != corev1.SecretTypeDockerConfigJson || s.Labels[pullsecret.LabelSource] != pullsecret.SourcePodAnnotation || s.Labels["ferry.dev/instance"] != "" {
				t.Fatalf("Secret type %s labels %v: want dockerconfigjson, %s=%s and no ferry.dev/instance (pullsecret GC)",
					s.Type, s.Labels, pullsecret.LabelSource, pullsecret.SourcePodAnnotation)
			}
			if err := pullWith(t, emu, s, tt.image, false); err != nil {
				t.Fatalf("pull %s with the minted Secret: %v", tt.image, err)
			}
			if err := pullWith(t, emu, s, tt.blocked, true); err == nil {
				t.Fatalf("the minted Secret also pulls %s", tt.blocked)
			}
			needles = append(needles, secretPasswords(t, s)...)

			// A second Pod reuses the Secret (no second write, same name).
			again := testPod(fmt.Sprintf("p%d-again", i), tt.ann)
			if err := kube.Client.Create(ctx, again); err != nil {
				t.Fatal(err)
			}
			if len(again.Spec.ImagePullSecrets) != 1 || again.Spec.ImagePullSecrets[0].Name != tt.secret {
				t.Fatalf("second Pod imagePullSecrets %v", again.Spec.ImagePullSecrets)
			}
		})
	}

	// failure-policy Fail from acr-configuration: bad annotations reject the Pod.
	if err := kube.Client.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "acr-configuration"},
		Data: map[string]string{"service-account": "default", "watch-namespace": "elsewhere",
			"acr-registry-info":     entry(emu.Instance(t, world.DemoInstanceAHangzhou), ""),
			"webhook-configuration": "enable: true\nfailure-policy: Fail\ntimeout-seconds: 10\n"}}); err != nil {
		t.Fatal(err)
	}
	waitPodWebhook(t, kube, admissionregistrationv1.Fail, logs)
	rejects := []struct {
		name, key, value, want string
	}{
		{"malformed instance id", annotations.AcrInstanceID, "cn-beijing:not-an-instance", `annotation k8s.aliyun.com/acr-instance-id: value "cn-beijing:not-an-instance"`},
		{"unknown instance", annotations.AcrInstanceIDs, "cn-beijing:cri-gone000000001", pod.ErrUnknownInstance.Error()},
		{"account B instance without the role", annotations.AcrInstanceIDs, "cn-hangzhou:" + world.DemoInstanceBHangzhou,
			`annotation k8s.aliyun.com/acr-instance-ids: value "cn-hangzhou:` + world.DemoInstanceBHangzhou + `"`},
	}
	for i, tt := range rejects {
		t.Run("Fail policy: "+tt.name, func(t *testing.T) {
			// The policy reaches the handler through the informer-fed Store: retry until it does.
			poll(t, 30*time.Second, "rejection", func() error {
				err := kube.Client.Create(ctx, testPod(fmt.Sprintf("bad%d", i), map[string]string{tt.key: tt.value}))
				if err == nil {
					return fmt.Errorf("admitted")
				}
				if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), tt.value) {
					return fmt.Errorf("rejected with %v, want %q", err, tt.want)
				}
				for _, n := range needles {
					if strings.Contains(err.Error(), n) {
						t.Fatal("the rejection carries a secret")
					}
				}
				return nil
			})
		})
	}

	t.Run("no secret in the helper's logs or Events", func(t *testing.T) {
		if len(needles) < 3 {
			t.Fatalf("only %d secrets to look for", len(needles))
		}
		out := logs.String()
		if !strings.Contains(out, "webhook") {
			t.Fatalf("nothing captured (%d bytes)", len(out))
		}
		var evs corev1.EventList
		if err := kube.Client.List(ctx, &evs, client.InNamespace("app")); err != nil {
			t.Fatal(err)
		}
		if len(evs.Items) == 0 {
			t.Fatal("no Events recorded in namespace app to check")
		}
		for _, e := range evs.Items {
			out += e.Reason + " " + e.Message + "\n"
		}
		for _, n := range needles {
			if strings.Contains(out, n) {
				t.Fatal("a minted password or the AccessKey secret appears in the helper's logs or Events")
			}
		}
	})
}

// startPodWebhookHelper runs the helper with alibaba-addon-secret = account A's admin (the
// cluster identity), --region cn-hangzhou and the webhook reached through --webhook-url. It
// returns the helper's logs and the AccessKey secret.
func startPodWebhookHelper(t *testing.T, kube *kubeenv.Env, emu *emulatorenv.Env) (*logbuf.Buffer, []string) {
	t.Helper()
	ctx := t.Context()
	info := emu.Info
	admin := emu.User(t, world.DemoAccountA, "admin")
	needles := []string{admin.AccessKeySecret}
	for _, o := range []client.Object{
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "alibaba-addon-secret"},
			Data: map[string][]byte{"access-key-id": []byte(admin.AccessKeyID), "access-key-secret": []byte(admin.AccessKeySecret)}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "app"}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "default"}}, // no controller-manager runs
	} {
		if err := kube.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}

	port := tools.FreePort(t)
	o := DefaultOptions()
	o.Kubeconfig, o.Region, o.Namespace = kube.KubeconfigPath, "cn-hangzhou", "ferry-system"
	o.CloudDialAddr, o.STSEndpoint, o.CAFile = info.OpenAPITLSEndpoint, info.OpenAPITLSEndpoint, info.CAFile
	o.MetricsAddr, o.HealthAddr, o.Verbosity = "0", "0", 1
	o.WebhookPort, o.WebhookHost, o.WebhookURL = port, "127.0.0.1", "https://127.0.0.1:"+strconv.Itoa(port)
	o.skipNameValidation = true
	if err := kube.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: o.Namespace}}); err != nil {
		t.Fatal(err)
	}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	logs := &logbuf.Buffer{}
	hctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- run(hctx, o, operator.Streams{Out: io.Discard, Err: logs}, nil) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("helper: %v", err)
		}
	})

	return logs, needles
}

func testPod(name string, ann map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: name, Annotations: ann},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "example.invalid/app:1"}},
			AutomountServiceAccountToken: new(bool)},
	}
}

// waitPodWebhook waits until the helper's MutatingWebhookConfiguration has the Pod webhook
// with the failure policy.
func waitPodWebhook(t *testing.T, kube *kubeenv.Env, fp admissionregistrationv1.FailurePolicyType, logs *logbuf.Buffer) {
	t.Helper()
	poll(t, 60*time.Second, "Pod webhook with failurePolicy "+string(fp), func() error {
		mwc := &admissionregistrationv1.MutatingWebhookConfiguration{}
		if err := kube.Client.Get(t.Context(), client.ObjectKey{Name: "ferry-acr-credential-helper"}, mwc); err != nil {
			return fmt.Errorf("%w; helper log tail:\n%s", err, tail(logs.String(), 2000))
		}
		for _, w := range mwc.Webhooks {
			if w.Name == pod.WebhookName && w.FailurePolicy != nil && *w.FailurePolicy == fp && w.ClientConfig.URL != nil &&
				strings.HasSuffix(*w.ClientConfig.URL, pod.Path) && len(w.ClientConfig.CABundle) > 0 {
				return nil
			}
		}
		return fmt.Errorf("webhooks %d: no %s with %s", len(mwc.Webhooks), pod.WebhookName, fp)
	})
}

// pullWith fetches image's manifest and config blob with the Secret's credential for its host
// (anyHost: with the Secret's credential whatever its host, to show a token's reach).
func pullWith(t *testing.T, emu *emulatorenv.Env, s *corev1.Secret, image string, anyHost bool) error {
	t.Helper()
	ref, err := name.ParseReference(image)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := dockercfg.Parse(s.Data[corev1.DockerConfigJsonKey])
	if err != nil {
		t.Fatal(err)
	}
	e, ok := cfg.Lookup(ref.Context().RegistryStr())
	if !ok && anyHost && len(cfg.Hosts()) > 0 {
		e, ok = cfg.Lookup(cfg.Hosts()[0])
	}
	if !ok {
		return fmt.Errorf("no credential for %s in the Secret (hosts %v)", ref.Context().RegistryStr(), cfg.Hosts())
	}
	img, err := remote.Image(ref, remote.WithContext(t.Context()), remote.WithTransport(emu.Transport),
		remote.WithAuth(&authn.Basic{Username: e.Username, Password: e.Password.Reveal()}))
	if err != nil {
		return err
	}
	_, err = img.ConfigFile()
	return err
}

func secretPasswords(t *testing.T, s *corev1.Secret) []string {
	t.Helper()
	cfg, err := dockercfg.Parse(s.Data[corev1.DockerConfigJsonKey])
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, h := range cfg.Hosts() {
		if e, ok := cfg.Lookup(h); ok && e.Password.Reveal() != "" {
			out = append(out, e.Password.Reveal())
		}
	}
	if len(out) == 0 {
		t.Fatal("Secret holds no password")
	}
	return out
}

// TestPodWebhookRealKubeletPull is the same wiring with a real kubelet and containerd: a Pod
// with acr-instance-id (and one with account B's acr-user-arns) and no imagePullSecrets is
// pulled by the kubelet from the acr-emulator; the same Pod without the annotation fails with
// an auth error.
func TestPodWebhookRealKubeletPull(t *testing.T) {
	ctx := t.Context()
	kube := kubeenv.Start(t)
	emu := emulatorenv.Start(t, emulatorenv.Options{})
	var bare []string
	for d := range emu.Domains() {
		bare = append(bare, d)
	}
	etchosts.Ensure(t, bare...)
	ctrd := containerdenv.Start(t, containerdenv.Options{})
	// The node trusts the cloud's CA (real ACR has public certificates): node setup, not ferry's job.
	for _, in := range emu.Info.Instances {
		for _, d := range in.Domains {
			ctrd.WriteHostsTOML(t, d, fmt.Sprintf("server = %q\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n  ca = %q\n",
				"https://"+d, "https://"+d, emu.Info.CAFile))
		}
	}
	kl := kubeletenv.Start(t, kube, ctrd)
	logs, _ := startPodWebhookHelper(t, kube, emu)
	waitPodWebhook(t, kube, admissionregistrationv1.Ignore, logs)

	pullRoleB := "acs:ram::" + world.DemoAccountB + ":role/" + world.DemoPullRole
	tests := []struct {
		name    string
		ann     map[string]string
		image   string
		pulled  bool
		wantErr string
	}{
		{name: "no annotation: auth error", image: emu.Instance(t, world.DemoInstanceABeijing).Image, wantErr: "authorization failed"},
		{name: "acr-instance-id cn-beijing", ann: map[string]string{annotations.AcrInstanceID: "cn-beijing:" + world.DemoInstanceABeijing},
			image: emu.Instance(t, world.DemoInstanceABeijing).Image, pulled: true},
		{name: "cross-account acr-user-arns", ann: map[string]string{annotations.AcrInstanceIDs: world.DemoInstanceBHangzhou, annotations.AcrUserARNs: pullRoleB},
			image: emu.Instance(t, world.DemoInstanceBHangzhou).Image, pulled: true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := kl.Pod("app", fmt.Sprintf("kl-%d", i), tt.image)
			pod.Annotations = tt.ann
			if err := kube.Client.Create(ctx, pod); err != nil {
				t.Fatal(err)
			}
			res, err := kubeletenv.WaitForPullEvent(ctx, kube.Client, pod)
			if err != nil {
				t.Fatalf("%v\nkubelet log tail:\n%s", err, tail(kl.Log(), 3000))
			}
			if res.Pulled != tt.pulled || !strings.Contains(res.Message, tt.wantErr) {
				t.Fatalf("pulled=%v %s: %s; want pulled=%v error containing %q (imagePullSecrets %v)",
					res.Pulled, res.Reason, res.Message, tt.pulled, tt.wantErr, pod.Spec.ImagePullSecrets)
			}
		})
	}
}
