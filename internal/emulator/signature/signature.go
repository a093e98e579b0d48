// Package signature verifies Alibaba Cloud OpenAPI request signatures on the server side:
// ACS3-HMAC-SHA256 (V3), RPC v1 HMAC-SHA1 (parameters in the query and/or a form body) and
// ROA v1 HMAC-SHA1, plus anonymous requests, timestamp freshness and nonce replay.
//
//	req, err := signature.Parse(r, body)         // scheme, AccessKeyId, action, parameters
//	secret := lookup(req.AccessKeyID)
//	err = req.Verify(secret)                     // *signature.Error, Code SignatureDoesNotMatch…
//	err = verifier.Check(req)                    // InvalidTimeStamp.Expired, SignatureNonceUsed
package signature

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"
)

// Scheme is the way a request is signed.
type Scheme string

// Signature schemes.
const (
	Anonymous Scheme = "anonymous"
	ACS3      Scheme = "ACS3-HMAC-SHA256"
	RPC       Scheme = "RPC-HMAC-SHA1"
	ROA       Scheme = "ROA-HMAC-SHA1"
)

// Error is a signature or freshness failure with the real Alibaba Cloud Code and HTTP status.
type Error struct {
	HTTPStatus int
	Code       string
	Message    string
}

var _ error = (*Error)(nil)

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Is matches errors with the same Code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Sentinels for errors.Is.
var (
	ErrIncomplete   = &Error{HTTPStatus: http.StatusBadRequest, Code: "IncompleteSignature"}
	ErrMismatch     = &Error{HTTPStatus: http.StatusBadRequest, Code: "SignatureDoesNotMatch"}
	ErrExpired      = &Error{HTTPStatus: http.StatusBadRequest, Code: "InvalidTimeStamp.Expired"}
	ErrTimeFormat   = &Error{HTTPStatus: http.StatusBadRequest, Code: "InvalidTimeStamp.Format"}
	ErrNonceUsed    = &Error{HTTPStatus: http.StatusBadRequest, Code: "SignatureNonceUsed"}
	ErrMethod       = &Error{HTTPStatus: http.StatusBadRequest, Code: "InvalidSignatureMethod"}
	ErrMissingNonce = &Error{HTTPStatus: http.StatusBadRequest, Code: "MissingSignatureNonce"}
)

func errf(base *Error, format string, args ...any) *Error {
	return &Error{HTTPStatus: base.HTTPStatus, Code: base.Code, Message: fmt.Sprintf(format, args...)}
}

// Request is a parsed OpenAPI request.
type Request struct {
	Scheme        Scheme
	Method        string
	AccessKeyID   string
	SecurityToken string
	// Action and Version come from the x-acs-action / x-acs-version headers or, for RPC, from
	// the Action / Version parameters.
	Action  string
	Version string
	// Params holds the query and form parameters (without Signature).
	Params url.Values
	// Nonce and Time are the signature nonce and the request time (zero when absent).
	Nonce   string
	Time    time.Time
	TimeRaw string

	signature    string
	stringToSign string
}

// Param returns the first value of a request parameter.
func (q *Request) Param(name string) string { return q.Params.Get(name) }

// StringToSign returns what the server signs (for ACS3 the canonical request hash line),
// with any security token replaced by REDACTED so it can be shown in an error.
func (q *Request) StringToSign() string {
	if q.SecurityToken == "" {
		return q.stringToSign
	}
	s := strings.ReplaceAll(q.stringToSign, PercentEncode(PercentEncode(q.SecurityToken)), "REDACTED")
	return strings.ReplaceAll(s, q.SecurityToken, "REDACTED")
}

// MaxBody is the largest request body Parse accepts.
const MaxBody = 1 << 20

// Parse detects the signature scheme of r (whose body has been read into body) and extracts
// the fields needed to authenticate it.
func Parse(r *http.Request, body []byte) (*Request, error) {
	params, err := collectParams(r, body)
	if err != nil {
		return nil, err
	}
	q := &Request{Method: r.Method, Params: params, Action: r.Header.Get("x-acs-action"), Version: r.Header.Get("x-acs-version")}
	auth := r.Header.Get("Authorization")
	switch {
	case strings.HasPrefix(auth, "ACS3-"):
		err = q.parseACS3(r, auth, body)
	case strings.HasPrefix(auth, "acs "):
		err = q.parseROA(r, auth)
	case params.Has("SignatureMethod") || params.Has("Signature"):
		err = q.parseRPC()
	default:
		q.Scheme = Anonymous
		if a := params.Get("Action"); a != "" {
			q.Action = a
		}
		if v := params.Get("Version"); v != "" {
			q.Version = v
		}
		q.Nonce = firstNonEmpty(params.Get("SignatureNonce"), r.Header.Get("x-acs-signature-nonce"))
		q.TimeRaw = firstNonEmpty(params.Get("Timestamp"), r.Header.Get("x-acs-date"))
		if q.TimeRaw != "" {
			q.Time, err = parseISO(q.TimeRaw)
		}
	}
	if err != nil {
		return nil, err
	}
	return q, nil
}

