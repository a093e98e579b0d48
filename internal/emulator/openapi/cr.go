package openapi

import (
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ferrypull/ferry/internal/emulator/world"
)

type actionFunc func(*Handler, *call) (any, *apiError)

var crActions = map[string]actionFunc{
	"GetAuthorizationToken": (*Handler).getAuthorizationToken,
	"ListInstance":          (*Handler).listInstance,
	"GetInstance":           (*Handler).getInstance,
	"ListInstanceEndpoint":  (*Handler).listInstanceEndpoint,
	"ListNamespace":         (*Handler).listNamespace,
	"CreateNamespace":       (*Handler).createNamespace,
	"ListRepository":        (*Handler).listRepository,
	"CreateRepository":      (*Handler).createRepository,
	"ListRepoTag":           (*Handler).listRepoTag,
}

// common is the set of fields every CR response carries.
type common struct {
	RequestId string `json:"RequestId"`
	Code      string `json:"Code"`
	IsSuccess bool   `json:"IsSuccess"`
}

func ok(c *call) common { return common{RequestId: c.requestID, Code: "success", IsSuccess: true} }

// pageJSON is the envelope of the paged List* responses that count in a
// string TotalCount (ListInstance counts in an integer and has its own).
type pageJSON struct {
	common
	PageNo     int    `json:"PageNo"`
	PageSize   int    `json:"PageSize"`
	TotalCount string `json:"TotalCount"`
}

func pageOf(c *call, pageNo, pageSize, total int) pageJSON {
	return pageJSON{ok(c), pageNo, pageSize, strconv.Itoa(total)}
}

func missing(name string) *apiError {
	return newErr(http.StatusBadRequest, "MissingParameter", "The input parameter %q that is mandatory for processing this request is not supplied.", name)
}

func invalid(name, value, why string) *apiError {
	return newErr(http.StatusBadRequest, "InvalidParameter", "The parameter %s %q is invalid: %s.", name, value, why)
}

func (h *Handler) instance(c *call) (*world.Instance, *apiError) {
	id := c.q.Param("InstanceId")
	if id == "" {
		return nil, missing("InstanceId")
	}
	inst, found := h.w.InstanceByID(id)
	if !found {
		return nil, newErr(http.StatusNotFound, "INSTANCE_NOT_EXIST", "instance %s does not exist.", id)
	}
	return inst, nil
}

func paging(c *call) (pageNo, pageSize int, aerr *apiError) {
	pageNo, pageSize = 1, 30
	for _, f := range []struct {
		name string
		dst  *int
		max  int
	}{{"PageNo", &pageNo, 1 << 30}, {"PageSize", &pageSize, 100}} {
		v := c.q.Param(f.name)
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > f.max {
			return 0, 0, invalid(f.name, v, "must be an integer from 1 to "+strconv.Itoa(f.max))
		}
		*f.dst = n
	}
	return pageNo, pageSize, nil
}

func page[T any](items []T, pageNo, pageSize int) []T {
	start := (pageNo - 1) * pageSize
	if start >= len(items) {
		return []T{}
	}
	return items[start:min(start+pageSize, len(items))]
}

func boolParam(c *call, name string) (bool, *apiError) {
	v := c.q.Param(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, invalid(name, v, "must be true or false")
	}
	return b, nil
}

func ms(t time.Time) int64 { return t.UnixMilli() }

func listTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000+0000") }

// GetAuthorizationToken (cr:GetAuthorizationToken on the instance).
func (h *Handler) getAuthorizationToken(c *call) (any, *apiError) {
	inst, aerr := h.instance(c)
	if aerr != nil {
		return nil, aerr
	}
	if aerr := h.authorize(c, "cr:GetAuthorizationToken", inst.ARN()); aerr != nil {
		return nil, aerr
	}
	user, token, exp := h.svc.IssueRegistryToken(c.p, inst)
	return struct {
		common
		TempUsername       string `json:"TempUsername"`
		AuthorizationToken string `json:"AuthorizationToken"`
		ExpireTime         int64  `json:"ExpireTime"`
	}{ok(c), user, token, ms(exp)}, nil
}

