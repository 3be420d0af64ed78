//! The broker files of a pool whose inventory names more than one broker
//! host: a cluster's rabbitmq.conf part, long node names where needed, the
//! quorum queues' group size, and the Erlang cookie the nodes share.

use crate::inventory::Site;
use crate::secrets::Secrets;

/// Broker settings for the pool (appended to `/etc/rabbitmq/rabbitmq.conf`
/// on every broker node), with the cluster's settings when the inventory
/// names more than one broker host.
pub fn rabbitmq_conf(site: &Site) -> String {
    let mut conf = super::broker::single_node_conf();
    if site.broker.hosts.len() > 1 {
        conf.push_str(&cluster_conf(&site.broker.hosts));
    }
    conf
}

/// The RabbitMQ node name of a broker host: short names for plain host
/// names, long names (see [`rabbitmq_env`]) for addresses and FQDNs.
fn node_name(host: &str) -> String {
    format!("rabbit@{host}")
}

fn needs_long_names(hosts: &[String]) -> bool {
    hosts
        .iter()
        .any(|host| host.contains('.') || host.contains(':'))
}

/// `/etc/rabbitmq/rabbitmq-env.conf` for every broker node of a cluster
/// whose hosts are addresses or FQDNs, which Erlang accepts only as long
/// node names; `None` where short names do.
pub fn rabbitmq_env(site: &Site) -> Option<String> {
    (site.broker.hosts.len() > 1 && needs_long_names(&site.broker.hosts)).then(|| {
        format!(
            "# {}\n# The broker hosts are addresses or FQDNs: Erlang node names must be long.\nUSE_LONGNAME=true\n",
            super::header::GENERATED
        )
    })
}

/// The cluster part of rabbitmq.conf: how the nodes find each other, and
/// what a node cut off from the others does.
fn cluster_conf(hosts: &[String]) -> String {
    let mut conf = String::from(
        "
# A cluster of the inventory's broker hosts. Each node finds the others in
# this list (classic-config peer discovery): start one node first, then the
# others, which join it. All nodes hold the same Erlang cookie (the rendered
# erlang.cookie, installed as /var/lib/rabbitmq/.erlang.cookie, mode 0400).
# Every queue and stream the pool relies on is replicated (quorum queues, on
# three nodes: see the rendered advanced.config, and streams), so a node's
# loss costs the clients on it a reconnect and nothing else.
cluster_formation.peer_discovery_backend = classic_config
",
    );
    for (index, host) in hosts.iter().enumerate() {
        conf.push_str(&format!(
            "cluster_formation.classic_config.nodes.{} = {}\n",
            index + 1,
            node_name(host)
        ));
    }
    conf.push_str(
        "
# A node that loses sight of the majority pauses (refuses clients, which
# reconnect to the majority) until it sees them again, so that a network
# partition never leaves two halves each taking jobs.
cluster_partition_handling = pause_minority
",
    );
    conf
}

/// `/etc/rabbitmq/advanced.config` for every node of a cluster: new quorum
/// queues get three replicas (RabbitMQ's default is up to five), so a
/// cluster grown past three nodes spreads queues rather than copying each
/// everywhere. `None` for one node.
pub fn advanced_config(site: &Site) -> Option<String> {
    (site.broker.hosts.len() > 1).then(|| {
        format!(
            "%% {}\n%% Quorum queues' initial group size: three replicas, a majority of two.\n[{{rabbit, [{{quorum_cluster_size, 3}}]}}].\n",
            super::header::GENERATED
        )
    })
}

/// The Erlang cookie every broker node of the pool holds (as
/// `/var/lib/rabbitmq/.erlang.cookie`, owned by rabbitmq, mode 0400).
pub fn erlang_cookie(secrets: &Secrets) -> String {
    secrets.erlang_cookie.clone()
}
