// Package operator is the one operator surface of ferry's binaries: every binary logs with
// log/slog through the redacting handler of internal/redact, takes the same logging flags
// (--log-format text|json, -v), the same listener flags (--metrics-bind-address and, where it
// serves probes, --health-probe-bind-address) and is built by one command shape:
//
//	// cmd/<binary>/app
//	type RunFunc func(ctx context.Context, o *Options, s operator.Streams) error
//	func NewCommand(run RunFunc, s operator.Streams, args []string) *cobra.Command
//
//	// cmd/<binary>/main.go
//	func main() { operator.Main("node-agent", app.NewCommand(app.Run, operator.Stdio(), os.Args[1:])) }
//
// In the command, the options embed [Logging] (and [Listeners]) and register their flags:
//
//	o.Logging.AddFlags(cmd.Flags())
//	o.Listeners.AddFlags(cmd.Flags(), operator.WithHealthProbe(":8081"))
//	...
//	logger := o.Logging.Logger(s.Err)              // *slog.Logger, redacting
//	ctrl.SetLogger(logr.FromSlogHandler(logger.Handler())) // Kubernetes binaries
//
// Verbosity: -v 0 (the default) logs info and above; -v 1 or more adds debug lines (slog's
// Debug and logr's V(1)…V(n)); a negative -v is quieter (-v -4: warnings and errors only).
//
// The package imports no Kubernetes code, so acr-emulator (which must stay free of it) uses it too.
package operator

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/ferrypull/ferry/internal/redact"
)

// Log formats.
const (
	FormatJSON = "json"
	FormatText = "text"
)

// Streams are where a command writes: Out for results (ready lines, reports), Err for logs;
// In is its input, for the binaries that read one (acr-credential-provider reads the
// kubelet's request); nil reads nothing.
type Streams struct {
	Out, Err io.Writer
	In       io.Reader
}

// Stdio returns the process's standard input, output and error.
func Stdio() Streams { return Streams{Out: os.Stdout, Err: os.Stderr, In: os.Stdin} }

// Logging holds the logging flags.
type Logging struct {
	// Format is "json" or "text".
	Format string
	// Verbosity: 0 info, ≥ 1 debug, < 0 quieter (see the package doc).
	Verbosity int
}

// AddFlags registers --log-format and -v (--v).
func (l *Logging) AddFlags(fs *pflag.FlagSet) {
	if l.Format == "" {
		l.Format = FormatJSON
	}
	fs.StringVar(&l.Format, "log-format", l.Format, "Log format: json or text. Secrets are redacted from every line.")
	fs.IntVarP(&l.Verbosity, "v", "v", l.Verbosity, "Log verbosity: 0 = info, 1 or more = debug, negative = quieter (-4: warnings and errors only).")
}

// AddDeprecatedLevelFlag registers --log-level (debug, info, warn, error) as a deprecated
// spelling of -v, for binaries that had it.
func (l *Logging) AddDeprecatedLevelFlag(fs *pflag.FlagSet) {
	fs.Var(levelFlag{l}, "log-level", "Deprecated: use -v. Log level: debug, info, warn or error.")
	_ = fs.MarkDeprecated("log-level", "use -v (debug = -v 1, warn = -v -4, error = -v -8)")
}

type levelFlag struct{ l *Logging }

func (f levelFlag) String() string {
	if f.l == nil {
		return "info"
	}
	return strings.ToLower(f.l.Level().String())
}

func (f levelFlag) Set(v string) error {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(v)); err != nil {
		return fmt.Errorf("want debug, info, warn or error")
	}
	f.l.Verbosity = VerbosityFor(lv)
	return nil
}

func (levelFlag) Type() string { return "level" }

// VerbosityFor is the -v value that logs level lv and above.
func VerbosityFor(lv slog.Level) int {
	if lv <= slog.LevelDebug {
		return 1
	}
	return -int(lv)
}

// Validate names the flag and the value.
func (l *Logging) Validate() error {
	switch l.Format {
	case FormatJSON, FormatText:
		return nil
	}
	return fmt.Errorf("--log-format %q: must be json or text", l.Format)
}

// Level is the least slog level logged.
func (l *Logging) Level() slog.Level {
	if l.Verbosity >= 1 {
		return min(slog.Level(-l.Verbosity), slog.LevelDebug)
	}
	return slog.Level(-l.Verbosity)
}

