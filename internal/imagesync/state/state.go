// Package state is image-syncer's memory between runs. For every destination reference it records
// which source digest ferry last copied or confirmed there, so that the next run can skip an
// unchanged source tag with one HEAD at the source and none at the destination.
//
// The state is a cache, never the truth: entries expire after a jittered TTL, so every destination
// tag is still re-checked now and then (spread over runs rather than all at once); the engine also
// spot-checks one remembered tag per destination registry per run, so a wiped or replaced registry
// at the same address is noticed; and a missing, unreadable or corrupt file costs only HEADs.
// Concurrent runs sharing a file merge their changes under a lock file.
package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ferrypull/ferry/internal/atomicfile"
)

// Version of the file format.
const Version = 1

// maxSkew is how far in the future an entry's time may lie (another machine's clock) before it is
// distrusted.
const maxSkew = time.Minute

// Entry is what ferry knows about one destination reference.
type Entry struct {
	Src     string    `json:"src"`               // source manifest digest copied or confirmed
	SrcType string    `json:"srcType,omitempty"` // its media type and size, to ask the source conditionally
	SrcSize int64     `json:"srcSize,omitempty"`
	Dst     string    `json:"dst"`               // destination manifest digest (differs when a filter rewrote an index)
	Variant string    `json:"variant,omitempty"` // platform filter the destination was written with
	At      time.Time `json:"at"`                // when the destination was last written or checked
}

type file struct {
	Version int              `json:"version"`
	Entries map[string]Entry `json:"entries"`
}

// Store is the in-memory state of one run; it is safe for concurrent use.
type Store struct {
	path string
	ttl  time.Duration
	now  func() time.Time

	mu      sync.Mutex
	entries map[string]Entry
	changed map[string]bool // keys put or dropped since the last Save
}

// Open reads path (a missing file is an empty state). ttl is how long an entry is trusted at most;
// each entry is trusted for a fixed fraction of it between 1/2 and 1, derived from its key and time.
// ttl <= 0 trusts nothing and writes nothing. On a corrupt or unreadable file Open returns an
// empty, usable Store and an error saying why, for the caller to log. now may be nil (time.Now).
func Open(path string, ttl time.Duration, now func() time.Time) (*Store, error) {
	if now == nil {
		now = time.Now
	}
	s := &Store{path: path, ttl: ttl, now: now, entries: map[string]Entry{}, changed: map[string]bool{}}
	if path == "" {
		return s, nil
	}
	entries, err := read(path)
	if err != nil {
		return s, err
	}
	s.entries = entries
	return s, nil
}

// read parses path; invalid entries are dropped, a missing file is empty.
func read(path string) (map[string]Entry, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]Entry{}, nil
	}
	if err != nil {
		return map[string]Entry{}, fmt.Errorf("state file %s: %w (starting without it)", path, err)
	}
	entries, err := Parse(data)
	if err != nil {
		return map[string]Entry{}, fmt.Errorf("state file %s: %w (starting without it)", path, err)
	}
	return entries, nil
}

// Parse decodes a state file, dropping entries whose key or digests are malformed.
func Parse(data []byte) (map[string]Entry, error) {
	var f file
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("not a state file: %w", err)
	}
	if f.Version != Version {
		return nil, fmt.Errorf("version %d, want %d", f.Version, Version)
	}
	out := make(map[string]Entry, len(f.Entries))
	for k, e := range f.Entries {
		if strings.Contains(k, "/") && validDigest(e.Src) && validDigest(e.Dst) && !e.At.IsZero() {
			out[k] = e
		}
	}
	return out, nil
}

