package app

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferrypull/ferry/internal/imagesync/report"
	"github.com/ferrypull/ferry/internal/operator"
	"github.com/ferrypull/ferry/internal/testutil/registryenv"
	"github.com/ferrypull/ferry/internal/testutil/testimage"
	"github.com/ferrypull/ferry/internal/testutil/tools"
)

const (
	robotUser = "robot$ci"
	robotPass = "pa$$w0rd$HOME" // "$" must stay literal
	dstUser   = "acr-user"
	dstPass   = "dst-$ecret"
)

type harbor struct {
	src, dst *registryenv.Registry
	digests  map[string]v1.Hash
	dir      string
}

// startHarbor starts Debian's docker-registry twice: a "Harbor-like" plain-HTTP source with an
// htpasswd robot account, and a self-signed HTTPS destination with its own user.
func startHarbor(t *testing.T) *harbor {
	t.Helper()
	h := &harbor{
		src:     registryenv.StartDocker(t, registryenv.Options{Users: map[string]string{robotUser: robotPass}}),
		dst:     registryenv.StartDocker(t, registryenv.Options{TLS: true, Users: map[string]string{dstUser: dstPass}}),
		digests: map[string]v1.Hash{},
		dir:     t.TempDir(),
	}
	base, _ := random.Layer(8192, types.DockerLayer)
	amd64, armv7 := v1.Platform{OS: "linux", Architecture: "amd64"}, v1.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}
	for i, tag := range []string{"v1", "v2", "a1"} {
		h.digests["library/app:"+tag] = h.src.Push(t, "library/app:"+tag, testimage.Image(t, base, 1024+int64(i), types.DockerManifestSchema2, amd64), robotUser, robotPass)
	}
	for repo, idx := range map[string]v1.ImageIndex{
		"library/list:1": testimage.Index(t, base, 1024+50, types.DockerManifestList, types.DockerManifestSchema2, amd64, armv7),
		"library/oci:1":  testimage.Index(t, base, 1024+50, types.OCIImageIndex, types.OCIManifestSchema1, amd64, armv7),
	} {
		if err := remote.WriteIndex(h.src.Ref(t, repo), idx, h.src.Options(t.Context(), robotUser, robotPass)...); err != nil {
			t.Fatal(err)
		}
		h.digests[repo], _ = idx.Digest()
	}
	return h
}

