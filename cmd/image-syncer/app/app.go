// Package app is the image-syncer command: upstream 1.5.5 flags and files, plus ferry's extensions.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/ferrypull/ferry/internal/imagesync/config"
	"github.com/ferrypull/ferry/internal/imagesync/creds"
	"github.com/ferrypull/ferry/internal/imagesync/engine"
	"github.com/ferrypull/ferry/internal/imagesync/logcompat"
	"github.com/ferrypull/ferry/internal/imagesync/plan"
	"github.com/ferrypull/ferry/internal/imagesync/progress"
	"github.com/ferrypull/ferry/internal/imagesync/report"
	"github.com/ferrypull/ferry/internal/imagesync/state"
	"github.com/ferrypull/ferry/internal/operator"
	"github.com/ferrypull/ferry/internal/registry"
)

// Version is set at build time with -ldflags "-X .../app.Version=…".
var Version = "dev"

// ErrFailedTasks is upstream's final error text (printed to stdout, exit 255).
var ErrFailedTasks = errors.New("failed tasks exist")

// Options are the dependencies of a run; the zero value is the binary's. [Options.Run] is
// the command's RunFunc.
type Options struct {
	// ACRToken mints ACR registry tokens for auth entries with RAM credentials; nil uses
	// NewACRToken(ACR).
	ACRToken creds.ACRTokenFunc
	// ACR is the base configuration of the default ACRToken (zero: the real Alibaba Cloud).
	ACR ACRConfig
	// MetricsListener, if set, serves /metrics (tests; --metrics-bind-address otherwise).
	MetricsListener net.Listener
	// OnRun is called after every sync run with its result (tests).
	OnRun func(error)
	// Transport, if set, replaces the per-host TLS transport (tests: a transport that resolves
	// emulator domains); retries and limits still wrap it.
	Transport http.RoundTripper
	// Retry, if set, replaces registry.DefaultRetryPolicy (tests: millisecond backoffs).
	Retry *registry.RetryPolicy
	// Limits bound redirects, manifest and list sizes and stalls (zero: registry.DefaultLimits).
	Limits registry.Limits
}

// Flags are the parsed command line.
type Flags struct {
	config, auth, images, log       string
	proc, retries                   int
	oses, arches                    []string
	force                           bool
	successOut, successFormat       string
	legacyRegistry, legacyNamespace string
	records                         string

	dryRun       bool
	reportFile   string
	shard        string
	shardSel     plan.Shard
	platformMode string
	perHost      int
	blobJobs     int
	chunkMiB     int
	progress     string
	logAppend    bool
	version      bool
	interval     time.Duration
	referrers    bool
	stateDir     string
	stateTTL     time.Duration

	// The operator surface every ferry binary shares: --log-format (text: upstream's lines,
	// json: slog records through the redacting handler), -v, --metrics-bind-address
	// (--metrics-addr, upstream of ferry's, stays as a deprecated alias).
	operator.Logging
	operator.Listeners

	usage func() string
}

// RunFunc runs image-syncer with the parsed flags; results go to s.Out, logs to s.Err (or
// --log).
type RunFunc func(ctx context.Context, f *Flags, s operator.Streams) error

// Run is the binary's RunFunc.
var Run RunFunc = Options{}.Run

// Run runs image-syncer with these dependencies.
func (o Options) Run(ctx context.Context, f *Flags, s operator.Streams) error {
	if f.version {
		fmt.Fprintln(s.Out, "image-syncer (ferry)", Version)
		return nil
	}
	if err := f.Logging.Validate(); err != nil {
		return &configError{err}
	}
	return run(ctx, f, o, s)
}

