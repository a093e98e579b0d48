// Package cri runs the acr-emulator's ECI container groups on a containerd (or any CRI
// runtime) through its CRI socket: one pod sandbox per group (host network, no CNI), one CRI
// container per container, CRI PullImage with the group's credentials. Plain-HTTP and
// insecure registries are configured through the runtime's registry config_path
// (hosts.toml), written for the duration of one pull and put back afterwards.
//
//	rt, err := cri.Dial(ctx, cri.Options{Socket: "/run/containerd/containerd.sock", HostsDir: "/etc/containerd/certs.d", LogDir: dir})
//	svc := eci.New(rt)
package cri

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/ferrypull/ferry/internal/atomicfile"
	"github.com/ferrypull/ferry/internal/emulator/eci"
)

// Options configure the runtime.
type Options struct {
	// Socket is the CRI socket (containerd's gRPC address). Required.
	Socket string
	// HostsDir is the runtime's registry config_path (<HostsDir>/<host[:port]>/hosts.toml); needed
	// for PlainHttpRegistry and InsecureRegistry, and to trust CAFile for CAHosts.
	HostsDir string
	// LogDir holds the container logs (LogDir/<group id>/<container>/<attempt>.log). Required.
	LogDir string
	// Namespace is the CRI pod namespace of every sandbox (default "eci").
	Namespace string
	Logger    *slog.Logger
}

// marker starts every hosts.toml this package writes; files without it are the user's and are
// never changed.
const marker = "# written by acr-emulator (ECI runtime)\n"

// Runtime is an eci.Runtime on a CRI socket.
type Runtime struct {
	opts    Options
	conn    *grpc.ClientConn
	rt      runtimeapi.RuntimeServiceClient
	img     runtimeapi.ImageServiceClient
	log     *slog.Logger
	hostsMu sync.Mutex
	hosts   map[string]*sync.Mutex
}

var _ eci.Runtime = (*Runtime)(nil)

// Dial connects to the CRI socket and checks that it answers.
func Dial(ctx context.Context, o Options) (*Runtime, error) {
	if o.Socket == "" || o.LogDir == "" {
		return nil, errors.New("eci runtime: the CRI socket and the log directory are required")
	}
	if o.Namespace == "" {
		o.Namespace = "eci"
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	target := o.Socket
	if !strings.Contains(target, "://") {
		target = "unix://" + target
	}
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("eci runtime: CRI socket %s: %w", o.Socket, err)
	}
	r := &Runtime{opts: o, conn: conn, rt: runtimeapi.NewRuntimeServiceClient(conn), img: runtimeapi.NewImageServiceClient(conn),
		log: o.Logger, hosts: map[string]*sync.Mutex{}}
	vctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v, err := r.rt.Version(vctx, &runtimeapi.VersionRequest{})
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("eci runtime: CRI socket %s does not answer: %w", o.Socket, err)
	}
	r.log.Info("eci runtime connected", "socket", o.Socket, "runtime", v.RuntimeName, "version", v.RuntimeVersion)
	if err := os.MkdirAll(o.LogDir, 0o755); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("eci runtime: log directory: %w", err)
	}
	return r, nil
}

// Trust writes a hosts.toml trusting caFile for each host (the emulator's own registry
// domains), unless the user owns that host's file. Without a HostsDir it does nothing.
func (r *Runtime) Trust(caFile string, hosts ...string) {
	if r.opts.HostsDir == "" {
		return
	}
	for _, h := range hosts {
		if err := r.writeHosts(h, trustTOML(h, caFile)); err != nil {
			r.log.Warn("eci runtime: cannot trust the emulator CA for a registry host", "host", h, "error", err)
		}
	}
}

// Close closes the CRI connection.
func (r *Runtime) Close() error { return r.conn.Close() }

func trustTOML(host, ca string) string {
	return fmt.Sprintf("%sserver = %q\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n  ca = %q\n", marker, "https://"+host, "https://"+host, ca)
}

func (r *Runtime) hostsPath(host string) string {
	return filepath.Join(r.opts.HostsDir, host, "hosts.toml")
}

