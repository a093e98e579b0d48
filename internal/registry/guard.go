package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/ferrypull/ferry/internal/redact"
)

// Limits bound what a registry (or anything posing as one) can make a client do. Zero fields
// take the value of [DefaultLimits]; a negative field turns that limit off.
type Limits struct {
	// MaxRedirects caps one request's redirect chain. go-containerregistry replaces Go's own
	// 10-redirect cap with an SSRF check, so a self-redirecting URL would be followed forever.
	MaxRedirects int
	// MaxManifestBytes caps a manifest (GET …/manifests/…, …/referrers/…). distribution refuses
	// to store manifests over 4 MiB; go-containerregistry alone allows 100 MiB.
	MaxManifestBytes int64
	// MaxListBytes caps one page of a tags list or catalog.
	MaxListBytes int64
	// HeaderTimeout is how long a server may take to answer with complete response headers
	// after the request was sent (a blob upload is only sent once its last byte is written).
	HeaderTimeout time.Duration
	// IdleTimeout is how long a response body may deliver nothing while it is being read, and
	// how long the transport may go without taking a byte of a request body (a server that stops
	// reading an upload).
	IdleTimeout time.Duration
	// MinSpeed is the lowest rate (bytes per second) a response body may keep up, measured over
	// every IdleTimeout of time spent waiting for it: a server that trickles a byte now and then
	// never trips IdleTimeout.
	MinSpeed int64
}

// DefaultLimits: 10 redirects, 4 MiB manifests, 16 MiB list pages, response headers within 2
// minutes, no body stalled for 60 s, at least 1 KiB/s while waiting.
var DefaultLimits = Limits{
	MaxRedirects:     10,
	MaxManifestBytes: 4 << 20,
	MaxListBytes:     16 << 20,
	HeaderTimeout:    2 * time.Minute,
	IdleTimeout:      60 * time.Second,
	MinSpeed:         1 << 10,
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits
	pick := func(v, def int64) int64 {
		switch {
		case v < 0:
			return 0
		case v == 0:
			return def
		}
		return v
	}
	l.MaxRedirects = int(pick(int64(l.MaxRedirects), int64(d.MaxRedirects)))
	l.MaxManifestBytes = pick(l.MaxManifestBytes, d.MaxManifestBytes)
	l.MaxListBytes = pick(l.MaxListBytes, d.MaxListBytes)
	l.HeaderTimeout = time.Duration(pick(int64(l.HeaderTimeout), int64(d.HeaderTimeout)))
	l.IdleTimeout = time.Duration(pick(int64(l.IdleTimeout), int64(d.IdleTimeout)))
	l.MinSpeed = pick(l.MinSpeed, d.MinSpeed)
	return l
}

// LimitError is a response refused because it broke one of the [Limits].
type LimitError struct {
	URL    string // redacted
	Reason string
	// Stalled is true for the timeouts (a retry may find a healthier connection).
	Stalled bool
}

func (e *LimitError) Error() string {
	if e.URL == "" {
		return e.Reason
	}
	return e.URL + ": " + e.Reason
}

// bare drops the URL: http.Client names it already in the *url.Error it wraps a RoundTrip error in.
func (e *LimitError) bare() *LimitError {
	c := *e
	c.URL = ""
	return &c
}

// Timeout reports whether the error is a stall (for [RetryableError] and net.Error users).
func (e *LimitError) Timeout() bool { return e.Stalled }

// Temporary mirrors Timeout (go-containerregistry's retry predicate asks for it).
func (e *LimitError) Temporary() bool { return e.Stalled }

type guard struct {
	inner http.RoundTripper
	l     Limits
}

// NewGuard wraps inner with the [Limits] (zero: [DefaultLimits]): redirect chains, manifest and
// list sizes, and timeouts for servers that answer slowly, trickle, or go silent. Put it below
// the retries, so that every attempt is bounded.
func NewGuard(inner http.RoundTripper, l Limits) http.RoundTripper {
	return &guard{inner: inner, l: l.withDefaults()}
}

// redirects counts the redirect responses that led to r (http.Client links each follow-up
// request to the response that caused it).
func redirects(r *http.Request) int {
	n := 0
	for resp := r.Response; resp != nil && n <= 1000; n++ {
		if resp.Request == nil {
			return n + 1
		}
		resp = resp.Request.Response
	}
	return n
}

func sizeLimit(r *http.Request, l Limits) (what string, max int64) {
	if r.Method != http.MethodGet {
		return "", 0
	}
	p := r.URL.Path
	switch {
	case !strings.HasPrefix(p, "/v2/"):
	case p == "/v2/_catalog":
		return "catalog page", l.MaxListBytes
	case strings.HasSuffix(p, "/tags/list"):
		return "tags list page", l.MaxListBytes
	case strings.Contains(p, "/manifests/"), strings.Contains(p, "/referrers/"):
		return "manifest", l.MaxManifestBytes
	}
	return "", 0
}

func mib(n int64) string {
	if n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d bytes", n)
}

