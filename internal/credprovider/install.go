package credprovider

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/ferrypull/ferry/internal/atomicfile"
)

// MaxInstallFileSize bounds each file the installer copies (the binary excepted).
const MaxInstallFileSize = 4 << 20

// Copy is one file or directory the installer places on the node.
type Copy struct {
	// Src is a file, or a directory whose regular files are copied (entries starting with a
	// dot — a ConfigMap or Secret volume's ..data links — are skipped).
	Src string
	// Dst is the file, or the directory, on the node. Files are written 0600 in 0700
	// directories: they may hold an AccessKey or customAccessKeySecret.
	Dst string
}

// ParseCopy reads SRC=DST.
func ParseCopy(s string) (Copy, error) {
	src, dst, ok := strings.Cut(s, "=")
	if !ok || src == "" || dst == "" || !filepath.IsAbs(dst) {
		return Copy{}, fmt.Errorf("%q: want SRC=DST with an absolute DST", s)
	}
	return Copy{Src: filepath.Clean(src), Dst: filepath.Clean(dst)}, nil
}

// InstallBinary copies the executable at self to dir/name (0755) unless an identical file
// is there already; it reports whether it wrote.
func InstallBinary(self, dir, name string) (bool, error) {
	if name == "" || strings.ContainsAny(name, `/\`) {
		return false, fmt.Errorf("binary name %q: must be a plain file name", name)
	}
	b, err := os.ReadFile(self)
	if err != nil {
		return false, fmt.Errorf("read own executable: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, fmt.Errorf("binary directory: %w", err)
	}
	return writeIfChanged(filepath.Join(dir, name), b, 0o755)
}

// Sync performs every copy and returns the destination files it changed. A directory copy
// also removes destination files whose source is gone (a key deleted from the ConfigMap).
func Sync(copies []Copy) ([]string, error) {
	var changed []string
	for _, c := range copies {
		st, err := os.Stat(c.Src)
		if err != nil {
			return changed, fmt.Errorf("copy %s: %w", c.Src, err)
		}
		if !st.IsDir() {
			b, err := readBounded(c.Src)
			if err != nil {
				return changed, err
			}
			if err := os.MkdirAll(filepath.Dir(c.Dst), 0o700); err != nil {
				return changed, fmt.Errorf("copy %s: %w", c.Src, err)
			}
			if w, err := writeIfChanged(c.Dst, b, 0o600); err != nil {
				return changed, err
			} else if w {
				changed = append(changed, c.Dst)
			}
			continue
		}
		entries, err := os.ReadDir(c.Src)
		if err != nil {
			return changed, fmt.Errorf("copy %s: %w", c.Src, err)
		}
		if err := os.MkdirAll(c.Dst, 0o700); err != nil {
			return changed, fmt.Errorf("copy %s: %w", c.Src, err)
		}
		keep := map[string]bool{}
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), ".") {
				continue
			}
			src := filepath.Join(c.Src, e.Name())
			if st, err := os.Stat(src); err != nil || !st.Mode().IsRegular() {
				continue
			}
			b, err := readBounded(src)
			if err != nil {
				return changed, err
			}
			keep[e.Name()] = true
			dst := filepath.Join(c.Dst, e.Name())
			if w, err := writeIfChanged(dst, b, 0o600); err != nil {
				return changed, err
			} else if w {
				changed = append(changed, dst)
			}
		}
		old, _ := os.ReadDir(c.Dst)
		for _, e := range old {
			if !keep[e.Name()] && !strings.HasPrefix(e.Name(), ".") && e.Type().IsRegular() {
				dst := filepath.Join(c.Dst, e.Name())
				if err := os.Remove(dst); err == nil {
					changed = append(changed, dst)
				}
			}
		}
	}
	return changed, nil
}

func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("copy %s: %w", path, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxInstallFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("copy %s: %w", path, err)
	}
	if len(b) > MaxInstallFileSize {
		return nil, fmt.Errorf("copy %s: larger than %d bytes", path, MaxInstallFileSize)
	}
	return b, nil
}

// writeIfChanged replaces path atomically unless it already holds b with mode perm.
func writeIfChanged(path string, b []byte, perm os.FileMode) (bool, error) {
	if st, err := os.Lstat(path); err == nil && st.Mode().IsRegular() && st.Mode().Perm() == perm {
		if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, b) {
			return false, nil
		}
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, fmt.Errorf("write %s: %w", path, err)
	}
	if err := atomicfile.Write(path, b, perm); err != nil {
		return false, fmt.Errorf("write %s: %w", path, err)
	}
	return true, nil
}
