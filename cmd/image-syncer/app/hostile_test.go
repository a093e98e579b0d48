package app

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferrypull/ferry/internal/imagesync/config"
	"github.com/ferrypull/ferry/internal/imagesync/report"
	"github.com/ferrypull/ferry/internal/operator"
	"github.com/ferrypull/ferry/internal/registry"
	"github.com/ferrypull/ferry/internal/testutil/registryenv"
)

// hostileSource is a hostile server posing as a source registry: each repository misbehaves in
// one way no real registry can be made to (it is not a stand-in for a registry that works). The
// destination of every test here is a real distribution/v3.
type hostileSource struct {
	*httptest.Server
	mu   sync.Mutex
	hits map[string]int // repository → manifest requests
	// release unblocks the silent handlers when the test ends.
	release chan struct{}
}

const echoedPassword = "Echoed-Pa55word-7"

func startHostileSource(t *testing.T) *hostileSource {
	h := &hostileSource{hits: map[string]int{}, release: make(chan struct{})}
	h.Server = httptest.NewServer(http.HandlerFunc(h.serve))
	t.Cleanup(h.Close)
	t.Cleanup(func() { close(h.release) }) // runs before Close, which waits for the handlers
	return h
}

func (h *hostileSource) Host() string { return strings.TrimPrefix(h.URL, "http://") }

func (h *hostileSource) count(repo string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.hits[repo]
}

func (h *hostileSource) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/v2/" {
		if r.Header.Get("Authorization") == "" {
			w.Header().Set("WWW-Authenticate", `Basic realm="hostile"`)
			w.WriteHeader(http.StatusUnauthorized)
		}
		return
	}
	repo, _, ok := strings.Cut(strings.TrimPrefix(r.URL.Path, "/v2/"), "/manifests/")
	if !ok {
		http.NotFound(w, r)
		return
	}
	h.mu.Lock()
	h.hits[repo]++
	h.mu.Unlock()
	switch repo {
	case "busy/app": // always overloaded, asking for a day's patience
		w.Header().Set("Retry-After", "86400")
		w.WriteHeader(http.StatusServiceUnavailable)
	case "loop/app":
		http.Redirect(w, r, r.URL.String(), http.StatusFound)
	case "huge/app":
		w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
		_, _ = io.WriteString(w, `{"schemaVersion":2,"annotations":{"a":"`+strings.Repeat("x", 8<<20)+`"}}`)
	case "silent/app":
		select {
		case <-h.release:
		case <-r.Context().Done():
		}
	case "echo/app": // an error message that quotes the credentials it was sent
		_, pass, _ := r.BasicAuth()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		_ = json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]string{{"code": "DENIED",
			"message": fmt.Sprintf("requested access to the resource is denied for robot with password %s (header %s)", pass, r.Header.Get("Authorization"))}}})
	default:
		http.NotFound(w, r)
	}
}

type hostileRun struct {
	runResult
	report report.Report
}

