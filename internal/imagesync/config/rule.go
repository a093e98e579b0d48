package config

import (
	"errors"
	"fmt"
	"os"
	"path"
	"regexp"
	"sort"
	"strings"

	"github.com/Masterminds/semver/v3"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/ferrypull/ferry/internal/lazyre"
)

// Ref is one side of a rule after the grammar is applied.
type Ref struct {
	Registry   string // host[:port]; Docker Hub is "index.docker.io"
	Repository string // path inside the registry; for a namespace rule, the namespace prefix ("" = whole registry)
	Tags       []string
	Regex      *regexp.Regexp
	Digest     string
	// Namespace is set for "registry/ns/*" sources: every repository under the prefix, via the catalog.
	Namespace bool
}

// Name is registry/repository.
func (r Ref) Name() string {
	if r.Repository == "" {
		return r.Registry
	}
	return r.Registry + "/" + r.Repository
}

// Rule is one parsed source → destination pair.
type Rule struct {
	Source      string // as written
	Destination string // as written, after env expansion
	Src, Dst    Ref
	Filter      Filter
}

// Filter is the compiled form of FilterSpec.
type Filter struct {
	Exclude []*regexp.Regexp
	Semver  *semver.Constraints
	Latest  int
}

// Defaults carries the removed --registry/--namespace flags for empty destinations.
type Defaults struct {
	Registry, Namespace string
}

