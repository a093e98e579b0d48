package hostsconfig

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"

	"github.com/ferrypull/ferry/internal/annotations"
)

var update = flag.Bool("update", os.Getenv("UPDATE_GOLDEN") == "true", "rewrite testdata/*.golden")

const (
	plain    = annotations.ModePlainHTTP
	insecure = annotations.ModeInsecure
)

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with UPDATE_GOLDEN=true)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs from golden:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func read(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// snapshot returns every file under dir with its content and mode.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			out[rel+"/"] = fi.Mode().String()
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		out[rel] = fi.Mode().String() + " " + string(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestCreateAndRemoveOwnFiles(t *testing.T) {
	tests := []struct {
		host string
		mode annotations.RegistryMode
	}{
		{"harbor-http.ferry.test:5000", plain},
		{"harbor-tls.ferry.test", insecure},
		{"[fd00::1]:5000", plain},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			dir := t.TempDir()
			// An unrelated user host dir that must never change.
			other := filepath.Join(dir, "docker.io")
			if err := os.MkdirAll(other, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(other, FileName), []byte("server = \"https://registry-1.docker.io\"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			before := snapshot(t, dir)

			m := New(dir)
			res, err := m.Apply(map[string]annotations.RegistryMode{tt.host: tt.mode})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(res.Added, []string{tt.host}) || res.Owned[tt.host] != tt.mode {
				t.Fatalf("result %+v", res)
			}
			got := read(t, filepath.Join(dir, tt.host, FileName))
			golden(t, "created-"+strings.NewReplacer(":", "_", "[", "", "]", "").Replace(tt.host), got)
			var parsed map[string]any
			if err := toml.Unmarshal(got, &parsed); err != nil {
				t.Fatalf("written file does not parse: %v", err)
			}

			// Idempotent: a second Apply changes nothing.
			res, err = m.Apply(map[string]annotations.RegistryMode{tt.host: tt.mode})
			if err != nil || len(res.Added)+len(res.Removed) != 0 {
				t.Fatalf("second apply: %+v, %v", res, err)
			}

			res, err = m.Apply(nil)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(res.Removed, []string{tt.host}) || len(res.Owned) != 0 {
				t.Fatalf("result %+v", res)
			}
			if after := snapshot(t, dir); !reflect.DeepEqual(after, before) {
				t.Fatalf("config dir not restored:\nbefore %v\nafter  %v", before, after)
			}
		})
	}
}

func TestMergeIntoUserFileSurvivesByteForByte(t *testing.T) {
	const host = "harbor.corp:5000"
	tests := []struct {
		name     string
		existing string
		mode     annotations.RegistryMode
		wantAdd  bool // false: the user's file already satisfies the mode
	}{
		{name: "mirror config", mode: plain, wantAdd: true, existing: `# my mirrors — keep!
server = "https://harbor.corp:5000"

[host."https://mirror.corp"]
  capabilities = ["pull"]
  ca = "/etc/certs/mirror.pem"
  [host."https://mirror.corp".header]
    x-custom = ["a", "b"]
`},
		{name: "no trailing newline", mode: insecure, wantAdd: true, existing: "server = \"https://harbor.corp:5000\"\nca = [\"ca.crt\"]"},
		{name: "client certs and CRLF", mode: insecure, wantAdd: true, existing: "server = \"https://harbor.corp:5000\"\r\nclient = [[\"c.cert\", \"c.key\"]]\r\n"},
		{name: "empty file", mode: plain, wantAdd: true, existing: ""},
		{name: "already plain http", mode: plain, wantAdd: false, existing: "server = \"http://harbor.corp:5000\"\n"},
		{name: "already skip_verify", mode: insecure, wantAdd: false, existing: "skip_verify = true\n"},
		{name: "host table already skip_verify", mode: insecure, wantAdd: false, existing: "[host.\"https://harbor.corp:5000\"]\n  skip_verify = true\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, host, FileName)
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(tt.existing), 0o600); err != nil {
				t.Fatal(err)
			}
			before := snapshot(t, dir)
			m := New(dir)
			res, err := m.Apply(map[string]annotations.RegistryMode{host: tt.mode})
			if err != nil {
				t.Fatal(err)
			}
			got := read(t, path)
			if !tt.wantAdd {
				if !reflect.DeepEqual(res.Satisfied, []string{host}) || len(res.Owned) != 0 {
					t.Fatalf("result %+v, want satisfied", res)
				}
				if after := snapshot(t, dir); !reflect.DeepEqual(after, before) {
					t.Fatalf("file touched although ferry added nothing:\n%v\n%v", before, after)
				}
				return
			}
			if !bytes.HasPrefix(got, []byte(tt.existing)) {
				t.Fatalf("user content not preserved as prefix:\n%s", got)
			}
			if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
				t.Fatalf("mode changed to %v", fi.Mode())
			}
			var parsed struct {
				Server string                    `toml:"server"`
				Host   map[string]map[string]any `toml:"host"`
			}
			if err := toml.Unmarshal(got, &parsed); err != nil {
				t.Fatalf("merged file does not parse: %v\n%s", err, got)
			}
			scheme := map[annotations.RegistryMode]string{plain: "http://", insecure: "https://"}[tt.mode]
			entry, ok := parsed.Host[scheme+host]
			if !ok {
				t.Fatalf("no ferry host table in\n%s", got)
			}
			if tt.mode == insecure && entry["skip_verify"] != true {
				t.Fatalf("skip_verify missing: %v", entry)
			}
			if tt.existing != "" && strings.Contains(string(got[len(tt.existing):]), "server =") {
				t.Fatal("ferry must not add a server key to a user file")
			}

			// Switching the mode rewrites only ferry's block.
			other := map[annotations.RegistryMode]annotations.RegistryMode{plain: insecure, insecure: plain}[tt.mode]
			if _, err := m.Apply(map[string]annotations.RegistryMode{host: other}); err != nil {
				t.Fatal(err)
			}
			if got2 := read(t, path); !bytes.HasPrefix(got2, []byte(tt.existing)) || bytes.Equal(got2, got) {
				t.Fatalf("mode switch: \n%s", got2)
			}

			if _, err := m.Apply(nil); err != nil {
				t.Fatal(err)
			}
			if after := snapshot(t, dir); !reflect.DeepEqual(after, before) {
				t.Fatalf("not restored byte for byte:\nbefore %q\nafter  %q", before, after)
			}
		})
	}
}

