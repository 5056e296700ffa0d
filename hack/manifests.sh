#!/usr/bin/env bash
# Renders what ships next to the chart, from the chart and from typed Go, so none of
# it is edited by hand:
#   charts/gpu-headroom/dashboards/gpu-headroom.json  Grafana dashboard (tools/observability)
#   deploy/gpu-headroom.yaml        the chart with default values (kubectl apply -n gpu-headroom)
#   deploy/prometheus-rules.yaml    the alerts as a plain Prometheus rule file
#   deploy/grafana-dashboard.yaml   the dashboard ConfigMap for the Grafana sidecar
#
#   hack/manifests.sh write    regenerate them
#   hack/manifests.sh verify   helm lint, then fail if any differs from what would be generated
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
helm="$("$root/hack/helm-bins.sh" path)/helm"
[[ -x "$helm" ]] || { echo "manifests: $helm is not built; run make helm-bins" >&2; exit 1; }
chart="$root/charts/gpu-headroom"
# Keep Helm away from a person's repositories, plugins and clusters.
tmp_home="$(mktemp -d)"
trap 'rm -rf "$tmp_home"' EXIT
export HELM_CACHE_HOME="$tmp_home" HELM_CONFIG_HOME="$tmp_home" HELM_DATA_HOME="$tmp_home" KUBECONFIG=/dev/null

gen() { (cd "$root/tools/observability" && go run -mod=readonly ./cmd/gen "$@"); }
tpl() { "$helm" template gpu-headroom "$chart" --namespace gpu-headroom "$@"; }

# render OUT writes every generated file under OUT (same relative paths).
render() {
  local out="$1"
  mkdir -p "$out/deploy" "$out/charts/gpu-headroom/dashboards"
  gen dashboard > "$out/charts/gpu-headroom/dashboards/gpu-headroom.json"
  tpl > "$out/deploy/gpu-headroom.yaml"
  tpl --set prometheusRule.enabled=true --show-only templates/prometheusrule.yaml | gen rules > "$out/deploy/prometheus-rules.yaml"
  tpl --set dashboard.enabled=true --show-only templates/dashboard.yaml > "$out/deploy/grafana-dashboard.yaml"
}

files=(charts/gpu-headroom/dashboards/gpu-headroom.json deploy/gpu-headroom.yaml deploy/prometheus-rules.yaml deploy/grafana-dashboard.yaml)

case "${1:-write}" in
  write)
    # The dashboard goes into the chart first: the dashboard ConfigMap embeds it.
    mkdir -p "$chart/dashboards"
    gen dashboard > "$chart/dashboards/gpu-headroom.json"
    render "$tmp_home/out"
    for f in "${files[@]}"; do mkdir -p "$(dirname "$root/$f")"; cp "$tmp_home/out/$f" "$root/$f"; done
    echo "manifests: wrote ${files[*]}"
    ;;
  verify)
    "$helm" lint --strict "$chart" >/dev/null
    "$helm" lint --strict "$chart" --set prometheusRule.enabled=true,serviceMonitor.enabled=true,networkPolicy.enabled=true,dashboard.enabled=true,agent.enabled=true >/dev/null
    render "$tmp_home/out"
    status=0
    for f in "${files[@]}"; do
      if ! diff -u "$root/$f" "$tmp_home/out/$f" >&2; then
        echo "manifests: $f drifted from the chart; run make manifests and commit" >&2
        status=1
      fi
    done
    [[ $status == 0 ]] && echo "manifests: deploy/ and the dashboard match the chart"
    exit $status
    ;;
  *) echo "usage: $0 [write|verify]" >&2; exit 2 ;;
esac