func (h *harbor) write(t *testing.T, file, content string) string {
	t.Helper()
	p := filepath.Join(h.dir, file)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func (h *harbor) dstDigest(t *testing.T, ref string) string {
	t.Helper()
	r, err := name.ParseReference(h.dst.Addr + "/" + ref)
	if err != nil {
		t.Fatal(err)
	}
	d, err := remote.Head(r, h.dst.Options(t.Context(), dstUser, dstPass)...)
	if err != nil {
		return "missing"
	}
	return d.Digest.String()
}

type runResult struct {
	err            error
	stdout, stderr string
}

func runCmd(t *testing.T, args ...string) runResult {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := NewCommand(Run, operator.Streams{Out: &out, Err: &errb}, args)
	err := cmd.ExecuteContext(t.Context())
	return runResult{err: err, stdout: out.String(), stderr: errb.String()}
}

func noSecrets(t *testing.T, s string) {
	t.Helper()
	for _, secret := range []string{robotPass, dstPass} {
		if strings.Contains(s, secret) {
			t.Errorf("secret %q appears in output", secret)
		}
	}
}

func TestHarborToSelfSignedDestination(t *testing.T) {
	h := startHarbor(t)
	t.Setenv("DST_PASS", dstPass)
	t.Setenv("MIRROR_NS", "mirror")
	S, D := h.src.Addr, h.dst.Addr
	auth := h.write(t, "auth.yaml", fmt.Sprintf(`
%s:
  username: %s
  password: %s
  insecure: true
%s:
  username: %s
  password: ${DST_PASS}
  insecure: true
`, S, robotUser, robotPass, D, dstUser))
	appV1 := h.digests["library/app:v1"].String()
	images := h.write(t, "images.json", fmt.Sprintf(`{
  "%[1]s/library/app": "%[2]s/all/app",
  "%[1]s/library/app:v1,v2": ["%[2]s/list/app", "%[2]s/list2/app"],
  "%[1]s/library/app:v1,a1": "%[2]s/renamed/app:r1,r2",
  "%[1]s/library/app:/a/": "%[2]s/regex/app",
  "%[1]s/library/app@%[3]s": "%[2]s/$MIRROR_NS/pinned",
  "%[1]s/library/list:1": "%[2]s/lists/list",
  "%[1]s/library/oci:1": "%[2]s/oci/idx"
}`, S, D, appV1))
	reportFile := filepath.Join(h.dir, "report.json")
	success := filepath.Join(h.dir, "success.json")
	r := runCmd(t, "--auth", auth, "--images", images, "--proc", "4", "--report", reportFile, "--output-success-images", success, "--output-images-format", "json")
	if r.err != nil {
		t.Fatalf("sync failed: %v\n%s", r.err, r.stderr)
	}
	noSecrets(t, r.stdout+r.stderr)
	if !strings.Contains(r.stderr, "Synchronization finished, 0 tasks failed, cost ") {
		t.Errorf("no summary line:\n%s", r.stderr)
	}
	for dst, src := range map[string]string{
		"all/app:v1": "library/app:v1", "all/app:v2": "library/app:v2", "all/app:a1": "library/app:a1",
		"list/app:v1": "library/app:v1", "list/app:v2": "library/app:v2", "list2/app:v2": "library/app:v2",
		"renamed/app:r1": "library/app:v1", "renamed/app:r2": "library/app:a1",
		"regex/app:a1": "library/app:a1", "mirror/pinned@" + appV1: "library/app:v1",
		"lists/list:1": "library/list:1", "oci/idx:1": "library/oci:1",
	} {
		if got := h.dstDigest(t, dst); got != h.digests[src].String() {
			t.Errorf("%s: %s, want %s", dst, got, h.digests[src])
		}
	}
	if got := h.dstDigest(t, "regex/app:v1"); got != "missing" {
		t.Errorf("regex copied v1: %s", got)
	}
	var rep report.Report
	data, _ := os.ReadFile(reportFile)
	noSecrets(t, string(data))
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Summary.Failed != 0 || rep.Summary.Copied != 13 || rep.Summary.Bytes == 0 {
		t.Errorf("first report summary %+v", rep.Summary)
	}
	succ, _ := os.ReadFile(success)
	if !strings.Contains(string(succ), `"`+S+`/library/app:v1":[`) {
		t.Errorf("success images: %s", succ)
	}

	// Re-run: nothing changes, zero bytes.
	r = runCmd(t, "--auth", auth, "--images", images, "--report", reportFile)
	if r.err != nil {
		t.Fatalf("re-run failed: %v\n%s", r.err, r.stderr)
	}
	data, _ = os.ReadFile(reportFile)
	rep = report.Report{}
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Summary.Skipped != 13 || rep.Summary.Copied != 0 || rep.Summary.Bytes != 0 {
		t.Errorf("re-run summary %+v", rep.Summary)
	}
	if !strings.Contains(r.stderr, "skip synchronization because destination image exists") {
		t.Errorf("no skip line in re-run log")
	}
	// The re-run trusted the default state (in the user cache directory) for all 13.
	if !strings.Contains(r.stderr, "13 unchanged images were skipped from the state in "+defaultStateDir()) {
		t.Errorf("re-run did not use the default state:\n%s", r.stderr)
	}
	stateFile := filepath.Join(os.Getenv("XDG_CACHE_HOME"), "ferry", "image-syncer", "state", strings.ReplaceAll(D, ":", "_")+".json")
	if _, err := os.Stat(stateFile); err != nil {
		t.Errorf("default state file of the destination registry: %v", err)
	}
	// Without the state the same re-run asks both sides and still skips everything.
	r = runCmd(t, "--auth", auth, "--images", images, "--report", reportFile, "--state-dir", "")
	data, _ = os.ReadFile(reportFile)
	rep = report.Report{}
	if err := json.Unmarshal(data, &rep); err != nil || r.err != nil {
		t.Fatal(err, r.err)
	}
	if rep.Summary.Skipped != 13 || strings.Contains(r.stderr, "from the state") {
		t.Errorf("--state-dir \"\" re-run: %+v\n%s", rep.Summary, r.stderr)
	}
	if r = runCmd(t, "--auth", auth, "--images", images, "--state-ttl", "-1s"); r.err == nil || !strings.Contains(r.err.Error(), `--state-ttl -1s`) {
		t.Errorf("negative --state-ttl: %v", r.err)
	}
}

// TestSeed004LegacyConfig runs the Harbor → ACR example's shape: a --config JSON with auth and an
// empty destination, resolved by the removed --registry/--namespace flags.
func TestSeed004LegacyConfig(t *testing.T) {
	h := startHarbor(t)
	cfg := h.write(t, "harbor-to-acr.json", fmt.Sprintf(`{
    "auth": {
        "%s": {"username": "%s", "password": "%s", "insecure": true},
        "%s": {"username": "%s", "password": "%s", "insecure": true}
    },
    "images": {"%s/library/app": ""}
}`, h.src.Addr, robotUser, robotPass, h.dst.Addr, dstUser, dstPass, h.src.Addr))
	logFile := filepath.Join(h.dir, "log")
	r := runCmd(t, "--proc=10", "--config="+cfg, "--registry="+h.dst.Addr, "--namespace=image-syncer", "--retries=10", "--log="+logFile)
	log, _ := os.ReadFile(logFile)
	if r.err != nil {
		t.Fatalf("legacy run: %v\n%s", r.err, log)
	}
	noSecrets(t, string(log)+r.stdout+r.stderr)
	for _, tag := range []string{"v1", "v2", "a1"} {
		if got := h.dstDigest(t, "image-syncer/app:"+tag); got != h.digests["library/app:"+tag].String() {
			t.Errorf("image-syncer/app:%s = %s", tag, got)
		}
	}
	if !strings.Contains(string(log), `level=info msg="Synchronization finished, 0 tasks failed`) {
		t.Errorf("log file lacks the summary:\n%s", log)
	}
	// Without --registry/--namespace the empty destination is an error naming the source.
	r = runCmd(t, "--config="+cfg, "--retries=0")
	if !errors.Is(r.err, ErrFailedTasks) || !strings.Contains(r.stderr, "empty destination is not supported for source: "+h.src.Addr+"/library/app") {
		t.Errorf("empty destination: %v\n%s", r.err, r.stderr)
	}
}

func TestFailuresNameEachImage(t *testing.T) {
	h := startHarbor(t)
	S, D := h.src.Addr, h.dst.Addr
	badAuth := h.write(t, "bad-auth.yaml", fmt.Sprintf("%s: {username: %q, password: wrong-pass, insecure: true}\n%s: {username: %s, password: %q, insecure: true}\n", S, robotUser, D, dstUser, dstPass))
	images := h.write(t, "images.yaml", fmt.Sprintf("%s/library/app:v1: %s/x/app\n%s/library/list:1: %s/x/list\n", S, D, S, D))
	r := runCmd(t, "--auth", badAuth, "--images", images, "--retries", "1")
	if !errors.Is(r.err, ErrFailedTasks) {
		t.Fatalf("wrong credentials: err = %v", r.err)
	}
	for _, img := range []string{S + "/library/app:v1 -> " + D + "/x/app:v1", S + "/library/list:1 -> " + D + "/x/list:1"} {
		if !strings.Contains(r.stderr, "failed image: "+img) {
			t.Errorf("failed image %s not named:\n%s", img, r.stderr)
		}
	}
	if !strings.Contains(r.stderr, "Synchronization finished, 2 tasks failed") || !strings.Contains(r.stderr, "Failed to executed generating sync tasks from") {
		t.Errorf("compat lines missing:\n%s", r.stderr)
	}
	noSecrets(t, r.stdout+r.stderr)

	goodAuth := h.write(t, "auth.yaml", fmt.Sprintf("%s: {username: %q, password: %q, insecure: true}\n%s: {username: %s, password: %q, insecure: true}\n", S, robotUser, robotPass, D, dstUser, dstPass))
	badRules := h.write(t, "bad-rules.yaml", fmt.Sprintf(`"%[1]s/library/app:/(/": %[2]s/x/app
"%[1]s/library/app:v1,v2": %[2]s/x/app:r1
"%[1]s/library/app:v1": %[2]s/x/ok
`, S, D))
	r = runCmd(t, "--auth", goodAuth, "--images", badRules, "--retries", "0")
	if !errors.Is(r.err, ErrFailedTasks) {
		t.Fatalf("bad rules: err = %v", r.err)
	}
	for _, want := range []string{`invalid regex`, "the number of tags of source and destination is not matched", "Synchronization finished, 2 tasks failed"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("missing %q in:\n%s", want, r.stderr)
		}
	}
	if got := h.dstDigest(t, "x/ok:v1"); got != h.digests["library/app:v1"].String() {
		t.Errorf("the good rule did not run: %s", got)
	}

	// Config errors name the field and the file; nothing runs.
	for _, tc := range []struct{ file, content, want string }{
		{"a.yaml", "r.io: {username: [1]}\n", `field "username"`},
		{"a.txt", "{}", "only one of yaml/yml/json format is supported"},
	} {
		p := h.write(t, tc.file, tc.content)
		r = runCmd(t, "--auth", p, "--images", images)
		if r.err == nil || !strings.Contains(r.err.Error(), "init sync client error: generate config error: ") || !strings.Contains(r.err.Error(), tc.want) {
			t.Errorf("%s: err = %v", tc.file, r.err)
		}
	}
	if r = runCmd(t, "--images", images, "--arch", "arm:v7:x"); r.err == nil || !strings.Contains(r.err.Error(), `--arch "arm:v7:x"`) {
		t.Errorf("bad --arch: %v", r.err)
	}
}