type tagJSON struct {
	TagKey   string `json:"TagKey"`
	TagValue string `json:"TagValue"`
}

func (h *Handler) listInstance(c *call) (any, *apiError) {
	pageNo, pageSize, aerr := paging(c)
	if aerr != nil {
		return nil, aerr
	}
	name, status := c.q.Param("InstanceName"), c.q.Param("InstanceStatus")
	type inst struct {
		InstanceId            string    `json:"InstanceId"`
		InstanceName          string    `json:"InstanceName"`
		InstanceSpecification string    `json:"InstanceSpecification"`
		InstanceStatus        string    `json:"InstanceStatus"`
		InstanceIssue         string    `json:"InstanceIssue"`
		RegionId              string    `json:"RegionId"`
		ResourceGroupId       string    `json:"ResourceGroupId"`
		CreateTime            string    `json:"CreateTime"`
		ModifiedTime          string    `json:"ModifiedTime"`
		Tags                  []tagJSON `json:"Tags"`
	}
	var list []inst
	for _, i := range h.w.AllInstances() {
		if i.Owner() != c.p.Account || (name != "" && i.Name != name) || (status != "" && status != "RUNNING") {
			continue
		}
		if h.svc.Authorize(c.p, "cr:ListInstance", i.ARN(), c.ctx(h.svc.Now())) != nil {
			continue
		}
		list = append(list, inst{i.ID, i.Name, i.Specification, "RUNNING", "", i.Region, resourceGroup(i),
			listTime(i.Created()), listTime(i.Created()), []tagJSON{}})
	}
	if len(list) == 0 {
		// Distinguish "nothing visible" from "not allowed at all".
		if aerr := h.authorize(c, "cr:ListInstance", "acs:cr:*:"+c.p.Account.UID+":instance/*"); aerr != nil {
			return nil, aerr
		}
	}
	return struct {
		common
		PageNo     int    `json:"PageNo"`
		PageSize   int    `json:"PageSize"`
		TotalCount int32  `json:"TotalCount"`
		Instances  []inst `json:"Instances"`
	}{ok(c), pageNo, pageSize, int32(len(list)), page(list, pageNo, pageSize)}, nil
}

func resourceGroup(i *world.Instance) string { return "rg-" + i.Owner().UID }

func (h *Handler) getInstance(c *call) (any, *apiError) {
	inst, aerr := h.instance(c)
	if aerr != nil {
		return nil, aerr
	}
	if aerr := h.authorize(c, "cr:GetInstance", inst.ARN()); aerr != nil {
		return nil, aerr
	}
	return struct {
		common
		InstanceId            string    `json:"InstanceId"`
		InstanceName          string    `json:"InstanceName"`
		InstanceSpecification string    `json:"InstanceSpecification"`
		InstanceStatus        string    `json:"InstanceStatus"`
		InstanceIssue         string    `json:"InstanceIssue"`
		ResourceGroupId       string    `json:"ResourceGroupId"`
		CreateTime            int64     `json:"CreateTime"`
		ModifiedTime          int64     `json:"ModifiedTime"`
		Tags                  []tagJSON `json:"Tags"`
	}{ok(c), inst.ID, inst.Name, inst.Specification, "RUNNING", "", resourceGroup(inst),
		ms(inst.Created()), ms(inst.Created()), []tagJSON{}}, nil
}

type domainJSON struct {
	Domain string `json:"Domain"`
	Type   string `json:"Type"`
}

type aclJSON struct {
	Entry   string `json:"Entry"`
	Comment string `json:"Comment"`
}

type vpcJSON struct {
	VpcId         string `json:"VpcId"`
	VswitchId     string `json:"VswitchId"`
	Ip            string `json:"Ip"`
	DefaultAccess bool   `json:"DefaultAccess"`
	Status        string `json:"Status"`
}

