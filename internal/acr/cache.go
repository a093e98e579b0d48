package acr

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aliyun/credentials-go/credentials"
	"golang.org/x/sync/singleflight"

	"github.com/ferrypull/ferry/internal/cloudcred"
)

// Minter is what the cache calls; *Client implements it.
type Minter interface {
	AuthorizationToken(ctx context.Context, cred credentials.Credential, inst Instance) (Token, error)
	Domains(ctx context.Context, cred credentials.Credential, inst Instance) ([]string, error)
}

var _ Minter = (*Client)(nil)

// Metrics receives one observation per API call and the expiry of every new token.
// Implementations must be safe for concurrent use. See [NewPrometheusMetrics].
type Metrics interface {
	// ObserveCall is called after every API call: api is "GetAuthorizationToken" or
	// "ListInstanceEndpoint", instance is Instance.Key(), err is nil on success.
	ObserveCall(api, instance string, d time.Duration, err error)
	// SetExpiry is called for every new token.
	SetExpiry(instance string, expiry time.Time)
}

type nopMetrics struct{}

func (nopMetrics) ObserveCall(string, string, time.Duration, error) {}
func (nopMetrics) SetExpiry(string, time.Time)                      {}

// CacheOptions tune a [Cache]; the zero value is production-ready.
type CacheOptions struct {
	Metrics Metrics
	// Logger receives one line per refresh and failure; discarded by default.
	Logger *slog.Logger
	// Now is the clock (tests).
	Now func() time.Time
	// Rand returns a number in [0,1) for jitter (tests); default math/rand.
	Rand func() float64
	// JitterFraction of a token's life is the most a refresh is moved earlier (default 0.1),
	// capped at MaxJitter (default 2m), so refreshes of many pairs spread out.
	JitterFraction float64
	MaxJitter      time.Duration
	// BackoffBase and BackoffMax bound the exponential backoff after failures (defaults 1s
	// and 5m); each delay is jittered between 50% and 100%. While a still-valid token is
	// being served, a delay is also capped at a quarter of that token's remaining life.
	BackoffBase time.Duration
	BackoffMax  time.Duration
	// MinRefreshInterval is the least time between two successful refreshes of one pair
	// (default 10s), so a threshold longer than the token life cannot cause a call storm.
	MinRefreshInterval time.Duration
	// DomainTTL: discovered domains are looked up again at most this often (default 1h).
	DomainTTL time.Duration
	// CallTimeout bounds one refresh (default 30s). A refresh is shared by all waiting
	// callers and is not cancelled when one of them gives up.
	CallTimeout time.Duration
}

// Stats counts API calls made by a cache.
type Stats struct {
	TokenCalls  int64 // GetAuthorizationToken and /tokens
	DomainCalls int64 // ListInstanceEndpoint
	Failures    int64 // failed calls of either kind
}

// Cache holds one token per (identity, instance), shared by all namespaces and callers.
// Concurrent requests for the same pair make one API call (single flight). A token is
// refreshed when less than the caller's minValidity (plus per-token jitter) remains; after
// a failure the pair backs off exponentially, and the last good token is served as long as
// it is valid, so a refresh failure never blanks a credential.
type Cache struct {
	m    Minter
	opts CacheOptions
	log  *slog.Logger
	sf   singleflight.Group

	mu      sync.Mutex
	entries map[string]*entry

	tokenCalls, domainCalls, failures atomic.Int64
}

type entry struct {
	identity  string // Identity.Key()
	instance  string // Instance.Key()
	tok       *Token
	jitter    time.Duration
	domains   []string
	domainsAt time.Time
	failures  int
	retryAt   time.Time
	lastErr   error
}

