package app

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/ferrypull/ferry/internal/credprovider"
	"github.com/ferrypull/ferry/internal/emulator/world"
	"github.com/ferrypull/ferry/internal/testutil/emulatorenv"
)

// BenchmarkPluginExec measures what the kubelet waits for on one plugin call: exec of the
// built binary, the request on stdin, the response on stdout, against the in-process
// acr-emulator over TLS on loopback (so cloud latency is near zero: the numbers are the
// plugin's own cost). cold-node: ECS metadata (IMDSv2 token, role name, credentials) and
// GetAuthorizationToken; cold-serviceaccount: AssumeRoleWithOIDC and GetAuthorizationToken;
// warm-node: --cache-dir holds a token from an earlier run. Reports ms-p50 and ms-p99.
func BenchmarkPluginExec(b *testing.B) {
	bin := filepath.Join(b.TempDir(), "acr-credential-provider")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/ferrypull/ferry/cmd/acr-credential-provider").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		b.Fatal(err)
	}
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	issuer := "https://oidc.bench.example/" + world.DemoClusterID
	w, err := world.Default(world.DefaultOptions{OIDCIssuer: issuer, OIDCJWKS: jwks})
	if err != nil {
		b.Fatal(err)
	}
	addRigRoles(w, issuer)
	env := emulatorenv.Start(b, emulatorenv.Options{World: w})
	hzA := env.Instance(b, world.DemoInstanceAHangzhou)
	cfg := filepath.Join(b.TempDir(), "config.yaml")
	writeFile(b, cfg, "apiVersion: ferry.dev/v1alpha1\nkind: ACRCredentialProviderConfig\ninstances:\n- {instanceId: "+hzA.InstanceID+", region: cn-hangzhou, name: ferry-a}\n")
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"iss": issuer, "sub": "system:serviceaccount:team-a:puller",
		"aud": []string{credprovider.DefaultAudience}, "iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()})
	tok.Header["kid"] = "k1"
	saToken, err := tok.SignedString(key)
	if err != nil {
		b.Fatal(err)
	}
	base := append(emulatorFlags(env), "--config", cfg)
	nodeReq := requestJSON(hzA.Image)
	saReq := fmt.Sprintf(`{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderRequest","image":%q,"serviceAccountToken":%q,"serviceAccountAnnotations":{%q:%q}}`,
		hzA.Image, saToken, credprovider.RoleNameAnnotation, rigRolePull)
	cacheDir := filepath.Join(b.TempDir(), "cache")
	cases := []struct {
		name, stdin string
		args        []string
	}{
		{"cold-node", nodeReq, base},
		{"cold-serviceaccount", saReq, append(slices.Clone(base), "--oidc-provider-arn", "acs:ram::"+world.DemoAccountA+":oidc-provider/ack-rrsa-"+world.DemoClusterID)},
		{"warm-node", nodeReq, append(slices.Clone(base), "--cache-dir", cacheDir)},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			once := func() time.Duration {
				cmd := exec.Command(bin, c.args...)
				cmd.Stdin = strings.NewReader(c.stdin)
				var out, errb bytes.Buffer
				cmd.Stdout, cmd.Stderr = &out, &errb
				start := time.Now()
				err := cmd.Run()
				d := time.Since(start)
				if err != nil || !bytes.Contains(out.Bytes(), []byte(`"password"`)) {
					b.Fatalf("%v\n%s", err, errb.String())
				}
				return d
			}
			once() // warm-node: fills the cache; every case: the binary is in the page cache
			lats := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for b.Loop() {
				lats = append(lats, once())
			}
			b.StopTimer()
			slices.Sort(lats)
			p := func(q float64) time.Duration { return lats[min(len(lats)-1, int(q*float64(len(lats))))] }
			b.ReportMetric(float64(p(0.5).Microseconds())/1000, "ms-p50")
			b.ReportMetric(float64(p(0.99).Microseconds())/1000, "ms-p99")
			b.Logf("%s: %d calls, p50 %s, p99 %s, max %s", c.name, len(lats), p(0.5), p(0.99), lats[len(lats)-1])
		})
	}
}