var (
	// componentRE is one path component of a repository name in distribution's reference
	// grammar; go-containerregistry checks only the characters, so "a/../b" would pass.
	componentRE = lazyre.New(`^[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*$`)
	tagRE       = lazyre.New(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	digestRE    = lazyre.New(`^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$`)
)

// ErrEmptyDestination is returned for "" destinations when no default registry/namespace is set.
var ErrEmptyDestination = errors.New("empty destination is not supported")

// ParseRule applies the image-syncer rule grammar to one entry.
func ParseRule(e Entry, d Defaults) (Rule, error) {
	r := Rule{Source: e.Source}
	src, err := parseRef(e.Source, true)
	if err != nil {
		return r, fmt.Errorf("source %q: %w", e.Source, err)
	}
	r.Src = src
	dst := strings.TrimSpace(os.ExpandEnv(e.Destination))
	r.Destination = dst
	if dst == "" {
		if d.Registry == "" || d.Namespace == "" {
			return r, fmt.Errorf("%w for source: %s", ErrEmptyDestination, e.Source)
		}
		if src.Namespace {
			dst = d.Registry + "/" + d.Namespace
		} else {
			dst = d.Registry + "/" + d.Namespace + "/" + path.Base(src.Repository)
		}
		r.Destination = dst
	}
	r.Dst, err = parseRef(dst, false)
	if err != nil {
		return r, fmt.Errorf("destination %q of source %q: %w", dst, e.Source, err)
	}
	if err := checkPairing(r.Src, r.Dst); err != nil {
		return r, fmt.Errorf("source %q -> destination %q: %w", e.Source, dst, err)
	}
	if r.Filter, err = compileFilter(e.Filter); err != nil {
		return r, fmt.Errorf("source %q: %w", e.Source, err)
	}
	return r, nil
}

func checkPairing(s, d Ref) error {
	if s.Namespace && (len(d.Tags) > 0 || d.Digest != "") {
		return errors.New("a namespace rule needs a destination namespace without tag or digest")
	}
	if d.Digest != "" {
		if s.Digest == "" || s.Digest != d.Digest {
			return errors.New("the destination digest must equal the source digest")
		}
	}
	if len(d.Tags) > 0 {
		switch {
		case s.Digest != "":
			if len(d.Tags) != 1 {
				return errors.New("the number of tags of source and destination is not matched")
			}
		case len(s.Tags) != len(d.Tags):
			return errors.New("the number of tags of source and destination is not matched")
		}
	}
	return nil
}

func compileFilter(f FilterSpec) (Filter, error) {
	out := Filter{Latest: f.Latest}
	if f.Latest < 0 {
		return out, fmt.Errorf("latest: must be >= 0, got %d", f.Latest)
	}
	for i, ex := range f.Exclude {
		re, err := regexp.Compile(ex)
		if err != nil {
			return out, fmt.Errorf("exclude[%d] %q: %w", i, ex, err)
		}
		out.Exclude = append(out.Exclude, re)
	}
	if f.Semver != "" {
		c, err := semver.NewConstraint(f.Semver)
		if err != nil {
			return out, fmt.Errorf("semver %q: %w", f.Semver, err)
		}
		out.Semver = c
	}
	return out, nil
}

// parseRef splits "repo", "repo:t1,t2", "repo:/re/", "repo@algo:hex" and "registry/ns/*".
func parseRef(s string, isSource bool) (Ref, error) {
	var r Ref
	s = strings.TrimSpace(s)
	if s == "" {
		return r, errors.New("empty reference")
	}
	repo := s
	switch {
	case strings.Contains(s, "@"):
		i := strings.Index(s, "@")
		repo, r.Digest = s[:i], s[i+1:]
		if !digestRE().MatchString(r.Digest) {
			return r, fmt.Errorf("invalid digest %q", r.Digest)
		}
		if strings.HasPrefix(r.Digest, "sha256:") && len(r.Digest) != len("sha256:")+64 {
			return r, fmt.Errorf("invalid sha256 digest %q", r.Digest)
		}
		if c, sl := strings.LastIndex(repo, ":"), strings.LastIndex(repo, "/"); c > sl {
			repo = repo[:c] // repo:tag@digest: the digest wins, as in docker
		}
	case isSource && strings.Contains(s, ":/") && strings.HasSuffix(s, "/") && strings.Index(s, ":/")+2 < len(s):
		i := strings.Index(s, ":/")
		expr := s[i+2 : len(s)-1]
		if expr == "" {
			return r, errors.New("empty regex")
		}
		re, err := regexp.Compile(expr)
		if err != nil {
			return r, fmt.Errorf("invalid regex %q: %w", expr, err)
		}
		repo, r.Regex = s[:i], re
	default:
		if c, sl := strings.LastIndex(s, ":"), strings.LastIndex(s, "/"); c > sl && sl >= 0 || c >= 0 && sl < 0 && !looksLikeHostPort(s) {
			repo = s[:c]
			for _, t := range strings.Split(s[c+1:], ",") {
				t = strings.TrimSpace(t)
				if !tagRE().MatchString(t) {
					return r, fmt.Errorf("invalid tag %q", t)
				}
				r.Tags = append(r.Tags, t)
			}
		}
	}
	if strings.HasSuffix(repo, "/*") || repo == "*" {
		if !isSource {
			return r, errors.New("a destination cannot be a namespace wildcard")
		}
		if len(r.Tags) > 0 || r.Digest != "" {
			return r, errors.New("a namespace wildcard cannot name tags or a digest")
		}
		r.Namespace = true
		prefix := strings.TrimSuffix(strings.TrimSuffix(repo, "*"), "/")
		reg, ns, _ := strings.Cut(prefix, "/")
		if !strings.ContainsAny(reg, ".:") && reg != "localhost" {
			return r, fmt.Errorf("namespace rule %q needs an explicit registry host", s)
		}
		if _, err := name.NewRegistry(reg); err != nil {
			return r, fmt.Errorf("invalid registry %q: %w", reg, err)
		}
		if ns != "" {
			if _, err := name.NewRepository(reg + "/" + ns); err != nil {
				return r, fmt.Errorf("invalid namespace %q: %w", ns, err)
			}
			if err := CheckRepositoryPath(ns); err != nil {
				return r, fmt.Errorf("invalid namespace %q: %w", ns, err)
			}
		}
		r.Registry, r.Repository = reg, ns
		return r, nil
	}
	nr, err := name.NewRepository(repo)
	if err != nil {
		return r, fmt.Errorf("invalid repository %q: %w", repo, err)
	}
	if err := CheckRepositoryPath(nr.RepositoryStr()); err != nil {
		return r, fmt.Errorf("invalid repository %q: %w", repo, err)
	}
	r.Registry, r.Repository = nr.RegistryStr(), nr.RepositoryStr()
	return r, nil
}

// CheckRepositoryPath checks a repository path (without the registry) against distribution's
// grammar: lower-case components of letters and digits joined by ".", "_", "__" or dashes. It
// refuses "..", ".", empty components and leading or trailing separators, which would make a
// request leave /v2/<name>/ (a POST to "a/../../x" is redirected outside it).
func CheckRepositoryPath(p string) error {
	for c := range strings.SplitSeq(p, "/") {
		if !componentRE().MatchString(c) {
			return fmt.Errorf("path component %q is not a valid repository name component", c)
		}
	}
	return nil
}

// looksLikeHostPort is true for "host:5000" without a path (not a tag).
func looksLikeHostPort(s string) bool {
	_, port, ok := strings.Cut(s, ":")
	if !ok || port == "" {
		return false
	}
	for _, c := range port {
		if c < '0' || c > '9' {
			return false
		}
	}
	return strings.Contains(s, ".") || strings.HasPrefix(s, "localhost")
}

// SelectTags applies the source regex (unanchored, as upstream) and the ferry filters to a tag list
// and returns the kept tags in a stable order.
func (r Rule) SelectTags(all []string) []string {
	var kept []string
	for _, t := range all {
		if r.Src.Regex != nil && !r.Src.Regex.MatchString(t) {
			continue
		}
		if r.Filter.excluded(t) {
			continue
		}
		if r.Filter.Semver != nil {
			v, err := semver.NewVersion(t)
			if err != nil || !r.Filter.Semver.Check(v) {
				continue
			}
		}
		kept = append(kept, t)
	}
	if r.Filter.Latest > 0 {
		kept = latest(kept, r.Filter.Latest)
	}
	sort.Strings(kept)
	return kept
}

func (f Filter) excluded(t string) bool {
	for _, re := range f.Exclude {
		if re.MatchString(t) {
			return true
		}
	}
	return false
}

// latest keeps the n highest tags: semantic versions first (highest first), then the others in
// reverse lexical order.
func latest(tags []string, n int) []string {
	type tv struct {
		t string
		v *semver.Version
	}
	xs := make([]tv, 0, len(tags))
	for _, t := range tags {
		v, err := semver.NewVersion(t)
		if err != nil {
			v = nil
		}
		xs = append(xs, tv{t, v})
	}
	sort.SliceStable(xs, func(i, j int) bool {
		a, b := xs[i], xs[j]
		switch {
		case a.v != nil && b.v != nil:
			if c := a.v.Compare(b.v); c != 0 {
				return c > 0
			}
			return a.t > b.t
		case a.v != nil:
			return true
		case b.v != nil:
			return false
		}
		return a.t > b.t
	})
	if len(xs) > n {
		xs = xs[:n]
	}
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = x.t
	}
	return out
}

