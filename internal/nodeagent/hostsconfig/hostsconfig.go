// Package hostsconfig writes ferry's entries into containerd's registry host
// configuration (<config_path>/<host[:port]>/hosts.toml) without disturbing
// anything it did not write, and holds the allow-list that decides which
// hosts may be downgraded at all.
//
// Ownership is marked in the file itself: ferry only ever appends one
// delimited block,
//
//	# ferry node-agent: BEGIN managed block (mode=plain-http; created=file,dir; sep=0) …
//	server = "http://harbor.corp:5000"        # only when ferry created the file
//	[host."http://harbor.corp:5000"]
//	  capabilities = ["pull", "resolve"]
//	# ferry node-agent: END managed block
//
// and removes exactly that block again, so a pre-existing file is restored
// byte for byte. A file that does not parse as TOML, that already defines the
// host table ferry would add with different settings, or that is a symlink is
// left untouched and reported as a conflict. Every write is atomic
// (temporary file in the same directory, fsync, rename).
package hostsconfig

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/pelletier/go-toml/v2"

	"github.com/ferrypull/ferry/internal/annotations"
	"github.com/ferrypull/ferry/internal/atomicfile"
)

// FileName is the file containerd reads in each host directory.
const FileName = "hosts.toml"

// maxFileSize bounds how much of an existing hosts.toml ferry reads.
const maxFileSize = 1 << 20

const (
	beginPrefix = "# ferry node-agent: BEGIN managed block ("
	beginSuffix = ") do not edit; ferry rewrites or removes this block"
	endLine     = "# ferry node-agent: END managed block"
)

// ErrConflict is wrapped when a user-owned hosts.toml cannot take ferry's entry.
var ErrConflict = errors.New("hosts.toml conflict")

// Manager owns ferry's blocks under one containerd config_path directory.
// It is safe for concurrent use.
//
// Several parts of node-agent may want hosts (the Pod annotations, ImageCaches):
// each applies its own set with [Manager.ApplySource] and the Manager writes the
// union, plain HTTP winning when two sources disagree on a host.
type Manager struct {
	dir string
	mu  sync.Mutex
	// sources holds each source's desired hosts; waiting lists the sources named
	// by ExpectSources that have not applied yet (no block is removed until all have).
	sources map[string]map[string]annotations.RegistryMode
	waiting map[string]bool
}

// New returns a Manager for containerd's registry config_path dir (for example
// /etc/containerd/certs.d). The directory is created on first write.
func New(dir string) *Manager {
	return &Manager{dir: dir, sources: map[string]map[string]annotations.RegistryMode{}}
}

// ExpectSources names the sources that will call ApplySource. Until each of them
// has applied once, no existing ferry block is removed, so a restarted agent does
// not drop a host that a source which has not reconciled yet still needs.
func (m *Manager) ExpectSources(names ...string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.waiting == nil {
		m.waiting = map[string]bool{}
	}
	for _, n := range names {
		if _, done := m.sources[n]; !done {
			m.waiting[n] = true
		}
	}
}

// Dir returns the config_path directory.
func (m *Manager) Dir() string { return m.dir }

// Result reports what Apply changed.
type Result struct {
	Added     []string // hosts whose ferry block was written or rewritten
	Removed   []string // hosts whose ferry block was removed
	Satisfied []string // hosts the user's own hosts.toml already covers; nothing written
	Owned     map[string]annotations.RegistryMode
}

// Owned lists the hosts that currently carry a ferry block and their mode.
func (m *Manager) Owned() (map[string]annotations.RegistryMode, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.owned()
}

func (m *Manager) owned() (map[string]annotations.RegistryMode, error) {
	out := map[string]annotations.RegistryMode{}
	ents, err := os.ReadDir(m.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list registry config dir %s: %w", m.dir, err)
	}
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		data, err := readFile(filepath.Join(m.dir, e.Name(), FileName))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return nil, err
		}
		if b, ok := findBlock(data); ok {
			out[e.Name()] = b.mode
		}
	}
	return out, nil
}