// NewCommand builds the root command (the shape every ferry binary has).
func NewCommand(run RunFunc, s operator.Streams, args []string) *cobra.Command {
	f := &Flags{Logging: operator.Logging{Format: operator.FormatText}}
	cmd := operator.Command("image-syncer", "A docker registry image synchronization tool",
		`A fast, byte-exact image synchronization tool, compatible with image-syncer 1.5.5.
Copies images between registries without changing any digest, skips unchanged images with one
HEAD request per tag, and uploads every blob once per destination registry.`,
		s, args, func(cmd *cobra.Command) error { return run(cmd.Context(), f, s) })
	f.usage = cmd.UsageString
	cmd.SetOut(s.Err) // upstream prints help and usage on stderr
	pf := cmd.PersistentFlags()
	// upstream 1.5.5
	pf.StringVar(&f.config, "config", "", "config file path. This flag is deprecated and will be removed in the future. Please use --auth and --images instead.")
	pf.StringVar(&f.auth, "auth", "", "auth file path. This flag need to be pair used with --images.")
	pf.StringVar(&f.images, "images", "", "images file path. This flag need to be pair used with --auth")
	pf.StringVar(&f.log, "log", "", "log file path (default in os.Stderr)")
	pf.IntVarP(&f.proc, "proc", "p", 5, "numbers of working goroutines")
	pf.IntVarP(&f.retries, "retries", "r", 2, "times to retry failed task")
	pf.StringArrayVar(&f.oses, "os", nil, "os list to filter source tags, not works for OCI media types (ferry: works for every media type; comma lists accepted)")
	pf.StringArrayVar(&f.arches, "arch", nil, "architecture list to filter source tags, e.g. amd64, arm:v7, linux/arm64/v8 (comma lists accepted)")
	pf.BoolVar(&f.force, "force", false, "force update manifest whether the destination manifest exists")
	pf.StringVar(&f.successOut, "output-success-images", "", "output success images in a new file")
	pf.StringVar(&f.successFormat, "output-images-format", "yaml", "success images output format, json or yaml")
	// removed upstream flags, accepted for old scripts
	pf.StringVar(&f.legacyRegistry, "registry", os.Getenv("DEFAULT_REGISTRY"), "deprecated (removed in 1.5.1): default destination registry for empty destinations, env DEFAULT_REGISTRY")
	pf.StringVar(&f.legacyNamespace, "namespace", os.Getenv("DEFAULT_NAMESPACE"), "deprecated (removed in 1.5.0): default destination namespace for empty destinations, env DEFAULT_NAMESPACE")
	pf.StringVar(&f.records, "records", "", "deprecated (removed in 1.1.0): ignored")
	// ferry extensions
	pf.BoolVar(&f.dryRun, "dry-run", false, "plan only: list what would be copied and how many bytes, write nothing")
	pf.StringVar(&f.reportFile, "report", "", "write a JSON report (per image: source, destinations, digest, bytes, status, error)")
	pf.StringVar(&f.platformMode, "platform-mode", "rewrite", "with --os/--arch: rewrite (new index of the selected children, upstream behaviour) or sparse (keep the original index and digest, copy only the selected children)")
	pf.IntVar(&f.perHost, "registry-concurrency", 16, "maximum requests in flight per registry host")
	pf.IntVar(&f.blobJobs, "blob-jobs", 4, "blobs copied in parallel per image")
	pf.IntVar(&f.chunkMiB, "chunk-size", engine.DefaultChunkSize>>20, "MiB: larger blobs are uploaded in chunks and resumed from the registry's offset after a reset or 5xx (the source re-read from there with a Range request); 0: always one monolithic PUT")
	pf.StringVar(&f.progress, "progress", "auto", "progress display: auto (bars on a terminal, periodic lines otherwise), bars, lines or none")
	pf.BoolVar(&f.logAppend, "log-append", false, "append to the --log file instead of truncating it")
	pf.BoolVar(&f.version, "version", false, "print the version and exit")
	pf.BoolVar(&f.referrers, "referrers", false, "also copy OCI referrers (API or sha256-<hex> fallback tag) and cosign .sig/.att/.sbom tags of every image")
	pf.DurationVar(&f.interval, "interval", 0, "run again every interval until SIGTERM (0: run once); the files are re-read every run")
	f.Listeners.AddFlags(pf, operator.WithMetricsAlias("metrics-addr"),
		operator.WithMetricsHelp(`serve Prometheus metrics on this address (e.g. 127.0.0.1:9464) at /metrics; "" or "0": none`))
	f.Logging.AddFlags(pf)
	pf.Lookup("log-format").Usage = "log format: text (image-syncer 1.5.5's lines, the default) or json (one JSON object a line); secrets are redacted either way"
	pf.StringVar(&f.stateDir, "state-dir", defaultStateDir(), `directory of state files (one per destination registry) remembering what each destination holds, so an unchanged tag costs one source HEAD ("" disables)`)
	pf.DurationVar(&f.stateTTL, "state-ttl", time.Hour, "trust a remembered destination tag for between half of this and this long, then check it again (0: always check)")
	pf.StringVar(&f.shard, "shard", "", "copy only the source repositories of shard i of n (i/n, 0 <= i < n; each repository goes to exactly one shard by a stable hash), or auto: i from $JOB_COMPLETION_INDEX, n from $JOB_COMPLETIONS (Kubernetes Indexed Jobs); combine the shards' --report files with `image-syncer report merge`")
	cmd.AddCommand(newReportCommand(s))
	return cmd
}

