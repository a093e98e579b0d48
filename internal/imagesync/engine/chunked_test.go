package engine

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferrypull/ferry/internal/testutil/registryenv"
)

// bigBlobSize is the test blob: 192 MiB, or FERRY_BIG_BLOB_MIB (the figure is 1024).
func bigBlobSize(t *testing.T) int64 {
	if v := os.Getenv("FERRY_BIG_BLOB_MIB"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("FERRY_BIG_BLOB_MIB=%q", v)
		}
		return int64(n) << 20
	}
	return 192 << 20
}

// blobStream is a deterministic stream of size bytes.
func blobStream(size int64) io.Reader {
	return io.LimitReader(rand.NewChaCha8([32]byte{1}), size)
}

// pushBigImage pushes an image whose one layer is size bytes of blobStream, streaming (no buffer).
func pushBigImage(t *testing.T, reg *registryenv.Registry, repo string, size int64) string {
	t.Helper()
	h := sha256.New()
	if _, err := io.Copy(h, blobStream(size)); err != nil {
		t.Fatal(err)
	}
	layer := "sha256:" + hex.EncodeToString(h.Sum(nil))
	cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["` + layer + `"]}}`)
	cd := sha256.Sum256(cfg)
	cfgDigest := "sha256:" + hex.EncodeToString(cd[:])
	base := "http://" + reg.Addr + "/v2/" + repo
	put := func(digest string, body io.Reader, n int64) {
		resp, err := http.Post(base+"/blobs/uploads/", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, err := resp.Location()
		if err != nil {
			t.Fatal(err)
		}
		q := loc.Query()
		q.Set("digest", digest)
		loc.RawQuery = q.Encode()
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPut, loc.String(), body)
		req.ContentLength = n
		resp, err = http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != http.StatusCreated {
			t.Fatalf("push blob %s: %v %v", digest, err, resp)
		}
		resp.Body.Close()
	}
	put(layer, blobStream(size), size)
	put(cfgDigest, bytes.NewReader(cfg), int64(len(cfg)))
	m, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": types.DockerManifestSchema2,
		"config": map[string]any{"mediaType": types.DockerConfigJSON, "size": len(cfg), "digest": cfgDigest},
		"layers": []any{map[string]any{"mediaType": types.DockerLayer, "size": size, "digest": layer}}})
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPut, base+"/manifests/1", bytes.NewReader(m))
	req.Header.Set("Content-Type", string(types.DockerManifestSchema2))
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("push manifest: %v %v", err, resp)
	}
	resp.Body.Close()
	md := sha256.Sum256(m)
	return "sha256:" + hex.EncodeToString(md[:])
}

// resetProxy is a FAULT PROXY (no real component resets a connection on demand): a TCP proxy in
// front of target that counts the bytes it forwards each way and, once, resets both connections
// when the bytes in the chosen direction cross resetAt.
type resetProxy struct {
	ln              net.Listener
	up, down        atomic.Int64 // client → server, server → client
	resetAt         int64
	upstreamCounted bool // reset on client → server bytes (an upload) rather than server → client
	once            sync.Once
	fired           atomic.Bool
}

func startResetProxy(t *testing.T, target string, resetAt int64, onUpload bool) *resetProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &resetProxy{ln: ln, resetAt: resetAt, upstreamCounted: onUpload}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			go p.pipe(c, s, s, &p.up, p.upstreamCounted)
			go p.pipe(s, c, c, &p.down, !p.upstreamCounted)
		}
	}()
	return p
}

func (p *resetProxy) pipe(from, to, other net.Conn, n *atomic.Int64, faulty bool) {
	buf := make([]byte, 32<<10)
	for {
		k, err := from.Read(buf)
		if k > 0 {
			total := n.Add(int64(k))
			if faulty && total >= p.resetAt {
				reset := false
				p.once.Do(func() { reset = true; p.fired.Store(true) })
				if reset {
					for _, c := range []net.Conn{from, to} {
						if tc, ok := c.(*net.TCPConn); ok {
							_ = tc.SetLinger(0) // RST, not FIN
						}
						c.Close()
					}
					return
				}
			}
			if _, werr := to.Write(buf[:k]); werr != nil {
				from.Close()
				return
			}
		}
		if err != nil {
			if tc, ok := to.(*net.TCPConn); ok {
				_ = tc.CloseWrite()
			}
			return
		}
	}
}

// TestChunkedUploadResumesAfterReset copies one large blob through a fault proxy that resets the
// connection once at half of it — once in the upload to the destination, once in the download
// from the source: the copy completes with the same digest and at most 10% of the blob moves
// twice (bytes counted at the proxy), because the upload resumes at the offset the registry
// reports and the source is re-read from there with a Range request.
func TestChunkedUploadResumesAfterReset(t *testing.T) {
	if testing.Short() {
		t.Skip("moves a large blob twice")
	}
	size := bigBlobSize(t)
	for _, tc := range []struct {
		name     string
		onUpload bool
	}{{"reset mid-upload", true}, {"reset mid-download", false}} {
		t.Run(tc.name, func(t *testing.T) {
			src := registryenv.StartDistribution(t, registryenv.Options{})
			dst := registryenv.StartDistribution(t, registryenv.Options{})
			want := pushBigImage(t, src, "big/app", size)
			srcAddr, dstAddr := src.Addr, dst.Addr
			var p *resetProxy
			if tc.onUpload {
				p = startResetProxy(t, dst.Addr, size/2, true)
				dstAddr = p.ln.Addr().String()
			} else {
				p = startResetProxy(t, src.Addr, size/2, false)
				srcAddr = p.ln.Addr().String()
			}
			e, _ := newEngine(t, nil, Options{ChunkSize: size / 16})
			res := e.Run(t.Context(), rules(t, e, [2]string{srcAddr + "/big/app:1", dstAddr + "/big/app"}), RunOptions{Jobs: 1, Rounds: 1})
			if len(res) != 1 || res[0].Status == Failed {
				t.Fatalf("copy: %+v", res)
			}
			ref, _ := name.ParseReference(dst.Addr+"/big/app:1", name.Insecure)
			d, err := remote.Head(ref, remote.WithContext(t.Context()))
			if err != nil || d.Digest.String() != want {
				t.Fatalf("destination %v %v, want %s", d, err, want)
			}
			if !p.fired.Load() {
				t.Fatal("the proxy never reset the connection")
			}
			moved := p.up.Load()
			if !tc.onUpload {
				moved = p.down.Load()
			}
			twice := float64(moved-size) / float64(size)
			t.Logf("RESUME case=%q blob=%dMiB chunk=%dMiB moved=%d twice=%.1f%%", tc.name, size>>20, (size/16)>>20, moved, 100*twice)
			if moved < size || twice > 0.10 {
				t.Errorf("%d bytes through the proxy for a %d-byte blob: %.1f%% sent twice, want <= 10%%", moved, size, 100*twice)
			}
		})
	}
}
