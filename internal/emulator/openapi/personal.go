package openapi

import (
	"net/http"
	"strings"

	"github.com/ferrypull/ferry/internal/emulator/ram"
)

// personalToken serves Container Registry Personal Edition GET /tokens (2016-06-07): a registry
// token for the caller's Personal namespaces in the endpoint's region.
func (h *Handler) personalToken(c *call) (any, *apiError) {
	c.action = "GetAuthorizationToken"
	if c.r.Method != http.MethodGet {
		return nil, newErr(http.StatusMethodNotAllowed, "InvalidAction.NotFound", "Specified api is not found, please check your url and method.")
	}
	region := h.region
	if host := strings.ToLower(c.r.Host); strings.HasPrefix(host, "cr.") && strings.Contains(host, ".aliyuncs.com") {
		region = strings.TrimPrefix(strings.Split(host, ".aliyuncs.com")[0], "cr.")
	}
	if c.p.Kind == ram.KindUser && c.p.User.Password == "" {
		return nil, newErr(http.StatusNotFound, "USER_NOT_EXIST", "user is not exist.")
	}
	inst, found := h.w.PersonalInstance(c.p.Account.UID, region)
	if !found {
		return nil, newErr(http.StatusNotFound, "USER_NOT_EXIST", "user is not exist.")
	}
	if aerr := h.authorize(c, "cr:GetAuthorizationToken", "acs:cr:"+region+":"+c.p.Account.UID+":repository/*"); aerr != nil {
		return nil, aerr
	}
	user, token, exp := h.svc.IssueRegistryToken(c.p, inst)
	type data struct {
		AuthorizationToken string `json:"authorizationToken"`
		TempUserName       string `json:"tempUserName"`
		ExpireDate         int64  `json:"expireDate"`
	}
	return struct {
		Data      data   `json:"data"`
		RequestId string `json:"requestId"`
	}{data{token, user, exp.UnixMilli()}, c.requestID}, nil
}
