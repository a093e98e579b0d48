package world

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// PolicyDocument is a RAM policy document: an identity policy or a role's trust policy.
type PolicyDocument struct {
	Version   string      `json:"Version"`
	Statement []Statement `json:"Statement"`
}

// Statement is one element of a policy document's Statement list.
type Statement struct {
	Effect      string                           `json:"Effect"`
	Action      StringList                       `json:"Action,omitempty"`
	NotAction   StringList                       `json:"NotAction,omitempty"`
	Resource    StringList                       `json:"Resource,omitempty"`
	NotResource StringList                       `json:"NotResource,omitempty"`
	Principal   *PolicyPrincipal                 `json:"Principal,omitempty"`
	Condition   map[string]map[string]StringList `json:"Condition,omitempty"`
}

// PolicyPrincipal is the Principal element of a trust policy.
type PolicyPrincipal struct {
	RAM       StringList `json:"RAM,omitempty"`
	Service   StringList `json:"Service,omitempty"`
	Federated StringList `json:"Federated,omitempty"`
}

// StringList is a policy value that may be written as one scalar or as a list of scalars.
// Numbers and booleans are kept in their JSON text form ("3600", "true").
type StringList []string

// UnmarshalJSON accepts a string, number, boolean or a list of those.
func (s *StringList) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '[' {
		var raw []json.RawMessage
		if err := json.Unmarshal(b, &raw); err != nil {
			return err
		}
		out := make([]string, 0, len(raw))
		for _, r := range raw {
			v, err := scalar(r)
			if err != nil {
				return err
			}
			out = append(out, v)
		}
		*s = out
		return nil
	}
	v, err := scalar(b)
	if err != nil {
		return err
	}
	*s = StringList{v}
	return nil
}

func scalar(b []byte) (string, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return "", fmt.Errorf("empty value")
	}
	switch b[0] {
	case '"':
		var v string
		err := json.Unmarshal(b, &v)
		return v, err
	case 't', 'f':
		v, err := strconv.ParseBool(string(b))
		if err != nil {
			return "", fmt.Errorf("invalid value %q", b)
		}
		return strconv.FormatBool(v), nil
	case 'n':
		return "", fmt.Errorf("null is not a valid policy value")
	default:
		var n json.Number
		if err := json.Unmarshal(b, &n); err != nil {
			return "", fmt.Errorf("want a string, number, boolean or list, got %.20s", b)
		}
		return n.String(), nil
	}
}

// UnmarshalJSON accepts a policy document as a JSON object or as a string holding the JSON
// (the form the RAM console and the STS Policy parameter use).
func (d *PolicyDocument) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		b = []byte(s)
	}
	type plain PolicyDocument
	var p plain
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return fmt.Errorf("policy document: %w", err)
	}
	*d = PolicyDocument(p)
	return nil
}

// ParsePolicyDocument parses and checks the grammar of a policy document (for example an STS
// session policy). trust selects the trust-policy grammar (Principal required, only sts:AssumeRole).
func ParsePolicyDocument(b []byte, trust bool) (*PolicyDocument, error) {
	var d PolicyDocument
	if err := d.UnmarshalJSON(b); err != nil {
		return nil, err
	}
	if errs := d.validate(Path("policy"), trust); len(errs) > 0 {
		return nil, errs
	}
	return &d, nil
}

// validConditionOps lists the supported condition operators (with optional "IfExists" suffix stripped).
var validConditionOps = map[string]bool{
	"StringEquals": true, "StringNotEquals": true, "StringEqualsIgnoreCase": true, "StringNotEqualsIgnoreCase": true,
	"StringLike": true, "StringNotLike": true,
	"NumericEquals": true, "NumericNotEquals": true, "NumericLessThan": true, "NumericLessThanEquals": true,
	"NumericGreaterThan": true, "NumericGreaterThanEquals": true,
	"DateEquals": true, "DateNotEquals": true, "DateLessThan": true, "DateLessThanEquals": true,
	"DateGreaterThan": true, "DateGreaterThanEquals": true,
	"Bool": true, "IpAddress": true, "NotIpAddress": true,
}

// ValidConditionOperator reports whether op is a supported condition operator.
func ValidConditionOperator(op string) bool { return validConditionOps[op] }

func (d *PolicyDocument) validate(p Path, trust bool) ErrorList {
	var errs ErrorList
	if d.Version != "1" {
		errs = append(errs, Invalid(p.Child("Version"), d.Version, `must be "1"`))
	}
	if len(d.Statement) == 0 {
		errs = append(errs, Required(p.Child("Statement")))
	}
	for i, st := range d.Statement {
		sp := p.Index("Statement", i)
		if st.Effect != "Allow" && st.Effect != "Deny" {
			errs = append(errs, Invalid(sp.Child("Effect"), st.Effect, `must be "Allow" or "Deny"`))
		}
		if (len(st.Action) == 0) == (len(st.NotAction) == 0) {
			errs = append(errs, Invalid(sp.Child("Action"), strings.Join(st.Action, ","), "exactly one of Action and NotAction is required"))
		}
		for j, a := range append(append(StringList{}, st.Action...), st.NotAction...) {
			if a != "*" && !strings.Contains(a, ":") {
				errs = append(errs, Invalid(sp.Index("Action", j), a, "want <service>:<action>"))
			}
		}
		if trust {
			if st.Principal == nil || len(st.Principal.RAM)+len(st.Principal.Service)+len(st.Principal.Federated) == 0 {
				errs = append(errs, Required(sp.Child("Principal")))
			}
		} else {
			if st.Principal != nil {
				errs = append(errs, Invalid(sp.Child("Principal"), "", "not allowed in an identity policy"))
			}
			if (len(st.Resource) == 0) == (len(st.NotResource) == 0) {
				errs = append(errs, Invalid(sp.Child("Resource"), strings.Join(st.Resource, ","), "exactly one of Resource and NotResource is required"))
			}
		}
		for op := range st.Condition {
			if !validConditionOps[strings.TrimSuffix(op, "IfExists")] {
				errs = append(errs, Invalid(sp.Child("Condition").Child(op), op, "unknown condition operator"))
			}
		}
	}
	return errs
}
