package registry

import (
	"errors"
	"net/netip"
)

// Errors a Directory returns from Login. Callers match them with errors.Is.
var (
	// ErrBadCredentials means the user name or password is not known.
	ErrBadCredentials = errors.New("bad credentials")
	// ErrTokenExpired means a temporary registry token was valid but has expired.
	ErrTokenExpired = errors.New("registry token expired")
)

// Principal is an authenticated caller of the token realm. Its String is
// used in log lines and in the JWT subject and must never contain a secret.
type Principal interface {
	String() string
}

// Site is one registry the front serves: an Enterprise Edition instance or
// the Personal Edition registry of a region.
type Site struct {
	// ID is the instance ID (cri-…) or, for Personal Edition, "personal-<region>".
	// It names the storage directory under the data dir.
	ID string
	// Name is the instance name (the domain prefix); empty for Personal Edition.
	Name     string
	Region   string
	OwnerUID string
	Personal bool
	// PublicDomains and VPCDomains are bare host names (no port).
	PublicDomains []string
	VPCDomains    []string
	// InternetEnabled false denies every request on a public domain.
	InternetEnabled bool
	// Whitelist lists the source networks admitted on the public domains;
	// empty admits every source.
	Whitelist []netip.Prefix
}

// Service is the token service name of the site, used as the JWT audience.
func (s Site) Service() string {
	if s.Personal {
		return "registry.aliyuncs.com:" + s.Region + ":personal"
	}
	return "registry.aliyuncs.com:" + s.Region + ":china:" + s.ID
}

// Namespace describes a namespace of a site.
type Namespace struct {
	// OwnerUID is the account that owns the namespace (the site owner for
	// Enterprise Edition; per namespace for Personal Edition).
	OwnerUID       string
	AutoCreateRepo bool
	// DefaultPublic is the type of auto-created repositories.
	DefaultPublic bool
}

// Repository describes an existing repository.
type Repository struct {
	Public bool
}

// Directory is the registry front's view of the emulated world.
// Implementations must be safe for concurrent use.
type Directory interface {
	// Sites lists the registries to serve.
	Sites() []Site
	// Login verifies Basic credentials presented to the realm of site: a
	// temporary (TempUsername, AuthorizationToken) pair or a RAM user's fixed
	// access-credential password. It returns ErrBadCredentials or
	// ErrTokenExpired (possibly wrapped) when it refuses.
	Login(siteID, username, password string) (Principal, error)
	// Authorize returns nil when p may perform action (cr:PullRepository, …)
	// on resource (an acs:cr:… ARN), else an error that says why.
	Authorize(p Principal, action, resource string, source netip.Addr) error
	// Namespace looks up a namespace of a site.
	Namespace(siteID, namespace string) (Namespace, bool)
	// Repository looks up a repository of a site.
	Repository(siteID, namespace, repo string) (Repository, bool)
	// CreateRepository records a repository created by a push.
	CreateRepository(siteID, namespace, repo string, public bool) error
}
