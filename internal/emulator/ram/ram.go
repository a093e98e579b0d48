// Package ram evaluates the acr-emulator's RAM rules and holds its short-lived credentials: it
// authenticates AccessKeys (long-term and STS), authorizes actions against identity and session
// policies, evaluates trust policies for AssumeRole (RAM, Service and OIDC principals), and
// issues and checks registry AuthorizationTokens.
//
//	svc := ram.New(w)
//	secret, p, err := svc.ResolveAccessKey(akID, securityToken) // verify the signature with secret
//	err = svc.Authorize(p, "cr:GetAuthorizationToken", "*", ram.NewContext(ip, tls, now))
//	user, token, exp := svc.IssueRegistryToken(p, inst)
//	p, inst, err = svc.LookupRegistryToken(user, token)        // registry side
//	err = svc.AuthorizeRepository(p, inst, "ns", "repo", ram.ActionPull, ctx)
package ram

import (
	"crypto/rand"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/ferrypull/ferry/internal/emulator/world"
)

// Registry actions checked on repository ARNs.
const (
	ActionPull   = "cr:PullRepository"
	ActionPush   = "cr:PushRepository"
	ActionCreate = "cr:CreateRepository"
)

// TempUsername is the user name returned with every registry AuthorizationToken.
const TempUsername = "cr_temp_user"

// Service is the RAM/STS state of one emulator: the world plus live STS sessions and registry
// tokens. It is safe for concurrent use.
type Service struct {
	world *world.World
	now   func() time.Time

	mu       sync.Mutex
	sessions map[string]*session       // STS AccessKeyId -> session
	tokens   map[string]*registryToken // AuthorizationToken -> grant
	issued   int
}

type session struct {
	secret, token string
	principal     *Principal
}

type registryToken struct {
	user      string
	principal *Principal
	inst      *world.Instance
	expiry    time.Time
}

// Option configures a Service.
type Option func(*Service)

// WithClock replaces time.Now (tests of expiry).
func WithClock(now func() time.Time) Option { return func(s *Service) { s.now = now } }

// New returns a Service over w.
func New(w *world.World, opts ...Option) *Service {
	s := &Service{world: w, now: time.Now, sessions: map[string]*session{}, tokens: map[string]*registryToken{}}
	for _, o := range opts {
		o(s)
	}
	return s
}

// World returns the world the service evaluates.
func (s *Service) World() *world.World { return s.world }

// Now returns the service clock.
func (s *Service) Now() time.Time { return s.now() }

// ResolveAccessKey returns the signing secret and the identity of an AccessKey id. STS ids
// (STS.…) need their SecurityToken; a session past its expiry gives ErrTokenExpired.
// Errors are *Error values with the real codes.
func (s *Service) ResolveAccessKey(id, securityToken string) (secret string, p *Principal, err error) {
	if strings.HasPrefix(id, "STS.") {
		s.mu.Lock()
		sess, ok := s.sessions[id]
		s.mu.Unlock()
		switch {
		case !ok:
			return "", nil, ErrAccessKeyNotFound
		case securityToken == "":
			return "", nil, ErrMissingToken
		case securityToken != sess.token:
			return "", nil, ErrTokenMismatch
		case sess.principal.Expired(s.now()):
			return "", nil, ErrTokenExpired
		}
		return sess.secret, sess.principal, nil
	}
	owner, ok := s.world.AccessKey(id)
	if !ok {
		return "", nil, ErrAccessKeyNotFound
	}
	if owner.User != nil {
		return owner.Secret, &Principal{Kind: KindUser, Account: owner.Account, User: owner.User}, nil
	}
	return owner.Secret, &Principal{Kind: KindRoot, Account: owner.Account}, nil
}

// Authorize decides whether p may perform action on resource. Root identities may do
// everything in their own account; nobody acts on another account's resources except through
// sts:AssumeRole (which the trust policy then decides). A *DeniedError explains a refusal.
func (s *Service) Authorize(p *Principal, action, resource string, ctx Context) error {
	if p == nil {
		return &DeniedError{Principal: "anonymous", Action: action, Resource: resource, Reason: "no identity"}
	}
	deny := func(reason string, explicit bool) error {
		return &DeniedError{Principal: p.ARN(), Action: action, Resource: resource, Reason: reason, Explicit: explicit}
	}
	if p.Expired(s.now()) {
		return deny("the session has expired", false)
	}
	if acct := resourceAccount(resource); acct != "" && acct != "*" && acct != p.Account.UID && !strings.EqualFold(action, "sts:AssumeRole") {
		return deny("the resource belongs to another account", false)
	}
	if p.Kind == KindRoot {
		return nil
	}
	switch Evaluate(s.identityPolicies(p), action, resource, ctx) {
	case ExplicitDeny:
		return deny("explicitly denied by an identity policy", true)
	case ImplicitDeny:
		return deny("no identity policy allows it", false)
	}
	if p.SessionPolicy != nil {
		switch Evaluate([]*world.PolicyDocument{p.SessionPolicy}, action, resource, ctx) {
		case ExplicitDeny:
			return deny("explicitly denied by the session policy", true)
		case ImplicitDeny:
			return deny("the session policy does not allow it", false)
		}
	}
	return nil
}

