package cloudcred

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"

	openapi "github.com/alibabacloud-go/darabonba-openapi/v2/client"
	"github.com/alibabacloud-go/tea/dara"
	"github.com/alibabacloud-go/tea/tea"
)

// APIError is an error answer of an Alibaba Cloud API (STS, Container Registry).
type APIError struct {
	Service    string // "sts", "cr"
	Action     string // "AssumeRole", "GetAuthorizationToken", …
	HTTPStatus int
	Code       string
	Message    string
	RequestID  string
	// Err is the SDK error this was built from (nil for IsSuccess=false answers).
	Err error
}

var _ error = (*APIError)(nil)

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s failed", e.Service, e.Action)
	if e.HTTPStatus != 0 {
		fmt.Fprintf(&b, " (HTTP %d)", e.HTTPStatus)
	}
	if e.Code != "" {
		b.WriteString(": " + e.Code)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if e.RequestID != "" {
		b.WriteString(" (request id " + e.RequestID + ")")
	}
	if a := e.MissingAction(); a != "" {
		b.WriteString("; grant the RAM action " + a)
	}
	return b.String()
}

func (e *APIError) Unwrap() error { return e.Err }

// Temporary reports whether retrying may help (throttling, 5xx, transport trouble).
func (e *APIError) Temporary() bool {
	return e.HTTPStatus == 0 || e.HTTPStatus >= 500 || e.HTTPStatus == http.StatusTooManyRequests ||
		strings.HasPrefix(e.Code, "Throttling") || e.Code == "ServiceUnavailable" || e.Code == "SystemError"
}

// IsPermission reports whether the caller lacks a RAM permission.
func (e *APIError) IsPermission() bool {
	switch {
	case e.Code == "NoPermission", e.Code == "NoPrivilege", e.Code == "Forbidden.RAM",
		strings.HasPrefix(e.Code, "Forbidden"), strings.HasPrefix(e.Code, "AuthenticationFail.NoPermission"):
		return true
	}
	return e.HTTPStatus == http.StatusForbidden && e.Code == ""
}

var ramActions = map[string]string{
	"GetAuthorizationToken": "cr:GetAuthorizationToken",
	"ListInstanceEndpoint":  "cr:ListInstanceEndpoint",
	"ListInstance":          "cr:ListInstance",
	"GetInstanceEndpoint":   "cr:GetInstanceEndpoint",
	"AssumeRole":            "sts:AssumeRole",
	"AssumeRoleWithOIDC":    "sts:AssumeRole",
}

// MissingAction names the RAM action a permission error is about ("cr:GetAuthorizationToken"),
// or "" when e is not a permission error.
func (e *APIError) MissingAction() string {
	if e == nil || !e.IsPermission() {
		return ""
	}
	return ramActions[e.Action]
}

// MissingAction returns the RAM action named by the first *APIError in err's chain that
// is a permission error.
func MissingAction(err error) string {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.MissingAction()
	}
	return ""
}

var requestIDInMessage = regexp.MustCompile(`request id: ([A-Za-z0-9-]+)`)

// AsAPIError converts an error returned by an Alibaba Cloud SDK call into an *APIError
// (keeping the SDK error as Err). Other errors (transport, context) are wrapped as an
// *APIError with HTTPStatus 0 so callers can treat them as temporary.
func AsAPIError(service, action string, err error) error {
	if err == nil {
		return nil
	}
	if inner := (*APIError)(nil); errors.As(err, &inner) {
		return err // already converted (e.g. a failed STS call behind the credential)
	}
	ae := &APIError{Service: service, Action: action, Err: err}
	var (
		ce  *openapi.ClientError
		se  *openapi.ServerError
		te  *openapi.ThrottlingError
		de  *dara.SDKError
		tse *tea.SDKError
	)
	switch {
	case errors.As(err, &ce):
		ae.HTTPStatus, ae.Code, ae.Message, ae.RequestID = dara.IntValue(ce.StatusCode), dara.StringValue(ce.Code), dara.StringValue(ce.Message), dara.StringValue(ce.RequestId)
	case errors.As(err, &se):
		ae.HTTPStatus, ae.Code, ae.Message, ae.RequestID = dara.IntValue(se.StatusCode), dara.StringValue(se.Code), dara.StringValue(se.Message), dara.StringValue(se.RequestId)
	case errors.As(err, &te):
		ae.HTTPStatus, ae.Code, ae.Message, ae.RequestID = dara.IntValue(te.StatusCode), dara.StringValue(te.Code), dara.StringValue(te.Message), dara.StringValue(te.RequestId)
	case errors.As(err, &de):
		ae.HTTPStatus, ae.Code, ae.Message = dara.IntValue(de.StatusCode), dara.StringValue(de.Code), dara.StringValue(de.Message)
		ae.RequestID = requestIDFromData(dara.StringValue(de.Data))
	case errors.As(err, &tse):
		ae.HTTPStatus, ae.Code, ae.Message = tea.IntValue(tse.StatusCode), tea.StringValue(tse.Code), tea.StringValue(tse.Message)
		ae.RequestID = requestIDFromData(tea.StringValue(tse.Data))
	default:
		ae.Message = err.Error()
	}
	// The SDK formats Message as "code: 404, <message> request id: <id>"; keep the message.
	if m := requestIDInMessage.FindStringSubmatch(ae.Message); m != nil {
		if ae.RequestID == "" {
			ae.RequestID = m[1]
		}
		ae.Message = strings.TrimSpace(strings.TrimSuffix(ae.Message[:strings.Index(ae.Message, m[0])], ","))
	}
	if _, rest, ok := strings.Cut(ae.Message, fmt.Sprintf("code: %d, ", ae.HTTPStatus)); ok && ae.HTTPStatus != 0 {
		ae.Message = rest
	}
	return ae
}

func requestIDFromData(data string) string {
	var m map[string]any
	if json.Unmarshal([]byte(data), &m) != nil {
		return ""
	}
	for _, k := range []string{"RequestId", "requestId"} {
		if s, ok := m[k].(string); ok {
			return s
		}
	}
	return ""
}
