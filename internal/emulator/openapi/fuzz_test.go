package openapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ferrypull/ferry/internal/emulator/ram"
	"github.com/ferrypull/ferry/internal/emulator/world"
)

// FuzzServeHTTP feeds arbitrary STS/CR requests (query, form body, auth header) to the handler:
// it must never panic, and every answer must be JSON; an unsigned request may only ever
// reach AssumeRoleWithOIDC.
func FuzzServeHTTP(f *testing.F) {
	w, err := world.Default(world.DefaultOptions{})
	if err != nil {
		f.Fatal(err)
	}
	h := New(ram.New(w))
	f.Add("POST", "/", "Action=AssumeRoleWithOIDC&Version=2015-04-01&Timestamp=2024-01-01T00%3A00%3A00Z", "RoleArn=acs%3Aram%3A%3A1%3Arole%2Fx&OIDCToken=a.b.c&OIDCProviderArn=x&RoleSessionName=ab", "", "")
	f.Add("POST", "/", "AccessKeyId=LTAI5tFerryAPuller01&SignatureMethod=HMAC-SHA1&Signature=x&SignatureNonce=1&Timestamp=2024-01-01T00:00:00Z&Action=AssumeRole", "", "", "")
	f.Add("GET", "/tokens", "", "", "acs LTAI5tFerryAPuller01:abc", "GetAuthorizationToken")
	f.Add("POST", "/", "InstanceId=cri-x", "", "ACS3-HMAC-SHA256 Credential=LTAI5tFerryAPuller01,SignedHeaders=host;x-acs-date;x-acs-signature-nonce,Signature=00", "GetAuthorizationToken")
	f.Fuzz(func(t *testing.T, method, path, query, form, auth, action string) {
		if !validMethod(method) || !strings.HasPrefix(path, "/") || strings.ContainsAny(path+query, " \r\n#") {
			return
		}
		r, err := http.NewRequestWithContext(t.Context(), method, "http://127.0.0.1"+path+"?"+query, strings.NewReader(form))
		if err != nil {
			return
		}
		r.RemoteAddr = "127.0.0.1:1234"
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header.Set("Authorization", auth)
		r.Header.Set("x-acs-action", action)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		var body map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatalf("non-JSON answer %d: %q", rec.Code, rec.Body.String())
		}
		if rec.Code == http.StatusOK && auth == "" && !strings.Contains(query, "Signature") {
			if _, ok := body["OIDCTokenInfo"]; !ok {
				t.Fatalf("unsigned request succeeded: %s", rec.Body.String())
			}
		}
	})
}

func validMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodPost || m == http.MethodPut
}
