# The region's export store (issue 16, GDPR exports): one private bucket per
# Meridian region, in the region's AWS region, so a tenant's archive stays where
# the tenant is homed. The nodes write sealed archives (already encrypted with the
# tenant's data key) and serve them with ranged GETs; the export sweep deletes
# them at expiry. Bucket names are global: the account id makes them unique.

data "aws_caller_identity" "exports" {}

locals {
  # From the name, not the resource's computed ARN: the node policy and the
  # settings name exactly this bucket.
  export_bucket     = "${local.prefix}-exports-${data.aws_caller_identity.exports.account_id}"
  export_bucket_arn = "arn:aws:s3:::${local.export_bucket}"
}

resource "aws_s3_bucket" "exports" {
  bucket = local.export_bucket
  # Erasure and expiry delete objects; a bucket that outlives the deployment
  # would keep tenants' archives past both.
  force_destroy = true
}

resource "aws_s3_bucket_public_access_block" "exports" {
  bucket                  = aws_s3_bucket.exports.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "exports" {
  bucket = aws_s3_bucket.exports.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

# Archives are sealed by the application; SSE-S3 on top costs nothing.
resource "aws_s3_bucket_server_side_encryption_configuration" "exports" {
  bucket = aws_s3_bucket.exports.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

# No versioning: a deleted archive (expiry, erasure) must not survive as a
# noncurrent version. The lifecycle rule is a backstop behind the sweep: an
# object older than the longest export lifetime goes, and so do incomplete
# multipart uploads of crashed jobs.
resource "aws_s3_bucket_lifecycle_configuration" "exports" {
  bucket = aws_s3_bucket.exports.id
  rule {
    id     = "expire-archives"
    status = "Enabled"
    filter {}
    expiration {
      days = var.deployment.export_retention_days
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
}

# Only TLS requests.
resource "aws_s3_bucket_policy" "exports" {
  bucket = aws_s3_bucket.exports.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "TlsOnly"
      Effect    = "Deny"
      Principal = "*"
      Action    = "s3:*"
      Resource  = [local.export_bucket_arn, "${local.export_bucket_arn}/*"]
      Condition = { Bool = { "aws:SecureTransport" = "false" } }
    }]
  })
  depends_on = [aws_s3_bucket_public_access_block.exports]
}
