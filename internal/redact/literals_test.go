package redact

import (
	"strings"
	"sync"
	"testing"
)

func TestLiterals(t *testing.T) {
	var l Literals
	l.Add("abc", "pa$$ word/\"x", "Secret-Token-1", "Secret-Token-12")
	for in, want := range map[string]string{
		"denied: pa$$ word/\"x":         "denied: " + Placeholder,
		`{"p":"pa$$ word/\"x"}`:         `{"p":"` + Placeholder + `"}`,
		"?p=pa%24%24+word%2F%22x":       "?p=" + Placeholder,
		"/pa$$%20word%2F%22x/":          "/" + Placeholder + "/",
		"token Secret-Token-12 and -1.": "token " + Placeholder + " and -1.",
		"abc is too short to redact":    "abc is too short to redact",
	} {
		if got := l.Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
	var nilL *Literals
	nilL.Add("ignored")
	if nilL.Redact("x ignored") != "x ignored" {
		t.Error("a nil Literals redacts nothing")
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.Add(strings.Repeat("z", 4+i))
			_ = l.Redact("zzzzzzzzzzzz")
		}()
	}
	wg.Wait()
}
