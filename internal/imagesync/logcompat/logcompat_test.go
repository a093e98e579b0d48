package logcompat

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestTemplates(t *testing.T) {
	var b strings.Builder
	l := New(&b, false)
	l.SetClock(func() time.Time { return time.Date(2026, 11, 25, 17, 9, 22, 0, time.UTC) })
	l.AddTotal(3)
	l.Finish(RuleTask("h.io/p/app", "d.io/m/app"), "")
	l.Finish(URLTask("h.io/p/app:v1", "d.io/m/app:v1"), "skip synchronization because destination image exists")
	l.Failed(BlobTask("sha256:ab", 2003000, "h.io/p/app:v1", "d.io/m/app:v1"), errors.New("boom"))
	l.Finished(1, 1500*time.Millisecond)
	want := `time="2026-11-25 17:09:22" level=info msg="Finish analyzing image rule for h.io/p/app -> d.io/m/app. Now 1/3 tasks have been processed."
time="2026-11-25 17:09:22" level=info msg="Finish generating sync tasks from h.io/p/app:v1 to d.io/m/app:v1: skip synchronization because destination image exists. Now 2/3 tasks have been processed."
time="2026-11-25 17:09:22" level=error msg="Failed to executed synchronizing blob sha256:ab(2.003MB) from h.io/p/app:v1 to d.io/m/app:v1: boom. Now 3/3 tasks have been processed."
time="2026-11-25 17:09:22" level=info msg="Synchronization finished, 1 tasks failed, cost 1.5s."
`
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestHumanSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0B", 999: "999B", 1000: "1kB", 2003000: "2.003MB", 110_000_000: "110MB"} {
		if got := HumanSize(n); got != want {
			t.Errorf("HumanSize(%d) = %s, want %s", n, got, want)
		}
	}
}

func TestRedactsCredentials(t *testing.T) {
	var b strings.Builder
	New(&b, false).Errorf("GET https://user:hunter2@h.io/v2/?password=hunter2 failed password=hunter2")
	if strings.Contains(b.String(), "hunter2") {
		t.Errorf("secret in log: %s", b.String())
	}
}
