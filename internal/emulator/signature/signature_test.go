package signature

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

const (
	vecID     = "testid"
	vecSecret = "testsecret"
)

// newRequest is httptest.NewRequest with the headers in hdr set.
func newRequest(method, target string, hdr map[string]string) *http.Request {
	r := httptest.NewRequest(method, target, nil)
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	return r
}

// acs3Vector builds the §7.6 ACS3 request as the server receives it.
func acs3Vector() *http.Request {
	q := url.Values{"InstanceId": {"cri-abc123"}, "InstanceName": {"my inst*~"}}
	r := newRequest(http.MethodPost, "http://cr.cn-hangzhou.aliyuncs.com/?"+q.Encode(), map[string]string{
		"x-acs-action":          "GetAuthorizationToken",
		"x-acs-version":         "2018-12-01",
		"x-acs-date":            "2024-01-01T00:00:00Z",
		"x-acs-signature-nonce": "3156853299f313e23d1673dc12e1703d",
		"x-acs-content-sha256":  "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		"Accept":                "application/json",
		"User-Agent":            "AlibabaCloud (linux; amd64) Golang/go1.26 Core/0.01 TeaDSL/2",
		"Authorization":         "ACS3-HMAC-SHA256 Credential=testid,SignedHeaders=host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version,Signature=dd2bd3bb5f45e7ef88bd1e34f644fdbe13faca00ad29ed163b529d3cca864fe8",
	})
	r.Host = "cr.cn-hangzhou.aliyuncs.com"
	return r
}

// rpcVector builds the RPC vector request (all parameters in the query)
// after edit has changed its parameters.
func rpcVector(edit func(url.Values)) *http.Request {
	p := rpcVectorParams()
	edit(p)
	return httptest.NewRequest(http.MethodPost, "/?"+p.Encode(), nil)
}

