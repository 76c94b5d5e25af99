# `terraform test` against mocked AWS providers: no credentials, no network,
# nothing created. It exercises the root module's wiring (one region module per
# regions.json entry, links between every pair, DNS per region), renders every
# template, and checks the variable validations. (ACM answers a wildcard name with
# the same validation record as its apex, as the mocks do.) It does NOT prove that AWS
# accepts the resources: only a real plan/apply in an account does.

mock_provider "aws" {
  alias  = "us_east_1"
  source = "./tests/mocks"
  mock_resource "aws_acm_certificate" {
    defaults = {
      arn = "arn:aws:acm:us-east-1:123456789012:certificate/00000000-0000-0000-0000-000000000000"
      domain_validation_options = [
        { domain_name = "api.meridian.example", resource_record_name = "_a.api.meridian.example.", resource_record_type = "CNAME", resource_record_value = "_v.acm-validations.aws." },
        { domain_name = "*.api.meridian.example", resource_record_name = "_a.api.meridian.example.", resource_record_type = "CNAME", resource_record_value = "_v.acm-validations.aws." },
        { domain_name = "us-east1.api.meridian.example", resource_record_name = "_b.us-east1.api.meridian.example.", resource_record_type = "CNAME", resource_record_value = "_w.acm-validations.aws." },
        { domain_name = "*.us-east1.api.meridian.example", resource_record_name = "_b.us-east1.api.meridian.example.", resource_record_type = "CNAME", resource_record_value = "_w.acm-validations.aws." },
      ]
    }
  }
  mock_data "aws_region" {
    defaults = { name = "us-east-1" }
  }
  mock_data "aws_availability_zones" {
    defaults = { names = ["us-east-1a", "us-east-1b", "us-east-1c"] }
  }
  mock_data "aws_ssm_parameter" {
    defaults = { value = "ami-0123456789abcdef0" }
  }
}

mock_provider "aws" {
  alias  = "eu_west_1"
  source = "./tests/mocks"
  mock_resource "aws_acm_certificate" {
    defaults = {
      arn = "arn:aws:acm:us-east-1:123456789012:certificate/00000000-0000-0000-0000-000000000000"
      domain_validation_options = [
        { domain_name = "api.meridian.example", resource_record_name = "_a.api.meridian.example.", resource_record_type = "CNAME", resource_record_value = "_v.acm-validations.aws." },
        { domain_name = "*.api.meridian.example", resource_record_name = "_a.api.meridian.example.", resource_record_type = "CNAME", resource_record_value = "_v.acm-validations.aws." },
        { domain_name = "europe-west1.api.meridian.example", resource_record_name = "_b.europe-west1.api.meridian.example.", resource_record_type = "CNAME", resource_record_value = "_w.acm-validations.aws." },
        { domain_name = "*.europe-west1.api.meridian.example", resource_record_name = "_b.europe-west1.api.meridian.example.", resource_record_type = "CNAME", resource_record_value = "_w.acm-validations.aws." },
      ]
    }
  }
  mock_data "aws_region" {
    defaults = { name = "eu-west-1" }
  }
  mock_data "aws_availability_zones" {
    defaults = { names = ["eu-west-1a", "eu-west-1b", "eu-west-1c"] }
  }
  mock_data "aws_ssm_parameter" {
    defaults = { value = "ami-0123456789abcdef1" }
  }
}

mock_provider "aws" {
  alias  = "eu_central_1"
  source = "./tests/mocks"
  mock_resource "aws_acm_certificate" {
    defaults = {
      arn = "arn:aws:acm:us-east-1:123456789012:certificate/00000000-0000-0000-0000-000000000000"
      domain_validation_options = [
        { domain_name = "api.meridian.example", resource_record_name = "_a.api.meridian.example.", resource_record_type = "CNAME", resource_record_value = "_v.acm-validations.aws." },
        { domain_name = "*.api.meridian.example", resource_record_name = "_a.api.meridian.example.", resource_record_type = "CNAME", resource_record_value = "_v.acm-validations.aws." },
        { domain_name = "europe-west3.api.meridian.example", resource_record_name = "_b.europe-west3.api.meridian.example.", resource_record_type = "CNAME", resource_record_value = "_w.acm-validations.aws." },
        { domain_name = "*.europe-west3.api.meridian.example", resource_record_name = "_b.europe-west3.api.meridian.example.", resource_record_type = "CNAME", resource_record_value = "_w.acm-validations.aws." },
      ]
    }
  }
  mock_data "aws_region" {
    defaults = { name = "eu-central-1" }
  }
  mock_data "aws_availability_zones" {
    defaults = { names = ["eu-central-1a", "eu-central-1b", "eu-central-1c"] }
  }
  mock_data "aws_ssm_parameter" {
    defaults = { value = "ami-0123456789abcdef2" }
  }
}

