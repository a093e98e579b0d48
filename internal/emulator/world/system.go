package world

// SystemPolicies are the built-in RAM system policies the emulator knows by name.
var SystemPolicies = map[string]*PolicyDocument{
	"AdministratorAccess": {Version: "1", Statement: []Statement{
		{Effect: "Allow", Action: StringList{"*"}, Resource: StringList{"*"}},
	}},
	"AliyunContainerRegistryFullAccess": {Version: "1", Statement: []Statement{
		{Effect: "Allow", Action: StringList{"cr:*"}, Resource: StringList{"*"}},
	}},
	"AliyunContainerRegistryReadOnlyAccess": {Version: "1", Statement: []Statement{
		{Effect: "Allow", Action: StringList{"cr:Get*", "cr:List*", "cr:PullRepository"}, Resource: StringList{"*"}},
	}},
	"AliyunSTSAssumeRoleAccess": {Version: "1", Statement: []Statement{
		{Effect: "Allow", Action: StringList{"sts:AssumeRole"}, Resource: StringList{"*"}},
	}},
	// AliyunCSManagedAcrRolePolicy is the ACK managed worker role's registry policy.
	"AliyunCSManagedAcrRolePolicy": {Version: "1", Statement: []Statement{
		{Effect: "Allow", Action: StringList{"cr:GetAuthorizationToken", "cr:ListInstanceEndpoint", "cr:PullRepository"}, Resource: StringList{"*"}},
	}},
}
