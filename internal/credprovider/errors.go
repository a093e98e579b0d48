package credprovider

import (
	"errors"
)

// Exit codes of acr-credential-provider. The kubelet treats every non-zero code alike (it
// logs the plugin's stderr and pulls without credentials); the codes tell an operator or a
// script which class of failure it was.
const (
	ExitOK = 0
	// ExitConfig: a flag or the provider configuration is invalid.
	ExitConfig = 1
	// ExitBadRequest: the request on stdin is not a valid CredentialProviderRequest.
	ExitBadRequest = 2
	// ExitUnknownHost: the image's registry is not an ACR registry this provider knows.
	ExitUnknownHost = 3
	// ExitIdentity: no identity applies (e.g. a ServiceAccount without a role annotation
	// and no node fallback), or an identity setting is invalid.
	ExitIdentity = 4
	// ExitTokenAPI: a cloud call failed (instance metadata, STS, Container Registry API).
	ExitTokenAPI = 5
)

// Error is a failure with the exit code it maps to.
type Error struct {
	Code int
	Err  error
}

var _ error = (*Error)(nil)

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

func withCode(code int, err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	return &Error{Code: code, Err: err}
}

// ExitCode maps err to an exit code: 0 for nil, the code of the first *Error in its chain,
// ExitConfig otherwise.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ExitConfig
}