mock_provider "aws" {
  alias  = "eu_north_1"
  source = "./tests/mocks"
  mock_resource "aws_acm_certificate" {
    defaults = {
      arn = "arn:aws:acm:us-east-1:123456789012:certificate/00000000-0000-0000-0000-000000000000"
      domain_validation_options = [
        { domain_name = "api.meridian.example", resource_record_name = "_a.api.meridian.example.", resource_record_type = "CNAME", resource_record_value = "_v.acm-validations.aws." },
        { domain_name = "*.api.meridian.example", resource_record_name = "_a.api.meridian.example.", resource_record_type = "CNAME", resource_record_value = "_v.acm-validations.aws." },
        { domain_name = "europe-north1.api.meridian.example", resource_record_name = "_b.europe-north1.api.meridian.example.", resource_record_type = "CNAME", resource_record_value = "_w.acm-validations.aws." },
        { domain_name = "*.europe-north1.api.meridian.example", resource_record_name = "_b.europe-north1.api.meridian.example.", resource_record_type = "CNAME", resource_record_value = "_w.acm-validations.aws." },
      ]
    }
  }
  mock_data "aws_region" {
    defaults = { name = "eu-north-1" }
  }
  mock_data "aws_availability_zones" {
    defaults = { names = ["eu-north-1a", "eu-north-1b", "eu-north-1c"] }
  }
  mock_data "aws_ssm_parameter" {
    defaults = { value = "ami-0123456789abcdef4" }
  }
}

mock_provider "aws" {
  alias  = "ap_southeast_1"
  source = "./tests/mocks"
  mock_resource "aws_acm_certificate" {
    defaults = {
      arn = "arn:aws:acm:us-east-1:123456789012:certificate/00000000-0000-0000-0000-000000000000"
      domain_validation_options = [
        { domain_name = "api.meridian.example", resource_record_name = "_a.api.meridian.example.", resource_record_type = "CNAME", resource_record_value = "_v.acm-validations.aws." },
        { domain_name = "*.api.meridian.example", resource_record_name = "_a.api.meridian.example.", resource_record_type = "CNAME", resource_record_value = "_v.acm-validations.aws." },
        { domain_name = "asia-southeast1.api.meridian.example", resource_record_name = "_b.asia-southeast1.api.meridian.example.", resource_record_type = "CNAME", resource_record_value = "_w.acm-validations.aws." },
        { domain_name = "*.asia-southeast1.api.meridian.example", resource_record_name = "_b.asia-southeast1.api.meridian.example.", resource_record_type = "CNAME", resource_record_value = "_w.acm-validations.aws." },
      ]
    }
  }
  mock_data "aws_region" {
    defaults = { name = "ap-southeast-1" }
  }
  mock_data "aws_availability_zones" {
    defaults = { names = ["ap-southeast-1a", "ap-southeast-1b", "ap-southeast-1c"] }
  }
  mock_data "aws_ssm_parameter" {
    defaults = { value = "ami-0123456789abcdef3" }
  }
}

variables {
  route53_zone_id          = "Z0123456789EXAMPLE"
  api_domain               = "api.meridian.example"
  meridian_artifact_s3_uri = "s3://meridian-releases/meridian-0.1.0.tar.gz"
}

run "every_region_is_deployed_with_its_aws_region" {
  command = apply

  assert {
    condition     = toset(keys(output.regions)) == toset(["us-east1", "europe-west1", "europe-west3", "europe-north1", "asia-southeast1"])
    error_message = "expected one region module per regions.json entry"
  }
  assert {
    condition = (
      output.regions["us-east1"].aws_region == "us-east-1" &&
      output.regions["europe-west1"].aws_region == "eu-west-1" &&
      output.regions["europe-west3"].aws_region == "eu-central-1" &&
      output.regions["europe-north1"].aws_region == "eu-north-1" &&
      output.regions["asia-southeast1"].aws_region == "ap-southeast-1"
    )
    error_message = "region id -> AWS region mapping is wrong"
  }
  assert {
    condition     = output.regions["europe-west1"].public_endpoint == "https://europe-west1.api.meridian.example"
    error_message = "the public endpoint must come from regions/europe-west1.toml"
  }
  assert {
    condition     = length(module.region_us_east_1) == 1 && length(module.region_eu_west_1) == 1 && length(module.region_eu_central_1) == 1 && length(module.region_eu_north_1) == 1 && length(module.region_ap_southeast_1) == 1
    error_message = "each AWS provider block must carry exactly one Meridian region"
  }
}

