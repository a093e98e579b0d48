package annotations

import corev1 "k8s.io/api/core/v1"

// PodRegistryRequests is RegistryRequests for a Pod: its annotations, with
// wildcards expanded against the images of its init and app containers.
func PodRegistryRequests(pod *corev1.Pod) ([]RegistryRequest, error) {
	var images []string
	for _, c := range pod.Spec.InitContainers {
		images = append(images, c.Image)
	}
	for _, c := range pod.Spec.Containers {
		images = append(images, c.Image)
	}
	return RegistryRequests(pod.Annotations, images)
}
