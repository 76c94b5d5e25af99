# One private link between two Meridian regions in different AWS regions.
#   vpc_peering    : an inter-region VPC peering connection, accepted on side b,
#                    and routes to the other VPC in both sides' private tables.
#   transit_gateway: a TGW peering attachment between the two regions' transit
#                    gateways (modules/region makes them and routes the VPC to
#                    its TGW), accepted on side b, and static TGW routes.
# Carries CockroachDB inter-node traffic (26257) and node-to-node forwarding.

locals {
  peering = var.mode == "vpc_peering"
  tgw     = var.mode == "transit_gateway"
  label   = "${var.name}-${var.a.id}-${var.b.id}"
}

# --- vpc_peering -------------------------------------------------------------

resource "aws_vpc_peering_connection" "this" {
  count       = local.peering ? 1 : 0
  provider    = aws.a
  vpc_id      = var.a.vpc_id
  peer_vpc_id = var.b.vpc_id
  peer_region = var.b.aws_region
  auto_accept = false
  tags        = { Name = local.label }
}

resource "aws_vpc_peering_connection_accepter" "this" {
  count                     = local.peering ? 1 : 0
  provider                  = aws.b
  vpc_peering_connection_id = aws_vpc_peering_connection.this[0].id
  auto_accept               = true
  tags                      = { Name = local.label }
}

resource "aws_route" "a_to_b_peering" {
  count                     = local.peering ? length(var.a.route_table_ids) : 0
  provider                  = aws.a
  route_table_id            = var.a.route_table_ids[count.index]
  destination_cidr_block    = var.b.vpc_cidr
  vpc_peering_connection_id = aws_vpc_peering_connection.this[0].id
  depends_on                = [aws_vpc_peering_connection_accepter.this]
}

resource "aws_route" "b_to_a_peering" {
  count                     = local.peering ? length(var.b.route_table_ids) : 0
  provider                  = aws.b
  route_table_id            = var.b.route_table_ids[count.index]
  destination_cidr_block    = var.a.vpc_cidr
  vpc_peering_connection_id = aws_vpc_peering_connection.this[0].id
  depends_on                = [aws_vpc_peering_connection_accepter.this]
}

# --- transit_gateway ---------------------------------------------------------

resource "aws_ec2_transit_gateway_peering_attachment" "this" {
  count                   = local.tgw ? 1 : 0
  provider                = aws.a
  transit_gateway_id      = var.a.transit_gateway_id
  peer_transit_gateway_id = var.b.transit_gateway_id
  peer_region             = var.b.aws_region
  tags                    = { Name = local.label }
}

resource "aws_ec2_transit_gateway_peering_attachment_accepter" "this" {
  count                         = local.tgw ? 1 : 0
  provider                      = aws.b
  transit_gateway_attachment_id = aws_ec2_transit_gateway_peering_attachment.this[0].id
  tags                          = { Name = local.label }
}

# Peering attachments do not propagate routes: add them statically.
resource "aws_ec2_transit_gateway_route" "a_to_b" {
  count                          = local.tgw ? 1 : 0
  provider                       = aws.a
  transit_gateway_route_table_id = var.a.transit_gateway_route_table_id
  destination_cidr_block         = var.b.vpc_cidr
  transit_gateway_attachment_id  = aws_ec2_transit_gateway_peering_attachment.this[0].id
  depends_on                     = [aws_ec2_transit_gateway_peering_attachment_accepter.this]
}

resource "aws_ec2_transit_gateway_route" "b_to_a" {
  count                          = local.tgw ? 1 : 0
  provider                       = aws.b
  transit_gateway_route_table_id = var.b.transit_gateway_route_table_id
  destination_cidr_block         = var.a.vpc_cidr
  transit_gateway_attachment_id  = aws_ec2_transit_gateway_peering_attachment_accepter.this[0].transit_gateway_attachment_id
}
