// Package world is the acr-emulator's model of the cloud it emulates: accounts, RAM users, roles,
// policies, OIDC providers and Container Registry instances with their namespaces and repositories.
//
// A World is loaded from a world.yaml file (Load, Parse) or built in (Default), validated with
// field-path errors, then indexed. Reads are lock-free on immutable identity data; registry
// mutations (CreateNamespace, CreateRepository, EnsureRepository) take the world's mutex.
//
//	w, err := world.Load("world.yaml")      // or world.Default(world.DefaultOptions{})
//	inst, _ := w.InstanceByID("cri-...")
//	created, err := w.EnsureRepository(inst, "apps", "web") // auto-create on push
package world

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
)

// Editions of a registry instance.
const (
	EditionEnterprise = "Enterprise"
	EditionPersonal   = "Personal"
)

// Repository types.
const (
	RepoTypePublic  = "PUBLIC"
	RepoTypePrivate = "PRIVATE"
)

// Default values.
const (
	DefaultTokenTTL           = time.Hour
	DefaultMaxSessionDuration = 3600
	MinMaxSessionDuration     = 3600
	MaxMaxSessionDuration     = 43200
)

// Sentinel errors returned by lookups and mutations; match them with errors.Is.
var (
	ErrNotFound      = errors.New("not found")
	ErrAlreadyExists = errors.New("already exists")
	ErrAutoCreateOff = errors.New("namespace does not auto-create repositories")
)

// Duration is a time.Duration written as a Go duration string ("1h", "60s") in world files.
type Duration time.Duration

// UnmarshalJSON parses "90s" or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n int64
		if err2 := json.Unmarshal(b, &n); err2 != nil {
			return fmt.Errorf("want a duration such as \"1h\" or \"60s\", got %s", b)
		}
		*d = Duration(time.Duration(n) * time.Second)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("want a duration such as \"1h\" or \"60s\", got %q", s)
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes the duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// World is the whole emulated cloud.
type World struct {
	// TokenTTL is the lifetime of registry AuthorizationTokens (default 1h); a token also ends
	// when the STS session that minted it ends.
	TokenTTL Duration `json:"tokenTTL,omitempty"`
	// ECSRole names the RAM role the ECS metadata service hands out.
	ECSRole *ECSRole `json:"ecsRole,omitempty"`
	// Accounts are the Alibaba Cloud accounts.
	Accounts []*Account `json:"accounts"`

	mu        sync.RWMutex
	byUID     map[string]*Account
	byName    map[string]*Account
	akIndex   map[string]accessKeyRef
	instances map[string]*Instance // by ID
	domains   map[string]*Instance // EE registry host -> instance
}

// ECSRole selects the role of the emulated ECS instance's metadata service.
type ECSRole struct {
	Account string `json:"account"` // account name or uid
	Role    string `json:"role"`
}

// Account is an Alibaba Cloud account (the root identity).
type Account struct {
	Name          string          `json:"name"`
	UID           string          `json:"uid"`
	AccessKeys    []AccessKey     `json:"accessKeys,omitempty"`
	Users         []*User         `json:"users,omitempty"`
	Roles         []*Role         `json:"roles,omitempty"`
	Policies      []*Policy       `json:"policies,omitempty"`
	OIDCProviders []*OIDCProvider `json:"oidcProviders,omitempty"`
	Instances     []*Instance     `json:"instances,omitempty"`
	// Personal lists Personal Edition namespaces per region.
	Personal []*Instance `json:"personal,omitempty"`
}

// AccessKey is an AccessKey pair. Secret is never logged.
type AccessKey struct {
	ID     string `json:"id"`
	Secret string `json:"secret,omitempty"`
}

// String hides the secret.
func (k AccessKey) String() string { return k.ID + ":REDACTED" }

