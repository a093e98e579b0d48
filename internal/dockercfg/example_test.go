package dockercfg_test

import (
	"fmt"

	"github.com/ferrypull/ferry/internal/dockercfg"
)

func ExampleMerge() {
	user, _ := dockercfg.Parse([]byte(`{"auths":{"https://quay.io/":{"auth":"bWU6bWluZQ=="}}}`))
	ferry := dockercfg.New()
	ferry.Set("cr_temp_user", "token", "ferry-a-registry.cn-hangzhou.cr.aliyuncs.com")
	merged := dockercfg.Merge(user, ferry)
	fmt.Println(merged.Hosts())
	fmt.Println(string(ferry.Render()))
	fmt.Println(merged) // never prints a password
	// Output:
	// [ferry-a-registry.cn-hangzhou.cr.aliyuncs.com quay.io]
	// {"auths":{"ferry-a-registry.cn-hangzhou.cr.aliyuncs.com":{"username":"cr_temp_user","password":"token","auth":"Y3JfdGVtcF91c2VyOnRva2Vu"}}}
	// dockercfg(ferry-a-registry.cn-hangzhou.cr.aliyuncs.com,quay.io)
}
