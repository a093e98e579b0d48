package signature

import (
	"sync"
	"time"
)

// DefaultSkew is how far a request time may be from the server clock.
const DefaultSkew = 15 * time.Minute

// DefaultMaxNonces bounds the nonce memory of a Verifier.
const DefaultMaxNonces = 1 << 17

// Verifier checks request freshness and rejects replayed nonces with bounded memory: a nonce
// is remembered for twice the allowed skew (older requests fail the time check anyway), and at
// most MaxNonces nonces are kept (the oldest are forgotten first).
type Verifier struct {
	Skew      time.Duration
	MaxNonces int
	Now       func() time.Time

	mu    sync.Mutex
	seen  map[string]time.Time
	queue []nonceEntry
}

type nonceEntry struct {
	key string
	at  time.Time
}

// NewVerifier returns a Verifier with the defaults.
func NewVerifier() *Verifier {
	return &Verifier{Skew: DefaultSkew, MaxNonces: DefaultMaxNonces, Now: time.Now}
}

// Check rejects a request whose time is more than Skew from now (InvalidTimeStamp.Expired)
// or whose nonce was already used by the same AccessKey (SignatureNonceUsed). Anonymous
// requests without a time or nonce pass.
func (v *Verifier) Check(q *Request) error {
	now := v.Now()
	if !q.Time.IsZero() {
		if d := now.Sub(q.Time); d > v.Skew || d < -v.Skew {
			return errf(ErrExpired, "Specified time stamp or date value is expired: %s (server time %s).", q.TimeRaw, now.UTC().Format(time.RFC3339))
		}
	} else if q.Scheme != Anonymous {
		return errf(ErrIncomplete, "The request time is missing.")
	}
	if q.Nonce == "" {
		if q.Scheme == ACS3 || q.Scheme == RPC {
			return errf(ErrMissingNonce, "SignatureNonce is mandatory for this action.")
		}
		return nil
	}
	key := q.AccessKeyID + "\x00" + q.Nonce
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.seen == nil {
		v.seen = map[string]time.Time{}
	}
	for len(v.queue) > 0 && (now.Sub(v.queue[0].at) > 2*v.Skew || len(v.queue) >= v.MaxNonces) {
		delete(v.seen, v.queue[0].key)
		v.queue = v.queue[1:]
	}
	if _, dup := v.seen[key]; dup {
		return errf(ErrNonceUsed, "Specified signature nonce was used already.")
	}
	v.seen[key] = now
	v.queue = append(v.queue, nonceEntry{key: key, at: now})
	return nil
}
