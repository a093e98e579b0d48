package testjwt

import (
	"encoding/json"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

func TestSignVerifiesAgainstJWKS(t *testing.T) {
	rk, ek := RSA(t, "rsa-1"), EC(t, "ec-1")
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(JWKS(t, rk, ek), &set); err != nil {
		t.Fatal(err)
	}
	other := RSA(t, "rsa-1")
	tests := []struct {
		name    string
		key     Key
		wantKID string
		verify  bool
	}{
		{"rsa", rk, "rsa-1", true},
		{"ec", ek, "ec-1", true},
		{"key not in the set", other, "rsa-1", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := tt.key.Sign(t, map[string]any{"sub": "x", "aud": []string{"sts.aliyuncs.com"}})
			jws, err := jose.ParseSignedCompact(tok, []jose.SignatureAlgorithm{jose.RS256, jose.ES256})
			if err != nil {
				t.Fatal(err)
			}
			h := jws.Signatures[0].Protected
			if h.KeyID != tt.wantKID || h.ExtraHeaders["typ"] != "JWT" || h.Algorithm != string(tt.key.Alg) {
				t.Fatalf("header %+v", h)
			}
			keys := set.Key(h.KeyID)
			if len(keys) != 1 {
				t.Fatalf("%d keys for kid %s", len(keys), h.KeyID)
			}
			payload, err := jws.Verify(keys[0].Key)
			if (err == nil) != tt.verify {
				t.Fatalf("Verify err = %v, want success %v", err, tt.verify)
			}
			if tt.verify {
				var c map[string]any
				if err := json.Unmarshal(payload, &c); err != nil || c["sub"] != "x" {
					t.Fatalf("payload %s %v", payload, err)
				}
			}
		})
	}
}
