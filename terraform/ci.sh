#!/usr/bin/env bash
# Offline terraform checks for CI (called from .ci/run):
#   terraform init -backend=false, fmt -check -recursive, validate, test (mocked plan).
# Uses ONLY a local filesystem mirror of the hashicorp/aws provider; never the
# network. Skips (exit 0, with "skipping terraform checks: ...") when terraform
# or the mirror is missing. Leaves nothing behind in the checkout: the working
# directory (.terraform) lives in a temp dir and the lock file is read-only.
#
# Mirror lookup: $MERIDIAN_TF_MIRROR, else the first of the usual locations that
# holds registry.terraform.io/hashicorp/aws/<version>/<os>_<arch>/.
set -euo pipefail
cd "$(dirname "$0")"

provider_version=5.100.0

skip() {
  echo "skipping terraform checks: $*"
  exit 0
}

command -v terraform >/dev/null 2>&1 || skip "terraform is not on PATH"

case "$(uname -m)" in
  x86_64 | amd64) arch=amd64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) arch=$(uname -m) ;;
esac
platform="$(uname -s | tr '[:upper:]' '[:lower:]')_${arch}"

has_provider() {
  [ -d "$1/registry.terraform.io/hashicorp/aws/${provider_version}/${platform}" ] ||
    [ -n "$(find "$1/registry.terraform.io/hashicorp/aws" -maxdepth 1 -name "terraform-provider-aws_${provider_version}_${platform}.zip" 2>/dev/null)" ]
}

mirror=""
for candidate in "${MERIDIAN_TF_MIRROR:-}" /opt/tf-plugins /usr/share/terraform/plugins \
  /usr/local/share/terraform/plugins "${HOME:-/root}/.terraform.d/plugins" \
  "${HOME:-/root}/.local/share/terraform/plugins"; do
  if [ -n "$candidate" ] && has_provider "$candidate"; then
    mirror=$candidate
    break
  fi
done
[ -n "$mirror" ] || skip "no local mirror of hashicorp/aws ${provider_version} for ${platform} (set MERIDIAN_TF_MIRROR to one)"

work=$(mktemp -d "${TMPDIR:-/tmp}/meridian-tf.XXXXXX")
trap 'rm -rf "$work"' EXIT

cat >"$work/terraformrc" <<CONFIG
provider_installation {
  filesystem_mirror {
    path    = "${mirror}"
    include = ["registry.terraform.io/hashicorp/aws"]
  }
}
CONFIG

export TF_CLI_CONFIG_FILE="$work/terraformrc"
export TF_DATA_DIR="$work/data"
export TF_PLUGIN_CACHE_DIR=""
export TF_IN_AUTOMATION=1
export TF_INPUT=0
export CHECKPOINT_DISABLE=1
unset TF_WORKSPACE TF_CLI_ARGS TF_CLI_ARGS_init TF_CLI_ARGS_validate TF_CLI_ARGS_test 2>/dev/null || true

echo "terraform $(terraform version | head -n1 | cut -d' ' -f2), provider mirror ${mirror}"

echo "-- terraform init -backend=false"
terraform init -backend=false -input=false -no-color -lockfile=readonly >"$work/init.log" 2>&1 || {
  cat "$work/init.log"
  echo "terraform init failed" >&2
  exit 1
}

echo "-- terraform fmt -check -recursive"
terraform fmt -check -recursive -diff -no-color

echo "-- terraform validate"
terraform validate -no-color

echo "-- terraform test (plan against mocked AWS providers, no credentials, no network)"
terraform test -no-color
