package openapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ferrypull/ferry/internal/emulator/eci"
	"github.com/ferrypull/ferry/internal/emulator/ram"
	"github.com/ferrypull/ferry/internal/emulator/world"
)

// VersionECI is the Elastic Container Instance API version served.
const VersionECI = "2018-08-08"

// ECIServicePrincipal is the service that assumes ArnService roles.
const ECIServicePrincipal = "eci.aliyuncs.com"

// WithECI serves the ECI actions on svc (default: they answer ECIRuntimeNotConfigured).
func WithECI(svc *eci.Service) Option { return func(h *Handler) { h.eci = svc } }

var eciActions = map[string]actionFunc{
	"CreateContainerGroup":    (*Handler).createContainerGroup,
	"DescribeContainerGroups": (*Handler).describeContainerGroups,
	"DeleteContainerGroup":    (*Handler).deleteContainerGroup,
	"DescribeContainerLog":    (*Handler).describeContainerLog,
	"CreateImageCache":        (*Handler).createImageCache,
	"DescribeImageCaches":     (*Handler).describeImageCaches,
	"DeleteImageCache":        (*Handler).deleteImageCache,
}

// maxIndex bounds N in repeated parameters (Container.N, …): ECI allows at most 20 containers.
const maxIndex = 100

var (
	dnsLabelRE   = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	regionRE     = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{1,62}$`)
	hostPortRE   = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?$`)
	eciNotConfig = newErr(http.StatusBadRequest, "ECIRuntimeNotConfigured",
		"The acr-emulator's ECI runtime is not configured: start acr-emulator with --eci-containerd-socket <containerd's CRI socket>.")
)