// User is a RAM user.
type User struct {
	Name       string      `json:"name"`
	AccessKeys []AccessKey `json:"accessKeys,omitempty"`
	// Password is the fixed registry "access credential" used with docker login; empty means
	// none was set (Personal /tokens then answers USER_NOT_EXIST).
	Password string `json:"password,omitempty"`
	// Policies names identity policies: the account's custom policies or system policies.
	Policies []string `json:"policies,omitempty"`

	account *Account
}

// Account returns the owning account.
func (u *User) Account() *Account { return u.account }

// ARN returns acs:ram::<uid>:user/<name>.
func (u *User) ARN() string { return "acs:ram::" + u.account.UID + ":user/" + u.Name }

// ID returns a stable numeric-looking user id.
func (u *User) ID() string { return stableDigits("user/"+u.account.UID+"/"+u.Name, 16) }

// Role is a RAM role.
type Role struct {
	Name               string         `json:"name"`
	Description        string         `json:"description,omitempty"`
	TrustPolicy        PolicyDocument `json:"trustPolicy"`
	MaxSessionDuration int            `json:"maxSessionDuration,omitempty"`
	Policies           []string       `json:"policies,omitempty"`

	account *Account
}

// Account returns the owning account.
func (r *Role) Account() *Account { return r.account }

// ARN returns acs:ram::<uid>:role/<name>.
func (r *Role) ARN() string { return "acs:ram::" + r.account.UID + ":role/" + r.Name }

// ID returns the stable role id used in AssumedRoleId.
func (r *Role) ID() string { return stableDigits("role/"+r.account.UID+"/"+r.Name, 18) }

// Policy is a custom policy of an account.
type Policy struct {
	Name     string         `json:"name"`
	Document PolicyDocument `json:"document"`
}

// OIDCProvider is a RAM OIDC identity provider.
type OIDCProvider struct {
	Name      string   `json:"name"`
	IssuerURL string   `json:"issuerURL"`
	ClientIDs []string `json:"clientIds"`
	// One JWKS source: inline JSON, a file, or a URL (e.g. a kube-apiserver's /openid/v1/jwks).
	JWKS     json.RawMessage `json:"jwks,omitempty"`
	JWKSFile string          `json:"jwksFile,omitempty"`
	JWKSURL  string          `json:"jwksURL,omitempty"`
	// CAFile and BearerTokenFile configure the HTTPS fetch of JWKSURL.
	CAFile          string `json:"caFile,omitempty"`
	BearerTokenFile string `json:"bearerTokenFile,omitempty"`

	account *Account
}

// Account returns the owning account.
func (p *OIDCProvider) Account() *Account { return p.account }

// ARN returns acs:ram::<uid>:oidc-provider/<name>.
func (p *OIDCProvider) ARN() string { return "acs:ram::" + p.account.UID + ":oidc-provider/" + p.Name }

// Endpoint is an instance's internet or VPC endpoint.
type Endpoint struct {
	Enable bool `json:"enable"`
	// Whitelist holds CIDRs (or single addresses) allowed to use the internet endpoint; empty
	// means every source is allowed.
	Whitelist []string `json:"whitelist,omitempty"`
}

// Instance is a Container Registry instance: an Enterprise Edition instance, or the Personal
// Edition namespaces of one account in one region.
type Instance struct {
	ID               string        `json:"id,omitempty"`
	Name             string        `json:"name,omitempty"`
	Region           string        `json:"region"`
	Specification    string        `json:"specification,omitempty"`
	InternetEndpoint Endpoint      `json:"internetEndpoint"`
	VPCEndpoint      Endpoint      `json:"vpcEndpoint"`
	Namespaces       []*Namespace  `json:"namespaces,omitempty"`
	Repositories     []*Repository `json:"repositories,omitempty"`
	// Images are references (namespace/repo:tag) the registry side seeds at start.
	Images []string `json:"images,omitempty"`

	edition  string
	owner    *Account
	prefixes []netip.Prefix
	created  time.Time
}

