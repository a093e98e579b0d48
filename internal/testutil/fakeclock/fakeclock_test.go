package fakeclock

import (
	"testing"
	"time"
)

func TestClock(t *testing.T) {
	start := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		advance []time.Duration
		want    time.Time
	}{
		{name: "unmoved", want: start},
		{name: "forward", advance: []time.Duration{time.Minute, time.Second}, want: start.Add(61 * time.Second)},
		{name: "back and forth", advance: []time.Duration{time.Hour, -time.Hour, -time.Second}, want: start.Add(-time.Second)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := New(start)
			for _, d := range tt.advance {
				c.Advance(d)
			}
			if got := c.Now(); !got.Equal(tt.want) {
				t.Fatalf("Now = %v, want %v", got, tt.want)
			}
		})
	}
}