func validDigest(d string) bool {
	algo, hex, ok := strings.Cut(d, ":")
	if !ok || algo == "" || len(hex) < 32 {
		return false
	}
	for _, c := range hex {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// trustedFor is how long e is trusted: a fraction of ttl in [1/2, 1) fixed by key and time, so that
// entries written in one run expire over many later runs instead of all at once.
func (s *Store) trustedFor(key string, e Entry) time.Duration {
	h := fnv.New64a()
	h.Write([]byte(key))
	h.Write([]byte(e.At.UTC().Format(time.RFC3339Nano)))
	frac := 0.5 + float64(h.Sum64()%(1<<20))/float64(1<<21)
	return time.Duration(float64(s.ttl) * frac)
}

func (s *Store) fresh(key string, e Entry, now time.Time) bool {
	if s.ttl <= 0 || e.At.After(now.Add(maxSkew)) {
		return false
	}
	return now.Sub(e.At) < s.trustedFor(key, e)
}

// Lookup returns the entry for a destination reference if it is still trusted.
func (s *Store) Lookup(key string) (Entry, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[key]
	if !ok || !s.fresh(key, e, s.now()) {
		return Entry{}, false
	}
	return e, true
}

// Put records that the destination reference key now holds e.Dst, copied or confirmed from e.Src.
// A zero e.At means now.
func (s *Store) Put(key string, e Entry) {
	if e.At.IsZero() {
		e.At = s.now()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.entries[key] = e
	s.changed[key] = true
}

// Newest returns the most recently written or checked trusted entry, and its key, among the
// entries under any of the prefixes: "host" (a whole registry) or "host/repository" (that
// repository and, for a namespace, the repositories below it).
func (s *Store) Newest(prefixes ...string) (string, Entry, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	var key string
	var best Entry
	for k, e := range s.entries {
		if under(k, prefixes) && s.fresh(k, e, now) && (key == "" || e.At.After(best.At) || e.At.Equal(best.At) && k < key) {
			key, best = k, e
		}
	}
	return key, best, key != ""
}

// under reports whether reference key (host/repository:tag or @digest) lies under a prefix.
func under(key string, prefixes []string) bool {
	for _, p := range prefixes {
		if rest, ok := strings.CutPrefix(key, p); ok && rest != "" && strings.ContainsRune("/:@", rune(rest[0])) {
			if !strings.Contains(p, "/") && rest[0] != '/' {
				continue // a bare host matches only host/...
			}
			return true
		}
	}
	return false
}

// DropHost forgets every entry of one destination registry (host[:port]) and returns how many.
func (s *Store) DropHost(host string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k := range s.entries {
		if strings.HasPrefix(k, host+"/") {
			delete(s.entries, k)
			s.changed[k] = true
			n++
		}
	}
	return n
}

// Len is the number of entries held, trusted or not.
func (s *Store) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.entries)
}

// Save merges this run's changes into the file under an exclusive lock (another run may have saved
// in between), drops expired entries and replaces the file atomically. Without changes, without a
// path, or with a ttl <= 0, it does nothing (a run that only skipped writes nothing).
func (s *Store) Save() error {
	s.mu.Lock()
	unchanged := len(s.changed) == 0
	s.mu.Unlock()
	if s.path == "" || s.ttl <= 0 || unchanged {
		return nil
	}
	unlock, err := lock(s.path + ".lock")
	if err != nil {
		return fmt.Errorf("state file %s: %w", s.path, err)
	}
	defer unlock()
	disk, _ := read(s.path) // unreadable: rewritten from this run's view
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range s.changed {
		e, ok := s.entries[k]
		if !ok {
			delete(disk, k) // forgetting is always safe
		} else if d, had := disk[k]; !had || !d.At.After(e.At) {
			disk[k] = e // the newer observation wins
		}
	}
	now := s.now()
	for k, e := range disk {
		if !s.fresh(k, e, now) {
			delete(disk, k)
		}
	}
	data, err := json.MarshalIndent(file{Version: Version, Entries: disk}, "", " ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(s.path, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("state file %s: %w", s.path, err)
	}
	s.entries, s.changed = disk, map[string]bool{}
	return nil
}

func lock(path string) (func(), error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}
