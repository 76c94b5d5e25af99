# Both inputs are built by the root module (main.tf): `region` from regions.json
# and regions/<id>.toml, `deployment` from the root variables.

variable "region" {
  description = "This Meridian region: its CockroachDB region id, AWS region, public host and address plan."
  type = object({
    id                   = string # CockroachDB region name, e.g. europe-west1
    aws_region           = string # e.g. eu-west-1 (must match this module's provider)
    public_host          = string # from public_endpoint in regions/<id>.toml
    vpc_cidr             = string
    public_subnet_cidrs  = list(string) # one per AZ: load balancers, NAT gateways
    private_subnet_cidrs = list(string) # one per AZ: API nodes, internal load balancer
    data_subnet_cidrs    = list(string) # one per AZ: CockroachDB nodes only
    cockroach_ips        = list(string) # fixed IPs in the data subnets
    remote_vpc_cidrs     = list(string) # the other regions' VPCs
    remote_private_cidrs = list(string) # the other regions' node subnets
    remote_data_cidrs    = list(string) # the other regions' CockroachDB subnets
  })
}

variable "deployment" {
  description = "Settings shared by every region (see the root variables.tf for each one's meaning)."
  type = object({
    name                             = string
    route53_zone_id                  = string
    api_domain                       = string
    artifact_s3_uri                  = string
    artifact_bucket_region           = string
    node_instance_type               = string
    node_min_size                    = number
    node_desired_capacity            = number
    node_max_size                    = number
    node_cpu_target_percent          = number
    node_port                        = number
    node_extra_env                   = map(string)
    peer_urls                        = map(string)
    cockroach_version                = string
    cockroach_instance_type          = string
    cockroach_volume_size_gb         = number
    cockroach_accept_sql_without_tls = bool
    cockroach_join                   = list(string)
    cross_region_network             = string
    nat_gateway_per_az               = bool
    alb_ingress_cidrs                = list(string)
    alb_ssl_policy                   = string
    deletion_protection              = bool
    export_retention_days            = number
  })
}

variable "kms_key" {
  description = "This region's jurisdiction and the ARN of that jurisdiction's KMS key (the multi-Region key's copy in this AWS region, root kms.tf)."
  type = object({
    jurisdiction = string
    arn          = string
  })
}
