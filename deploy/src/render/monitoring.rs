//! Prometheus: the scrape configuration and one file-SD target per Pi.

use crate::inventory::{Gateway, Pi, Site};

use super::header::GENERATED;

/// The port every worker serves `/metrics` on (setting `metrics_addr`).
pub const WORKER_METRICS_PORT: u16 = 9797;
/// The port of RabbitMQ's rabbitmq_prometheus plugin.
pub const RABBITMQ_METRICS_PORT: u16 = 15692;

pub fn prometheus_yml(site: &Site, gateway: Option<&Gateway>) -> String {
    let gateway_job = gateway.map_or_else(String::new, |gateway| {
        // A gateway on every address is scraped on the NAS's.
        let host = if gateway.listen.ip().is_unspecified() {
            site.nas_ip.to_string()
        } else {
            gateway.listen.ip().to_string()
        };
        format!(
            "
  # The HTTP gateway (hlsmux-gateway): requests, event streams, webhook
  # attempts and uploads. Prometheus runs beside it on the NAS.
  - job_name: hlsmux-gateway
    static_configs:
      - targets: [\"{host}:{port}\"]
",
            port = gateway.listen.port()
        )
    });
    let brokers: Vec<String> = site
        .broker
        .hosts
        .iter()
        .map(|host| format!("\"{host}:{RABBITMQ_METRICS_PORT}\""))
        .collect();
    format!(
        "# {GENERATED}
# Workers are discovered from one file per Pi in {targets}: adding or
# removing a Pi changes that directory, picked up without a restart.
global:
  scrape_interval: 15s
  evaluation_interval: 15s

# Alert rules, beside this file (route them with your Alertmanager).
rule_files:
  - {ALERTS_FILE}

scrape_configs:
  - job_name: hlsmux-workers
    file_sd_configs:
      - files:
          - {targets}/*.yml
        refresh_interval: 1m

  # RabbitMQ's own rabbitmq_prometheus plugin: per-queue depth and
  # consumers, without the cost of every per-object metric.
  - job_name: rabbitmq
    metrics_path: /metrics/detailed
    params:
      family: [queue_coarse_metrics, queue_consumer_count]
    static_configs:
      - targets: [{brokers}]
{gateway_job}",
        targets = site.prometheus_targets_dir.display(),
        brokers = brokers.join(", ")
    )
}

/// The alert rules' file name, beside `prometheus.yml`.
pub const ALERTS_FILE: &str = "hlsmux-alerts.yml";

/// Example alert rules on the workers' own metrics: a volume running out
/// of room before the workers stop for it, and workers that stopped.
pub fn alerts_yml() -> String {
    format!(
        "# {GENERATED}
groups:
  - name: hlsmux
    rules:
      # Less than 5 GiB on the output volume (or a work dir) for 10 minutes:
      # workers stop taking jobs below output_min_free_bytes, or when a job
      # does not fit.
      - alert: HlsmuxVolumeLow
        expr: min by (instance, path) (hlsmux_storage_free_bytes) < 5 * 1024^3
        for: 10m
        labels:
          severity: warning
        annotations:
          summary: \"{{{{ $labels.path }}}} on {{{{ $labels.instance }}}} has {{{{ $value | humanize1024 }}}}B free\"
      # A worker that stopped taking jobs for want of room.
      - alert: HlsmuxWorkerStorageFull
        expr: max by (instance) (hlsmux_worker_state{{state=\"storage-full\"}}) == 1
        for: 5m
        labels:
          severity: critical
        annotations:
          summary: \"{{{{ $labels.instance }}}} takes no jobs: its output volume or work dir is full\"
      # Storage that fails its probes (not mounted, read-only, hung).
      - alert: HlsmuxStorageUnhealthy
        expr: min by (instance, path) (hlsmux_storage_healthy) == 0
        for: 5m
        labels:
          severity: critical
        annotations:
          summary: \"{{{{ $labels.path }}}} on {{{{ $labels.instance }}}} fails its storage checks\"
      # A webhook given up: a program was never told its job ended.
      - alert: HlsmuxWebhookGivenUp
        expr: sum by (instance) (increase(hlsmux_gateway_webhooks_given_up_total[1h])) > 0
        labels:
          severity: warning
        annotations:
          summary: \"{{{{ $labels.instance }}}} gave up {{{{ $value }}}} webhooks in the last hour: see the callbacks' attempts in GET /v1/jobs/{{id}}\"
"
    )
}

pub fn target(pi: &Pi) -> String {
    format!(
        "# {GENERATED}\n- targets:\n    - \"{ip}:{WORKER_METRICS_PORT}\"\n  labels:\n    pool: hlsmux\n    pi: {name}\n",
        ip = pi.ip,
        name = pi.name
    )
}
