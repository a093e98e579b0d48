package dockercfg

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const pass = "tok-9f8e7d6c5b4a"

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestNormalizeKey(t *testing.T) {
	tests := []struct{ in, want string }{
		{"reg.example.com", "reg.example.com"},
		{"https://reg.example.com/", "reg.example.com"},
		{"http://Reg.Example.COM", "reg.example.com"},
		{"HTTPS://reg.example.com:5000//", "reg.example.com:5000"},
		{"reg.example.com/v2/", "reg.example.com/v2"},
		{"https://index.docker.io/v1/", DockerHubKey},
		{"https://index.docker.io/v1", DockerHubKey},
		{"  myinst-registry.cn-hangzhou.cr.aliyuncs.com  ", "myinst-registry.cn-hangzhou.cr.aliyuncs.com"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := NormalizeKey(tt.in); got != tt.want {
			t.Errorf("NormalizeKey(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    map[string]Entry
		wantErr string
	}{
		{
			name: "auth only",
			in:   `{"auths":{"https://reg.example.com/":{"auth":"` + b64("cr_temp_user:"+pass) + `"}}}`,
			want: map[string]Entry{"reg.example.com": {Username: "cr_temp_user", Password: pass}},
		},
		{
			name: "username and password only",
			in:   `{"auths":{"reg.example.com":{"username":"u","password":"` + pass + `"}}}`,
			want: map[string]Entry{"reg.example.com": {Username: "u", Password: pass}},
		},
		{
			name: "password containing colons",
			in:   `{"auths":{"h":{"auth":"` + b64("u:a:b:c") + `"}}}`,
			want: map[string]Entry{"h": {Username: "u", Password: "a:b:c"}},
		},
		{
			name: "unpadded base64",
			in:   `{"auths":{"h":{"auth":"` + strings.TrimRight(b64("ab:c"), "=") + `"}}}`,
			want: map[string]Entry{"h": {Username: "ab", Password: "c"}},
		},
		{
			name: "legacy dockercfg",
			in:   `{"reg.example.com":{"auth":"` + b64("u:"+pass) + `","email":"a@b"}}`,
			want: map[string]Entry{"reg.example.com": {Username: "u", Password: pass, Email: "a@b"}},
		},
		{
			name: "docker hub key kept",
			in:   `{"auths":{"https://index.docker.io/v1/":{"auth":"` + b64("u:p") + `"}}}`,
			want: map[string]Entry{DockerHubKey: {Username: "u", Password: "p"}},
		},
		{
			name: "identity token",
			in:   `{"auths":{"h":{"identitytoken":"` + pass + `"}}}`,
			want: map[string]Entry{"h": {IdentityToken: pass}},
		},
		{name: "empty auths", in: `{"auths":{}}`, want: map[string]Entry{}},
		{name: "not json", in: `{"auths":` + pass, wantErr: "JSON syntax error"},
		{name: "array", in: `[]`, wantErr: "expected"},
		{name: "null", in: `null`, wantErr: "not a JSON object"},
		{name: "auths wrong type", in: `{"auths":[1]}`, wantErr: "auths"},
		{name: "bad base64", in: `{"auths":{"h":{"auth":"!!!` + pass + `"}}}`, wantErr: "not valid base64"},
		{name: "no colon", in: `{"auths":{"h":{"auth":"` + b64(pass) + `"}}}`, wantErr: "no ':'"},
		{name: "password disagrees", in: `{"auths":{"h":{"auth":"` + b64("u:"+pass) + `","password":"other-secret"}}}`, wantErr: "password disagrees"},
		{name: "username disagrees", in: `{"auths":{"h":{"auth":"` + b64("u:"+pass) + `","username":"v"}}}`, wantErr: `username "v" disagrees`},
		{name: "conflicting duplicate keys", in: `{"auths":{"h":{"auth":"` + b64("u:"+pass) + `"},"https://h/":{"auth":"` + b64("u:other") + `"}}}`, wantErr: "different credentials"},
		{name: "colon in username", in: `{"auths":{"h":{"username":"a:b","password":"c"}}}`, wantErr: "contains ':'"},
		{name: "invalid utf-8 in auth", in: `{"auths":{"h":{"auth":"0zo="}}}`, wantErr: "UTF-8"},
		{name: "empty key", in: `{"auths":{"https://":{"auth":"` + b64("u:p") + `"}}}`, wantErr: "empty registry key"},
		{name: "too large", in: `{"auths":{"h":{"email":"` + strings.Repeat("x", MaxSize) + `"}}}`, wantErr: "exceeds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("Parse() = %v, want error containing %q", got, tt.wantErr)
				}
				if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Parse() error = %v, want ErrInvalid containing %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), pass) {
					t.Fatalf("error leaks the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse() error = %v", err)
			}
			if !Equal(got, &Config{Auths: tt.want}) {
				t.Fatalf("Parse() = %+v, want %+v", got.Auths, tt.want)
			}
		})
	}
}

