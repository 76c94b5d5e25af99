output "aws_region" {
  value = var.region.aws_region
}

output "public_host" {
  value = var.region.public_host
}

output "vpc_id" {
  value = aws_vpc.this.id
}

output "vpc_cidr" {
  value = aws_vpc.this.cidr_block
}

output "private_route_table_ids" {
  description = "Route tables of the private and data subnets (cross-region routes go here)."
  value       = aws_route_table.private[*].id
}

output "transit_gateway_id" {
  value = local.use_tgw ? aws_ec2_transit_gateway.this[0].id : null
}

output "transit_gateway_route_table_id" {
  value = local.use_tgw ? aws_ec2_transit_gateway.this[0].association_default_route_table_id : null
}

output "alb_dns_name" {
  value = aws_lb.public.dns_name
}

output "alb_zone_id" {
  value = aws_lb.public.zone_id
}

output "internal_lb_dns_name" {
  value = aws_lb.internal.dns_name
}

output "internal_lb_zone_id" {
  value = aws_lb.internal.zone_id
}

output "node_asg_name" {
  value = aws_autoscaling_group.nodes.name
}

output "cockroach_node_ips" {
  value = module.cockroach.node_ips
}

output "database_url_format" {
  description = "What to put in the database-url secret (password URL-encoded). No sslmode: the nodes' database.tls settings (verify-full) decide."
  value       = "postgresql://meridian_app:<password>@${join(",", [for ip in module.cockroach.node_ips : "${ip}:26257"])}/meridian"
}

output "node_env" {
  description = "The non-secret MERIDIAN_* settings of this region's nodes (user data)."
  value       = local.node_env
}

output "secrets" {
  description = "Secrets to fill in this region: name => what goes in it."
  value = merge(
    { for k, s in aws_secretsmanager_secret.node : s.name => local.node_secrets[k] },
    module.cockroach.secrets,
  )
}

output "export_bucket" {
  description = "This region's export store (GDPR exports)."
  value       = aws_s3_bucket.exports.bucket
}

output "node_policy" {
  description = "The node role's inline policy (JSON), for the plan tests."
  value       = aws_iam_role_policy.node.policy
}

output "export_lifecycle_days" {
  value = one(aws_s3_bucket_lifecycle_configuration.exports.rule[*].expiration[0].days)
}
