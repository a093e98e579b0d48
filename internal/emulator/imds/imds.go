// Package imds emulates the ECS instance metadata service (http://100.100.100.200) for RAM role
// credentials: IMDSv2 tokens (PUT /latest/api/token), the role name and the role's STS
// credentials under /latest/meta-data/ram/security-credentials/. The handler accepts
// absolute-URI requests, so clients can use it as their HTTP proxy for the hard-coded address.
package imds

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ferrypull/ferry/internal/emulator/ram"
)

// Header names of the IMDSv2 ("security hardening") protocol.
const (
	HeaderTokenTTL = "X-aliyun-ecs-metadata-token-ttl-seconds"
	HeaderToken    = "X-aliyun-ecs-metadata-token"
)

const credsPrefix = "/latest/meta-data/ram/security-credentials/"

// Handler serves the metadata endpoints.
type Handler struct {
	svc        *ram.Service
	log        *slog.Logger
	hardened   bool
	duration   time.Duration
	instanceID string
	region     string

	mu     sync.Mutex
	tokens map[string]time.Time
	creds  *ram.Credentials
}

// Option configures a Handler.
type Option func(*Handler)

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(h *Handler) { h.log = l } }

// Hardened rejects GET requests without a valid IMDSv2 token (security-hardening mode).
func Hardened(on bool) Option { return func(h *Handler) { h.hardened = on } }

// WithSessionDuration sets the life of the role credentials handed out (default 6h).
func WithSessionDuration(d time.Duration) Option { return func(h *Handler) { h.duration = d } }

// WithInstance sets the instance id and region the metadata reports.
func WithInstance(id, region string) Option {
	return func(h *Handler) { h.instanceID, h.region = id, region }
}

// New returns the metadata handler for the world's ECS role (world.ECSRole).
func New(svc *ram.Service, opts ...Option) *Handler {
	h := &Handler{svc: svc, log: slog.New(slog.DiscardHandler), duration: 6 * time.Hour,
		instanceID: "i-ferry0emulator01", region: "cn-hangzhou", tokens: map[string]time.Time{}}
	for _, o := range opts {
		o(h)
	}
	return h
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	status, decision, reason := h.serve(w, r, path)
	h.log.LogAttrs(r.Context(), slog.LevelInfo, "metadata call",
		slog.String("method", r.Method), slog.String("path", path), slog.Int("status", status),
		slog.String("decision", decision), slog.String("reason", reason))
}

func text(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request, path string) (int, string, string) {
	now := h.svc.Now()
	if path == "/latest/api/token" {
		if r.Method != http.MethodPut {
			text(w, http.StatusMethodNotAllowed, "method not allowed")
			return http.StatusMethodNotAllowed, "deny", "token needs PUT"
		}
		ttl, err := strconv.Atoi(r.Header.Get(HeaderTokenTTL))
		if err != nil || ttl < 1 || ttl > 21600 {
			text(w, http.StatusBadRequest, HeaderTokenTTL+" must be an integer from 1 to 21600")
			return http.StatusBadRequest, "deny", "bad token TTL " + strconv.Quote(r.Header.Get(HeaderTokenTTL))
		}
		b := make([]byte, 24)
		_, _ = rand.Read(b)
		tok := hex.EncodeToString(b)
		h.mu.Lock()
		for k, exp := range h.tokens {
			if !now.Before(exp) {
				delete(h.tokens, k)
			}
		}
		h.tokens[tok] = now.Add(time.Duration(ttl) * time.Second)
		h.mu.Unlock()
		text(w, http.StatusOK, tok)
		return http.StatusOK, "allow", "token issued"
	}
	if r.Method != http.MethodGet {
		text(w, http.StatusMethodNotAllowed, "method not allowed")
		return http.StatusMethodNotAllowed, "deny", "metadata needs GET"
	}
	if tok := r.Header.Get(HeaderToken); tok != "" {
		h.mu.Lock()
		exp, ok := h.tokens[tok]
		h.mu.Unlock()
		if !ok || !now.Before(exp) {
			text(w, http.StatusUnauthorized, "invalid or expired metadata token")
			return http.StatusUnauthorized, "deny", "invalid or expired metadata token"
		}
	} else if h.hardened {
		text(w, http.StatusForbidden, "a metadata token is required (security hardening mode)")
		return http.StatusForbidden, "deny", "tokenless request in hardened mode"
	}
	role, hasRole := h.svc.World().ECSRoleRole()
	switch {
	case path == "/latest/meta-data/instance-id":
		text(w, http.StatusOK, h.instanceID)
	case path == "/latest/meta-data/region-id":
		text(w, http.StatusOK, h.region)
	case path == credsPrefix || path == strings.TrimSuffix(credsPrefix, "/"):
		if !hasRole {
			text(w, http.StatusNotFound, "no RAM role is attached to this instance")
			return http.StatusNotFound, "deny", "no ECS role configured"
		}
		text(w, http.StatusOK, role.Name)
	case strings.HasPrefix(path, credsPrefix):
		name := strings.TrimPrefix(path, credsPrefix)
		if !hasRole || !strings.EqualFold(name, role.Name) {
			text(w, http.StatusNotFound, "not found")
			return http.StatusNotFound, "deny", "role " + strconv.Quote(name) + " is not attached"
		}
		creds, err := h.credentials(now)
		if err != nil {
			text(w, http.StatusInternalServerError, "cannot assume the instance role")
			return http.StatusInternalServerError, "deny", err.Error()
		}
		b, _ := json.MarshalIndent(map[string]string{
			"AccessKeyId": creds.AccessKeyID, "AccessKeySecret": creds.AccessKeySecret, "SecurityToken": creds.SecurityToken,
			"Expiration":  creds.Expiration.UTC().Format("2006-01-02T15:04:05Z"),
			"LastUpdated": creds.Expiration.Add(-h.duration).UTC().Format("2006-01-02T15:04:05Z"),
			"Code":        "Success",
		}, "", "  ")
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write(b)
		return http.StatusOK, "allow", "credentials of role " + role.Name
	default:
		text(w, http.StatusNotFound, "not found")
		return http.StatusNotFound, "deny", "unknown path"
	}
	return http.StatusOK, "allow", ""
}

// credentials returns cached role credentials, renewed when less than a quarter of their
// life (at most 30 minutes) remains, as the real service does ahead of expiry.
func (h *Handler) credentials(now time.Time) (ram.Credentials, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	margin := min(h.duration/4, 30*time.Minute)
	if h.creds != nil && now.Before(h.creds.Expiration.Add(-margin)) {
		return *h.creds, nil
	}
	role, _ := h.svc.World().ECSRoleRole()
	creds, _, err := h.svc.AssumeRoleForService(role, "ecs.aliyuncs.com", h.instanceID, h.duration)
	if err != nil {
		return ram.Credentials{}, err
	}
	h.creds = &creds
	return creds, nil
}
