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

type objectValue struct {
	FilterSpec
	Destination  *string  `json:"destination,omitempty"`
	Destinations []string `json:"destinations,omitempty"`
}

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
	var obj objectValue
	if err := json.Unmarshal(v, &obj); err == nil && v[0] == '{' {
		var dsts []string
		if obj.Destination != nil {
			dsts = append(dsts, *obj.Destination)
		}
		dsts = append(dsts, obj.Destinations...)
		if len(dsts) == 0 {
			return nil, errors.New(`object value needs "destination" or "destinations"`)
		}
		if obj.Latest < 0 {
			return nil, fmt.Errorf("latest: must be >= 0, got %d", obj.Latest)
		}
		out := make([]Entry, 0, len(dsts))
		for _, d := range dsts {
			out = append(out, Entry{Source: src, Destination: d, Filter: obj.FilterSpec})
		}
		return out, nil
	}
	s := strings.TrimSpace(string(v))
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	return nil, fmt.Errorf("destination must be a string, a list or an object, got %s", s)
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
