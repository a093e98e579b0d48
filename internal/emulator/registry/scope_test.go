package registry

import (
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
)

func TestParseScope(t *testing.T) {
	tests := []struct {
		in      string
		want    Scope
		wantErr string
	}{
		{in: "repository:ns/app:pull", want: Scope{Type: "repository", Name: "ns/app", Actions: []string{"pull"}}},
		{in: "repository:ns/app:pull,push", want: Scope{Type: "repository", Name: "ns/app", Actions: []string{"pull", "push"}}},
		{in: "repository(plugin):ns/app:pull", want: Scope{Type: "repository", Name: "ns/app", Actions: []string{"pull"}}},
		{in: "registry:catalog:*", want: Scope{Type: "registry", Name: "catalog", Actions: []string{"*"}}},
		{in: "repository:host:5000/ns/app:pull", want: Scope{Type: "repository", Name: "host:5000/ns/app", Actions: []string{"pull"}}},
		{in: "repository:ns/app:", wantErr: "no actions"},
		{in: "repository:ns/app", wantErr: "type:name:actions"},
		{in: "repository", wantErr: "type:name:actions"},
		{in: "Repo:ns/app:pull", wantErr: "bad resource type"},
		{in: "repository::pull", wantErr: "empty resource name"},
		{in: "repository:ns/app:pu ll", wantErr: "bad action"},
		{in: "repository:" + strings.Repeat("a", 600) + ":pull", wantErr: "too long"},
	}
	for _, tt := range tests {
		t.Run(tt.in[:min(len(tt.in), 40)], func(t *testing.T) {
			got, err := ParseScope(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseScope(%q) error = %v, want it to contain %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseScope(%q): %v", tt.in, err)
			}
			if got.Type != tt.want.Type || got.Name != tt.want.Name || !slices.Equal(got.Actions, tt.want.Actions) {
				t.Errorf("ParseScope(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestSplitRepository(t *testing.T) {
	tests := []struct {
		in       string
		ns, repo string
		ok       bool
	}{
		{"ns/app", "ns", "app", true},
		{"image-syncer/nginx", "image-syncer", "nginx", true},
		{"a.b/c__d", "a.b", "c__d", true},
		{"app", "", "", false},
		{"a/b/c", "", "", false},
		{"NS/app", "", "", false},
		{"-ns/app", "", "", false},
		{"ns/", "", "", false},
	}
	for _, tt := range tests {
		ns, repo, ok := splitRepository(tt.in)
		if ns != tt.ns || repo != tt.repo || ok != tt.ok {
			t.Errorf("splitRepository(%q) = %q, %q, %v; want %q, %q, %v", tt.in, ns, repo, ok, tt.ns, tt.repo, tt.ok)
		}
	}
}

func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

func TestParseBasicAuth(t *testing.T) {
	tests := []struct {
		name       string
		header     string
		user, pass string
		ok         bool
		wantErr    bool
	}{
		{name: "absent"},
		{name: "valid", header: basic("cr_temp_user", "tok:en"), user: "cr_temp_user", pass: "tok:en", ok: true},
		{name: "lower-case scheme", header: "basic " + base64.StdEncoding.EncodeToString([]byte("u:p")), user: "u", pass: "p", ok: true},
		{name: "bearer", header: "Bearer abc", wantErr: true},
		{name: "bad base64", header: "Basic %%%", wantErr: true},
		{name: "no colon", header: "Basic " + base64.StdEncoding.EncodeToString([]byte("user")), wantErr: true},
		{name: "empty user", header: basic("", "p"), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, p, ok, err := ParseBasicAuth(tt.header)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "tok:en") {
				t.Fatalf("error leaks the password: %v", err)
			}
			if u != tt.user || p != tt.pass || ok != tt.ok {
				t.Errorf("got %q, %q, %v; want %q, %q, %v", u, p, ok, tt.user, tt.pass, tt.ok)
			}
		})
	}
}

func TestParseTokenRequest(t *testing.T) {
	svc := "registry.aliyuncs.com:cn-hangzhou:china:cri-x"
	get := func(q url.Values, auth string) *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/auth?"+q.Encode(), nil)
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		return r
	}
	post := func(form url.Values) *http.Request {
		r := httptest.NewRequest(http.MethodPost, "/auth", strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
		return r
	}
	tests := []struct {
		name       string
		req        *http.Request
		wantScopes []string
		wantUser   string
		wantCreds  bool
		wantField  string
	}{
		{name: "GET anonymous", req: get(url.Values{"service": {svc}, "scope": {"repository:ns/a:pull"}}, ""),
			wantScopes: []string{"repository:ns/a:pull"}},
		{name: "GET basic two scopes", req: get(url.Values{"service": {svc}, "scope": {"repository:ns/a:pull,push", "repository:ns/b:pull"}}, basic("u", "p")),
			wantScopes: []string{"repository:ns/a:pull,push", "repository:ns/b:pull"}, wantUser: "u", wantCreds: true},
		{name: "GET no service", req: get(url.Values{"scope": {"repository:ns/a:pull"}}, ""), wantField: "service"},
		{name: "GET bad scope", req: get(url.Values{"service": {svc}, "scope": {"repository:ns/a"}}, ""), wantField: "scope"},
		{name: "GET bad auth", req: get(url.Values{"service": {svc}}, "Digest x"), wantField: "Authorization"},
		{name: "POST password", req: post(url.Values{"grant_type": {"password"}, "username": {"u"}, "password": {"p"}, "service": {svc}, "scope": {"repository:ns/a:pull repository:ns/b:push"}}),
			wantScopes: []string{"repository:ns/a:pull", "repository:ns/b:push"}, wantUser: "u", wantCreds: true},
		{name: "POST refresh", req: post(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"r"}, "service": {svc}})},
		{name: "POST bad grant", req: post(url.Values{"grant_type": {"client_credentials"}, "service": {svc}}), wantField: "grant_type"},
		{name: "POST no username", req: post(url.Values{"grant_type": {"password"}, "service": {svc}}), wantField: "username"},
		{name: "POST json", req: func() *http.Request {
			r := post(url.Values{})
			r.Header.Set("Content-Type", "application/json")
			return r
		}(), wantField: "Content-Type"},
		{name: "PUT", req: httptest.NewRequest(http.MethodPut, "/auth", nil), wantField: "method"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, err := ParseTokenRequest(tt.req)
			if tt.wantField != "" {
				te, ok := err.(*TokenRequestError)
				if !ok || te.Field != tt.wantField {
					t.Fatalf("err = %v, want TokenRequestError on field %q", err, tt.wantField)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseTokenRequest: %v", err)
			}
			var got []string
			for _, s := range tr.Scopes {
				got = append(got, s.String())
			}
			if !slices.Equal(got, tt.wantScopes) || tr.Username != tt.wantUser || tr.HasCredentials != tt.wantCreds || tr.Service != svc {
				t.Errorf("got scopes %v user %q creds %v service %q", got, tr.Username, tr.HasCredentials, tr.Service)
			}
		})
	}
}

func FuzzParseScope(f *testing.F) {
	for _, s := range []string{"repository:ns/app:pull,push", "registry:catalog:*", "repository(plugin):a/b:pull", "a:b:c:d", ":::"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sc, err := ParseScope(s)
		if err != nil {
			return
		}
		again, err := ParseScope(sc.String())
		if err != nil {
			t.Fatalf("re-parse of %q (from %q): %v", sc.String(), s, err)
		}
		if again.Type != sc.Type || again.Name != sc.Name || !slices.Equal(again.Actions, sc.Actions) {
			t.Fatalf("round trip changed %+v into %+v", sc, again)
		}
	})
}

