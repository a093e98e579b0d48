package imagecache

import (
	"context"
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	eciv1 "github.com/ferrypull/ferry/api/eci/v1"
	"github.com/ferrypull/ferry/internal/annotations"
	"github.com/ferrypull/ferry/internal/dockercfg"
)

// writeCredentials creates or updates the cache's credentials Secret for its generation.
func (r *Reconciler) writeCredentials(ctx context.Context, ic *eciv1.ImageCache, id string, res *resolution) error {
	name := annotations.ImageCacheCredentialsSecret(id)
	want := corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: r.Namespace, Name: name,
			Labels: map[string]string{annotations.ImageCacheCredentialsLabel: id},
			Annotations: map[string]string{annotations.ImageCacheUIDAnnotation: string(ic.UID),
				annotations.ImageCacheGenerationAnnotation: strconv.FormatInt(ic.Generation, 10)},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: eciv1.GroupVersion.String(), Kind: "ImageCache", Name: ic.Name, UID: ic.UID}},
		},
		Type: corev1.SecretTypeDockerConfigJson,
		Data: map[string][]byte{corev1.DockerConfigJsonKey: res.creds.Render()},
	}
	var cur corev1.Secret
	err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: r.Namespace, Name: name}, &cur)
	switch {
	case apierrors.IsNotFound(err):
		if err := r.Client.Create(ctx, &want); err != nil {
			return fmt.Errorf("create credentials Secret %s/%s: %w", r.Namespace, name, err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("read credentials Secret %s/%s: %w", r.Namespace, name, err)
	}
	if cur.Type != want.Type { // the type is immutable
		if err := r.Client.Delete(ctx, &cur); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("replace credentials Secret %s/%s: %w", r.Namespace, name, err)
		}
		return r.writeCredentials(ctx, ic, id, res)
	}
	if dockercfg.EqualBytes(cur.Data[corev1.DockerConfigJsonKey], want.Data[corev1.DockerConfigJsonKey]) &&
		cur.Annotations[annotations.ImageCacheUIDAnnotation] == want.Annotations[annotations.ImageCacheUIDAnnotation] &&
		cur.Annotations[annotations.ImageCacheGenerationAnnotation] == want.Annotations[annotations.ImageCacheGenerationAnnotation] {
		return nil
	}
	cur.Labels, cur.Annotations, cur.OwnerReferences, cur.Data = want.Labels, want.Annotations, want.OwnerReferences, want.Data
	if err := r.Client.Update(ctx, &cur); err != nil {
		return fmt.Errorf("update credentials Secret %s/%s: %w", r.Namespace, name, err)
	}
	return nil
}

// collectSecrets deletes credentials Secrets whose ImageCache is gone (the garbage collector
// does it too through the owner reference, where one runs).
func (r *Reconciler) collectSecrets(ctx context.Context) error {
	var secrets corev1.SecretList
	if err := r.APIReader.List(ctx, &secrets, client.InNamespace(r.Namespace), client.HasLabels{annotations.ImageCacheCredentialsLabel}); err != nil {
		return fmt.Errorf("list credentials Secrets: %w", err)
	}
	if len(secrets.Items) == 0 {
		return nil
	}
	var list eciv1.ImageCacheList
	if err := r.Client.List(ctx, &list); err != nil {
		return fmt.Errorf("list image caches: %w", err)
	}
	live := map[string]bool{}
	for _, ic := range list.Items {
		live[string(ic.UID)] = true
	}
	for i := range secrets.Items {
		s := &secrets.Items[i]
		if live[s.Annotations[annotations.ImageCacheUIDAnnotation]] {
			continue
		}
		if err := r.Client.Delete(ctx, s, client.Preconditions{UID: &s.UID}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete credentials Secret %s/%s: %w", s.Namespace, s.Name, err)
		}
		log.FromContext(ctx).Info("deleted the credentials Secret of a deleted image cache", "secret", s.Name)
	}
	return nil
}
