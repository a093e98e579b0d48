package emulator

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"sort"
	"strings"
	"sync"

	"github.com/ferrypull/ferry/internal/emulator/registry"
)

// FaultsPath is the admin endpoint of the fault switch.
const FaultsPath = "/_ferry/faults"

// RegistryTokenAction is the fault key that fails the registry token realm.
const RegistryTokenAction = "RegistryToken"

// Fault is one injected failure: requests for Action answer Status.
type Fault struct {
	// Action is an OpenAPI action (x-acs-action or Action parameter, e.g.
	// GetAuthorizationToken, AssumeRole), a request path (e.g. /tokens),
	// RegistryTokenAction, or "*" for every OpenAPI request.
	Action string `json:"action"`
	Status int    `json:"status"`
}

// Faults is the emulator's fault switch. It exists because no real
// component can make the token API unavailable on demand: tests switch an
// action to fail with a status, then back.
type Faults struct {
	mu     sync.RWMutex
	byName map[string]int
}

// NewFaults returns an empty fault switch.
func NewFaults() *Faults { return &Faults{byName: map[string]int{}} }

// Set makes action fail with status.
func (f *Faults) Set(action string, status int) error {
	if action == "" {
		return errors.New("fault: action is required")
	}
	if status < 400 || status > 599 {
		return fmt.Errorf("fault: status %d is not an HTTP error status (400..599)", status)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.byName[action] = status
	return nil
}

// Clear removes every fault.
func (f *Faults) Clear() {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.byName)
}

// List returns the active faults sorted by action.
func (f *Faults) List() []Fault {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]Fault, 0, len(f.byName))
	for a, s := range f.byName {
		out = append(out, Fault{Action: a, Status: s})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Action < out[j].Action })
	return out
}

func (f *Faults) empty() bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return len(f.byName) == 0
}

func (f *Faults) lookup(keys ...string) (int, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if len(f.byName) == 0 {
		return 0, false
	}
	for _, k := range keys {
		if k == "" {
			continue
		}
		if s, ok := f.byName[k]; ok {
			return s, true
		}
	}
	return 0, false
}

// Middleware serves the admin endpoint and fails requests whose action has
// a fault; everything else goes to next.
func (f *Faults) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == FaultsPath {
			f.serveAdmin(w, r)
			return
		}
		if f.empty() {
			next.ServeHTTP(w, r)
			return
		}
		if status, ok := f.lookup(requestAction(r), r.URL.Path, "*"); ok {
			writeAPIError(w, status, faultCode(status), "fault injected by the acr-emulator fault switch")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// RegistryMiddleware fails registry token requests when RegistryTokenAction
// has a fault.
func (f *Faults) RegistryMiddleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == registry.RealmPath {
			if status, ok := f.lookup(RegistryTokenAction); ok {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(status)
				_, _ = io.WriteString(w, `{"errors":[{"code":"UNAVAILABLE","message":"fault injected by the acr-emulator fault switch","detail":null}]}`+"\n")
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func faultCode(status int) string {
	switch status {
	case http.StatusServiceUnavailable:
		return "ServiceUnavailable"
	case http.StatusTooManyRequests:
		return "Throttling"
	case http.StatusForbidden:
		return "Forbidden"
	default:
		if status >= 500 {
			return "InternalError"
		}
		return "InvalidParameter"
	}
}

// requestAction finds the OpenAPI action of a request without consuming its
// body: the x-acs-action header, the Action query parameter, or the Action
// field of a form body (restored for the next handler).
func requestAction(r *http.Request) string {
	if a := r.Header.Get("x-acs-action"); a != "" {
		return a
	}
	if a := r.URL.Query().Get("Action"); a != "" {
		return a
	}
	if r.Body == nil || !strings.HasPrefix(strings.ToLower(r.Header.Get("Content-Type")), "application/x-www-form-urlencoded") {
		return ""
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body), r.Body))
	if err != nil {
		return ""
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return ""
	}
	return form.Get("Action")
}

func (f *Faults) serveAdmin(w http.ResponseWriter, r *http.Request) {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil || !ap.Addr().Unmap().IsLoopback() {
		http.Error(w, "the fault switch answers loopback clients only", http.StatusForbidden)
		return
	}
	switch r.Method {
	case http.MethodGet:
	case http.MethodPost, http.MethodPut:
		var in Fault
		if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&in); err != nil {
			http.Error(w, "fault: body must be JSON {\"action\":…,\"status\":…}", http.StatusBadRequest)
			return
		}
		if err := f.Set(in.Action, in.Status); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
	case http.MethodDelete:
		f.Clear()
	default:
		w.Header().Set("Allow", "GET, POST, PUT, DELETE")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"faults": f.List()})
}

// writeAPIError writes an Alibaba Cloud RPC error body.
func writeAPIError(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{
		"RequestId": newRequestID(), "HostId": "acr-emulator", "Code": code, "Message": message,
		"Recommend": "https://api.aliyun.com/troubleshoot?q=" + url.QueryEscape(code),
	})
}

func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%X-%X-%X-%X-%X", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
