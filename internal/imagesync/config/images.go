package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Entry is one source → destination pair of the images file, before the rule grammar is applied.
type Entry struct {
	Source      string
	Destination string
	Filter      FilterSpec
}

// FilterSpec holds ferry's optional tag filters, written as an object value in the images file:
//
//	"harbor/proj/app": {"destination": "acr/ns/app", "exclude": ["-rc"], "semver": ">=1.2", "latest": 3}
type FilterSpec struct {
	// Exclude drops tags matching any of these RE2 expressions (unanchored, like the /regex/ rule).
	Exclude []string `json:"exclude,omitempty"`
	// Semver keeps only tags that parse as semantic versions inside this range (Masterminds syntax).
	Semver string `json:"semver,omitempty"`
	// Latest keeps the N highest tags (semantic versions first, then the rest in reverse lexical order).
	Latest int `json:"latest,omitempty"`
}

// objectKeys are the keys of an object value, in the order errors list them.
var objectKeys = []string{"destination", "destinations", "exclude", "semver", "latest"}

// ParseImages parses an images file: a map from source rule to one destination string, a list of
// destinations, or (ferry extension) an object with destination(s) and filters. Entries are returned
// sorted by source, and a destination listed twice for one source is kept once.
func ParseImages(data []byte, f Format) ([]Entry, error) {
	var raw map[string]json.RawMessage
	if err := decode(data, f, &raw); err != nil {
		return nil, fmt.Errorf("images file: %w", err)
	}
	return entriesFromMap(raw)
}

func entriesFromMap(raw map[string]json.RawMessage) ([]Entry, error) {
	keys := slices.Sorted(maps.Keys(raw))
	var out []Entry
	for _, k := range keys {
		es, err := parseValue(k, raw[k])
		if err != nil {
			return nil, fmt.Errorf("images file: source %q: %w", k, err)
		}
		out = append(out, es...)
	}
	return out, nil
}

func parseValue(src string, v json.RawMessage) ([]Entry, error) {
	var str string
	if err := json.Unmarshal(v, &str); err == nil {
		return []Entry{{Source: src, Destination: str}}, nil
	}
	var list []json.RawMessage
	if err := json.Unmarshal(v, &list); err == nil {
		if len(list) == 0 {
			return nil, errors.New("empty destination list")
		}
		var out []Entry
		seen := map[string]bool{}
		for i, item := range list {
			es, err := parseValue(src, item)
			if err != nil {
				return nil, fmt.Errorf("destination [%d]: %w", i, err)
			}
			for _, e := range es {
				key := e.Destination + "\x00" + fmt.Sprint(e.Filter)
				if !seen[key] {
					seen[key] = true
					out = append(out, e)
				}
			}
		}
		return out, nil
	}
	if len(v) > 0 && v[0] == '{' {
		return parseObject(src, v)
	}
	s := strings.TrimSpace(string(v))
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	return nil, fmt.Errorf("destination must be a string, a list or an object, got %s", s)
}

// parseObject reads the object form {"destination(s)": …, "exclude": […], "semver": "…",
// "latest": N}. Keys match case-insensitively; an unknown key (a misspelt "exlude" would
// otherwise copy every tag) and a value of the wrong type are errors naming the key.
func parseObject(src string, v json.RawMessage) ([]Entry, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(v, &m); err != nil {
		return nil, errors.New("malformed object value")
	}
	var spec FilterSpec
	var dsts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		raw := m[k]
		var err error
		switch strings.ToLower(k) {
		case "destination":
			var d string
			if err = json.Unmarshal(raw, &d); err == nil {
				dsts = append([]string{d}, dsts...)
			} else {
				err = fmt.Errorf("must be a string, got %s", kindOf(raw))
			}
		case "destinations":
			var ds []string
			if err = json.Unmarshal(raw, &ds); err == nil {
				dsts = append(dsts, ds...)
			} else {
				err = fmt.Errorf("must be a list of strings, got %s", kindOf(raw))
			}
		case "exclude":
			if err = json.Unmarshal(raw, &spec.Exclude); err != nil {
				err = fmt.Errorf(`must be a list of regular expressions (exclude: ["-rc"]), got %s`, kindOf(raw))
			}
		case "semver":
			if err = json.Unmarshal(raw, &spec.Semver); err != nil {
				err = fmt.Errorf(`must be a string (semver: ">=1.2"), got %s`, kindOf(raw))
			}
		case "latest":
			if err = json.Unmarshal(raw, &spec.Latest); err != nil {
				err = fmt.Errorf("must be a whole number, got %s", kindOf(raw))
			} else if spec.Latest < 0 {
				err = fmt.Errorf("must be >= 0, got %d", spec.Latest)
			}
		default:
			hint := ""
			if near := closest(strings.ToLower(k), objectKeys); near != "" {
				hint = fmt.Sprintf(" (did you mean %q?)", near)
			}
			return nil, fmt.Errorf("unknown key %q%s; an object value takes %s", k, hint, strings.Join(objectKeys, ", "))
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
	}
	if len(dsts) == 0 {
		return nil, errors.New(`object value needs "destination" or "destinations"`)
	}
	out := make([]Entry, 0, len(dsts))
	for _, d := range dsts {
		out = append(out, Entry{Source: src, Destination: d, Filter: spec})
	}
	return out, nil
}

// kindOf names the JSON type of a value for an error message, and quotes short scalars.
func kindOf(raw json.RawMessage) string {
	s := strings.TrimSpace(string(raw))
	if s == "" {
		return "nothing"
	}
	kind := map[byte]string{'{': "an object", '[': "a list", '"': "a string", 't': "a boolean", 'f': "a boolean", 'n': "null"}[s[0]]
	if kind == "" {
		kind = "a number"
	}
	if s[0] != '{' && s[0] != '[' && len(s) <= 40 {
		return kind + " " + s
	}
	return kind
}

// closest returns the candidate within two edits of s, if any.
func closest(s string, candidates []string) string {
	best, bestD := "", 3
	for _, c := range candidates {
		if d := editDistance(s, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// Legacy is the deprecated --config file: auth and images under one object.
type Legacy struct {
	Auth   AuthFile
	Images []Entry
}

// ParseLegacy parses a --config file. Like upstream, auth values are not env-expanded.
func ParseLegacy(data []byte, f Format) (*Legacy, error) {
	var raw struct {
		Auth   map[string]json.RawMessage `json:"auth"`
		Images map[string]json.RawMessage `json:"images"`
	}
	if err := decode(data, f, &raw); err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	out := &Legacy{Auth: AuthFile{}}
	if raw.Auth != nil {
		b, err := json.Marshal(raw.Auth)
		if err != nil {
			return nil, fmt.Errorf("config file: auth: %w", err)
		}
		if out.Auth, err = ParseAuth(b, JSON, false); err != nil {
			return nil, fmt.Errorf("config file: %w", err)
		}
	}
	var err error
	if out.Images, err = entriesFromMap(raw.Images); err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	return out, nil
}