// writeHosts writes host's hosts.toml unless the user owns one.
func (r *Runtime) writeHosts(host, content string) error {
	p := r.hostsPath(host)
	if old, err := os.ReadFile(p); err == nil && !bytes.HasPrefix(old, []byte(marker)) {
		return fmt.Errorf("%s exists and is not the emulator's: left alone", p)
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return atomicfile.Write(p, []byte(content), 0o644)
}

func (r *Runtime) hostLock(host string) *sync.Mutex {
	r.hostsMu.Lock()
	defer r.hostsMu.Unlock()
	m, ok := r.hosts[host]
	if !ok {
		m = &sync.Mutex{}
		r.hosts[host] = m
	}
	return m
}

// PullImage pulls ref through CRI. For a plain-HTTP or insecure host it writes a temporary
// hosts.toml for the pull and restores the previous one afterwards; pulls from one host are
// serialised so that the temporary setting never applies to another group's pull.
func (r *Runtime) PullImage(ctx context.Context, ref string, auth *eci.Auth, mode eci.TLSMode) (string, error) {
	host := hostOf(ref)
	m := r.hostLock(host)
	m.Lock()
	defer m.Unlock()
	if mode != eci.TLSVerify {
		if r.opts.HostsDir == "" {
			return "", eci.ErrTLSNotSupported
		}
		restore, err := r.temporaryHosts(host, mode)
		if err != nil {
			return "", err
		}
		defer restore()
	}
	req := &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}}
	if auth != nil {
		req.Auth = &runtimeapi.AuthConfig{Username: auth.Username, Password: auth.Password}
	}
	resp, err := r.img.PullImage(ctx, req)
	if err != nil {
		msg := err.Error()
		if auth != nil && auth.Password != "" {
			msg = strings.ReplaceAll(msg, auth.Password, "REDACTED")
		}
		return "", errors.New(msg)
	}
	return resp.ImageRef, nil
}

func (r *Runtime) temporaryHosts(host string, mode eci.TLSMode) (func(), error) {
	p := r.hostsPath(host)
	old, err := os.ReadFile(p)
	had := err == nil
	if had && !bytes.HasPrefix(old, []byte(marker)) {
		// The user configured this host; their settings apply.
		return func() {}, nil
	}
	var content string
	switch mode {
	case eci.TLSPlainHTTP:
		content = fmt.Sprintf("%sserver = %q\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n", marker, "http://"+host, "http://"+host)
	default:
		content = fmt.Sprintf("%sserver = %q\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n  skip_verify = true\n", marker, "https://"+host, "https://"+host)
	}
	if err := r.writeHosts(host, content); err != nil {
		return nil, fmt.Errorf("configure %s: %w", host, err)
	}
	return func() {
		if had {
			_ = atomicfile.Write(p, old, 0o644)
			return
		}
		_ = os.Remove(p)
		_ = os.Remove(filepath.Dir(p))
	}, nil
}

func hostOf(ref string) string {
	first, _, ok := strings.Cut(ref, "/")
	if !ok || (!strings.ContainsAny(first, ".:") && first != "localhost") {
		return "docker.io"
	}
	return first
}

// ImageRef returns the image's CRI reference if it is present.
func (r *Runtime) ImageRef(ctx context.Context, ref string) (string, bool, error) {
	st, err := r.img.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
	if err != nil {
		return "", false, fmt.Errorf("image status of %s: %w", ref, err)
	}
	if st.Image == nil {
		return "", false, nil
	}
	return st.Image.Id, true, nil
}

func (r *Runtime) sandboxConfig(s eci.Sandbox) *runtimeapi.PodSandboxConfig {
	name := s.Name
	if name == "" {
		name = s.GroupID
	}
	return &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Uid: s.GroupID, Namespace: r.opts.Namespace},
		LogDirectory: filepath.Join(r.opts.LogDir, s.GroupID),
		Labels:       map[string]string{"ferry.dev/eci-group": s.GroupID, "ferry.dev/eci-account": s.Account},
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			CgroupParent: "/k8s.io/ferry-eci-" + s.GroupID,
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE},
			},
		},
	}
}

// RunSandbox starts the group's pod sandbox.
func (r *Runtime) RunSandbox(ctx context.Context, s eci.Sandbox) (string, error) {
	cfg := r.sandboxConfig(s)
	if err := os.MkdirAll(cfg.LogDirectory, 0o755); err != nil {
		return "", fmt.Errorf("sandbox log directory: %w", err)
	}
	resp, err := r.rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		return "", fmt.Errorf("run pod sandbox: %w", err)
	}
	return resp.PodSandboxId, nil
}