// NewCache returns a cache minting tokens with m.
func NewCache(m Minter, opts CacheOptions) *Cache {
	if opts.Metrics == nil {
		opts.Metrics = nopMetrics{}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Rand == nil {
		opts.Rand = rand.Float64
	}
	positiveOr(&opts.JitterFraction, 0.1)
	positiveOr(&opts.MaxJitter, 2*time.Minute)
	positiveOr(&opts.BackoffBase, time.Second)
	positiveOr(&opts.BackoffMax, 5*time.Minute)
	positiveOr(&opts.MinRefreshInterval, 10*time.Second)
	positiveOr(&opts.DomainTTL, time.Hour)
	positiveOr(&opts.CallTimeout, 30*time.Second)
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Cache{m: m, opts: opts, log: log, entries: map[string]*entry{}}
}

// positiveOr sets *v to def unless *v is already positive.
func positiveOr[T float64 | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// Stats returns the API call counters.
func (c *Cache) Stats() Stats {
	return Stats{TokenCalls: c.tokenCalls.Load(), DomainCalls: c.domainCalls.Load(), Failures: c.failures.Load()}
}

func cacheKey(id *cloudcred.Identity, inst Instance) string { return id.Key() + "|" + inst.Key() }

// Forget drops the cached token of a pair (after a configuration change).
func (c *Cache) Forget(id *cloudcred.Identity, inst Instance) {
	c.mu.Lock()
	delete(c.entries, cacheKey(id, inst))
	c.mu.Unlock()
}

// Prune drops every cached pair for which keep(identityKey, instanceKey) is false — after a
// configuration change removed an instance or changed its identity — and returns how many
// were dropped.
func (c *Cache) Prune(keep func(identityKey, instanceKey string) bool) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for k, e := range c.entries {
		if !keep(e.identity, e.instance) {
			delete(c.entries, k)
			n++
		}
	}
	return n
}

// Len is the number of cached (identity, instance) pairs.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// Token returns a token for inst minted with id that stays valid for at least
// minValidity if at all possible. When a refresh fails but the cached token is still valid,
// that token is returned with RetryAt set and a nil error; an error is returned only when
// no valid token exists.
func (c *Cache) Token(ctx context.Context, id *cloudcred.Identity, inst Instance, minValidity time.Duration) (Token, error) {
	if id == nil {
		return Token{}, errors.New("acr: nil identity")
	}
	key := cacheKey(id, inst)
	if tok, done, err := c.lookup(key, inst, minValidity); done {
		return tok, err
	}
	ch := c.sf.DoChan(key, func() (any, error) {
		// re-check: a flight that just finished may have refreshed the pair
		if tok, done, err := c.lookup(key, inst, minValidity); done {
			return tok, err
		}
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts.CallTimeout)
		defer cancel()
		return c.refresh(rctx, key, id, inst)
	})
	select {
	case <-ctx.Done():
		return Token{}, fmt.Errorf("acr: token for %s: %w", inst.Key(), ctx.Err())
	case r := <-ch:
		if r.Err != nil {
			return Token{}, r.Err
		}
		return r.Val.(Token), nil
	}
}

// lookup answers from the cache when it can (done=true).
func (c *Cache) lookup(key string, inst Instance, minValidity time.Duration) (Token, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[key]
	if e == nil || e.tok == nil && e.retryAt.IsZero() {
		return Token{}, false, nil
	}
	now := c.opts.Now()
	if e.tok != nil {
		left := e.tok.Expiry.Sub(now)
		if left > minValidity+e.jitter || left > 0 && now.Sub(e.tok.IssuedAt) < c.opts.MinRefreshInterval {
			return e.token(inst), true, nil
		}
	}
	if now.Before(e.retryAt) {
		if e.tok != nil && e.tok.Expiry.After(now) {
			t := e.token(inst)
			t.RetryAt = e.retryAt
			return t, true, nil
		}
		return Token{}, true, fmt.Errorf("acr: token for %s unavailable, next attempt at %s: %w", inst.Key(), e.retryAt.UTC().Format(time.RFC3339), e.lastErr)
	}
	return Token{}, false, nil
}

