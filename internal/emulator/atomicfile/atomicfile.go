// Package atomicfile writes the acr-emulator's data files (keys, certificates,
// emulator-info.json, hosts lines) so that a reader never sees a partial file.
package atomicfile

import (
	"os"
	"path/filepath"
)

// Write creates path's directory if needed, writes data to a temporary file
// in that directory with mode perm, and renames it over path.
func Write(path string, data []byte, perm os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