// Namespace is a registry namespace.
type Namespace struct {
	Name            string `json:"name"`
	AutoCreateRepo  bool   `json:"autoCreateRepo"`
	DefaultRepoType string `json:"defaultRepoType,omitempty"`
}

// ID returns a stable namespace id.
func (n *Namespace) ID() string { return "crn-" + stableHex("ns/"+n.Name, 16) }

// Repository is a registry repository.
type Repository struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	RepoType  string `json:"repoType,omitempty"`
	Summary   string `json:"summary,omitempty"`

	id      string
	created time.Time
}

// ID returns the crr-… repository id.
func (r *Repository) ID() string { return r.id }

// Created returns the creation time.
func (r *Repository) Created() time.Time { return r.created }

// Edition returns EditionEnterprise or EditionPersonal.
func (i *Instance) Edition() string { return i.edition }

// Owner returns the owning account.
func (i *Instance) Owner() *Account { return i.owner }

// Created returns the instance creation time (the world's load time).
func (i *Instance) Created() time.Time { return i.created }

// InternetDomain returns <name>-registry.<region>.cr.aliyuncs.com, or registry.<region>.aliyuncs.com for Personal.
func (i *Instance) InternetDomain() string {
	if i.edition == EditionPersonal {
		return "registry." + i.Region + ".aliyuncs.com"
	}
	return i.Name + "-registry." + i.Region + ".cr.aliyuncs.com"
}

// VPCDomain returns <name>-registry-vpc.<region>.cr.aliyuncs.com, or registry-vpc.<region>.aliyuncs.com for Personal.
func (i *Instance) VPCDomain() string {
	if i.edition == EditionPersonal {
		return "registry-vpc." + i.Region + ".aliyuncs.com"
	}
	return i.Name + "-registry-vpc." + i.Region + ".cr.aliyuncs.com"
}

// Domains returns the domains of the enabled endpoints (internet first).
func (i *Instance) Domains() []string {
	var d []string
	if i.InternetEndpoint.Enable {
		d = append(d, i.InternetDomain())
	}
	if i.VPCEndpoint.Enable {
		d = append(d, i.VPCDomain())
	}
	return d
}

// ARN returns acs:cr:<region>:<uid>:instance/<id>.
func (i *Instance) ARN() string {
	return "acs:cr:" + i.Region + ":" + i.owner.UID + ":instance/" + i.ID
}

// RepositoryARN returns the RAM resource of a repository:
// acs:cr:<region>:<uid>:repository/<instanceId>/<ns>/<repo> (Personal: …:repository/<ns>/<repo>).
func (i *Instance) RepositoryARN(namespace, repo string) string {
	base := "acs:cr:" + i.Region + ":" + i.owner.UID + ":repository/"
	if i.edition == EditionPersonal {
		return base + namespace + "/" + repo
	}
	return base + i.ID + "/" + namespace + "/" + repo
}

// NamespaceARN returns the repository-namespace resource (…:repository/<instanceId>/<ns>).
func (i *Instance) NamespaceARN(namespace string) string {
	base := "acs:cr:" + i.Region + ":" + i.owner.UID + ":repository/"
	if i.edition == EditionPersonal {
		return base + namespace
	}
	return base + i.ID + "/" + namespace
}

