# VPC over var.region's availability zones: public subnets (load balancers, NAT),
# private subnets (API nodes, internal load balancer), data subnets (CockroachDB).

data "aws_region" "current" {}

data "aws_availability_zones" "available" {
  state = "available"
  filter {
    name   = "opt-in-status"
    values = ["opt-in-not-required"]
  }
}

locals {
  prefix    = "${var.deployment.name}-${var.region.id}"
  az_count  = length(var.region.public_subnet_cidrs)
  azs       = slice(data.aws_availability_zones.available.names, 0, local.az_count)
  nat_count = var.deployment.nat_gateway_per_az ? local.az_count : 1
  use_tgw   = var.deployment.cross_region_network == "transit_gateway"
}

resource "aws_vpc" "this" {
  cidr_block           = var.region.vpc_cidr
  enable_dns_support   = true
  enable_dns_hostnames = true
  tags                 = { Name = local.prefix }

  lifecycle {
    precondition {
      condition     = data.aws_region.current.name == var.region.aws_region
      error_message = "Meridian region ${var.region.id} expects AWS region ${var.region.aws_region}, but the module got a provider for ${data.aws_region.current.name}."
    }
  }
}

resource "aws_internet_gateway" "this" {
  vpc_id = aws_vpc.this.id
  tags   = { Name = local.prefix }
}

resource "aws_subnet" "public" {
  count                   = local.az_count
  vpc_id                  = aws_vpc.this.id
  cidr_block              = var.region.public_subnet_cidrs[count.index]
  availability_zone       = local.azs[count.index]
  map_public_ip_on_launch = false
  tags                    = { Name = "${local.prefix}-public-${local.azs[count.index]}", Tier = "public" }
}

resource "aws_subnet" "private" {
  count             = local.az_count
  vpc_id            = aws_vpc.this.id
  cidr_block        = var.region.private_subnet_cidrs[count.index]
  availability_zone = local.azs[count.index]
  tags              = { Name = "${local.prefix}-private-${local.azs[count.index]}", Tier = "private" }
}

resource "aws_subnet" "data" {
  count             = local.az_count
  vpc_id            = aws_vpc.this.id
  cidr_block        = var.region.data_subnet_cidrs[count.index]
  availability_zone = local.azs[count.index]
  tags              = { Name = "${local.prefix}-data-${local.azs[count.index]}", Tier = "data" }
}

resource "aws_route_table" "public" {
  vpc_id = aws_vpc.this.id
  tags   = { Name = "${local.prefix}-public" }
}

resource "aws_route" "public_internet" {
  route_table_id         = aws_route_table.public.id
  destination_cidr_block = "0.0.0.0/0"
  gateway_id             = aws_internet_gateway.this.id
}

resource "aws_route_table_association" "public" {
  count          = local.az_count
  subnet_id      = aws_subnet.public[count.index].id
  route_table_id = aws_route_table.public.id
}

resource "aws_eip" "nat" {
  count      = local.nat_count
  domain     = "vpc"
  tags       = { Name = "${local.prefix}-nat-${local.azs[count.index]}" }
  depends_on = [aws_internet_gateway.this]
}

resource "aws_nat_gateway" "this" {
  count         = local.nat_count
  allocation_id = aws_eip.nat[count.index].id
  subnet_id     = aws_subnet.public[count.index].id
  tags          = { Name = "${local.prefix}-${local.azs[count.index]}" }
}

# One private route table per AZ (its NAT gateway, or the single one); the
# private and data subnets of that AZ share it. Cross-region routes are added
# to these tables (here for transit_gateway, in modules/interconnect for
# vpc_peering).
resource "aws_route_table" "private" {
  count  = local.az_count
  vpc_id = aws_vpc.this.id
  tags   = { Name = "${local.prefix}-private-${local.azs[count.index]}" }
}

resource "aws_route" "private_egress" {
  count                  = local.az_count
  route_table_id         = aws_route_table.private[count.index].id
  destination_cidr_block = "0.0.0.0/0"
  nat_gateway_id         = aws_nat_gateway.this[min(count.index, local.nat_count - 1)].id
}

resource "aws_route_table_association" "private" {
  count          = local.az_count
  subnet_id      = aws_subnet.private[count.index].id
  route_table_id = aws_route_table.private[count.index].id
}

resource "aws_route_table_association" "data" {
  count          = local.az_count
  subnet_id      = aws_subnet.data[count.index].id
  route_table_id = aws_route_table.private[count.index].id
}

# --- cross_region_network = "transit_gateway": this region's hub -------------

resource "aws_ec2_transit_gateway" "this" {
  count                           = local.use_tgw ? 1 : 0
  description                     = "${local.prefix}: cross-region links of Meridian"
  default_route_table_association = "enable"
  default_route_table_propagation = "enable"
  dns_support                     = "enable"
  tags                            = { Name = local.prefix }
}

resource "aws_ec2_transit_gateway_vpc_attachment" "this" {
  count              = local.use_tgw ? 1 : 0
  transit_gateway_id = aws_ec2_transit_gateway.this[0].id
  vpc_id             = aws_vpc.this.id
  subnet_ids         = aws_subnet.private[*].id
  tags               = { Name = local.prefix }
}

locals {
  tgw_routes = {
    for pair in setproduct(range(local.az_count), var.region.remote_vpc_cidrs) : "${pair[0]}|${pair[1]}" => {
      table = pair[0]
      cidr  = pair[1]
    } if local.use_tgw
  }
}

resource "aws_route" "to_remote_via_tgw" {
  for_each               = local.tgw_routes
  route_table_id         = aws_route_table.private[each.value.table].id
  destination_cidr_block = each.value.cidr
  transit_gateway_id     = aws_ec2_transit_gateway.this[0].id
  depends_on             = [aws_ec2_transit_gateway_vpc_attachment.this]
}