func TestACS3Vector(t *testing.T) {
	r := acs3Vector()
	if got := canonicalQuery(mustQuery(t, r.URL.RawQuery), ""); got != "InstanceId=cri-abc123&InstanceName=my%20inst%2A~" {
		t.Errorf("canonical query = %s", got)
	}
	q, err := Parse(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	if q.Scheme != ACS3 || q.AccessKeyID != vecID || q.Action != "GetAuthorizationToken" || q.Version != "2018-12-01" || q.Param("InstanceName") != "my inst*~" {
		t.Fatalf("parsed %+v", q)
	}
	if want := "ACS3-HMAC-SHA256\n011967112f17d43723b8f0001bd34074c21f960eb8f23849ddbb4964867c2088"; q.StringToSign() != want {
		t.Errorf("string to sign = %q, want %q", q.StringToSign(), want)
	}
	if err := q.Verify(vecSecret); err != nil {
		t.Errorf("Verify: %v", err)
	}
	if err := q.Verify("other"); !errors.Is(err, ErrMismatch) || !strings.Contains(err.Error(), "server string to sign is:ACS3-HMAC-SHA256\n0119") {
		t.Errorf("Verify(wrong secret) = %v", err)
	}
}

func mustQuery(t *testing.T, s string) url.Values {
	t.Helper()
	v, err := url.ParseQuery(s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func rpcVectorParams() url.Values {
	return url.Values{
		"AccessKeyId": {"testid"}, "Action": {"AssumeRole"}, "Format": {"JSON"}, "Version": {"2015-04-01"},
		"SignatureMethod": {"HMAC-SHA1"}, "SignatureVersion": {"1.0"}, "SignatureNonce": {"3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf"},
		"Timestamp": {"2024-01-01T00:00:00Z"}, "RoleArn": {"acs:ram::1234567890123456:role/acr-pull"}, "RoleSessionName": {"my session*~"},
		"Signature": {"i1Kz608PRY3H9+x1RBH9mgKGUcE="},
	}
}

const rpcVectorSTS = "POST&%2F&AccessKeyId%3Dtestid%26Action%3DAssumeRole%26Format%3DJSON%26RoleArn%3Dacs%253Aram%253A%253A1234567890123456%253Arole%252Facr-pull%26RoleSessionName%3Dmy%2520session%252A~%26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3D3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf%26SignatureVersion%3D1.0%26Timestamp%3D2024-01-01T00%253A00%253A00Z%26Version%3D2015-04-01"

func TestRPCVector(t *testing.T) {
	all := rpcVectorParams()
	// The same signature must verify whether business parameters travel in the query or in a
	// form body (credentials-go ram_role_arn).
	query := url.Values{}
	form := url.Values{}
	for k, v := range all {
		if k == "RoleArn" || k == "RoleSessionName" {
			form[k] = v
		} else {
			query[k] = v
		}
	}
	for _, tc := range []struct {
		name        string
		query, body string
	}{
		{"query only", all.Encode(), ""},
		{"query and form", query.Encode(), form.Encode()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/?"+tc.query, strings.NewReader(tc.body))
			if tc.body != "" {
				r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			q, err := Parse(r, []byte(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if q.Scheme != RPC || q.Action != "AssumeRole" || q.Param("RoleSessionName") != "my session*~" || q.Params.Has("Signature") {
				t.Fatalf("parsed %+v", q)
			}
			if q.StringToSign() != rpcVectorSTS {
				t.Errorf("string to sign\n got %s\nwant %s", q.StringToSign(), rpcVectorSTS)
			}
			if err := q.Verify(vecSecret); err != nil {
				t.Errorf("Verify: %v", err)
			}
			if err := q.Verify(vecSecret + "x"); !errors.Is(err, ErrMismatch) || !strings.HasSuffix(err.Error(), "server string to sign is:"+rpcVectorSTS) {
				t.Errorf("Verify(wrong) = %v", err)
			}
		})
	}
}

func TestROAVector(t *testing.T) {
	r := newRequest(http.MethodGet, "http://cr.cn-hangzhou.aliyuncs.com/tokens", map[string]string{
		"Accept":                  "application/json",
		"Date":                    "Mon, 01 Jan 2024 00:00:00 GMT",
		"x-acs-action":            "GetAuthorizationToken",
		"x-acs-signature-method":  "HMAC-SHA1",
		"x-acs-signature-nonce":   "nonce-1",
		"x-acs-signature-version": "1.0",
		"x-acs-version":           "2016-06-07",
		"Authorization":           "acs testid:uZR8b3taU4JuvaxkIEwX09PS9fc=",
	})
	q, err := Parse(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := "GET\napplication/json\n\n\nMon, 01 Jan 2024 00:00:00 GMT\nx-acs-action:GetAuthorizationToken\nx-acs-signature-method:HMAC-SHA1\nx-acs-signature-nonce:nonce-1\nx-acs-signature-version:1.0\nx-acs-version:2016-06-07\n/tokens"
	if q.StringToSign() != want {
		t.Errorf("string to sign = %q", q.StringToSign())
	}
	if q.Scheme != ROA || q.AccessKeyID != vecID || q.Action != "GetAuthorizationToken" {
		t.Fatalf("parsed %+v", q)
	}
	if err := q.Verify(vecSecret); err != nil {
		t.Errorf("Verify: %v", err)
	}
	if err := q.Verify("nope"); !errors.Is(err, ErrMismatch) {
		t.Errorf("Verify(wrong) = %v", err)
	}
}

func TestCanonicalResource(t *testing.T) {
	if got := canonicalResource("/tokens", url.Values{"b": {"x y"}, "a": {""}}); got != "/tokens?a&b=x y" {
		t.Errorf("canonicalResource = %q", got)
	}
}

func TestPercentEncode(t *testing.T) {
	for in, want := range map[string]string{"a b": "a%20b", "*": "%2A", "~": "~", "é": "%C3%A9", "a+b": "a%2Bb", "-_.": "-_."} {
		if got := PercentEncode(in); got != want {
			t.Errorf("PercentEncode(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	// acs3 returns the ACS3 vector with header k set to v.
	acs3 := func(k, v string) func() *http.Request {
		return func() *http.Request {
			r := acs3Vector()
			r.Header.Set(k, v)
			return r
		}
	}
	rpc := func(edit func(url.Values)) func() *http.Request {
		return func() *http.Request { return rpcVector(edit) }
	}
	for _, tc := range []struct {
		name string
		req  func() *http.Request
		want error
	}{
		{"acs3 no credential", acs3("Authorization", "ACS3-HMAC-SHA256 SignedHeaders=host,Signature=x"), ErrIncomplete},
		{"acs3 unsigned nonce", acs3("Authorization", "ACS3-HMAC-SHA256 Credential=a,SignedHeaders=host;x-acs-date,Signature=x"), ErrIncomplete},
		{"acs3 other algorithm", acs3("Authorization", "ACS3-HMAC-SM3 Credential=a,SignedHeaders=host,Signature=x"), ErrMethod},
		{"acs3 bad date", acs3("x-acs-date", "yesterday"), ErrTimeFormat},
		{"acs3 body hash", acs3("x-acs-content-sha256", strings.Repeat("0", 64)), ErrMismatch},
		{"roa malformed", acs3("Authorization", "acs nocolon"), ErrIncomplete},
		{"rpc without nonce", rpc(func(p url.Values) { p.Del("SignatureNonce") }), ErrMissingNonce},
		{"rpc other method", rpc(func(p url.Values) { p.Set("SignatureMethod", "HMAC-MD5") }), ErrMethod},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Parse(tc.req(), nil); !errors.Is(err, tc.want) {
				t.Fatalf("Parse = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestAnonymous(t *testing.T) {
	r := httptest.NewRequest(http.MethodPost, "/?Action=AssumeRoleWithOIDC&Format=JSON&Timestamp=2024-01-01T00%3A00%3A00Z&Version=2015-04-01",
		strings.NewReader("RoleArn=x&OIDCToken=a.b.c"))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	q, err := Parse(r, []byte("RoleArn=x&OIDCToken=a.b.c"))
	if err != nil {
		t.Fatal(err)
	}
	if q.Scheme != Anonymous || q.Action != "AssumeRoleWithOIDC" || q.Param("OIDCToken") != "a.b.c" || q.Verify("") != nil {
		t.Fatalf("parsed %+v", q)
	}
}

func TestSecurityTokenRedacted(t *testing.T) {
	q, err := Parse(rpcVector(func(p url.Values) { p.Set("SecurityToken", "CAISsecret/token+x") }), nil)
	if err != nil {
		t.Fatal(err)
	}
	err = q.Verify(vecSecret)
	if !errors.Is(err, ErrMismatch) || strings.Contains(err.Error(), "CAISsecret") || !strings.Contains(err.Error(), "REDACTED") {
		t.Errorf("Verify = %v", err)
	}
}

func TestVerifierCheck(t *testing.T) {
	now := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	v := NewVerifier()
	v.Now = func() time.Time { return now }
	v.MaxNonces = 3
	req := func(ak, nonce string, at time.Time) *Request {
		return &Request{Scheme: RPC, AccessKeyID: ak, Nonce: nonce, Time: at, TimeRaw: at.Format(time.RFC3339)}
	}
	for _, tc := range []struct {
		name string
		q    *Request
		want error
	}{
		{"fresh", req("a", "n1", now), nil},
		{"replay", req("a", "n1", now), ErrNonceUsed},
		{"same nonce other AK", req("b", "n1", now), nil},
		{"skew past", req("a", "n2", now.Add(-16*time.Minute)), ErrExpired},
		{"skew future", req("a", "n3", now.Add(16*time.Minute)), ErrExpired},
		{"within skew", req("a", "n4", now.Add(-14*time.Minute)), nil},
		{"no nonce", req("a", "", now), ErrMissingNonce},
		{"anonymous bare", &Request{Scheme: Anonymous}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := v.Check(tc.q); !errors.Is(err, tc.want) {
				t.Fatalf("Check = %v, want %v", err, tc.want)
			}
		})
	}
	// Bounded memory: with MaxNonces 3 the table above evicted the oldest entry.
	if len(v.seen) > 3 {
		t.Errorf("remembered %d nonces, max 3", len(v.seen))
	}
}

// The fuzz targets feed arbitrary headers, queries and bodies to each scheme's parser and check
// that parsing never panics and that a parsed request never verifies with a wrong secret.

func FuzzVerifyACS3(f *testing.F) {
	r := acs3Vector()
	f.Add(r.Header.Get("Authorization"), r.URL.RawQuery, r.Header.Get("x-acs-date"), r.Header.Get("x-acs-content-sha256"), []byte(""))
	f.Add("ACS3-HMAC-SHA256 Credential=,,==", "a=%zz", "", "", []byte("x"))
	f.Fuzz(func(t *testing.T, auth, query, date, sha string, body []byte) {
		r := acs3Vector()
		r.URL.RawQuery = query
		r.Header.Set("Authorization", auth)
		r.Header.Set("x-acs-date", date)
		r.Header.Set("x-acs-content-sha256", sha)
		q, err := Parse(r, body)
		if err != nil {
			return
		}
		_ = q.Verify(vecSecret)
		sum := sha256.Sum256(body)
		if q.Scheme == ACS3 && q.Verify("definitely-not-the-secret") == nil && sha == hex.EncodeToString(sum[:]) && q.signature == "" {
			t.Fatal("empty signature verified")
		}
	})
}

func FuzzVerifyRPC(f *testing.F) {
	f.Add(rpcVectorParams().Encode(), "")
	f.Add("SignatureMethod=HMAC-SHA1", "RoleArn=%")
	f.Fuzz(func(t *testing.T, query, form string) {
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(form))
		r.URL.RawQuery = query
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		q, err := Parse(r, []byte(form))
		if err != nil {
			return
		}
		if q.Scheme == RPC && q.Verify("wrong-secret") == nil && hmacSHA1("wrong-secret&", q.stringToSign) != q.signature {
			t.Fatal("verified a bad signature")
		}
	})
}

func FuzzVerifyROA(f *testing.F) {
	f.Add("acs testid:uZR8b3taU4JuvaxkIEwX09PS9fc=", "Mon, 01 Jan 2024 00:00:00 GMT", "", "nonce-1")
	f.Add("acs :", "x", "a&b=%", "")
	f.Fuzz(func(t *testing.T, auth, date, query, nonce string) {
		r := newRequest(http.MethodGet, "/tokens", map[string]string{"Authorization": auth, "Date": date, "x-acs-signature-nonce": nonce})
		r.URL.RawQuery = query
		q, err := Parse(r, nil)
		if err != nil {
			return
		}
		if q.Scheme == ROA && q.Verify("wrong-secret") == nil && hmacSHA1("wrong-secret", q.stringToSign) != q.signature {
			t.Fatal("verified a bad signature")
		}
	})
}

// TestACS3FormBodyNotInQuery: with ACS3 a form body is covered by x-acs-content-sha256, not by
// the canonical query; its parameters are still visible to the handler.
func TestACS3FormBodyNotInQuery(t *testing.T) {
	body := "RoleSessionName=abc"
	r := acs3Vector()
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	sum := sha256.Sum256([]byte(body))
	r.Header.Set("x-acs-content-sha256", hex.EncodeToString(sum[:]))
	q, err := Parse(r, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if q.Param("RoleSessionName") != "abc" {
		t.Errorf("form parameter missing: %v", q.Params)
	}
	h := hex.EncodeToString(sum[:])
	canon := "POST\n/\nInstanceId=cri-abc123&InstanceName=my%20inst%2A~\n" +
		"host:cr.cn-hangzhou.aliyuncs.com\nx-acs-action:GetAuthorizationToken\nx-acs-content-sha256:" + h +
		"\nx-acs-date:2024-01-01T00:00:00Z\nx-acs-signature-nonce:3156853299f313e23d1673dc12e1703d\nx-acs-version:2018-12-01\n\n" +
		"host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version\n" + h
	cs := sha256.Sum256([]byte(canon))
	if want := "ACS3-HMAC-SHA256\n" + hex.EncodeToString(cs[:]); q.StringToSign() != want {
		t.Errorf("string to sign = %q, want %q", q.StringToSign(), want)
	}
}

// TestNonceReplayAfterFlood is the regression test of a defect found with hostile input: the
// nonce memory was one FIFO that anonymous requests (and any one AccessKey) could flush, after
// which a captured signed request replayed inside its validity window. Now anonymous nonces
// are not remembered, a key's share is capped, and a full memory refuses new requests
// (Throttling.User) instead of forgetting unexpired nonces.
func TestNonceReplayAfterFlood(t *testing.T) {
	now := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	v := NewVerifier()
	v.Now = func() time.Time { return now }
	v.MaxNonces, v.MaxNoncesPerKey = 8, 3
	signed := func(ak, nonce string) *Request {
		return &Request{Scheme: ACS3, AccessKeyID: ak, Nonce: nonce, Time: now, TimeRaw: now.Format(time.RFC3339)}
	}
	victim := signed("victim", "captured")
	if err := v.Check(victim); err != nil {
		t.Fatal(err)
	}
	// Flood: anonymous requests with fresh nonces (as AssumeRoleWithOIDC takes them) …
	for i := range 1000 {
		q := &Request{Scheme: Anonymous, Nonce: fmt.Sprintf("anon-%d", i), Time: now, TimeRaw: now.Format(time.RFC3339)}
		if err := v.Check(q); err != nil {
			t.Fatalf("anonymous request %d: %v", i, err)
		}
	}
	// … and an attacker's own AccessKey: capped at its share, then refused, never evicting.
	refused := 0
	for i := range 1000 {
		if err := v.Check(signed("attacker", fmt.Sprintf("a-%d", i))); errors.Is(err, ErrNonceMemoryFull) {
			refused++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if refused != 1000-3 {
		t.Errorf("attacker refused %d times, want %d", refused, 1000-3)
	}
	if err := v.Check(victim); !errors.Is(err, ErrNonceUsed) {
		t.Fatalf("replay after the flood: %v, want SignatureNonceUsed", err)
	}
	// Other keys still work, up to the global cap; past it nothing is forgotten early.
	for i := range 4 {
		if err := v.Check(signed(fmt.Sprintf("user-%d", i), "n")); err != nil {
			t.Fatalf("user-%d: %v", i, err)
		}
	}
	if err := v.Check(signed("late", "n")); !errors.Is(err, ErrNonceMemoryFull) {
		t.Fatalf("past the global cap: %v, want Throttling.User", err)
	}
	if err := v.Check(victim); !errors.Is(err, ErrNonceUsed) {
		t.Fatalf("replay with a full memory: %v", err)
	}
	// Once the window has passed, memory frees, and the captured request fails on its time.
	now = now.Add(31 * time.Minute)
	if err := v.Check(victim); !errors.Is(err, ErrExpired) {
		t.Fatalf("captured request after the window: %v, want expired", err)
	}
	fresh := &Request{Scheme: ACS3, AccessKeyID: "attacker", Nonce: "later", Time: now, TimeRaw: now.Format(time.RFC3339)}
	if err := v.Check(fresh); err != nil {
		t.Fatalf("after the window: %v", err)
	}
}