func (s *Service) identityPolicies(p *Principal) []*world.PolicyDocument {
	var names []string
	switch p.Kind {
	case KindUser:
		names = p.User.Policies
	case KindAssumedRole:
		names = p.Role.Policies
	}
	docs := make([]*world.PolicyDocument, 0, len(names))
	for _, n := range names {
		if d, ok := p.Account.Policy(n); ok {
			docs = append(docs, d)
		}
	}
	return docs
}

// resourceAccount returns the account field of an acs: ARN ("" for "*" or non-ARNs).
func resourceAccount(arn string) string {
	parts := strings.SplitN(arn, ":", 5)
	if len(parts) < 5 || parts[0] != "acs" {
		return ""
	}
	return parts[3]
}

// AuthorizeRepository checks a registry action (ActionPull, ActionPush, ActionCreate) on a
// repository of inst. PUBLIC repositories allow pull to everyone, including a nil principal
// (anonymous); every other case needs an identity whose policies allow the action.
func (s *Service) AuthorizeRepository(p *Principal, inst *world.Instance, namespace, repo, action string, ctx Context) error {
	arn := inst.RepositoryARN(namespace, repo)
	if action == ActionPull {
		if t, ok := s.world.RepoType(inst, namespace, repo); ok && t == world.RepoTypePublic {
			return nil
		}
	}
	if p == nil {
		return &DeniedError{Principal: "anonymous", Action: action, Resource: arn, Reason: "anonymous access is limited to pulling public repositories"}
	}
	return s.Authorize(p, action, arn, ctx)
}

// Credentials are STS credentials. String hides the secret and the token.
type Credentials struct {
	AccessKeyID     string
	AccessKeySecret string
	SecurityToken   string
	Expiration      time.Time
}

func (c Credentials) String() string { return c.AccessKeyID + ":REDACTED" }

// AssumeRoleInput are the STS AssumeRole parameters.
type AssumeRoleInput struct {
	RoleArn         string
	RoleSessionName string
	DurationSeconds int // 0 means 3600
	Policy          string
	ExternalID      string
	SourceIdentity  string
}

var sessionNameRE = regexp.MustCompile(`^[A-Za-z0-9.@_-]{2,64}$`)

func (s *Service) prepare(in AssumeRoleInput) (*world.Role, *world.PolicyDocument, time.Duration, error) {
	if !strings.HasPrefix(in.RoleArn, "acs:ram::") || !strings.Contains(in.RoleArn, ":role/") {
		return nil, nil, 0, ErrRoleArn
	}
	if !sessionNameRE.MatchString(in.RoleSessionName) {
		return nil, nil, 0, ErrSessionName
	}
	role, ok := s.world.RoleByARN(in.RoleArn)
	if !ok {
		return nil, nil, 0, ErrRoleNotExist
	}
	d := in.DurationSeconds
	if d == 0 {
		d = 3600
	}
	if d < 900 || d > role.MaxSessionDuration {
		return nil, nil, 0, &Error{HTTPStatus: ErrDuration.HTTPStatus, Code: ErrDuration.Code,
			Message: fmt.Sprintf("The Min/Max value of DurationSeconds is 15min/%ds.", role.MaxSessionDuration)}
	}
	var pol *world.PolicyDocument
	if in.Policy != "" {
		var err error
		if pol, err = world.ParsePolicyDocument([]byte(in.Policy), false); err != nil {
			return nil, nil, 0, ErrPolicyGrammar
		}
	}
	return role, pol, time.Duration(d) * time.Second, nil
}

