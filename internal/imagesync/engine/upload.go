package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// pushClients caches authenticated clients per (destination repository, mount source).
type pushClients struct {
	mu sync.Mutex
	m  map[string]*pushClient
}

type pushClient struct {
	once sync.Once
	c    *http.Client
	err  error
}

func (e *Engine) pushClient(ctx context.Context, dst name.Repository, from name.Repository) (*http.Client, error) {
	key := dst.String() + "|" + from.String()
	e.push.mu.Lock()
	pc, ok := e.push.m[key]
	if !ok {
		pc = &pushClient{}
		e.push.m[key] = pc
	}
	e.push.mu.Unlock()
	pc.once.Do(func() {
		auth, err := authn.Resolve(ctx, e.o.Keychain, dst)
		if err != nil {
			pc.err = err
			return
		}
		scopes := []string{dst.Scope(transport.PushScope)}
		if from.String() != dst.String() {
			scopes = append(scopes, from.Scope(transport.PullScope))
		}
		rt, err := transport.NewWithContext(ctx, dst.Registry, auth, e.o.Transport, scopes)
		if err != nil {
			pc.err = err
			return
		}
		pc.c = &http.Client{Transport: rt}
	})
	if pc.err != nil {
		e.push.mu.Lock()
		delete(e.push.m, key)
		e.push.mu.Unlock()
	}
	return pc.c, pc.err
}

// upload puts layer into dst. It first tries the two-request path — POST with mount=<digest>
// and from=<from> (from = dst itself asks "do you already have it?"; 201 means present or
// mounted), then one monolithic PUT streaming the blob — and falls back to go-containerregistry's
// HEAD/POST/PATCH/PUT upload (with its retries) on any error. It reports whether bytes were sent.
func (e *Engine) upload(ctx context.Context, dst, from name.Repository, layer *blobLayer) (string, error) {
	if dst.RegistryStr() != name.DefaultRegistry {
		how, err := e.fastUpload(ctx, dst, from, layer)
		if err == nil {
			return how, nil
		}
		if m := layer.mismatch.Load(); m != nil {
			return "", m // the source is at fault: the fallback would download it again
		}
		if ctx.Err() != nil {
			return "", err
		}
	}
	var err error
	if from.String() != dst.String() {
		err = e.pusher.Upload(ctx, dst, &remote.MountableLayer{Layer: layer, Reference: from.Digest(layer.desc.Digest.String())})
	} else {
		err = e.pusher.Upload(ctx, dst, layer)
	}
	if err != nil {
		if m := layer.mismatch.Load(); m != nil {
			return "", m
		}
		return "", err
	}
	if layer.opened.Load() {
		return BlobUploaded, nil
	}
	if from.String() != dst.String() {
		return BlobMounted, nil
	}
	return BlobExists, nil
}

func (e *Engine) fastUpload(ctx context.Context, dst, from name.Repository, layer *blobLayer) (string, error) {
	c, err := e.pushClient(ctx, dst, from)
	if err != nil {
		return "", err
	}
	d := layer.desc.Digest.String()
	u := &url.URL{Scheme: dst.Scheme(), Host: dst.RegistryStr(), Path: "/v2/" + dst.RepositoryStr() + "/blobs/uploads/",
		RawQuery: url.Values{"mount": {d}, "from": {from.RepositoryStr()}}.Encode()}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), nil)
	if err != nil {
		return "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusCreated:
		if from.String() == dst.String() {
			return BlobExists, nil
		}
		return BlobMounted, nil
	case http.StatusAccepted:
	default:
		return "", fmt.Errorf("start upload of %s to %s: status %d", d, dst, resp.StatusCode)
	}
	loc, err := resp.Location()
	if err != nil {
		return "", fmt.Errorf("start upload of %s to %s: %w", d, dst, err)
	}
	if e.o.ChunkSize > 0 && layer.desc.Size > e.o.ChunkSize {
		return e.chunkedUpload(ctx, c, dst, loc, layer)
	}
	q := loc.Query()
	q.Set("digest", d)
	loc.RawQuery = q.Encode()
	body, err := layer.Compressed()
	if err != nil {
		return "", err
	}
	defer body.Close()
	put, err := http.NewRequestWithContext(ctx, http.MethodPut, loc.String(), body)
	if err != nil {
		return "", err
	}
	if layer.desc.Size > 0 {
		put.ContentLength = layer.desc.Size
	}
	put.Header.Set("Content-Type", "application/octet-stream")
	resp, err = c.Do(put)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if err := transport.CheckError(resp, http.StatusCreated); err != nil {
		return "", err
	}
	return BlobUploaded, nil
}

// PushDeniedError is a destination that refused a write (401 or 403): almost always credentials
// that may pull but not push, or none at all.
type PushDeniedError struct {
	Repo   string // registry/repository
	Status int
	Method string
	Reason string // the registry's error code and message
	Err    error
}

func (e *PushDeniedError) Error() string {
	host, repo, _ := strings.Cut(e.Repo, "/")
	return fmt.Sprintf("the destination refused the push (%s %d: %s): the credentials used for %s may not push to %s; check that they have push permission on that repository (ACR: cr:PushRepository), or that the auth file has an entry for it",
		e.Method, e.Status, e.Reason, host, repo)
}

func (e *PushDeniedError) Unwrap() error { return e.Err }

// explainPush turns a 401/403 answer to a destination write into a PushDeniedError.
func explainPush(err error, dst name.Repository) error {
	var te *transport.Error
	if !errors.As(err, &te) || te.StatusCode != http.StatusUnauthorized && te.StatusCode != http.StatusForbidden {
		return err
	}
	var pd *PushDeniedError
	if errors.As(err, &pd) {
		return err
	}
	reason := http.StatusText(te.StatusCode)
	if len(te.Errors) > 0 {
		reason = string(te.Errors[0].Code)
		if m := te.Errors[0].Message; m != "" {
			reason += ": " + m
		}
	}
	method := ""
	if te.Request != nil {
		method = te.Request.Method
	}
	return &PushDeniedError{Repo: dst.Name(), Status: te.StatusCode, Method: method, Reason: reason, Err: err}
}