// InternetAllowed reports whether addr may use the internet endpoint (whitelist check).
func (i *Instance) InternetAllowed(addr netip.Addr) bool {
	if !i.InternetEndpoint.Enable {
		return false
	}
	if len(i.prefixes) == 0 {
		return true
	}
	addr = addr.Unmap()
	for _, p := range i.prefixes {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// AccountByUID returns the account with that uid.
func (w *World) AccountByUID(uid string) (*Account, bool) {
	a, ok := w.byUID[uid]
	return a, ok
}

// AccountByName returns the account with that name (or uid).
func (w *World) AccountByName(name string) (*Account, bool) {
	if a, ok := w.byName[name]; ok {
		return a, true
	}
	return w.AccountByUID(name)
}

// RootARN returns acs:ram::<uid>:root.
func (a *Account) RootARN() string { return "acs:ram::" + a.UID + ":root" }

// User returns the named RAM user. The lookups skip null entries, which validation reports
// while it is still resolving references (a world.yaml with "roles: [null]" panicked).
func (a *Account) User(name string) (*User, bool) {
	for _, u := range a.Users {
		if u != nil && u.Name == name {
			return u, true
		}
	}
	return nil, false
}

// Role returns the named role (role names are case-insensitive in RAM).
func (a *Account) Role(name string) (*Role, bool) {
	for _, r := range a.Roles {
		if r != nil && strings.EqualFold(r.Name, name) {
			return r, true
		}
	}
	return nil, false
}

// Policy returns a custom policy of the account, or a system policy.
func (a *Account) Policy(name string) (*PolicyDocument, bool) {
	for _, p := range a.Policies {
		if p != nil && p.Name == name {
			return &p.Document, true
		}
	}
	d, ok := SystemPolicies[name]
	return d, ok
}

// OIDCProvider returns the named OIDC provider.
func (a *Account) OIDCProvider(name string) (*OIDCProvider, bool) {
	for _, p := range a.OIDCProviders {
		if p != nil && p.Name == name {
			return p, true
		}
	}
	return nil, false
}

// AccessKeyOwner is what an AccessKey id resolves to: an account root (User nil) or a RAM user.
type AccessKeyOwner struct {
	Account *Account
	User    *User
	Secret  string
}

type accessKeyRef struct {
	account *Account
	user    *User
	secret  string
}

// AccessKey resolves a long-term AccessKey id.
func (w *World) AccessKey(id string) (AccessKeyOwner, bool) {
	r, ok := w.akIndex[id]
	if !ok {
		return AccessKeyOwner{}, false
	}
	return AccessKeyOwner{Account: r.account, User: r.user, Secret: r.secret}, true
}

// RoleByARN resolves acs:ram::<uid>:role/<name>.
func (w *World) RoleByARN(arn string) (*Role, bool) {
	uid, rel, ok := splitRAMARN(arn)
	if !ok || !strings.HasPrefix(rel, "role/") {
		return nil, false
	}
	a, ok := w.byUID[uid]
	if !ok {
		return nil, false
	}
	return a.Role(strings.TrimPrefix(rel, "role/"))
}

// OIDCProviderByARN resolves acs:ram::<uid>:oidc-provider/<name>.
func (w *World) OIDCProviderByARN(arn string) (*OIDCProvider, bool) {
	uid, rel, ok := splitRAMARN(arn)
	if !ok || !strings.HasPrefix(rel, "oidc-provider/") {
		return nil, false
	}
	a, ok := w.byUID[uid]
	if !ok {
		return nil, false
	}
	return a.OIDCProvider(strings.TrimPrefix(rel, "oidc-provider/"))
}

// ECSRoleRole returns the role the ECS metadata service hands out, if configured.
func (w *World) ECSRoleRole() (*Role, bool) {
	if w.ECSRole == nil {
		return nil, false
	}
	a, ok := w.AccountByName(w.ECSRole.Account)
	if !ok {
		return nil, false
	}
	return a.Role(w.ECSRole.Role)
}

// TokenLifetime returns the configured registry token lifetime.
func (w *World) TokenLifetime() time.Duration {
	if w.TokenTTL <= 0 {
		return DefaultTokenTTL
	}
	return time.Duration(w.TokenTTL)
}

func splitRAMARN(arn string) (uid, rel string, ok bool) {
	rest, ok := strings.CutPrefix(arn, "acs:ram::")
	if !ok {
		return "", "", false
	}
	uid, rel, ok = strings.Cut(rest, ":")
	return uid, rel, ok
}

// InstanceByID returns the Enterprise instance with that id.
func (w *World) InstanceByID(id string) (*Instance, bool) {
	i, ok := w.instances[id]
	return i, ok
}

// InstanceByDomain maps an Enterprise registry host name (internet or VPC, port ignored) to its
// instance; vpc reports which endpoint the name belongs to.
func (w *World) InstanceByDomain(host string) (inst *Instance, vpc bool, ok bool) {
	host = strings.ToLower(stripPort(host))
	inst, ok = w.domains[host]
	if !ok {
		return nil, false, false
	}
	return inst, host == inst.VPCDomain(), true
}

// PersonalInstance returns the Personal Edition namespaces of an account in a region.
func (w *World) PersonalInstance(uid, region string) (*Instance, bool) {
	a, ok := w.byUID[uid]
	if !ok {
		return nil, false
	}
	for _, p := range a.Personal {
		if p.Region == region {
			return p, true
		}
	}
	return nil, false
}

// PersonalNamespace finds which account's Personal instance in region owns a namespace
// (Personal Edition namespace names are unique per region).
func (w *World) PersonalNamespace(region, namespace string) (*Instance, *Namespace, bool) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	for _, a := range w.Accounts {
		for _, p := range a.Personal {
			if p.Region != region {
				continue
			}
			for _, n := range p.Namespaces {
				if n.Name == namespace {
					return p, n, true
				}
			}
		}
	}
	return nil, nil, false
}

// AllInstances returns every Enterprise instance, sorted by id.
func (w *World) AllInstances() []*Instance {
	out := make([]*Instance, 0, len(w.instances))
	for _, i := range w.instances {
		out = append(out, i)
	}
	slices.SortFunc(out, func(a, b *Instance) int { return strings.Compare(a.ID, b.ID) })
	return out
}

func stripPort(host string) string {
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.Contains(host[i:], "]") {
		return host[:i]
	}
	return host
}

// Namespace returns a namespace of the instance.
func (w *World) Namespace(inst *Instance, name string) (Namespace, bool) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	for _, n := range inst.Namespaces {
		if n.Name == name {
			return *n, true
		}
	}
	return Namespace{}, false
}