// AssumeRole runs STS AssumeRole for caller: root callers are refused, the caller's identity
// policies must allow sts:AssumeRole on the role, and the role's trust policy must name the
// caller (its account root, user or role) with matching conditions (sts:ExternalId).
func (s *Service) AssumeRole(caller *Principal, in AssumeRoleInput, ctx Context) (Credentials, *Principal, error) {
	if caller.Kind == KindRoot {
		return Credentials{}, nil, ErrRootCannotAssume
	}
	role, pol, dur, err := s.prepare(in)
	if err != nil {
		return Credentials{}, nil, err
	}
	if err := s.Authorize(caller, "sts:AssumeRole", role.ARN(), ctx); err != nil {
		return Credentials{}, nil, &Error{HTTPStatus: 403, Code: "NoPermission", Message: ErrNotAuthorizedByRAM.Message}
	}
	tctx := Context{}
	for k, v := range ctx {
		tctx[k] = v
	}
	if in.ExternalID != "" {
		tctx.Set("sts:ExternalId", in.ExternalID)
	}
	if !trusts(role, func(pr *world.PolicyPrincipal) bool { return ramPrincipalMatches(pr.RAM, caller) }, tctx) {
		return Credentials{}, nil, ErrNotTrusted
	}
	chain := append(append([]string{}, caller.Chain...), caller.ARN())
	return s.startSession(role, in, pol, dur, chain)
}

// AssumeRoleForService issues credentials of role to a cloud service principal (the ECS
// metadata service uses "ecs.aliyuncs.com"); the trust policy must name the service.
func (s *Service) AssumeRoleForService(role *world.Role, service, sessionName string, d time.Duration) (Credentials, *Principal, error) {
	if !trusts(role, func(pr *world.PolicyPrincipal) bool { return contains(pr.Service, service) }, Context{}) {
		return Credentials{}, nil, ErrNotTrusted
	}
	in := AssumeRoleInput{RoleArn: role.ARN(), RoleSessionName: sessionName}
	return s.startSession(role, in, nil, d, []string{service})
}

// OIDCIdentity is a verified OIDC token's identity.
type OIDCIdentity struct {
	Issuer   string
	Audience []string
	Subject  string
}

