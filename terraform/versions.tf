terraform {
  # 1.9+: cross-object references in variable validation; 1.7+: mock providers
  # in `terraform test`. CI runs 1.11.
  required_version = ">= 1.9.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "5.100.0"
    }
  }
}