type endpointJSON struct {
	EndpointType string       `json:"EndpointType"`
	Enable       bool         `json:"Enable"`
	Status       string       `json:"Status"`
	AclEnable    *bool        `json:"AclEnable,omitempty"`
	AclEntries   []aclJSON    `json:"AclEntries,omitempty"`
	Domains      []domainJSON `json:"Domains"`
	LinkedVpcs   []vpcJSON    `json:"LinkedVpcs,omitempty"`
}

func (h *Handler) listInstanceEndpoint(c *call) (any, *apiError) {
	inst, aerr := h.instance(c)
	if aerr != nil {
		return nil, aerr
	}
	if m := c.q.Param("ModuleName"); m != "" && m != "Registry" && m != "Chart" {
		return nil, invalid("ModuleName", m, "must be Registry or Chart")
	}
	summary, aerr := boolParam(c, "Summary")
	if aerr != nil {
		return nil, aerr
	}
	if aerr := h.authorize(c, "cr:ListInstanceEndpoint", inst.ARN()); aerr != nil {
		return nil, aerr
	}
	status := func(on bool) string {
		if on {
			return "RUNNING"
		}
		return "STOPPED"
	}
	internet := endpointJSON{EndpointType: "internet", Enable: inst.InternetEndpoint.Enable, Status: status(inst.InternetEndpoint.Enable),
		Domains: []domainJSON{{h.domain(inst.InternetDomain()), "SYSTEM"}}}
	if !summary {
		aclOn := len(inst.InternetEndpoint.Whitelist) > 0
		internet.AclEnable = &aclOn
		internet.AclEntries = []aclJSON{}
		for _, e := range inst.InternetEndpoint.Whitelist {
			internet.AclEntries = append(internet.AclEntries, aclJSON{Entry: e, Comment: "whitelist"})
		}
	}
	vpc := endpointJSON{EndpointType: "vpc", Enable: inst.VPCEndpoint.Enable, Status: status(inst.VPCEndpoint.Enable),
		Domains: []domainJSON{{h.domain(inst.VPCDomain()), "SYSTEM"}}}
	if !summary && inst.VPCEndpoint.Enable {
		vpc.LinkedVpcs = []vpcJSON{{VpcId: "vpc-ferry" + inst.ID[4:], VswitchId: "vsw-ferry" + inst.ID[4:], Ip: "127.0.0.1", DefaultAccess: true, Status: "RUNNING"}}
	}
	return struct {
		common
		Endpoints []endpointJSON `json:"Endpoints"`
	}{ok(c), []endpointJSON{internet, vpc}}, nil
}

type namespaceJSON struct {
	NamespaceId     string `json:"NamespaceId"`
	NamespaceName   string `json:"NamespaceName"`
	NamespaceStatus string `json:"NamespaceStatus"`
	AutoCreateRepo  bool   `json:"AutoCreateRepo"`
	DefaultRepoType string `json:"DefaultRepoType"`
	InstanceId      string `json:"InstanceId"`
	ResourceGroupId string `json:"ResourceGroupId"`
}

func (h *Handler) listNamespace(c *call) (any, *apiError) {
	inst, aerr := h.instance(c)
	if aerr != nil {
		return nil, aerr
	}
	pageNo, pageSize, aerr := paging(c)
	if aerr != nil {
		return nil, aerr
	}
	if aerr := h.authorize(c, "cr:ListNamespace", inst.NamespaceARN("*")); aerr != nil {
		return nil, aerr
	}
	name, status := c.q.Param("NamespaceName"), c.q.Param("NamespaceStatus")
	list := []namespaceJSON{}
	for _, n := range h.w.Namespaces(inst) {
		if (name != "" && n.Name != name) || (status != "" && status != "NORMAL") {
			continue
		}
		list = append(list, namespaceJSON{n.ID(), n.Name, "NORMAL", n.AutoCreateRepo, n.DefaultRepoType, inst.ID, resourceGroup(inst)})
	}
	return struct {
		pageJSON
		Namespaces []namespaceJSON `json:"Namespaces"`
	}{pageOf(c, pageNo, pageSize, len(list)), page(list, pageNo, pageSize)}, nil
}

