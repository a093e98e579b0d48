package app

import (
	"fmt"
	"os"
	"testing"
)

// TestMain gives the package's runs their own cache directory, so the default --state-dir is
// never the user's (and defaultStateDir is exercised).
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "image-syncer-cache-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Setenv("XDG_CACHE_HOME", dir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
