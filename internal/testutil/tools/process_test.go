package tools

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestStartProcessDoesNotLeakInheritedFDs: a descriptor the test process holds without
// close-on-exec (as one inherited from `flock` around go test is) is not passed to a rig
// component, which could otherwise hold a lock after the test ended.
func TestStartProcessDoesNotLeakInheritedFDs(t *testing.T) {
	fd, err := syscall.Open(filepath.Join(t.TempDir(), "lock"), syscall.O_CREAT|syscall.O_RDWR, 0o600) // no O_CLOEXEC
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	logPath := filepath.Join(t.TempDir(), "ls.log")
	p := StartProcess(t, "ls", logPath, "/bin/ls", "/proc/self/fd")
	<-p.done
	out, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range strings.Fields(string(out)) {
		if f == strconv.Itoa(fd) {
			t.Fatalf("the child holds fd %d (its fds: %s)", fd, strings.Join(strings.Fields(string(out)), " "))
		}
	}
}
