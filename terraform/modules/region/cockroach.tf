module "cockroach" {
  source = "../cockroach"

  name                   = local.prefix
  region_id              = var.region.id
  aws_region             = var.region.aws_region
  vpc_id                 = aws_vpc.this.id
  subnet_ids             = aws_subnet.data[*].id
  availability_zones     = local.azs
  node_ips               = var.region.cockroach_ips
  join                   = var.deployment.cockroach_join
  client_security_group  = aws_security_group.nodes.id
  remote_cockroach_cidrs = var.region.remote_data_cidrs
  ami_id                 = nonsensitive(data.aws_ssm_parameter.al2023.value)
  instance_type          = var.deployment.cockroach_instance_type
  volume_size_gb         = var.deployment.cockroach_volume_size_gb
  cockroach_version      = var.deployment.cockroach_version
  accept_sql_without_tls = var.deployment.cockroach_accept_sql_without_tls
  secret_prefix          = var.deployment.name
  termination_protection = var.deployment.deletion_protection
}