func (g *guard) RoundTrip(req *http.Request) (*http.Response, error) {
	u := redact.URLValue(req.URL)
	if g.l.MaxRedirects > 0 && redirects(req) > g.l.MaxRedirects {
		return nil, &LimitError{Reason: fmt.Sprintf("stopped after %d redirects (the registry redirects in a loop?)", g.l.MaxRedirects)}
	}
	ctx, cancel := context.WithCancelCause(req.Context())
	w := &watch{cancel: cancel, url: u, l: g.l}
	w.send.fire, w.recv.fire = w.fail, w.fail
	r := req.Clone(ctx)
	if req.Body != nil && req.Body != http.NoBody {
		r.Body = w.sending(req.Body)
		if req.GetBody != nil {
			r.GetBody = func() (io.ReadCloser, error) {
				b, err := req.GetBody()
				if err != nil {
					return nil, err
				}
				return w.sending(b), nil
			}
		}
	} else {
		w.waitHeaders()
	}
	resp, err := g.inner.RoundTrip(r)
	w.gotAnswer()
	if err != nil {
		cause := context.Cause(ctx)
		cancel(nil)
		var le *LimitError
		if errors.As(cause, &le) {
			return nil, le.bare()
		}
		return nil, err
	}
	what, max := sizeLimit(req, g.l)
	if resp.StatusCode/100 != 2 {
		max = 0 // error bodies: go-containerregistry reads at most a few KiB of them
	}
	if max > 0 && resp.ContentLength > max {
		resp.Body.Close()
		cancel(nil)
		return nil, &LimitError{Reason: fmt.Sprintf("the %s is larger than the %s limit (%d bytes)", what, mib(max), resp.ContentLength)}
	}
	resp.Body = &guardBody{rc: resp.Body, w: w, ctx: ctx, what: what, max: max,
		idleReason: fmt.Sprintf("no data from the server for %s", g.l.IdleTimeout)}
	return resp, nil
}

// watch is the stall detector of one round trip. Its send timer runs until the response headers
// arrive (while the transport should be taking request bytes, then while the server should be
// answering); its receive timer runs while the response body is read. A timer that fires cancels
// the request with a LimitError.
type watch struct {
	cancel context.CancelCauseFunc
	url    string
	l      Limits

	send, recv timer
	mu         sync.Mutex
	answered   bool // the response headers arrived: the send timer stays off
}

// timer is a reusable stall timer: arming it again only moves its deadline.
type timer struct {
	mu     sync.Mutex
	t      *time.Timer
	reason string
	fire   func(reason string)
}

func (t *timer) arm(d time.Duration, reason string) {
	if d <= 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.reason = reason
	if t.t == nil {
		t.t = time.AfterFunc(d, func() {
			t.mu.Lock()
			r := t.reason
			t.mu.Unlock()
			t.fire(r)
		})
		return
	}
	t.t.Reset(d)
}

func (t *timer) disarm() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.t != nil {
		t.t.Stop()
	}
}

func (w *watch) fail(reason string) {
	w.cancel(&LimitError{URL: w.url, Reason: reason, Stalled: true})
}

// armSend arms the send timer unless the answer is already there.
func (w *watch) armSend(d time.Duration, reason string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.answered {
		w.send.arm(d, reason)
	}
}

func (w *watch) waitHeaders() {
	w.armSend(w.l.HeaderTimeout, fmt.Sprintf("no response headers within %s", w.l.HeaderTimeout))
}

func (w *watch) gotAnswer() {
	w.mu.Lock()
	w.answered = true
	w.mu.Unlock()
	w.send.disarm()
}

// sending wraps a request body: between two reads by the transport (a blocked write to the
// server) at most IdleTimeout may pass; after the last byte the header timeout starts.
func (w *watch) sending(rc io.ReadCloser) io.ReadCloser { return &sendBody{rc: rc, w: w} }

type sendBody struct {
	rc io.ReadCloser
	w  *watch
}

func (b *sendBody) Read(p []byte) (int, error) {
	b.w.send.disarm() // our own source may be slow; that is its own guard's business
	n, err := b.rc.Read(p)
	if err != nil {
		b.w.waitHeaders()
		return n, err
	}
	b.w.armSend(b.w.l.IdleTimeout, fmt.Sprintf("the server took no data for %s while the request was sent", b.w.l.IdleTimeout))
	return n, nil
}

func (b *sendBody) Close() error { return b.rc.Close() }

// guardBody enforces the size limit and the idle and minimum-speed rules while a response body
// is read. Closing it releases the request's context.
type guardBody struct {
	rc   io.ReadCloser
	w    *watch
	ctx  context.Context
	what string
	max  int64
	read int64

	idleReason string

	waited time.Duration // time spent inside Read since the last speed check
	got    int64         // bytes received since the last speed check
}

func (b *guardBody) Read(p []byte) (int, error) {
	if b.max > 0 && int64(len(p)) > b.max-b.read+1 {
		p = p[:b.max-b.read+1]
	}
	l := b.w.l
	b.w.recv.arm(l.IdleTimeout, b.idleReason)
	start := time.Now()
	n, err := b.rc.Read(p)
	b.w.recv.disarm()
	b.read += int64(n)
	if b.max > 0 && b.read > b.max {
		b.w.cancel(nil)
		return n, &LimitError{URL: b.w.url, Reason: fmt.Sprintf("the %s is larger than the %s limit", b.what, mib(b.max))}
	}
	if err != nil {
		if cause := context.Cause(b.ctx); cause != nil && err != io.EOF {
			var le *LimitError
			if errors.As(cause, &le) {
				return n, le
			}
		}
		return n, err
	}
	if l.MinSpeed > 0 && l.IdleTimeout > 0 {
		b.waited += time.Since(start)
		b.got += int64(n)
		if b.waited >= l.IdleTimeout {
			if b.got < int64(float64(l.MinSpeed)*b.waited.Seconds()) {
				reason := fmt.Sprintf("the server sent %d bytes in %s, slower than %d bytes/s", b.got, b.waited.Round(time.Millisecond), l.MinSpeed)
				b.w.fail(reason)
				return n, &LimitError{URL: b.w.url, Reason: reason, Stalled: true}
			}
			b.waited, b.got = 0, 0
		}
	}
	return n, nil
}

func (b *guardBody) Close() error {
	err := b.rc.Close()
	b.w.recv.disarm()
	b.w.cancel(nil)
	return err
}
