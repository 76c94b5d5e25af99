# Meridian on AWS: one region module per Meridian region, cross-region links
# between every pair of regions, and the DNS (latency-based GeoDNS, private zone).

locals {
  # ---------------------------------------------------------------------------
  # The ONE list of Meridian regions in terraform: regions.json. Keys are the
  # CockroachDB region names used by regions/*.toml and by the database
  # (crdb_internal_region); each maps to the AWS region it runs in.
  # tests/terraform_regions.rs checks this list against regions/*.toml.
  # ---------------------------------------------------------------------------
  regions    = jsondecode(file("${path.module}/regions.json")).regions
  region_ids = sort(keys(local.regions))

  # AWS regions that have a provider (providers.tf) and a module block (below).
  aws_providers = ["us-east-1", "eu-west-1", "eu-central-1", "eu-north-1", "ap-southeast-1"]
  # Every pair of them, in the orientation of the link_* module blocks below.
  aws_provider_pairs = [
    ["us-east-1", "eu-west-1"],
    ["us-east-1", "eu-central-1"],
    ["us-east-1", "ap-southeast-1"],
    ["eu-west-1", "eu-central-1"],
    ["eu-west-1", "ap-southeast-1"],
    ["eu-central-1", "ap-southeast-1"],
    ["us-east-1", "eu-north-1"],
    ["eu-west-1", "eu-north-1"],
    ["eu-central-1", "eu-north-1"],
    ["eu-north-1", "ap-southeast-1"],
  ]

  # The node's own region files: the hosts the nodes redirect to (307 to an
  # allowed region's public_endpoint) must exist in DNS and on the certificates.
  region_file_names = [for f in fileset("${path.module}/../regions", "*.toml") : f if f != "latency.toml"]
  region_file_text  = { for f in local.region_file_names : trimsuffix(f, ".toml") => file("${path.module}/../regions/${f}") }
  region_file_ids = {
    for stem, text in local.region_file_text : stem => try(one(regex("(?m)^id\\s*=\\s*\"([^\"]+)\"", text)), "")
  }
  public_endpoints = {
    for id in local.region_ids : id => try(one(regex("(?m)^public_endpoint\\s*=\\s*\"([^\"]+)\"", local.region_file_text[id])), "")
  }
  public_hosts = {
    for id, url in local.public_endpoints : id => try(one(regex("^https://([a-z0-9.-]+)/?$", url)), "")
  }

  # ---------------------------------------------------------------------------
  # Guards, evaluated by `terraform validate` (so CI catches them offline).
  # Terraform has no error() function: a non-empty list fails tobool() below
  # and the failing message is printed.
  # ---------------------------------------------------------------------------
  aws_regions_used = [for id in local.region_ids : local.regions[id].aws_region]
  vpc_cidrs_used   = [for id in local.region_ids : local.regions[id].vpc_cidr]
  problems = concat(
    [for id in local.region_ids : "regions.json: ${id} maps to AWS region ${local.regions[id].aws_region}, which has no aws provider in providers.tf / module block in main.tf" if !contains(local.aws_providers, local.regions[id].aws_region)],
    length(distinct(local.aws_regions_used)) == length(local.aws_regions_used) ? [] : ["regions.json: two Meridian regions map to the same AWS region (one region module per AWS provider)"],
    [for id in local.region_ids : "regions.json: ${id}: vpc_cidr must be an IPv4 /16, got ${local.regions[id].vpc_cidr}" if !(can(cidrhost(local.regions[id].vpc_cidr, 0)) && endswith(local.regions[id].vpc_cidr, "/16"))],
    length(distinct(local.vpc_cidrs_used)) == length(local.vpc_cidrs_used) ? [] : ["regions.json: vpc_cidr values must differ (the VPCs are peered)"],
    [for id in local.region_ids : "regions.json: ${id} has no regions/${id}.toml" if !contains(keys(local.region_file_text), id)],
    [for stem, id in local.region_file_ids : "regions/${stem}.toml: id is \"${id}\", expected \"${stem}\"" if id != stem],
    [for stem in keys(local.region_file_text) : "regions/${stem}.toml is a region that regions.json does not deploy" if !contains(local.region_ids, stem)],
    [for id in local.region_ids : "regions/${id}.toml: no jurisdiction (us, eu or apac): its nodes get their jurisdiction's KMS key (kms.tf)" if contains(keys(local.region_file_text), id) && !contains(["us", "eu", "apac"], try(one(regex("(?m)^jurisdiction\\s*=\\s*\"([a-z]+)\"", local.region_file_text[id])), ""))],
    [for id, host in local.public_hosts : "regions/${id}.toml: public_endpoint must be https://<host> (no port or path), got \"${local.public_endpoints[id]}\"" if host == "" && contains(keys(local.region_file_text), id)],
  )
  regions_are_consistent = length(local.problems) == 0 ? true : tobool(join(" | ", local.problems))

  # ---------------------------------------------------------------------------
  # Address plan, computed here (not in the modules) because every region needs
  # the others' ranges and the CockroachDB join list is built from fixed IPs.
  # Per /16: public /20s at .0/.16/.32, private (nodes) /20s at .64/.80/.96,
  # data (CockroachDB only) /24s at .128/.129/.130.
  # ---------------------------------------------------------------------------
  network = {
    for id, r in local.regions : id => {
      public_subnet_cidrs  = [for i in range(var.az_count) : cidrsubnet(r.vpc_cidr, 4, i)]
      private_subnet_cidrs = [for i in range(var.az_count) : cidrsubnet(r.vpc_cidr, 4, 4 + i)]
      data_subnet_cidrs    = [for i in range(var.az_count) : cidrsubnet(r.vpc_cidr, 8, 128 + i)]
      # Node n sits in zone n % az_count at host 10 + n / az_count of that zone's data subnet.
      cockroach_ips = [
        for n in range(var.cockroach_nodes_per_region) :
        cidrhost(cidrsubnet(r.vpc_cidr, 8, 128 + n % var.az_count), 10 + floor(n / var.az_count))
      ]
    }
  }
  cockroach_join = flatten([for id in local.region_ids : [for ip in local.network[id].cockroach_ips : "${ip}:26257"]])

  # Node-to-node forwarding goes over the private network to each region's
  # internal load balancer (records in the private zone, modules/dns).
  peer_urls = { for id in local.region_ids : id => "http://${id}.${var.internal_domain}" }

  region_inputs = {
    for id, r in local.regions : id => {
      id                   = id
      aws_region           = r.aws_region
      public_host          = local.public_hosts[id]
      vpc_cidr             = r.vpc_cidr
      public_subnet_cidrs  = local.network[id].public_subnet_cidrs
      private_subnet_cidrs = local.network[id].private_subnet_cidrs
      data_subnet_cidrs    = local.network[id].data_subnet_cidrs
      cockroach_ips        = local.network[id].cockroach_ips
      remote_vpc_cidrs     = [for o in local.region_ids : local.regions[o].vpc_cidr if o != id]
      remote_private_cidrs = flatten([for o in local.region_ids : local.network[o].private_subnet_cidrs if o != id])
      remote_data_cidrs    = flatten([for o in local.region_ids : local.network[o].data_subnet_cidrs if o != id])
    }
  }
  regions_in = {
    for aws in local.aws_providers : aws => { for id, r in local.region_inputs : id => r if local.regions_are_consistent && r.aws_region == aws }
  }

  deployment = {
    name                             = var.name
    route53_zone_id                  = var.route53_zone_id
    api_domain                       = var.api_domain
    artifact_s3_uri                  = var.meridian_artifact_s3_uri
    artifact_bucket_region           = var.meridian_artifact_bucket_region
    node_instance_type               = var.node_instance_type
    node_min_size                    = var.node_min_size
    node_desired_capacity            = var.node_desired_capacity
    node_max_size                    = var.node_max_size
    node_cpu_target_percent          = var.node_cpu_target_percent
    node_port                        = var.node_port
    node_extra_env                   = var.node_extra_env
    peer_urls                        = local.peer_urls
    cockroach_version                = var.cockroach_version
    cockroach_instance_type          = var.cockroach_instance_type
    cockroach_volume_size_gb         = var.cockroach_volume_size_gb
    cockroach_accept_sql_without_tls = var.cockroach_accept_sql_without_tls
    cockroach_join                   = local.cockroach_join
    cross_region_network             = var.cross_region_network
    nat_gateway_per_az               = var.nat_gateway_per_az
    alb_ingress_cidrs                = var.alb_ingress_cidrs
    alb_ssl_policy                   = var.alb_ssl_policy
    deletion_protection              = var.deletion_protection
    export_retention_days            = var.export_retention_days
  }

  default_tags = merge({ Project = var.name, ManagedBy = "terraform" }, var.tags)
}

