// Package logcompat writes image-syncer 1.5.5's log lines verbatim (logrus text format, the same
// message templates and counters, including the "Failed to executed" typo) because users grep them.
package logcompat

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ferrypull/ferry/internal/redact"
)

// Level of a line.
type Level string

// Levels used by upstream.
const (
	Info  Level = "info"
	Warn  Level = "warning"
	Error Level = "error"
)

// Logger writes upstream-compatible lines and keeps upstream's "n/total tasks" counters.
type Logger struct {
	mu        sync.Mutex
	w         io.Writer
	tty       bool
	now       func() time.Time
	processed int
	total     int
	slog      *slog.Logger
	secrets   *redact.Literals
}

// Literals returns the secrets every line of this logger replaces (register an auth file's
// passwords and minted tokens there: a registry's error message may echo them).
func (l *Logger) Literals() *redact.Literals {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.secrets == nil {
		l.secrets = &redact.Literals{}
	}
	return l.secrets
}

// UseSlog sends every line to sl (e.g. a JSON handler for --log-format json) instead of
// writing upstream's text layout; messages and counters stay the same.
func (l *Logger) UseSlog(sl *slog.Logger) {
	l.mu.Lock()
	l.slog = sl
	l.mu.Unlock()
}

// New returns a Logger. tty selects logrus' terminal layout ("INFO[time] msg" with colour) instead
// of the key=value layout used for files and pipes.
func New(w io.Writer, tty bool) *Logger {
	return &Logger{w: w, tty: tty, now: time.Now}
}

// SetClock replaces the clock (for golden tests).
func (l *Logger) SetClock(now func() time.Time) { l.now = now }

// needsQuoting mirrors logrus' TextFormatter.
func needsQuoting(s string) bool {
	if s == "" {
		return true
	}
	for _, c := range s {
		if !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			c == '-' || c == '.' || c == '_' || c == '/' || c == '@' || c == '^' || c == '+') {
			return true
		}
	}
	return false
}

// Log writes one line; the message passes through the registered literals and redact.Text so no
// credential can leak.
func (l *Logger) Log(level Level, msg string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.logLocked(level, msg)
}

func (l *Logger) logLocked(level Level, msg string) {
	msg = redact.Text(l.secrets.Redact(msg))
	if l.slog != nil {
		lv := map[Level]slog.Level{Info: slog.LevelInfo, Warn: slog.LevelWarn, Error: slog.LevelError}[level]
		l.slog.Log(context.Background(), lv, msg)
		return
	}
	ts := l.now().Format("2006-01-02 15:04:05")
	if l.tty {
		color := map[Level]int{Info: 36, Warn: 33, Error: 31}[level]
		lv := strings.ToUpper(string(level))
		if len(lv) > 4 {
			lv = lv[:4]
		}
		fmt.Fprintf(l.w, "\x1b[%dm%s\x1b[0m[%s] %s\n", color, lv, ts, msg)
		return
	}
	m := msg
	if needsQuoting(m) {
		m = strconv.Quote(m)
	}
	fmt.Fprintf(l.w, "time=%q level=%s msg=%s\n", ts, level, m)
}

// Infof logs at info level.
func (l *Logger) Infof(format string, a ...any) { l.Log(Info, fmt.Sprintf(format, a...)) }

// Warnf logs at warning level.
func (l *Logger) Warnf(format string, a ...any) { l.Log(Warn, fmt.Sprintf(format, a...)) }

// Errorf logs at error level.
func (l *Logger) Errorf(format string, a ...any) { l.Log(Error, fmt.Sprintf(format, a...)) }

// AddTotal grows the task total, as upstream does when tasks are generated.
func (l *Logger) AddTotal(n int) {
	l.mu.Lock()
	l.total += n
	l.mu.Unlock()
}

// ResetCounters starts a retry round ("Start to retry tasks, please wait ...") with total tasks.
func (l *Logger) ResetCounters(total int) {
	l.mu.Lock()
	l.processed, l.total = 0, total
	l.mu.Unlock()
}

// Finish logs "Finish <task>[: <msg>]. Now n/total tasks have been processed."
func (l *Logger) Finish(task, msg string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.processed++
	if msg == "" {
		l.logLocked(Info, fmt.Sprintf("Finish %s. Now %d/%d tasks have been processed.", task, l.processed, l.total))
		return
	}
	l.logLocked(Info, fmt.Sprintf("Finish %s: %s. Now %d/%d tasks have been processed.", task, msg, l.processed, l.total))
}

// Failed logs upstream's error line, typo included.
func (l *Logger) Failed(task string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.processed++
	l.logLocked(Error, fmt.Sprintf("Failed to executed %s: %v. Now %d/%d tasks have been processed.", task, err, l.processed, l.total))
}

// Finished logs the summary line people grep for.
func (l *Logger) Finished(failed int, cost time.Duration) {
	l.Infof("Synchronization finished, %d tasks failed, cost %s.", failed, cost)
}

// RuleTask names an upstream RuleTask.
func RuleTask(src, dst string) string {
	return fmt.Sprintf("analyzing image rule for %s -> %s", src, dst)
}

// URLTask names an upstream URLTask.
func URLTask(src, dst string) string {
	return fmt.Sprintf("generating sync tasks from %s to %s", src, dst)
}

// BlobTask names an upstream BlobTask.
func BlobTask(digest string, size int64, src, dst string) string {
	return fmt.Sprintf("synchronizing blob %s(%s) from %s to %s", digest, HumanSize(size), src, dst)
}

// ManifestTask names an upstream ManifestTask.
func ManifestTask(src, dst string) string {
	return fmt.Sprintf("synchronizing manifest from %s to %s", src, dst)
}

// HumanSize formats like docker/go-units HumanSize (decimal units, 4 significant digits): "2.003MB".
func HumanSize(n int64) string {
	units := []string{"B", "kB", "MB", "GB", "TB", "PB", "EB"}
	f := float64(n)
	i := 0
	for f >= 1000 && i < len(units)-1 {
		f /= 1000
		i++
	}
	return fmt.Sprintf("%.4g%s", f, units[i])
}
