package redact

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
)

const topSecret = "s3cr3t-Value-42"

func TestSecretNeverPrints(t *testing.T) {
	s := Secret(topSecret)
	type holder struct {
		User string
		Pass Secret
	}
	h := holder{User: "alice", Pass: s}
	js, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	txt, _ := s.MarshalText()
	outputs := map[string]string{
		"%s":   fmt.Sprintf("%s", s),
		"%v":   fmt.Sprintf("%v", s),
		"%+v":  fmt.Sprintf("%+v", h),
		"%#v":  fmt.Sprintf("%#v", h),
		"%q":   fmt.Sprintf("%q", s),
		"%x":   fmt.Sprintf("%x", s),
		"%d":   fmt.Sprintf("%d", s),
		"json": string(js),
		"text": string(txt),
		"str":  s.String(),
	}
	for name, out := range outputs {
		if strings.Contains(out, topSecret) || strings.Contains(out, fmt.Sprintf("%x", topSecret)) {
			t.Errorf("%s leaked the secret: %s", name, out)
		}
		if !strings.Contains(out, Placeholder) {
			t.Errorf("%s = %q, want the placeholder", name, out)
		}
	}
	if s.Reveal() != topSecret {
		t.Errorf("Reveal() = %q", s.Reveal())
	}
	if Secret("").String() != "" || !Secret("").IsZero() {
		t.Error("an empty secret should print empty")
	}

	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("login", "password", s, "holder", h)
	if strings.Contains(buf.String(), topSecret) {
		t.Errorf("slog leaked the secret: %s", buf.String())
	}
}

func TestURL(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"https://registry.example.com/v2/", "https://registry.example.com/v2/"},
		{"https://alice:" + topSecret + "@registry.example.com/v2/", "https://alice:[redacted]@registry.example.com/v2/"},
		{"https://alice@registry.example.com/", "https://alice@registry.example.com/"},
		{"https://auth.example.com/token?scope=repository%3Aa%3Apull&service=reg&token=" + topSecret, "https://auth.example.com/token?scope=repository%3Aa%3Apull&service=reg&token=[redacted]"},
		{"http://sts.local/?AccessKeyId=LTAI&Signature=" + topSecret + "&SecurityToken=" + topSecret, "http://sts.local/?AccessKeyId=LTAI&SecurityToken=[redacted]&Signature=[redacted]"},
		{"https://x/?AccessKeySecret=" + topSecret + "&password=" + topSecret, "https://x/?AccessKeySecret=[redacted]&password=[redacted]"},
		{"://bad@" + topSecret, Placeholder},
		{"not a url", "not a url"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got := URL(tt.in)
			if got != tt.want {
				t.Errorf("URL(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if strings.Contains(got, topSecret) {
				t.Errorf("leaked: %s", got)
			}
		})
	}
}

func TestHeader(t *testing.T) {
	h := http.Header{
		"Authorization":        {"Bearer " + topSecret},
		"Proxy-Authorization":  {"Basic " + topSecret},
		"X-Acs-Security-Token": {topSecret},
		"Cookie":               {"session=" + topSecret},
		"Content-Type":         {"application/json"},
	}
	got := Header(h)
	if got.Get("Authorization") != "Bearer [redacted]" {
		t.Errorf("Authorization = %q", got.Get("Authorization"))
	}
	if got.Get("Proxy-Authorization") != "Basic [redacted]" {
		t.Errorf("Proxy-Authorization = %q", got.Get("Proxy-Authorization"))
	}
	if got.Get("Content-Type") != "application/json" {
		t.Errorf("Content-Type changed: %q", got.Get("Content-Type"))
	}
	if fmt.Sprint(got) == fmt.Sprint(h) || strings.Contains(fmt.Sprint(got), topSecret) {
		t.Errorf("leaked: %v", got)
	}
	if h.Get("Authorization") != "Bearer "+topSecret {
		t.Error("the input header was modified")
	}
	if AuthorizationValue(topSecret) != Placeholder || AuthorizationValue("") != "" {
		t.Error("AuthorizationValue without a scheme")
	}
}

