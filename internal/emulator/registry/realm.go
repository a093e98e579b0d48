package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/distribution/distribution/v3/registry/auth/token"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Issuer is the "iss" claim of every registry token (the name of ACR's realm).
const Issuer = "dockerauth.aliyuncs.com"

// RAM actions checked for registry operations (reference §9.4).
const (
	ActionPull       = "cr:PullRepository"
	ActionPush       = "cr:PushRepository"
	ActionDelete     = "cr:DeleteRepository"
	ActionCreateRepo = "cr:CreateRepository"
	ActionCatalog    = "cr:ListRepository"
)

// realm issues registry tokens.
type realm struct {
	dir    Directory
	signer jose.Signer
	ttl    time.Duration
	now    func() time.Time
	log    *slog.Logger
}

func newRealm(dir Directory, key *signingKey, ttl time.Duration, now func() time.Time, log *slog.Logger) (*realm, error) {
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key.priv, KeyID: key.kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return nil, fmt.Errorf("token signer: %w", err)
	}
	return &realm{dir: dir, signer: signer, ttl: ttl, now: now, log: log}, nil
}

// tokenResponse is the token endpoint's answer (Docker token spec and OAuth2).
type tokenResponse struct {
	Token       string `json:"token"`
	AccessToken string `json:"access_token"`
	ExpiresIn   int    `json:"expires_in"`
	IssuedAt    string `json:"issued_at"`
}

