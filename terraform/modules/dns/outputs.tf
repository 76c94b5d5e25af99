output "health_check_ids" {
  value = { for id, hc in aws_route53_health_check.region : id => hc.id }
}

output "internal_zone_id" {
  value = aws_route53_zone.internal.zone_id
}
