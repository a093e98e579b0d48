package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ferrypull/ferry/internal/imagesync/logcompat"
)

// metrics are the Prometheus metrics of interval mode (all nil-safe):
//
//	ferry_image_syncer_runs_total{result="success|failure"}
//	ferry_image_syncer_images_total{status="copied|skipped|failed|planned"}
//	ferry_image_syncer_bytes_total
//	ferry_image_syncer_last_run_timestamp_seconds
//	ferry_image_syncer_last_success_timestamp_seconds
//	ferry_image_syncer_last_run_duration_seconds
type metrics struct {
	runs        *prometheus.CounterVec
	images      *prometheus.CounterVec
	bytes       prometheus.Counter
	lastRun     prometheus.Gauge
	lastSuccess prometheus.Gauge
	lastDur     prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		runs:        prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ferry_image_syncer_runs_total", Help: "Sync runs by result."}, []string{"result"}),
		images:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ferry_image_syncer_images_total", Help: "Image copies by status."}, []string{"status"}),
		bytes:       prometheus.NewCounter(prometheus.CounterOpts{Name: "ferry_image_syncer_bytes_total", Help: "Blob bytes streamed to destinations."}),
		lastRun:     prometheus.NewGauge(prometheus.GaugeOpts{Name: "ferry_image_syncer_last_run_timestamp_seconds", Help: "End of the last run."}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{Name: "ferry_image_syncer_last_success_timestamp_seconds", Help: "End of the last run without failures."}),
		lastDur:     prometheus.NewGauge(prometheus.GaugeOpts{Name: "ferry_image_syncer_last_run_duration_seconds", Help: "Duration of the last run."}),
	}
	for _, c := range []prometheus.Collector{m.runs, m.images, m.bytes, m.lastRun, m.lastSuccess, m.lastDur} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) observeRun(start time.Time, err error) {
	if m == nil {
		return
	}
	now := time.Now()
	m.lastRun.Set(float64(now.Unix()))
	m.lastDur.Set(now.Sub(start).Seconds())
	if err != nil {
		m.runs.WithLabelValues("failure").Inc()
		return
	}
	m.runs.WithLabelValues("success").Inc()
	m.lastSuccess.Set(float64(now.Unix()))
}

func (m *metrics) observeImage(status string, bytes int64) {
	if m == nil {
		return
	}
	m.images.WithLabelValues(status).Inc()
	m.bytes.Add(float64(bytes))
}

// serveMetrics serves /metrics on ln (or a new listener on addr) until ctx ends.
func serveMetrics(ctx context.Context, addr string, ln net.Listener, log *logcompat.Logger) (*metrics, error) {
	reg := prometheus.NewRegistry()
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	if ln == nil {
		if ln, err = net.Listen("tcp", addr); err != nil {
			return nil, fmt.Errorf("--metrics-bind-address %q: %w", addr, err)
		}
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Errorf("metrics server: %v", err)
		}
	}()
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	log.Infof("serving metrics on http://%s/metrics", ln.Addr())
	return m, nil
}
