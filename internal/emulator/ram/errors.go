package ram

import (
	"errors"
	"fmt"
	"net/http"
)

// Error is an API-level failure with the real Alibaba Cloud error code and HTTP status, ready to
// be written by the OpenAPI handler.
type Error struct {
	HTTPStatus int
	Code       string
	Message    string
}

var _ error = (*Error)(nil)

func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.Message) }

// Is matches errors with the same Code.
func (e *Error) Is(target error) bool {
	var t *Error
	return errors.As(target, &t) && t.Code == e.Code
}

// Error codes used by the emulator (comparable with errors.Is).
var (
	ErrAccessKeyNotFound  = &Error{HTTPStatus: http.StatusNotFound, Code: "InvalidAccessKeyId.NotFound", Message: "Specified access key is not found."}
	ErrMissingToken       = &Error{HTTPStatus: http.StatusBadRequest, Code: "MissingSecurityToken", Message: "SecurityToken is mandatory for this action."}
	ErrTokenExpired       = &Error{HTTPStatus: http.StatusBadRequest, Code: "InvalidSecurityToken.Expired", Message: "Specified SecurityToken is expired."}
	ErrTokenMalformed     = &Error{HTTPStatus: http.StatusBadRequest, Code: "InvalidSecurityToken.Malformed", Message: "Specified SecurityToken is malformed."}
	ErrTokenMismatch      = &Error{HTTPStatus: http.StatusBadRequest, Code: "InvalidSecurityToken.MismatchWithAccessKey", Message: "Specified SecurityToken mismatch with the AccessKey."}
	ErrRootCannotAssume   = &Error{HTTPStatus: http.StatusForbidden, Code: "NoPermission", Message: "Roles may not be assumed by root accounts."}
	ErrNotAuthorizedByRAM = &Error{HTTPStatus: http.StatusForbidden, Code: "NoPermission", Message: "You are not authorized to do this action. You should be authorized by RAM."}
	ErrNotTrusted         = &Error{HTTPStatus: http.StatusForbidden, Code: "NoPermission", Message: "No permission perform sts:AssumeRole on this Role. Maybe you are not trusted by this role or the RoleArn is wrong."}
	ErrRoleNotExist       = &Error{HTTPStatus: http.StatusNotFound, Code: "EntityNotExist.Role", Message: "The role not exists."}
	ErrPolicyGrammar      = &Error{HTTPStatus: http.StatusBadRequest, Code: "InvalidParameter.PolicyGrammar", Message: "The parameter Policy has not passed grammar check."}
	ErrSessionName        = &Error{HTTPStatus: http.StatusBadRequest, Code: "InvalidParameter.RoleSessionName", Message: "The parameter RoleSessionName is wrongly formed."}
	ErrDuration           = &Error{HTTPStatus: http.StatusBadRequest, Code: "InvalidParameter.DurationSeconds", Message: "The Min/Max value of DurationSeconds is 15min/1hr."}
	ErrRoleArn            = &Error{HTTPStatus: http.StatusBadRequest, Code: "InvalidParameter.RoleArn", Message: "The parameter RoleArn is wrongly formed."}
	ErrOIDCProvider       = &Error{HTTPStatus: http.StatusUnauthorized, Code: "AuthenticationFail.NoPermission", Message: "No such OIDC Provider registered."}
	ErrOIDCNotTrusted     = &Error{HTTPStatus: http.StatusUnauthorized, Code: "AuthenticationFail.NoPermission", Message: "There is no permission"}
)

// DeniedError reports a RAM authorization failure; it names the principal, action and resource
// (never a secret).
type DeniedError struct {
	Principal string
	Action    string
	Resource  string
	Reason    string
	Explicit  bool
}

var _ error = (*DeniedError)(nil)

// ErrDenied matches every DeniedError with errors.Is.
var ErrDenied = errors.New("access denied")

func (e *DeniedError) Error() string {
	return fmt.Sprintf("%s is not allowed %s on %s: %s", e.Principal, e.Action, e.Resource, e.Reason)
}

// Is makes errors.Is(err, ErrDenied) true.
func (e *DeniedError) Is(target error) bool { return target == ErrDenied }

// Registry login errors.
var (
	// ErrBadCredentials means the registry username/password pair is unknown.
	ErrBadCredentials = errors.New("invalid registry username or password")
	// ErrRegistryTokenExpired means the AuthorizationToken existed but has expired.
	ErrRegistryTokenExpired = errors.New("registry authorization token has expired")
	// ErrWrongInstance means the AuthorizationToken was minted for another instance.
	ErrWrongInstance = errors.New("registry authorization token belongs to another instance")
)
