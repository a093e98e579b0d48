package pullsecret

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"
)

// Token is a registry credential for one instance.
type Token struct {
	Username string
	Password string
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

// renderDockerConfig returns the .dockerconfigjson payload: one auths entry per domain, all with
// the same credentials. encoding/json sorts map keys, so the output is deterministic.
func renderDockerConfig(domains []string, tok Token) ([]byte, error) {
	type entry struct {
		Username string `json:"username"`
		Password string `json:"password"`
		Auth     string `json:"auth"`
	}
	auth := base64.StdEncoding.EncodeToString([]byte(tok.Username + ":" + tok.Password))
	auths := make(map[string]entry, len(domains))
	for _, d := range domains {
		auths[d] = entry{Username: tok.Username, Password: tok.Password, Auth: auth}
	}
	b, err := json.Marshal(struct {
		Auths map[string]entry `json:"auths"`
	}{auths})
	if err != nil {
		return nil, fmt.Errorf("render .dockerconfigjson: %w", err)
	}
	return b, nil
}
