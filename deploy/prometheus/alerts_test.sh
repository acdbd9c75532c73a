#!/usr/bin/env bash
# The alert rules as Prometheus reads them: valid, and each source alert firing (or not)
# through the cases alerts_test.yaml plays. promtool comes from Debian's prometheus
# package (tools/setup installs it).
set -euo pipefail
if ! command -v promtool >/dev/null; then
  echo "promtool is missing: run tools/setup (Debian package prometheus)" >&2
  exit 1
fi
cd deploy/prometheus
promtool check rules alerts.yaml
promtool test rules alerts_test.yaml