// runWith runs image-syncer with o for one source → destination rule.
func runWith(t *testing.T, o Options, auth, src, dst string, args ...string) hostileRun {
	t.Helper()
	dir := t.TempDir()
	authFile := filepath.Join(dir, "auth.yaml")
	imagesFile := filepath.Join(dir, "images.yaml")
	reportFile := filepath.Join(dir, "report.json")
	if err := os.WriteFile(authFile, []byte(auth), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(imagesFile, []byte(fmt.Sprintf("%q: %q\n", src, dst)), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute) // liveness only
	defer cancel()
	cmd := NewCommand(o.Run, operator.Streams{Out: &out, Err: &errb},
		append([]string{"--auth", authFile, "--images", imagesFile, "--report", reportFile, "--state-dir", ""}, args...))
	err := cmd.ExecuteContext(ctx)
	r := hostileRun{runResult: runResult{err: err, stdout: out.String(), stderr: errb.String()}}
	data, rerr := os.ReadFile(reportFile)
	if rerr != nil {
		t.Fatalf("no report (%v): %v\n%s", rerr, err, r.stderr)
	}
	if err := json.Unmarshal(data, &r.report); err != nil {
		t.Fatal(err)
	}
	r.stdout += string(data) // everything a user can read
	return r
}

func (r hostileRun) failedWith(t *testing.T, want string) {
	t.Helper()
	if r.err == nil || r.report.Summary.Failed != 1 {
		t.Fatalf("want one failed image, got err %v, summary %+v\n%s", r.err, r.report.Summary, r.stderr)
	}
	if got := r.report.Images[0].Error; !strings.Contains(got, want) {
		t.Errorf("report error %q, want it to say %q", got, want)
	}
	if quoted := strings.Trim(strconv.Quote(want), `"`); !strings.Contains(r.stderr, want) && !strings.Contains(r.stderr, quoted) {
		t.Errorf("log does not say %q:\n%s", want, r.stderr)
	}
}

var quick = registry.RetryPolicy{Attempts: 5, Base: time.Millisecond, Max: time.Millisecond, MaxRetryAfter: time.Millisecond}

// TestHostileNestedRetries: a source that always answers 503 with "Retry-After: 86400". Each
// request is sent Attempts (5) times per round and --retries 2 adds two rounds: 15 in all. Before,
// go-containerregistry's own retries multiplied this (5 × 5 per round, 75 in all).
func TestHostileNestedRetries(t *testing.T) {
	src := startHostileSource(t)
	dst := registryenv.StartDistribution(t, registryenv.Options{})
	r := runWith(t, Options{Retry: &quick}, "", src.Host()+"/busy/app:v1", dst.Addr+"/m/app", "--retries", "2")
	r.failedWith(t, "503 Service Unavailable")
	if n := src.count("busy/app"); n != 15 {
		t.Errorf("the source saw %d manifest requests, want 5 attempts × 3 rounds = 15", n)
	}
	if registry.DefaultRetryPolicy.MaxRetryAfter != 10*time.Second || registry.DefaultRetryPolicy.Attempts != 5 {
		t.Errorf("docs/image-syncer.md documents 5 attempts and Retry-After capped at 10 s: %+v", registry.DefaultRetryPolicy)
	}
}

// TestHostileSourceIsBounded: redirect loops, oversized manifests and silent servers end in a
// failed image with a clear error instead of a run that never ends or grows without bound.
func TestHostileSourceIsBounded(t *testing.T) {
	src := startHostileSource(t)
	dst := registryenv.StartDistribution(t, registryenv.Options{})
	fast := Options{Retry: &quick, Limits: registry.Limits{HeaderTimeout: 200 * time.Millisecond, IdleTimeout: 200 * time.Millisecond}}
	for _, tc := range []struct {
		repo, want string
		maxHits    int
	}{
		{"loop/app", "stopped after 10 redirects", 11},
		{"huge/app", "the manifest is larger than the 4 MiB limit", 1},
		{"silent/app", "no response headers within 200ms", 2}, // a stall is retried once
	} {
		t.Run(tc.repo, func(t *testing.T) {
			r := runWith(t, fast, "", src.Host()+"/"+tc.repo+":v1", dst.Addr+"/m/"+tc.repo, "--retries", "0")
			r.failedWith(t, tc.want)
			if n := src.count(tc.repo); n > tc.maxHits {
				t.Errorf("%d manifest requests, want at most %d", n, tc.maxHits)
			}
		})
	}
}

// TestHostileEchoedSecrets: a registry whose error message quotes the password (and the
// Authorization header) it was sent, for an auth file password and for a minted ACR token.
// Neither reaches the log or the report.
func TestHostileEchoedSecrets(t *testing.T) {
	src := startHostileSource(t)
	dst := registryenv.StartDistribution(t, registryenv.Options{})
	const minted = "Minted-Registry-Token-9"
	mint := func(context.Context, string, config.Auth) (registry.Credential, time.Time, error) {
		return registry.Credential{Username: "cr_temp_user", Password: minted}, time.Now().Add(time.Hour), nil
	}
	for name, tc := range map[string]struct {
		auth   string
		secret string
	}{
		"auth file password": {fmt.Sprintf("%s: {username: robot, password: %q}\n", src.Host(), echoedPassword), echoedPassword},
		"minted ACR token":   {fmt.Sprintf("%s: {accessKeyId: LTAIhostile, accessKeySecret: AkSecretValue-3, instanceId: cri-x}\n", src.Host()), minted},
	} {
		t.Run(name, func(t *testing.T) {
			for _, format := range []string{"text", "json"} {
				r := runWith(t, Options{Retry: &quick, ACRToken: mint}, tc.auth, src.Host()+"/echo/app:v1", dst.Addr+"/m/echo", "--retries", "0", "--log-format", format)
				r.failedWith(t, "requested access to the resource is denied for robot with password [redacted]")
				all := r.stdout + r.stderr
				basic := base64.StdEncoding.EncodeToString([]byte("robot:" + echoedPassword))
				for _, s := range []string{tc.secret, basic, "AkSecretValue-3"} {
					if strings.Contains(all, s) {
						t.Errorf("%s output holds the secret %q:\n%s", format, s, all)
					}
				}
			}
		})
	}
}

// TestConfigMistakesRefused runs image-syncer on real registries (distribution/v3) with images
// files that used to pass silently: two sources writing one destination tag (both were
// "copied", the last one winning), a destination with "..", a misspelt filter key (every tag was
// copied) and a duplicate source key (one rule was dropped).
func TestConfigMistakesRefused(t *testing.T) {
	src := registryenv.StartDistribution(t, registryenv.Options{})
	dst := registryenv.StartDistribution(t, registryenv.Options{})
	for _, repo := range []string{"proj/a:v1", "proj/b:v1"} {
		img, err := random.Image(512, 1)
		if err != nil {
			t.Fatal(err)
		}
		src.Push(t, repo, img, "", "")
	}
	S, D := src.Addr, dst.Addr
	dir := t.TempDir()
	run := func(images string) hostileRun {
		p := filepath.Join(dir, "images.yaml")
		if err := os.WriteFile(p, []byte(images), 0o600); err != nil {
			t.Fatal(err)
		}
		rep := filepath.Join(dir, "report.json")
		_ = os.Remove(rep) // from the previous run
		var out, errb bytes.Buffer
		err := NewCommand(Options{Retry: &quick}.Run, operator.Streams{Out: &out, Err: &errb}, []string{"--images", p, "--report", rep, "--state-dir", "", "--retries", "0"}).ExecuteContext(t.Context())
		r := hostileRun{runResult: runResult{err: err, stdout: out.String(), stderr: errb.String()}}
		if data, rerr := os.ReadFile(rep); rerr == nil {
			_ = json.Unmarshal(data, &r.report)
		}
		return r
	}
	said := func(r hostileRun) string { // what a user reads: the error printed on exit, the report
		s := fmt.Sprint(r.err)
		for _, img := range r.report.Images {
			s += "\n" + img.Error
		}
		return s
	}

	r := run(fmt.Sprintf("%[1]s/proj/a:v1: %[2]s/m/x:v1\n%[1]s/proj/b:v1: %[2]s/m/x:v1\n%[1]s/proj/a: %[2]s/m/a\n", S, D))
	if r.err == nil || r.report.Summary.Failed != 2 || r.report.Summary.Copied != 1 {
		t.Fatalf("conflict: err %v, summary %+v\n%s", r.err, r.report.Summary, r.stderr)
	}
	want := fmt.Sprintf("destination %[2]s/m/x:v1 is written by 2 sources (%[1]s/proj/a:v1, %[1]s/proj/b:v1): refused", S, D)
	if quoted := strings.Trim(strconv.Quote(want), `"`); !strings.Contains(r.stderr, want) && !strings.Contains(r.stderr, quoted) {
		t.Errorf("log does not say %q:\n%s", want, r.stderr)
	}
	if _, err := remote.Head(dst.Ref(t, "m/x:v1")); err == nil {
		t.Error("the contested destination was written")
	}

	r = run(fmt.Sprintf("%s/proj/a:v1: %s/m/../../x\n", S, D))
	if r.err == nil || !strings.Contains(said(r), `path component ".." is not a valid repository name component`) {
		t.Errorf(".. destination: %s\n%s", said(r), r.stderr)
	}

	r = run(fmt.Sprintf("%s/proj/a: {destination: %s/m/typo, exlude: [v1]}\n", S, D))
	if r.err == nil || !strings.Contains(said(r), `unknown key "exlude" (did you mean "exclude"?)`) {
		t.Errorf("misspelt key: %s", said(r))
	}
	r = run(fmt.Sprintf("%[1]s/proj/a: %[2]s/m/one\n%[1]s/proj/a: %[2]s/m/two\n", S, D))
	if r.err == nil || !strings.Contains(said(r), fmt.Sprintf(`key "%s/proj/a" is listed twice`, S)) {
		t.Errorf("duplicate source: %s", said(r))
	}
	if _, err := remote.Head(dst.Ref(t, "m/typo:v1")); err == nil {
		t.Error("a rule with a misspelt key was run")
	}
}

// namedTransport dials host names to local test servers (hostile servers cannot get DNS names).
func namedTransport(names map[string]string) *http.Transport {
	return &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, _ := net.SplitHostPort(addr)
		if to, ok := names[host]; ok {
			addr = to
		}
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}}
}

