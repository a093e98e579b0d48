// Package etchosts maps test host names (e.g. acr-emulator registry domains) to 127.0.0.1 in /etc/hosts,
// so out-of-process clients such as containerd resolve them like real registry domains.
package etchosts

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/ferrypull/ferry/internal/testutil/tools"
)

// Path is the hosts file.
const Path = "/etc/hosts"

// marker ends every line this package writes.
const marker = "# ferry-test"

// Ensure appends "127.0.0.1 <name>" for every name (a port, if any, is dropped) that does not resolve to a
// loopback address in /etc/hosts yet. Lines are never removed: other test processes may rely on them, and
// every one of them points a test name at 127.0.0.1. Needs root; otherwise tools.Require reports it.
func Ensure(t testing.TB, names ...string) {
	t.Helper()
	if err := ensure(names); err != nil {
		tools.Require(t, "cannot map %v in %s: %v", names, Path, err)
	}
}

func ensure(names []string) error {
	f, err := os.OpenFile(Path, os.O_RDWR|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	defer func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN) }()
	have := map[string]bool{}
	s := bufio.NewScanner(f)
	for s.Scan() {
		line, _, _ := strings.Cut(s.Text(), "#")
		fields := strings.Fields(line)
		if len(fields) < 2 || !strings.HasPrefix(fields[0], "127.") {
			continue
		}
		for _, n := range fields[1:] {
			have[strings.ToLower(n)] = true
		}
	}
	if err := s.Err(); err != nil {
		return fmt.Errorf("read: %w", err)
	}
	var b strings.Builder
	for _, n := range names {
		if h, _, err := net.SplitHostPort(n); err == nil {
			n = h
		}
		n = strings.ToLower(n)
		if n == "" || have[n] {
			continue
		}
		have[n] = true
		fmt.Fprintf(&b, "127.0.0.1 %s %s\n", n, marker)
	}
	if b.Len() == 0 {
		return nil
	}
	if _, err := f.WriteString(b.String()); err != nil {
		return fmt.Errorf("append: %w", err)
	}
	return nil
}
