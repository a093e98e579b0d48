package annotations

import (
	"strings"
)

// RoleChain is the RAM role chain a Pod's instance tokens are minted with:
// starting from the cluster identity, assume each ServiceARN in order (roles in
// the Pod owner's account), then each UserARN (roles in the account that owns
// the ACR instance). An empty chain means "the cluster identity itself".
type RoleChain struct {
	ServiceARNs []string
	UserARNs    []string
}

// Empty reports whether the chain assumes no role.
func (c RoleChain) Empty() bool { return len(c.ServiceARNs) == 0 && len(c.UserARNs) == 0 }

// Roles returns the ARNs to assume, in order.
func (c RoleChain) Roles() []string {
	out := make([]string, 0, len(c.ServiceARNs)+len(c.UserARNs))
	out = append(out, c.ServiceARNs...)
	return append(out, c.UserARNs...)
}

// String renders the chain as "arn1>arn2>…" (ARNs are not secret).
func (c RoleChain) String() string { return strings.Join(c.Roles(), ">") }

// ParseRoleARNs parses a comma list of RAM role ARNs of the form
// acs:ram::<accountId>:role/<roleName>. Duplicates are dropped.
func ParseRoleARNs(annotation, value string) ([]string, error) {
	entries, err := splitList(annotation, value)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(entries))
	seen := map[string]bool{}
	for _, e := range entries {
		if err := validateRoleARN(annotation, e); err != nil {
			return nil, err
		}
		if !seen[e] {
			seen[e] = true
			out = append(out, e)
		}
	}
	return out, nil
}

func validateRoleARN(annotation, arn string) error {
	rest, ok := strings.CutPrefix(arn, "acs:ram::")
	if !ok {
		return invalid(annotation, arn, "not a RAM role ARN (want acs:ram::<accountId>:role/<roleName>)")
	}
	account, role, ok := strings.Cut(rest, ":role/")
	if !ok {
		return invalid(annotation, arn, "not a RAM role ARN (want acs:ram::<accountId>:role/<roleName>)")
	}
	if account == "" || len(account) > 32 {
		return invalid(annotation, arn, "account id %q must be 1–32 digits", account)
	}
	for _, c := range account {
		if c < '0' || c > '9' {
			return invalid(annotation, arn, "account id %q must be 1–32 digits", account)
		}
	}
	if role == "" || len(role) > 64 {
		return invalid(annotation, arn, "role name %q must be 1–64 characters", role)
	}
	for _, c := range role {
		if !isAlnum(c) && c != '.' && c != '-' && c != '_' {
			return invalid(annotation, arn, "role name %q may contain only letters, digits, '.', '-' and '_'", role)
		}
	}
	return nil
}

// Roles returns the role chain requested by a Pod's acr-service-arns and
// acr-user-arns annotations (empty when neither is set).
func Roles(annotations map[string]string) (RoleChain, error) {
	var c RoleChain
	if v, ok := annotations[AcrServiceARNs]; ok {
		arns, err := ParseRoleARNs(AcrServiceARNs, v)
		if err != nil {
			return RoleChain{}, err
		}
		c.ServiceARNs = arns
	}
	if v, ok := annotations[AcrUserARNs]; ok {
		arns, err := ParseRoleARNs(AcrUserARNs, v)
		if err != nil {
			return RoleChain{}, err
		}
		c.UserARNs = arns
	}
	return c, nil
}
