output "health_check_ids" {
  value = { for id, hc in aws_route53_health_check.region : id => hc.id }
}

output "internal_zone_id" {
  value = aws_route53_zone.internal.zone_id
}

output "tenant_host_records" {
  description = "The wildcard record per region: tenant subdomains ({slug}.<api_domain>)."
  value       = { for id, r in aws_route53_record.api_latency_wildcard : id => r.name }
}
