package registry

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"time"
)

// RetryPolicy bounds the retries of one request.
type RetryPolicy struct {
	// Attempts is the total number of tries (>= 1).
	Attempts int
	// Base is the first backoff; each retry doubles it up to Max, with ±50% jitter.
	Base, Max time.Duration
	// MaxRetryAfter caps a server's Retry-After.
	MaxRetryAfter time.Duration
}

// DefaultRetryPolicy: 5 tries, 100 ms doubling to 5 s, a server's Retry-After honoured up to
// 10 s. This is the only retry layer of a request (image-syncer turns go-containerregistry's off),
// so a request is sent at most 5 times per round, waiting at most 4 × 10 s between tries.
var DefaultRetryPolicy = RetryPolicy{Attempts: 5, Base: 100 * time.Millisecond, Max: 5 * time.Second, MaxRetryAfter: 10 * time.Second}

type retryTransport struct {
	inner  http.RoundTripper
	policy RetryPolicy
}

// NewRetry wraps inner with per-request retries on 429 (honouring Retry-After up to
// MaxRetryAfter), 500, 502, 503, 504, connection resets and unexpected EOFs. A request that
// stalled (a [LimitError] timeout from [NewGuard]) is retried once, not Attempts times: a server
// that went silent would otherwise hold it for Attempts × the timeout. Requests whose body cannot
// be replayed (no GetBody) are sent once; their callers retry at a higher level.
func NewRetry(inner http.RoundTripper, p RetryPolicy) http.RoundTripper {
	if p.Attempts < 1 {
		p.Attempts = 1
	}
	if p.Base <= 0 {
		p.Base = DefaultRetryPolicy.Base
	}
	if p.Max < p.Base {
		p.Max = p.Base
	}
	return &retryTransport{inner: inner, policy: p}
}

func replayable(req *http.Request) bool {
	return req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
}

func retryableStatus(code int) bool {
	switch code {
	case http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// RetryableError reports whether err is a transient network failure worth another try.
func RetryableError(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (rt *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !replayable(req) {
		return rt.inner.RoundTrip(req)
	}
	ctx := req.Context()
	for attempt := 1; ; attempt++ {
		r := req
		if attempt > 1 && req.GetBody != nil {
			body, err := req.GetBody()
			if err != nil {
				return nil, err
			}
			r = req.Clone(ctx)
			r.Body = body
		}
		resp, err := rt.inner.RoundTrip(r)
		last := attempt >= rt.policy.Attempts
		switch {
		case err != nil:
			var le *LimitError
			if last || !RetryableError(err) || errors.As(err, &le) && attempt >= 2 {
				return nil, err
			}
		case retryableStatus(resp.StatusCode):
			if last {
				return resp, nil
			}
		default:
			return resp, nil
		}
		wait := rt.backoff(attempt)
		if resp != nil {
			if ra := retryAfter(resp.Header.Get("Retry-After"), time.Now()); ra > 0 {
				wait = min(ra, rt.policy.MaxRetryAfter)
			}
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			_ = resp.Body.Close()
		}
		if err := sleepCtx(ctx, wait); err != nil {
			return nil, err
		}
	}
}

// backoff is Base·2^(attempt-1), capped at Max, with ±50% jitter.
func (rt *retryTransport) backoff(attempt int) time.Duration {
	d := rt.policy.Base << (attempt - 1)
	if d > rt.policy.Max || d <= 0 {
		d = rt.policy.Max
	}
	return d/2 + time.Duration(rand.Int64N(int64(d)))
}

// retryAfter parses delta-seconds or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil {
		if s < 0 {
			return 0
		}
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return t.Sub(now)
	}
	return 0
}

// sleepCtx waits d or until ctx is done (a backoff timer, not a polling loop).
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