// AssumeRoleWithOIDC issues role credentials to the holder of a verified OIDC token from
// provider: the provider must belong to the role's account and the trust policy must name it as
// Federated principal with matching oidc:iss / oidc:aud / oidc:sub conditions.
func (s *Service) AssumeRoleWithOIDC(provider *world.OIDCProvider, id OIDCIdentity, in AssumeRoleInput) (Credentials, *Principal, error) {
	role, pol, dur, err := s.prepare(in)
	if err != nil {
		return Credentials{}, nil, err
	}
	if provider.Account() != role.Account() {
		return Credentials{}, nil, ErrOIDCNotTrusted
	}
	ctx := Context{}.Set("oidc:iss", id.Issuer).Set("oidc:aud", id.Audience...).Set("oidc:sub", id.Subject)
	if !trusts(role, func(pr *world.PolicyPrincipal) bool { return contains(pr.Federated, provider.ARN()) }, ctx) {
		return Credentials{}, nil, ErrOIDCNotTrusted
	}
	return s.startSession(role, in, pol, dur, []string{provider.ARN()})
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// trusts evaluates a trust policy: a matching Deny refuses, otherwise any matching Allow admits.
func trusts(role *world.Role, principal func(*world.PolicyPrincipal) bool, ctx Context) bool {
	allowed := false
	for i := range role.TrustPolicy.Statement {
		st := &role.TrustPolicy.Statement[i]
		if st.Principal == nil || !principal(st.Principal) {
			continue
		}
		if len(st.Action) > 0 && !anyMatch(st.Action, "sts:AssumeRole", true) {
			continue
		}
		if len(st.NotAction) > 0 && anyMatch(st.NotAction, "sts:AssumeRole", true) {
			continue
		}
		if !conditionsMatch(st.Condition, ctx) {
			continue
		}
		if st.Effect == "Deny" {
			return false
		}
		allowed = true
	}
	return allowed
}

// ramPrincipalMatches: "acs:ram::<uid>:root" (or a bare uid) admits any identity of that account;
// a user ARN admits that user; a role ARN admits sessions of that role.
func ramPrincipalMatches(list []string, p *Principal) bool {
	for _, entry := range list {
		switch {
		case entry == "*":
			return true
		case entry == p.Account.RootARN() || entry == p.Account.UID:
			return true
		case p.Kind == KindUser && strings.EqualFold(entry, p.User.ARN()):
			return true
		case p.Kind == KindAssumedRole && strings.EqualFold(entry, p.Role.ARN()):
			return true
		}
	}
	return false
}

func (s *Service) startSession(role *world.Role, in AssumeRoleInput, pol *world.PolicyDocument, d time.Duration, chain []string) (Credentials, *Principal, error) {
	now := s.now()
	creds := Credentials{
		AccessKeyID:     "STS." + randomAlnum(24),
		AccessKeySecret: randomAlnum(40),
		SecurityToken:   "CAIS" + randomAlnum(200),
		Expiration:      now.Add(d).UTC().Truncate(time.Second),
	}
	p := &Principal{
		Kind: KindAssumedRole, Account: role.Account(), Role: role, SessionName: in.RoleSessionName,
		Expiry: creds.Expiration, SessionPolicy: pol, Chain: chain, SourceIdentity: in.SourceIdentity,
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// Keep expired sessions for a day so their use is reported as expired, not unknown.
	for id, sess := range s.sessions {
		if now.Sub(sess.principal.Expiry) > 24*time.Hour {
			delete(s.sessions, id)
		}
	}
	s.sessions[creds.AccessKeyID] = &session{secret: creds.AccessKeySecret, token: creds.SecurityToken, principal: p}
	return creds, p, nil
}

// IssueRegistryToken mints a registry AuthorizationToken for p on inst. It expires after the
// world's token TTL or when p's STS session ends, whichever is first.
func (s *Service) IssueRegistryToken(p *Principal, inst *world.Instance) (user, token string, expiry time.Time) {
	now := s.now()
	expiry = now.Add(s.world.TokenLifetime())
	if p.Kind == KindAssumedRole && !p.Expiry.IsZero() && p.Expiry.Before(expiry) {
		expiry = p.Expiry
	}
	expiry = expiry.Truncate(time.Millisecond)
	token = randomAlnum(48)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.issued++
	if s.issued%256 == 0 {
		for k, t := range s.tokens {
			if now.Sub(t.expiry) > 24*time.Hour {
				delete(s.tokens, k)
			}
		}
	}
	s.tokens[token] = &registryToken{user: TempUsername, principal: p, inst: inst, expiry: expiry}
	return TempUsername, token, expiry
}

// LookupRegistryToken resolves a registry login made with an AuthorizationToken. Unknown pairs
// give ErrBadCredentials, expired ones ErrRegistryTokenExpired.
func (s *Service) LookupRegistryToken(user, token string) (*Principal, *world.Instance, error) {
	s.mu.Lock()
	t, ok := s.tokens[token]
	s.mu.Unlock()
	if !ok || t.user != user {
		return nil, nil, ErrBadCredentials
	}
	if !s.now().Before(t.expiry) {
		return nil, nil, ErrRegistryTokenExpired
	}
	return t.principal, t.inst, nil
}

// AuthenticateRegistry resolves a registry login (docker login, token realm Basic auth) for
// inst: either a TempUsername/AuthorizationToken pair minted for the same instance, or a RAM
// user's fixed registry password with username "<user>@<uid>" (or just "<user>" when the
// user belongs to inst's owner).
func (s *Service) AuthenticateRegistry(user, password string, inst *world.Instance) (*Principal, error) {
	if user == TempUsername {
		p, tokInst, err := s.LookupRegistryToken(user, password)
		if err != nil {
			return nil, err
		}
		if !sameRegistry(tokInst, inst) {
			return nil, ErrWrongInstance
		}
		return p, nil
	}
	name, uid, hasUID := strings.Cut(user, "@")
	acct := inst.Owner()
	if hasUID {
		a, ok := s.world.AccountByUID(uid)
		if !ok {
			return nil, ErrBadCredentials
		}
		acct = a
	}
	u, ok := acct.User(name)
	if !ok || u.Password == "" || !constantTimeEqual(u.Password, password) {
		return nil, ErrBadCredentials
	}
	return &Principal{Kind: KindUser, Account: acct, User: u}, nil
}

// sameRegistry: EE tokens are per instance; Personal tokens are per account and region and
// also work for the Personal namespaces of other accounts in that region.
func sameRegistry(a, b *world.Instance) bool {
	if a == b {
		return true
	}
	return a != nil && b != nil && a.Edition() == world.EditionPersonal && b.Edition() == world.EditionPersonal && a.Region == b.Region
}

func constantTimeEqual(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	var v byte
	for i := 0; i < len(a); i++ {
		v |= a[i] ^ b[i]
	}
	return v == 0
}

const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

func randomAlnum(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alnum[int(b[i])%len(alnum)]
	}
	return string(b)
}
