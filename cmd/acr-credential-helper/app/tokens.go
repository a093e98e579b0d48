package app

import (
	"context"
	"errors"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/ferrypull/ferry/internal/controller/pullsecret"
)

// errNoTokenClient is returned until internal/acr is wired in.
var errNoTokenClient = errors.New("no ACR token client in this build")

// newTokenSource builds the token client (internal/acr on internal/cloudcred) from the flags.
func newTokenSource(_ context.Context, _ *Options, _ ctrl.Manager) (pullsecret.TokenSource, error) {
	return pullsecret.TokenSourceFunc(func(context.Context, pullsecret.Instance, time.Duration) (pullsecret.Token, error) {
		return pullsecret.Token{}, errNoTokenClient
	}), nil
}