run "cockroach_cluster_spans_all_regions" {
  command = apply

  assert {
    condition     = length(output.cockroach_join) == 15 && length(distinct(output.cockroach_join)) == 15
    error_message = "3 CockroachDB nodes per region, 5 regions, all distinct in --join"
  }
  assert {
    condition     = output.regions["europe-west3"].cockroach_node_ips == tolist(["10.31.128.10", "10.31.129.10", "10.31.130.10"])
    error_message = "CockroachDB nodes get fixed IPs in the data subnets, one per AZ"
  }
  assert {
    condition     = startswith(output.regions["us-east1"].database_url_format, "postgresql://meridian_app:<password>@10.11.128.10:26257,")
    error_message = "the database URL points at the region's own CockroachDB nodes"
  }
  assert {
    condition = (
      output.regions["us-east1"].node_env["MERIDIAN_DATABASE__TLS__MODE"] == "verify-full" &&
      output.regions["us-east1"].node_env["MERIDIAN_DATABASE__TLS__CA_FILE"] == "/run/meridian/db-ca.crt"
    )
    error_message = "nodes verify CockroachDB's certificate (verify-full, the cluster CA written by user data)"
  }
}

run "vpc_peering_links_every_pair" {
  command = apply

  assert {
    condition = (
      length(module.link_us_east_1__eu_west_1) + length(module.link_us_east_1__eu_central_1) +
      length(module.link_us_east_1__ap_southeast_1) + length(module.link_eu_west_1__eu_central_1) +
      length(module.link_eu_west_1__ap_southeast_1) + length(module.link_eu_central_1__ap_southeast_1) +
      length(module.link_us_east_1__eu_north_1) + length(module.link_eu_west_1__eu_north_1) +
      length(module.link_eu_central_1__eu_north_1) + length(module.link_eu_north_1__ap_southeast_1)
    ) == 10
    error_message = "5 regions need 10 cross-region links"
  }
}

run "dns_has_a_health_check_per_region" {
  command = apply

  assert {
    condition     = toset(keys(output.health_check_ids)) == toset(keys(output.regions))
    error_message = "one Route 53 health check per region"
  }
  assert {
    condition     = output.regions["asia-southeast1"].internal_url == "http://asia-southeast1.meridian.internal"
    error_message = "peers are reached through the private zone"
  }
  assert {
    condition     = toset(values(output.tenant_host_records)) == toset(["*.api.meridian.example"]) && toset(keys(output.tenant_host_records)) == toset(keys(output.regions))
    error_message = "one wildcard record per region answers tenant subdomains"
  }
}

run "transit_gateway_mode" {
  command = apply

  variables {
    cross_region_network = "transit_gateway"
  }

  assert {
    condition     = length(module.link_eu_west_1__eu_central_1) == 1
    error_message = "transit_gateway mode still links every pair"
  }
}

run "no_cross_region_network" {
  command = plan

  variables {
    cross_region_network = "none"
  }

  assert {
    condition = (
      length(module.link_us_east_1__eu_west_1) + length(module.link_us_east_1__eu_central_1) +
      length(module.link_us_east_1__ap_southeast_1) + length(module.link_eu_west_1__eu_central_1) +
      length(module.link_eu_west_1__ap_southeast_1) + length(module.link_eu_central_1__ap_southeast_1) +
      length(module.link_us_east_1__eu_north_1) + length(module.link_eu_west_1__eu_north_1) +
      length(module.link_eu_central_1__eu_north_1) + length(module.link_eu_north_1__ap_southeast_1)
    ) == 0
    error_message = "none creates no links"
  }
}

run "rejects_bad_inputs" {
  command = plan

  variables {
    name                     = "Meridian_Prod"
    cross_region_network     = "direct_connect"
    meridian_artifact_s3_uri = "https://example.com/meridian"
    node_extra_env           = { DATABASE_URL = "x" }
  }

  expect_failures = [
    var.name,
    var.cross_region_network,
    var.meridian_artifact_s3_uri,
    var.node_extra_env,
  ]
}

