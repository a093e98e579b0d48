package imagecache

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	eciv1 "github.com/ferrypull/ferry/api/eci/v1"
	"github.com/ferrypull/ferry/internal/annotations"
	"github.com/ferrypull/ferry/internal/dockercfg"
	"github.com/ferrypull/ferry/internal/redact"
	"github.com/ferrypull/ferry/internal/registry"
)

// Failure reasons (status.reason).
const (
	ReasonInvalidImage           = "InvalidImage"
	ReasonInvalidAnnotation      = "InvalidAnnotation"
	ReasonInvalidSpec            = "InvalidSpec"
	ReasonCredentialsUnavailable = "CredentialsUnavailable"
	ReasonCredentialsRejected    = "CredentialsRejected"
	ReasonImageUnavailable       = "ImageUnavailable"
	ReasonSizeExceeded           = "SizeExceeded"
	ReasonPullFailed             = "PullFailed"
)

// maxManifestBytes bounds a manifest the controller reads (registries cap them at 4 MiB).
const maxManifestBytes = 4 << 20

// failure is a permanent problem of a generation: the cache fails with it.
type failure struct {
	reason, message string
}

func (f *failure) Error() string { return f.reason + ": " + f.message }

func fail(reason, format string, args ...any) *failure {
	return &failure{reason: reason, message: fmt.Sprintf(format, args...)}
}

// credential is one candidate credential for an image, with where it came from (for messages).
type credential struct {
	source  string // "imagePullSecrets default:secret1", "acr-instance-ids cri-xxx"
	entry   dockercfg.Entry
	key     string    // the auths key or domain it matched on
	expires time.Time // zero: does not expire (Secrets)
}

func (c credential) authenticator() authn.Authenticator {
	return authn.FromConfig(authn.AuthConfig{Username: c.entry.Username, Password: c.entry.Password.Reveal(),
		IdentityToken: c.entry.IdentityToken.Reveal(), RegistryToken: c.entry.RegistryToken.Reveal()})
}

// resolution is a checked generation: per-image status, the credentials file for node-agents
// and when minted tokens in it need renewing.
type resolution struct {
	images    []eciv1.ImageStatus
	size      int64
	creds     *dockercfg.Config
	refreshAt time.Time // zero: nothing expires
}

// resolve checks one generation of ic for the given platforms. A *failure is permanent for this
// generation; any other error is transient (the reconcile is retried).
func (r *Reconciler) resolve(ctx context.Context, ic *eciv1.ImageCache, platforms []v1.Platform) (*resolution, error) {
	if ic.Spec.NodeSelector != nil {
		if _, err := metav1.LabelSelectorAsSelector(ic.Spec.NodeSelector); err != nil {
			return nil, fail(ReasonInvalidSpec, "spec.nodeSelector: %v", err)
		}
	}
	reqs, err := annotations.RegistryRequests(ic.Annotations, ic.Spec.Images)
	if err != nil {
		return nil, fail(ReasonInvalidAnnotation, "%v", err)
	}
	hosts := registry.Hosts{}
	for _, img := range ic.Spec.Images {
		hosts[annotations.ImageHost(img)] = registry.Host{CAFile: r.RegistryCAFile}
	}
	for _, req := range reqs {
		h := hosts[req.Host]
		if req.Mode == annotations.ModePlainHTTP {
			h.PlainHTTP = true
		} else {
			h.Insecure = true
		}
		hosts[req.Host] = h
	}
	refs := make([]name.Reference, len(ic.Spec.Images))
	for i, img := range ic.Spec.Images {
		if strings.Contains(annotations.ImageHost(img), "*") {
			return nil, fail(ReasonInvalidImage, "spec.images[%d] %q: the registry host contains '*' (a masked example?)", i, img)
		}
		ref, err := name.ParseReference(img, hosts.NameOptions(annotations.ImageHost(img))...)
		if err != nil {
			return nil, fail(ReasonInvalidImage, "spec.images[%d] %q: %v", i, img, err)
		}
		refs[i] = ref
	}
	cands, refreshAt, err := r.credentials(ctx, ic)
	if err != nil {
		return nil, err
	}
	tr, err := registry.NewHostTransport(hosts)
	if err != nil {
		return nil, fail(ReasonInvalidSpec, "registry transport: %v", err)
	}
	var rt http.RoundTripper = tr
	if r.Transport != nil {
		rt = r.Transport(tr)
	}
	res := &resolution{creds: dockercfg.New(), refreshAt: refreshAt}
	seenBlobs := map[v1.Hash]bool{}
	for i, ref := range refs {
		img := ic.Spec.Images[i]
		st, used, blobs, err := r.inspect(ctx, img, ref, rt, matching(cands, img), platforms)
		if err != nil {
			return nil, err
		}
		for _, b := range blobs {
			if !seenBlobs[b.Digest] {
				seenBlobs[b.Digest] = true
				res.size += b.Size
			}
		}
		res.images = append(res.images, st)
		if used != nil {
			res.creds.Auths[dockercfg.NormalizeKey(annotations.ImageRepository(img))] = used.entry
		}
	}
	budget := int64(20)
	if ic.Spec.ImageCacheSize != nil {
		budget = int64(*ic.Spec.ImageCacheSize)
	}
	if res.size > budget<<30 {
		return nil, fail(ReasonSizeExceeded, "the images need %s compressed (%d bytes, %s), more than imageCacheSize %d GiB",
			humanBytes(res.size), res.size, describePlatforms(platforms), budget)
	}
	return res, nil
}

