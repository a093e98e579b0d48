package world

import (
	"strings"
	"testing"
)

// TestRAMNameValidation: user, role and OIDC provider names must match the RAM
// name pattern and be unique in their account (role names case-insensitively).
func TestRAMNameValidation(t *testing.T) {
	prov := func(name string) *OIDCProvider {
		return &OIDCProvider{Name: name, IssuerURL: "https://issuer.example", ClientIDs: []string{"sts.aliyuncs.com"}, JWKS: []byte(`{"keys":[]}`)}
	}
	tests := []struct {
		name    string
		account Account
		want    string // substring of the error; "" = no name error
	}{
		{name: "distinct names", account: Account{Users: []*User{{Name: "a"}, {Name: "b"}}, Roles: []*Role{{Name: "r"}, {Name: "s"}}, OIDCProviders: []*OIDCProvider{prov("p"), prov("q")}}},
		{name: "duplicate user", account: Account{Users: []*User{{Name: "a"}, {Name: "a"}}}, want: "accounts[0].users[1].name: a is a duplicate"},
		{name: "users differing in case are distinct", account: Account{Users: []*User{{Name: "a"}, {Name: "A"}}}},
		{name: "roles differing in case collide", account: Account{Roles: []*Role{{Name: "Pull"}, {Name: "pull"}}}, want: "accounts[0].roles[1].name: pull is a duplicate"},
		{name: "duplicate provider", account: Account{OIDCProviders: []*OIDCProvider{prov("p"), prov("p")}}, want: "accounts[0].oidcProviders[1].name: p is a duplicate"},
		{name: "bad user name", account: Account{Users: []*User{{Name: "a b"}}}, want: "accounts[0].users[0].name: a b must be 1-64 letters"},
		{name: "bad role name", account: Account{Roles: []*Role{{Name: ""}}}, want: "accounts[0].roles[0].name: must be 1-64 letters"},
		{name: "bad provider name", account: Account{OIDCProviders: []*OIDCProvider{prov("x/y")}}, want: "accounts[0].oidcProviders[0].name: x/y must be 1-64 letters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := tt.account
			a.Name, a.UID = "a", "1234567890123456"
			err := (&World{Accounts: []*Account{&a}}).validate().Error()
			if tt.want == "" {
				if strings.Contains(err, ".name:") {
					t.Fatalf("unexpected name error: %s", err)
				}
				return
			}
			if !strings.Contains(err, tt.want) {
				t.Fatalf("errors %q, want one containing %q", err, tt.want)
			}
		})
	}
}
