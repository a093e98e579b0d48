package acr

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aliyun/credentials-go/credentials"

	"github.com/ferrypull/ferry/internal/cloudcred"
	"github.com/ferrypull/ferry/internal/redact"
	"github.com/ferrypull/ferry/internal/testutil/fakeclock"
	"github.com/ferrypull/ferry/internal/testutil/poll"
)

// scriptedMinter is a FAKE minter used only for the cache's timing and failure logic
// (token lifetimes on a fake clock, injected failures, a call held open); the real
// SDK-to-emulator path is tested in emulator_test.go.
type scriptedMinter struct {
	clock   *fakeclock.Clock
	life    time.Duration
	fail    atomic.Bool
	hold    chan struct{} // if non-nil, AuthorizationToken waits for it
	tokens  atomic.Int64
	domains atomic.Int64
	domFail atomic.Bool
}

func (m *scriptedMinter) AuthorizationToken(ctx context.Context, _ credentials.Credential, inst Instance) (Token, error) {
	n := m.tokens.Add(1)
	if m.hold != nil {
		select {
		case <-m.hold:
		case <-ctx.Done():
			return Token{}, ctx.Err()
		}
	}
	if m.fail.Load() {
		return Token{}, &APIError{Service: "cr", Action: "GetAuthorizationToken", HTTPStatus: 503, Code: "ServiceUnavailable"}
	}
	return Token{Username: "cr_temp_user", Password: redact.Secret(fmt.Sprintf("pw-%s-%d", inst.Key(), n)), Expiry: m.clock.Now().Add(m.life)}, nil
}

func (m *scriptedMinter) Domains(_ context.Context, _ credentials.Credential, inst Instance) ([]string, error) {
	if inst.Personal() {
		return PersonalDomains(inst.Region), nil
	}
	m.domains.Add(1)
	if m.domFail.Load() {
		return nil, &APIError{Service: "cr", Action: "ListInstanceEndpoint", HTTPStatus: 403, Code: "NoPermission"}
	}
	return []string{inst.ID + "-registry." + inst.Region + ".cr.aliyuncs.com", inst.ID + "-registry-vpc." + inst.Region + ".cr.aliyuncs.com"}, nil
}