// indices returns the sorted N of parameters "<prefix>.N" and "<prefix>.N.<field>".
func indices(c *call, prefix string) ([]int, *apiError) {
	seen := map[int]bool{}
	for k := range c.q.Params {
		rest, ok := strings.CutPrefix(k, prefix+".")
		if !ok {
			continue
		}
		num, _, _ := strings.Cut(rest, ".")
		n, err := strconv.Atoi(num)
		if err != nil || n < 1 || n > maxIndex {
			return nil, invalid(k, num, fmt.Sprintf("the index must be an integer from 1 to %d", maxIndex))
		}
		seen[n] = true
	}
	out := make([]int, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	slices.Sort(out)
	return out, nil
}

// list returns the values of "<prefix>.1", "<prefix>.2", … in index order.
func list(c *call, prefix string) ([]string, *apiError) {
	idx, aerr := indices(c, prefix)
	if aerr != nil {
		return nil, aerr
	}
	out := make([]string, 0, len(idx))
	for _, n := range idx {
		if v := c.q.Param(fmt.Sprintf("%s.%d", prefix, n)); v != "" {
			out = append(out, v)
		}
	}
	return out, nil
}

func (h *Handler) eciRegion(c *call) (string, *apiError) {
	r := c.q.Param("RegionId")
	if r == "" {
		return "", missing("RegionId")
	}
	if !regionRE.MatchString(r) {
		return "", invalid("RegionId", r, "not a region id")
	}
	return r, nil
}

func eciARN(region string, p *ram.Principal, kind, id string) string {
	return "acs:eci:" + region + ":" + p.Account.UID + ":" + kind + "/" + id
}

func (h *Handler) eciReady() *apiError {
	if !h.eci.Configured() {
		return eciNotConfig
	}
	return nil
}

func eciErr(err error, kind, id string) *apiError {
	switch {
	case errors.Is(err, eci.ErrNoRuntime):
		return eciNotConfig
	case errors.Is(err, eci.ErrNotFound):
		return newErr(http.StatusNotFound, "Invalid"+kind+".NotFound", "The specified %s %s does not exist.", strings.ToLower(kind), id)
	case errors.Is(err, eci.ErrCacheNotReady):
		return newErr(http.StatusBadRequest, "ImageCache.NotReady", "The specified image cache %s is not Ready.", id)
	}
	return newErr(http.StatusInternalServerError, "InternalError", "%s", err.Error())
}

// hostList parses a PlainHttpRegistry / InsecureRegistry value: comma-separated host[:port].
func hostList(name, v string) ([]string, *apiError) {
	var out []string
	for _, e := range strings.Split(v, ",") {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		if !hostPortRE.MatchString(e) {
			return nil, invalid(name, e, "each entry must be host or host:port, without scheme or path")
		}
		out = append(out, e)
	}
	return out, nil
}

// registries parses ImageRegistryCredential.N, AcrRegistryInfo.N, PlainHttpRegistry and
// InsecureRegistry. ACR credentials are minted here, for the caller (same account) or for the
// ArnService / ArnUser role chain, and never leave the emulator except to the runtime.
func (h *Handler) registries(c *call, region string) (eci.Registries, []eci.Event, *apiError) {
	var r eci.Registries
	var notes []eci.Event
	note := func(reason, format string, args ...any) {
		notes = append(notes, eci.Event{Type: "Warning", Reason: reason, Message: fmt.Sprintf(format, args...)})
	}
	var aerr *apiError
	if r.PlainHTTP, aerr = hostList("PlainHttpRegistry", c.q.Param("PlainHttpRegistry")); aerr != nil {
		return r, nil, aerr
	}
	if r.Insecure, aerr = hostList("InsecureRegistry", c.q.Param("InsecureRegistry")); aerr != nil {
		return r, nil, aerr
	}
	idx, aerr := indices(c, "ImageRegistryCredential")
	if aerr != nil {
		return r, nil, aerr
	}
	for _, n := range idx {
		p := fmt.Sprintf("ImageRegistryCredential.%d.", n)
		server, user, pass := c.q.Param(p+"Server"), c.q.Param(p+"UserName"), c.q.Param(p+"Password")
		if server == "" {
			return r, nil, missing(p + "Server")
		}
		host, _, _ := strings.Cut(server, "/")
		if strings.Contains(server, "://") || !hostPortRE.MatchString(host) {
			return r, nil, invalid(p+"Server", server, "must be a registry address without http:// or https://")
		}
		r.Auths = append(r.Auths, eci.Auth{Hosts: []string{host}, Username: user, Password: pass, Source: "ImageRegistryCredential " + host})
	}
	idx, aerr = indices(c, "AcrRegistryInfo")
	if aerr != nil {
		return r, nil, aerr
	}
	for _, n := range idx {
		p := fmt.Sprintf("AcrRegistryInfo.%d.", n)
		id := c.q.Param(p + "InstanceId")
		if id == "" {
			return r, nil, missing(p + "InstanceId")
		}
		domains, aerr := list(c, p+"Domain")
		if aerr != nil {
			return r, nil, aerr
		}
		arnService, arnUser := c.q.Param(p+"ArnService"), c.q.Param(p+"ArnUser")
		if arnUser != "" && arnService == "" {
			return r, nil, invalid(p+"ArnUser", arnUser, "needs "+p+"ArnService, the role of your account that assumes it")
		}
		inst, ok := h.w.InstanceByID(id)
		if want := c.q.Param(p + "RegionId"); ok && want != "" && want != inst.Region {
			ok = false
		}
		if ok && c.q.Param(p+"InstanceName") != "" && c.q.Param(p+"InstanceName") != inst.Name {
			note("FailedAcrRegistryInfo", "AcrRegistryInfo %s: the instance name is %s, not %s", id, inst.Name, c.q.Param(p+"InstanceName"))
		}
		if !ok {
			note("FailedAcrRegistryInfo", "AcrRegistryInfo %s: no such Container Registry instance in region %s", id, cmpOr(c.q.Param(p+"RegionId"), region))
			continue
		}
		hosts, bad := h.instanceHosts(inst, domains)
		for _, d := range bad {
			note("FailedAcrRegistryInfo", "AcrRegistryInfo %s: %s is not a domain of the instance; it gets no credential", id, d)
		}
		principal, why := h.acrPrincipal(c, inst, arnService, arnUser)
		if principal == nil {
			note("FailedAcrRegistryInfo", "AcrRegistryInfo %s: no registry credential: %s", id, why)
			continue
		}
		user, token, _ := h.svc.IssueRegistryToken(principal, inst)
		r.Auths = append(r.Auths, eci.Auth{Hosts: hosts, Username: user, Password: token, Source: "AcrRegistryInfo " + id})
		h.log.Info("eci registry credential", "requestId", c.requestID, "instance", id, "principal", principal.ARN(), "hosts", strings.Join(hosts, ","))
	}
	return r, notes, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// instanceHosts returns the hosts the credential is for: the given domains that belong to the
// instance (bare or as advertised), or every domain of the instance.
func (h *Handler) instanceHosts(inst *world.Instance, domains []string) (hosts, bad []string) {
	own := map[string]string{}
	for _, d := range []string{inst.InternetDomain(), inst.VPCDomain()} {
		own[d] = h.domain(d)
		own[h.domain(d)] = h.domain(d)
	}
	if len(domains) == 0 {
		for _, d := range inst.Domains() {
			hosts = append(hosts, d, h.domain(d))
		}
		return slices.Compact(hosts), nil
	}
	for _, d := range domains {
		key := strings.ToLower(strings.TrimSpace(d))
		if _, ok := own[key]; !ok {
			bad = append(bad, d)
			continue
		}
		hosts = append(hosts, key)
	}
	return hosts, bad
}

// acrPrincipal is whom the registry token is minted for: the caller for its own account's
// instance; with ArnService, a session of that role (assumed by the ECI service), and with
// ArnUser a session of that role assumed by the first.
func (h *Handler) acrPrincipal(c *call, inst *world.Instance, arnService, arnUser string) (*ram.Principal, string) {
	if arnService == "" {
		if inst.Owner() != c.p.Account {
			return nil, "the instance belongs to another account; pass ArnService and ArnUser roles that trust each other"
		}
		return c.p, ""
	}
	role, ok := h.w.RoleByARN(arnService)
	if !ok || role.Account() != c.p.Account {
		return nil, fmt.Sprintf("ArnService %s is not a role of your account", arnService)
	}
	_, p, err := h.svc.AssumeRoleForService(role, ECIServicePrincipal, "eci-acr", time.Hour)
	if err != nil {
		return nil, fmt.Sprintf("the ECI service cannot assume %s: %v", arnService, err)
	}
	if arnUser == "" {
		return p, ""
	}
	_, p2, err := h.svc.AssumeRole(p, ram.AssumeRoleInput{RoleArn: arnUser, RoleSessionName: "eci-acr"}, c.ctx(h.svc.Now()))
	if err != nil {
		return nil, fmt.Sprintf("%s cannot assume ArnUser %s: %v", arnService, arnUser, err)
	}
	return p2, ""
}

func (h *Handler) containers(c *call) ([]eci.ContainerSpec, *apiError) {
	idx, aerr := indices(c, "Container")
	if aerr != nil {
		return nil, aerr
	}
	if len(idx) == 0 {
		return nil, missing("Container.1.Image")
	}
	if len(idx) > 20 {
		return nil, invalid("Container", strconv.Itoa(len(idx)), "at most 20 containers")
	}
	var out []eci.ContainerSpec
	names := map[string]bool{}
	for _, n := range idx {
		p := fmt.Sprintf("Container.%d.", n)
		cs := eci.ContainerSpec{Name: c.q.Param(p + "Name"), Image: c.q.Param(p + "Image"),
			ImagePullPolicy: c.q.Param(p + "ImagePullPolicy"), WorkingDir: c.q.Param(p + "WorkingDir")}
		if cs.Image == "" {
			return nil, missing(p + "Image")
		}
		if cs.Name == "" {
			return nil, missing(p + "Name")
		}
		if len(cs.Name) > 63 || !dnsLabelRE.MatchString(cs.Name) {
			return nil, invalid(p+"Name", cs.Name, "must be 1-63 lower-case letters, digits or '-', starting and ending with a letter or digit")
		}
		if names[cs.Name] {
			return nil, invalid(p+"Name", cs.Name, "container names must be unique")
		}
		names[cs.Name] = true
		switch cs.ImagePullPolicy {
		case "", "Always", "IfNotPresent", "Never":
		default:
			return nil, invalid(p+"ImagePullPolicy", cs.ImagePullPolicy, "must be Always, IfNotPresent or Never")
		}
		if cs.Command, aerr = list(c, p+"Command"); aerr != nil {
			return nil, aerr
		}
		if cs.Args, aerr = list(c, p+"Arg"); aerr != nil {
			return nil, aerr
		}
		envIdx, aerr := indices(c, p+"EnvironmentVar")
		if aerr != nil {
			return nil, aerr
		}
		for _, e := range envIdx {
			k := c.q.Param(fmt.Sprintf("%sEnvironmentVar.%d.Key", p, e))
			if k == "" {
				return nil, missing(fmt.Sprintf("%sEnvironmentVar.%d.Key", p, e))
			}
			cs.Env = append(cs.Env, eci.EnvVar{Key: k, Value: c.q.Param(fmt.Sprintf("%sEnvironmentVar.%d.Value", p, e))})
		}
		out = append(out, cs)
	}
	return out, nil
}

// CreateContainerGroup (eci:CreateContainerGroup on containergroup/*).
func (h *Handler) createContainerGroup(c *call) (any, *apiError) {
	region, aerr := h.eciRegion(c)
	if aerr != nil {
		return nil, aerr
	}
	name := c.q.Param("ContainerGroupName")
	if name == "" {
		return nil, missing("ContainerGroupName")
	}
	if len(name) < 2 || len(name) > 128 || !dnsLabelRE.MatchString(name) {
		return nil, invalid("ContainerGroupName", name, "must be 2-128 lower-case letters, digits or '-', starting and ending with a letter or digit")
	}
	policy := c.q.Param("RestartPolicy")
	switch policy {
	case "", eci.RestartAlways, eci.RestartNever, eci.RestartOnFailure:
	default:
		return nil, invalid("RestartPolicy", policy, "must be Always, Never or OnFailure")
	}
	containers, aerr := h.containers(c)
	if aerr != nil {
		return nil, aerr
	}
	auto, aerr := boolParam(c, "AutoMatchImageCache")
	if aerr != nil {
		return nil, aerr
	}
	if aerr := h.authorize(c, "eci:CreateContainerGroup", eciARN(region, c.p, "containergroup", "*")); aerr != nil {
		return nil, aerr
	}
	if aerr := h.eciReady(); aerr != nil {
		return nil, aerr
	}
	regs, notes, aerr := h.registries(c, region)
	if aerr != nil {
		return nil, aerr
	}
	snap := c.q.Param("ImageSnapshotId")
	id, err := h.eci.CreateGroup(eci.GroupSpec{Account: c.p.Account.UID, Region: region, Name: name, RestartPolicy: policy,
		Containers: containers, Registries: regs, ImageSnapshotID: snap, AutoMatchImageCache: auto, Notes: notes})
	if err != nil {
		return nil, eciErr(err, "ImageCache", snap)
	}
	return struct {
		RequestId        string `json:"RequestId"`
		ContainerGroupId string `json:"ContainerGroupId"`
	}{c.requestID, id}, nil
}

func eciTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02T15:04:05Z")
}

type eciEventJSON struct {
	Count          int    `json:"Count"`
	Type           string `json:"Type"`
	Name           string `json:"Name"`
	Message        string `json:"Message"`
	FirstTimestamp string `json:"FirstTimestamp"`
	LastTimestamp  string `json:"LastTimestamp"`
	Reason         string `json:"Reason"`
}

func eventsJSON(evs []eci.Event) []eciEventJSON {
	out := make([]eciEventJSON, 0, len(evs))
	for _, e := range evs {
		out = append(out, eciEventJSON{e.Count, e.Type, e.Name, e.Message, eciTime(e.First), eciTime(e.Last), e.Reason})
	}
	return out
}

type eciStateJSON struct {
	State        string `json:"State"`
	DetailStatus string `json:"DetailStatus"`
	ExitCode     int    `json:"ExitCode"`
	StartTime    string `json:"StartTime"`
	FinishTime   string `json:"FinishTime"`
	Reason       string `json:"Reason"`
	Message      string `json:"Message"`
	Signal       int    `json:"Signal"`
}

func stateJSON(s eci.ContainerState) eciStateJSON {
	return eciStateJSON{s.State, s.DetailStatus, s.ExitCode, eciTime(s.Started), eciTime(s.Finished), s.Reason, s.Message, 0}
}

type eciEnvJSON struct {
	Key   string `json:"Key"`
	Value string `json:"Value"`
}

type eciContainerJSON struct {
	Name            string       `json:"Name"`
	Image           string       `json:"Image"`
	ImagePullPolicy string       `json:"ImagePullPolicy"`
	WorkingDir      string       `json:"WorkingDir"`
	Commands        []string     `json:"Commands"`
	Args            []string     `json:"Args"`
	EnvironmentVars []eciEnvJSON `json:"EnvironmentVars"`
	Ready           bool         `json:"Ready"`
	RestartCount    int          `json:"RestartCount"`
	CurrentState    eciStateJSON `json:"CurrentState"`
	PreviousState   eciStateJSON `json:"PreviousState"`
	Cpu             float32      `json:"Cpu"`
	Memory          float32      `json:"Memory"`
}

type eciGroupJSON struct {
	ContainerGroupId   string             `json:"ContainerGroupId"`
	ContainerGroupName string             `json:"ContainerGroupName"`
	RegionId           string             `json:"RegionId"`
	ZoneId             string             `json:"ZoneId"`
	Status             string             `json:"Status"`
	RestartPolicy      string             `json:"RestartPolicy"`
	CreationTime       string             `json:"CreationTime"`
	SucceededTime      string             `json:"SucceededTime"`
	FailedTime         string             `json:"FailedTime"`
	IntranetIp         string             `json:"IntranetIp"`
	Cpu                float32            `json:"Cpu"`
	Memory             float32            `json:"Memory"`
	InstanceType       string             `json:"InstanceType"`
	Containers         []eciContainerJSON `json:"Containers"`
	Events             []eciEventJSON     `json:"Events"`
	Tags               []struct{}         `json:"Tags"`
}

func groupJSON(g eci.Group, withEvents bool) eciGroupJSON {
	out := eciGroupJSON{ContainerGroupId: g.ID, ContainerGroupName: g.Name, RegionId: g.Region, ZoneId: g.Region + "-emulated",
		Status: g.Status, RestartPolicy: g.RestartPolicy, CreationTime: eciTime(g.Created), SucceededTime: eciTime(g.Succeeded),
		FailedTime: eciTime(g.Failed), IntranetIp: "127.0.0.1", Cpu: 2, Memory: 4, InstanceType: "emulated",
		Containers: []eciContainerJSON{}, Events: []eciEventJSON{}, Tags: []struct{}{}}
	for _, ct := range g.Containers {
		cj := eciContainerJSON{Name: ct.Name, Image: ct.Image, ImagePullPolicy: cmpOr(ct.ImagePullPolicy, "IfNotPresent"), WorkingDir: ct.WorkingDir,
			Commands: nonNil(ct.Command), Args: nonNil(ct.Args), EnvironmentVars: []eciEnvJSON{}, Ready: ct.Ready, RestartCount: ct.RestartCount,
			CurrentState: stateJSON(ct.Current), PreviousState: stateJSON(ct.Previous)}
		for _, e := range ct.Env {
			cj.EnvironmentVars = append(cj.EnvironmentVars, eciEnvJSON(e))
		}
		out.Containers = append(out.Containers, cj)
	}
	if withEvents {
		out.Events = eventsJSON(g.Events)
	}
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// groupIDs parses ContainerGroupIds: a JSON array (as the API documents) or a comma list.
func groupIDs(v string) ([]string, *apiError) {
	if v == "" {
		return nil, nil
	}
	var ids []string
	if strings.HasPrefix(strings.TrimSpace(v), "[") {
		if err := json.Unmarshal([]byte(v), &ids); err != nil {
			return nil, invalid("ContainerGroupIds", v, "must be a JSON array of container group ids")
		}
	} else {
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				ids = append(ids, s)
			}
		}
	}
	if len(ids) > 20 {
		return nil, invalid("ContainerGroupIds", strconv.Itoa(len(ids)), "at most 20 ids")
	}
	return ids, nil
}