# -----------------------------------------------------------------------------
# One block per AWS provider; for_each picks the regions.json entries mapped to
# that AWS region (one at most, see the guards), so a region missing from
# regions.json creates nothing and a region added there is deployed.
# -----------------------------------------------------------------------------

module "region_us_east_1" {
  source     = "./modules/region"
  for_each   = local.regions_in["us-east-1"]
  providers  = { aws = aws.us_east_1 }
  region     = each.value
  deployment = local.deployment
  kms_key    = { jurisdiction = local.region_jurisdiction[each.key], arn = module.kms_us_east_1.key_arns[local.region_jurisdiction[each.key]] }
}

module "region_eu_west_1" {
  source     = "./modules/region"
  for_each   = local.regions_in["eu-west-1"]
  providers  = { aws = aws.eu_west_1 }
  region     = each.value
  deployment = local.deployment
  kms_key    = { jurisdiction = local.region_jurisdiction[each.key], arn = module.kms_eu_west_1.key_arns[local.region_jurisdiction[each.key]] }
}

module "region_eu_central_1" {
  source     = "./modules/region"
  for_each   = local.regions_in["eu-central-1"]
  providers  = { aws = aws.eu_central_1 }
  region     = each.value
  deployment = local.deployment
  kms_key    = { jurisdiction = local.region_jurisdiction[each.key], arn = module.kms_eu_central_1.key_arns[local.region_jurisdiction[each.key]] }
}

