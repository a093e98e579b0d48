package podpullsecret

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/ferrypull/ferry/internal/acr"
	"github.com/ferrypull/ferry/internal/annotations"
	"github.com/ferrypull/ferry/internal/cloudcred"
	"github.com/ferrypull/ferry/internal/dockercfg"
	"github.com/ferrypull/ferry/internal/emulator/world"
	"github.com/ferrypull/ferry/internal/redact"
	"github.com/ferrypull/ferry/internal/testutil/containerdenv"
	"github.com/ferrypull/ferry/internal/testutil/emulatorenv"
	"github.com/ferrypull/ferry/internal/testutil/etchosts"
	"github.com/ferrypull/ferry/internal/testutil/kubeenv"
	"github.com/ferrypull/ferry/internal/testutil/kubeletenv"
	"github.com/ferrypull/ferry/internal/testutil/logbuf"
)

// tokenEnsurer adapts the real token machinery (cloudcred identities, the acr
// client on the official SDKs) to SecretEnsurer, the way acr-credential-helper
// wires it: cluster identity = an AccessKey, plus at most one AssumeRole hop
// from the Pod's role chain; one Secret per (namespace, instance, chain).
type tokenEnsurer struct {
	c        client.Client
	resolver *cloudcred.Resolver
	acr      *acr.Client
	key      cloudcred.AccessKey
	region   string
}

func (e *tokenEnsurer) EnsureInstanceSecret(ctx context.Context, ns string, inst annotations.InstanceRef, chain annotations.RoleChain) (string, error) {
	roles := chain.Roles()
	if len(roles) > 1 {
		return "", fmt.Errorf("role chains of %d roles are not supported yet", len(roles))
	}
	req := cloudcred.Request{AddonAccessKey: &e.key, ExpireDuration: time.Hour}
	if len(roles) == 1 {
		req.AssumeRoleARN = roles[0]
	}
	id, err := e.resolver.Resolve(ctx, req)
	if err != nil {
		return "", err
	}
	region := inst.RegionID
	if region == "" {
		region = e.region
	}
	tok, err := e.acr.AuthorizationToken(ctx, id.Credential(), acr.Instance{ID: inst.InstanceID, Region: region})
	if err != nil {
		return "", err
	}
	domains := tok.Domains
	if len(domains) == 0 {
		if domains, err = e.acr.Domains(ctx, id.Credential(), acr.Instance{ID: inst.InstanceID, Region: region}); err != nil {
			return "", err
		}
	}
	cfg := dockercfg.New()
	cfg.Set(tok.Username, tok.Password.Reveal(), domains...)
	name := "acr-pull-" + inst.InstanceID
	if !chain.Empty() {
		h := sha256.Sum256([]byte(chain.String()))
		name += "-" + hex.EncodeToString(h[:])[:10]
	}
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Type: corev1.SecretTypeDockerConfigJson,
		Data: map[string][]byte{corev1.DockerConfigJsonKey: cfg.Render()}}
	if err := e.c.Create(ctx, sec); apierrors.IsAlreadyExists(err) {
		if err := e.c.Update(ctx, sec); err != nil {
			return "", err
		}
	} else if err != nil {
		return "", err
	}
	return name, nil
}