// Namespaces returns a snapshot of the instance's namespaces.
func (w *World) Namespaces(inst *Instance) []Namespace {
	w.mu.RLock()
	defer w.mu.RUnlock()
	out := make([]Namespace, len(inst.Namespaces))
	for i, n := range inst.Namespaces {
		out[i] = *n
	}
	return out
}

// Repositories returns a snapshot of the instance's repositories.
func (w *World) Repositories(inst *Instance) []Repository {
	w.mu.RLock()
	defer w.mu.RUnlock()
	out := make([]Repository, len(inst.Repositories))
	for i, r := range inst.Repositories {
		out[i] = *r
	}
	return out
}

// Repository returns one repository.
func (w *World) Repository(inst *Instance, namespace, name string) (Repository, bool) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if r := findRepo(inst, namespace, name); r != nil {
		return *r, true
	}
	return Repository{}, false
}

// RepositoryByID returns a repository by its crr-… id.
func (w *World) RepositoryByID(inst *Instance, id string) (Repository, bool) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	for _, r := range inst.Repositories {
		if r.id == id {
			return *r, true
		}
	}
	return Repository{}, false
}

func findRepo(inst *Instance, namespace, name string) *Repository {
	for _, r := range inst.Repositories {
		if r.Namespace == namespace && r.Name == name {
			return r
		}
	}
	return nil
}

