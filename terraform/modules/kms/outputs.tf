output "primary_arns" {
  description = "Jurisdiction => ARN of the primary key created here."
  value       = { for j, k in aws_kms_key.primary : j => k.arn }
}

output "key_arns" {
  description = "Jurisdiction => ARN of its key (primary or replica) in this AWS region."
  value       = merge({ for j, k in aws_kms_key.primary : j => k.arn }, { for j, k in aws_kms_replica_key.replica : j => k.arn })
}

output "policies" {
  description = "Jurisdiction => the key policy of its key in this AWS region."
  value       = merge({ for j, k in aws_kms_key.primary : j => k.policy }, { for j, k in aws_kms_replica_key.replica : j => k.policy })
}
