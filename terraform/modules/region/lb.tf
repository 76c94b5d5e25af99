# Public ALB (HTTPS 443, ACM certificate for api_domain, its wildcard (tenant
# subdomains, `{slug}.<api_domain>`), this region's public host and its
# tenant hosts (`{slug}.{region}.<api_domain>`),
# DNS-validated in the Route 53 zone) and an internal ALB (HTTP 80) for
# node-to-node forwarding from other regions. Both forward to the API nodes;
# their target groups probe /readyz (503 while the region is drained or its
# database is unreachable).

locals {
  cert_domains = distinct([
    var.deployment.api_domain,
    "*.${var.deployment.api_domain}",
    var.region.public_host,
    # Tenant hosts at this region (residency redirects from a tenant host).
    "*.${var.region.id}.${var.deployment.api_domain}",
  ])
}

resource "aws_acm_certificate" "api" {
  domain_name               = var.deployment.api_domain
  subject_alternative_names = [for h in local.cert_domains : h if h != var.deployment.api_domain]
  validation_method         = "DNS"
  tags                      = { Name = local.prefix }

  lifecycle {
    create_before_destroy = true
  }
}

# Every region's certificate covers api_domain, and ACM gives the same
# validation record for the same name in one account: allow_overwrite lets
# four regions write the same record without conflict. Keyed by the domain
# names (known before apply), not by the certificate's computed options.
resource "aws_route53_record" "cert_validation" {
  for_each        = toset(local.cert_domains)
  zone_id         = var.deployment.route53_zone_id
  name            = one([for o in aws_acm_certificate.api.domain_validation_options : o.resource_record_name if o.domain_name == each.key])
  type            = one([for o in aws_acm_certificate.api.domain_validation_options : o.resource_record_type if o.domain_name == each.key])
  records         = [one([for o in aws_acm_certificate.api.domain_validation_options : o.resource_record_value if o.domain_name == each.key])]
  ttl             = 300
  allow_overwrite = true
}

resource "aws_acm_certificate_validation" "api" {
  certificate_arn         = aws_acm_certificate.api.arn
  validation_record_fqdns = [for r in aws_route53_record.cert_validation : r.fqdn]
}

resource "aws_lb" "public" {
  name                       = local.prefix
  load_balancer_type         = "application"
  internal                   = false
  security_groups            = [aws_security_group.public_lb.id]
  subnets                    = aws_subnet.public[*].id
  drop_invalid_header_fields = true
  enable_deletion_protection = var.deployment.deletion_protection
  tags                       = { Name = local.prefix }
}

resource "aws_lb_target_group" "public" {
  name                 = local.prefix
  port                 = var.deployment.node_port
  protocol             = "HTTP"
  target_type          = "instance"
  vpc_id               = aws_vpc.this.id
  deregistration_delay = 30

  health_check {
    path                = "/readyz"
    protocol            = "HTTP"
    port                = "traffic-port"
    matcher             = "200"
    interval            = 10
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }
}

resource "aws_lb_listener" "https" {
  load_balancer_arn = aws_lb.public.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = var.deployment.alb_ssl_policy
  certificate_arn   = aws_acm_certificate_validation.api.certificate_arn

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.public.arn
  }
}

resource "aws_lb" "internal" {
  name                       = "${local.prefix}-int"
  load_balancer_type         = "application"
  internal                   = true
  security_groups            = [aws_security_group.internal_lb.id]
  subnets                    = aws_subnet.private[*].id
  drop_invalid_header_fields = true
  enable_deletion_protection = var.deployment.deletion_protection
  tags                       = { Name = "${local.prefix}-int" }
}

resource "aws_lb_target_group" "internal" {
  name                 = "${local.prefix}-int"
  port                 = var.deployment.node_port
  protocol             = "HTTP"
  target_type          = "instance"
  vpc_id               = aws_vpc.this.id
  deregistration_delay = 30

  health_check {
    path                = "/readyz"
    protocol            = "HTTP"
    port                = "traffic-port"
    matcher             = "200"
    interval            = 10
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }
}

resource "aws_lb_listener" "internal_http" {
  load_balancer_arn = aws_lb.internal.arn
  port              = 80
  protocol          = "HTTP"

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.internal.arn
  }
}
