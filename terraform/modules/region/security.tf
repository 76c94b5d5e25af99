# Security groups:
#   public LB  : 443 from var.deployment.alb_ingress_cidrs
#   internal LB: 80 from the API node subnets of every region (node-to-node forwarding, peer /readyz probes)
#   API nodes  : node_port from the two load balancers only; the admin port
#                (/metrics) from this region's private subnets (Prometheus), never a LB
#   CockroachDB: 26257 from the API nodes, from each other (modules/cockroach)

resource "aws_security_group" "public_lb" {
  name        = "${local.prefix}-public-lb"
  description = "Meridian ${var.region.id}: public HTTPS load balancer"
  vpc_id      = aws_vpc.this.id
  tags        = { Name = "${local.prefix}-public-lb" }
}

resource "aws_vpc_security_group_ingress_rule" "public_lb_https" {
  for_each          = toset(var.deployment.alb_ingress_cidrs)
  security_group_id = aws_security_group.public_lb.id
  description       = "HTTPS from clients"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_egress_rule" "public_lb_to_nodes" {
  security_group_id            = aws_security_group.public_lb.id
  description                  = "To the API nodes"
  ip_protocol                  = "tcp"
  from_port                    = var.deployment.node_port
  to_port                      = var.deployment.node_port
  referenced_security_group_id = aws_security_group.nodes.id
}

resource "aws_security_group" "internal_lb" {
  name        = "${local.prefix}-internal-lb"
  description = "Meridian ${var.region.id}: internal load balancer for node-to-node forwarding"
  vpc_id      = aws_vpc.this.id
  tags        = { Name = "${local.prefix}-internal-lb" }
}

resource "aws_vpc_security_group_ingress_rule" "internal_lb_http" {
  for_each          = toset(concat(var.region.private_subnet_cidrs, var.region.remote_private_cidrs))
  security_group_id = aws_security_group.internal_lb.id
  description       = "HTTP from Meridian nodes (this and other regions)"
  ip_protocol       = "tcp"
  from_port         = 80
  to_port           = 80
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_egress_rule" "internal_lb_to_nodes" {
  security_group_id            = aws_security_group.internal_lb.id
  description                  = "To the API nodes"
  ip_protocol                  = "tcp"
  from_port                    = var.deployment.node_port
  to_port                      = var.deployment.node_port
  referenced_security_group_id = aws_security_group.nodes.id
}

resource "aws_security_group" "nodes" {
  name        = "${local.prefix}-nodes"
  description = "Meridian ${var.region.id}: API nodes, reachable only from the load balancers"
  vpc_id      = aws_vpc.this.id
  tags        = { Name = "${local.prefix}-nodes" }
}

resource "aws_vpc_security_group_ingress_rule" "nodes_from_public_lb" {
  security_group_id            = aws_security_group.nodes.id
  description                  = "From the public load balancer"
  ip_protocol                  = "tcp"
  from_port                    = var.deployment.node_port
  to_port                      = var.deployment.node_port
  referenced_security_group_id = aws_security_group.public_lb.id
}

resource "aws_vpc_security_group_ingress_rule" "nodes_from_internal_lb" {
  security_group_id            = aws_security_group.nodes.id
  description                  = "From the internal load balancer"
  ip_protocol                  = "tcp"
  from_port                    = var.deployment.node_port
  to_port                      = var.deployment.node_port
  referenced_security_group_id = aws_security_group.internal_lb.id
}

# Nodes call AWS APIs (Secrets Manager, S3, SSM) through NAT, CockroachDB, and
# peer regions' internal load balancers: egress stays open.
resource "aws_vpc_security_group_egress_rule" "nodes_all" {
  security_group_id = aws_security_group.nodes.id
  description       = "Outbound: AWS APIs, CockroachDB, peer regions"
  ip_protocol       = "-1"
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_vpc_security_group_ingress_rule" "nodes_metrics" {
  for_each          = toset(var.region.private_subnet_cidrs)
  security_group_id = aws_security_group.nodes.id
  description       = "Prometheus scrapes /metrics on the admin listener"
  ip_protocol       = "tcp"
  from_port         = local.admin_port
  to_port           = local.admin_port
  cidr_ipv4         = each.value
}