// credentials collects the candidates from imagePullSecrets and the ACR annotations.
func (r *Reconciler) credentials(ctx context.Context, ic *eciv1.ImageCache) ([]credential, time.Time, error) {
	var out []credential
	for i, entry := range ic.Spec.ImagePullSecrets {
		ns, nm, ok := strings.Cut(entry, ":")
		if !ok || ns == "" || nm == "" {
			return nil, time.Time{}, fail(ReasonInvalidSpec, "spec.imagePullSecrets[%d] %q: want namespace:name", i, entry)
		}
		var s corev1.Secret
		if err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: ns, Name: nm}, &s); err != nil {
			if apierrors.IsNotFound(err) {
				return nil, time.Time{}, fail(ReasonCredentialsUnavailable, "spec.imagePullSecrets[%d]: Secret %s/%s not found", i, ns, nm)
			}
			if apierrors.IsForbidden(err) {
				return nil, time.Time{}, fail(ReasonCredentialsUnavailable, "spec.imagePullSecrets[%d]: Secret %s/%s: %v", i, ns, nm, err)
			}
			return nil, time.Time{}, fmt.Errorf("read Secret %s/%s: %w", ns, nm, err)
		}
		var data []byte
		switch s.Type {
		case corev1.SecretTypeDockerConfigJson:
			data = s.Data[corev1.DockerConfigJsonKey]
		case corev1.SecretTypeDockercfg:
			data = s.Data[corev1.DockerConfigKey]
		default:
			return nil, time.Time{}, fail(ReasonCredentialsUnavailable, "spec.imagePullSecrets[%d]: Secret %s/%s has type %q, want %s or %s",
				i, ns, nm, s.Type, corev1.SecretTypeDockerConfigJson, corev1.SecretTypeDockercfg)
		}
		cfg, err := dockercfg.Parse(data)
		if err != nil {
			return nil, time.Time{}, fail(ReasonCredentialsUnavailable, "spec.imagePullSecrets[%d]: Secret %s/%s: %v", i, ns, nm, err)
		}
		for _, key := range cfg.Hosts() {
			out = append(out, credential{source: "imagePullSecrets " + entry, entry: cfg.Auths[key], key: key})
		}
	}
	insts, err := annotations.Instances(ic.Annotations)
	if err != nil {
		return nil, time.Time{}, fail(ReasonInvalidAnnotation, "%v", err)
	}
	chain, err := annotations.Roles(ic.Annotations)
	if err != nil {
		return nil, time.Time{}, fail(ReasonInvalidAnnotation, "%v", err)
	}
	if len(insts) == 0 && !chain.Empty() {
		return nil, time.Time{}, fail(ReasonInvalidAnnotation, "annotations %s / %s need %s", annotations.AcrServiceARNs, annotations.AcrUserARNs, annotations.AcrInstanceIDs)
	}
	var refreshAt time.Time
	for _, inst := range insts {
		if r.Minter == nil {
			return nil, time.Time{}, fail(ReasonCredentialsUnavailable, "instance %s: ACR token minting is not configured in this controller", inst)
		}
		tok, err := r.Minter.Mint(ctx, inst, chain)
		if err != nil {
			return nil, time.Time{}, fail(ReasonCredentialsUnavailable, "ACR instance %s%s: %v", inst, chainText(chain), err)
		}
		if len(tok.Domains) == 0 {
			return nil, time.Time{}, fail(ReasonCredentialsUnavailable, "ACR instance %s: the token names no registry domain", inst)
		}
		for _, d := range tok.Domains {
			out = append(out, credential{source: "ACR instance " + inst.String(), key: dockercfg.NormalizeKey(d), expires: tok.ExpiresAt,
				entry: dockercfg.Entry{Username: tok.Username, Password: tok.Password}})
		}
		if !tok.ExpiresAt.IsZero() {
			half := r.now().Add(tok.ExpiresAt.Sub(r.now()) / 2)
			if refreshAt.IsZero() || half.Before(refreshAt) {
				refreshAt = half
			}
		}
	}
	return out, refreshAt, nil
}

