package world

import (
	"fmt"
	"strings"
)

// Path is a field path in a world file, such as accounts[1].roles[0].maxSessionDuration.
type Path string

// Child returns p.name.
func (p Path) Child(name string) Path {
	if p == "" {
		return Path(name)
	}
	return Path(string(p) + "." + name)
}

// Index returns p.name[i].
func (p Path) Index(name string, i int) Path { return Path(fmt.Sprintf("%s[%d]", p.Child(name), i)) }

// FieldError is one validation failure, naming the field and the bad value.
type FieldError struct {
	Field  Path
	Value  string
	Detail string
}

func (e *FieldError) Error() string {
	if e.Value == "" {
		return fmt.Sprintf("%s: %s", e.Field, e.Detail)
	}
	return fmt.Sprintf("%s: %s %s", e.Field, e.Value, e.Detail)
}

// Invalid reports that the value at field is wrong.
func Invalid(field Path, value any, detail string) *FieldError {
	return &FieldError{Field: field, Value: fmt.Sprint(value), Detail: detail}
}

// Required reports a missing field.
func Required(field Path) *FieldError {
	return &FieldError{Field: field, Detail: "is required"}
}

// ErrorList collects the validation failures of a world file; it is an error when non-empty.
type ErrorList []*FieldError

func (l ErrorList) Error() string {
	msgs := make([]string, len(l))
	for i, e := range l {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "; ")
}
