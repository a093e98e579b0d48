// Package eci is the acr-emulator's Elastic Container Instance service: container groups and
// image caches run on a container runtime (the Runtime interface; package eci/cri implements it
// on a containerd's CRI socket). It knows nothing of the wire format: the OpenAPI layer parses
// requests, checks RAM, mints registry credentials and calls the Service.
//
//	svc := eci.New(rt, eci.WithLogger(log))
//	id, err := svc.CreateGroup(eci.GroupSpec{Account: uid, Region: "cn-hangzhou", Containers: cs, Auths: auths})
//	g, ok := svc.Group(uid, id) // status, per-container state, events
package eci

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"
)

// Sentinel errors; match them with errors.Is.
var (
	ErrNotFound        = errors.New("not found")
	ErrCacheNotReady   = errors.New("image cache is not ready")
	ErrNoRuntime       = errors.New("the ECI runtime is not configured")
	ErrTLSNotSupported = errors.New("plain-HTTP and insecure registries need the runtime's registry config_path")
)

// Group statuses (ECI ContainerGroup.Status).
const (
	StatusPending   = "Pending"
	StatusRunning   = "Running"
	StatusSucceeded = "Succeeded"
	StatusFailed    = "Failed"
)

// Container states (ECI Container.CurrentState.State).
const (
	StateWaiting    = "Waiting"
	StateRunning    = "Running"
	StateTerminated = "Terminated"
)

// Image cache statuses (ECI ImageCache.Status; Updating and UpdateFailed are never reached).
const (
	CachePreparing = "Preparing"
	CacheCreating  = "Creating"
	CacheReady     = "Ready"
	CacheFailed    = "Failed"
)

// Restart policies.
const (
	RestartAlways    = "Always"
	RestartNever     = "Never"
	RestartOnFailure = "OnFailure"
)

// TLSMode is how the runtime reaches a registry host.
type TLSMode int

// TLS modes.
const (
	TLSVerify    TLSMode = iota // HTTPS with verification (the default)
	TLSPlainHTTP                // plain HTTP (PlainHttpRegistry)
	TLSInsecure                 // HTTPS without verification (InsecureRegistry)
)

// Auth is a registry credential for the hosts it names. Password is never logged or returned.
type Auth struct {
	// Hosts the credential is for: host or host:port; a host without port matches any port.
	Hosts    []string
	Username string
	Password string
	// Source names where it came from, for events: "AcrRegistryInfo cri-…" or "ImageRegistryCredential".
	Source string
}

// String hides the password.
func (a Auth) String() string { return a.Source + " " + a.Username + ":REDACTED" }

// LogValue hides the password.
func (a Auth) LogValue() slog.Value { return slog.StringValue(a.String()) }

// Matches reports whether the credential is for host (host[:port]).
func (a Auth) Matches(host string) bool {
	for _, h := range a.Hosts {
		if hostMatches(h, host) {
			return true
		}
	}
	return false
}

func hostMatches(pattern, host string) bool {
	pattern, host = strings.ToLower(pattern), strings.ToLower(host)
	if pattern == host {
		return true
	}
	if _, _, err := net.SplitHostPort(pattern); err == nil {
		return false
	}
	h, _, err := net.SplitHostPort(host)
	return err == nil && h == pattern
}

// ContainerSpec is one container of a group.
type ContainerSpec struct {
	Name            string
	Image           string
	ImagePullPolicy string // Always, IfNotPresent (default) or Never
	WorkingDir      string
	Command         []string
	Args            []string
	Env             []EnvVar
}

// EnvVar is an environment variable.
type EnvVar struct{ Key, Value string }

// Registries are the per-request registry settings shared by groups and caches.
type Registries struct {
	Auths     []Auth
	PlainHTTP []string // PlainHttpRegistry entries (host[:port])
	Insecure  []string // InsecureRegistry entries
}

// tlsFor returns how to reach host.
func (r Registries) tlsFor(host string) TLSMode {
	for _, p := range r.PlainHTTP {
		if hostMatches(p, host) {
			return TLSPlainHTTP
		}
	}
	for _, p := range r.Insecure {
		if hostMatches(p, host) {
			return TLSInsecure
		}
	}
	return TLSVerify
}

func (r Registries) authFor(host string) *Auth {
	for i := range r.Auths {
		if r.Auths[i].Matches(host) {
			return &r.Auths[i]
		}
	}
	return nil
}

// GroupSpec is a CreateContainerGroup request, validated.
type GroupSpec struct {
	Account       string // owner uid
	Region        string
	Name          string
	RestartPolicy string // default Always
	Containers    []ContainerSpec
	Registries
	ImageSnapshotID     string // explicit image cache (must be Ready)
	AutoMatchImageCache bool
	// Notes are events the caller adds (e.g. a credential that could not be minted).
	Notes []Event
}

// Event is one ECI event of a group or cache.
type Event struct {
	Type    string // Normal or Warning
	Reason  string
	Message string
	Name    string
	Count   int
	First   time.Time
	Last    time.Time
}