func chainText(c annotations.RoleChain) string {
	if c.Empty() {
		return ""
	}
	return " (role chain " + c.String() + ")"
}

// matching returns the candidates for img, most specific key first (as the kubelet's keyring
// orders them): "host/repo/path" keys that prefix the repository, then the host.
func matching(cands []credential, img string) []credential {
	repo := dockercfg.NormalizeKey(annotations.ImageRepository(img))
	host := annotations.ImageHost(img)
	var out []credential
	for _, c := range cands {
		if c.key == host || c.key == "https://index.docker.io/v1/" && host == "docker.io" ||
			strings.HasPrefix(repo+"/", c.key+"/") {
			out = append(out, c)
		}
	}
	slices.SortStableFunc(out, func(a, b credential) int { return len(b.key) - len(a.key) })
	return out
}

// inspect reads img's manifest with each candidate in turn (anonymously when there is none)
// and returns its status, the credential that worked and the blobs to count.
func (r *Reconciler) inspect(ctx context.Context, img string, ref name.Reference, rt http.RoundTripper, cands []credential, platforms []v1.Platform) (
	eciv1.ImageStatus, *credential, []v1.Descriptor, error) {
	try := cands
	if len(try) == 0 {
		try = []credential{{source: "no credential"}}
	}
	var rejected []string
	for i := range try {
		c := &try[i]
		auth := authn.Anonymous
		if c.source != "no credential" {
			auth = c.authenticator()
		}
		opts := []remote.Option{remote.WithContext(ctx), remote.WithTransport(rt), remote.WithAuth(auth)}
		desc, err := remote.Get(ref, opts...)
		if err != nil {
			if code := statusCode(err); code == http.StatusUnauthorized || code == http.StatusForbidden {
				rejected = append(rejected, fmt.Sprintf("%s (%d %s)", c.source, code, http.StatusText(code)))
				continue
			}
			return eciv1.ImageStatus{}, nil, nil, classify(img, err, c, secretsOf(try))
		}
		blobs, err := blobsOf(ref, desc, opts, platforms)
		if err != nil {
			return eciv1.ImageStatus{}, nil, nil, classify(img, err, c, secretsOf(try))
		}
		st := eciv1.ImageStatus{Image: img, Digest: desc.Digest.String()}
		for _, b := range blobs {
			st.CompressedSize += b.Size
		}
		if c.source == "no credential" {
			c = nil
		}
		return st, c, blobs, nil
	}
	if len(cands) == 0 {
		return eciv1.ImageStatus{}, nil, nil, fail(ReasonCredentialsRejected, "image %s: the registry asks for credentials and the cache has none for %s (spec.imagePullSecrets or %s)",
			img, annotations.ImageHost(img), annotations.AcrInstanceIDs)
	}
	return eciv1.ImageStatus{}, nil, nil, fail(ReasonCredentialsRejected, "image %s: the registry rejected every credential: %s", img, strings.Join(rejected, "; "))
}

