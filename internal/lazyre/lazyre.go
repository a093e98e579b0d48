// Package lazyre compiles package-level regular expressions on first use instead of at program
// start, so a binary pays only for the validators it runs (image-syncer links acrconfig's
// validators but never calls them).
package lazyre

import (
	"regexp"
	"sync"
)

// New returns a function that compiles pattern on its first call (panicking on a bad pattern, like
// regexp.MustCompile) and returns the same *regexp.Regexp ever after.
func New(pattern string) func() *regexp.Regexp {
	return sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(pattern) })
}
