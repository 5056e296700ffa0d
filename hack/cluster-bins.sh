#!/usr/bin/env bash
# Builds the pinned control-plane binaries for the local test cluster from the Go
# module proxy, once per machine, into a cache outside the clone. Each tools module
# under tools/cluster/ is built into a folder keyed by a hash of its go.mod, go.sum,
# the Go version and the platform, so a fresh clone reuses them and a changed pin
# rebuilds only that module.
#
#   hack/cluster-bins.sh build   build what is missing (default)
#   hack/cluster-bins.sh path    print the bin folders, colon separated (no build)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${GPU_HEADROOM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gpu-headroom}"

# module folder -> packages it builds (binary name = last path element, except etcd).
declare -A pkgs=(
  [k8s]="k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kube-controller-manager"
  [etcd-kwok]="go.etcd.io/etcd/server/v3 sigs.k8s.io/kwok/cmd/kwok"
  [keda]="github.com/kedacore/keda/v2/cmd/operator github.com/kedacore/keda/v2/cmd/adapter"
)
declare -A ldflags=(
  [k8s]="-X k8s.io/component-base/version.gitVersion=v1.37.2 -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37 -X k8s.io/client-go/pkg/version.gitVersion=v1.37.2"
  [etcd-kwok]="-X sigs.k8s.io/kwok/pkg/consts.Version=v0.8.0"
  [keda]="-X github.com/kedacore/keda/v2/version.Version=2.21.0"
)
order=(etcd-kwok k8s keda)

bindir() {
  local m="$1" d="$root/tools/cluster/$1"
  local key
  key="$( (cat "$d/go.mod" "$d/go.sum"; go env GOVERSION GOOS GOARCH; echo "${ldflags[$m]}") | sha256sum | cut -c1-16)"
  echo "$cache/cluster-bins/$m-$key"
}

binname() {
  case "$1" in
    go.etcd.io/etcd/server/v3) echo etcd ;;
    github.com/kedacore/keda/v2/cmd/operator) echo keda-operator ;;
    github.com/kedacore/keda/v2/cmd/adapter) echo keda-adapter ;;
    *) basename "$1" ;;
  esac
}

# copy_data copies the data files the harness needs from the pinned modules
# themselves (not from a copy in this repo): kwok's Stage files and KEDA's CRDs.
copy_data() {
  local m="$1" dir="$2" src
  case "$m" in
    etcd-kwok)
      src="$(cd "$root/tools/cluster/$m" && go list -mod=readonly -m -f '{{.Dir}}' sigs.k8s.io/kwok)"
      rm -rf "$dir/kwok-stages" && mkdir -p "$dir/kwok-stages"
      cp "$src/kustomize/stage/node/fast/node-initialize.yaml" \
         "$src/kustomize/stage/node/heartbeat/node-heartbeat.yaml" \
         "$src/kustomize/stage/pod/fast/pod-ready.yaml" \
         "$src/kustomize/stage/pod/fast/pod-complete.yaml" \
         "$src/kustomize/stage/pod/fast/pod-delete.yaml" "$dir/kwok-stages/"
      ;;
    keda)
      src="$(cd "$root/tools/cluster/$m" && go list -mod=readonly -m -f '{{.Dir}}' github.com/kedacore/keda/v2)"
      rm -rf "$dir/keda-crds" && mkdir -p "$dir/keda-crds"
      cp "$src"/config/crd/bases/*.yaml "$dir/keda-crds/"
      ;;
  esac
  chmod -R u+w "$dir"
}

cmd="${1:-build}"
case "$cmd" in
  path)
    out=""
    for m in "${order[@]}"; do out="${out:+$out:}$(bindir "$m")"; done
    echo "$out"
    ;;
  build)
    for m in "${order[@]}"; do
      dir="$(bindir "$m")"
      mkdir -p "$dir"
      for p in ${pkgs[$m]}; do
        name="$(binname "$p")"
        if [[ -x "$dir/$name" ]]; then
          echo "cluster-bins: $name cached in $dir"
          continue
        fi
        echo "cluster-bins: building $name from $p (cold builds take minutes) ..."
        start=$(date +%s)
        (cd "$root/tools/cluster/$m" && CGO_ENABLED=0 go build -mod=readonly -trimpath \
          -ldflags "-s -w ${ldflags[$m]}" -o "$dir/.$name.tmp" "$p")
        mv "$dir/.$name.tmp" "$dir/$name"
        echo "cluster-bins: built $name in $(( $(date +%s) - start ))s"
      done
      copy_data "$m" "$dir"
    done
    ;;
  *) echo "usage: $0 [build|path]" >&2; exit 2 ;;
esac