// CreateNamespace adds a namespace; ErrAlreadyExists if it exists.
func (w *World) CreateNamespace(inst *Instance, ns Namespace) error {
	if errs := validateNamespace(Path("namespace"), &ns); len(errs) > 0 {
		return errs
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, n := range inst.Namespaces {
		if n.Name == ns.Name {
			return fmt.Errorf("namespace %q in %s: %w", ns.Name, inst.ID, ErrAlreadyExists)
		}
	}
	inst.Namespaces = append(inst.Namespaces, &ns)
	return nil
}

// CreateRepository adds a repository to an existing namespace; an empty RepoType takes the
// namespace default.
func (w *World) CreateRepository(inst *Instance, repo Repository) (Repository, error) {
	if errs := validateRepoName(Path("repository"), repo.Name); len(errs) > 0 {
		return Repository{}, errs
	}
	if repo.RepoType != "" && repo.RepoType != RepoTypePublic && repo.RepoType != RepoTypePrivate {
		return Repository{}, Invalid("repository.repoType", repo.RepoType, "must be PUBLIC or PRIVATE")
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	ns := findNS(inst, repo.Namespace)
	if ns == nil {
		return Repository{}, fmt.Errorf("namespace %q in %s: %w", repo.Namespace, inst.ID, ErrNotFound)
	}
	if findRepo(inst, repo.Namespace, repo.Name) != nil {
		return Repository{}, fmt.Errorf("repository %s/%s in %s: %w", repo.Namespace, repo.Name, inst.ID, ErrAlreadyExists)
	}
	r := w.addRepoLocked(inst, ns, repo)
	return *r, nil
}

// EnsureRepository returns the repository, creating it when its namespace auto-creates
// repositories (docker push into a new repository). created reports a new repository.
// Errors: ErrNotFound (no namespace), ErrAutoCreateOff.
func (w *World) EnsureRepository(inst *Instance, namespace, name string) (repo Repository, created bool, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if r := findRepo(inst, namespace, name); r != nil {
		return *r, false, nil
	}
	ns := findNS(inst, namespace)
	if ns == nil {
		return Repository{}, false, fmt.Errorf("namespace %q in %s: %w", namespace, instLabel(inst), ErrNotFound)
	}
	if !ns.AutoCreateRepo {
		return Repository{}, false, fmt.Errorf("repository %s/%s in %s: %w", namespace, name, instLabel(inst), ErrAutoCreateOff)
	}
	if errs := validateRepoName(Path("repository"), name); len(errs) > 0 {
		return Repository{}, false, errs
	}
	r := w.addRepoLocked(inst, ns, Repository{Namespace: namespace, Name: name})
	return *r, true, nil
}

// RepoType returns the effective type of a repository, or of a not-yet-created repository in an
// auto-create namespace (the namespace default). ok is false when neither exists.
func (w *World) RepoType(inst *Instance, namespace, name string) (string, bool) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if r := findRepo(inst, namespace, name); r != nil {
		return r.RepoType, true
	}
	if ns := findNS(inst, namespace); ns != nil && ns.AutoCreateRepo {
		return ns.DefaultRepoType, true
	}
	return "", false
}

func instLabel(i *Instance) string {
	if i.ID != "" {
		return i.ID
	}
	return i.InternetDomain()
}

func findNS(inst *Instance, name string) *Namespace {
	for _, n := range inst.Namespaces {
		if n.Name == name {
			return n
		}
	}
	return nil
}

func (w *World) addRepoLocked(inst *Instance, ns *Namespace, repo Repository) *Repository {
	r := repo
	if r.RepoType == "" {
		r.RepoType = ns.DefaultRepoType
	}
	r.id = "crr-" + stableHex(instLabel(inst)+"/"+r.Namespace+"/"+r.Name, 16)
	r.created = time.Now().UTC()
	inst.Repositories = append(inst.Repositories, &r)
	return &r
}

func stableHex(s string, n int) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])[:n]
}

func stableDigits(s string, n int) string {
	h := sha256.Sum256([]byte(s))
	var b strings.Builder
	for i := 0; b.Len() < n; i++ {
		b.WriteByte('0' + h[i%len(h)]%10)
	}
	out := b.String()
	if out[0] == '0' {
		out = "3" + out[1:]
	}
	return out
}