// DescribeContainerGroups (eci:DescribeContainerGroups on each group): paged with Limit
// (1-20, default 20) and NextToken.
func (h *Handler) describeContainerGroups(c *call) (any, *apiError) {
	region, aerr := h.eciRegion(c)
	if aerr != nil {
		return nil, aerr
	}
	ids, aerr := groupIDs(c.q.Param("ContainerGroupIds"))
	if aerr != nil {
		return nil, aerr
	}
	limit := 20
	if v := c.q.Param("Limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 20 {
			return nil, invalid("Limit", v, "must be an integer from 1 to 20")
		}
		limit = n
	}
	offset := 0
	if v := c.q.Param("NextToken"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return nil, invalid("NextToken", v, "not a token this API returned")
		}
		offset = n
	}
	withEvents := true
	if v := c.q.Param("WithEvent"); v != "" {
		b, aerr := boolParam(c, "WithEvent")
		if aerr != nil {
			return nil, aerr
		}
		withEvents = b
	}
	if aerr := h.eciReady(); aerr != nil {
		return nil, aerr
	}
	name, status := c.q.Param("ContainerGroupName"), c.q.Param("Status")
	var all []eciGroupJSON
	for _, g := range h.eci.Groups(c.p.Account.UID, region) {
		if (len(ids) > 0 && !slices.Contains(ids, g.ID)) || (name != "" && g.Name != name) || (status != "" && g.Status != status) {
			continue
		}
		if h.svc.Authorize(c.p, "eci:DescribeContainerGroups", eciARN(region, c.p, "containergroup", g.ID), c.ctx(h.svc.Now())) != nil {
			continue
		}
		all = append(all, groupJSON(g, withEvents))
	}
	if len(all) == 0 {
		if aerr := h.authorize(c, "eci:DescribeContainerGroups", eciARN(region, c.p, "containergroup", "*")); aerr != nil {
			return nil, aerr
		}
	}
	next := ""
	pageItems := []eciGroupJSON{}
	if offset < len(all) {
		end := min(offset+limit, len(all))
		pageItems = all[offset:end]
		if end < len(all) {
			next = strconv.Itoa(end)
		}
	}
	return struct {
		RequestId       string         `json:"RequestId"`
		TotalCount      int            `json:"TotalCount"`
		NextToken       string         `json:"NextToken"`
		ContainerGroups []eciGroupJSON `json:"ContainerGroups"`
	}{c.requestID, len(all), next, pageItems}, nil
}

