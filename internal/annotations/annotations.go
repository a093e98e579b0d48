// Package annotations parses the Alibaba Cloud ECI image annotations
// (k8s.aliyun.com/acr-instance-id(s), acr-service-arns, acr-user-arns,
// plain-http-registry, insecure-registry) into validated values.
//
// Every parser names the annotation and the offending value in its error, so
// the message can go straight into an admission response or an Event.
package annotations

import (
	"errors"
	"fmt"
	"strings"
)

// Annotation keys honoured by ferry. They are the ECI names, read from the Pod
// (or Pod template) metadata at creation time.
const (
	// AcrInstanceID is the legacy singular form: one [regionId:]cri-… value.
	AcrInstanceID = "k8s.aliyun.com/acr-instance-id"
	// AcrInstanceIDs is the current plural form: a comma list of [regionId:]cri-… values.
	AcrInstanceIDs = "k8s.aliyun.com/acr-instance-ids"
	// AcrServiceARNs is the RAM role ARN (or ARNs) in the account that owns the Pod.
	AcrServiceARNs = "k8s.aliyun.com/acr-service-arns"
	// AcrUserARNs is the RAM role ARN (or ARNs) in the account that owns the ACR instance.
	AcrUserARNs = "k8s.aliyun.com/acr-user-arns"
	// PlainHTTPRegistry lists host[:port] registries pulled over plain HTTP.
	PlainHTTPRegistry = "k8s.aliyun.com/plain-http-registry"
	// InsecureRegistry lists host[:port] registries pulled over HTTPS without TLS verification.
	InsecureRegistry = "k8s.aliyun.com/insecure-registry"
)

// maxValueLen bounds every annotation value ferry parses; the apiserver caps all
// annotations of an object at 256 KiB, a single list never needs more than this.
const maxValueLen = 16 << 10

// maxEntries bounds the number of list entries in one annotation value.
const maxEntries = 64

// ErrInvalid is wrapped by every parse error of this package.
var ErrInvalid = errors.New("invalid annotation")

// Error is a parse error naming the annotation, the offending entry and why it
// was refused. It wraps ErrInvalid.
type Error struct {
	Annotation string // annotation key
	Value      string // the offending entry (or the whole value)
	Reason     string
}

var _ error = (*Error)(nil)

func (e *Error) Error() string {
	return fmt.Sprintf("annotation %s: value %q: %s", e.Annotation, e.Value, e.Reason)
}

// Unwrap lets callers match with errors.Is(err, ErrInvalid).
func (e *Error) Unwrap() error { return ErrInvalid }

func invalid(annotation, value, format string, args ...any) *Error {
	if len(value) > 256 {
		value = value[:256] + "…"
	}
	return &Error{Annotation: annotation, Value: value, Reason: fmt.Sprintf(format, args...)}
}

// splitList splits a comma-separated annotation value, trims whitespace around
// each entry and drops empty entries. It refuses oversized values.
func splitList(annotation, value string) ([]string, error) {
	if len(value) > maxValueLen {
		return nil, invalid(annotation, value, "value longer than %d bytes", maxValueLen)
	}
	var out []string
	for _, e := range strings.Split(value, ",") {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		out = append(out, e)
	}
	if len(out) == 0 {
		return nil, invalid(annotation, value, "no entries")
	}
	if len(out) > maxEntries {
		return nil, invalid(annotation, value, "more than %d entries", maxEntries)
	}
	return out, nil
}
