package namespace

import (
	"context"
	"fmt"

	"github.com/ferrypull/ferry/internal/acrconfig"
	"github.com/ferrypull/ferry/internal/pullsecret"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"
)

// Event reasons emitted by this package.
const (
	ReasonConfigLoaded       = "ConfigLoaded"
	ReasonConfigInvalid      = "ConfigInvalid"
	ReasonConfigMissing      = "ConfigMissing"
	ReasonConfigWarning      = "ConfigWarning"
	ReasonTokenFailed        = "TokenRefreshFailed"
	ReasonTokenRecovered     = "TokenRefreshRecovered"
	ReasonSecretNameConflict = "SecretNameConflict"
	ReasonNoDomains          = "NoRegistryDomains"
)

// ConfigReconciler loads kube-system/acr-configuration into a Store. It keeps the last good
// Settings when the ConfigMap becomes invalid and goes idle when it is missing.
//
// It runs on every replica, leader or not, because every replica serves the webhook from the
// same Store; only the leader emits Events.
type ConfigReconciler struct {
	Client   client.Reader
	Store    *pullsecret.Store
	Load     pullsecret.Loader
	Recorder events.EventRecorder
	// Elected is closed once this replica leads (mgr.Elected()); nil means always.
	Elected <-chan struct{}

	lastVersion string // resourceVersion last acted on ("" = missing)
	seen        bool
}

var configKey = types.NamespacedName{Namespace: pullsecret.ConfigMapNamespace, Name: pullsecret.ConfigMapName}

// configRef stands in for the ConfigMap in Events, also when it does not exist.
var configRef = &corev1.ObjectReference{APIVersion: "v1", Kind: "ConfigMap", Namespace: pullsecret.ConfigMapNamespace, Name: pullsecret.ConfigMapName}

// +kubebuilder:rbac:groups="",namespace=kube-system,resources=configmaps,verbs=get;list;watch
// +kubebuilder:rbac:groups="";events.k8s.io,resources=events,verbs=create;patch

// Reconcile implements reconcile.Reconciler.
func (r *ConfigReconciler) Reconcile(ctx context.Context, _ reconcile.Request) (ctrl.Result, error) {
	logger := log.FromContext(ctx).WithValues("configmap", configKey.String())
	cm := &corev1.ConfigMap{}
	if err := r.Client.Get(ctx, configKey, cm); err != nil {
		if !apierrors.IsNotFound(err) {
			return ctrl.Result{}, fmt.Errorf("get ConfigMap %s: %w", configKey, err)
		}
		if r.seen && r.lastVersion == "" {
			return ctrl.Result{}, nil
		}
		r.seen, r.lastVersion = true, ""
		r.Store.Set(nil)
		pullsecret.ConfigValid.Set(0)
		pullsecret.ConfigReloads.WithLabelValues("missing").Inc()
		logger.Info("acr-configuration not found; idle until it is created")
		r.recorder().Eventf(configRef, nil, corev1.EventTypeWarning, ReasonConfigMissing, "Load",
			"ConfigMap %s not found: ferry is idle (existing Secrets and ServiceAccounts are left as they are)", configKey)
		return ctrl.Result{}, nil
	}
	if r.seen && cm.ResourceVersion == r.lastVersion {
		return ctrl.Result{}, nil
	}
	r.seen, r.lastVersion = true, cm.ResourceVersion

	settings, warnings, err := r.Load(cm)
	if err == nil {
		err = settings.Validate()
	}
	if err != nil {
		pullsecret.ConfigValid.Set(0)
		pullsecret.ConfigReloads.WithLabelValues("invalid").Inc()
		keeping := "no earlier valid configuration: ferry is idle"
		if r.Store.Current() != nil {
			keeping = "the last good configuration keeps running"
		}
		logger.Error(err, "invalid acr-configuration; "+keeping, "resourceVersion", cm.ResourceVersion)
		r.recorder().Eventf(cm, nil, corev1.EventTypeWarning, ReasonConfigInvalid, "Load", "invalid configuration, %s: %v", keeping, err)
		return ctrl.Result{}, nil // a new edit triggers the next attempt
	}
	var notes []string
	for _, w := range warnings {
		logger.Info("acr-configuration warning", "field", w.Field, "warning", w.Message)
		notes = append(notes, w.Field+": "+w.Message)
	}
	if len(notes) > 0 { // one Event for all: the recorder folds same-reason Events into the first
		r.recorder().Eventf(cm, nil, corev1.EventTypeWarning, ReasonConfigWarning, "Load", "%s", acrconfig.WarningsNote(notes))
	}
	r.Store.Set(settings)
	pullsecret.ConfigValid.Set(1)
	pullsecret.ConfigReloads.WithLabelValues("valid").Inc()
	keys := make([]string, 0, len(settings.Instances))
	for _, inst := range settings.Instances {
		keys = append(keys, inst.Key())
	}
	logger.Info("acr-configuration loaded", "resourceVersion", cm.ResourceVersion, "instances", keys,
		"expiringThreshold", settings.ExpiringThreshold.String(), "webhook", settings.Webhook.Enable)
	r.recorder().Eventf(cm, nil, corev1.EventTypeNormal, ReasonConfigLoaded, "Load",
		"loaded %d instance(s): %v", len(keys), keys)
	return ctrl.Result{}, nil
}

// SetupWithManager registers the reconciler. It runs once at start (so a missing ConfigMap is
// reported) and on every change of the ConfigMap.
func (r *ConfigReconciler) SetupWithManager(mgr ctrl.Manager) error {
	isConfig := predicate.NewPredicateFuncs(func(o client.Object) bool {
		return o.GetNamespace() == pullsecret.ConfigMapNamespace && o.GetName() == pullsecret.ConfigMapName
	})
	kick := source.Func(func(_ context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
		q.Add(reconcile.Request{NamespacedName: configKey})
		return nil
	})
	opts := ctrlOptions(1)
	opts.NeedLeaderElection = ptr.To(false)
	return ctrl.NewControllerManagedBy(mgr).
		Named("acr-configuration").
		For(&corev1.ConfigMap{}, builder.WithPredicates(isConfig)).
		WatchesRawSource(kick).
		WithOptions(opts).
		Complete(r)
}

// recorder drops Events on replicas that do not lead, so each change is reported once.
func (r *ConfigReconciler) recorder() events.EventRecorder {
	if r.Elected != nil {
		select {
		case <-r.Elected:
		default:
			return nopRecorder{}
		}
	}
	return r.Recorder
}

type nopRecorder struct{}

func (nopRecorder) Eventf(runtime.Object, runtime.Object, string, string, string, string, ...any) {}