func TestDockerConfigJSON(t *testing.T) {
	in := `{"auths":{"reg.example.com":{"username":"cr_temp_user","password":"` + topSecret + `","auth":"Y3I6` + topSecret + `","identitytoken":"` + topSecret + `"}},"credsStore":"x"}`
	got := string(DockerConfigJSON([]byte(in)))
	if strings.Contains(got, topSecret) {
		t.Fatalf("leaked: %s", got)
	}
	for _, want := range []string{"reg.example.com", "cr_temp_user", Placeholder} {
		if !strings.Contains(got, want) {
			t.Errorf("%s missing from %s", want, got)
		}
	}
	for _, bad := range []string{"", "[1,2]", "{not json " + topSecret, `"` + topSecret + `"`} {
		if got := string(DockerConfigJSON([]byte(bad))); got != Placeholder {
			t.Errorf("DockerConfigJSON(%q) = %q, want the placeholder", bad, got)
		}
	}
}

func TestText(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain message", "plain message"},
		{"GET https://u:" + topSecret + "@h/x failed", "GET https://u:[redacted]@h/x failed"},
		{"password=" + topSecret + " user=bob", "password=[redacted] user=bob"},
		{`{"AccessKeySecret":"` + topSecret + `","AccessKeyId":"STS.x"}`, `{"AccessKeySecret":"[redacted]","AccessKeyId":"STS.x"}`},
		{"Authorization: Bearer " + topSecret, "Authorization: Bearer [redacted]"},
		{"code: 404, not found", "code: 404, not found"},
	}
	for _, tt := range tests {
		if got := Text(tt.in); got != tt.want {
			t.Errorf("Text(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestErrorAndStrings(t *testing.T) {
	base := errors.New("refresh failed: body {\"x\":\"" + topSecret + "\"}")
	err := Error(fmt.Errorf("assume role: %w", base), topSecret, "ab")
	if strings.Contains(err.Error(), topSecret) {
		t.Errorf("leaked: %v", err)
	}
	if !errors.Is(err, base) {
		t.Error("errors.Is lost the wrapped error")
	}
	if Error(nil, topSecret) != nil {
		t.Error("Error(nil) != nil")
	}
	plain := errors.New("nothing to hide")
	if Error(plain, topSecret) != plain {
		t.Error("an error without secrets should be returned as is")
	}
	if got := Strings("ab ab", "ab"); got != "ab ab" {
		t.Errorf("short secrets must not be replaced: %q", got)
	}
}

func TestHandler(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(NewHandler(slog.NewJSONHandler(&buf, nil), WithSecrets("LTAIsecretvalue99")))
	log = log.With("accessKeySecret", "LTAIsecretvalue99", "component", "test")
	log.WithGroup("req").Info("calling https://u:"+topSecret+"@host/x",
		"password", topSecret,
		"Authorization", "Bearer "+topSecret,
		"url", "https://h/?token="+topSecret,
		"err", errors.New("failed with LTAIsecretvalue99"),
		"body", []byte(`password=`+topSecret),
		slog.Group("g", "securityToken", topSecret, "ok", "visible"),
		"tokenMode", "workerRole",
		"empty_password", "",
	)
	out := buf.String()
	for _, leak := range []string{topSecret, "LTAIsecretvalue99"} {
		if strings.Contains(out, leak) {
			t.Fatalf("handler leaked %q: %s", leak, out)
		}
	}
	for _, want := range []string{`"ok":"visible"`, `"component":"test"`, `"tokenMode":"workerRole"`} {
		if !strings.Contains(out, want) {
			t.Errorf("%s missing from %s", want, out)
		}
	}
	if !log.Enabled(t.Context(), slog.LevelInfo) {
		t.Error("Enabled should follow the wrapped handler")
	}
}

func TestIsSensitiveName(t *testing.T) {
	for name, want := range map[string]bool{
		"password": true, "Access-Key-Secret": true, "access_key_secret": true, "X-Acs-Security-Token": true,
		".dockerconfigjson": true, "customAccessKeySecret": true, "username": false, "tokenMode": false,
		"expiry": false, "AccessKeyId": false, "secret": false, "client_secret": true,
	} {
		if got := IsSensitiveName(name); got != want {
			t.Errorf("IsSensitiveName(%q) = %v, want %v", name, got, want)
		}
	}
}

// TestNameFragmentsCoverSensitiveNames keeps the fast path of Text honest: every sensitive name
// contains one of the fragments.
func TestNameFragmentsCoverSensitiveNames(t *testing.T) {
	for name := range sensitiveNames {
		if !mayNameSecret(name) {
			t.Errorf("sensitive name %q has none of %v", name, nameFragments)
		}
	}
	if mayNameSecret("Finish task: 127.0.0.1:5201/library/app00:v0 -> 127.0.0.1:5202/library/app00:v0") {
		t.Error("an ordinary log line takes the slow path")
	}
}