// Apply is ApplySource for the unnamed source "" (the Pod annotations).
func (m *Manager) Apply(desired map[string]annotations.RegistryMode) (Result, error) {
	return m.ApplySource("", desired)
}

// ApplySource records desired (host namespace → mode) as the hosts of source and
// makes the set of ferry-owned entries equal the union of all sources: it writes
// missing or changed blocks and removes blocks for hosts no source wants. Hosts
// are processed independently; the returned error joins the per-host failures
// and the Result describes what did succeed (for the union).
func (m *Manager) ApplySource(source string, desired map[string]annotations.RegistryMode) (Result, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.sources == nil {
		m.sources = map[string]map[string]annotations.RegistryMode{}
	}
	m.sources[source] = maps.Clone(desired)
	delete(m.waiting, source)
	desired = map[string]annotations.RegistryMode{}
	for _, src := range m.sources {
		for h, mode := range src {
			if cur, ok := desired[h]; !ok || mode == annotations.ModePlainHTTP {
				desired[h] = mode
			} else {
				desired[h] = cur
			}
		}
	}
	var res Result
	var errs []error
	owned, err := m.owned()
	if err != nil {
		return res, err
	}
	for _, host := range slices.Sorted(maps.Keys(desired)) {
		mode := desired[host]
		changed, satisfied, err := m.ensure(host, mode)
		switch {
		case err != nil:
			errs = append(errs, err)
		case satisfied:
			res.Satisfied = append(res.Satisfied, host)
		case changed:
			res.Added = append(res.Added, host)
		}
	}
	for _, host := range slices.Sorted(maps.Keys(owned)) {
		if _, keep := desired[host]; keep || len(m.waiting) > 0 {
			continue
		}
		if err := m.remove(host); err != nil {
			errs = append(errs, err)
			continue
		}
		res.Removed = append(res.Removed, host)
	}
	res.Owned, err = m.owned()
	if err != nil {
		errs = append(errs, err)
	}
	return res, errors.Join(errs...)
}

// checkHost refuses anything that is not a concrete, normalised host namespace,
// so a directory name can never escape the config dir.
func checkHost(host string) error {
	h, err := annotations.ParseRegistryHost("host", host)
	if err != nil {
		return err
	}
	if h.Wildcard() || h.String() != host {
		return fmt.Errorf("host %q is not a concrete normalised host[:port]", host)
	}
	return nil
}

// ensure writes (or rewrites) ferry's block for host. satisfied means the
// user's own configuration already does what mode asks.
func (m *Manager) ensure(host string, mode annotations.RegistryMode) (changed, satisfied bool, err error) {
	if err := checkHost(host); err != nil {
		return false, false, err
	}
	if mode != annotations.ModePlainHTTP && mode != annotations.ModeInsecure {
		return false, false, fmt.Errorf("host %s: unknown mode %q", host, mode)
	}
	hostDir := filepath.Join(m.dir, host)
	path := filepath.Join(hostDir, FileName)
	data, err := readFile(path)
	exists := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, false, err
	}
	var flags blockFlags
	base := data
	if b, ok := findBlock(data); ok {
		if b.mode == mode {
			return false, false, nil
		}
		flags = b.flags
		base = b.strip(data)
	} else if !exists {
		flags.createdFile = true
		if _, err := os.Stat(hostDir); errors.Is(err, fs.ErrNotExist) {
			flags.createdDir = true
		}
	}
	if !flags.createdFile || len(bytes.TrimSpace(base)) > 0 {
		// Merging into content ferry does not own.
		cfg, err := parseHostsTOML(base)
		if err != nil {
			return false, false, fmt.Errorf("%w: %s: existing file is not valid TOML, left untouched: %v", ErrConflict, path, err)
		}
		sat, conflict := cfg.check(host, mode)
		if conflict != "" {
			return false, false, fmt.Errorf("%w: %s: %s, left untouched", ErrConflict, path, conflict)
		}
		if sat {
			if len(base) != len(data) { // drop a stale ferry block of the other mode
				if err := writeAtomic(path, base); err != nil {
					return false, false, err
				}
			}
			return false, true, nil
		}
	}
	flags.mode = mode
	flags.sep = len(base) > 0 && base[len(base)-1] != '\n'
	out := slices.Clip(base)
	if flags.sep {
		out = append(out, '\n')
	}
	out = append(out, renderBlock(host, flags, flags.createdFile && len(base) == 0)...)
	if _, err := parseHostsTOML(out); err != nil {
		return false, false, fmt.Errorf("%w: %s: merged file would not parse, left untouched: %v", ErrConflict, path, err)
	}
	if flags.createdDir {
		if err := os.MkdirAll(hostDir, 0o755); err != nil {
			return false, false, fmt.Errorf("create %s: %w", hostDir, err)
		}
	}
	if err := writeAtomic(path, out); err != nil {
		return false, false, err
	}
	return true, false, nil
}

