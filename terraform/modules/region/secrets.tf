# Secrets the API nodes read at every start (systemd ExecStartPre). Terraform
# creates them EMPTY: values never pass through terraform state. Put them with
# `aws secretsmanager put-secret-value` (README). Secrets Manager is regional,
# so every region has its own copies; hop-secret and auth-keys must hold the
# same value in every region.

locals {
  node_secrets = {
    database-url = "postgresql://meridian_app:<password>@<this region's CockroachDB nodes>/meridian (MERIDIAN_DATABASE__URL)"
    hop-secret   = "shared by all regions: signs node-to-node hop markers, >= 16 characters (MERIDIAN_ROUTING__HOP_SECRET)"
    auth-keys    = "shared by all regions: the JSON key set that verifies tokens (file behind MERIDIAN_AUTH__KEYS_FILE)"
    # Optional: left without a value, the node signs in with the URL's password.
    database-client-crt = "optional: CockroachDB client certificate of meridian_app (client.meridian_app.crt), for certificate authentication (MERIDIAN_DATABASE__TLS__CLIENT_CERT_FILE)"
    database-client-key = "optional: its key (client.meridian_app.key), with database-client-crt (MERIDIAN_DATABASE__TLS__CLIENT_KEY_FILE)"
  }
}

resource "aws_secretsmanager_secret" "node" {
  for_each                = local.node_secrets
  name                    = "${var.deployment.name}/${each.key}"
  description             = "Meridian ${var.region.id}: ${each.value}"
  recovery_window_in_days = 7
}