func FuzzParseBasicAuth(f *testing.F) {
	f.Add(basic("u", "p"))
	f.Add("Basic ")
	f.Add("basic Og==")
	f.Add("Bearer x")
	f.Fuzz(func(t *testing.T, h string) {
		u, p, ok, err := ParseBasicAuth(h)
		if err != nil && ok {
			t.Fatal("ok with an error")
		}
		if ok {
			if u == "" {
				t.Fatal("ok with an empty user")
			}
			u2, p2, ok2, err := ParseBasicAuth(basic(u, p))
			if err != nil || !ok2 || u2 != u || p2 != p {
				t.Fatalf("round trip of %q: %q %q %v %v", h, u2, p2, ok2, err)
			}
		}
	})
}

func FuzzParseTokenRequestForm(f *testing.F) {
	f.Add("grant_type=password&username=u&password=p&service=s&scope=repository%3Ans%2Fa%3Apull")
	f.Add("grant_type=refresh_token&refresh_token=x&service=s")
	f.Add("service=s&scope=%%%")
	f.Fuzz(func(t *testing.T, body string) {
		r := httptest.NewRequest(http.MethodPost, "/auth", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		tr, err := ParseTokenRequest(r)
		if err != nil {
			if _, ok := err.(*TokenRequestError); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		if tr.Service == "" || len(tr.Scopes) > maxScopes {
			t.Fatalf("accepted request with service %q and %d scopes", tr.Service, len(tr.Scopes))
		}
		if tr.GrantType == "password" && (!tr.HasCredentials || tr.Username == "") {
			t.Fatal("password grant without credentials")
		}
	})
}

func FuzzParseTokenRequestQuery(f *testing.F) {
	f.Add("service=s&scope=repository:ns/a:pull&scope=registry:catalog:*", "")
	f.Add("service=s", basic("a", "b"))
	f.Fuzz(func(t *testing.T, query, auth string) {
		r, err := http.NewRequest(http.MethodGet, "http://h/auth", nil)
		if err != nil {
			t.Skip()
		}
		r.URL.RawQuery = query
		r.Header.Set("Authorization", auth)
		tr, err := ParseTokenRequest(r)
		if err != nil {
			if _, ok := err.(*TokenRequestError); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		for _, sc := range tr.Scopes {
			if sc.Type == "" || sc.Name == "" || len(sc.Actions) == 0 {
				t.Fatalf("accepted an incomplete scope %+v", sc)
			}
		}
	})
}
