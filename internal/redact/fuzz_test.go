package redact

import (
	"strings"
	"testing"
)

// FuzzRedact checks that no redaction function panics and that a secret placed in a
// credential position never survives.
func FuzzRedact(f *testing.F) {
	f.Add("https://user:pass@host/path?token=abc", "hunter2hunter2")
	f.Add(`{"auths":{"h":{"auth":"eDp5","password":"p"}}}`, "topsecretvalue")
	f.Add("Authorization: Bearer abc", "abcdabcd")
	f.Add("%zz://@", "xxxx")
	f.Fuzz(func(t *testing.T, in, secret string) {
		_ = URL(in)
		_ = Text(in)
		_ = DockerConfigJSON([]byte(in))
		_ = AuthorizationValue(in)
		if len(secret) < 4 || strings.Contains(Placeholder, secret) || strings.TrimFunc(secret, isTokenRune) != "" {
			return
		}
		for _, probe := range []string{
			"https://u:" + secret + "@h.example/x",
			"https://h.example/?token=" + secret,
			"password=" + secret,
		} {
			if got := URL(probe); strings.Contains(got, secret) && strings.HasPrefix(probe, "https") {
				t.Fatalf("URL(%q) = %q leaks", probe, got)
			}
			if got := Text(probe); strings.Contains(got, secret) {
				t.Fatalf("Text(%q) = %q leaks", probe, got)
			}
		}
		if got := Strings(in+secret+in, secret); strings.Contains(got, secret) && !strings.Contains(in, secret) {
			t.Fatalf("Strings leaks: %q", got)
		}
	})
}

// isTokenRune accepts the characters real secrets are made of (base64, hex, AK secrets).
func isTokenRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '+'
}
