package progress

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestBarsDrawAndStop(t *testing.T) {
	var buf bytes.Buffer
	b := NewBars(&buf)
	b.SetTotal(2)
	b.AddBytes(1500)
	b.TaskDone()
	b.TaskDone()
	b.Stop()
	if !strings.Contains(buf.String(), "images") {
		t.Errorf("no bar drawn: %q", buf.String())
	}
}

func TestLinesCounts(t *testing.T) {
	var got []string
	l := NewLines(nil, func(s string) { got = append(got, s) }, time.Hour).(*lines)
	l.SetTotal(3)
	l.TaskDone()
	l.AddBytes(42)
	l.print()
	l.Stop()
	if len(got) != 1 || !strings.HasPrefix(got[0], "progress: 1/3 images, 42 bytes copied") {
		t.Errorf("lines = %q", got)
	}
}