// serve handles one token request for the sites known by service name.
func (rl *realm) serve(w http.ResponseWriter, r *http.Request, sites map[string]*site, src netip.Addr, viaVPC func(*site) bool) {
	tr, err := ParseTokenRequest(r)
	if err != nil {
		rl.log.Info("registry token", "decision", "deny", "reason", err.Error(), "source", src.String())
		writeRegistryError(w, http.StatusBadRequest, "UNSUPPORTED", err.Error())
		return
	}
	s, ok := sites[tr.Service]
	if !ok {
		rl.log.Info("registry token", "decision", "deny", "reason", "unknown service", "service", truncate(tr.Service))
		writeRegistryError(w, http.StatusBadRequest, "UNSUPPORTED", fmt.Sprintf("unknown service %q", truncate(tr.Service)))
		return
	}
	if !viaVPC(s) {
		if reason := s.internetDenied(src); reason != "" {
			rl.log.Info("registry token", "site", s.ID, "decision", "deny", "reason", reason, "source", src.String())
			writeRegistryError(w, http.StatusForbidden, "DENIED", reason)
			return
		}
	}
	if tr.GrantType == "refresh_token" {
		// The realm never issues refresh tokens, so none can be valid.
		rl.log.Info("registry token", "site", s.ID, "decision", "deny", "reason", "unknown refresh token")
		writeRegistryError(w, http.StatusUnauthorized, "UNAUTHORIZED", "invalid refresh token")
		return
	}
	var p Principal
	if tr.HasCredentials {
		p, err = rl.dir.Login(s.ID, tr.Username, tr.Password)
		if err != nil {
			reason := "bad credentials"
			if errors.Is(err, ErrTokenExpired) {
				reason = "authorization token expired"
			}
			rl.log.Info("registry login", "site", s.ID, "user", truncate(tr.Username), "decision", "deny", "reason", reason, "source", src.String())
			w.Header().Set("WWW-Authenticate", `Basic realm="acr-emulator"`)
			writeRegistryError(w, http.StatusUnauthorized, "UNAUTHORIZED", reason)
			return
		}
	}
	principal := "anonymous"
	if p != nil {
		principal = p.String()
		if len(tr.Scopes) == 0 {
			rl.log.Info("registry login", "site", s.ID, "principal", principal, "decision", "allow", "source", src.String())
		}
	}
	var access []*token.ResourceActions
	for _, sc := range tr.Scopes {
		granted := rl.grant(s, p, principal, sc, src)
		if len(granted) == 0 {
			continue
		}
		access = append(access, &token.ResourceActions{Type: sc.Type, Name: sc.Name, Actions: granted})
	}
	now := rl.now()
	claims := token.ClaimSet{
		Issuer:     Issuer,
		Subject:    subject(p),
		Audience:   token.AudienceList{s.Service()},
		Expiration: now.Add(rl.ttl).Unix(),
		NotBefore:  now.Add(-5 * time.Minute).Unix(),
		IssuedAt:   now.Unix(),
		JWTID:      randomID(),
		Access:     access,
	}
	if claims.Access == nil {
		claims.Access = []*token.ResourceActions{}
	}
	raw, err := jwt.Signed(rl.signer).Claims(claims).Serialize()
	if err != nil {
		rl.log.Error("registry token", "site", s.ID, "error", err.Error())
		writeRegistryError(w, http.StatusInternalServerError, "UNKNOWN", "cannot sign token")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(tokenResponse{
		Token: raw, AccessToken: raw,
		ExpiresIn: int(rl.ttl / time.Second),
		IssuedAt:  now.UTC().Format(time.RFC3339),
	})
}

func subject(p Principal) string {
	if p == nil {
		return ""
	}
	return p.String()
}

// grant returns the actions of sc that p may perform, dropping the others.
func (rl *realm) grant(s *site, p Principal, principal string, sc Scope, src netip.Addr) []string {
	logDecision := func(action, decision, reason string) {
		rl.log.Info("registry auth", "site", s.ID, "principal", principal, "resource", sc.Type+":"+sc.Name,
			"action", action, "decision", decision, "reason", reason, "source", src.String())
	}
	switch sc.Type {
	case "registry":
		if sc.Name != "catalog" {
			return nil
		}
		if p == nil {
			logDecision("catalog", "deny", "anonymous")
			return nil
		}
		if err := rl.dir.Authorize(p, ActionCatalog, s.instanceARN(), src); err != nil {
			logDecision("catalog", "deny", err.Error())
			return nil
		}
		logDecision("catalog", "allow", ActionCatalog)
		return []string{"*"}
	case "repository":
	default:
		return nil
	}
	ns, repo, ok := splitRepository(sc.Name)
	if !ok {
		logDecision(strings.Join(sc.Actions, ","), "deny", "repository name is not <namespace>/<repo>")
		return nil
	}
	nsInfo, nsOK := rl.dir.Namespace(s.ID, ns)
	repoInfo, repoOK := rl.dir.Repository(s.ID, ns, repo)
	owner := s.OwnerUID
	if nsOK && nsInfo.OwnerUID != "" {
		owner = nsInfo.OwnerUID
	}
	arn := s.repositoryARN(owner, ns, repo)
	var granted []string
	actions := slices.Clone(sc.Actions)
	slices.Sort(actions)
	for _, a := range slices.Compact(actions) {
		switch a {
		case "pull":
			switch {
			case repoOK && repoInfo.Public:
				logDecision(a, "allow", "public repository")
				granted = append(granted, a)
			case p == nil:
				logDecision(a, "deny", "anonymous pull of a private or unknown repository")
			default:
				if err := rl.dir.Authorize(p, ActionPull, arn, src); err != nil {
					logDecision(a, "deny", err.Error())
					continue
				}
				logDecision(a, "allow", ActionPull)
				granted = append(granted, a)
			}
		case "push":
			if p == nil {
				logDecision(a, "deny", "anonymous")
				continue
			}
			if !nsOK {
				logDecision(a, "deny", fmt.Sprintf("namespace %q does not exist", ns))
				continue
			}
			if err := rl.dir.Authorize(p, ActionPush, arn, src); err != nil {
				logDecision(a, "deny", err.Error())
				continue
			}
			if !repoOK {
				if !nsInfo.AutoCreateRepo {
					logDecision(a, "deny", fmt.Sprintf("repository does not exist and namespace %q does not auto-create repositories", ns))
					continue
				}
				if err := rl.dir.Authorize(p, ActionCreateRepo, arn, src); err != nil {
					logDecision(a, "deny", "auto-create: "+err.Error())
					continue
				}
				if err := rl.dir.CreateRepository(s.ID, ns, repo, nsInfo.DefaultPublic); err != nil {
					logDecision(a, "deny", "auto-create: "+err.Error())
					continue
				}
				repoOK = true
				logDecision(a, "allow", ActionPush+", repository auto-created")
			} else {
				logDecision(a, "allow", ActionPush)
			}
			granted = append(granted, a)
		case "delete":
			if p == nil {
				logDecision(a, "deny", "anonymous")
				continue
			}
			if err := rl.dir.Authorize(p, ActionDelete, arn, src); err != nil {
				logDecision(a, "deny", err.Error())
				continue
			}
			logDecision(a, "allow", ActionDelete)
			granted = append(granted, a)
		default:
			logDecision(a, "deny", "unsupported action")
		}
	}
	return granted
}

// writeRegistryError writes a distribution-style error body.
func writeRegistryError(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"errors": []map[string]any{{"code": code, "message": message, "detail": nil}},
	})
}