// TestHostileTokenRealmOnAnotherSite: a registry whose challenge names a token realm on another
// site (go-containerregistry refuses private IP realms, but sends the registry's credentials to
// any public host). The credentials are not sent there unless the auth entry lists the realm
// under realmHosts; a realm on the registry's own site still gets them.
func TestHostileTokenRealmOnAnotherSite(t *testing.T) {
	var mu sync.Mutex
	sawAuth := map[string]bool{} // realm host → received credentials
	realm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		if r.Header.Get("Authorization") != "" {
			sawAuth[strings.Split(r.Host, ":")[0]] = true
		}
		mu.Unlock()
		_, _ = io.WriteString(w, `{"token":"t0ken-from-realm"}`)
	}))
	defer realm.Close()
	_, rport, _ := net.SplitHostPort(strings.TrimPrefix(realm.URL, "http://"))
	var realmHost string
	reg := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="http://%s:%s/token",service="hostile"`, realmHost, rport))
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		http.NotFound(w, r)
	}))
	defer reg.Close()
	_, gport, _ := net.SplitHostPort(strings.TrimPrefix(reg.URL, "http://"))
	tr := namedTransport(map[string]string{
		"registry.hostile.test": strings.TrimPrefix(reg.URL, "http://"),
		"auth.evil.test":        strings.TrimPrefix(realm.URL, "http://"),
		"auth.hostile.test":     strings.TrimPrefix(realm.URL, "http://"),
	})
	dst := registryenv.StartDistribution(t, registryenv.Options{})
	registryHost := "registry.hostile.test:" + gport
	for _, tc := range []struct {
		name, realm, extra string
		wantSent           bool
		want               string
	}{
		{"another site", "auth.evil.test", "", false, "registry " + registryHost + " announced its token realm on auth.evil.test:" + rport + ", another site: its credentials are not sent there"},
		{"another site, allowed in the auth file", "auth.evil.test", ", realmHosts: [auth.evil.test:" + rport + "]", true, "MANIFEST_UNKNOWN"},
		{"the registry's own site", "auth.hostile.test", "", true, "MANIFEST_UNKNOWN"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			clear(sawAuth)
			realmHost = tc.realm
			mu.Unlock()
			auth := fmt.Sprintf("%s: {username: robot, password: %q, insecure: true%s}\n", registryHost, echoedPassword, tc.extra)
			r := runWith(t, Options{Retry: &quick, Transport: tr}, auth, registryHost+"/p/app:v1", dst.Addr+"/m/app", "--retries", "0")
			if tc.want == "MANIFEST_UNKNOWN" {
				tc.want = "404 Not Found"
			}
			r.failedWith(t, tc.want)
			mu.Lock()
			defer mu.Unlock()
			if sawAuth[tc.realm] != tc.wantSent {
				t.Errorf("the realm on %s received the credentials: %v, want %v", tc.realm, sawAuth[tc.realm], tc.wantSent)
			}
		})
	}
}

// TestHostileMalformedChallenges: a registry answering with malformed WWW-Authenticate
// challenges. Each ends in a failed image with an error naming the problem, never a panic.
func TestHostileMalformedChallenges(t *testing.T) {
	dst := registryenv.StartDistribution(t, registryenv.Options{})
	for _, tc := range []struct{ challenge, want string }{
		{`Bearer realm=`, "malformed www-authenticate, missing realm"},
		{`Bearer`, "malformed www-authenticate, missing realm"},
		{`Bearer realm="ftp://x/y"`, `realm scheme "ftp" not allowed`},
		{`Bearer realm="%zz"`, "invalid URL escape"},
		{`Bearer realm="http://"`, "no Host in request URL"},
		{`Bearer realm="http://169.254.169.254/latest/meta-data"`, "is a private or link-local address"},
		{`Bearer realm="http://x,service="`, "announced its token realm on x,service=, another site"},
		{`Garbage foo`, "401 Unauthorized"},
		{"Bearer realm=\"\x00\x01\"", "malformed MIME header line"},
	} {
		t.Run(tc.challenge, func(t *testing.T) {
			src := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header()["Www-Authenticate"] = []string{tc.challenge}
				w.WriteHeader(http.StatusUnauthorized)
			}))
			defer src.Close()
			h := strings.TrimPrefix(src.URL, "http://")
			r := runWith(t, Options{Retry: &quick}, fmt.Sprintf("%s: {username: robot, password: %q}\n", h, echoedPassword), h+"/p/a:v1", dst.Addr+"/m/a", "--retries", "0")
			r.failedWith(t, tc.want)
		})
	}
}