func firstNonEmpty(v ...string) string {
	for _, s := range v {
		if s != "" {
			return s
		}
	}
	return ""
}

func collectParams(r *http.Request, body []byte) (url.Values, error) {
	params, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, errf(ErrIncomplete, "the query string is malformed: %v", err)
	}
	if len(body) > 0 {
		if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "application/x-www-form-urlencoded" {
			form, err := url.ParseQuery(string(body))
			if err != nil {
				return nil, errf(ErrIncomplete, "the form body is malformed: %v", err)
			}
			for k, vs := range form {
				params[k] = append(params[k], vs...)
			}
		}
	}
	return params, nil
}

func parseISO(s string) (time.Time, error) {
	t, err := time.Parse("2006-01-02T15:04:05Z", s)
	if err != nil {
		return time.Time{}, errf(ErrTimeFormat, "Specified time stamp or date value is not well formatted: %q.", s)
	}
	return t, nil
}

// Verify checks the request signature with the caller's AccessKey secret. Anonymous requests
// verify trivially; the caller decides whether the action may be anonymous.
func (q *Request) Verify(secret string) error {
	var want string
	switch q.Scheme {
	case Anonymous:
		return nil
	case ACS3:
		m := hmac.New(sha256.New, []byte(secret))
		m.Write([]byte(q.stringToSign))
		want = hex.EncodeToString(m.Sum(nil))
	case RPC:
		want = hmacSHA1(secret+"&", q.stringToSign)
	case ROA:
		want = hmacSHA1(secret, q.stringToSign)
	}
	if subtle.ConstantTimeCompare([]byte(want), []byte(q.signature)) != 1 {
		return errf(ErrMismatch, "Specified signature is not matched with our calculation. server string to sign is:%s", q.StringToSign())
	}
	return nil
}