// CreateContainer creates (not starts) a container in the sandbox.
func (r *Runtime) CreateContainer(ctx context.Context, sandboxID string, s eci.Sandbox, c eci.ContainerSpec, imageRef string, attempt int) (string, error) {
	envs := make([]*runtimeapi.KeyValue, 0, len(c.Env))
	for _, e := range c.Env {
		envs = append(envs, &runtimeapi.KeyValue{Key: e.Key, Value: []byte(e.Value)})
	}
	cfg := &runtimeapi.ContainerConfig{
		Metadata:   &runtimeapi.ContainerMetadata{Name: c.Name, Attempt: uint32(attempt)},
		Image:      &runtimeapi.ImageSpec{Image: imageRef, UserSpecifiedImage: c.Image},
		Command:    c.Command,
		Args:       c.Args,
		WorkingDir: c.WorkingDir,
		Envs:       envs,
		LogPath:    filepath.Join(c.Name, fmt.Sprintf("%d.log", attempt)),
		Labels:     map[string]string{"ferry.dev/eci-group": s.GroupID},
		Linux:      &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE}}},
	}
	resp, err := r.rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: sandboxID, Config: cfg, SandboxConfig: r.sandboxConfig(s)})
	if err != nil {
		return "", err
	}
	return resp.ContainerId, nil
}

// StartContainer starts a created container.
func (r *Runtime) StartContainer(ctx context.Context, id string) error {
	_, err := r.rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: id})
	return err
}

func unixNano(n int64) time.Time {
	if n <= 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// ContainerStatus maps the CRI state onto ECI's Waiting, Running and Terminated.
func (r *Runtime) ContainerStatus(ctx context.Context, id string) (eci.ContainerState, error) {
	resp, err := r.rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id})
	if err != nil {
		return eci.ContainerState{}, err
	}
	st := resp.Status
	out := eci.ContainerState{Started: unixNano(st.StartedAt), Finished: unixNano(st.FinishedAt), Reason: st.Reason, Message: st.Message}
	switch st.State {
	case runtimeapi.ContainerState_CONTAINER_RUNNING:
		out.State, out.DetailStatus = eci.StateRunning, "Running"
	case runtimeapi.ContainerState_CONTAINER_EXITED:
		out.State, out.ExitCode = eci.StateTerminated, int(st.ExitCode)
		if out.Reason == "" {
			out.Reason = "Completed"
			if st.ExitCode != 0 {
				out.Reason = "Error"
			}
		}
		out.DetailStatus = out.Reason
	default:
		out.State, out.DetailStatus = eci.StateWaiting, "ContainerCreating"
	}
	return out, nil
}

// maxLog bounds how much of a container log is read.
const maxLog = 4 << 20

// ReadLog returns the text of a container's CRI log (the last 4 MiB at most).
func (r *Runtime) ReadLog(ctx context.Context, id string) (string, error) {
	resp, err := r.rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id})
	if err != nil {
		return "", err
	}
	f, err := os.Open(resp.Status.LogPath)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	} else if err != nil {
		return "", err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > maxLog {
		if _, err := f.Seek(fi.Size()-maxLog, io.SeekStart); err != nil {
			return "", err
		}
	}
	return parseCRILog(f)
}

// parseCRILog turns CRI log lines ("<time> <stream> <P|F> <text>") into the text.
func parseCRILog(rd io.Reader) (string, error) {
	var b strings.Builder
	s := bufio.NewScanner(rd)
	s.Buffer(make([]byte, 64<<10), 1<<20)
	for s.Scan() {
		parts := strings.SplitN(s.Text(), " ", 4)
		if len(parts) < 3 {
			continue
		}
		text := ""
		if len(parts) == 4 {
			text = parts[3]
		}
		b.WriteString(text)
		if parts[2] != "P" {
			b.WriteByte('\n')
		}
	}
	return b.String(), s.Err()
}

// RemoveSandbox stops and removes the sandbox with its containers, and its logs.
func (r *Runtime) RemoveSandbox(ctx context.Context, id string) error {
	st, _ := r.rt.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: id})
	if _, err := r.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
		return fmt.Errorf("stop pod sandbox: %w", err)
	}
	if _, err := r.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
		return fmt.Errorf("remove pod sandbox: %w", err)
	}
	if st != nil && st.Status != nil && st.Status.Metadata != nil {
		_ = os.RemoveAll(filepath.Join(r.opts.LogDir, st.Status.Metadata.Uid))
	}
	return nil
}
