package ram

import (
	"log/slog"
	"time"

	"github.com/ferrypull/ferry/internal/emulator/world"
)

// Kind is the kind of an authenticated identity.
type Kind int

// Identity kinds.
const (
	KindRoot        Kind = iota // an account's root identity (root AccessKey)
	KindUser                    // a RAM user
	KindAssumedRole             // an STS role session
)

// Principal is an authenticated caller.
type Principal struct {
	Kind    Kind
	Account *world.Account
	User    *world.User // KindUser
	Role    *world.Role // KindAssumedRole
	// SessionName and Expiry describe a role session.
	SessionName string
	Expiry      time.Time
	// SessionPolicy further limits a role session (intersection with the role's policies).
	SessionPolicy *world.PolicyDocument
	// Chain lists the ARNs of the identities that led to this session, oldest first
	// (e.g. a user, then the role session it assumed), or the service / OIDC provider.
	Chain []string
	// SourceIdentity is the STS SourceIdentity of the session, if any.
	SourceIdentity string
}

// ARN returns the identity's ARN: acs:ram::<uid>:root, …:user/<name> or
// …:role/<role>/<session>.
func (p *Principal) ARN() string {
	switch p.Kind {
	case KindUser:
		return p.User.ARN()
	case KindAssumedRole:
		return p.Role.ARN() + "/" + p.SessionName
	default:
		return p.Account.RootARN()
	}
}

// IdentityType returns the GetCallerIdentity type: Account, RAMUser or AssumedRoleUser.
func (p *Principal) IdentityType() string {
	switch p.Kind {
	case KindUser:
		return "RAMUser"
	case KindAssumedRole:
		return "AssumedRoleUser"
	default:
		return "Account"
	}
}

// PrincipalID returns the GetCallerIdentity PrincipalId: the uid, the user id, or
// <roleId>:<session> (also the AssumedRoleId).
func (p *Principal) PrincipalID() string {
	switch p.Kind {
	case KindUser:
		return p.User.ID()
	case KindAssumedRole:
		return p.Role.ID() + ":" + p.SessionName
	default:
		return p.Account.UID
	}
}

// Expired reports whether a role session has ended at now.
func (p *Principal) Expired(now time.Time) bool {
	return p.Kind == KindAssumedRole && !p.Expiry.IsZero() && !now.Before(p.Expiry)
}

// LogValue logs the ARN only.
func (p *Principal) LogValue() slog.Value {
	if p == nil {
		return slog.StringValue("anonymous")
	}
	return slog.StringValue(p.ARN())
}
