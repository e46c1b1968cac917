"""Stack output keys: one constant each, imported by the program, the tests and the inventory plugin's docs.

camelCase, like Pulumi's own property names. The Ansible inventory plugin `pulumi_stack` reads these keys.
"""

from typing import Final

ALB_DNS_NAME: Final = "albDnsName"
API_URL: Final = "apiUrl"
API_GATEWAY_URL: Final = "apiGatewayUrl"
VPC_ID: Final = "vpcId"
VPC_CIDR: Final = "vpcCidr"
VPN_CONNECTION_ID: Final = "vpnConnectionId"
# The AWS ends of the two IPsec tunnels, to configure on the on-prem VPN device.
VPN_TUNNEL_ADDRESSES: Final = "vpnTunnelAddresses"
# What the on-prem strongSwan needs per tunnel, as AWS reports it: [{"tunnel": 1, "outsideAddress",
# "insideCidr", "onpremInsideAddress", "awsInsideAddress", "ikeVersions", "phase1EncryptionAlgorithms",
# ..., "startupAction"}, {... tunnel 2}] (network.py: TUNNEL_OPTIONS).
VPN_TUNNELS: Final = "vpnTunnels"
# The two tunnels' pre-shared keys, in tunnel order: a Pulumi secret.
VPN_PRESHARED_KEYS: Final = "vpnPresharedKeys"
# The on-prem networks routed over the VPN (network.onpremCidrs); the cloud side's is vpcCidr.
ONPREM_CIDRS: Final = "onpremCidrs"
DB_MODE: Final = "dbMode"
DB_ENDPOINT: Final = "dbEndpoint"
DB_ADDRESS: Final = "dbAddress"
DB_PORT: Final = "dbPort"
DB_NAME: Final = "dbName"
QUEUE_URL: Final = "queueUrl"
QUEUE_NAME: Final = "queueName"
DEAD_LETTER_QUEUE_URL: Final = "deadLetterQueueUrl"
CLUSTER_NAME: Final = "clusterName"
ECR_REPOSITORY_URL: Final = "ecrRepositoryUrl"
KUBECONFIG: Final = "kubeconfig"
FAILOVER_FQDN: Final = "failoverFqdn"
HEALTH_CHECK_IDS: Final = "healthCheckIds"
# {node name: {"address": private IP, "groups": [...]}} for cloud VMs Ansible configures.
CLOUD_NODES: Final = "cloudNodes"
REGION: Final = "region"
# The SNS topics every alarm notifies: {"stack": in the stack's region, "healthChecks": us-east-1's, where
# Route 53's health-check alarms live (the same topic in a us-east-1 stack)}.
ALARM_TOPIC_ARNS: Final = "alarmTopicArns"
# Patroni mode only: pgBackRest's repository (role pgbackrest: repo1-s3-bucket, -s3-region, -s3-endpoint,
# repo1-path, -s3-key for the on-prem members; the secret key goes to the vault, docs/CLOUD.md).
BACKUP_BUCKET: Final = "backupBucket"
BACKUP_REGION: Final = "backupRegion"
BACKUP_ENDPOINT: Final = "backupEndpoint"
BACKUP_PATH: Final = "backupPrefix"
BACKUP_KEY_ID: Final = "backupKeyId"  # the on-prem members' access key id (not a secret, AWS says)
BACKUP_SECRET_ACCESS_KEY: Final = "backupSecretAccessKey"  # a Pulumi secret
BACKUP_KMS_KEY_ARN: Final = "backupKmsKeyArn"
BACKUP: Final = (
    BACKUP_BUCKET,
    BACKUP_REGION,
    BACKUP_ENDPOINT,
    BACKUP_PATH,
    BACKUP_KEY_ID,
    BACKUP_SECRET_ACCESS_KEY,
    BACKUP_KMS_KEY_ARN,
)

ALL: Final = (
    ALB_DNS_NAME,
    API_URL,
    API_GATEWAY_URL,
    VPC_ID,
    VPC_CIDR,
    VPN_CONNECTION_ID,
    VPN_TUNNEL_ADDRESSES,
    VPN_TUNNELS,
    VPN_PRESHARED_KEYS,
    ONPREM_CIDRS,
    DB_MODE,
    DB_ENDPOINT,
    DB_ADDRESS,
    DB_PORT,
    DB_NAME,
    QUEUE_URL,
    QUEUE_NAME,
    DEAD_LETTER_QUEUE_URL,
    CLUSTER_NAME,
    ECR_REPOSITORY_URL,
    KUBECONFIG,
    FAILOVER_FQDN,
    HEALTH_CHECK_IDS,
    CLOUD_NODES,
    REGION,
    ALARM_TOPIC_ARNS,
    *BACKUP,
)
