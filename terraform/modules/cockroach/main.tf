# Self-hosted CockroachDB nodes of one region, part of ONE multi-region cluster:
# each node starts with --locality=region=<region_id>,zone=<AZ> and joins the
# nodes of every region (fixed private IPs, reachable over the cross-region
# network). Secure mode: the CA and node certificate come from Secrets Manager
# (created empty here; see terraform/README.md for how to make and put them).
# `cockroach init` and the schema are one-time manual steps (README).

locals {
  node_count = length(var.node_ips)
  az_count   = length(var.subnet_ids)
}

resource "aws_security_group" "cockroach" {
  name        = "${var.name}-cockroach"
  description = "CockroachDB ${var.region_id}: SQL from Meridian nodes, RPC between CockroachDB nodes"
  vpc_id      = var.vpc_id
  tags        = { Name = "${var.name}-cockroach" }
}

resource "aws_vpc_security_group_ingress_rule" "sql_from_nodes" {
  security_group_id            = aws_security_group.cockroach.id
  description                  = "SQL from the Meridian API nodes"
  ip_protocol                  = "tcp"
  from_port                    = 26257
  to_port                      = 26257
  referenced_security_group_id = var.client_security_group
}

resource "aws_vpc_security_group_ingress_rule" "rpc_same_region" {
  security_group_id            = aws_security_group.cockroach.id
  description                  = "RPC and SQL between CockroachDB nodes of this region"
  ip_protocol                  = "tcp"
  from_port                    = 26257
  to_port                      = 26257
  referenced_security_group_id = aws_security_group.cockroach.id
}

# Security groups cannot be referenced across regions: the other regions'
# CockroachDB nodes are admitted by their (dedicated) data subnets.
resource "aws_vpc_security_group_ingress_rule" "rpc_other_regions" {
  for_each          = toset(var.remote_cockroach_cidrs)
  security_group_id = aws_security_group.cockroach.id
  description       = "RPC between CockroachDB nodes of other regions"
  ip_protocol       = "tcp"
  from_port         = 26257
  to_port           = 26257
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_egress_rule" "all" {
  security_group_id = aws_security_group.cockroach.id
  description       = "Outbound: other CockroachDB nodes, AWS APIs, the release download"
  ip_protocol       = "-1"
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_secretsmanager_secret" "certs" {
  for_each = {
    ca-crt   = "CockroachDB CA certificate (ca.crt), the same in every region"
    node-crt = "CockroachDB node certificate (node.crt) covering every node IP of the cluster"
    node-key = "CockroachDB node key (node.key)"
  }
  name                    = "${var.secret_prefix}/cockroach/${each.key}"
  description             = "${var.region_id}: ${each.value}"
  recovery_window_in_days = 7
}

resource "aws_iam_role" "cockroach" {
  name = "${var.name}-cockroach"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "ec2.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })
}

resource "aws_iam_role_policy" "cockroach" {
  name = "cockroach-certs"
  role = aws_iam_role.cockroach.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect   = "Allow"
      Action   = ["secretsmanager:GetSecretValue"]
      Resource = [for s in aws_secretsmanager_secret.certs : s.arn]
    }]
  })
}

resource "aws_iam_role_policy_attachment" "ssm" {
  role       = aws_iam_role.cockroach.name
  policy_arn = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

resource "aws_iam_instance_profile" "cockroach" {
  name = "${var.name}-cockroach"
  role = aws_iam_role.cockroach.name
}

# Data lives on its own volume, so replacing an instance (new AMI, new user
# data) keeps the store; the instance gets the same fixed IP back.
resource "aws_ebs_volume" "data" {
  count             = local.node_count
  availability_zone = var.availability_zones[count.index % local.az_count]
  size              = var.volume_size_gb
  type              = "gp3"
  iops              = 3000
  throughput        = 125
  encrypted         = true
  tags              = { Name = "${var.name}-cockroach-${count.index}" }
}

resource "aws_instance" "node" {
  count                   = local.node_count
  ami                     = var.ami_id
  instance_type           = var.instance_type
  subnet_id               = var.subnet_ids[count.index % local.az_count]
  private_ip              = var.node_ips[count.index]
  vpc_security_group_ids  = [aws_security_group.cockroach.id]
  iam_instance_profile    = aws_iam_instance_profile.cockroach.name
  disable_api_termination = var.termination_protection
  monitoring              = true

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  root_block_device {
    volume_size = 20
    volume_type = "gp3"
    encrypted   = true
  }

  user_data = templatefile("${path.module}/templates/cockroach-user-data.sh.tftpl", {
    node_ip                = var.node_ips[count.index]
    region_id              = var.region_id
    zone                   = var.availability_zones[count.index % local.az_count]
    aws_region             = var.aws_region
    join                   = join(",", var.join)
    cockroach_version      = var.cockroach_version
    volume_serial          = replace(aws_ebs_volume.data[count.index].id, "-", "")
    accept_sql_without_tls = var.accept_sql_without_tls
    ca_crt_secret          = aws_secretsmanager_secret.certs["ca-crt"].arn
    node_crt_secret        = aws_secretsmanager_secret.certs["node-crt"].arn
    node_key_secret        = aws_secretsmanager_secret.certs["node-key"].arn
  })

  tags = { Name = "${var.name}-cockroach-${count.index}", MeridianRegion = var.region_id }

  lifecycle {
    # Neither a newer AMI (SSM parameter) nor new user data (e.g. a longer
    # --join list after adding nodes) may touch running database nodes: the
    # AWS provider applies a user_data change by stopping and starting the
    # instance, which would restart EVERY node at once. --join only matters at
    # a node's first start. Roll nodes deliberately, one at a time:
    #   terraform apply -replace='module.region_<aws>["<id>"].module.cockroach.aws_instance.node[N]'
    ignore_changes = [ami, user_data]
  }
}

resource "aws_volume_attachment" "data" {
  count       = local.node_count
  device_name = "/dev/sdf"
  volume_id   = aws_ebs_volume.data[count.index].id
  instance_id = aws_instance.node[count.index].id
}
