# The API nodes' instance role: read this region's Meridian secrets and the
# release artifact, use the jurisdiction's KMS key, use the region's export bucket; Session Manager instead of SSH (no key pairs, no port 22).
# IAM is global, so names carry the region id.

resource "aws_iam_role" "node" {
  name = "${local.prefix}-node"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "ec2.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })
}

resource "aws_iam_role_policy" "node" {
  name = "meridian-node"
  role = aws_iam_role.node.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid    = "ReadMeridianSecrets"
        Effect = "Allow"
        Action = ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]
        # Plus the cluster CA certificate, to verify the database (verify-full).
        Resource = concat([for s in aws_secretsmanager_secret.node : s.arn], [module.cockroach.ca_crt_secret_arn])
      },
      {
        # Wrap and unwrap DEKs with this jurisdiction's key in this region; its
        # key policy must admit this role as well (root kms.tf).
        Sid      = "WrapDeksWithTheJurisdictionKey"
        Effect   = "Allow"
        Action   = ["kms:Encrypt", "kms:Decrypt", "kms:DescribeKey"]
        Resource = [var.kms_key.arn]
      },
      {
        # The region's export store (exports.tf): write, read, delete archives;
        # list to erase a tenant's prefix. No other bucket.
        Sid      = "RegionExportStore"
        Effect   = "Allow"
        Action   = ["s3:PutObject", "s3:GetObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
        Resource = ["${local.export_bucket_arn}/*"]
      },
      {
        Sid      = "ListRegionExportStore"
        Effect   = "Allow"
        Action   = ["s3:ListBucket"]
        Resource = [local.export_bucket_arn]
      },
      {
        Sid      = "ReadReleaseArtifact"
        Effect   = "Allow"
        Action   = ["s3:GetObject"]
        Resource = ["arn:aws:s3:::${trimprefix(var.deployment.artifact_s3_uri, "s3://")}"]
      },
    ]
  })
}

resource "aws_iam_role_policy_attachment" "node_ssm" {
  role       = aws_iam_role.node.name
  policy_arn = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

resource "aws_iam_instance_profile" "node" {
  name = "${local.prefix}-node"
  role = aws_iam_role.node.name
}
