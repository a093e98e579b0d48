package tools

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Process is a rig component running as a child process, its output in a log file.
type Process struct {
	Name    string
	Cmd     *exec.Cmd
	LogPath string
	logf    *os.File
	done    chan struct{}
	err     error
}

// StartProcess starts argv with stdout and stderr written to logPath and registers Stop as a cleanup.
// A program that cannot start is reported through Require.
func StartProcess(t testing.TB, name, logPath string, argv ...string) *Process {
	t.Helper()
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatalf("%s log: %v", name, err)
	}
	p := &Process{Name: name, Cmd: exec.Command(argv[0], argv[1:]...), LogPath: logPath, logf: logf, done: make(chan struct{})}
	p.Cmd.Stdout, p.Cmd.Stderr = logf, logf
	// The component dies with the test process, even when that is killed before its cleanups run.
	p.Cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	NoInheritedFDs()
	if err := p.Cmd.Start(); err != nil {
		_ = logf.Close()
		Require(t, "%s cannot start: %v", name, err)
	}
	go func() { p.err = p.Cmd.Wait(); close(p.done) }()
	t.Cleanup(p.Stop)
	return p
}

// Exited returns a non-nil error once the process has exited, for use in Poll conditions.
func (p *Process) Exited() error {
	select {
	case <-p.done:
		return fmt.Errorf("%s exited: %v", p.Name, p.err)
	default:
		return nil
	}
}

// Stop sends SIGTERM, kills the process if it has not exited within 10 s, and closes the log.
// Calling it again does nothing.
func (p *Process) Stop() {
	select {
	case <-p.done:
	default:
		_ = p.Cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = p.Cmd.Process.Kill()
			<-p.done
		}
	}
	_ = p.logf.Close()
}

// Log returns what the process has written so far.
func (p *Process) Log() string {
	b, _ := os.ReadFile(p.LogPath)
	return string(b)
}

// PeakRSS is the peak resident set size (VmHWM) of process pid in bytes; pid 0 is this process.
// It returns 0 where /proc is not available.
func PeakRSS(pid int) int64 {
	path := "/proc/self/status"
	if pid != 0 {
		path = fmt.Sprintf("/proc/%d/status", pid)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago (for programs that take a
// port number rather than a listener).
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// NoInheritedFDs marks every file descriptor the test process inherited (beyond stdin, stdout and
// stderr) close-on-exec, so that rig components started from it do not hold them. A lock file
// held by `flock` around `go test` is such a descriptor: a leaked kube-apiserver that inherited it
// held the lock after its test had ended. Go's own descriptors are close-on-exec already.
func NoInheritedFDs() {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range entries {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			syscall.CloseOnExec(fd)
		}
	}
}