func testIdentity(t *testing.T, akID string) *cloudcred.Identity {
	t.Helper()
	r, err := cloudcred.NewResolver(cloudcred.Options{Region: "cn-hangzhou"})
	if err != nil {
		t.Fatal(err)
	}
	id, err := r.Resolve(t.Context(), cloudcred.Request{AddonAccessKey: &cloudcred.AccessKey{ID: akID, Secret: "ak-secret-value"}})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func newTestCache(life time.Duration) (*Cache, *scriptedMinter, *fakeclock.Clock) {
	clk := fakeclock.New(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	m := &scriptedMinter{clock: clk, life: life}
	c := NewCache(m, CacheOptions{Now: clk.Now, Rand: func() float64 { return 1 }, JitterFraction: 0.1, BackoffBase: time.Second, BackoffMax: 8 * time.Second})
	return c, m, clk
}

var ee = Instance{ID: "cri-a", Region: "cn-hangzhou"}

// concurrentCallers asks c for the token from 50 goroutines while the token call is held, and
// releases it (release) only once every caller has looked into the cache — each lookup of a pair
// with an entry reads the clock (clockReads) — and the flight has reached the minter (calls ≥ 2,
// the first call having made the entry). It returns the 50 tokens, all equal and non-empty.
func concurrentCallers(t *testing.T, c *Cache, id *cloudcred.Identity, inst Instance, minValidity time.Duration,
	clockReads *atomic.Int64, calls func() int64, release func()) []Token {
	t.Helper()
	start := clockReads.Load()
	var wg sync.WaitGroup
	toks := make([]Token, 50)
	errs := make([]error, 50)
	for i := range 50 {
		wg.Go(func() { toks[i], errs[i] = c.Token(t.Context(), id, inst, minValidity) })
	}
	// 50 callers' lookups + the flight's re-check, all before the token call may return.
	poll.Until(t, "50 callers in Token and the flight started", func() error {
		if n := clockReads.Load() - start; n < 51 || calls() < 2 {
			return fmt.Errorf("%d clock reads, %d token calls", n, calls())
		}
		return nil
	})
	release()
	wg.Wait()
	for i := range 50 {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
		if toks[i].Password != toks[0].Password || toks[i].Password.IsZero() {
			t.Fatalf("caller %d got a different token", i)
		}
	}
	return toks
}

// TestSingleFlight50Callers holds the token call open until every one of 50 callers has looked
// into the cache and found the token due (each such lookup reads the clock), so all of them are
// concurrent with the flight: without single flight each would make its own call.
func TestSingleFlight50Callers(t *testing.T) {
	c, m, clk := newTestCache(time.Hour)
	var clockReads atomic.Int64
	c.opts.Now = func() time.Time { clockReads.Add(1); return clk.Now() }
	id := testIdentity(t, "LTAIsf")
	if _, err := c.Token(t.Context(), id, ee, 15*time.Minute); err != nil { // an entry exists: lookups read the clock
		t.Fatal(err)
	}
	clk.Advance(time.Hour) // expired: every caller must refresh
	m.hold = make(chan struct{})
	results := concurrentCallers(t, c, id, ee, 15*time.Minute, &clockReads, m.tokens.Load, func() { close(m.hold) })
	if got := c.Stats(); got.TokenCalls != 2 || got.DomainCalls != 1 {
		t.Fatalf("stats = %+v, want exactly one token call for the 50 callers (2 in all) and one domain call", got)
	}
	if !slices.Equal(results[0].Domains, []string{"cri-a-registry.cn-hangzhou.cr.aliyuncs.com", "cri-a-registry-vpc.cn-hangzhou.cr.aliyuncs.com"}) {
		t.Errorf("domains = %v", results[0].Domains)
	}
}

func TestOneCallPerIdentityInstancePair(t *testing.T) {
	c, _, _ := newTestCache(time.Hour)
	a, b := testIdentity(t, "LTAIa"), testIdentity(t, "LTAIb")
	insts := []Instance{ee, {ID: "cri-b", Region: "cn-beijing"}, {Region: "cn-hangzhou"}}
	// 100 namespaces ask for every pair
	for range 100 {
		for _, id := range []*cloudcred.Identity{a, b} {
			for _, in := range insts {
				if _, err := c.Token(t.Context(), id, in, 15*time.Minute); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if got := c.Stats(); got.TokenCalls != 6 || got.DomainCalls != 4 {
		t.Fatalf("stats = %+v, want 6 token calls (2 identities × 3 instances) and 4 domain calls (EE only)", got)
	}
	tok, _ := c.Token(t.Context(), a, Instance{Region: "cn-hangzhou"}, 0)
	if !slices.Equal(tok.Domains, PersonalDomains("cn-hangzhou")) {
		t.Errorf("personal domains = %v", tok.Domains)
	}
	tok, _ = c.Token(t.Context(), a, Instance{ID: "cri-a", Region: "cn-hangzhou", Domains: []string{"custom.example.com"}}, 0)
	if !slices.Equal(tok.Domains, []string{"custom.example.com"}) {
		t.Errorf("configured domains = %v", tok.Domains)
	}
}

func TestRefreshBeforeExpiry(t *testing.T) {
	c, _, clk := newTestCache(60 * time.Second)
	id := testIdentity(t, "LTAIr")
	first, err := c.Token(t.Context(), id, ee, 45*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// jitter = 1.0 × 10% of 60s = 6s: refresh once less than 51s remain
	steps := []struct {
		advance time.Duration
		renewed bool
	}{
		{5 * time.Second, false},  // 55s left
		{3 * time.Second, false},  // 52s left
		{2 * time.Second, true},   // 50s left < 45s+6s
		{5 * time.Second, false},  // 55s left on the new token
		{10 * time.Second, true},  // 45s left
		{59 * time.Second, false}, // within MinRefreshInterval? no: 59s since issue, 1s left → renewed
	}
	steps[5].renewed = true
	prev := first
	for i, s := range steps {
		clk.Advance(s.advance)
		tok, err := c.Token(t.Context(), id, ee, 45*time.Second)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if renewed := tok.Password != prev.Password; renewed != s.renewed {
			t.Fatalf("step %d: renewed = %v, want %v", i, renewed, s.renewed)
		}
		if tok.Expiry.Sub(clk.Now()) <= 0 {
			t.Fatalf("step %d: served an expired token", i)
		}
		prev = tok
	}
	if got := c.Stats().TokenCalls; got != 4 {
		t.Errorf("token calls = %d, want 4", got)
	}
}

func TestThresholdLongerThanLifeIsRateLimited(t *testing.T) {
	c, _, clk := newTestCache(time.Hour)
	id := testIdentity(t, "LTAIt")
	for range 20 {
		if _, err := c.Token(t.Context(), id, ee, 2*time.Hour); err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Second)
	}
	if got := c.Stats().TokenCalls; got != 2 {
		t.Fatalf("token calls over 20s = %d, want 2 (one per MinRefreshInterval)", got)
	}
}

func TestFailureKeepsLastGoodToken(t *testing.T) {
	c, m, clk := newTestCache(60 * time.Second)
	id := testIdentity(t, "LTAIf")
	good, err := c.Token(t.Context(), id, ee, 45*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	m.fail.Store(true)
	clk.Advance(20 * time.Second) // 40s left: refresh due, and it fails
	tok, err := c.Token(t.Context(), id, ee, 45*time.Second)
	if err != nil {
		t.Fatalf("a failed refresh with a valid token must not return an error: %v", err)
	}
	if tok.Password != good.Password || tok.RetryAt.IsZero() {
		t.Fatalf("want the last good token with RetryAt, got %v retryAt=%v", tok, tok.RetryAt)
	}
	if !tok.RetryAt.Equal(clk.Now().Add(time.Second)) {
		t.Errorf("first backoff = %v, want 1s", tok.RetryAt.Sub(clk.Now()))
	}
	calls := m.tokens.Load()
	for range 10 { // during backoff nobody calls the API
		if _, err := c.Token(t.Context(), id, ee, 45*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if m.tokens.Load() != calls {
		t.Fatalf("calls during backoff: %d", m.tokens.Load()-calls)
	}
	// backoff doubles: 1s, 2s, 4s, 8s (BackoffMax), then a quarter of the 25s left
	for i, want := range []time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second, 6250 * time.Millisecond} {
		clk.Advance(tok.RetryAt.Sub(clk.Now()))
		tok, err = c.Token(t.Context(), id, ee, 45*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if d := tok.RetryAt.Sub(clk.Now()); d != want {
			t.Errorf("backoff %d = %v, want %v", i+2, d, want)
		}
	}
	// the API recovers: the next attempt gets a new token and clears RetryAt
	m.fail.Store(false)
	clk.Advance(tok.RetryAt.Sub(clk.Now()))
	fresh, err := c.Token(t.Context(), id, ee, 45*time.Second)
	if err != nil || fresh.Password == good.Password || !fresh.RetryAt.IsZero() {
		t.Fatalf("after recovery: %v, %v", fresh, err)
	}
	// outage longer than the token's life: an error, never a blank token
	m.fail.Store(true)
	clk.Advance(61 * time.Second)
	tok, err = c.Token(t.Context(), id, ee, 45*time.Second)
	var ae *APIError
	if err == nil || !errors.As(err, &ae) || ae.Code != "ServiceUnavailable" || !tok.Password.IsZero() {
		t.Fatalf("expired and failing: tok=%v err=%v", tok, err)
	}
	if _, err := c.Token(t.Context(), id, ee, 45*time.Second); err == nil || !strings.Contains(err.Error(), "next attempt at") {
		t.Fatalf("during backoff without a token: %v", err)
	}
	if c.Stats().Failures == 0 {
		t.Error("failures not counted")
	}
}

func TestDomainDiscovery(t *testing.T) {
	c, m, clk := newTestCache(time.Hour)
	id := testIdentity(t, "LTAId")
	m.domFail.Store(true)
	if _, err := c.Token(t.Context(), id, ee, 15*time.Minute); MissingAction(err) != "cr:ListInstanceEndpoint" {
		t.Fatalf("want a permission error naming cr:ListInstanceEndpoint, got %v", err)
	}
	m.domFail.Store(false)
	clk.Advance(2 * time.Second)
	tok, err := c.Token(t.Context(), id, ee, 15*time.Minute)
	if err != nil || len(tok.Domains) != 2 {
		t.Fatalf("%v %v", tok, err)
	}
	// later refreshes reuse the domains until DomainTTL; a failed rediscovery keeps them
	m.domFail.Store(true)
	clk.Advance(50 * time.Minute)
	if tok, err = c.Token(t.Context(), id, ee, 15*time.Minute); err != nil || len(tok.Domains) != 2 {
		t.Fatalf("%v %v", tok, err)
	}
	clk.Advance(50 * time.Minute)
	if tok, err = c.Token(t.Context(), id, ee, 15*time.Minute); err != nil || len(tok.Domains) != 2 {
		t.Fatalf("failed rediscovery must keep the known domains: %v %v", tok, err)
	}
	if got := m.domains.Load(); got != 3 {
		t.Errorf("domain calls = %d, want 3", got)
	}
}

func TestCallerCancellation(t *testing.T) {
	c, m, _ := newTestCache(time.Hour)
	m.hold = make(chan struct{})
	id := testIdentity(t, "LTAIc")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := c.Token(ctx, id, ee, time.Minute); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	close(m.hold)
	// the shared flight still completes and fills the cache for the next caller
	tok, err := c.Token(t.Context(), id, ee, time.Minute)
	if err != nil || tok.Password.IsZero() {
		t.Fatal(err)
	}
	if got := m.tokens.Load(); got != 1 {
		t.Errorf("token calls = %d, want 1", got)
	}
	c.Forget(id, ee)
	if _, err := c.Token(t.Context(), id, ee, time.Minute); err != nil || m.tokens.Load() != 2 {
		t.Errorf("Forget did not drop the token: %v calls=%d", err, m.tokens.Load())
	}
}

func TestNoSecretInCacheLogs(t *testing.T) {
	var buf bytes.Buffer
	clk := fakeclock.New(time.Now())
	m := &scriptedMinter{clock: clk, life: time.Minute}
	c := NewCache(m, CacheOptions{Now: clk.Now, Logger: slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	id := testIdentity(t, "LTAIlog")
	tok, err := c.Token(t.Context(), id, ee, 15*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	m.fail.Store(true)
	clk.Advance(50 * time.Second)
	if _, err := c.Token(t.Context(), id, ee, 15*time.Second); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if !strings.Contains(out, "registry token refresh failed") || !strings.Contains(out, "registry token refreshed") {
		t.Fatalf("expected log lines, got %s", out)
	}
	for _, s := range []string{tok.Password.Reveal(), "ak-secret-value"} {
		if strings.Contains(out, s) || strings.Contains(fmt.Sprintf("%v %+v", tok, tok), s) {
			t.Fatalf("secret %q in logs/strings:\n%s", s, out)
		}
	}
}

func TestPrune(t *testing.T) {
	c, m, _ := newTestCache(time.Hour)
	a, b := testIdentity(t, "LTAIpa"), testIdentity(t, "LTAIpb")
	for _, id := range []*cloudcred.Identity{a, b} {
		for _, in := range []Instance{ee, {Region: "cn-beijing"}} {
			if _, err := c.Token(t.Context(), id, in, time.Minute); err != nil {
				t.Fatal(err)
			}
		}
	}
	if c.Len() != 4 {
		t.Fatalf("len = %d", c.Len())
	}
	dropped := c.Prune(func(idKey, instKey string) bool { return idKey == a.Key() && instKey == ee.Key() })
	if dropped != 3 || c.Len() != 1 {
		t.Fatalf("dropped %d, left %d", dropped, c.Len())
	}
	calls := m.tokens.Load()
	if _, err := c.Token(t.Context(), a, ee, time.Minute); err != nil || m.tokens.Load() != calls {
		t.Fatal("the kept pair was refetched")
	}
	if _, err := c.Token(t.Context(), b, ee, time.Minute); err != nil || m.tokens.Load() != calls+1 {
		t.Fatal("a pruned pair was not refetched")
	}
}

func TestBackoffCappedByRemainingLife(t *testing.T) {
	clk := fakeclock.New(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	m := &scriptedMinter{clock: clk, life: 60 * time.Second}
	c := NewCache(m, CacheOptions{Now: clk.Now, Rand: func() float64 { return 1 }, BackoffBase: time.Second, BackoffMax: 5 * time.Minute})
	id := testIdentity(t, "LTAIcap")
	good, err := c.Token(t.Context(), id, ee, 45*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	m.fail.Store(true)
	clk.Advance(20 * time.Second)
	for i := 0; i < 12; i++ { // many failures: the plain backoff would reach minutes
		tok, err := c.Token(t.Context(), id, ee, 45*time.Second)
		if err != nil {
			if good.Expiry.After(clk.Now()) {
				t.Fatalf("failure %d: error while the good token is valid: %v", i, err)
			}
			break
		}
		left := good.Expiry.Sub(clk.Now())
		if d := tok.RetryAt.Sub(clk.Now()); d > max(time.Second, left/4) {
			t.Fatalf("failure %d: retry in %v with %v of token life left", i, d, left)
		}
		clk.Advance(tok.RetryAt.Sub(clk.Now()))
	}
	// the API comes back shortly before expiry: the next attempt is early enough
	m.fail.Store(false)
	if clk.Now().After(good.Expiry) {
		t.Fatalf("the retries ran past the token's expiry")
	}
}

// BenchmarkCacheHit is the cost of serving a cached token (every namespace reconcile).
func BenchmarkCacheHit(b *testing.B) {
	clk := fakeclock.New(time.Now())
	c := NewCache(&scriptedMinter{clock: clk, life: time.Hour}, CacheOptions{Now: clk.Now})
	r, _ := cloudcred.NewResolver(cloudcred.Options{})
	id, _ := r.Resolve(b.Context(), cloudcred.Request{AddonAccessKey: &cloudcred.AccessKey{ID: "LTAIbench", Secret: "s"}})
	if _, err := c.Token(b.Context(), id, ee, 15*time.Minute); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Token(b.Context(), id, ee, 15*time.Minute); err != nil {
				b.Fatal(err)
			}
		}
	})
}
