package hostsconfig

import (
	"strings"
	"testing"
)

func TestAllowlist(t *testing.T) {
	a, err := ParseAllowlist([]string{"harbor.corp", "reg.test.com:80", "*.pre.com", "*.lab:5000", "10.0.0.0/8", "fd00::/8", "192.168.1.5:5000", " ", "[2001:db8::1]:443"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		host string
		want bool
	}{
		{"harbor.corp", true},
		{"harbor.corp:5000", true},
		{"evil-harbor.corp", false},
		{"reg.test.com:80", true},
		{"reg.test.com", false},
		{"reg.test.com:8080", false},
		{"a.pre.com", true},
		{"a.b.pre.com:5000", true},
		{"pre.com", false},
		{"xpre.com", false},
		{"x.lab:5000", true},
		{"x.lab", false},
		{"10.1.2.3:5000", true},
		{"11.1.2.3:5000", false},
		{"[fd00::5]:5000", true},
		{"[2001:db8::1]:443", true},
		{"[2001:db8::1]", false},
		{"192.168.1.5:5000", true},
		{"192.168.1.5", false},
		{"10.1.2.3.nip.io", false},
		{"*.pre.com", false},
		{"not a host", false},
	}
	for _, tt := range tests {
		if got := a.Allows(tt.host); got != tt.want {
			t.Errorf("Allows(%q) = %v, want %v", tt.host, got, tt.want)
		}
	}
}

func TestAllowlistEmptyDeniesAll(t *testing.T) {
	for _, a := range []*Allowlist{nil, {}, must(ParseAllowlist(nil)), must(ParseAllowlist([]string{"", " "}))} {
		if a.Allows("harbor.corp") || a.Allows("127.0.0.1:5000") || a.Len() != 0 {
			t.Fatalf("empty allow-list %v allows", a)
		}
	}
}

func must(a *Allowlist, err error) *Allowlist {
	if err != nil {
		panic(err)
	}
	return a
}

func TestParseAllowlistErrors(t *testing.T) {
	for _, p := range []string{"*", "harbor*.corp", "10.0.0.0/33", "http://x", "*.10.0.0.1x/", "a b"} {
		_, err := ParseAllowlist([]string{"ok.corp", p})
		if err == nil || !strings.Contains(err.Error(), "--allowed-registries") || !strings.Contains(err.Error(), p) {
			t.Errorf("pattern %q: err = %v", p, err)
		}
	}
}