func (h *Handler) groupParam(c *call) (string, string, *apiError) {
	region, aerr := h.eciRegion(c)
	if aerr != nil {
		return "", "", aerr
	}
	id := c.q.Param("ContainerGroupId")
	if id == "" {
		return "", "", missing("ContainerGroupId")
	}
	return region, id, nil
}

// DeleteContainerGroup (eci:DeleteContainerGroup on the group).
func (h *Handler) deleteContainerGroup(c *call) (any, *apiError) {
	region, id, aerr := h.groupParam(c)
	if aerr != nil {
		return nil, aerr
	}
	if aerr := h.authorize(c, "eci:DeleteContainerGroup", eciARN(region, c.p, "containergroup", id)); aerr != nil {
		return nil, aerr
	}
	if aerr := h.eciReady(); aerr != nil {
		return nil, aerr
	}
	if g, ok := h.eci.Group(c.p.Account.UID, id); !ok || g.Region != region {
		return nil, eciErr(eci.ErrNotFound, "ContainerGroup", id)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.r.Context()), time.Minute)
	defer cancel()
	if err := h.eci.DeleteGroup(ctx, c.p.Account.UID, id); err != nil {
		return nil, eciErr(err, "ContainerGroup", id)
	}
	return struct {
		RequestId string `json:"RequestId"`
	}{c.requestID}, nil
}

