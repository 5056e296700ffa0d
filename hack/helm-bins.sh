#!/usr/bin/env bash
# Builds Helm and promtool from the Go module proxy (pinned in tools/helm/go.mod), once
# per machine, into a cache outside the clone, so chart and alert-rule checks need no
# binary downloads. The folder is keyed by a hash of go.mod, go.sum, the Go version and
# the platform: a fresh clone reuses it and a changed pin rebuilds.
#
#   hack/helm-bins.sh build   build what is missing, then print the bin folder (default)
#   hack/helm-bins.sh path    print the bin folder (no build)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${GPU_HEADROOM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gpu-headroom}"
mod="$root/tools/helm"
pkgs=(helm.sh/helm/v3/cmd/helm github.com/prometheus/prometheus/cmd/promtool)
# Helm's own Makefile stamps its version and the Kubernetes version it assumes for
# `helm template` and `helm lint` (without it: v1.20, and charts that need newer
# Kubernetes fail to render). The minor follows the k8s.io/client-go pin.
k8s_minor="$(sed -n 's#^[[:space:]]*k8s.io/client-go v0\.\([0-9]*\)\..*#\1#p' "$mod/go.mod")"
declare -A ldflags=(
  [helm]="-X helm.sh/helm/v3/internal/version.version=v3.22.0 -X helm.sh/helm/v3/internal/version.gitTreeState=clean -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$k8s_minor -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$k8s_minor"
  [promtool]="-X github.com/prometheus/common/version.Version=0.316.0"
)

bindir() {
  local key
  key="$( (cat "$mod/go.mod" "$mod/go.sum"; go env GOVERSION GOOS GOARCH; echo "${ldflags[*]}") | sha256sum | cut -c1-16)"
  echo "$cache/helm-bins/$key"
}

cmd="${1:-build}"
dir="$(bindir)"
case "$cmd" in
  path) echo "$dir" ;;
  build)
    mkdir -p "$dir"
    for p in "${pkgs[@]}"; do
      name="$(basename "$p")"
      if [[ -x "$dir/$name" ]]; then
        echo "helm-bins: $name cached in $dir" >&2
        continue
      fi
      echo "helm-bins: building $name from $p (cold builds take minutes) ..." >&2
      start=$(date +%s)
      (cd "$mod" && CGO_ENABLED=0 go build -mod=readonly -trimpath -ldflags "-s -w ${ldflags[$name]}" \
        -o "$dir/.$name.tmp" "$p")
      mv "$dir/.$name.tmp" "$dir/$name"
      echo "helm-bins: built $name in $(( $(date +%s) - start ))s" >&2
    done
    echo "$dir"
    ;;
  *) echo "usage: $0 [build|path]" >&2; exit 2 ;;
esac
