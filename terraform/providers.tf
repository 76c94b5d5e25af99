# One aliased provider per AWS region that a Meridian region may be mapped to.
#
# Terraform (1.11) cannot create provider configurations from data, so this file
# and the module blocks in main.tf are the only places that name AWS regions
# statically. WHICH Meridian regions exist, and where each one runs, comes from
# regions.json alone; main.tf refuses (at `terraform validate` time) a
# regions.json entry whose AWS region has no provider here.
#
# To add an AWS region: add a provider block here, its name to
# local.aws_providers in main.tf, a "region_<aws>" module block and the
# "link_<a>__<b>" interconnect blocks for its pairs (see main.tf).

provider "aws" {
  alias  = "us_east_1"
  region = "us-east-1"
  default_tags {
    tags = local.default_tags
  }
}

provider "aws" {
  alias  = "eu_west_1"
  region = "eu-west-1"
  default_tags {
    tags = local.default_tags
  }
}

provider "aws" {
  alias  = "eu_central_1"
  region = "eu-central-1"
  default_tags {
    tags = local.default_tags
  }
}

provider "aws" {
  alias  = "eu_north_1"
  region = "eu-north-1"
  default_tags {
    tags = local.default_tags
  }
}

provider "aws" {
  alias  = "ap_southeast_1"
  region = "ap-southeast-1"
  default_tags {
    tags = local.default_tags
  }
}