// chunkBytes turns --chunk-size (MiB; 0 = monolithic) into engine.Options.ChunkSize.
func chunkBytes(mib int) int64 {
	if mib <= 0 {
		return -1
	}
	return int64(mib) << 20
}

func isTerminal(w io.Writer) bool {
	fh, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := fh.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

type configError struct{ err error }

func (e *configError) Error() string {
	return "init sync client error: generate config error: " + e.err.Error()
}
func (e *configError) Unwrap() error { return e.err }

func loadConfig(f *Flags, log *logcompat.Logger) (config.AuthFile, []config.Entry, error) {
	if f.config != "" {
		log.Warnf("--config is deprecated, use --auth and --images")
		data, format, err := readConfigFile(f.config, "config")
		if err != nil {
			return nil, nil, err
		}
		l, err := config.ParseLegacy(data, format)
		if err != nil {
			return nil, nil, err
		}
		return l.Auth, l.Images, nil
	}
	if f.images == "" {
		return nil, nil, errors.New("neither config.json nor images.json is provided")
	}
	af := config.AuthFile{}
	if f.auth == "" {
		log.Warnf("[Warning] No authentication information found because neither config.json nor auth.json provided, image-syncer may not work fine.")
	} else {
		data, format, err := readConfigFile(f.auth, "auth")
		if err != nil {
			return nil, nil, err
		}
		if af, err = config.ParseAuth(data, format, true); err != nil {
			return nil, nil, err
		}
	}
	data, format, err := readConfigFile(f.images, "images")
	if err != nil {
		return nil, nil, err
	}
	entries, err := config.ParseImages(data, format)
	if err != nil {
		return nil, nil, err
	}
	return af, entries, nil
}

// readConfigFile reads a --config, --auth or --images file (what names it in
// errors) and picks its format from the file extension.
func readConfigFile(path, what string) ([]byte, config.Format, error) {
	format, err := config.FormatFromPath(path)
	if err != nil {
		return nil, 0, err
	}
	fh, err := os.Open(path)
	if err != nil {
		return nil, 0, fmt.Errorf("read %s file: %w", what, err)
	}
	defer fh.Close()
	data, err := io.ReadAll(io.LimitReader(fh, config.MaxFileSize+1)) // never more than the limit in memory
	if err != nil {
		return nil, 0, fmt.Errorf("read %s file: %w", what, err)
	}
	if len(data) > config.MaxFileSize {
		return nil, 0, fmt.Errorf("%s file %s: larger than the %d MiB limit", what, path, config.MaxFileSize>>20)
	}
	return data, format, nil
}

func run(ctx context.Context, f *Flags, o Options, s operator.Streams) error {
	logW, tty := s.Err, isTerminal(s.Err)
	if f.log != "" {
		mode := os.O_CREATE | os.O_WRONLY | os.O_TRUNC
		if f.logAppend {
			mode = os.O_CREATE | os.O_WRONLY | os.O_APPEND
		}
		lf, err := os.OpenFile(f.log, mode, 0o644)
		if err != nil {
			return fmt.Errorf("open log file: %w", err)
		}
		defer lf.Close()
		logW, tty = lf, false
		os.Setenv("NO_COLOR", "true")
	}
	var prog progress.Reporter = progress.Nop{W: logW}
	mode := f.progress
	if f.interval > 0 && mode == "auto" {
		mode = "none" // bars and totals are per run; interval mode has /metrics instead
	}
	switch {
	case mode == "bars" || mode == "auto" && tty:
		prog = progress.NewBars(logW)
	case mode == "lines" || mode == "auto" && f.log == "" && !tty:
		lg := logcompat.New(logW, false)
		prog = progress.NewLines(logW, func(s string) { lg.Infof("%s", s) }, 10*time.Second)
	case mode == "none" || mode == "auto":
	default:
		return &configError{fmt.Errorf("--progress %q: want auto, bars, lines or none", mode)}
	}
	defer prog.Stop()
	log := logcompat.New(prog.Writer(), tty)
	if f.Format == operator.FormatJSON {
		log.UseSlog(f.Logger(prog.Writer()))
	}

	if f.proc < 1 {
		return &configError{fmt.Errorf("--proc %d: must be at least 1", f.proc)}
	}
	if f.retries < 0 {
		return &configError{fmt.Errorf("--retries %d: must be at least 0", f.retries)}
	}
	if f.platformMode != "rewrite" && f.platformMode != "sparse" {
		return &configError{fmt.Errorf("--platform-mode %q: want rewrite or sparse", f.platformMode)}
	}
	if f.records != "" {
		log.Warnf("--records was removed in image-syncer 1.1.0 and is ignored")
	}
	filter, err := engine.ParsePlatformFilter(f.oses, f.arches, f.platformMode == "sparse")
	if err != nil {
		fmt.Fprint(s.Err, f.usage())
		return &configError{err}
	}
	if f.interval < 0 {
		return &configError{fmt.Errorf("--interval %s: must not be negative", f.interval)}
	}
	if f.stateTTL < 0 {
		return &configError{fmt.Errorf("--state-ttl %s: must not be negative", f.stateTTL)}
	}
	if f.chunkMiB < 0 {
		return &configError{fmt.Errorf("--chunk-size %d: must not be negative (MiB; 0 = one monolithic PUT)", f.chunkMiB)}
	}
	if f.shardSel, err = plan.ParseShard(f.shard, os.Getenv); err != nil {
		return &configError{err}
	}
	if sh := f.shardSel.String(); sh != "" {
		log.Infof("shard %s: copying the source repositories of this shard only", sh)
	}
	var m *metrics
	if operator.Enabled(f.MetricsAddr) || o.MetricsListener != nil {
		if m, err = serveMetrics(ctx, f.MetricsAddr, o.MetricsListener, log); err != nil {
			return &configError{err}
		}
	}
	if f.interval == 0 {
		err := syncOnce(ctx, f, o, s, log, prog, filter, m)
		if o.OnRun != nil {
			o.OnRun(err)
		}
		return err
	}
	// Interval mode: sync, then wait for the next tick or a signal; failures are logged and
	// counted, never fatal (config errors included: the files may be fixed before the next run).
	for {
		err := syncOnce(ctx, f, o, s, log, prog, filter, m)
		if err != nil && ctx.Err() == nil {
			log.Errorf("sync run failed: %v", err)
		}
		if o.OnRun != nil {
			o.OnRun(err)
		}
		t := time.NewTimer(f.interval)
		select {
		case <-ctx.Done():
			t.Stop()
			log.Infof("interval mode stopped")
			return nil
		case <-t.C:
		}
	}
}

// defaultStateDir is the state directory in the user's cache directory ($XDG_CACHE_HOME or
// ~/.cache), or "" (no state) when there is none.
func defaultStateDir() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "ferry", "image-syncer", "state")
}

