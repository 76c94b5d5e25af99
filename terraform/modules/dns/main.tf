# Production GeoDNS:
#   <api_domain>    A  latency-based alias, one record per region (set_identifier =
#                      region id, latency region = its AWS region), each tied to
#                      that region's health check: a drained or broken region
#                      (its /readyz answers 503) leaves the answer set.
#   *.<api_domain>  A  the same, for tenant subdomains ({slug}.<api_domain>);
#                      the regions' public hosts, when under api_domain, are
#                      more specific and win.
#   <public host>   A  alias to that region's load balancer: the public_endpoint
#                      of regions/<id>.toml, where nodes send residency redirects
#                      (307) and where the health check probes.
#   *.<region id>.<api_domain>  A  the same alias: a tenant's host at that
#                      region ({slug}.{region}.<api_domain>), where a residency
#                      redirect sends a request that came in on a tenant host.
# Latency routing knows nothing about residency: the nodes still decide, and
# redirect a tenant's request to a region its residency allows.

resource "aws_route53_health_check" "region" {
  for_each          = var.regions
  type              = "HTTPS"
  fqdn              = each.value.public_host
  port              = 443
  resource_path     = "/readyz"
  enable_sni        = true
  request_interval  = 10
  failure_threshold = 3
  measure_latency   = false
  tags              = { Name = "${var.name}-${each.key}-readyz" }
}

resource "aws_route53_record" "api_latency" {
  for_each        = var.regions
  zone_id         = var.route53_zone_id
  name            = var.api_domain
  type            = "A"
  set_identifier  = each.key
  health_check_id = aws_route53_health_check.region[each.key].id

  latency_routing_policy {
    region = each.value.aws_region
  }

  alias {
    name                   = each.value.alb_dns_name
    zone_id                = each.value.alb_zone_id
    evaluate_target_health = true
  }
}

resource "aws_route53_record" "api_latency_wildcard" {
  for_each        = var.regions
  zone_id         = var.route53_zone_id
  name            = "*.${var.api_domain}"
  type            = "A"
  set_identifier  = each.key
  health_check_id = aws_route53_health_check.region[each.key].id

  latency_routing_policy {
    region = each.value.aws_region
  }

  alias {
    name                   = each.value.alb_dns_name
    zone_id                = each.value.alb_zone_id
    evaluate_target_health = true
  }
}

resource "aws_route53_record" "region_tenant_hosts" {
  for_each = var.regions
  zone_id  = var.route53_zone_id
  name     = "*.${each.key}.${var.api_domain}"
  type     = "A"

  alias {
    name                   = each.value.alb_dns_name
    zone_id                = each.value.alb_zone_id
    evaluate_target_health = false
  }
}

resource "aws_route53_record" "region_host" {
  for_each = var.regions
  zone_id  = var.route53_zone_id
  name     = each.value.public_host
  type     = "A"

  alias {
    name                   = each.value.alb_dns_name
    zone_id                = each.value.alb_zone_id
    evaluate_target_health = false
  }
}

# Private zone shared by every region's VPC (cross-region association):
# http://<region id>.<internal_domain> reaches that region's internal load
# balancer over the cross-region network. These are the nodes' routing.peers.
resource "aws_route53_zone" "internal" {
  name    = var.internal_domain
  comment = "Meridian node-to-node forwarding"

  dynamic "vpc" {
    for_each = var.regions
    content {
      vpc_id     = vpc.value.vpc_id
      vpc_region = vpc.value.aws_region
    }
  }
}

resource "aws_route53_record" "internal" {
  for_each = var.regions
  zone_id  = aws_route53_zone.internal.zone_id
  name     = "${each.key}.${var.internal_domain}"
  type     = "A"

  alias {
    name                   = each.value.internal_lb_dns_name
    zone_id                = each.value.internal_lb_zone_id
    evaluate_target_health = false
  }
}
