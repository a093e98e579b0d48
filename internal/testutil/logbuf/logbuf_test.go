package logbuf

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

func TestBufferConcurrentWriters(t *testing.T) {
	tests := []struct {
		name    string
		writers int
		lines   int
	}{
		{name: "empty", writers: 0, lines: 0},
		{name: "one writer", writers: 1, lines: 10},
		{name: "many writers", writers: 8, lines: 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b Buffer
			var wg sync.WaitGroup
			for w := range tt.writers {
				wg.Go(func() {
					for i := range tt.lines {
						if _, err := fmt.Fprintf(&b, "w%d-l%d\n", w, i); err != nil {
							t.Error(err)
						}
					}
				})
			}
			wg.Wait()
			out := b.String()
			if got, want := strings.Count(out, "\n"), tt.writers*tt.lines; got != want {
				t.Fatalf("%d lines, want %d", got, want)
			}
			for w := range tt.writers {
				for i := range tt.lines {
					if !strings.Contains(out, fmt.Sprintf("w%d-l%d\n", w, i)) {
						t.Fatalf("line w%d-l%d missing or torn", w, i)
					}
				}
			}
		})
	}
}