// syncOnce loads the files and runs one synchronization.
func syncOnce(ctx context.Context, f *Flags, o Options, s operator.Streams, log *logcompat.Logger, prog progress.Reporter, filter engine.PlatformFilter, m *metrics) (retErr error) {
	start := time.Now()
	defer func() { m.observeRun(start, retErr) }()
	af, entries, err := loadConfig(f, log)
	if err != nil {
		fmt.Fprint(s.Err, f.usage())
		return &configError{err}
	}

	// a registry's error message may echo a credential: the log (also after this run, in
	// --interval mode) and the report replace them
	secrets := log.Literals()
	secrets.Add(creds.Secrets(af)...)
	defaults := config.Defaults{Registry: f.legacyRegistry, Namespace: f.legacyNamespace}
	var rules []config.Rule
	var ruleEntries []config.Entry
	rep := report.NewBuilder(start, f.dryRun)
	rep.Secrets = secrets
	failed := 0
	log.AddTotal(len(entries))
	for _, e := range entries {
		r, err := config.ParseRule(e, defaults)
		if err != nil {
			failed++
			log.Failed(logcompat.RuleTask(e.Source, e.Destination), err)
			rep.Add(e.Source, "", report.Destination{Ref: e.Destination, Status: "failed"}, err)
			continue
		}
		if e.Destination == "" {
			log.Warnf("empty destination for %s mapped to %s with the deprecated --registry/--namespace", e.Source, r.Dst.Name())
		}
		rules = append(rules, r)
		ruleEntries = append(ruleEntries, e)
	}

	acrToken := o.ACRToken
	if acrToken == nil {
		acrToken = NewACRToken(o.ACR)
	}
	resolver := creds.New(af, acrToken, nil, func(s string) { log.Infof("%s", s) })
	resolver.RedactMinted(secrets)
	hosts := creds.Hosts(af)
	ht := o.Transport
	if ht == nil {
		if ht, err = registry.NewHostTransport(hosts); err != nil {
			return &configError{err}
		}
	}
	policy := registry.DefaultRetryPolicy
	if o.Retry != nil {
		policy = *o.Retry
	}
	tr := registry.NewRetry(registry.NewLimit(registry.NewGuard(ht, o.Limits), f.perHost), policy)
	dsts := make([]string, len(rules))
	for i, r := range rules {
		dsts[i] = r.Dst.Name()
	}
	// with --state-dir "" or --state-ttl 0 the store stays empty and writes nothing
	st, err := state.Open(f.stateDir, engine.RegistryHosts(dsts), f.stateTTL, nil)
	if err != nil {
		log.Warnf("%v", err)
	}
	eng, err := engine.New(engine.Options{
		Transport: tr, Keychain: resolver.Keychain(), Hosts: hosts, BlobJobs: f.blobJobs, ChunkSize: chunkBytes(f.chunkMiB),
		Filter: filter, Force: f.force, DryRun: f.dryRun, Referrers: f.referrers, State: st,
		RealmPolicy: creds.RealmPolicy(af),
		Observer:    &observer{log: log, prog: prog},
	})
	if err != nil {
		return &configError{err}
	}

	eng.SpotCheck(ctx, dsts) // while the tags are listed

	// tag and catalog listings are cheap GETs: list as widely as the HEAD checks run
	// sources with ACR RAM credentials are listed through the ACR OpenAPI, the others by the engine
	lister := &acrLister{next: eng, base: o.ACR, auth: af}
	expanded := plan.ExpandShard(ctx, rules, lister, max(4*f.proc, 16), f.shardSel)
	failedRule := map[int]bool{}
	for _, re := range expanded.Failed {
		failedRule[re.Rule] = true
		failed++
		log.Failed(logcompat.RuleTask(re.Source, re.Destination), re.Err)
		rep.Add(re.Source, "", report.Destination{Ref: re.Destination, Status: "failed"}, re.Err)
	}
	for _, c := range expanded.Conflicts {
		for _, t := range c.Tasks {
			failed++
			log.AddTotal(1)
			log.Failed(logcompat.URLTask(t.Source, t.Dest), c)
			rep.Add(t.Source, "", report.Destination{Ref: t.Dest, Status: "failed"}, c)
			m.observeImage("failed", 0)
		}
	}
	for i, r := range rules {
		if !failedRule[i] {
			log.Finish(logcompat.RuleTask(r.Source, ruleEntries[i].Destination), "")
		}
	}
	tasks := expanded.Tasks
	log.AddTotal(len(tasks))
	prog.SetTotal(len(tasks))

	results := eng.Run(ctx, tasks, engine.RunOptions{
		Jobs: f.proc, Rounds: f.retries,
		OnRound: func(int) {
			log.Infof("Start to retry tasks, please wait ...")
			log.ResetCounters(0)
		},
		OnResult: func(r engine.Result) {
			task := logcompat.URLTask(r.Task.Source, r.Task.Dest)
			switch r.Status {
			case engine.Failed:
				log.AddTotal(1)
				log.Failed(task, r.Err)
			case engine.Planned:
				log.Finish(task, fmt.Sprintf("dry run: would copy %s (%d bytes of blobs)", r.Digest, r.Bytes))
			default:
				log.Finish(task, r.Message)
			}
			if r.Status != engine.Failed {
				prog.TaskDone()
			}
		},
	})
	remembered := 0
	for _, r := range results {
		if r.FromState {
			remembered++
		}
		d := report.Destination{Ref: r.Task.Dest, Status: string(r.Status), Digest: r.DstDigest, Bytes: r.Bytes, Message: r.Message}
		rep.Add(r.Task.Source, r.Digest, d, r.Err)
		m.observeImage(string(r.Status), r.Bytes)
		if r.Status == engine.Failed {
			failed++
		}
	}
	for range expanded.Failed {
		m.observeImage("failed", 0)
	}
	if !f.dryRun {
		if err := st.Save(); err != nil {
			log.Warnf("state not saved (the next run checks every destination): %v", err)
		}
	}
	final := rep.Done(time.Now())
	log.Finished(failed, time.Since(start))
	if remembered > 0 {
		log.Infof("%d unchanged images were skipped from the state in %s without asking their destination (--state-ttl %s)", remembered, f.stateDir, f.stateTTL)
	}
	if f.dryRun {
		log.Infof("dry run: %d images would be copied, %d bytes of blobs (upper bound), %d unchanged", final.Summary.Planned, final.Summary.Bytes, final.Summary.Skipped)
	}
	for _, img := range rep.Failed() {
		for _, d := range img.Destinations {
			if d.Status == "failed" {
				log.Errorf("failed image: %s -> %s: %s", img.Source, d.Ref, d.Error)
			}
		}
	}
	if f.reportFile != "" {
		if err := final.WriteJSON(f.reportFile); err != nil {
			return err
		}
	}
	if f.successOut != "" {
		if err := final.WriteSuccessImages(f.successOut, f.successFormat); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return fmt.Errorf("interrupted: %w", ctx.Err())
	}
	if failed > 0 {
		return ErrFailedTasks
	}
	return nil
}

type observer struct {
	log  *logcompat.Logger
	prog progress.Reporter
}

func (ob *observer) Blob(ev engine.BlobEvent) {
	ob.log.AddTotal(1)
	task := logcompat.BlobTask(ev.Digest, ev.Size, ev.Task.Source, ev.Task.Dest)
	if ev.Err != nil {
		ob.log.Failed(task, ev.Err)
		return
	}
	switch ev.How {
	case engine.BlobUploaded:
		ob.prog.AddBytes(max(ev.Size, 0))
		ob.log.Finish(task, "")
	case engine.BlobExists, engine.BlobDeduplicated:
		ob.log.Finish(task, "ignore exist blob")
	default:
		ob.log.Finish(task, "mounted blob")
	}
}

func (ob *observer) Manifest(ev engine.ManifestEvent) {
	ob.log.AddTotal(1)
	task := logcompat.ManifestTask(ev.Task.Source, ev.Ref)
	if ev.Err != nil {
		ob.log.Failed(task, ev.Err)
		return
	}
	ob.log.Finish(task, "")
}
