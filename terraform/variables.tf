# The list of Meridian regions is NOT a variable: it is regions.json (see main.tf).
# Everything here is per deployment (account, domain, sizes).

variable "name" {
  description = "Prefix for resource names (load balancers, IAM roles, secrets). Short: AWS load balancer and target group names are limited to 32 characters."
  type        = string
  default     = "meridian"
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,11}$", var.name))
    error_message = "name: 2-12 characters, lower-case letters, digits and '-', starting with a letter."
  }
}

variable "route53_zone_id" {
  description = "ID of the public Route 53 hosted zone that holds api_domain and every region's public_endpoint host (from regions/<id>.toml)."
  type        = string
}

variable "api_domain" {
  description = "The global API name, answered by latency-based records (one per region), e.g. api.meridian.example."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$", var.api_domain))
    error_message = "api_domain must be a lower-case DNS name such as api.meridian.example."
  }
}

variable "internal_domain" {
  description = "Private Route 53 zone (associated with every region's VPC) with one record per region for node-to-node forwarding: http://<region id>.<internal_domain>."
  type        = string
  default     = "meridian.internal"
}

variable "meridian_artifact_s3_uri" {
  description = "s3://bucket/key of a .tar.gz holding bin/meridian (linux x86_64) and regions/*.toml; every node downloads it at boot."
  type        = string
  validation {
    condition     = can(regex("^s3://[a-z0-9.-]{3,63}/.+\\.(tar\\.gz|tgz)$", var.meridian_artifact_s3_uri))
    error_message = "meridian_artifact_s3_uri must look like s3://bucket/path/meridian.tar.gz."
  }
}

variable "meridian_artifact_bucket_region" {
  description = "AWS region of the artifact bucket (nodes in every region read from it)."
  type        = string
  default     = "us-east-1"
}

variable "node_instance_type" {
  description = "Instance type of the stateless API nodes (x86_64)."
  type        = string
  default     = "c6i.large"
}

variable "node_min_size" {
  description = "Minimum API nodes per region."
  type        = number
  default     = 2
}

variable "node_desired_capacity" {
  description = "Initial API nodes per region (the CPU target-tracking policy moves it afterwards)."
  type        = number
  default     = 2
}

variable "node_max_size" {
  description = "Maximum API nodes per region."
  type        = number
  default     = 6
  validation {
    condition     = var.node_max_size >= var.node_desired_capacity && var.node_desired_capacity >= var.node_min_size && var.node_min_size >= 1
    error_message = "Need 1 <= node_min_size <= node_desired_capacity <= node_max_size."
  }
}

variable "node_cpu_target_percent" {
  description = "Average CPU the autoscaling group aims for."
  type        = number
  default     = 60
}

variable "node_port" {
  description = "Port the nodes listen on (MERIDIAN_HTTP__BIND=0.0.0.0:<port>); plain HTTP, TLS ends at the load balancer."
  type        = number
  default     = 8080
}

variable "node_extra_env" {
  description = "Extra non-secret MERIDIAN_* settings for every node, e.g. { MERIDIAN_AUTH__ISSUER = \"https://id.example\", MERIDIAN_DATABASE__POOL_SIZE = \"32\" }."
  type        = map(string)
  default     = {}
  validation {
    condition     = alltrue([for k, v in var.node_extra_env : can(regex("^MERIDIAN_[A-Z0-9_]+$", k)) && !strcontains(v, "'") && !strcontains(v, "\n")])
    error_message = "node_extra_env: keys must be MERIDIAN_* environment names; values may not contain single quotes or newlines."
  }
}

variable "cockroach_version" {
  description = "CockroachDB release installed on the database nodes (the schema needs >= v25.2)."
  type        = string
  default     = "v25.2.0"
  validation {
    condition     = can(regex("^v[0-9]+\\.[0-9]+\\.[0-9]+$", var.cockroach_version))
    error_message = "cockroach_version looks like v25.2.0."
  }
}

variable "cockroach_instance_type" {
  description = "Instance type of the CockroachDB nodes (x86_64; CockroachDB recommends >= 4 vCPU, 4 GiB RAM per vCPU)."
  type        = string
  default     = "m6i.xlarge"
}

variable "cockroach_nodes_per_region" {
  description = "CockroachDB nodes per region, spread over the availability zones (3 for zone-failure survival within a region)."
  type        = number
  default     = 3
  validation {
    condition     = var.cockroach_nodes_per_region >= 1 && var.cockroach_nodes_per_region <= 9
    error_message = "cockroach_nodes_per_region must be between 1 and 9."
  }
}

variable "cockroach_volume_size_gb" {
  description = "Size of each CockroachDB node's data volume (gp3, encrypted)."
  type        = number
  default     = 200
}

variable "cockroach_accept_sql_without_tls" {
  description = "Start CockroachDB with --accept-sql-without-tls. Not needed: Meridian nodes connect with database.tls.mode=verify-full (the cluster CA from Secrets Manager). Only for an older Meridian release that spoke plain SQL; node-to-node CockroachDB traffic stays TLS either way."
  type        = bool
  default     = false
}

variable "cross_region_network" {
  description = "How the regions' VPCs reach each other (CockroachDB inter-node traffic and node-to-node forwarding): vpc_peering (full mesh of inter-region peering connections), transit_gateway (one transit gateway per region, full mesh of TGW peering attachments) or none (you provide the connectivity)."
  type        = string
  default     = "vpc_peering"
  validation {
    condition     = contains(["vpc_peering", "transit_gateway", "none"], var.cross_region_network)
    error_message = "cross_region_network must be vpc_peering, transit_gateway or none."
  }
}

variable "az_count" {
  description = "Availability zones used per region (2 or 3)."
  type        = number
  default     = 3
  validation {
    condition     = var.az_count >= 2 && var.az_count <= 3
    error_message = "az_count must be 2 or 3."
  }
}

variable "nat_gateway_per_az" {
  description = "One NAT gateway per availability zone (true) or one per region (false, cheaper, loses egress when that zone fails)."
  type        = bool
  default     = true
}

variable "alb_ingress_cidrs" {
  description = "IPv4 ranges allowed to reach the public load balancers on 443."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

variable "alb_ssl_policy" {
  description = "TLS policy of the HTTPS listeners."
  type        = string
  default     = "ELBSecurityPolicy-TLS13-1-2-2021-06"
}

variable "deletion_protection" {
  description = "Deletion protection on the load balancers and termination protection on the CockroachDB instances."
  type        = bool
  default     = false
}

variable "export_retention_days" {
  description = "Lifecycle backstop of each region's export bucket: objects older than this are deleted even if the node's sweep missed them. At least the nodes' exports.ttl_ms (default 7 days)."
  type        = number
  default     = 30
  validation {
    condition     = var.export_retention_days >= 7 && var.export_retention_days <= 365
    error_message = "export_retention_days must be 7..365 (at least the default export lifetime of 7 days)."
  }
}

variable "tags" {
  description = "Tags added to every resource (through the providers' default_tags)."
  type        = map(string)
  default     = {}
}
