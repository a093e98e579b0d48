package redact

import (
	"context"
	"log/slog"
	"regexp"
	"strings"
)

// urlInText finds URLs embedded in free text (error messages, log messages).
var urlInText = regexp.MustCompile(`[a-zA-Z][a-zA-Z0-9+.-]*://[^\s"'<>]+`)

// Text redacts every URL embedded in free text (see [URL]) and every value of the form
// "<sensitive name>=<value>" or "<sensitive name>: <value>", e.g. "password=hunter2".
func Text(s string) string {
	if strings.Contains(s, "://") {
		s = urlInText.ReplaceAllStringFunc(s, URL)
	}
	if strings.ContainsAny(s, "=:") && mayNameSecret(s) {
		s = authInText.ReplaceAllString(s, "${1}${2}${3}"+Placeholder)
		s = keyValueInText.ReplaceAllStringFunc(s, func(m string) string {
			sub := keyValueInText.FindStringSubmatch(m)
			if !IsSensitiveName(sub[1]) || sub[3] == Placeholder || strings.HasSuffix(strings.ToLower(sub[1]), "authorization") {
				return m
			}
			return sub[1] + sub[2] + Placeholder
		})
	}
	return s
}

// nameFragments cover every entry of sensitiveNames: a text without any of them (ignoring case
// and separators) holds no "<sensitive name>=<value>", and the regular expressions are skipped.
var nameFragments = []string{"pass", "token", "auth", "cookie", "signature", "secret", "docker", "key"}

func mayNameSecret(s string) bool {
	n := normalizeName(s)
	for _, f := range nameFragments {
		if strings.Contains(n, f) {
			return true
		}
	}
	return false
}

var authInText = regexp.MustCompile(`(?i)\b((?:proxy-)?authorization)(:\s*|=)((?:Bearer|Basic|ACS3-HMAC-SHA256|acs|Digest) )?[^\s,;"]+`)

var keyValueInText = regexp.MustCompile(`([A-Za-z][A-Za-z0-9_.-]*)(=|:\s?"?|":\s?")([^\s&,;"]+)`)

// HandlerOption configures [NewHandler].
type HandlerOption func(*handler)

// WithSecrets makes the handler replace these literal values wherever they appear in a
// message or a string attribute (for example an AccessKey secret read at start-up).
func WithSecrets(secrets ...string) HandlerOption {
	return func(h *handler) {
		for _, s := range secrets {
			if len(s) >= 4 {
				h.secrets = append(h.secrets, s)
			}
		}
	}
}

// NewHandler wraps next so that no record it passes on carries a secret:
//   - attributes whose key is sensitive (password, token, authorization, accessKeySecret,
//     securityToken, …; see [IsSensitiveName]) are replaced by the placeholder;
//   - URLs in the message and in string and error attributes lose their passwords and
//     sensitive query parameters;
//   - values registered with [WithSecrets] are replaced wherever they appear.
//
// Values of type [Secret] redact themselves through slog.LogValuer.
func NewHandler(next slog.Handler, opts ...HandlerOption) slog.Handler {
	h := &handler{next: next}
	for _, o := range opts {
		o(h)
	}
	return h
}

type handler struct {
	next    slog.Handler
	secrets []string
}

func (h *handler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	nr := slog.NewRecord(r.Time, r.Level, h.text(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		nr.AddAttrs(h.attr(a))
		return true
	})
	return h.next.Handle(ctx, nr)
}

func (h *handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	red := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		red[i] = h.attr(a)
	}
	return &handler{next: h.next.WithAttrs(red), secrets: h.secrets}
}

func (h *handler) WithGroup(name string) slog.Handler {
	return &handler{next: h.next.WithGroup(name), secrets: h.secrets}
}

func (h *handler) text(s string) string {
	return Strings(Text(s), h.secrets...)
}

func (h *handler) attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	if IsSensitiveName(a.Key) {
		if v.Kind() == slog.KindString && v.String() == "" {
			return slog.String(a.Key, "")
		}
		return slog.String(a.Key, Placeholder)
	}
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, h.text(v.String()))
	case slog.KindGroup:
		g := v.Group()
		out := make([]any, len(g))
		for i, ga := range g {
			out[i] = h.attr(ga)
		}
		return slog.Group(a.Key, out...)
	case slog.KindAny:
		switch x := v.Any().(type) {
		case error:
			return slog.String(a.Key, h.text(x.Error()))
		case []byte:
			return slog.String(a.Key, h.text(string(x)))
		case interface{ String() string }:
			return slog.String(a.Key, h.text(x.String()))
		}
		return slog.Attr{Key: a.Key, Value: v}
	default:
		return slog.Attr{Key: a.Key, Value: v}
	}
}
