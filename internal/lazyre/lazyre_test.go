package lazyre

import "testing"

func TestNewCompilesOnceOnFirstUse(t *testing.T) {
	re := New(`^a+$`)
	first := re()
	if !first.MatchString("aaa") || first.MatchString("b") {
		t.Fatal("wrong expression")
	}
	if re() != first {
		t.Error("compiled twice")
	}
	bad := New(`(`) // a bad pattern is harmless until used
	defer func() {
		if recover() == nil {
			t.Error("bad pattern did not panic on use")
		}
	}()
	bad()
}
