# Built by the root module (kms.tf): one instance per AWS provider, holding the
# KMS keys of the jurisdictions that have a Meridian region in that AWS region.

variable "name" {
  description = "Prefix of the key aliases (alias/<name>-<jurisdiction>)."
  type        = string
}

variable "primaries" {
  description = "Jurisdiction => key policy (JSON) of the multi-Region primary key created here."
  type        = map(string)
}

variable "replicas" {
  description = "Jurisdiction => the primary key's ARN and the key policy (JSON) of its replica here."
  type = map(object({
    primary_key_arn = string
    policy          = string
  }))
}
