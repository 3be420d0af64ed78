//! Prometheus: the scrape configuration and one file-SD target per Pi.

use crate::inventory::{Pi, Site};

use super::header::GENERATED;

/// The port every worker serves `/metrics` on (setting `metrics_addr`).
pub const WORKER_METRICS_PORT: u16 = 9797;
/// The port of RabbitMQ's rabbitmq_prometheus plugin.
pub const RABBITMQ_METRICS_PORT: u16 = 15692;

pub fn prometheus_yml(site: &Site) -> String {
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
",
        targets = site.prometheus_targets_dir.display(),
        brokers = brokers.join(", ")
    )
}

pub fn target(pi: &Pi) -> String {
    format!(
        "# {GENERATED}\n- targets:\n    - \"{ip}:{WORKER_METRICS_PORT}\"\n  labels:\n    pool: hlsmux\n    pi: {name}\n",
        ip = pi.ip,
        name = pi.name
    )
}
