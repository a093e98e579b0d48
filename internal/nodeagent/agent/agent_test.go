package agent

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/go-logr/logr/testr"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/ferrypull/ferry/internal/annotations"
	"github.com/ferrypull/ferry/internal/nodeagent/hostsconfig"
	"github.com/ferrypull/ferry/internal/testutil/kubeenv"
	"github.com/ferrypull/ferry/internal/testutil/poll"
)

// startAgent runs a node-agent manager for node against env and returns its config dir.
func startAgent(t *testing.T, env *kubeenv.Env, node, dir string, allowed ...string) *Reconciler {
	t.Helper()
	return startAgentScope(t, env, ScopeCluster, node, dir, allowed...)
}

func startAgentScope(t *testing.T, env *kubeenv.Env, scope Scope, node, dir string, allowed ...string) *Reconciler {
	t.Helper()
	log.SetLogger(testr.New(t))
	allow, err := hostsconfig.ParseAllowlist(allowed)
	if err != nil {
		t.Fatal(err)
	}
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:                 clientgoscheme.Scheme,
		Cache:                  CacheOptions(node, scope),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             config.Controller{SkipNameValidation: ptr(true)}, // one agent per test, several tests
	})
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(mgr.GetClient(), Options{NodeName: node, Scope: scope, Hosts: hostsconfig.New(dir), Allowlist: allow,
		Recorder: mgr.GetEventRecorder("node-agent")})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return r
}

func nodeStatus(t *testing.T, c client.Client, node string) annotations.NodeRegistryStatus {
	t.Helper()
	var n corev1.Node
	if err := c.Get(t.Context(), client.ObjectKey{Name: node}, &n); err != nil {
		t.Fatal(err)
	}
	v, ok := n.Annotations[annotations.NodeRegistryStatusAnnotation]
	if !ok {
		return annotations.NodeRegistryStatus{}
	}
	s, err := annotations.ParseNodeRegistryStatus(v)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func registryPod(ns, name, node string, ann map[string]string, image string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: ann,
			Labels: map[string]string{annotations.RegistryConfigLabel: "true"}},
		Spec: corev1.PodSpec{NodeName: node, AutomountServiceAccountToken: new(bool),
			Containers: []corev1.Container{{Name: "app", Image: image}}},
	}
}

func fileExists(path string) error {
	_, err := os.Stat(path)
	return err
}

func fileGone(path string) error {
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		return fmt.Errorf("%s still exists (%v)", path, err)
	}
	return nil
}

