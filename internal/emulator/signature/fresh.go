package signature

import (
	"net/http"
	"sync"
	"time"
)

// DefaultSkew is how far a request time may be from the server clock.
const DefaultSkew = 15 * time.Minute

// DefaultMaxNonces bounds the nonce memory of a Verifier.
const DefaultMaxNonces = 1 << 17

// DefaultMaxNoncesPerKey bounds the nonces one AccessKey may hold in a Verifier's memory:
// about 9 signed requests a second for the whole 30-minute window.
const DefaultMaxNoncesPerKey = 1 << 14

// ErrNonceMemoryFull answers a signed request when its AccessKey (or the whole verifier) has
// used all its nonce memory inside the freshness window: forgetting a nonce early would let
// a captured request replay, so the verifier refuses new ones until old ones age out.
var ErrNonceMemoryFull = &Error{HTTPStatus: http.StatusTooManyRequests, Code: "Throttling.User"}

// Verifier checks request freshness and rejects replayed nonces with bounded memory. A nonce
// is remembered for twice the allowed skew (older requests fail the time check anyway) and is
// never forgotten before that: when MaxNonces nonces in all, or MaxNoncesPerKey of one
// AccessKey, are remembered, further signed requests (of that key) fail with
// ErrNonceMemoryFull instead. Only signed requests are remembered: an anonymous request's
// nonce proves nothing, and must not take the memory that protects signed ones.
type Verifier struct {
	Skew            time.Duration
	MaxNonces       int
	MaxNoncesPerKey int
	Now             func() time.Time

	mu     sync.Mutex
	seen   map[string]time.Time
	perKey map[string]int
	queue  []nonceEntry
}

type nonceEntry struct {
	key, accessKey string
	at             time.Time
}

// NewVerifier returns a Verifier with the defaults.
func NewVerifier() *Verifier {
	return &Verifier{Skew: DefaultSkew, MaxNonces: DefaultMaxNonces, MaxNoncesPerKey: DefaultMaxNoncesPerKey, Now: time.Now}
}

// Check rejects a request whose time is more than Skew from now (InvalidTimeStamp.Expired)
// or whose nonce was already used by the same AccessKey (SignatureNonceUsed). Anonymous
// requests without a time or nonce pass. Call it after the signature has been verified, so
// that only requests signed with a real AccessKey are remembered.
func (v *Verifier) Check(q *Request) error {
	now := v.Now()
	if !q.Time.IsZero() {
		if d := now.Sub(q.Time); d > v.Skew || d < -v.Skew {
			return errf(ErrExpired, "Specified time stamp or date value is expired: %s (server time %s).", q.TimeRaw, now.UTC().Format(time.RFC3339))
		}
	} else if q.Scheme != Anonymous {
		return errf(ErrIncomplete, "The request time is missing.")
	}
	if q.Scheme == Anonymous {
		return nil
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
		v.seen, v.perKey = map[string]time.Time{}, map[string]int{}
	}
	// The queue is in arrival order: forget only what has left the window.
	for len(v.queue) > 0 && now.Sub(v.queue[0].at) > 2*v.Skew {
		e := v.queue[0]
		delete(v.seen, e.key)
		if v.perKey[e.accessKey]--; v.perKey[e.accessKey] <= 0 {
			delete(v.perKey, e.accessKey)
		}
		v.queue[0] = nonceEntry{}
		v.queue = v.queue[1:]
	}
	if _, dup := v.seen[key]; dup {
		return errf(ErrNonceUsed, "Specified signature nonce was used already.")
	}
	if len(v.queue) >= v.MaxNonces || (v.MaxNoncesPerKey > 0 && v.perKey[q.AccessKeyID] >= v.MaxNoncesPerKey) {
		return errf(ErrNonceMemoryFull, "Request was denied due to user flow control: too many signed requests with this AccessKey in the last %s; retry later.", 2*v.Skew)
	}
	v.seen[key] = now
	v.perKey[q.AccessKeyID]++
	v.queue = append(v.queue, nonceEntry{key: key, accessKey: q.AccessKeyID, at: now})
	return nil
}
