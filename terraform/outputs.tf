output "api_url" {
  description = "The global API URL (latency-routed)."
  value       = "https://${var.api_domain}"
}

output "regions" {
  description = "Per Meridian region: AWS region, public endpoint, load balancers, CockroachDB node IPs."
  value = {
    for id, m in local.region_out : id => {
      aws_region          = m.aws_region
      public_endpoint     = "https://${m.public_host}"
      alb_dns_name        = m.alb_dns_name
      internal_url        = local.peer_urls[id]
      cockroach_node_ips  = m.cockroach_node_ips
      node_asg_name       = m.node_asg_name
      database_url_format = m.database_url_format
      node_env            = m.node_env
      export_bucket       = m.export_bucket
    }
  }
}

output "secrets_to_fill" {
  description = "Secrets Manager secrets created empty in each region; put their values before the nodes can start (see README)."
  value       = { for id, m in local.region_out : id => m.secrets }
}

output "cockroach_join" {
  description = "The --join list of every CockroachDB node (all regions)."
  value       = local.cockroach_join
}

output "cockroach_node_cert_hosts" {
  description = "Hosts to put in the shared CockroachDB node certificate: cockroach cert create-node <these> localhost 127.0.0.1"
  value       = [for hp in local.cockroach_join : trimsuffix(hp, ":26257")]
}

output "health_check_ids" {
  description = "Route 53 health check per region (HTTPS /readyz on the region's public host)."
  value       = module.dns.health_check_ids
}

output "tenant_host_records" {
  description = "Route 53 wildcard record per region for tenant subdomains ({slug}.<api_domain>)."
  value       = module.dns.tenant_host_records
}
