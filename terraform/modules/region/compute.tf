# The stateless API nodes: a launch template (Amazon Linux 2023, user data that
# installs the release artifact and a systemd unit running
# `meridian serve --region <id>`) and an autoscaling group over the private
# subnets, registered with both load balancers.

data "aws_ssm_parameter" "al2023" {
  name = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
}

locals {
  # `/metrics` listens here, never behind a load balancer (metrics name tenants).
  admin_port = 9090
  node_env = merge(
    {
      MERIDIAN_REGION      = var.region.id
      MERIDIAN_REGIONS_DIR = "/opt/meridian/regions"
      MERIDIAN_STATE_DIR   = "/var/lib/meridian"
      # The region files' local.address is a loopback address for `meridian dev`;
      # on AWS the node listens on every interface, behind the load balancers.
      MERIDIAN_HTTP__BIND      = "0.0.0.0:${var.deployment.node_port}"
      MERIDIAN_ADMIN__BIND     = "0.0.0.0:${local.admin_port}"
      MERIDIAN_AUTH__KEYS_FILE = "/run/meridian/keys.json"
      MERIDIAN_LOG__FORMAT     = "json"
      # TLS to CockroachDB: the certificate must chain to the cluster CA (written
      # from Secrets Manager before every start) and carry the node's IP.
      MERIDIAN_DATABASE__TLS__MODE    = "verify-full"
      MERIDIAN_DATABASE__TLS__CA_FILE = "/run/meridian/db-ca.crt"
      # `{slug}.<api_domain>` is a tenant's host, served only for its tokens.
      MERIDIAN_API_DOMAIN = var.deployment.api_domain
      # Figment parses a {key="value",…} dict from one variable.
      MERIDIAN_ROUTING__PEERS = "{${join(",", [for id, url in var.deployment.peer_urls : "${id}=\"${url}\""])}}"
      # Envelope encryption: DEKs wrapped by the jurisdiction's KMS key, called
      # in this region (credentials: the instance role through IMDSv2).
      MERIDIAN_ENCRYPTION__PROVIDER                                        = "aws-kms"
      MERIDIAN_ENCRYPTION__KMS__REGION                                     = var.region.aws_region
      "MERIDIAN_ENCRYPTION__KMS__KEYS__${upper(var.kms_key.jurisdiction)}" = var.kms_key.arn
      # GDPR exports: this region's bucket (exports.tf); uploads are spooled
      # under the state directory first.
      MERIDIAN_EXPORTS__STORE      = "s3"
      MERIDIAN_EXPORTS__DIR        = "/var/lib/meridian/exports"
      MERIDIAN_EXPORTS__S3__BUCKET = aws_s3_bucket.exports.bucket
      MERIDIAN_EXPORTS__S3__REGION = var.region.aws_region
    },
    var.deployment.node_extra_env,
  )
}

resource "aws_launch_template" "node" {
  name_prefix            = "${local.prefix}-node-"
  description            = "Meridian API node, region ${var.region.id}"
  image_id               = nonsensitive(data.aws_ssm_parameter.al2023.value)
  instance_type          = var.deployment.node_instance_type
  vpc_security_group_ids = [aws_security_group.nodes.id]
  update_default_version = true

  iam_instance_profile {
    arn = aws_iam_instance_profile.node.arn
  }

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  monitoring {
    enabled = true
  }

  block_device_mappings {
    device_name = "/dev/xvda"
    ebs {
      volume_size           = 20
      volume_type           = "gp3"
      encrypted             = true
      delete_on_termination = true
    }
  }

  user_data = base64encode(templatefile("${path.module}/templates/node-user-data.sh.tftpl", {
    region_id              = var.region.id
    aws_region             = var.region.aws_region
    artifact_s3_uri        = var.deployment.artifact_s3_uri
    artifact_bucket_region = var.deployment.artifact_bucket_region
    env                    = local.node_env
    database_url_secret    = aws_secretsmanager_secret.node["database-url"].arn
    hop_secret_secret      = aws_secretsmanager_secret.node["hop-secret"].arn
    auth_keys_secret       = aws_secretsmanager_secret.node["auth-keys"].arn
    db_ca_secret           = module.cockroach.ca_crt_secret_arn
    db_client_crt_secret   = aws_secretsmanager_secret.node["database-client-crt"].arn
    db_client_key_secret   = aws_secretsmanager_secret.node["database-client-key"].arn
  }))

  tag_specifications {
    resource_type = "instance"
    tags          = { Name = "${local.prefix}-node", MeridianRegion = var.region.id }
  }

  tag_specifications {
    resource_type = "volume"
    tags          = { Name = "${local.prefix}-node", MeridianRegion = var.region.id }
  }
}

resource "aws_autoscaling_group" "nodes" {
  name                      = "${local.prefix}-nodes"
  vpc_zone_identifier       = aws_subnet.private[*].id
  min_size                  = var.deployment.node_min_size
  max_size                  = var.deployment.node_max_size
  desired_capacity          = var.deployment.node_desired_capacity
  target_group_arns         = [aws_lb_target_group.public.arn, aws_lb_target_group.internal.arn]
  default_instance_warmup   = 120
  health_check_grace_period = 180
  # EC2, not ELB: /readyz is 503 on EVERY node of a drained region or while the
  # database is unreachable. With ELB health checks the group would replace
  # healthy nodes in a loop exactly when the region is drained on purpose.
  health_check_type = "EC2"

  launch_template {
    id      = aws_launch_template.node.id
    version = aws_launch_template.node.latest_version
  }

  # A new launch template version (new artifact, settings, AMI) rolls the nodes.
  instance_refresh {
    strategy = "Rolling"
    preferences {
      min_healthy_percentage = 50
      instance_warmup        = 120
    }
  }

  tag {
    key                 = "Name"
    value               = "${local.prefix}-node"
    propagate_at_launch = true
  }

  lifecycle {
    # The target-tracking policy owns the capacity after creation.
    ignore_changes = [desired_capacity]
  }
}

resource "aws_autoscaling_policy" "cpu" {
  name                   = "${local.prefix}-cpu"
  autoscaling_group_name = aws_autoscaling_group.nodes.name
  policy_type            = "TargetTrackingScaling"

  target_tracking_configuration {
    predefined_metric_specification {
      predefined_metric_type = "ASGAverageCPUUtilization"
    }
    target_value = var.deployment.node_cpu_target_percent
  }
}