// DescribeContainerLog (eci:DescribeContainerLog on the group).
func (h *Handler) describeContainerLog(c *call) (any, *apiError) {
	region, id, aerr := h.groupParam(c)
	if aerr != nil {
		return nil, aerr
	}
	tail := 0
	if v := c.q.Param("Tail"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return nil, invalid("Tail", v, "must be a non-negative integer")
		}
		tail = n
	}
	if aerr := h.authorize(c, "eci:DescribeContainerLog", eciARN(region, c.p, "containergroup", id)); aerr != nil {
		return nil, aerr
	}
	if aerr := h.eciReady(); aerr != nil {
		return nil, aerr
	}
	if g, ok := h.eci.Group(c.p.Account.UID, id); !ok || g.Region != region {
		return nil, eciErr(eci.ErrNotFound, "ContainerGroup", id)
	}
	name, content, err := h.eci.Log(c.r.Context(), c.p.Account.UID, id, c.q.Param("ContainerName"), tail)
	if err != nil {
		return nil, eciErr(err, "ContainerGroup", id+"/"+c.q.Param("ContainerName"))
	}
	return struct {
		RequestId     string `json:"RequestId"`
		ContainerName string `json:"ContainerName"`
		Content       string `json:"Content"`
	}{c.requestID, name, content}, nil
}