func (h *Handler) createNamespace(c *call) (any, *apiError) {
	inst, aerr := h.instance(c)
	if aerr != nil {
		return nil, aerr
	}
	name := c.q.Param("NamespaceName")
	if name == "" {
		return nil, missing("NamespaceName")
	}
	auto, aerr := boolParam(c, "AutoCreateRepo")
	if aerr != nil {
		return nil, aerr
	}
	typ := c.q.Param("DefaultRepoType")
	if typ != "" && typ != world.RepoTypePublic && typ != world.RepoTypePrivate {
		return nil, invalid("DefaultRepoType", typ, "must be PUBLIC or PRIVATE")
	}
	if aerr := h.authorize(c, "cr:CreateNamespace", inst.NamespaceARN(name)); aerr != nil {
		return nil, aerr
	}
	if err := h.w.CreateNamespace(inst, world.Namespace{Name: name, AutoCreateRepo: auto, DefaultRepoType: typ}); err != nil {
		if errors.Is(err, world.ErrAlreadyExists) {
			return nil, newErr(http.StatusBadRequest, "NAMESPACE_ALREADY_EXIST", "namespace %s already exists.", name)
		}
		return nil, invalid("NamespaceName", name, "must be 2-120 lower-case letters, digits, '_', '-' or '.', not starting or ending with a delimiter")
	}
	return ok(c), nil
}

// repoStatuses are the RepoStatus filter values of ListRepository ("" = no filter).
var repoStatuses = map[string]bool{"": true, "NORMAL": true, "DELETING": true, "DELETED": true, "ALL": true}

type repoJSON struct {
	RepoId            string `json:"RepoId"`
	RepoName          string `json:"RepoName"`
	RepoNamespaceName string `json:"RepoNamespaceName"`
	RepoType          string `json:"RepoType"`
	RepoStatus        string `json:"RepoStatus"`
	RepoBuildType     string `json:"RepoBuildType"`
	Summary           string `json:"Summary"`
	TagImmutability   bool   `json:"TagImmutability"`
	InstanceId        string `json:"InstanceId"`
	ResourceGroupId   string `json:"ResourceGroupId"`
	CreateTime        int64  `json:"CreateTime"`
	ModifiedTime      int64  `json:"ModifiedTime"`
}

