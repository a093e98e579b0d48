package ram

import (
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/ferrypull/ferry/internal/emulator/world"
)

// Decision is the outcome of evaluating policies.
type Decision int

// Decisions, from weakest to strongest.
const (
	ImplicitDeny Decision = iota // no statement allowed the request
	Allow
	ExplicitDeny // a Deny statement matched; it beats every Allow
)

func (d Decision) String() string {
	switch d {
	case Allow:
		return "Allow"
	case ExplicitDeny:
		return "ExplicitDeny"
	default:
		return "ImplicitDeny"
	}
}

// Context holds condition keys of a request (acs:SourceIp, sts:ExternalId, oidc:sub, …).
// Keys are matched case-insensitively; a key may carry several values.
type Context map[string][]string

// Set stores values under key.
func (c Context) Set(key string, values ...string) Context {
	c[strings.ToLower(key)] = values
	return c
}

func (c Context) get(key string) ([]string, bool) {
	v, ok := c[strings.ToLower(key)]
	return v, ok
}

// NewContext returns the global condition keys of a request: acs:SourceIp,
// acs:SecureTransport and acs:CurrentTime.
func NewContext(sourceIP netip.Addr, secure bool, now time.Time) Context {
	c := Context{}
	if sourceIP.IsValid() {
		c.Set("acs:SourceIp", sourceIP.Unmap().String())
	}
	c.Set("acs:SecureTransport", strconv.FormatBool(secure))
	c.Set("acs:CurrentTime", now.UTC().Format(time.RFC3339))
	return c
}

// Evaluate applies identity policy documents to one request: an explicit Deny wins, then any
// Allow, otherwise ImplicitDeny.
func Evaluate(docs []*world.PolicyDocument, action, resource string, ctx Context) Decision {
	d := ImplicitDeny
	for _, doc := range docs {
		if doc == nil {
			continue
		}
		for i := range doc.Statement {
			st := &doc.Statement[i]
			if !statementMatches(st, action, resource, ctx) {
				continue
			}
			if st.Effect == "Deny" {
				return ExplicitDeny
			}
			if st.Effect == "Allow" {
				d = Allow
			}
		}
	}
	return d
}

func statementMatches(st *world.Statement, action, resource string, ctx Context) bool {
	if len(st.Action) > 0 && !anyMatch(st.Action, action, true) {
		return false
	}
	if len(st.NotAction) > 0 && anyMatch(st.NotAction, action, true) {
		return false
	}
	if len(st.Resource) > 0 && !anyMatch(st.Resource, resource, false) {
		return false
	}
	if len(st.NotResource) > 0 && anyMatch(st.NotResource, resource, false) {
		return false
	}
	return conditionsMatch(st.Condition, ctx)
}

func anyMatch(patterns []string, s string, fold bool) bool {
	for _, p := range patterns {
		if fold {
			if Glob(strings.ToLower(p), strings.ToLower(s)) {
				return true
			}
		} else if Glob(p, s) {
			return true
		}
	}
	return false
}

// Glob matches s against a pattern where '*' matches any run (including empty) and '?' one
// character. It runs in O(len(p)·len(s)) without recursion.
func Glob(p, s string) bool {
	px, sx := 0, 0
	nextPx, nextSx := -1, -1
	for px < len(p) || sx < len(s) {
		if px < len(p) {
			switch c := p[px]; c {
			case '*':
				nextPx, nextSx = px, sx+1
				px++
				continue
			case '?':
				if sx < len(s) {
					px++
					sx++
					continue
				}
			default:
				if sx < len(s) && s[sx] == c {
					px++
					sx++
					continue
				}
			}
		}
		if nextSx > 0 && nextSx <= len(s) {
			px, sx = nextPx, nextSx
			continue
		}
		return false
	}
	return true
}

// conditionsMatch ANDs operators and keys; the values of one key are ORed.
func conditionsMatch(cond map[string]map[string]world.StringList, ctx Context) bool {
	for op, keys := range cond {
		ifExists := strings.HasSuffix(op, "IfExists")
		base := strings.TrimSuffix(op, "IfExists")
		for key, want := range keys {
			got, ok := ctx.get(key)
			if !ok {
				if ifExists || negated(base) {
					continue
				}
				return false
			}
			if !evalOp(base, want, got) {
				return false
			}
		}
	}
	return true
}

func negated(op string) bool {
	switch op {
	case "StringNotEquals", "StringNotEqualsIgnoreCase", "StringNotLike", "NumericNotEquals", "DateNotEquals", "NotIpAddress":
		return true
	}
	return false
}

// evalOp reports whether any request value satisfies the operator against any policy value
// (for negated operators: no request value equals any policy value).
func evalOp(op string, want, got []string) bool {
	if negated(op) {
		pos := map[string]string{
			"StringNotEquals": "StringEquals", "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
			"StringNotLike": "StringLike", "NumericNotEquals": "NumericEquals", "DateNotEquals": "DateEquals",
			"NotIpAddress": "IpAddress",
		}[op]
		return !evalOp(pos, want, got)
	}
	for _, g := range got {
		for _, w := range want {
			if evalOne(op, w, g) {
				return true
			}
		}
	}
	return false
}

func evalOne(op, want, got string) bool {
	switch op {
	case "StringEquals":
		return want == got
	case "StringEqualsIgnoreCase":
		return strings.EqualFold(want, got)
	case "StringLike":
		return Glob(want, got)
	case "Bool":
		w, err1 := strconv.ParseBool(want)
		g, err2 := strconv.ParseBool(got)
		return err1 == nil && err2 == nil && w == g
	case "IpAddress":
		a, err := netip.ParseAddr(got)
		if err != nil {
			return false
		}
		a = a.Unmap()
		if strings.Contains(want, "/") {
			p, err := netip.ParsePrefix(want)
			return err == nil && p.Contains(a)
		}
		w, err := netip.ParseAddr(want)
		return err == nil && w.Unmap() == a
	}
	if c, ok := strings.CutPrefix(op, "Numeric"); ok {
		w, err1 := strconv.ParseFloat(want, 64)
		g, err2 := strconv.ParseFloat(got, 64)
		return err1 == nil && err2 == nil && compare(c, cmpFloat(g, w))
	}
	if c, ok := strings.CutPrefix(op, "Date"); ok {
		w, err1 := parseDate(want)
		g, err2 := parseDate(got)
		return err1 == nil && err2 == nil && compare(c, g.Compare(w))
	}
	return false
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func compare(kind string, c int) bool {
	switch kind {
	case "Equals":
		return c == 0
	case "LessThan":
		return c < 0
	case "LessThanEquals":
		return c <= 0
	case "GreaterThan":
		return c > 0
	case "GreaterThanEquals":
		return c >= 0
	}
	return false
}

func parseDate(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(n, 0), nil
	}
	return time.Parse("2006-01-02", s)
}