// CreateImageCache (eci:CreateImageCache on imagecache/*).
func (h *Handler) createImageCache(c *call) (any, *apiError) {
	region, aerr := h.eciRegion(c)
	if aerr != nil {
		return nil, aerr
	}
	name := c.q.Param("ImageCacheName")
	if name == "" {
		return nil, missing("ImageCacheName")
	}
	if len(name) < 2 || len(name) > 128 || !dnsLabelRE.MatchString(name) {
		return nil, invalid("ImageCacheName", name, "must be 2-128 lower-case letters, digits or '-'")
	}
	images, aerr := list(c, "Image")
	if aerr != nil {
		return nil, aerr
	}
	if len(images) == 0 {
		return nil, missing("Image.1")
	}
	if len(images) > 20 {
		return nil, invalid("Image", strconv.Itoa(len(images)), "at most 20 images")
	}
	days := 0
	if v := c.q.Param("RetentionDays"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 65536 {
			return nil, invalid("RetentionDays", v, "must be an integer from 1 to 65536")
		}
		days = n
	}
	if aerr := h.authorize(c, "eci:CreateImageCache", eciARN(region, c.p, "imagecache", "*")); aerr != nil {
		return nil, aerr
	}
	if aerr := h.eciReady(); aerr != nil {
		return nil, aerr
	}
	regs, notes, aerr := h.registries(c, region)
	if aerr != nil {
		return nil, aerr
	}
	id, groupID, err := h.eci.CreateCache(eci.CacheSpec{Account: c.p.Account.UID, Region: region, Name: name, Images: images,
		RetentionDays: days, Registries: regs, Notes: notes})
	if err != nil {
		return nil, eciErr(err, "ImageCache", "")
	}
	return struct {
		RequestId        string `json:"RequestId"`
		ImageCacheId     string `json:"ImageCacheId"`
		ContainerGroupId string `json:"ContainerGroupId"`
	}{c.requestID, id, groupID}, nil
}

