package hostsconfig

import (
	"maps"
	"os"
	"path/filepath"
	"testing"

	"github.com/ferrypull/ferry/internal/annotations"
)

// TestSourcesAreUnited: two sources (Pod annotations and ImageCaches) share the directory; a host
// stays while any source wants it, plain HTTP wins a disagreement, and ExpectSources keeps a
// restarted agent from removing a block before every source has applied once.
func TestSourcesAreUnited(t *testing.T) {
	dir := t.TempDir()
	exists := func(h string) bool {
		_, err := os.Stat(filepath.Join(dir, h, FileName))
		return err == nil
	}
	m := New(dir)
	if _, err := m.ApplySource("pods", map[string]annotations.RegistryMode{"a.corp:5000": insecure}); err != nil {
		t.Fatal(err)
	}
	res, err := m.ApplySource("imagecache", map[string]annotations.RegistryMode{"a.corp:5000": plain, "b.corp": insecure})
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]annotations.RegistryMode{"a.corp:5000": plain, "b.corp": insecure}; !maps.Equal(res.Owned, want) {
		t.Fatalf("owned %v, want %v", res.Owned, want)
	}
	if _, err := m.ApplySource("imagecache", nil); err != nil {
		t.Fatal(err)
	}
	owned, _ := m.Owned()
	if !exists("a.corp:5000") || exists("b.corp") || owned["a.corp:5000"] != insecure {
		t.Fatalf("after the image caches left: owned %v", owned)
	}

	// A restart: the new Manager must not drop b.corp before "imagecache" has applied.
	if _, err := m.ApplySource("imagecache", map[string]annotations.RegistryMode{"b.corp": insecure}); err != nil {
		t.Fatal(err)
	}
	m2 := New(dir)
	m2.ExpectSources("pods", "imagecache")
	if _, err := m2.ApplySource("pods", map[string]annotations.RegistryMode{"a.corp:5000": insecure}); err != nil {
		t.Fatal(err)
	}
	if !exists("b.corp") {
		t.Fatal("b.corp removed before the imagecache source applied")
	}
	if _, err := m2.ApplySource("imagecache", nil); err != nil {
		t.Fatal(err)
	}
	if exists("b.corp") || !exists("a.corp:5000") {
		t.Fatal("after both sources applied, only a.corp:5000 should remain")
	}
}