# One KMS key per jurisdiction: primary in its first region, replicas in its
# other regions, never outside it; its policy admits only that jurisdiction's
# node roles, and each node is told its own region's copy.
run "kms_key_per_jurisdiction_used_only_by_its_nodes" {
  command = apply

  assert {
    condition     = toset(keys(output.kms_keys)) == toset(["us", "eu", "apac"])
    error_message = "expected one KMS key per jurisdiction"
  }
  assert {
    condition     = toset(keys(module.kms_eu_north_1.primary_arns)) == toset(["eu"]) && length(module.kms_eu_west_1.primary_arns) == 0 && length(module.kms_eu_central_1.primary_arns) == 0 && toset(keys(module.kms_eu_west_1.key_arns)) == toset(["eu"]) && toset(keys(module.kms_eu_central_1.key_arns)) == toset(["eu"])
    error_message = "the eu key: primary in eu-north-1 (europe-north1, the first EU region by id), replicas in eu-west-1 and eu-central-1"
  }
  assert {
    condition     = toset(keys(module.kms_us_east_1.key_arns)) == toset(["us"]) && toset(keys(module.kms_ap_southeast_1.key_arns)) == toset(["apac"])
    error_message = "no key may be replicated outside its jurisdiction"
  }
  assert {
    condition = toset(flatten([
      for id, policy in output.kms_keys["eu"].policies : [
        for s in jsondecode(policy).Statement : s.Condition.ArnEquals["aws:PrincipalArn"] if s.Sid == "NodesOfThisJurisdictionWrapDeks"
      ]
      ])) == toset([
      "arn:aws:iam::123456789012:role/meridian-europe-north1-node",
      "arn:aws:iam::123456789012:role/meridian-europe-west1-node",
      "arn:aws:iam::123456789012:role/meridian-europe-west3-node",
    ])
    error_message = "the eu key's policy must name exactly the EU node roles"
  }
  assert {
    condition = alltrue([
      for j, k in output.kms_keys : alltrue([
        for id, policy in k.policies : alltrue([
          for s in jsondecode(policy).Statement : alltrue([
            for role in try(s.Condition.ArnEquals["aws:PrincipalArn"], []) : anytrue([for r in k.regions : endswith(role, ":role/meridian-${r}-node")])
          ])
        ])
      ])
    ])
    error_message = "a key policy names a node role of another jurisdiction"
  }
  assert {
    condition = (
      output.regions["europe-west3"].node_env["MERIDIAN_ENCRYPTION__PROVIDER"] == "aws-kms" &&
      output.regions["europe-west3"].node_env["MERIDIAN_ENCRYPTION__KMS__REGION"] == "eu-central-1" &&
      output.regions["europe-west3"].node_env["MERIDIAN_ENCRYPTION__KMS__KEYS__EU"] == module.kms_eu_central_1.key_arns["eu"] &&
      !contains(keys(output.regions["europe-west3"].node_env), "MERIDIAN_ENCRYPTION__KMS__KEYS__US")
    )
    error_message = "a node gets its own region's copy of its jurisdiction's key, and no other"
  }
}

# GDPR exports stay in the tenant's home region: one private bucket per
# region, in that region's AWS provider, named in that region's node settings
# and writable by that region's node role only.
run "export_bucket_per_region_used_only_by_its_nodes" {
  command = apply

  assert {
    condition     = length(distinct([for id, r in output.regions : r.export_bucket])) == length(output.regions)
    error_message = "one export bucket per region"
  }
  assert {
    condition = alltrue([
      for id, r in output.regions : r.node_env["MERIDIAN_EXPORTS__STORE"] == "s3" && r.node_env["MERIDIAN_EXPORTS__S3__BUCKET"] == r.export_bucket && r.node_env["MERIDIAN_EXPORTS__S3__REGION"] == r.aws_region
    ])
    error_message = "each region's nodes use their own region's bucket, in their own AWS region"
  }
  assert {
    condition = alltrue([
      for s in jsondecode(module.region_eu_central_1["europe-west3"].node_policy).Statement :
      (s.Sid == "RegionExportStore" ? s.Resource == ["arn:aws:s3:::meridian-europe-west3-exports-123456789012/*"] : true) &&
      (s.Sid == "ListRegionExportStore" ? s.Resource == ["arn:aws:s3:::meridian-europe-west3-exports-123456789012"] : true)
    ]) && length([for s in jsondecode(module.region_eu_central_1["europe-west3"].node_policy).Statement : s if contains(["RegionExportStore", "ListRegionExportStore"], s.Sid)]) == 2
    error_message = "a node role may touch only its own region's export bucket"
  }
  assert {
    condition     = output.regions["europe-west3"].export_bucket == "meridian-europe-west3-exports-123456789012"
    error_message = "the bucket is named after the deployment, the region and the account"
  }
  assert {
    condition     = module.region_eu_central_1["europe-west3"].export_lifecycle_days == 30
    error_message = "the lifecycle backstop defaults to 30 days"
  }
}
