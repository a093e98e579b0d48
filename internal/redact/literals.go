package redact

import (
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"sync"
)

// Literals is a growing set of secret values known at run time (an auth file's passwords, a
// token minted a minute ago) that are replaced by the placeholder wherever they appear, also in
// their URL- and JSON-escaped spellings. The zero value is ready; a nil *Literals redacts nothing.
// It is safe for concurrent use.
type Literals struct {
	mu sync.RWMutex
	s  []string
}

// Add registers secrets; values shorter than 4 bytes are ignored (see [Strings]).
func (l *Literals) Add(secrets ...string) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range secrets {
		if len(s) < 4 {
			continue
		}
		forms := []string{s, url.QueryEscape(s), url.PathEscape(s)}
		if j, err := json.Marshal(s); err == nil {
			forms = append(forms, strings.Trim(string(j), `"`))
		}
		for _, f := range forms {
			if !slices.Contains(l.s, f) {
				l.s = append(l.s, f)
			}
		}
	}
	// longest first, so a secret containing another is replaced whole
	slices.SortStableFunc(l.s, func(a, b string) int { return len(b) - len(a) })
}

// Redact replaces every registered secret in s.
func (l *Literals) Redact(s string) string {
	if l == nil {
		return s
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	return Strings(s, l.s...)
}