func TestAgentConfiguresAllowedHostsAndRefusesOthers(t *testing.T) {
	env := kubeenv.Start(t)
	ctx, c := t.Context(), env.Client
	const node, other = "node-a", "node-b"
	for _, n := range []string{node, other} {
		if err := c.Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, o := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "app"}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "default"}}, // for ServiceAccount admission
	} {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	// A user's own hosts.toml for a host ferry will also configure: it must survive byte for byte.
	userHost := "harbor-tls.ferry.test:5443"
	userFile := filepath.Join(dir, userHost, hostsconfig.FileName)
	userContent := []byte("# user's mirrors\nserver = \"https://harbor-tls.ferry.test:5443\"\n[host.\"https://mirror.ferry.test\"]\n  capabilities = [\"pull\"]")
	if err := os.MkdirAll(filepath.Dir(userFile), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(userFile, userContent, 0o644); err != nil {
		t.Fatal(err)
	}

	r := startAgent(t, env, node, dir, "*.ferry.test", "10.0.0.0/8")
	poll.Until(t, "agent ready", func() error {
		if !r.Ready() {
			return fmt.Errorf("not ready")
		}
		return r.ReadyCheck(nil)
	})

	plainFile := filepath.Join(dir, "harbor-http.ferry.test:5000", hostsconfig.FileName)
	t.Run("unbound pod: host configured ahead of scheduling, status published", func(t *testing.T) {
		pod := registryPod("app", "pending", "", map[string]string{
			annotations.PlainHTTPRegistry: "harbor-http.ferry.test:5000",
			annotations.InsecureRegistry:  userHost,
		}, "harbor-http.ferry.test:5000/app:1")
		if err := c.Create(ctx, pod); err != nil {
			t.Fatal(err)
		}
		poll.Until(t, "hosts.toml written", func() error { return fileExists(plainFile) })
		poll.Until(t, "node status", func() error {
			s := nodeStatus(t, c, node)
			if s.Ready["harbor-http.ferry.test:5000"] != annotations.ModePlainHTTP || s.Ready[userHost] != annotations.ModeInsecure {
				return fmt.Errorf("status %+v", s)
			}
			return nil
		})
		got, err := os.ReadFile(userFile)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(got, userContent) || !strings.Contains(string(got), "skip_verify = true") {
			t.Fatalf("user file not merged:\n%s", got)
		}

		// Bound to another node: this node drops both entries; the user file returns to its exact bytes.
		bind := &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "pending"},
			Target: corev1.ObjectReference{Kind: "Node", Name: other}}
		if err := c.SubResource("binding").Create(ctx, pod, bind); err != nil {
			t.Fatal(err)
		}
		poll.Until(t, "entry removed after binding elsewhere", func() error { return fileGone(plainFile) })
		poll.Until(t, "user file restored", func() error {
			got, err := os.ReadFile(userFile)
			if err != nil {
				return err
			}
			if !bytes.Equal(got, userContent) {
				return fmt.Errorf("user file is\n%s", got)
			}
			return nil
		})
		if _, err := os.Stat(filepath.Dir(plainFile)); !os.IsNotExist(err) {
			t.Fatalf("directory ferry created was not removed: %v", err)
		}
	})

	t.Run("bound pod outside the allow-list gets a Warning Event and no file", func(t *testing.T) {
		pod := registryPod("app", "refused", node, map[string]string{annotations.InsecureRegistry: "registry.evil.com"}, "registry.evil.com/x:1")
		if err := c.Create(ctx, pod); err != nil {
			t.Fatal(err)
		}
		poll.Until(t, "refusal event", func() error {
			var evs corev1.EventList
			if err := c.List(ctx, &evs, client.InNamespace("app")); err != nil {
				return err
			}
			for _, e := range evs.Items {
				if e.InvolvedObject.Name == "refused" && e.Reason == ReasonNotAllowed {
					if e.Type != corev1.EventTypeWarning || !strings.Contains(e.Message, annotations.InsecureRegistry) || !strings.Contains(e.Message, "registry.evil.com") {
						t.Fatalf("event %q %q", e.Type, e.Message)
					}
					return nil
				}
			}
			return fmt.Errorf("no %s event among %d", ReasonNotAllowed, len(evs.Items))
		})
		poll.Until(t, "refused in status", func() error {
			if s := nodeStatus(t, c, node); !s.Decided("registry.evil.com") || s.Ready["registry.evil.com"] != "" {
				return fmt.Errorf("status %+v", s)
			}
			return nil
		})
		if err := fileGone(filepath.Join(dir, "registry.evil.com")); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("bound pod keeps its entry until deleted; audit event", func(t *testing.T) {
		pod := registryPod("app", "bound", node, map[string]string{annotations.PlainHTTPRegistry: "10.1.2.3:5000"}, "10.1.2.3:5000/x:1")
		if err := c.Create(ctx, pod); err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(dir, "10.1.2.3:5000", hostsconfig.FileName)
		poll.Until(t, "written", func() error { return fileExists(f) })
		poll.Until(t, "audit event", func() error {
			var evs corev1.EventList
			if err := c.List(ctx, &evs, client.InNamespace("app")); err != nil {
				return err
			}
			for _, e := range evs.Items {
				if e.InvolvedObject.Name == "bound" && e.Reason == ReasonConfigured && strings.Contains(e.Message, "plain HTTP") {
					return nil
				}
			}
			return fmt.Errorf("no %s event", ReasonConfigured)
		})
		if err := c.Delete(ctx, pod, client.GracePeriodSeconds(0)); err != nil {
			t.Fatal(err)
		}
		poll.Until(t, "removed", func() error { return fileGone(f) })
	})

	t.Run("restart removes stale ferry entries left by a previous run", func(t *testing.T) {
		stale := hostsconfig.New(dir)
		if _, err := stale.Apply(map[string]annotations.RegistryMode{"old.ferry.test": annotations.ModeInsecure}); err != nil {
			t.Fatal(err)
		}
		// Any pod event triggers a full reconcile.
		pod := registryPod("app", "trigger", other, map[string]string{annotations.PlainHTTPRegistry: "x.ferry.test"}, "x.ferry.test/y")
		if err := c.Create(ctx, pod); err != nil {
			t.Fatal(err)
		}
		poll.Until(t, "stale entry removed", func() error { return fileGone(filepath.Join(dir, "old.ferry.test")) })
		if got, _ := os.ReadFile(userFile); !bytes.Equal(got, userContent) {
			t.Fatalf("user file changed: %s", got)
		}
	})
}

func ptr[T any](v T) *T { return &v }

func TestAgentNodeScopeNeedsNoLabel(t *testing.T) {
	env := kubeenv.Start(t)
	ctx, c := t.Context(), env.Client
	for _, o := range []client.Object{
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "default"}},
	} {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	startAgentScope(t, env, ScopeNode, "n1", dir, "*.corp")
	mk := func(name, node, host string) {
		p := registryPod("default", name, node, map[string]string{annotations.PlainHTTPRegistry: host}, host+"/x")
		p.Labels = nil // no webhook in node scope
		if err := c.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	mk("unbound", "", "early.corp")
	mk("elsewhere", "n2", "other.corp")
	mk("here", "n1", "here.corp")
	poll.Until(t, "bound pod's host configured", func() error { return fileExists(filepath.Join(dir, "here.corp", hostsconfig.FileName)) })
	for _, h := range []string{"early.corp", "other.corp"} {
		if err := fileGone(filepath.Join(dir, h)); err != nil {
			t.Fatalf("node scope configured a Pod not bound here: %v", err)
		}
	}
}

// TestAgentAuditsEveryHost: a Pod asking for two plain-HTTP hosts and one insecure host. The
// events.k8s.io recorder folds Events with the same reason and object into one and keeps the
// first message, so one Event per host showed only one of the plain-HTTP hosts; every TLS
// downgrade must be visible.
func TestAgentAuditsEveryHost(t *testing.T) {
	env := kubeenv.Start(t)
	ctx, c := t.Context(), env.Client
	for _, o := range []client.Object{
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "app"}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "default"}},
	} {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	startAgent(t, env, "n1", t.TempDir(), "*.ferry.test")
	pod := registryPod("app", "two-hosts", "n1", map[string]string{
		annotations.PlainHTTPRegistry: "a.ferry.test:5000,b.ferry.test:5000",
		annotations.InsecureRegistry:  "c.ferry.test",
	}, "a.ferry.test:5000/x:1")
	if err := c.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "every configured host in an Event", func() error {
		var evs corev1.EventList
		if err := c.List(ctx, &evs, client.InNamespace("app")); err != nil {
			return err
		}
		var all string
		for _, e := range evs.Items {
			if e.InvolvedObject.Name == "two-hosts" && e.Reason == ReasonConfigured {
				all += e.Message + "\n"
			}
		}
		for _, want := range []string{`"a.ferry.test:5000" with plain HTTP`, `"b.ferry.test:5000" with plain HTTP`, `"c.ferry.test" with TLS verification disabled`} {
			if !strings.Contains(all, want) {
				return fmt.Errorf("no Event says %s; %s Events:\n%s", want, ReasonConfigured, all)
			}
		}
		return nil
	})
}
