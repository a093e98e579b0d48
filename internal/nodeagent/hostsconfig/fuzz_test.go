package hostsconfig

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/pelletier/go-toml/v2"

	"github.com/ferrypull/ferry/internal/annotations"
)

// FuzzMerge checks, for arbitrary existing hosts.toml content: ferry either
// refuses (leaving the file untouched) or writes a file that parses, starts
// with the original bytes, and is restored byte for byte on removal.
func FuzzMerge(f *testing.F) {
	f.Add([]byte("server = \"https://h.corp\"\n[host.\"https://m\"]\n  capabilities=[\"pull\"]\n"), false)
	f.Add([]byte("skip_verify = true"), true)
	f.Add([]byte(""), true)
	f.Add([]byte("[host.\"http://h.corp\"]\n"), false)
	f.Add([]byte(beginPrefix+"mode=insecure; created=none; sep=0"+beginSuffix+"\n"+endLine), true)
	f.Add([]byte("a = \"\"\"\n"), false)
	f.Fuzz(func(t *testing.T, existing []byte, insecureMode bool) {
		const host = "h.corp"
		mode := plain
		if insecureMode {
			mode = insecure
		}
		dir := t.TempDir()
		path := filepath.Join(dir, host, FileName)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, existing, 0o644); err != nil {
			t.Fatal(err)
		}
		_, preOwned := findBlock(existing)
		m := New(dir)
		res, err := m.Apply(map[string]annotations.RegistryMode{host: mode})
		got, rerr := os.ReadFile(path)
		if rerr != nil {
			if preOwned { // a pre-existing ferry block in a "created" file may be removed
				return
			}
			t.Fatal(rerr)
		}
		if err != nil {
			if !errors.Is(err, ErrConflict) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			if !bytes.Equal(got, existing) {
				t.Fatal("file changed despite an error")
			}
			return
		}
		if preOwned {
			return // input already carried a (forged) ferry block; only no-panic is checked
		}
		var parsed map[string]any
		if len(res.Added) == 1 {
			if uerr := toml.Unmarshal(got, &parsed); uerr != nil {
				t.Fatalf("merged file does not parse: %v\n%q", uerr, got)
			}
			if !bytes.HasPrefix(got, existing) {
				t.Fatalf("original bytes not kept as prefix:\n%q\n%q", existing, got)
			}
		} else if !bytes.Equal(got, existing) {
			t.Fatal("file changed although nothing was added")
		}
		if _, err := m.Apply(nil); err != nil {
			t.Fatal(err)
		}
		back, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(back, existing) {
			t.Fatalf("not restored:\n%q\n%q", existing, back)
		}
	})
}