// remove strips ferry's block from host's hosts.toml, deleting the file and
// directory when ferry created them and nothing else is left.
func (m *Manager) remove(host string) error {
	hostDir := filepath.Join(m.dir, host)
	path := filepath.Join(hostDir, FileName)
	data, err := readFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	b, ok := findBlock(data)
	if !ok {
		return nil
	}
	rest := b.strip(data)
	if b.flags.createdFile && len(rest) == 0 {
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("remove %s: %w", path, err)
		}
		if b.flags.createdDir {
			// Fails harmlessly if someone else put files there.
			_ = os.Remove(hostDir)
		}
		return nil
	}
	return writeAtomic(path, rest)
}

func readFile(path string) ([]byte, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file (symlink?), left untouched", ErrConflict, path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes, left untouched", ErrConflict, path, maxFileSize)
	}
	return data, nil
}

// writeAtomic replaces path with data via a temporary file in the same
// directory, keeping the existing file's permissions.
func writeAtomic(path string, data []byte) error {
	mode := fs.FileMode(0o644)
	if fi, err := os.Stat(path); err == nil {
		mode = fi.Mode().Perm()
	}
	if err := atomicfile.Write(path, data, mode); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// blockFlags is what the BEGIN line records about a block.
type blockFlags struct {
	mode        annotations.RegistryMode
	createdFile bool // ferry created hosts.toml
	createdDir  bool // ferry created the host directory
	sep         bool // ferry added a '\n' before the block (file lacked a final newline)
}

func (f blockFlags) String() string {
	var created []string
	if f.createdFile {
		created = append(created, "file")
	}
	if f.createdDir {
		created = append(created, "dir")
	}
	c := strings.Join(created, ",")
	if c == "" {
		c = "none"
	}
	sep := "0"
	if f.sep {
		sep = "1"
	}
	return fmt.Sprintf("mode=%s; created=%s; sep=%s", f.mode, c, sep)
}

func parseFlags(s string) (blockFlags, bool) {
	var f blockFlags
	for _, kv := range strings.Split(s, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			return f, false
		}
		switch k {
		case "mode":
			f.mode = annotations.RegistryMode(v)
			if f.mode != annotations.ModePlainHTTP && f.mode != annotations.ModeInsecure {
				return f, false
			}
		case "created":
			for _, c := range strings.Split(v, ",") {
				switch c {
				case "file":
					f.createdFile = true
				case "dir":
					f.createdDir = true
				}
			}
		case "sep":
			f.sep = v == "1"
		}
	}
	return f, f.mode != ""
}

type block struct {
	start, end int // byte range of the block, END line and its newline included
	flags      blockFlags
	mode       annotations.RegistryMode
}

// strip returns data without the block (and without the separator ferry added).
func (b block) strip(data []byte) []byte {
	start := b.start
	if b.flags.sep && start > 0 && data[start-1] == '\n' {
		start--
	}
	out := make([]byte, 0, len(data)-(b.end-start))
	out = append(out, data[:start]...)
	return append(out, data[b.end:]...)
}

