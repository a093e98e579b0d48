package app

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/pflag"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	eciv1 "github.com/ferrypull/ferry/api/eci/v1"
	ferryv1alpha1 "github.com/ferrypull/ferry/api/ferry/v1alpha1"
	"github.com/ferrypull/ferry/internal/annotations"
	"github.com/ferrypull/ferry/internal/controller/imagecache"
	"github.com/ferrypull/ferry/internal/pullsecret"
	imagecachewebhook "github.com/ferrypull/ferry/internal/webhook/imagecache"
)

// imageCacheMinValidity is how long a token minted for an ImageCache must still be valid.
const imageCacheMinValidity = 15 * time.Minute

func (o *Options) addImageCacheFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.ImageCache, "image-cache", o.ImageCache, `Run the ImageCache (eci.alibabacloud.com/v1) controller: "auto" (when the ImageCache and NodeImageCache CRDs are installed), "true" or "false". Its credentials Secrets for node-agents go to --namespace.`)
}

func (o *Options) validateImageCache() error {
	switch o.ImageCache {
	case "auto", "true", "false":
		return nil
	}
	return fmt.Errorf("--image-cache %q: want auto, true or false", o.ImageCache)
}

// managerScheme is client-go's scheme plus the ImageCache and NodeImageCache types.
func managerScheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, eciv1.AddToScheme, ferryv1alpha1.AddToScheme} {
		if err := add(s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// imageCacheEnabled decides --image-cache=auto by asking the apiserver for both CRDs.
func imageCacheEnabled(o *Options, mapper meta.RESTMapper) (bool, error) {
	if o.ImageCache != "auto" {
		return o.ImageCache == "true", nil
	}
	for _, gvk := range []schema.GroupVersionKind{eciv1.GroupVersion.WithKind("ImageCache"), ferryv1alpha1.GroupVersion.WithKind("NodeImageCache")} {
		if _, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version); err != nil {
			if meta.IsNoMatchError(err) {
				return false, nil
			}
			return false, fmt.Errorf("--image-cache=auto: look up %s: %w", gvk, err)
		}
	}
	return true, nil
}

// setupImageCache registers the ImageCache controller with the helper's token machinery (the
// shared pullsecret.CloudTokens): the acr-instance-id(s) annotations are minted with the same
// identities as the Pod annotations (the instance's acr-registry-info entry, else
// alibaba-addon-secret, else the token mode), with the acr-service-arns / acr-user-arns chain on
// top. It reports whether the controller is on.
func setupImageCache(mgr ctrl.Manager, o *Options, direct client.Client, cloud *pullsecret.CloudTokens, rec events.EventRecorder) (bool, error) {
	on, err := imageCacheEnabled(o, direct.RESTMapper())
	if err != nil || !on {
		if err == nil {
			ctrl.Log.Info("ImageCache controller off", "image-cache", o.ImageCache)
		}
		return false, err
	}
	minter := imagecache.MinterFunc(func(ctx context.Context, inst annotations.InstanceRef, chain annotations.RoleChain) (imagecache.Token, error) {
		if inst.RegionID == "" {
			inst.RegionID = o.Region
		}
		t, err := cloud.Mint(ctx, inst, chain, imageCacheMinValidity)
		if err != nil {
			return imagecache.Token{}, err
		}
		return imagecache.Token{Username: t.Username, Password: t.Password, ExpiresAt: t.ExpiresAt, Domains: t.Domains}, nil
	})
	r := &imagecache.Reconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Recorder: rec, Minter: minter,
		Namespace: o.Namespace, RegistryCAFile: o.CAFile}
	if err := r.SetupWithManager(mgr); err != nil {
		return false, fmt.Errorf("set up ImageCache controller: %w", err)
	}
	ctrl.Log.Info("ImageCache controller on", "credentialsNamespace", o.Namespace)
	return true, nil
}

// webhookEntries is the shape of serviceaccount.ConfigManager.Extra.
type webhookEntries = func(admissionregistrationv1.WebhookClientConfig, string, int32) []admissionregistrationv1.MutatingWebhook

// withImageCacheWebhook registers the ImageCache Pod webhook (eci-imc-id, eci-auto-imc) on the
// webhook server and adds its entry after the Pod webhook's, with the same failure policy
// (acr-configuration's webhook-configuration) and namespace exclusion.
func withImageCacheWebhook(mgr ctrl.Manager, o *Options, pod webhookEntries) webhookEntries {
	mgr.GetWebhookServer().Register(imagecachewebhook.Path, &admission.Webhook{Handler: &imagecachewebhook.Mutator{Client: mgr.GetClient()}})
	return func(cc admissionregistrationv1.WebhookClientConfig, failurePolicy string, timeout int32) []admissionregistrationv1.MutatingWebhook {
		var out []admissionregistrationv1.MutatingWebhook
		if pod != nil {
			out = pod(cc, failurePolicy, timeout)
		}
		fp := admissionregistrationv1.Ignore
		if failurePolicy == string(admissionregistrationv1.Fail) {
			fp = admissionregistrationv1.Fail
		}
		return append(out, imagecachewebhook.MutatingWebhook(cc, fp, timeout, o.Namespace))
	}
}
