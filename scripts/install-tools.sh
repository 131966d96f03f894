#!/usr/bin/env bash
# Installs the pinned code generators and linters into ./.bin (ignored by git).
# A tool whose pinned version is already there is not rebuilt, so CI can cache .bin/.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/.bin"
mkdir -p "$bin"

# module@version, one per line; bump deliberately and run `make proto`.
tools=(
  "github.com/bufbuild/buf/cmd/buf@v1.75.0"
  "google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12"
  "honnef.co/go/tools/cmd/staticcheck@v0.8.2"
  # helm lint --strict in CI; building it takes minutes, so it is skipped
  # like the others when the pinned version is already in .bin/. Keep it at
  # the version charts/charttest renders with (its go.mod).
  "helm.sh/helm/v3/cmd/helm@v3.22.0"
)

for spec in "${tools[@]}"; do
  mod=${spec%@*}
  ver=${spec#*@}
  name=$(basename "$mod")
  stamp="$bin/.$name.version"
  if [[ -x "$bin/$name" && -f "$stamp" && "$(cat "$stamp")" == "$ver" ]]; then
    continue
  fi
  echo "install-tools: $name $ver" >&2
  GOBIN="$bin" GOWORK=off go install "$spec"
  echo "$ver" >"$stamp"
done