// Pair is one concrete source → destination copy: a tag or digest on each side.
type Pair struct {
	SrcRepo, DstRepo string // registry/repository
	SrcID, DstID     string // tag or digest
}

// Pairs expands a rule into concrete copies for the given source tags (all tags, regex or namespace
// rules: the listed tags; tag-list and digest rules ignore it). repo overrides the source repository
// for namespace rules (the catalog entry).
func (r Rule) Pairs(tags []string) []Pair {
	src, dst := r.Src.Name(), r.Dst.Name()
	var out []Pair
	switch {
	case r.Src.Digest != "":
		id := r.Src.Digest
		if len(r.Dst.Tags) == 1 {
			id = r.Dst.Tags[0]
		}
		return []Pair{{SrcRepo: src, DstRepo: dst, SrcID: r.Src.Digest, DstID: id}}
	case len(r.Src.Tags) > 0:
		for i, t := range r.Src.Tags {
			d := t
			if len(r.Dst.Tags) > 0 {
				d = r.Dst.Tags[i]
			}
			out = append(out, Pair{SrcRepo: src, DstRepo: dst, SrcID: t, DstID: d})
		}
		return out
	}
	for _, t := range tags {
		out = append(out, Pair{SrcRepo: src, DstRepo: dst, SrcID: t, DstID: t})
	}
	return out
}

// NeedsTagList reports whether the rule needs the source tag list.
func (r Rule) NeedsTagList() bool { return r.Src.Digest == "" && len(r.Src.Tags) == 0 }

// ForRepository narrows a namespace rule to one catalog repository (path inside the registry),
// returning false when the repository is outside the namespace.
func (r Rule) ForRepository(repo string) (Rule, bool) {
	if !r.Src.Namespace {
		return r, false
	}
	rest := repo
	if r.Src.Repository != "" {
		var ok bool
		rest, ok = strings.CutPrefix(repo, r.Src.Repository+"/")
		if !ok {
			return r, false
		}
	}
	if CheckRepositoryPath(repo) != nil {
		return r, false
	}
	out := r
	out.Src.Namespace = false
	out.Src.Repository = repo
	out.Dst.Repository = strings.TrimPrefix(r.Dst.Repository+"/"+rest, "/")
	return out, true
}