type eciCacheJSON struct {
	ContainerGroupId string         `json:"ContainerGroupId"`
	ImageCacheId     string         `json:"ImageCacheId"`
	ImageCacheName   string         `json:"ImageCacheName"`
	SnapshotId       string         `json:"SnapshotId"`
	Progress         string         `json:"Progress"`
	Status           string         `json:"Status"`
	ExpireDateTime   string         `json:"ExpireDateTime"`
	CreationTime     string         `json:"CreationTime"`
	Events           []eciEventJSON `json:"Events"`
	Images           []string       `json:"Images"`
}

// DescribeImageCaches (eci:DescribeImageCaches on each cache).
func (h *Handler) describeImageCaches(c *call) (any, *apiError) {
	region, aerr := h.eciRegion(c)
	if aerr != nil {
		return nil, aerr
	}
	if aerr := h.eciReady(); aerr != nil {
		return nil, aerr
	}
	id, name, image := c.q.Param("ImageCacheId"), c.q.Param("ImageCacheName"), c.q.Param("Image")
	out := []eciCacheJSON{}
	for _, ic := range h.eci.Caches(c.p.Account.UID, region) {
		if (id != "" && ic.ID != id) || (name != "" && ic.Name != name) || (image != "" && !slices.Contains(ic.Images, image)) {
			continue
		}
		if h.svc.Authorize(c.p, "eci:DescribeImageCaches", eciARN(region, c.p, "imagecache", ic.ID), c.ctx(h.svc.Now())) != nil {
			continue
		}
		out = append(out, eciCacheJSON{ic.GroupID, ic.ID, ic.Name, "s-" + strings.TrimPrefix(ic.ID, "imc-"), ic.Progress, ic.Status,
			eciTime(ic.Expires), eciTime(ic.Created), eventsJSON(ic.Events), slices.Clone(ic.Images)})
	}
	if len(out) == 0 {
		if aerr := h.authorize(c, "eci:DescribeImageCaches", eciARN(region, c.p, "imagecache", "*")); aerr != nil {
			return nil, aerr
		}
	}
	return struct {
		RequestId   string         `json:"RequestId"`
		ImageCaches []eciCacheJSON `json:"ImageCaches"`
	}{c.requestID, out}, nil
}

// DeleteImageCache (eci:DeleteImageCache on the cache).
func (h *Handler) deleteImageCache(c *call) (any, *apiError) {
	region, aerr := h.eciRegion(c)
	if aerr != nil {
		return nil, aerr
	}
	id := c.q.Param("ImageCacheId")
	if id == "" {
		return nil, missing("ImageCacheId")
	}
	if aerr := h.authorize(c, "eci:DeleteImageCache", eciARN(region, c.p, "imagecache", id)); aerr != nil {
		return nil, aerr
	}
	if aerr := h.eciReady(); aerr != nil {
		return nil, aerr
	}
	if err := h.eci.DeleteCache(c.p.Account.UID, id); err != nil {
		return nil, eciErr(err, "ImageCache", id)
	}
	return struct {
		RequestId string `json:"RequestId"`
	}{c.requestID}, nil
}
