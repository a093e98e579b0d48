package pullsecret

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ferrypull/ferry/internal/redact"
)

// Token is a registry credential for one instance. Password stays a [redact.Secret] until
// [Render] writes it into a Secret's payload.
type Token struct {
	Username string
	Password redact.Secret
	// ExpiresAt is when the registry stops accepting Password.
	ExpiresAt time.Time
	// Domains are the registry hosts discovered for the instance; used when the configuration
	// names none.
	Domains []string
	// RetryAt is set when the TokenSource could not renew the token and served this still-valid
	// one instead; it retries at RetryAt.
	RetryAt time.Time
}

// String never prints the password.
func (t Token) String() string {
	return fmt.Sprintf("Token{user=%s expires=%s password=REDACTED}", t.Username, t.ExpiresAt.UTC().Format(time.RFC3339))
}

// LogValue keeps the password out of structured logs.
func (t Token) LogValue() slog.Value {
	return slog.GroupValue(slog.String("username", t.Username), slog.Time("expiresAt", t.ExpiresAt))
}

// ErrUnknownInstance is wrapped by token errors for an instance that the helper does not know
// (not configured, not found in the region).
var ErrUnknownInstance = errors.New("unknown ACR instance")

// A TokenSource mints registry tokens. Implementations cache one token per (identity, instance),
// share it between callers (single flight) and renew it when less than minValidity remains.
// On failure they return an error; they never return an empty password without one.
type TokenSource interface {
	Token(ctx context.Context, inst Instance, minValidity time.Duration) (Token, error)
}

// TokenSourceFunc adapts a function to TokenSource.
type TokenSourceFunc func(ctx context.Context, inst Instance, minValidity time.Duration) (Token, error)

// Token implements TokenSource.
func (f TokenSourceFunc) Token(ctx context.Context, inst Instance, minValidity time.Duration) (Token, error) {
	return f(ctx, inst, minValidity)
}
