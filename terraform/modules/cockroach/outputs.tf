output "node_ips" {
  value = var.node_ips
}

output "security_group_id" {
  value = aws_security_group.cockroach.id
}

output "instance_ids" {
  value = aws_instance.node[*].id
}

output "ca_crt_secret_arn" {
  description = "The cluster CA certificate's secret: API nodes verify the cluster with it (database.tls.ca_file)."
  value       = aws_secretsmanager_secret.certs["ca-crt"].arn
}

output "secrets" {
  description = "Secret name => what goes in it."
  value       = { for k, s in aws_secretsmanager_secret.certs : s.name => s.description }
}
