variable "name" {
  description = "Name prefix, e.g. meridian-europe-west1."
  type        = string
}

variable "region_id" {
  description = "CockroachDB region name of these nodes (--locality=region=<region_id>), e.g. europe-west1."
  type        = string
}

variable "aws_region" {
  description = "AWS region the nodes run in (for the Secrets Manager calls in user data)."
  type        = string
}

variable "vpc_id" {
  type = string
}

variable "subnet_ids" {
  description = "Data subnets, one per availability zone, in the order of availability_zones."
  type        = list(string)
}

variable "availability_zones" {
  type = list(string)
}

variable "node_ips" {
  description = "Fixed private IP of each node; node n lives in subnet n % length(subnet_ids). Must lie in that subnet."
  type        = list(string)
}

variable "join" {
  description = "--join addresses (host:port) of the whole multi-region cluster."
  type        = list(string)
}

variable "client_security_group" {
  description = "Security group of the Meridian API nodes (SQL clients, port 26257)."
  type        = string
}

variable "remote_cockroach_cidrs" {
  description = "Other regions' CockroachDB subnets (inter-node traffic over the cross-region network)."
  type        = list(string)
}

variable "ami_id" {
  description = "Amazon Linux 2023 x86_64 AMI."
  type        = string
}

variable "instance_type" {
  type = string
}

variable "volume_size_gb" {
  type = number
}

variable "cockroach_version" {
  description = "e.g. v25.2.0"
  type        = string
}

variable "accept_sql_without_tls" {
  description = "Pass --accept-sql-without-tls (SQL clients may use passwords without TLS; inter-node traffic stays TLS)."
  type        = bool
}

variable "secret_prefix" {
  description = "Secrets are named <secret_prefix>/cockroach/<ca-crt|node-crt|node-key>."
  type        = string
}

variable "termination_protection" {
  type = bool
}
