package app

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/ferrypull/ferry/internal/operator"
	"github.com/ferrypull/ferry/internal/testutil/logbuf"
)

// TestIntervalModeAndMetrics runs interval mode against real registries: the first run copies,
// the next ones skip, /metrics counts both, and cancelling the context ends the command with
// exit status 0. Runs are observed through the OnRun hook, not by waiting.
func TestIntervalModeAndMetrics(t *testing.T) {
	h := startHarbor(t)
	auth := h.write(t, "auth.yaml", fmt.Sprintf("%s: {username: %q, password: %q, insecure: true}\n%s: {username: %s, password: %q, insecure: true}\n", h.src.Addr, robotUser, robotPass, h.dst.Addr, dstUser, dstPass))
	images := h.write(t, "images.yaml", fmt.Sprintf("%s/library/app:v1: %s/interval/app\n", h.src.Addr, h.dst.Addr))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	runs := make(chan error, 1000)
	cmd := NewCommand(Options{MetricsListener: ln, OnRun: func(err error) { runs <- err }}.Run, operator.Streams{Out: io.Discard, Err: &logbuf.Buffer{}},
		[]string{"--auth", auth, "--images", images, "--interval", "1ms", "--progress", "none"})
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	for i := range 2 {
		if err := <-runs; err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
	}
	resp, err := http.Get("http://" + ln.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`ferry_image_syncer_images_total{status="copied"} 1`, `ferry_image_syncer_images_total{status="skipped"}`, `ferry_image_syncer_runs_total{result="success"}`, "ferry_image_syncer_bytes_total"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("interval mode ended with %v", err)
	}
	if got := h.dstDigest(t, "interval/app:v1"); got != h.digests["library/app:v1"].String() {
		t.Errorf("digest %s", got)
	}
}
