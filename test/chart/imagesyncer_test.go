package chart

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	isapp "github.com/ferrypull/ferry/cmd/image-syncer/app"
	"github.com/ferrypull/ferry/internal/operator"
	"github.com/ferrypull/ferry/internal/testutil/helmenv"
	"github.com/ferrypull/ferry/internal/testutil/registryenv"
)

// TestImageSyncerCronJobRuns runs image-syncer exactly as the chart's CronJob does — its
// arguments, the images file from the chart's ConfigMap and the auth file from a Secret laid out
// at the mounted paths — against real registries, with credentials only in the Secret.
func TestImageSyncerCronJobRuns(t *testing.T) {
	src := registryenv.StartDistribution(t, registryenv.Options{Users: map[string]string{"puller": "src-secret-pw"}})
	dst := registryenv.StartDistribution(t, registryenv.Options{Users: map[string]string{"pusher": "dst-secret-pw"}})
	img, err := random.Image(1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	want := src.Push(t, "team/app:v1", img, "puller", "src-secret-pw")

	values := map[string]any{"imageSyncer": map[string]any{
		"enabled":    true,
		"images":     map[string]any{src.Addr + "/team/app:v1": dst.Addr + "/mirror/app"},
		"authSecret": map[string]any{"name": "syncer-auth", "key": "auth.yaml"},
	}}
	objs := helmenv.Decode(t, helmenv.V4(t).Template(t, "ferry", ns, values))
	cj := find[*batchv1.CronJob](t, objs, "")
	pod := cj.Spec.JobTemplate.Spec.Template.Spec
	cm := find[*corev1.ConfigMap](t, objs, "ferry-image-syncer")
	if strings.Contains(fmt.Sprint(cm.Data), "pw") {
		t.Fatalf("credentials in the ConfigMap: %v", cm.Data)
	}

	// The Pod's filesystem: every volume mount becomes a directory under root.
	root := t.TempDir()
	secret := fmt.Sprintf("%s:\n  username: puller\n  password: src-secret-pw\n  insecure: true\n%s:\n  username: pusher\n  password: dst-secret-pw\n  insecure: true\n", src.Addr, dst.Addr)
	c := pod.Containers[0]
	for _, m := range c.VolumeMounts {
		dir := filepath.Join(root, m.MountPath)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, v := range pod.Volumes {
			if v.Name != m.Name {
				continue
			}
			switch {
			case v.ConfigMap != nil:
				for k, data := range cm.Data {
					write(t, filepath.Join(dir, k), data)
				}
			case v.Secret != nil:
				if v.Secret.SecretName != "syncer-auth" || len(v.Secret.Items) != 1 {
					t.Fatalf("auth volume %+v", v.Secret)
				}
				write(t, filepath.Join(dir, v.Secret.Items[0].Path), secret)
			}
		}
	}
	var args []string
	for _, a := range c.Args {
		for _, mnt := range c.VolumeMounts {
			a = strings.Replace(a, "="+mnt.MountPath, "="+filepath.Join(root, mnt.MountPath), 1)
		}
		args = append(args, a)
	}
	var out, errOut bytes.Buffer
	cmd := isapp.NewCommand(isapp.Run, operator.Streams{Out: &out, Err: &errOut}, args)
	if err := cmd.ExecuteContext(t.Context()); err != nil {
		t.Fatalf("image-syncer %v: %v\n%s", args, err, errOut.String())
	}
	ref := dst.Ref(t, "mirror/app:v1")
	desc, err := remote.Head(ref, dst.Options(t.Context(), "pusher", "dst-secret-pw")...)
	if err != nil {
		t.Fatalf("%s not synced: %v\n%s", ref, err, errOut.String())
	}
	if desc.Digest != want {
		t.Errorf("synced %s, source is %s", desc.Digest, want)
	}
	if strings.Contains(out.String()+errOut.String(), "secret-pw") {
		t.Errorf("a password reached the output:\n%s", errOut.String())
	}
	// The state went to the CronJob's writable volume (the root filesystem is read-only).
	if entries, err := os.ReadDir(filepath.Join(root, "/var/cache/image-syncer")); err != nil || len(entries) == 0 {
		t.Errorf("no state in the state volume (%v)", err)
	}
}

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}