// token copies the cached token with the instance's domains (configured ones win).
func (e *entry) token(inst Instance) Token {
	t := *e.tok
	if len(inst.Domains) > 0 {
		t.Domains = slices.Clone(inst.Domains)
	} else {
		t.Domains = slices.Clone(e.domains)
	}
	return t
}

func (c *Cache) refresh(ctx context.Context, key string, id *cloudcred.Identity, inst Instance) (Token, error) {
	c.mu.Lock()
	e := c.entries[key]
	if e == nil {
		e = &entry{identity: id.Key(), instance: inst.Key()}
		c.entries[key] = e
	}
	needDomains := len(inst.Domains) == 0 && (e.domains == nil || c.opts.Now().Sub(e.domainsAt) > c.opts.DomainTTL)
	c.mu.Unlock()

	cred := id.Credential()
	start := c.opts.Now()
	c.tokenCalls.Add(1)
	tok, err := c.m.AuthorizationToken(ctx, cred, inst)
	c.opts.Metrics.ObserveCall("GetAuthorizationToken", inst.Key(), c.opts.Now().Sub(start), err)

	var domains []string
	if err == nil && needDomains {
		start = c.opts.Now()
		if !inst.Personal() {
			c.domainCalls.Add(1)
		}
		var derr error
		domains, derr = c.m.Domains(ctx, cred, inst)
		if !inst.Personal() {
			c.opts.Metrics.ObserveCall("ListInstanceEndpoint", inst.Key(), c.opts.Now().Sub(start), derr)
		}
		if derr != nil {
			c.failures.Add(1)
			c.mu.Lock()
			have := e.domains != nil
			c.mu.Unlock()
			if !have {
				err = derr
			} else {
				c.log.Warn("registry domain discovery failed; keeping the known domains", "instance", inst.Key(), "identity", id.Key(), "err", derr)
			}
		}
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.opts.Now()
	if err != nil {
		if !errors.Is(err, context.Canceled) {
			c.failures.Add(1)
		}
		e.failures++
		e.lastErr = err
		delay := c.backoff(e.failures)
		if e.tok != nil && e.tok.Expiry.After(now) {
			// never back off past most of the remaining life of the token being served:
			// the outage may end while it is still valid
			delay = min(delay, max(c.opts.BackoffBase, e.tok.Expiry.Sub(now)/4))
		}
		e.retryAt = now.Add(delay)
		c.log.Warn("registry token refresh failed", "instance", inst.Key(), "identity", id.Key(),
			"failures", e.failures, "retryAt", e.retryAt, "missingRAMAction", MissingAction(err), "err", err)
		if e.tok != nil && e.tok.Expiry.After(now) {
			t := e.token(inst)
			t.RetryAt = e.retryAt
			return t, nil
		}
		return Token{}, err
	}
	tok.IssuedAt = now
	e.tok = &tok
	e.failures, e.lastErr, e.retryAt = 0, nil, time.Time{}
	if domains != nil {
		e.domains, e.domainsAt = domains, now
	}
	life := tok.Expiry.Sub(now)
	e.jitter = time.Duration(c.opts.Rand() * float64(min(time.Duration(float64(life)*c.opts.JitterFraction), c.opts.MaxJitter)))
	if e.jitter < 0 {
		e.jitter = 0
	}
	c.opts.Metrics.SetExpiry(inst.Key(), tok.Expiry)
	c.log.Info("registry token refreshed", "instance", inst.Key(), "identity", id.Key(), "expiry", tok.Expiry)
	return e.token(inst), nil
}

// backoff is BackoffBase·2^(n-1), capped at BackoffMax, jittered to 50–100%.
func (c *Cache) backoff(n int) time.Duration {
	d := c.opts.BackoffBase
	for i := 1; i < n && d < c.opts.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, c.opts.BackoffMax)
	return time.Duration(float64(d) * (0.5 + 0.5*c.opts.Rand()))
}