module "region_eu_north_1" {
  source     = "./modules/region"
  for_each   = local.regions_in["eu-north-1"]
  providers  = { aws = aws.eu_north_1 }
  region     = each.value
  deployment = local.deployment
  kms_key    = { jurisdiction = local.region_jurisdiction[each.key], arn = module.kms_eu_north_1.key_arns[local.region_jurisdiction[each.key]] }
}

module "region_ap_southeast_1" {
  source     = "./modules/region"
  for_each   = local.regions_in["ap-southeast-1"]
  providers  = { aws = aws.ap_southeast_1 }
  region     = each.value
  deployment = local.deployment
  kms_key    = { jurisdiction = local.region_jurisdiction[each.key], arn = module.kms_ap_southeast_1.key_arns[local.region_jurisdiction[each.key]] }
}

locals {
  region_out = merge(
    module.region_us_east_1,
    module.region_eu_west_1,
    module.region_eu_central_1,
    module.region_eu_north_1,
    module.region_ap_southeast_1,
  )

  # ---------------------------------------------------------------------------
  # Cross-region links: one per pair of Meridian regions, oriented so that side
  # "a" is in the first AWS region of the link_* block that creates it.
  # ---------------------------------------------------------------------------
  region_pairs = flatten([
    for i, a in local.region_ids : [for j, b in local.region_ids : { a = a, b = b } if i < j]
  ])
  links = {
    for pair in local.aws_provider_pairs : "${pair[0]}|${pair[1]}" => merge(
      { for p in local.region_pairs : "${p.a}|${p.b}" => { a = p.a, b = p.b } if var.cross_region_network != "none" && local.regions[p.a].aws_region == pair[0] && local.regions[p.b].aws_region == pair[1] },
      { for p in local.region_pairs : "${p.b}|${p.a}" => { a = p.b, b = p.a } if var.cross_region_network != "none" && local.regions[p.b].aws_region == pair[0] && local.regions[p.a].aws_region == pair[1] },
    )
  }
  link_sides = {
    for id, m in local.region_out : id => {
      id                             = id
      aws_region                     = m.aws_region
      vpc_id                         = m.vpc_id
      vpc_cidr                       = m.vpc_cidr
      route_table_ids                = m.private_route_table_ids
      transit_gateway_id             = m.transit_gateway_id
      transit_gateway_route_table_id = m.transit_gateway_route_table_id
    }
  }
}

module "link_us_east_1__eu_west_1" {
  source    = "./modules/interconnect"
  for_each  = local.links["us-east-1|eu-west-1"]
  providers = { aws.a = aws.us_east_1, aws.b = aws.eu_west_1 }
  name      = var.name
  mode      = var.cross_region_network
  a         = local.link_sides[each.value.a]
  b         = local.link_sides[each.value.b]
}