func TestConflictsLeaveFilesUntouched(t *testing.T) {
	const host = "harbor.corp"
	tests := []struct {
		name     string
		existing string
		mode     annotations.RegistryMode
	}{
		{name: "not toml", existing: "server = \n[[[", mode: plain},
		{name: "host table without skip_verify", existing: "[host.\"https://harbor.corp\"]\n  capabilities = [\"pull\"]\n", mode: insecure},
		{name: "host is not a table", existing: "host = 1\n", mode: plain},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, host, FileName)
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(tt.existing), 0o644); err != nil {
				t.Fatal(err)
			}
			before := snapshot(t, dir)
			_, err := New(dir).Apply(map[string]annotations.RegistryMode{host: tt.mode})
			if !errors.Is(err, ErrConflict) {
				t.Fatalf("err = %v, want ErrConflict", err)
			}
			if !strings.Contains(err.Error(), path) {
				t.Fatalf("error %q must name the file", err)
			}
			if after := snapshot(t, dir); !reflect.DeepEqual(after, before) {
				t.Fatal("conflicting file was modified")
			}
		})
	}

	t.Run("symlink", func(t *testing.T) {
		dir := t.TempDir()
		target := filepath.Join(t.TempDir(), "real.toml")
		if err := os.WriteFile(target, []byte("# theirs\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(dir, host), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, filepath.Join(dir, host, FileName)); err != nil {
			t.Fatal(err)
		}
		if _, err := New(dir).Apply(map[string]annotations.RegistryMode{host: plain}); !errors.Is(err, ErrConflict) {
			t.Fatalf("err = %v, want ErrConflict", err)
		}
		if string(read(t, target)) != "# theirs\n" {
			t.Fatal("symlink target modified")
		}
	})
}

func TestOneBadHostDoesNotBlockOthers(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.corp", FileName)
	if err := os.MkdirAll(filepath.Dir(bad), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("[[["), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := New(dir).Apply(map[string]annotations.RegistryMode{"bad.corp": plain, "good.corp": plain})
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("err = %v", err)
	}
	if !reflect.DeepEqual(res.Added, []string{"good.corp"}) {
		t.Fatalf("added %v", res.Added)
	}
}

func TestRejectsUnsafeHosts(t *testing.T) {
	for _, h := range []string{"../etc", "a/b", "*.corp", "Harbor.corp", "", "[fd00::1]x", "fd00::1"} {
		dir := t.TempDir()
		if _, err := New(dir).Apply(map[string]annotations.RegistryMode{h: plain}); err == nil {
			t.Errorf("host %q accepted", h)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Errorf("host %q wrote %v", h, ents)
		}
	}
}

func TestExistingCertDirKept(t *testing.T) {
	// A Docker-style certs dir (ca.crt, no hosts.toml): ferry adds hosts.toml
	// and on removal deletes only that file.
	dir := t.TempDir()
	hostDir := filepath.Join(dir, "harbor.corp")
	if err := os.MkdirAll(hostDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(hostDir, "ca.crt"), []byte("PEM"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, dir)
	m := New(dir)
	if _, err := m.Apply(map[string]annotations.RegistryMode{"harbor.corp": insecure}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Apply(nil); err != nil {
		t.Fatal(err)
	}
	if after := snapshot(t, dir); !reflect.DeepEqual(after, before) {
		t.Fatalf("before %v after %v", before, after)
	}
}

func TestUserEditsAfterFerryCreatedFileAreKept(t *testing.T) {
	dir := t.TempDir()
	m := New(dir)
	if _, err := m.Apply(map[string]annotations.RegistryMode{"harbor.corp": plain}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "harbor.corp", FileName)
	user := "[host.\"https://mirror.corp\"]\n  capabilities = [\"pull\"]\n"
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(user); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := m.Apply(nil); err != nil {
		t.Fatal(err)
	}
	if got := string(read(t, path)); got != user {
		t.Fatalf("got %q, want the user's lines only", got)
	}
}