func secretsOf(cs []credential) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.entry.Password.Reveal(), c.entry.IdentityToken.Reveal(), c.entry.RegistryToken.Reveal())
	}
	return out
}

// blobsOf returns the config and layers of desc, for each platform when desc is an index
// (the largest platform's set counts: a node pulls one platform).
func blobsOf(ref name.Reference, desc *remote.Descriptor, opts []remote.Option, platforms []v1.Platform) ([]v1.Descriptor, error) {
	if desc.Size > maxManifestBytes {
		return nil, fmt.Errorf("manifest of %d bytes is larger than %d", desc.Size, maxManifestBytes)
	}
	if !desc.MediaType.IsIndex() {
		m, err := v1.ParseManifest(strings.NewReader(string(desc.Manifest)))
		if err != nil {
			return nil, fmt.Errorf("parse manifest: %w", err)
		}
		return append([]v1.Descriptor{m.Config}, m.Layers...), nil
	}
	idx, err := v1.ParseIndexManifest(strings.NewReader(string(desc.Manifest)))
	if err != nil {
		return nil, fmt.Errorf("parse index: %w", err)
	}
	var best []v1.Descriptor
	var bestSize int64
	for _, p := range platforms {
		child := pick(idx, p)
		if child == nil {
			return nil, &noPlatformError{platform: p, index: idx}
		}
		childRef := ref.Context().Digest(child.Digest.String())
		cd, err := remote.Get(childRef, opts...)
		if err != nil {
			return nil, err
		}
		blobs, err := blobsOf(childRef, cd, opts, nil)
		if err != nil {
			return nil, err
		}
		var n int64
		for _, b := range blobs {
			n += b.Size
		}
		if best == nil || n > bestSize {
			best, bestSize = blobs, n
		}
	}
	return best, nil
}

func pick(idx *v1.IndexManifest, p v1.Platform) *v1.Descriptor {
	for i := range idx.Manifests {
		m := &idx.Manifests[i]
		if m.Platform != nil && m.Platform.OS == p.OS && m.Platform.Architecture == p.Architecture &&
			(p.Variant == "" || m.Platform.Variant == p.Variant) {
			return m
		}
	}
	return nil
}

type noPlatformError struct {
	platform v1.Platform
	index    *v1.IndexManifest
}

func (e *noPlatformError) Error() string {
	var have []string
	for _, m := range e.index.Manifests {
		if m.Platform != nil {
			have = append(have, m.Platform.String())
		}
	}
	return fmt.Sprintf("no manifest for platform %s (the index has %s)", e.platform.String(), strings.Join(have, ", "))
}

func statusCode(err error) int {
	var te *transport.Error
	if errors.As(err, &te) {
		return te.StatusCode
	}
	return 0
}

// classify turns a registry error into a failure (the image is not there, not parseable) or
// keeps it transient (network, 5xx, 429). Messages never carry a credential.
func classify(img string, err error, c *credential, secrets []string) error {
	msg := redact.Strings(err.Error(), secrets...)
	var np *noPlatformError
	switch code := statusCode(err); {
	case errors.As(err, &np):
		return fail(ReasonImageUnavailable, "image %s: %s", img, np.Error())
	case code == http.StatusNotFound:
		return fail(ReasonImageUnavailable, "image %s: not found in the registry (%s)", img, msg)
	case code == http.StatusTooManyRequests || code >= 500 || code == 0 && isTransient(err):
		return fmt.Errorf("image %s: %s", img, msg)
	case code != 0:
		return fail(ReasonImageUnavailable, "image %s: registry answered %d: %s", img, code, msg)
	}
	return fail(ReasonImageUnavailable, "image %s: %s", img, msg)
}

func isTransient(err error) bool {
	return registry.RetryableError(err) || errors.Is(err, context.DeadlineExceeded)
}

func describePlatforms(ps []v1.Platform) string {
	var s []string
	for _, p := range ps {
		s = append(s, p.String())
	}
	return "for " + strings.Join(s, ", ")
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