func TestRenderDeterministicAndGolden(t *testing.T) {
	c := New()
	c.Set("cr_temp_user", pass, "b-registry-vpc.cn-hangzhou.cr.aliyuncs.com", "https://a-registry.cn-hangzhou.cr.aliyuncs.com/")
	c.Set("other", "p<&>", "127.0.0.1:5000")
	first := c.Render()
	for i := range 20 {
		if again := Merge(nil, c).Render(); !bytes.Equal(first, again) {
			t.Fatalf("render %d differs:\n%s\n%s", i, first, again)
		}
	}
	golden := filepath.Join("testdata", "render.golden")
	if os.Getenv("UPDATE_GOLDEN") == "true" {
		if err := os.WriteFile(golden, append(first, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with UPDATE_GOLDEN=true to create it)", err)
	}
	if !bytes.Equal(append(first, '\n'), want) {
		t.Fatalf("render differs from %s:\n got %s\nwant %s", golden, first, want)
	}
	back, err := Parse(first)
	if err != nil {
		t.Fatal(err)
	}
	if !Equal(back, c) {
		t.Fatalf("round trip lost data: %v vs %v", back.Auths, c.Auths)
	}
	if New().Render() == nil || string((*Config)(nil).Render()) != `{"auths":{}}` {
		t.Errorf("empty render = %s", (*Config)(nil).Render())
	}
}

func TestMergeAndEqual(t *testing.T) {
	user := New()
	user.Set("me", "mine", "docker.io", "quay.io")
	ferry := New()
	ferry.Set("cr_temp_user", pass, "quay.io", "reg.cn-hangzhou.cr.aliyuncs.com")

	m := Merge(user, ferry)
	if got := strings.Join(m.Hosts(), ","); got != "docker.io,quay.io,reg.cn-hangzhou.cr.aliyuncs.com" {
		t.Fatalf("hosts = %s", got)
	}
	if e, _ := m.Lookup("https://quay.io/"); e.Username != "cr_temp_user" {
		t.Errorf("overlay should win on quay.io, got %v", e)
	}
	if e, _ := user.Lookup("quay.io"); e.Username != "me" {
		t.Error("Merge modified its input")
	}
	if _, ok := (*Config)(nil).Lookup("x"); ok {
		t.Error("nil lookup")
	}

	tests := []struct {
		name string
		a, b *Config
		want bool
	}{
		{"nil and empty", nil, New(), true},
		{"same", user, Merge(user, nil), true},
		{"different password", ferry, func() *Config { c := Merge(ferry, nil); c.Set("cr_temp_user", "x", "quay.io"); return c }(), false},
		{"extra key", user, m, false},
		{"nil and non-empty", nil, user, false},
	}
	for _, tt := range tests {
		if got := Equal(tt.a, tt.b); got != tt.want {
			t.Errorf("%s: Equal = %v, want %v", tt.name, got, tt.want)
		}
	}
	// Bytes that differ only in key spelling and field form are equal.
	a := `{"auths":{"https://h/":{"auth":"` + b64("u:"+pass) + `"}}}`
	b := `{"auths":{"h":{"username":"u","password":"` + pass + `"}}}`
	if !EqualBytes([]byte(a), []byte(b)) {
		t.Error("EqualBytes should ignore spelling")
	}
	if EqualBytes([]byte("x"), []byte("x")) {
		t.Error("unparseable payloads are never equal")
	}
}

func TestNoPasswordInStrings(t *testing.T) {
	c := New()
	c.Set("u", pass, "h")
	e, _ := c.Lookup("h")
	for _, s := range []string{c.String(), e.String(), fmt.Sprintf("%v %+v %#v", c, e, e)} {
		if strings.Contains(s, pass) {
			t.Fatalf("leak: %s", s)
		}
	}
}
