package openapi

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	cr "github.com/alibabacloud-go/cr-20181201/v2/client"
	openapiv2 "github.com/alibabacloud-go/darabonba-openapi/v2/client"
	"github.com/alibabacloud-go/tea/dara"
	"github.com/alibabacloud-go/tea/tea"
	"github.com/aliyun/credentials-go/credentials"

	"github.com/ferrypull/ferry/internal/emulator/ram"
	"github.com/ferrypull/ferry/internal/emulator/world"
	"github.com/ferrypull/ferry/internal/testutil/logbuf"
)

// caPEM is the certificate of every httptest TLS server (they share one test certificate).
var caPEM string

// TestMain trusts the httptest certificate in http.DefaultTransport before any request:
// credentials-go always talks https to STS and clones DefaultTransport per request
// (reference §8.2), so this is how a client trusts a local STS.
func TestMain(m *testing.M) {
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	cert := srv.Certificate()
	srv.Close()
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	http.DefaultTransport.(*http.Transport).TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	caPEM = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}))
	os.Exit(m.Run())
}

// clock is a movable clock for the emulator side.
type clock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.off += d
}

type env struct {
	w       *world.World
	svc     *ram.Service
	clock   *clock
	logs    *logbuf.Buffer
	plain   *httptest.Server
	tls     *httptest.Server
	secrets []string // every secret the test saw; none may reach the logs
	mu      sync.Mutex
}

type envOptions struct {
	world world.DefaultOptions
	opts  []Option
	wrap  func(http.Handler) http.Handler
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	w, err := world.Default(o.world)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{w: w, clock: &clock{}, logs: &logbuf.Buffer{}}
	e.svc = ram.New(w, ram.WithClock(e.clock.Now))
	log := slog.New(slog.NewJSONHandler(e.logs, nil))
	var h http.Handler = New(e.svc, append([]Option{WithLogger(log)}, o.opts...)...)
	if o.wrap != nil {
		h = o.wrap(h)
	}
	e.plain = httptest.NewServer(h)
	e.tls = httptest.NewTLSServer(h)
	t.Cleanup(e.plain.Close)
	t.Cleanup(e.tls.Close)
	for _, a := range w.Accounts {
		for _, k := range a.AccessKeys {
			e.secrets = append(e.secrets, k.Secret)
		}
		for _, u := range a.Users {
			for _, k := range u.AccessKeys {
				e.secrets = append(e.secrets, k.Secret)
			}
			if u.Password != "" {
				e.secrets = append(e.secrets, u.Password)
			}
		}
	}
	t.Cleanup(func() {
		logs := e.logs.String()
		e.mu.Lock()
		defer e.mu.Unlock()
		for _, s := range e.secrets {
			if s != "" && strings.Contains(logs, s) {
				t.Errorf("a secret (%d chars) appears in the emulator log", len(s))
			}
		}
		if !strings.Contains(logs, `"msg":"openapi call"`) {
			t.Error("no openapi call was logged")
		}
	})
	return e
}

// remember records secrets minted during a test for the log check.
func (e *env) remember(s ...string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.secrets = append(e.secrets, s...)
}

func (e *env) secret(t *testing.T, akID string) string {
	t.Helper()
	o, ok := e.w.AccessKey(akID)
	if !ok {
		t.Fatalf("no AccessKey %s", akID)
	}
	return o.Secret
}

func hostOf(s *httptest.Server) string {
	return strings.TrimPrefix(strings.TrimPrefix(s.URL, "http://"), "https://")
}

type clientOpts struct {
	tls       bool
	algorithm string // "" (ACS3) or "v2" (RPC v1 / ROA v1)
	token     string
}

func (e *env) config(ak, secret string, o clientOpts) *openapiv2.Config {
	cfg := &openapiv2.Config{
		AccessKeyId: tea.String(ak), AccessKeySecret: tea.String(secret), RegionId: tea.String("cn-hangzhou"),
		Endpoint: tea.String(hostOf(e.plain)), Protocol: tea.String("http"),
	}
	if o.token != "" {
		cfg.SecurityToken = tea.String(o.token)
	}
	if o.tls {
		cfg.Endpoint, cfg.Protocol, cfg.Ca = tea.String(hostOf(e.tls)), tea.String("https"), tea.String(caPEM)
	}
	if o.algorithm != "" {
		cfg.SignatureAlgorithm = tea.String(o.algorithm)
	}
	return cfg
}

func (e *env) cr(t *testing.T, ak, secret string, o clientOpts) *cr.Client {
	t.Helper()
	c, err := cr.NewClient(e.config(ak, secret, o))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// crWith returns a CR client on the plain-HTTP endpoint that signs with
// cred (a credentials-go provider: ram_role_arn, oidc_role_arn, ...).
func (e *env) crWith(t *testing.T, cred credentials.Credential) *cr.Client {
	t.Helper()
	c, err := cr.NewClient(&openapiv2.Config{Credential: cred, RegionId: tea.String("cn-hangzhou"), Endpoint: tea.String(hostOf(e.plain)), Protocol: tea.String("http")})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// registryToken calls GetAuthorizationToken for instance with c, fails the
// test on an error and remembers the token for the log check.
func (e *env) registryToken(t *testing.T, c *cr.Client, instance string) *cr.GetAuthorizationTokenResponseBody {
	t.Helper()
	tok, err := c.GetAuthorizationToken(&cr.GetAuthorizationTokenRequest{InstanceId: tea.String(instance)})
	if err != nil {
		t.Fatal(err)
	}
	e.remember(tea.StringValue(tok.Body.AuthorizationToken))
	return tok.Body
}

// errCode extracts the Alibaba error code and HTTP status from an SDK error.
func errCode(err error) (string, int) {
	var re dara.ResponseError
	if errors.As(err, &re) {
		return dara.StringValue(re.GetCode()), dara.IntValue(re.GetStatusCode())
	}
	var se *tea.SDKError
	if errors.As(err, &se) {
		return tea.StringValue(se.Code), tea.IntValue(se.StatusCode)
	}
	return "", 0
}
