package annotations

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestPodRegistryRequests(t *testing.T) {
	tests := []struct {
		name    string
		ann     map[string]string
		init    []string
		app     []string
		want    []RegistryRequest
		wantErr bool
	}{
		{name: "no annotations", app: []string{"harbor-a.pre.com/x"}},
		{
			name: "wildcard matches an init container image",
			ann:  map[string]string{PlainHTTPRegistry: "harbor*.pre.com"},
			init: []string{"harbor-init.pre.com/setup:1"},
			app:  []string{"docker.io/library/busybox"},
			want: []RegistryRequest{{Annotation: PlainHTTPRegistry, Host: "harbor-init.pre.com", Mode: ModePlainHTTP}},
		},
		{
			name: "wildcard matches init and app images in that order",
			ann:  map[string]string{InsecureRegistry: "harbor*.pre.com"},
			init: []string{"harbor-b.pre.com/i"},
			app:  []string{"harbor-a.pre.com/x"},
			want: []RegistryRequest{
				{Annotation: InsecureRegistry, Host: "harbor-b.pre.com", Mode: ModeInsecure},
				{Annotation: InsecureRegistry, Host: "harbor-a.pre.com", Mode: ModeInsecure},
			},
		},
		{name: "wildcard without a matching image", ann: map[string]string{PlainHTTPRegistry: "harbor*.pre.com"}, app: []string{"reg.test.com/x"}},
		{name: "invalid value", ann: map[string]string{InsecureRegistry: "https://x"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Annotations: tt.ann}}
			for _, img := range tt.init {
				pod.Spec.InitContainers = append(pod.Spec.InitContainers, corev1.Container{Image: img})
			}
			for _, img := range tt.app {
				pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{Image: img})
			}
			got, err := PodRegistryRequests(pod)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}
