// Package state is image-syncer's memory between runs. For every destination reference it records
// which source digest ferry last copied or confirmed there, so that the next run can skip an
// unchanged source tag with one HEAD at the source and none at the destination.
//
// The state is a cache, never the truth: entries expire after a jittered TTL, so every destination
// tag is still re-checked now and then (spread over runs rather than all at once); the engine also
// spot-checks one remembered tag per destination registry per run, so a wiped or replaced registry
// at the same address is noticed; and a missing, unreadable or corrupt file costs only HEADs.
//
// The state lives in a directory with one file per destination registry (<host_port>.json), so a
// run reads only the registries it writes to. Concurrent runs sharing a file merge their changes
// under a lock file.
package state

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
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

// The file is JSON Lines: a header line {"version":1}, then one line per entry, so it is read as
// a stream (memory stays at the entries, not at the file) and stays diff-friendly.
type header struct {
	Version int `json:"version"`
}

type line struct {
	Key     string `json:"k"`
	Src     string `json:"s"`
	SrcType string `json:"t,omitempty"`
	SrcSize int64  `json:"z,omitempty"`
	Dst     string `json:"d"`
	Variant string `json:"v,omitempty"`
	At      int64  `json:"a"` // Unix milliseconds
}

// Store is the in-memory state of one run; it is safe for concurrent use.
type Store struct {
	dir string
	ttl time.Duration
	now func() time.Time

	mu      sync.Mutex
	entries map[string]Entry
	changed map[string]bool // keys put or dropped since the last Save
}

// Open reads the files of the destination registries hosts (host[:port]) from dir; a missing file
// is an empty state, and dir "" keeps the state in memory only. ttl is how long an entry is
// trusted at most; each entry is trusted for a fixed fraction of it between 1/2 and 1, derived from
// its key and time. ttl <= 0 trusts nothing and writes nothing. On a corrupt or unreadable file
// Open still returns a usable Store (without that file's entries) and an error saying why, for the
// caller to log. now may be nil (time.Now).
func Open(dir string, hosts []string, ttl time.Duration, now func() time.Time) (*Store, error) {
	if now == nil {
		now = time.Now
	}
	s := &Store{dir: dir, ttl: ttl, now: now, entries: map[string]Entry{}, changed: map[string]bool{}}
	if dir == "" || ttl <= 0 {
		return s, nil
	}
	var errs []error
	seen := map[string]bool{}
	for _, h := range hosts {
		if seen[h] {
			continue
		}
		seen[h] = true
		entries, err := read(s.file(h))
		if err != nil {
			errs = append(errs, err)
		}
		for k, e := range entries {
			if hostOf(k) == h {
				s.entries[k] = e
			}
		}
	}
	return s, errors.Join(errs...)
}

// File is the state file of one destination registry in dir.
func File(dir, host string) string {
	return filepath.Join(dir, strings.NewReplacer(":", "_", "/", "_", "\\", "_").Replace(host)+".json")
}

func (s *Store) file(host string) string { return File(s.dir, host) }

// hostOf is the registry part of a reference key.
func hostOf(key string) string {
	h, _, _ := strings.Cut(key, "/")
	return h
}

// read parses path; invalid entries are dropped, a missing file is empty.
func read(path string) (map[string]Entry, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]Entry{}, nil
	}
	if err != nil {
		return map[string]Entry{}, fmt.Errorf("state file %s: %w (starting without it)", path, err)
	}
	defer f.Close()
	entries, err := decode(bufio.NewReader(f))
	if err != nil {
		return map[string]Entry{}, fmt.Errorf("state file %s: %w (starting without it)", path, err)
	}
	return entries, nil
}

// Parse decodes a state file, dropping entries whose key or digests are malformed.
func Parse(data []byte) (map[string]Entry, error) {
	return decode(bytes.NewReader(data))
}

func decode(r io.Reader) (map[string]Entry, error) {
	dec := json.NewDecoder(r)
	var h header
	if err := dec.Decode(&h); err != nil {
		return nil, fmt.Errorf("not a state file: %w", err)
	}
	if h.Version != Version {
		return nil, fmt.Errorf("version %d, want %d", h.Version, Version)
	}
	out := map[string]Entry{}
	intern := map[string]string{} // media types and filter variants repeat
	in := func(s string) string {
		if v, ok := intern[s]; ok {
			return v
		}
		intern[s] = s
		return s
	}
	for {
		var l line
		err := dec.Decode(&l)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("entry %d: %w", len(out)+1, err)
		}
		if strings.Contains(l.Key, "/") && validDigest(l.Src) && validDigest(l.Dst) && l.At > 0 {
			out[l.Key] = Entry{Src: l.Src, SrcType: in(l.SrcType), SrcSize: l.SrcSize, Dst: l.Dst, Variant: in(l.Variant), At: time.UnixMilli(l.At)}
		}
	}
}

// encode writes entries in key order.
func encode(entries map[string]Entry) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	if err := enc.Encode(header{Version: Version}); err != nil {
		return nil, err
	}
	for _, k := range slices.Sorted(maps.Keys(entries)) {
		e := entries[k]
		if err := enc.Encode(line{Key: k, Src: e.Src, SrcType: e.SrcType, SrcSize: e.SrcSize, Dst: e.Dst, Variant: e.Variant, At: e.At.UnixMilli()}); err != nil {
			return nil, err
		}
	}
	return b.Bytes(), nil
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
	h.Write([]byte(strconv.FormatInt(e.At.UnixMilli(), 10)))
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
	e.At = e.At.Truncate(time.Millisecond) // as the file keeps it
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

// Save merges this run's changes into the files of their registries, each under an exclusive lock
// (another run may have saved in between), drops expired entries and replaces each file
// atomically. Without changes, without a directory, or with a ttl <= 0, it does nothing (a run
// that only skipped writes nothing).
func (s *Store) Save() error {
	s.mu.Lock()
	byHost := map[string][]string{}
	for k := range s.changed {
		byHost[hostOf(k)] = append(byHost[hostOf(k)], k)
	}
	s.mu.Unlock()
	if s.dir == "" || s.ttl <= 0 {
		return nil
	}
	var errs []error
	for host, keys := range byHost {
		if err := s.saveHost(host, keys); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (s *Store) saveHost(host string, keys []string) error {
	path := s.file(host)
	unlock, err := lock(path + ".lock")
	if err != nil {
		return fmt.Errorf("state file %s: %w", path, err)
	}
	defer unlock()
	disk, _ := read(path) // unreadable: rewritten from this run's view
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range keys {
		e, ok := s.entries[k]
		if !ok {
			delete(disk, k) // forgetting is always safe
		} else if d, had := disk[k]; !had || !d.At.After(e.At) {
			disk[k] = e // the newer observation wins
		}
		delete(s.changed, k)
	}
	now := s.now()
	for k, e := range disk {
		if !s.fresh(k, e, now) || hostOf(k) != host {
			delete(disk, k)
		}
	}
	data, err := encode(disk)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(path, data, 0o600); err != nil {
		return fmt.Errorf("state file %s: %w", path, err)
	}
	for k, e := range disk {
		s.entries[k] = e
	}
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
