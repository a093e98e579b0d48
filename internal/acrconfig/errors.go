package acrconfig

import (
	"fmt"
	"strconv"
	"strings"
)

// FieldError is one problem with one configuration field. Field is a path such as
// "acr-registry-info[1].expireDuration"; Value is the offending value as written (empty for
// secrets, which are never echoed).
type FieldError struct {
	Field  string
	Value  string
	Detail string
}

// Error renders "field: value detail", e.g.
// "acr-registry-info[1].expireDuration: 99 is outside 3600..43200".
func (e *FieldError) Error() string {
	if e.Value == "" {
		return e.Field + ": " + e.Detail
	}
	return e.Field + ": " + e.Value + " " + e.Detail
}

// ErrorList is every problem found in one configuration. It is returned as the error of
// [Parse]; use errors.As to get at the individual fields.
type ErrorList []*FieldError

func (l ErrorList) Error() string {
	msgs := make([]string, len(l))
	for i, e := range l {
		msgs[i] = e.Error()
	}
	return "invalid acr-configuration: " + strings.Join(msgs, "; ")
}

// Warning is a problem that does not stop the configuration from being used: an unknown
// key, an ignored value, a plaintext AccessKey.
type Warning struct {
	Field   string
	Message string
}

func (w Warning) String() string { return w.Field + ": " + w.Message }

type collector struct {
	errs  ErrorList
	warns []Warning
}

func (c *collector) errorf(field, value, format string, args ...any) {
	c.errs = append(c.errs, &FieldError{Field: field, Value: value, Detail: fmt.Sprintf(format, args...)})
}

func (c *collector) warnf(field, format string, args ...any) {
	c.warns = append(c.warns, Warning{Field: field, Message: fmt.Sprintf(format, args...)})
}

// show renders a value for an error message: numbers bare, strings quoted, and long
// values cut so a pasted blob cannot flood an Event.
func show(v any) string {
	switch t := v.(type) {
	case nil:
		return "null"
	case string:
		if len(t) > 120 {
			t = t[:120] + "…"
		}
		return strconv.Quote(t)
	case bool:
		return strconv.FormatBool(t)
	case fmt.Stringer:
		return t.String()
	case map[string]any:
		return "a mapping"
	case []any:
		return "a list"
	default:
		s := fmt.Sprint(t)
		if len(s) > 120 {
			s = s[:120] + "…"
		}
		return s
	}
}

// NoteLimit is the longest Event note the API server accepts (events.k8s.io: 1 KB).
const NoteLimit = 1024

// WarningsNote renders warnings ("field: message" each) as one Event note, "2 warnings:
// field: message; field: message", cut to NoteLimit with "… and N more (see the log)". One Event
// for all: the events.k8s.io recorder folds Events with the same reason and object into one
// series and keeps only the first message, so one Event per warning would show the first.
func WarningsNote(parts []string) string {
	head := "1 warning: "
	if len(parts) != 1 {
		head = fmt.Sprintf("%d warnings: ", len(parts))
	}
	note := head + strings.Join(parts, "; ")
	for n := len(parts) - 1; len(note) > NoteLimit && n > 0; n-- {
		note = head + strings.Join(parts[:n], "; ") + fmt.Sprintf("; and %d more (see the log)", len(parts)-n)
	}
	if len(note) > NoteLimit {
		note = note[:NoteLimit-3] + "..."
	}
	return note
}