// TestBinaryExitCode checks the real binary: "failed tasks exist" on stdout and exit status 255.
func TestBinaryExitCode(t *testing.T) {
	h := startHarbor(t)
	bin := filepath.Join(t.TempDir(), "image-syncer")
	build := exec.CommandContext(t.Context(), "go", "build", "-o", bin, "github.com/ferrypull/ferry/cmd/image-syncer")
	build.Dir = tools.ModuleRoot()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	images := h.write(t, "images.yaml", fmt.Sprintf("%s/library/app:v1: %s/x/app\n", h.src.Addr, h.dst.Addr))
	auth := h.write(t, "auth.yaml", fmt.Sprintf("%s: {insecure: true}\n%s: {insecure: true}\n", h.src.Addr, h.dst.Addr))
	cmd := exec.CommandContext(t.Context(), bin, "--auth", auth, "--images", images, "-r", "0")
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+t.TempDir())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 255 {
		t.Fatalf("exit: %v\n%s", err, stderr.String())
	}
	if strings.TrimSpace(stdout.String()) != "failed tasks exist" {
		t.Errorf("stdout = %q", stdout.String())
	}
	out, err := exec.CommandContext(t.Context(), bin, "--version").Output()
	if err != nil || !strings.Contains(string(out), "image-syncer") {
		t.Errorf("--version: %q %v", out, err)
	}
}

