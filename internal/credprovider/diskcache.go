package credprovider

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/ferrypull/ferry/internal/atomicfile"
	"github.com/ferrypull/ferry/internal/redact"
)

// diskCache keeps node-identity registry tokens between runs of the plugin (the kubelet runs
// one process per request): one root-only file per (identity inputs, instance) in a 0700 directory,
// used until half of the token's life has passed. Tokens of ServiceAccount identities are
// never written: the kubelet caches those per ServiceAccount itself.
type diskCache struct {
	dir string
	now func() time.Time
}

type diskEntry struct {
	Key      string        `json:"key"`
	Identity string        `json:"identity"`
	Username string        `json:"username"`
	Password redact.Secret `json:"-"`
	Secret   string        `json:"password"`
	IssuedAt time.Time     `json:"issuedAt"`
	Expiry   time.Time     `json:"expiry"`
}

// openDiskCache creates dir (0700) if needed and refuses a directory others may read or write.
func openDiskCache(dir string, now func() time.Time) (*diskCache, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("cache directory: %w", err)
	}
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("cache directory: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("cache directory %s has mode %s: it holds registry passwords and must be 0700", dir, st.Mode().Perm())
	}
	return &diskCache{dir: dir, now: now}, nil
}

func (c *diskCache) path(key string) string {
	sum := sha256.Sum256([]byte(key))
	return filepath.Join(c.dir, hex.EncodeToString(sum[:16])+".json")
}

// get returns a cached token still in the first half of its life.
func (c *diskCache) get(key string) (diskEntry, bool) {
	p := c.path(key)
	st, err := os.Lstat(p)
	if err != nil || !st.Mode().IsRegular() || st.Mode().Perm()&0o077 != 0 || st.Size() > 64<<10 {
		return diskEntry{}, false
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return diskEntry{}, false
	}
	var e diskEntry
	if json.Unmarshal(b, &e) != nil || e.Key != key || e.Username == "" || e.Secret == "" {
		return diskEntry{}, false
	}
	if now := c.now(); !now.Before(e.IssuedAt.Add(e.Expiry.Sub(e.IssuedAt)/2)) || now.Before(e.IssuedAt) {
		return diskEntry{}, false
	}
	e.Password, e.Secret = redact.Secret(e.Secret), ""
	return e, true
}

func (c *diskCache) put(e diskEntry) error {
	e.Secret = e.Password.Reveal()
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(c.path(e.Key), b, 0o600); err != nil {
		// the error names the path, never the content
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return fmt.Errorf("write cache %s: %w", pe.Path, pe.Err)
		}
		return fmt.Errorf("write cache: %w", err)
	}
	return nil
}