module "link_us_east_1__eu_central_1" {
  source    = "./modules/interconnect"
  for_each  = local.links["us-east-1|eu-central-1"]
  providers = { aws.a = aws.us_east_1, aws.b = aws.eu_central_1 }
  name      = var.name
  mode      = var.cross_region_network
  a         = local.link_sides[each.value.a]
  b         = local.link_sides[each.value.b]
}

module "link_us_east_1__ap_southeast_1" {
  source    = "./modules/interconnect"
  for_each  = local.links["us-east-1|ap-southeast-1"]
  providers = { aws.a = aws.us_east_1, aws.b = aws.ap_southeast_1 }
  name      = var.name
  mode      = var.cross_region_network
  a         = local.link_sides[each.value.a]
  b         = local.link_sides[each.value.b]
}

module "link_eu_west_1__eu_central_1" {
  source    = "./modules/interconnect"
  for_each  = local.links["eu-west-1|eu-central-1"]
  providers = { aws.a = aws.eu_west_1, aws.b = aws.eu_central_1 }
  name      = var.name
  mode      = var.cross_region_network
  a         = local.link_sides[each.value.a]
  b         = local.link_sides[each.value.b]
}

module "link_eu_west_1__ap_southeast_1" {
  source    = "./modules/interconnect"
  for_each  = local.links["eu-west-1|ap-southeast-1"]
  providers = { aws.a = aws.eu_west_1, aws.b = aws.ap_southeast_1 }
  name      = var.name
  mode      = var.cross_region_network
  a         = local.link_sides[each.value.a]
  b         = local.link_sides[each.value.b]
}

module "link_eu_central_1__ap_southeast_1" {
  source    = "./modules/interconnect"
  for_each  = local.links["eu-central-1|ap-southeast-1"]
  providers = { aws.a = aws.eu_central_1, aws.b = aws.ap_southeast_1 }
  name      = var.name
  mode      = var.cross_region_network
  a         = local.link_sides[each.value.a]
  b         = local.link_sides[each.value.b]
}

module "link_us_east_1__eu_north_1" {
  source    = "./modules/interconnect"
  for_each  = local.links["us-east-1|eu-north-1"]
  providers = { aws.a = aws.us_east_1, aws.b = aws.eu_north_1 }
  name      = var.name
  mode      = var.cross_region_network
  a         = local.link_sides[each.value.a]
  b         = local.link_sides[each.value.b]
}

module "link_eu_west_1__eu_north_1" {
  source    = "./modules/interconnect"
  for_each  = local.links["eu-west-1|eu-north-1"]
  providers = { aws.a = aws.eu_west_1, aws.b = aws.eu_north_1 }
  name      = var.name
  mode      = var.cross_region_network
  a         = local.link_sides[each.value.a]
  b         = local.link_sides[each.value.b]
}

module "link_eu_central_1__eu_north_1" {
  source    = "./modules/interconnect"
  for_each  = local.links["eu-central-1|eu-north-1"]
  providers = { aws.a = aws.eu_central_1, aws.b = aws.eu_north_1 }
  name      = var.name
  mode      = var.cross_region_network
  a         = local.link_sides[each.value.a]
  b         = local.link_sides[each.value.b]
}

module "link_eu_north_1__ap_southeast_1" {
  source    = "./modules/interconnect"
  for_each  = local.links["eu-north-1|ap-southeast-1"]
  providers = { aws.a = aws.eu_north_1, aws.b = aws.ap_southeast_1 }
  name      = var.name
  mode      = var.cross_region_network
  a         = local.link_sides[each.value.a]
  b         = local.link_sides[each.value.b]
}

# -----------------------------------------------------------------------------
# DNS: latency-based records for api_domain (the production GeoDNS), one simple
# record per region host, Route 53 health checks on https://<host>/readyz, and
# the private zone used for node-to-node forwarding. Route 53 is global; its
# health-check metrics live in us-east-1, hence that provider.
# -----------------------------------------------------------------------------

module "dns" {
  source          = "./modules/dns"
  providers       = { aws = aws.us_east_1 }
  name            = var.name
  route53_zone_id = var.route53_zone_id
  api_domain      = var.api_domain
  internal_domain = var.internal_domain
  regions = {
    for id, m in local.region_out : id => {
      aws_region           = m.aws_region
      public_host          = m.public_host
      alb_dns_name         = m.alb_dns_name
      alb_zone_id          = m.alb_zone_id
      internal_lb_dns_name = m.internal_lb_dns_name
      internal_lb_zone_id  = m.internal_lb_zone_id
      vpc_id               = m.vpc_id
    }
  }
}