// TestNamespaceRuleAndFilters copies a whole namespace found through the catalog API, and a
// repository through ferry's filter object (exclude + latest).
func TestNamespaceRuleAndFilters(t *testing.T) {
	h := startHarbor(t)
	S, D := h.src.Addr, h.dst.Addr
	auth := h.write(t, "auth.yaml", fmt.Sprintf("%s: {username: %q, password: %q, insecure: true}\n%s: {username: %s, password: %q, insecure: true}\n", S, robotUser, robotPass, D, dstUser, dstPass))
	images := h.write(t, "images.yaml", fmt.Sprintf(`
"%[1]s/library/*": %[2]s/ns-mirror
"%[1]s/library/app":
  destination: %[2]s/filtered/app
  exclude: ["^a"]
  latest: 1
`, S, D))
	r := runCmd(t, "--auth", auth, "--images", images)
	if r.err != nil {
		t.Fatalf("%v\n%s", r.err, r.stderr)
	}
	for dst, src := range map[string]string{
		"ns-mirror/app:v1": "library/app:v1", "ns-mirror/app:a1": "library/app:a1",
		"ns-mirror/list:1": "library/list:1", "ns-mirror/oci:1": "library/oci:1",
		"filtered/app:v2": "library/app:v2",
	} {
		if got := h.dstDigest(t, dst); got != h.digests[src].String() {
			t.Errorf("%s: %s, want %s", dst, got, h.digests[src])
		}
	}
	for _, absent := range []string{"filtered/app:v1", "filtered/app:a1"} {
		if got := h.dstDigest(t, absent); got != "missing" {
			t.Errorf("%s copied despite the filters", absent)
		}
	}
}