// TestInstanceAnnotationRealPullFromEmulator: a Pod with acr-instance-id and
// no imagePullSecrets is pulled by a real kubelet from the acr-emulator's
// registry; without the annotation the pull fails with an auth error; a
// cross-account Pod with acr-user-arns pulls from account B's instance.
func TestInstanceAnnotationRealPullFromEmulator(t *testing.T) {
	logs := &logbuf.Buffer{}
	log.SetLogger(funcr.New(func(prefix, args string) { fmt.Fprintln(logs, prefix, args) }, funcr.Options{Verbosity: 1}))
	emu := emulatorenv.Start(t, emulatorenv.Options{})
	var bare []string
	for d := range emu.Domains() {
		bare = append(bare, d)
	}
	etchosts.Ensure(t, bare...)
	kube := kubeenv.Start(t)
	ctrd := containerdenv.Start(t, containerdenv.Options{})
	kl := kubeletenv.Start(t, kube, ctrd)

	beijing := emu.Instance(t, world.DemoInstanceABeijing)
	b := emu.Instance(t, world.DemoInstanceBHangzhou)
	// The node trusts the cloud's CA (real ACR has public certificates); this is node setup, not ferry's job.
	for _, inst := range []string{world.DemoInstanceABeijing, world.DemoInstanceBHangzhou} {
		for _, d := range emu.Instance(t, inst).Domains {
			if _, _, err := net.SplitHostPort(d); err != nil {
				continue
			}
			ctrd.WriteHostsTOML(t, d, fmt.Sprintf("server = %q\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n  ca = %q\n",
				"https://"+d, "https://"+d, emu.Info.CAFile))
		}
	}
	hc, err := cloudcred.NewHTTPClient(emu.Info.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	acrClient, err := acr.NewClient(acr.ClientOptions{DialAddr: emu.Info.OpenAPITLSEndpoint, HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	resolver, err := cloudcred.NewResolver(cloudcred.Options{Region: "cn-hangzhou", STSEndpoint: emu.Info.OpenAPITLSEndpoint, HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	adminUser := emu.User(t, world.DemoAccountA, "admin")
	admin := &cloudcred.AccessKey{ID: adminUser.AccessKeyID, Secret: redact.Secret(adminUser.AccessKeySecret)}
	ctx, c := t.Context(), kube.Client
	namespace(t, c, "app")
	StartWebhook(t, kube, Options{FailurePolicy: Fail, Recorder: newAPIRecorder(t, kube),
		Ensurer: &tokenEnsurer{c: c, resolver: resolver, acr: acrClient, key: *admin, region: "cn-hangzhou"}})

	pullRoleB := "acs:ram::" + world.DemoAccountB + ":role/" + world.DemoPullRole
	tests := []struct {
		name    string
		ann     map[string]string
		image   string
		pulled  bool
		wantErr string // kubelet failure
		reject  string // admission rejection
	}{
		{name: "no annotation: auth error", image: beijing.Image, wantErr: "authorization failed"},
		{name: "acr-instance-id with region pulls", ann: map[string]string{annotations.AcrInstanceID: "cn-beijing:" + world.DemoInstanceABeijing}, image: beijing.Image, pulled: true},
		{name: "cross-account with acr-user-arns pulls from account B", ann: map[string]string{
			annotations.AcrInstanceIDs: world.DemoInstanceBHangzhou, annotations.AcrUserARNs: pullRoleB}, image: b.Image, pulled: true},
		{name: "account B instance without the role is rejected", ann: map[string]string{annotations.AcrInstanceIDs: world.DemoInstanceBHangzhou},
			image: b.Image, reject: `annotation k8s.aliyun.com/acr-instance-ids: value "` + world.DemoInstanceBHangzhou + `"`},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := kl.Pod("app", fmt.Sprintf("acr-%d", i), tt.image)
			pod.Annotations = tt.ann
			err := c.Create(ctx, pod)
			if tt.reject != "" {
				if err == nil || !strings.Contains(err.Error(), tt.reject) {
					t.Fatalf("create: %v, want rejection containing %q", err, tt.reject)
				}
				if strings.Contains(err.Error(), admin.Secret.Reveal()) {
					t.Fatal("rejection message carries the AccessKey secret")
				}
				t.Logf("rejected: %v", err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.ann != nil && len(pod.Spec.ImagePullSecrets) != 1 {
				t.Fatalf("imagePullSecrets %v", pod.Spec.ImagePullSecrets)
			}
			expectPull(ctx, t, c, ctrd, pod, tt.pulled, tt.wantErr)
		})
	}

	t.Run("no secret in logs or Events", func(t *testing.T) {
		var secrets corev1.SecretList
		if err := c.List(ctx, &secrets, client.InNamespace("app")); err != nil {
			t.Fatal(err)
		}
		needles := []string{admin.Secret.Reveal()}
		for _, s := range secrets.Items {
			cfg, err := dockercfg.Parse(s.Data[corev1.DockerConfigJsonKey])
			if err != nil {
				continue
			}
			for _, h := range cfg.Hosts() {
				if e, ok := cfg.Lookup(h); ok && e.Password.Reveal() != "" {
					needles = append(needles, e.Password.Reveal())
				}
			}
		}
		if len(needles) < 2 {
			t.Fatalf("expected minted registry passwords among %d Secrets", len(secrets.Items))
		}
		var evs corev1.EventList
		if err := c.List(ctx, &evs, client.InNamespace("app")); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(logs.String(), "webhook") || len(evs.Items) == 0 {
			t.Fatalf("nothing captured to check (%d log bytes, %d Events)", len(logs.String()), len(evs.Items))
		}
		var text strings.Builder
		text.WriteString(logs.String())
		for _, e := range evs.Items {
			text.WriteString(e.Message + "\n")
		}
		for _, n := range needles {
			if strings.Contains(text.String(), n) {
				t.Fatal("a secret appears in the logs or Events")
			}
		}
	})
}