// findBlock locates ferry's block: the END line and the nearest valid BEGIN
// line before it (so a stray BEGIN line in user content is never swallowed).
func findBlock(data []byte) (block, bool) {
	off := 0
	cand := -1
	var candFlags blockFlags
	for off < len(data) {
		lineEnd := bytes.IndexByte(data[off:], '\n')
		next := len(data)
		line := data[off:]
		if lineEnd >= 0 {
			line = data[off : off+lineEnd]
			next = off + lineEnd + 1
		}
		switch {
		case bytes.HasPrefix(line, []byte(beginPrefix)) && bytes.HasSuffix(line, []byte(beginSuffix)):
			if f, ok := parseFlags(string(line[len(beginPrefix) : len(line)-len(beginSuffix)])); ok {
				cand, candFlags = off, f
			}
		case string(line) == endLine && cand >= 0:
			return block{start: cand, end: next, flags: candFlags, mode: candFlags.mode}, true
		}
		off = next
	}
	return block{}, false
}

// renderBlock renders ferry's block for host. withServer adds the top-level
// server key, which is only valid when the block is the whole file.
func renderBlock(host string, f blockFlags, withServer bool) []byte {
	var b strings.Builder
	scheme := "https://"
	if f.mode == annotations.ModePlainHTTP {
		scheme = "http://"
	}
	url := scheme + host
	fmt.Fprintf(&b, "%s%s%s\n", beginPrefix, f, beginSuffix)
	if withServer {
		fmt.Fprintf(&b, "server = %q\n", url)
	}
	fmt.Fprintf(&b, "[host.%q]\n", url)
	b.WriteString("  capabilities = [\"pull\", \"resolve\"]\n")
	if f.mode == annotations.ModeInsecure {
		b.WriteString("  skip_verify = true\n")
	}
	b.WriteString(endLine + "\n")
	return []byte(b.String())
}

// hostsTOML is the part of a hosts.toml ferry needs to understand.
type hostsTOML struct {
	server     string
	skipVerify bool
	hosts      map[string]map[string]any
}

func parseHostsTOML(data []byte) (hostsTOML, error) {
	var raw map[string]any
	if err := toml.Unmarshal(data, &raw); err != nil {
		return hostsTOML{}, err
	}
	var c hostsTOML
	if s, ok := raw["server"].(string); ok {
		c.server = s
	}
	if v, ok := raw["skip_verify"].(bool); ok {
		c.skipVerify = v
	}
	c.hosts = map[string]map[string]any{}
	if h, ok := raw["host"]; ok {
		hm, ok := h.(map[string]any)
		if !ok {
			return hostsTOML{}, fmt.Errorf("key \"host\" is not a table")
		}
		for k, v := range hm {
			t, ok := v.(map[string]any)
			if !ok {
				return hostsTOML{}, fmt.Errorf("host %q is not a table", k)
			}
			c.hosts[k] = t
		}
	}
	return c, nil
}

// check reports whether the user's configuration already gives host what mode
// asks for, or why ferry's table cannot be added.
func (c hostsTOML) check(host string, mode annotations.RegistryMode) (satisfied bool, conflict string) {
	switch mode {
	case annotations.ModePlainHTTP:
		url := "http://" + host
		if strings.TrimSuffix(c.server, "/") == url {
			return true, ""
		}
		if _, ok := c.hosts[url]; ok {
			return true, ""
		}
	case annotations.ModeInsecure:
		url := "https://" + host
		server := strings.TrimSuffix(c.server, "/")
		if (server == "" || server == url) && c.skipVerify {
			return true, ""
		}
		if t, ok := c.hosts[url]; ok {
			if v, _ := t["skip_verify"].(bool); v {
				return true, ""
			}
			return false, fmt.Sprintf("it already defines [host.%q] without skip_verify", url)
		}
	}
	return false, ""
}