// Handler returns the redacting handler writing to w in the chosen format; secrets are
// literal values (AccessKey secrets read at start-up) scrubbed wherever they appear.
func (l *Logging) Handler(w io.Writer, secrets ...string) slog.Handler {
	opts := &slog.HandlerOptions{Level: l.Level()}
	var h slog.Handler
	if l.Format == FormatText {
		h = slog.NewTextHandler(w, opts)
	} else {
		h = slog.NewJSONHandler(w, opts)
	}
	return redact.NewHandler(h, redact.WithSecrets(secrets...))
}

// Logger is slog.New(l.Handler(w, secrets...)).
func (l *Logging) Logger(w io.Writer, secrets ...string) *slog.Logger {
	return slog.New(l.Handler(w, secrets...))
}

// Listeners holds the addresses of the operational endpoints. "0" (and "") disables one.
type Listeners struct {
	// MetricsAddr serves Prometheus /metrics.
	MetricsAddr string
	// HealthAddr serves /healthz and /readyz (binaries that serve probes).
	HealthAddr string
}

// ListenerOption configures [Listeners.AddFlags].
type ListenerOption func(*listenerFlags)

type listenerFlags struct {
	health      bool
	healthDef   string
	metricsHelp string
	aliases     []string
}

// WithHealthProbe registers --health-probe-bind-address with this default.
func WithHealthProbe(def string) ListenerOption {
	return func(f *listenerFlags) { f.health, f.healthDef = true, def }
}

// WithMetricsAlias registers a deprecated spelling of --metrics-bind-address (image-syncer's
// --metrics-addr).
func WithMetricsAlias(name string) ListenerOption {
	return func(f *listenerFlags) { f.aliases = append(f.aliases, name) }
}

// WithMetricsHelp replaces the help text of --metrics-bind-address.
func WithMetricsHelp(help string) ListenerOption {
	return func(f *listenerFlags) { f.metricsHelp = help }
}

// AddFlags registers --metrics-bind-address (default: the MetricsAddr already set) and the
// flags the options ask for.
func (l *Listeners) AddFlags(fs *pflag.FlagSet, opts ...ListenerOption) {
	f := listenerFlags{metricsHelp: `Address of the Prometheus /metrics endpoint; "0" disables it.`}
	for _, o := range opts {
		o(&f)
	}
	fs.StringVar(&l.MetricsAddr, "metrics-bind-address", l.MetricsAddr, f.metricsHelp)
	for _, a := range f.aliases {
		fs.StringVar(&l.MetricsAddr, a, l.MetricsAddr, "Deprecated: use --metrics-bind-address.")
		_ = fs.MarkDeprecated(a, "use --metrics-bind-address")
	}
	if f.health {
		if l.HealthAddr == "" {
			l.HealthAddr = f.healthDef
		}
		fs.StringVar(&l.HealthAddr, "health-probe-bind-address", l.HealthAddr, `Address of the /healthz and /readyz endpoints; "0" disables them.`)
	}
}

// Enabled reports whether addr names a listener ("" and "0" do not).
func Enabled(addr string) bool { return addr != "" && addr != "0" }

// Execute runs cmd with a context cancelled by SIGINT or SIGTERM.
func Execute(cmd *cobra.Command) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return cmd.ExecuteContext(ctx)
}

// Main executes cmd and exits: 0 on success, 1 with "<name>: <error>" on stderr otherwise.
func Main(name string, cmd *cobra.Command) {
	if err := Execute(cmd); err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		os.Exit(1)
	}
}

// Command is the root command every binary builds: no positional arguments, no usage dump on
// a run error (the error names the flag), help on s.Out, args parsed instead of os.Args. run
// is called with the command (its context is the signal context of [Execute]).
func Command(use, short, long string, s Streams, args []string, run func(cmd *cobra.Command) error) *cobra.Command {
	cmd := &cobra.Command{
		Use:           use,
		Short:         short,
		Long:          long,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE:          func(cmd *cobra.Command, _ []string) error { return run(cmd) },
	}
	if s.Out != nil {
		cmd.SetOut(s.Out)
	}
	if s.Err != nil {
		cmd.SetErr(s.Err)
	}
	if args == nil {
		args = []string{}
	}
	cmd.SetArgs(args)
	return cmd
}
