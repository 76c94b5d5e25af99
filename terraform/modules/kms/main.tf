# The key-encryption keys (KEKs) of Meridian's envelope encryption, one per
# jurisdiction: a multi-Region KMS key whose primary lives in one region of the
# jurisdiction and a replica in each other region of it. Nodes call KMS in
# their own region (`encryption.kms.region`), so after a failover inside the
# jurisdiction the replica there opens the DEKs wrapped elsewhere (replicas
# share key material and key id). No replica is ever made outside the
# jurisdiction, and the key policy (built in the root kms.tf) admits only that
# jurisdiction's node roles.

resource "aws_kms_key" "primary" {
  for_each                = var.primaries
  description             = "Meridian KEK, jurisdiction ${each.key}"
  multi_region            = true
  key_usage               = "ENCRYPT_DECRYPT"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = each.value
  tags                    = { MeridianJurisdiction = each.key }
}

resource "aws_kms_replica_key" "replica" {
  for_each                = var.replicas
  description             = "Meridian KEK, jurisdiction ${each.key} (replica)"
  primary_key_arn         = each.value.primary_key_arn
  deletion_window_in_days = 30
  policy                  = each.value.policy
  tags                    = { MeridianJurisdiction = each.key }
}

resource "aws_kms_alias" "key" {
  for_each      = merge({ for j, k in aws_kms_key.primary : j => k.key_id }, { for j, k in aws_kms_replica_key.replica : j => k.key_id })
  name          = "alias/${var.name}-${each.key}"
  target_key_id = each.value
}
