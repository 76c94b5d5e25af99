output "node_ips" {
  value = var.node_ips
}

output "security_group_id" {
  value = aws_security_group.cockroach.id
}

output "instance_ids" {
  value = aws_instance.node[*].id
}

output "secrets" {
  description = "Secret name => what goes in it."
  value       = { for k, s in aws_secretsmanager_secret.certs : s.name => s.description }
}
