package app

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ferrypull/ferry/internal/annotations"
	"github.com/ferrypull/ferry/internal/nodeagent/hostsconfig"
	"github.com/ferrypull/ferry/internal/operator"
	"github.com/ferrypull/ferry/internal/testutil/kubeenv"
	"github.com/ferrypull/ferry/internal/testutil/logbuf"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{name: "ok", args: []string{"--node-name=n1", "--allowed-registries=*.corp,10.0.0.0/8", "--allowed-registries=harbor:5000"}},
		{name: "no node", args: []string{"--node-name="}, wantErr: "--node-name is required"},
		{name: "colon config path", args: []string{"--node-name=n", "--config-path=/etc/containerd/certs.d:/etc/docker/certs.d"}, wantErr: "one directory"},
		{name: "bad allow entry", args: []string{"--node-name=n", "--allowed-registries=http://x"}, wantErr: `"http://x"`},
		{name: "bad scope", args: []string{"--node-name=n", "--pod-scope=all"}, wantErr: "--pod-scope"},
		{name: "positional", args: []string{"--node-name=n", "extra"}, wantErr: "unknown command"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("NODE_NAME", "")
			var got *Options
			cmd := NewCommand(func(_ context.Context, o *Options, _ operator.Streams) error { got = o; return nil }, operator.Streams{Out: io.Discard, Err: io.Discard}, tt.args)
			cmd.SetOut(io.Discard)
			cmd.SetErr(io.Discard)
			err := cmd.ExecuteContext(t.Context())
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Allowlist().Len() != 3 || !got.Allowlist().Allows("a.corp:1") {
				t.Fatalf("allow-list %q", got.Allowlist())
			}
		})
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return "127.0.0.1:" + strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

func get(ctx context.Context, url string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func TestRunWritesHostsAndServesMetrics(t *testing.T) {
	env := kubeenv.Start(t)
	ctx, c := t.Context(), env.Client
	if err := c.Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "default"}}); err != nil {
		t.Fatal(err) // ServiceAccount admission needs it
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "p", Labels: map[string]string{annotations.RegistryConfigLabel: "true"},
			Annotations: map[string]string{annotations.PlainHTTPRegistry: "harbor.corp:5000", annotations.InsecureRegistry: "evil.com"}},
		Spec: corev1.PodSpec{NodeName: "n1", AutomountServiceAccountToken: new(bool), Containers: []corev1.Container{{Name: "c", Image: "harbor.corp:5000/a"}}},
	}
	if err := c.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	metricsAddr, healthAddr := freeAddr(t), freeAddr(t)
	o := DefaultOptions()
	o.NodeName, o.ConfigPath, o.Kubeconfig = "n1", dir, env.KubeconfigPath
	o.AllowedRegistries = []string{"*.corp"}
	o.MetricsAddr, o.HealthAddr = metricsAddr, healthAddr
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	logs := &logbuf.Buffer{}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- Run(runCtx, o, operator.Streams{Out: io.Discard, Err: logs}) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})

	deadline, stop := context.WithTimeout(ctx, 30*time.Second)
	defer stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	want := []string{
		`ferry_node_agent_registry_hosts{mode="plain-http"} 1`,
		`ferry_node_agent_registry_refusals_total{annotation="k8s.aliyun.com/insecure-registry"} 1`,
		`ferry_node_agent_reconcile_total{result="success"}`,
	}
	for {
		_, statErr := os.Stat(filepath.Join(dir, "harbor.corp:5000", hostsconfig.FileName))
		code, _, rerr := get(deadline, "http://"+healthAddr+"/readyz")
		_, body, merr := get(deadline, "http://"+metricsAddr+"/metrics")
		missing := ""
		for _, w := range want {
			if !strings.Contains(body, w) {
				missing = w
			}
		}
		if statErr == nil && rerr == nil && code == http.StatusOK && merr == nil && missing == "" {
			break
		}
		select {
		case <-deadline.Done():
			t.Fatalf("agent did not converge: file %v, readyz %d %v, metrics %v missing %q\nlogs:\n%s", statErr, code, rerr, merr, missing, logs.String())
		case <-tick.C:
		}
	}
	if !strings.Contains(logs.String(), "registry host configuration changed") {
		t.Fatalf("no change log line:\n%s", logs.String())
	}
}
