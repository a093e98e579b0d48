package credprovider

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestSyncAndInstallBinary(t *testing.T) {
	src, host := t.TempDir(), t.TempDir()
	cm := filepath.Join(src, "cm")
	_ = os.Mkdir(cm, 0o755)
	for k, v := range map[string]string{"acr-registry-info": "- instanceId: cri-a\n", "watch-namespace": "all", "..data": "link"} {
		if err := os.WriteFile(filepath.Join(cm, k), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg := filepath.Join(src, "config.yaml")
	_ = os.WriteFile(cfg, []byte("kind: CredentialProviderConfig\n"), 0o644)
	copies := []Copy{{Src: cm, Dst: filepath.Join(host, "acr-configuration")}, {Src: cfg, Dst: filepath.Join(host, "kubelet", "config.yaml")}}
	changed, err := Sync(copies)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(changed)
	want := []string{filepath.Join(host, "acr-configuration", "acr-registry-info"), filepath.Join(host, "acr-configuration", "watch-namespace"), filepath.Join(host, "kubelet", "config.yaml")}
	if !slices.Equal(changed, want) {
		t.Fatalf("changed %v, want %v", changed, want)
	}
	for _, f := range want {
		if st, _ := os.Stat(f); st.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %s", f, st.Mode().Perm())
		}
	}
	if st, _ := os.Stat(filepath.Join(host, "acr-configuration")); st.Mode().Perm() != 0o700 {
		t.Errorf("directory mode %s", st.Mode().Perm())
	}
	if _, err := os.Stat(filepath.Join(host, "acr-configuration", "..data")); err == nil {
		t.Error("..data copied")
	}
	// unchanged: nothing written; a key removed from the ConfigMap is removed on the node
	if changed, _ := Sync(copies); len(changed) != 0 {
		t.Fatalf("second sync changed %v", changed)
	}
	_ = os.Remove(filepath.Join(cm, "watch-namespace"))
	if changed, _ := Sync(copies); len(changed) != 1 || changed[0] != want[1] {
		t.Fatalf("after a key was removed: %v", changed)
	}
	if _, err := os.Stat(want[1]); err == nil {
		t.Fatal("removed key still on the node")
	}
	// the binary: copied once, 0755
	self := filepath.Join(src, "plugin")
	_ = os.WriteFile(self, []byte("\x7fELF..."), 0o755)
	bin := filepath.Join(host, "bin")
	for i, want := range []bool{true, false} {
		w, err := InstallBinary(self, bin, "acr-credential-provider")
		if err != nil || w != want {
			t.Fatalf("install %d: wrote=%v %v", i, w, err)
		}
	}
	if st, _ := os.Stat(filepath.Join(bin, "acr-credential-provider")); st.Mode().Perm() != 0o755 {
		t.Fatalf("binary mode %s", st.Mode().Perm())
	}
	for _, bad := range []string{"x", "=", "a=relative", "=/abs"} {
		if _, err := ParseCopy(bad); err == nil {
			t.Errorf("ParseCopy(%q) accepted", bad)
		}
	}
	if _, err := InstallBinary(self, bin, "../x"); err == nil {
		t.Error("a path as the binary name")
	}
}
