package pullsecret

import (
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/ferrypull/ferry/internal/acrconfig"
)

func TestNewLoader(t *testing.T) {
	load := NewLoader(acrconfig.Options{ClusterRegion: "cn-hangzhou"})
	tests := []struct {
		name      string
		data      map[string]string
		wantErr   string
		wantNames []string
		check     func(t *testing.T, s *Settings)
	}{
		{
			name: "seed 001 scenario 1: EE and Personal",
			data: map[string]string{
				"service-account": "default", "watch-namespace": "all", "expiring-threshold": "15m",
				"acr-registry-info": "- instanceId: \"cri-xxx\"\n  regionId: \"cn-hangzhou\"\n- instanceId: \"\"\n  regionId: \"cn-hangzhou\"\n",
			},
			wantNames: []string{"acr-pull-cri-xxx", "acr-pull-personal-cn-hangzhou"},
			check: func(t *testing.T, s *Settings) {
				if !s.Namespaces.All || !s.ServiceAccounts.Has("default") || s.ServiceAccounts.Has("x") || s.ExpiringThreshold != 15*time.Minute {
					t.Errorf("settings %+v", s)
				}
				if _, ok := s.Instances[0].Source.(ACRSource); !ok {
					t.Errorf("Source is %T", s.Instances[0].Source)
				}
			},
		},
		{
			name: "seed 001 scenario 2: two regions",
			data: map[string]string{
				"service-account": "default", "watch-namespace": "all",
				"acr-registry-info": "- instanceId: \"\"\n  regionId: cn-beijing\n- instanceId: \"\"\n  regionId: cn-hangzhou\n",
			},
			wantNames: []string{"acr-pull-personal-cn-beijing", "acr-pull-personal-cn-hangzhou"},
		},
		{
			name: "JSON form and webhook block",
			data: map[string]string{
				"acr-registry-info":     `[{"instanceId":"cri-aaa","regionId":"cn-wulanchabu","domains":"a.example.com"}]`,
				"webhook-configuration": "enable: true\nfailure-policy: Fail\ntimeout-seconds: 5\n",
			},
			wantNames: []string{"acr-pull-cri-aaa"},
			check: func(t *testing.T, s *Settings) {
				if !s.Webhook.Enable || s.Webhook.FailurePolicy != "Fail" || s.Webhook.TimeoutSeconds != 5 || !slices.Equal(s.Instances[0].Domains, []string{"a.example.com"}) {
					t.Errorf("settings %+v", s)
				}
			},
		},
		{name: "bad threshold names the field", data: map[string]string{"expiring-threshold": "soon"}, wantErr: "expiring-threshold"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _, err := load(&corev1.ConfigMap{Data: tt.data})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one naming %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Validate(); err != nil {
				t.Fatal(err)
			}
			if got := s.SecretNames(); !slices.Equal(got, tt.wantNames) {
				t.Errorf("secret names %v, want %v", got, tt.wantNames)
			}
			if tt.check != nil {
				tt.check(t, s)
			}
		})
	}
}
