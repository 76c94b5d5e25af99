# The key-encryption keys of the nodes' envelope encryption (issue 15): one
# multi-Region KMS key per jurisdiction (modules/kms), its primary in the
# jurisdiction's first region (by id) and a replica in each of its other
# regions. The key policy lets only the node roles of that jurisdiction's
# regions use it, so an EU key is not usable by US or APAC nodes; each node
# gets its own region's copy of its jurisdiction's key (modules/region:
# MERIDIAN_ENCRYPTION__KMS__KEYS__<J>).

data "aws_caller_identity" "current" {
  provider = aws.us_east_1
}

data "aws_partition" "current" {
  provider = aws.us_east_1
}

locals {
  region_jurisdiction = {
    for id in local.region_ids : id => try(one(regex("(?m)^jurisdiction\\s*=\\s*\"([a-z]+)\"", local.region_file_text[id])), "")
  }
  jurisdictions = sort(distinct(values(local.region_jurisdiction)))
  jurisdiction_regions = {
    for j in local.jurisdictions : j => sort([for id in local.region_ids : id if local.region_jurisdiction[id] == j])
  }
  # Where each jurisdiction's primary key lives: the AWS region of its first region.
  kms_primary_aws_region = {
    for j, ids in local.jurisdiction_regions : j => local.regions[ids[0]].aws_region
  }
  account_root = "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root"
  # The node roles (modules/region/iam.tf names them "<name>-<region id>-node"),
  # by ARN: a key policy naming a role that does not exist yet is refused, a
  # condition on aws:PrincipalArn is not, and so the keys need not wait for
  # the region modules (which need the keys' ARNs).
  kms_node_roles = {
    for j, ids in local.jurisdiction_regions : j => [
      for id in ids : "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:role/${var.name}-${id}-node"
    ]
  }
  kms_policies = {
    for j, roles in local.kms_node_roles : j => jsonencode({
      Version = "2012-10-17"
      Statement = [
        {
          # Administration by the account (IAM decides who); without it a key
          # becomes unmanageable. Not usage: that is the statement below.
          Sid       = "AccountAdministers"
          Effect    = "Allow"
          Principal = { AWS = local.account_root }
          Action = [
            "kms:Create*", "kms:Describe*", "kms:Enable*", "kms:List*", "kms:Put*",
            "kms:Update*", "kms:Revoke*", "kms:Disable*", "kms:Get*", "kms:Delete*",
            "kms:TagResource", "kms:UntagResource", "kms:ScheduleKeyDeletion",
            "kms:CancelKeyDeletion", "kms:ReplicateKey", "kms:UpdatePrimaryRegion",
          ]
          Resource = "*"
        },
        {
          Sid       = "NodesOfThisJurisdictionWrapDeks"
          Effect    = "Allow"
          Principal = { AWS = local.account_root }
          Action    = ["kms:Encrypt", "kms:Decrypt", "kms:DescribeKey"]
          Resource  = "*"
          Condition = {
            ArnEquals = { "aws:PrincipalArn" = roles }
          }
        },
      ]
    })
  }
  # Per AWS provider: the primaries created there, and the replicas (with their
  # primary's ARN) of the jurisdictions whose other regions are there.
  kms_primaries_in = {
    for aws in local.aws_providers : aws => {
      for j in local.jurisdictions : j => local.kms_policies[j] if local.regions_are_consistent && local.kms_primary_aws_region[j] == aws
    }
  }
  kms_replica_jurisdictions_in = {
    for aws in local.aws_providers : aws => [
      for j in local.jurisdictions : j if local.regions_are_consistent && local.kms_primary_aws_region[j] != aws && contains([for id in local.jurisdiction_regions[j] : local.regions[id].aws_region], aws)
    ]
  }
  kms_primary_arns = merge(
    module.kms_us_east_1.primary_arns,
    module.kms_eu_west_1.primary_arns,
    module.kms_eu_central_1.primary_arns,
    module.kms_eu_north_1.primary_arns,
    module.kms_ap_southeast_1.primary_arns,
  )
  kms_replicas_in = {
    for aws, js in local.kms_replica_jurisdictions_in : aws => {
      for j in js : j => { primary_key_arn = local.kms_primary_arns[j], policy = local.kms_policies[j] }
    }
  }
}

module "kms_us_east_1" {
  source    = "./modules/kms"
  providers = { aws = aws.us_east_1 }
  name      = var.name
  primaries = local.kms_primaries_in["us-east-1"]
  replicas  = local.kms_replicas_in["us-east-1"]
}

module "kms_eu_west_1" {
  source    = "./modules/kms"
  providers = { aws = aws.eu_west_1 }
  name      = var.name
  primaries = local.kms_primaries_in["eu-west-1"]
  replicas  = local.kms_replicas_in["eu-west-1"]
}

module "kms_eu_central_1" {
  source    = "./modules/kms"
  providers = { aws = aws.eu_central_1 }
  name      = var.name
  primaries = local.kms_primaries_in["eu-central-1"]
  replicas  = local.kms_replicas_in["eu-central-1"]
}

module "kms_eu_north_1" {
  source    = "./modules/kms"
  providers = { aws = aws.eu_north_1 }
  name      = var.name
  primaries = local.kms_primaries_in["eu-north-1"]
  replicas  = local.kms_replicas_in["eu-north-1"]
}

module "kms_ap_southeast_1" {
  source    = "./modules/kms"
  providers = { aws = aws.ap_southeast_1 }
  name      = var.name
  primaries = local.kms_primaries_in["ap-southeast-1"]
  replicas  = local.kms_replicas_in["ap-southeast-1"]
}

locals {
  kms_key_arns_in = {
    "us-east-1"      = module.kms_us_east_1.key_arns
    "eu-west-1"      = module.kms_eu_west_1.key_arns
    "eu-central-1"   = module.kms_eu_central_1.key_arns
    "eu-north-1"     = module.kms_eu_north_1.key_arns
    "ap-southeast-1" = module.kms_ap_southeast_1.key_arns
  }
  kms_policies_in = {
    "us-east-1"      = module.kms_us_east_1.policies
    "eu-west-1"      = module.kms_eu_west_1.policies
    "eu-central-1"   = module.kms_eu_central_1.policies
    "eu-north-1"     = module.kms_eu_north_1.policies
    "ap-southeast-1" = module.kms_ap_southeast_1.policies
  }
}

output "kms_keys" {
  description = "Per jurisdiction: its regions, the node roles its key policy admits, and per region the key's ARN and policy there."
  value = {
    for j, ids in local.jurisdiction_regions : j => {
      regions    = ids
      node_roles = local.kms_node_roles[j]
      key_arns   = { for id in ids : id => local.kms_key_arns_in[local.regions[id].aws_region][j] }
      policies   = { for id in ids : id => local.kms_policies_in[local.regions[id].aws_region][j] }
    }
  }
}