func (h *Handler) listRepository(c *call) (any, *apiError) {
	inst, aerr := h.instance(c)
	if aerr != nil {
		return nil, aerr
	}
	pageNo, pageSize, aerr := paging(c)
	if aerr != nil {
		return nil, aerr
	}
	ns, name, status := c.q.Param("RepoNamespaceName"), c.q.Param("RepoName"), c.q.Param("RepoStatus")
	if !repoStatuses[status] {
		return nil, invalid("RepoStatus", status, "must be NORMAL, DELETING, DELETED or ALL")
	}
	// Documented resource: acs:cr:<region>:<account>:repository/<instance>/<namespace>/*;
	// without a namespace the whole instance is listed.
	res := inst.NamespaceARN("*")
	if ns != "" {
		res = inst.RepositoryARN(ns, "*")
	}
	if aerr := h.authorize(c, "cr:ListRepository", res); aerr != nil {
		return nil, aerr
	}
	repos := h.w.Repositories(inst)
	slices.SortFunc(repos, func(a, b world.Repository) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	list := []repoJSON{}
	for _, r := range repos {
		// Every emulated repository is NORMAL: none is ever being deleted.
		if (ns != "" && r.Namespace != ns) || (name != "" && r.Name != name) || status == "DELETING" || status == "DELETED" {
			continue
		}
		list = append(list, repoJSON{r.ID(), r.Name, r.Namespace, r.RepoType, "NORMAL", "MANUAL", r.Summary, false,
			inst.ID, resourceGroup(inst), ms(r.Created()), ms(r.Created())})
	}
	return struct {
		pageJSON
		Repositories []repoJSON `json:"Repositories"`
	}{pageOf(c, pageNo, pageSize, len(list)), page(list, pageNo, pageSize)}, nil
}

func (h *Handler) createRepository(c *call) (any, *apiError) {
	inst, aerr := h.instance(c)
	if aerr != nil {
		return nil, aerr
	}
	ns, name, typ := c.q.Param("RepoNamespaceName"), c.q.Param("RepoName"), c.q.Param("RepoType")
	for _, f := range [][2]string{{"RepoNamespaceName", ns}, {"RepoName", name}, {"RepoType", typ}} {
		if f[1] == "" {
			return nil, missing(f[0])
		}
	}
	if typ != world.RepoTypePublic && typ != world.RepoTypePrivate {
		return nil, invalid("RepoType", typ, "must be PUBLIC or PRIVATE")
	}
	if aerr := h.authorize(c, "cr:CreateRepository", inst.RepositoryARN(ns, name)); aerr != nil {
		return nil, aerr
	}
	r, err := h.w.CreateRepository(inst, world.Repository{Namespace: ns, Name: name, RepoType: typ, Summary: c.q.Param("Summary")})
	switch {
	case errors.Is(err, world.ErrAlreadyExists):
		return nil, newErr(http.StatusBadRequest, "REPO_ALREADY_EXIST", "repository %s/%s already exists.", ns, name)
	case errors.Is(err, world.ErrNotFound):
		return nil, newErr(http.StatusNotFound, "NAMESPACE_NOT_EXIST", "namespace %s does not exist.", ns)
	case err != nil:
		return nil, invalid("RepoName", name, "must be lower-case letters, digits, '.', '_', '-' or '/'")
	}
	return struct {
		common
		RepoId string `json:"RepoId"`
	}{ok(c), r.ID()}, nil
}

type imageJSON struct {
	Tag         string `json:"Tag"`
	Digest      string `json:"Digest"`
	ImageId     string `json:"ImageId"`
	ImageSize   int64  `json:"ImageSize"`
	ImageCreate string `json:"ImageCreate"`
	ImageUpdate string `json:"ImageUpdate"`
	Status      string `json:"Status"`
}

func (h *Handler) listRepoTag(c *call) (any, *apiError) {
	inst, aerr := h.instance(c)
	if aerr != nil {
		return nil, aerr
	}
	id := c.q.Param("RepoId")
	if id == "" {
		return nil, missing("RepoId")
	}
	pageNo, pageSize, aerr := paging(c)
	if aerr != nil {
		return nil, aerr
	}
	repo, found := h.w.RepositoryByID(inst, id)
	if !found {
		return nil, newErr(http.StatusNotFound, "REPO_NOT_EXIST", "repository %s does not exist.", id)
	}
	if aerr := h.authorize(c, "cr:ListRepoTag", inst.RepositoryARN(repo.Namespace, repo.Name)); aerr != nil {
		return nil, aerr
	}
	var tags []Tag
	total := 0
	if h.tags != nil {
		var err error
		tags, total, err = h.tags.ListTags(c.r.Context(), inst, repo.Namespace, repo.Name, (pageNo-1)*pageSize, pageSize)
		if err != nil {
			h.log.Warn("list tags failed", "instance", inst.ID, "repository", repo.Namespace+"/"+repo.Name, "error", err)
			return nil, newErr(http.StatusInternalServerError, "SystemError", "Unknown error.")
		}
	}
	list := make([]imageJSON, 0, len(tags))
	for _, t := range tags {
		created := t.Created
		if created.IsZero() {
			created = t.Updated
		}
		id := t.ImageID
		if id == "" {
			id = t.Digest
		}
		list = append(list, imageJSON{t.Tag, t.Digest, strings.TrimPrefix(id, "sha256:"), t.Size,
			strconv.FormatInt(ms(created), 10), strconv.FormatInt(ms(t.Updated), 10), "NORMAL"})
	}
	return struct {
		pageJSON
		Images []imageJSON `json:"Images"`
	}{pageOf(c, pageNo, pageSize, total), list}, nil
}
