package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWrite(t *testing.T) {
	tests := []struct {
		name     string
		rel      string
		existing []byte
		data     []byte
		perm     os.FileMode
	}{
		{name: "new file", rel: "a.json", data: []byte("{}\n"), perm: 0o644},
		{name: "private key mode", rel: "key.pem", data: []byte("k"), perm: 0o600},
		{name: "missing directory is created", rel: "sub/dir/c.pem", data: []byte("c"), perm: 0o644},
		{name: "replaces an existing file", rel: "d", existing: []byte("old contents"), data: []byte("new"), perm: 0o600},
		{name: "empty data", rel: "e", data: nil, perm: 0o644},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, tt.rel)
			if tt.existing != nil {
				if err := os.WriteFile(path, tt.existing, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := Write(path, tt.data, tt.perm); err != nil {
				t.Fatalf("Write: %v", err)
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(tt.data) {
				t.Errorf("contents %q, want %q", got, tt.data)
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != tt.perm {
				t.Errorf("mode %v, want %v", fi.Mode().Perm(), tt.perm)
			}
			entries, err := os.ReadDir(filepath.Dir(path))
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != 1 {
				t.Errorf("%d entries left in the directory, want only the file", len(entries))
			}
		})
	}
}

func TestWriteErrorLeavesOldFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A directory where the file's parent should be makes every step fail.
	if err := Write(filepath.Join(path, "child"), []byte("x"), 0o644); err == nil {
		t.Fatal("Write under a regular file succeeded")
	}
	if got, _ := os.ReadFile(path); string(got) != "old" {
		t.Fatalf("old file changed to %q", got)
	}
}
