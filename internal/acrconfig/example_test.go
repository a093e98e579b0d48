package acrconfig_test

import (
	"fmt"

	"github.com/ferrypull/ferry/internal/acrconfig"
)

func ExampleParse() {
	cfg, warnings, err := acrconfig.Parse(map[string]string{
		"watch-namespace": "app-a,app-b",
		"acr-registry-info": `
- instanceId: cri-aaa
- instanceId: ""
  regionId: cn-beijing
`,
		"colour": "blue",
	}, acrconfig.Options{ClusterRegion: "cn-hangzhou"})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, in := range cfg.Instances {
		fmt.Println(in.Key(), in.Personal())
	}
	fmt.Println(cfg.WatchNamespaces, cfg.ServiceAccounts, cfg.ExpiringThreshold)
	fmt.Println(warnings)

	_, _, err = acrconfig.Parse(map[string]string{
		"acr-registry-info": "- instanceId: cri-a\n  assumeRoleARN: acs:ram::2:role/pull\n  expireDuration: 99",
	}, acrconfig.Options{ClusterRegion: "cn-hangzhou"})
	fmt.Println(err)
	// Output:
	// cn-hangzhou/cri-aaa false
	// cn-beijing/personal true
	// app-a,app-b default 15m0s
	// [colour: unknown key, ignored]
	// invalid acr-configuration: acr-registry-info[0].expireDuration: 99 is outside 3600..43200
}