func hmacSHA1(key, s string) string {
	m := hmac.New(sha1.New, []byte(key))
	m.Write([]byte(s))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// PercentEncode is RFC 3986 encoding as the SDKs sign: url.QueryEscape with "+"→"%20",
// "*"→"%2A" and "%7E"→"~".
func PercentEncode(s string) string {
	e := url.QueryEscape(s)
	e = strings.ReplaceAll(e, "+", "%20")
	e = strings.ReplaceAll(e, "*", "%2A")
	return strings.ReplaceAll(e, "%7E", "~")
}

// canonicalQuery sorts parameters by key (byte order) and joins percentEncode(k)=percentEncode(v).
func canonicalQuery(params url.Values, skip string) string {
	keys := make([]string, 0, len(params))
	for k := range params {
		if k != skip {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		for _, v := range params[k] {
			if b.Len() > 0 {
				b.WriteByte('&')
			}
			b.WriteString(PercentEncode(k))
			b.WriteByte('=')
			b.WriteString(PercentEncode(v))
		}
	}
	return b.String()
}

// --- ACS3 ---

func (q *Request) parseACS3(r *http.Request, auth string, body []byte) error {
	q.Scheme = ACS3
	algo, rest, _ := strings.Cut(auth, " ")
	if algo != string(ACS3) {
		return errf(ErrMethod, "Specified signature algorithm %q is not supported.", algo)
	}
	fields := map[string]string{}
	for _, part := range strings.Split(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return errf(ErrIncomplete, "The Authorization header is malformed.")
		}
		fields[k] = v
	}
	q.AccessKeyID, q.signature = fields["Credential"], fields["Signature"]
	signed := fields["SignedHeaders"]
	if q.AccessKeyID == "" || q.signature == "" || signed == "" {
		return errf(ErrIncomplete, "The Authorization header needs Credential, SignedHeaders and Signature.")
	}
	names := strings.Split(signed, ";")
	has := map[string]bool{}
	for _, n := range names {
		has[n] = true
	}
	for _, need := range []string{"x-acs-date", "x-acs-signature-nonce"} {
		if !has[need] {
			return errf(ErrIncomplete, "SignedHeaders must include %s.", need)
		}
	}
	if q.SecurityToken = r.Header.Get("x-acs-security-token"); q.SecurityToken != "" && !has["x-acs-security-token"] {
		return errf(ErrIncomplete, "SignedHeaders must include x-acs-security-token.")
	}
	q.Nonce = r.Header.Get("x-acs-signature-nonce")
	q.TimeRaw = r.Header.Get("x-acs-date")
	var err error
	if q.Time, err = parseISO(q.TimeRaw); err != nil {
		return err
	}
	sum := sha256.Sum256(body)
	payload := hex.EncodeToString(sum[:])
	if h := r.Header.Get("x-acs-content-sha256"); h != "" && h != payload {
		return errf(ErrMismatch, "The x-acs-content-sha256 header does not match the body.")
	}
	var b strings.Builder
	b.WriteString(r.Method + "\n")
	b.WriteString(canonicalURI(r.URL.Path) + "\n")
	// Only the URL query is canonicalized; a body is covered by x-acs-content-sha256.
	query, _ := url.ParseQuery(r.URL.RawQuery)
	b.WriteString(canonicalQuery(query, "") + "\n")
	for _, n := range names {
		v := r.Header.Get(n)
		if n == "host" {
			v = r.Host
		}
		b.WriteString(n + ":" + strings.TrimSpace(v) + "\n")
	}
	b.WriteString("\n" + signed + "\n" + payload)
	canon := sha256.Sum256([]byte(b.String()))
	q.stringToSign = string(ACS3) + "\n" + hex.EncodeToString(canon[:])
	return nil
}

func canonicalURI(path string) string {
	if path == "" {
		return "/"
	}
	segs := strings.Split(path, "/")
	for i, s := range segs {
		segs[i] = PercentEncode(s)
	}
	return strings.Join(segs, "/")
}

// --- RPC v1 ---

func (q *Request) parseRPC() error {
	q.Scheme = RPC
	p := q.Params
	for _, need := range []string{"AccessKeyId", "Signature", "SignatureMethod", "SignatureNonce", "Timestamp"} {
		if p.Get(need) == "" {
			if need == "SignatureNonce" {
				return errf(ErrMissingNonce, "SignatureNonce is mandatory for this action.")
			}
			return errf(ErrIncomplete, "The request signature does not conform to Aliyun standards: %s is missing.", need)
		}
	}
	if m := p.Get("SignatureMethod"); m != "HMAC-SHA1" {
		return errf(ErrMethod, "Specified signature method %q is not supported.", m)
	}
	if v := p.Get("SignatureVersion"); v != "" && v != "1.0" {
		return errf(ErrIncomplete, "Specified signature version %q is not supported.", v)
	}
	q.AccessKeyID, q.signature = p.Get("AccessKeyId"), p.Get("Signature")
	q.SecurityToken = p.Get("SecurityToken")
	q.Nonce, q.TimeRaw = p.Get("SignatureNonce"), p.Get("Timestamp")
	if a := p.Get("Action"); a != "" {
		q.Action = a
	}
	if v := p.Get("Version"); v != "" {
		q.Version = v
	}
	var err error
	if q.Time, err = parseISO(q.TimeRaw); err != nil {
		return err
	}
	q.stringToSign = q.Method + "&" + PercentEncode("/") + "&" + PercentEncode(canonicalQuery(p, "Signature"))
	q.Params = cloneWithout(p, "Signature")
	return nil
}

func cloneWithout(p url.Values, key string) url.Values {
	out := make(url.Values, len(p))
	for k, v := range p {
		if k != key {
			out[k] = v
		}
	}
	return out
}

// --- ROA v1 ---

func (q *Request) parseROA(r *http.Request, auth string) error {
	q.Scheme = ROA
	cred := strings.TrimPrefix(auth, "acs ")
	i := strings.LastIndexByte(cred, ':')
	if i <= 0 || i == len(cred)-1 {
		return errf(ErrIncomplete, "The Authorization header must be \"acs <AccessKeyId>:<Signature>\".")
	}
	q.AccessKeyID, q.signature = cred[:i], cred[i+1:]
	if m := r.Header.Get("x-acs-signature-method"); m != "" && m != "HMAC-SHA1" {
		return errf(ErrMethod, "Specified signature method %q is not supported.", m)
	}
	q.SecurityToken = r.Header.Get("x-acs-security-token")
	q.Nonce = r.Header.Get("x-acs-signature-nonce")
	q.TimeRaw = r.Header.Get("Date")
	if q.TimeRaw == "" {
		return errf(ErrIncomplete, "The Date header is required.")
	}
	t, err := http.ParseTime(q.TimeRaw)
	if err != nil {
		return errf(ErrTimeFormat, "Specified time stamp or date value is not well formatted: %q.", q.TimeRaw)
	}
	q.Time = t
	var b strings.Builder
	b.WriteString(r.Method + "\n" + r.Header.Get("Accept") + "\n" + r.Header.Get("Content-MD5") + "\n" +
		r.Header.Get("Content-Type") + "\n" + q.TimeRaw + "\n")
	var hdrs []string
	for k := range r.Header {
		if lk := strings.ToLower(k); strings.HasPrefix(lk, "x-acs-") {
			hdrs = append(hdrs, lk)
		}
	}
	sort.Strings(hdrs)
	for _, h := range hdrs {
		b.WriteString(h + ":" + strings.TrimSpace(r.Header.Get(h)) + "\n")
	}
	b.WriteString(canonicalResource(r.URL.Path, q.Params))
	q.stringToSign = b.String()
	return nil
}

// canonicalResource is the ROA path plus "?" and the sorted items ("k=v", or "k" for an empty
// value); values are not encoded.
func canonicalResource(path string, params url.Values) string {
	if len(params) == 0 {
		return path
	}
	keys := slices.Sorted(maps.Keys(params))
	items := make([]string, 0, len(keys))
	for _, k := range keys {
		for _, v := range params[k] {
			if v == "" {
				items = append(items, k)
			} else {
				items = append(items, k+"="+v)
			}
		}
	}
	return path + "?" + strings.Join(items, "&")
}
