// Package containerdenv starts a real containerd (Debian's containerd 1.6 + runc) for tests, with its own
// root, state, socket and CRI registry config_path (hosts.toml directory), and talks to it through CRI.
package containerdenv

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/ferrypull/ferry/internal/testutil/registryenv"
	"github.com/ferrypull/ferry/internal/testutil/tools"
)

// Options configure containerd.
type Options struct {
	// SandboxImage is the pause image for CRI pod sandboxes. Empty: the rig builds one from FERRY_PAUSE and
	// serves it from an in-process registry (plain HTTP on 127.0.0.1) for the test's lifetime.
	SandboxImage string
	// Snapshotter is overlayfs (default) or native.
	Snapshotter string
}

// Containerd is a running containerd.
type Containerd struct {
	Dir          string // everything lives here
	Socket       string // gRPC socket (CRI)
	HostsDir     string // CRI registry config_path: <HostsDir>/<host:port>/hosts.toml
	SandboxImage string
	Runtime      runtimeapi.RuntimeServiceClient
	Images       runtimeapi.ImageServiceClient
	conn         *grpc.ClientConn
}

// Start starts containerd as a child process. It needs root and the Debian packages containerd and runc.
func Start(t testing.TB, opts Options) *Containerd {
	t.Helper()
	tools.Rig(t, "containerd")
	if !tools.IsRoot() {
		tools.Require(t, "containerd needs root (running as uid %d)", os.Geteuid())
	}
	bin := tools.LookPath(t, "containerd")
	tools.LookPath(t, "runc")
	if opts.Snapshotter == "" {
		opts.Snapshotter = "overlayfs"
	}
	if opts.SandboxImage == "" {
		opts.SandboxImage = PauseImage(t)
	}
	// unix socket paths are limited to 108 bytes: keep the directory short.
	dir, err := os.MkdirTemp("", "ctrd")
	if err != nil {
		t.Fatal(err)
	}
	c := &Containerd{Dir: dir, Socket: filepath.Join(dir, "c.sock"), HostsDir: filepath.Join(dir, "certs.d"), SandboxImage: opts.SandboxImage}
	for _, d := range []string{"root", "state", "certs.d", "cni/bin", "cni/conf"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cfg := fmt.Sprintf(`version = 2
root = %[1]q
state = %[2]q
[grpc]
  address = %[3]q
[ttrpc]
  address = %[4]q
[debug]
  address = %[5]q
  level = "info"
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  disable_cgroup = false
  # no CAP_SYS_RESOURCE here: runc cannot lower oom_score_adj for pod sandboxes, so clamp it
  restrict_oom_score_adj = true
  sandbox_image = %[6]q
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = %[7]q
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %[8]q
    conf_dir = %[9]q
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = %[10]q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), c.Socket, c.Socket+".ttrpc", filepath.Join(dir, "debug.sock"),
		opts.SandboxImage, opts.Snapshotter, filepath.Join(dir, "cni/bin"), filepath.Join(dir, "cni/conf"), c.HostsDir)
	cfgPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	proc := tools.StartProcess(t, "containerd", filepath.Join(dir, "containerd.log"), bin, "--config", cfgPath)

	conn, err := grpc.NewClient("unix://"+c.Socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("grpc client: %v", err)
	}
	c.conn = conn
	c.Runtime = runtimeapi.NewRuntimeServiceClient(conn)
	c.Images = runtimeapi.NewImageServiceClient(conn)
	t.Cleanup(func() { c.stop(t, proc) })

	err = tools.Poll(t.Context(), 30*time.Second, 50*time.Millisecond, func(ctx context.Context) (bool, error) {
		_, err := c.Runtime.Version(ctx, &runtimeapi.VersionRequest{})
		return err == nil, proc.Exited()
	})
	if err != nil {
		tools.Broken(t, "containerd did not start: %v\n%s", err, tail([]byte(proc.Log()), 30))
	}
	return c
}

func (c *Containerd) stop(t testing.TB, proc *tools.Process) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(t.Context()), 30*time.Second)
	defer cancel()
	if pods, err := c.Runtime.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{}); err == nil {
		for _, p := range pods.Items {
			_, _ = c.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: p.Id})
			_, _ = c.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p.Id})
		}
	}
	_ = c.conn.Close()
	proc.Stop()
	UnmountUnder(c.Dir)
	RemoveEmptyCgroups("k8s.io")
	RemoveEmptyCgroups("kubepods") // pod cgroups of a kubelet that used this containerd
	if err := os.RemoveAll(c.Dir); err != nil {
		t.Logf("remove %s: %v", c.Dir, err)
	}
}

// WriteHostsTOML writes <HostsDir>/<host>/hosts.toml.
func (c *Containerd) WriteHostsTOML(t testing.TB, host, content string) {
	t.Helper()
	d := filepath.Join(c.HostsDir, host)
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d, "hosts.toml"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// PullImage pulls ref through CRI with optional credentials and returns the image reference containerd reports.
func (c *Containerd) PullImage(ctx context.Context, ref string, auth *runtimeapi.AuthConfig) (string, error) {
	resp, err := c.Images.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}, Auth: auth})
	if err != nil {
		return "", fmt.Errorf("CRI pull %s: %w", ref, err)
	}
	return resp.ImageRef, nil
}

// RemoveImage removes ref from containerd's image store (missing images are not an error).
func (c *Containerd) RemoveImage(ctx context.Context, ref string) error {
	if _, err := c.Images.RemoveImage(ctx, &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}}); err != nil {
		return fmt.Errorf("CRI remove %s: %w", ref, err)
	}
	return nil
}

// Log returns containerd's log so far.
func (c *Containerd) Log() string {
	b, _ := os.ReadFile(filepath.Join(c.Dir, "containerd.log"))
	return string(b)
}

// PauseImage builds the pause image from the static pause binary (FERRY_PAUSE, built by hack/tools.sh),
// pushes it to an in-process registry that lives as long as the test, and returns its reference.
func PauseImage(t testing.TB) string {
	t.Helper()
	bin := tools.Env("FERRY_PAUSE")
	data, err := os.ReadFile(bin)
	if bin == "" || err != nil {
		tools.Require(t, "pause binary unavailable (FERRY_PAUSE=%q; run `make tools`): %v", bin, err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: "pause", Mode: 0o755, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	layerBytes := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(layerBytes)), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config.Entrypoint = []string{"/pause"}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	reg := registryenv.StartDistribution(t, registryenv.Options{})
	reg.Push(t, "pause:3.10", img, "", "")
	return reg.Addr + "/pause:3.10"
}

// UnmountUnder unmounts every mount point below dir, deepest first (best effort).
func UnmountUnder(dir string) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return
	}
	defer f.Close()
	var mounts []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) > 4 && (fields[4] == dir || strings.HasPrefix(fields[4], dir+"/")) {
			mounts = append(mounts, fields[4])
		}
	}
	sort.Slice(mounts, func(i, j int) bool { return len(mounts[i]) > len(mounts[j]) })
	for _, m := range mounts {
		_ = syscall.Unmount(m, syscall.MNT_DETACH)
	}
}

// RemoveEmptyCgroups removes empty cgroup directories named name in every v1 hierarchy (best effort; busy
// cgroups of other containerds or kubelets are left alone because rmdir refuses them).
func RemoveEmptyCgroups(name string) {
	roots, _ := filepath.Glob("/sys/fs/cgroup/*/" + name)
	for _, root := range roots {
		var dirs []string
		_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			_ = os.Remove(dirs[i])
		}
	}
}

func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