// ContainerState is a container's current or previous state.
type ContainerState struct {
	State        string
	DetailStatus string
	Reason       string
	Message      string
	ExitCode     int
	Started      time.Time
	Finished     time.Time
}

// Container is a container's spec and state.
type Container struct {
	ContainerSpec
	Current      ContainerState
	Previous     ContainerState
	RestartCount int
	Ready        bool
	ImageRef     string
	id           string
}

// Group is a snapshot of a container group.
type Group struct {
	ID            string
	Name          string
	Account       string
	Region        string
	RestartPolicy string
	Status        string
	Created       time.Time
	Succeeded     time.Time
	Failed        time.Time
	Containers    []Container
	Events        []Event
	SandboxID     string
	// ImageCacheID is the cache the group's images came from, if any.
	ImageCacheID string
}

// CacheSpec is a CreateImageCache request, validated.
type CacheSpec struct {
	Account, Region, Name string
	Images                []string
	RetentionDays         int // 0: never expires
	Registries
	Notes []Event
}

// Cache is a snapshot of an image cache.
type Cache struct {
	ID        string
	Name      string
	Account   string
	Region    string
	GroupID   string // the (emulated) instance that built it
	Status    string
	Progress  string
	Images    []string
	Created   time.Time
	Expires   time.Time
	Events    []Event
	imageRefs map[string]string // image -> runtime image ref
}

// Runtime runs sandboxes and containers and pulls images. Package eci/cri implements it.
type Runtime interface {
	// PullImage pulls ref, with auth (nil: anonymous) and the TLS mode of its host, and returns
	// the runtime's image reference.
	PullImage(ctx context.Context, ref string, auth *Auth, mode TLSMode) (string, error)
	// ImageRef returns the runtime's reference of ref if the image is present.
	ImageRef(ctx context.Context, ref string) (string, bool, error)
	RunSandbox(ctx context.Context, s Sandbox) (string, error)
	CreateContainer(ctx context.Context, sandboxID string, s Sandbox, c ContainerSpec, imageRef string, attempt int) (string, error)
	StartContainer(ctx context.Context, id string) error
	ContainerStatus(ctx context.Context, id string) (ContainerState, error)
	ReadLog(ctx context.Context, containerID string) (string, error)
	RemoveSandbox(ctx context.Context, sandboxID string) error
}

// Sandbox names a group's sandbox.
type Sandbox struct {
	GroupID, Name, Account string
}

// Option configures a Service.
type Option func(*Service)

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(s *Service) { s.log = l } }

// WithClock replaces time.Now.
func WithClock(now func() time.Time) Option { return func(s *Service) { s.now = now } }

// WithPollInterval sets how often running containers are checked (default 250ms).
func WithPollInterval(d time.Duration) Option { return func(s *Service) { s.poll = d } }

// Service holds the container groups and image caches of one emulator.
type Service struct {
	rt   Runtime
	log  *slog.Logger
	now  func() time.Time
	poll time.Duration

	mu     sync.Mutex
	groups map[string]*group
	caches map[string]*Cache
	wg     sync.WaitGroup
	ctx    context.Context
	cancel context.CancelFunc
}

type group struct {
	Group
	spec   GroupSpec
	cancel context.CancelFunc
	done   chan struct{}
}

// New returns a Service over rt (nil: every call answers ErrNoRuntime).
func New(rt Runtime, opts ...Option) *Service {
	s := &Service{rt: rt, log: slog.New(slog.DiscardHandler), now: time.Now, poll: 250 * time.Millisecond,
		groups: map[string]*group{}, caches: map[string]*Cache{}}
	for _, o := range opts {
		o(s)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s
}

// Configured reports whether a runtime is configured.
func (s *Service) Configured() bool { return s != nil && s.rt != nil }

// Close stops every group's supervision (the sandboxes stay until DeleteGroup) and waits for it.
func (s *Service) Close() {
	s.cancel()
	s.wg.Wait()
}

func newID(prefix string) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 20)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return prefix + string(b)
}

func (s *Service) event(evs *[]Event, typ, reason, name, format string, args ...any) {
	now := s.now().UTC()
	msg := fmt.Sprintf(format, args...)
	for i := range *evs {
		e := &(*evs)[i]
		if e.Type == typ && e.Reason == reason && e.Message == msg {
			e.Count++
			e.Last = now
			return
		}
	}
	*evs = append(*evs, Event{Type: typ, Reason: reason, Message: msg, Name: name, Count: 1, First: now, Last: now})
}

func withNotes(notes []Event, now time.Time) []Event {
	out := make([]Event, 0, len(notes))
	for _, n := range notes {
		if n.Count == 0 {
			n.Count = 1
		}
		if n.First.IsZero() {
			n.First, n.Last = now, now
		}
		out = append(out, n)
	}
	return out
}

// imageHost returns the registry host of an image reference (docker.io for a bare name).
func imageHost(ref string) string {
	first, _, ok := strings.Cut(ref, "/")
	if !ok || (!strings.ContainsAny(first, ".:") && first != "localhost") {
		return "docker.io"
	}
	return first
}
