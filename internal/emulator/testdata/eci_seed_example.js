#!/usr/bin/env node
// The Python example of "Configure password-free access to pull images from a Container
// Registry Enterprise Edition instance" (CreateContainerGroup with AcrRegistryInfo),
// translated to Alibaba's Node POP client @alicloud/pop-core, then followed until the group
// ends: its status, its containers' logs, and its deletion.
//
// Environment: ECI_ENDPOINT (http://host:port of acr-emulator's OpenAPI), ALIBABA_CLOUD_ACCESS_KEY_ID,
// ALIBABA_CLOUD_ACCESS_KEY_SECRET, REGION_ID, INSTANCE_ID, DOMAIN_PUBLIC, DOMAIN_VPC, IMAGE_PATH
// (namespace/repo:tag). Exit status 0 when every container succeeded.
'use strict';
const RPCClient = require('@alicloud/pop-core').RPCClient;

const env = (name) => {
  const v = process.env[name];
  if (!v) { throw new Error(`${name} is not set`); }
  return v;
};

async function main() {
  const client = new RPCClient({
    accessKeyId: env('ALIBABA_CLOUD_ACCESS_KEY_ID'),
    accessKeySecret: env('ALIBABA_CLOUD_ACCESS_KEY_SECRET'),
    endpoint: env('ECI_ENDPOINT'),
    apiVersion: '2018-08-08',
  });
  const region = env('REGION_ID');
  const publicDomain = env('DOMAIN_PUBLIC');
  const vpcDomain = env('DOMAIN_VPC');
  const opts = { method: 'POST', timeout: 30000 };

  // request = CreateContainerGroupRequest(); request.set_…(…)
  const created = await client.request('CreateContainerGroup', {
    RegionId: region,
    SecurityGroupId: 'sg-2zeh4cev9y7ulbr*****',
    VSwitchId: 'vsw-2zejlv7xjnw61w6z*****',
    ContainerGroupName: 'test-cri',
    RestartPolicy: 'Never', // the example's nginx serves forever; this image prints and exits
    Container: [
      { Image: `${publicDomain}/${env('IMAGE_PATH')}`, Name: 'nginx' },
      { Image: `${vpcDomain}/${env('IMAGE_PATH')}`, Name: 'nginx2' },
    ],
    AcrRegistryInfo: [
      { RegionId: region, InstanceId: env('INSTANCE_ID'), Domain: [vpcDomain, publicDomain] },
    ],
  }, opts);
  console.log(JSON.stringify(created));
  const id = created.ContainerGroupId;

  let group;
  for (let i = 0; i < 600; i++) {
    const res = await client.request('DescribeContainerGroups',
      { RegionId: region, ContainerGroupIds: JSON.stringify([id]) }, opts);
    group = res.ContainerGroups[0];
    if (group.Status === 'Succeeded' || group.Status === 'Failed') { break; }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  console.log(`container group ${id}: ${group.Status}`);
  for (const e of group.Events) { console.log(`  event ${e.Type} ${e.Reason}: ${e.Message}`); }
  for (const c of group.Containers) {
    const log = await client.request('DescribeContainerLog',
      { RegionId: region, ContainerGroupId: id, ContainerName: c.Name }, opts);
    console.log(`log of ${c.Name} (${c.CurrentState.State}, exit ${c.CurrentState.ExitCode}):`);
    process.stdout.write(log.Content.replace(/^/gm, '  | '));
  }
  await client.request('DeleteContainerGroup', { RegionId: region, ContainerGroupId: id }, opts);
  console.log(`deleted ${id}`);
  if (group.Status !== 'Succeeded') { process.exitCode = 1; }
}

main().catch((err) => {
  console.error(`${err.name}: ${err.message}`);
  process.exitCode = 2;
});
