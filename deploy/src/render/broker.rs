//! RabbitMQ: the definitions to import (the pool's vhost, a worker user,
//! a submit user and an operator user with the least each needs, the queue policies and the
//! queues themselves) and the broker settings. Names and queue arguments
//! come from the protocol crate's `Topology`, the same code the workers
//! declare with, so an imported queue is exactly what a worker expects.

use base64::Engine;
use hlsmux_protocol::{DELIVERY_LIMIT, HistoryRetention, MuxerId, QueueArguments, Topology};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::inventory::{Inventory, Site};
use crate::secrets::Secrets;

/// The broker URLs of a user of the site: one per broker node, in the
/// inventory's order, which the programs try in turn.
fn amqp_url(site: &Site, user: &str, password: &str) -> String {
    let vhost = site.broker.vhost.replace('%', "%25").replace('/', "%2f");
    let urls: Vec<String> = site
        .broker
        .hosts
        .iter()
        .map(|host| {
            format!(
                "amqp://{user}:{password}@{host}:{port}/{vhost}",
                port = site.broker.port
            )
        })
        .collect();
    urls.join(", ")
}

pub fn worker_amqp_url(site: &Site, secrets: &Secrets) -> String {
    amqp_url(site, &site.broker.worker_user, &secrets.worker_password)
}

pub fn submit_amqp_url(site: &Site, secrets: &Secrets) -> String {
    amqp_url(site, &site.broker.submit_user, &secrets.submit_password)
}

pub fn operator_amqp_url(site: &Site, secrets: &Secrets) -> String {
    amqp_url(site, &site.broker.operator_user, &secrets.operator_password)
}

fn topology(site: &Site) -> Topology {
    Topology::new(site.namespace.clone()).with_history_retention(HistoryRetention {
        max_age: site.history_max_age.clone(),
        max_bytes: site.history_max_bytes,
    })
}

/// RabbitMQ's `rabbit_password_hashing_sha256`: base64 of a 4-byte salt
/// followed by SHA-256 of the salt and the password.
pub fn password_hash_with_salt(password: &str, salt: [u8; 4]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(salt);
    hasher.update(password.as_bytes());
    let mut salted = salt.to_vec();
    salted.extend_from_slice(&hasher.finalize());
    base64::engine::general_purpose::STANDARD.encode(salted)
}

/// The salt is derived from the user and password rather than drawn at
/// random, so that rendering twice gives the same file.
fn password_hash(user: &str, password: &str) -> String {
    let digest = Sha256::digest(format!("hlsmux-deploy salt\0{user}\0{password}").as_bytes());
    password_hash_with_salt(password, [digest[0], digest[1], digest[2], digest[3]])
}

/// A regular expression matching exactly the names given.
fn exactly(names: &[String]) -> String {
    let escaped: Vec<String> = names.iter().map(|n| n.replace('.', "\\.")).collect();
    format!("^({})$", escaped.join("|"))
}

/// A regular expression matching the per-muxer name `name_of` gives for
/// every muxer ID (`hlsmux.muxer.1`, `hlsmux.muxer.2`, ...).
fn every_muxer(name_of: impl Fn(MuxerId) -> String) -> String {
    let first = MuxerId::new(1).unwrap_or_else(|_| unreachable!("1 is a muxer ID"));
    let name = name_of(first);
    let prefix = name.strip_suffix(&first.to_string()).unwrap_or(&name);
    format!("^{}[0-9]+$", prefix.replace('.', "\\."))
}

pub fn definitions_json(inventory: &Inventory, secrets: &Secrets) -> String {
    let site = &inventory.site;
    let vhost = &site.broker.vhost;
    let topology = topology(site);
    let ns = site.namespace.to_string();
    let muxers: Vec<MuxerId> = {
        let mut ids: Vec<MuxerId> = inventory.pis.iter().map(|pi| pi.muxer()).collect();
        ids.sort();
        ids
    };
    let server_named = "amq\\.gen-.*";

    // The submit user queues jobs, cancels them and follows them (the
    // history and heartbeat streams, and the events through a private
    // server-named queue), and nothing else: it creates nothing the pool
    // relies on (it checks the pool exists with passive declarations, which
    // need no permission), and it cannot write to the default exchange,
    // which would reach every queue (tidy requests, muxer queues,
    // dead-letter notices), nor to the events exchange (forged outcomes).
    let private_queues = format!("^{server_named}$");
    let submit_configure = private_queues.clone();
    // It also keeps the HTTP gateway's webhook log (the gateway runs as
    // the submit user).
    let submit_write = format!(
        "{}|{private_queues}",
        exactly(&[
            topology.jobs_exchange(),
            topology.cancellations_exchange(),
            topology.webhook_records_exchange(),
        ])
    );
    let follow = [
        topology.events_exchange(),
        topology.event_history_stream(),
        topology.heartbeat_stream(),
        topology.webhook_log_stream(),
    ];
    let submit_read = format!("{}|{private_queues}", exactly(&follow));
    // The operator also drains and resumes muxers (the control exchange)
    // and reads and retries dead letters.
    let operator_write = format!(
        "{}|{private_queues}",
        exactly(&[
            topology.jobs_exchange(),
            topology.cancellations_exchange(),
            topology.webhook_records_exchange(),
            topology.control_exchange(),
        ])
    );
    let operator_read = format!(
        "{}|{private_queues}",
        exactly(&[follow.as_slice(), &[topology.dead_letter_queue()]].concat())
    );
    // A worker declares, consumes from and publishes to its pool's names
    // only.
    let worker_names = format!("^{}\\.", ns);
    let worker_write = format!("{worker_names}|^amq\\.default$");

    let user = |name: &str, password: &str| {
        json!({
            "name": name,
            "password_hash": password_hash(name, password),
            "hashing_algorithm": "rabbit_password_hashing_sha256",
            "tags": [],
        })
    };
    let permission = |name: &str, configure: &str, write: &str, read: &str| {
        json!({
            "user": name,
            "vhost": vhost,
            "configure": configure,
            "write": write,
            "read": read,
        })
    };
    let policy = |name: &str, pattern: String, definition: serde_json::Value| {
        json!({
            "vhost": vhost,
            "name": format!("{ns}-{name}"),
            "pattern": pattern,
            "apply-to": "queues",
            "priority": 0,
            "definition": definition,
        })
    };
    let queue = |name: String, arguments: QueueArguments| {
        json!({
            "name": name,
            "vhost": vhost,
            "durable": true,
            "auto_delete": false,
            "arguments": arguments,
        })
    };
    let binding = |source: String, destination: String, key: String| {
        json!({
            "source": source,
            "vhost": vhost,
            "destination": destination,
            "destination_type": "queue",
            "routing_key": key,
            "arguments": {},
        })
    };
    let exchange = |name: String, kind: &str| {
        json!({
            "name": name,
            "vhost": vhost,
            "type": kind,
            "durable": true,
            "auto_delete": false,
            "internal": false,
            "arguments": {},
        })
    };

    let mut queues = vec![
        queue(
            topology.dead_letter_queue(),
            Topology::dead_letter_arguments(),
        ),
        queue(
            topology.dead_letter_notices_queue(),
            Topology::dead_letter_arguments(),
        ),
        queue(
            topology.event_history_stream(),
            topology.event_history_arguments(),
        ),
        queue(topology.heartbeat_stream(), Topology::heartbeat_arguments()),
        queue(
            topology.cancellation_stream(),
            Topology::cancellation_arguments(),
        ),
        queue(
            topology.control_stream(),
            Topology::control_stream_arguments(),
        ),
        queue(
            topology.webhook_log_stream(),
            Topology::webhook_log_arguments(),
        ),
    ];
    let mut bindings = vec![
        binding(
            topology.events_exchange(),
            topology.event_history_stream(),
            Topology::ALL_EVENTS_BINDING.into(),
        ),
        binding(
            topology.dead_letter_exchange(),
            topology.dead_letter_queue(),
            String::new(),
        ),
        binding(
            topology.dead_letter_exchange(),
            topology.dead_letter_notices_queue(),
            String::new(),
        ),
        binding(
            topology.cancellations_exchange(),
            topology.cancellation_stream(),
            String::new(),
        ),
        binding(
            topology.webhook_records_exchange(),
            topology.webhook_log_stream(),
            String::new(),
        ),
    ];
    // Each Pi's muxer queue exists before the Pi first boots, so jobs for
    // it wait instead of being refused as unroutable.
    for muxer in &muxers {
        queues.push(queue(
            topology.muxer_queue(*muxer),
            topology.muxer_queue_arguments(),
        ));
        bindings.push(binding(
            topology.jobs_exchange(),
            topology.muxer_queue(*muxer),
            Topology::job_routing_key(*muxer),
        ));
        // And its control binding, so the operator (who may create
        // nothing) can drain a Pi that has not booted yet.
        bindings.push(binding(
            topology.control_exchange(),
            topology.control_stream(),
            Topology::job_routing_key(*muxer),
        ));
    }

    let definitions = json!({
        "vhosts": [{ "name": vhost }],
        "users": [
            user(&site.broker.worker_user, &secrets.worker_password),
            user(&site.broker.submit_user, &secrets.submit_password),
            user(&site.broker.operator_user, &secrets.operator_password),
        ],
        "permissions": [
            permission(&site.broker.worker_user, &worker_names, &worker_write, &worker_names),
            permission(&site.broker.submit_user, &submit_configure, &submit_write, &submit_read),
            permission(&site.broker.operator_user, &private_queues, &operator_write, &operator_read),
        ],
        // The same rules as the muxer queues' own arguments, so that a queue
        // declared without them (by hand, by an older worker) still has them,
        // and retention of the history that can be shortened later.
        "policies": [
            policy(
                "muxer-queues",
                every_muxer(|muxer| topology.muxer_queue(muxer)),
                json!({
                    "delivery-limit": DELIVERY_LIMIT,
                    "dead-letter-exchange": topology.dead_letter_exchange(),
                    "dead-letter-strategy": "at-least-once",
                    "overflow": "reject-publish",
                }),
            ),
            // A tidy request that keeps failing is given up by the broker
            // too, whatever the worker makes of it.
            policy(
                "tidy-queues",
                every_muxer(|muxer| topology.tidy_queue(muxer)),
                json!({ "delivery-limit": DELIVERY_LIMIT }),
            ),
            policy(
                "event-history",
                exactly(&[topology.event_history_stream()]),
                json!({
                    "max-age": site.history_max_age.as_str(),
                    "max-length-bytes": site.history_max_bytes,
                }),
            ),
        ],
        "exchanges": [
            exchange(topology.jobs_exchange(), "direct"),
            exchange(topology.events_exchange(), "topic"),
            exchange(topology.dead_letter_exchange(), "fanout"),
            exchange(topology.cancellations_exchange(), "fanout"),
            exchange(topology.control_exchange(), "direct"),
            exchange(topology.webhook_records_exchange(), "fanout"),
        ],
        "queues": queues,
        "bindings": bindings,
    });
    let mut text = serde_json::to_string_pretty(&definitions).unwrap_or_else(|_| unreachable!());
    text.push('\n');
    text
}

/// The settings every broker node of the pool gets, clustered or not.
pub(super) fn single_node_conf() -> String {
    format!(
        "# {}
# RabbitMQ settings for an hlsmux pool's broker.
#
# A worker acknowledges its job only when the job is finished, so the job's
# message stays unacknowledged for the whole encode; a long video on a Pi
# takes hours. RabbitMQ closes the channel of a delivery unacknowledged for
# longer than consumer_timeout (30 minutes by default; on 3.10 only this
# broker-wide setting exists, per-queue timeouts come with 3.12). The worker
# survives that (it finishes the job, and the redelivered copy is recognised
# and acknowledged without a second encode or a second `done`), but the
# redelivery is wasted work: allow a day.
consumer_timeout = 86400000

# Import the pool's users, vhost, policies and queues at boot.
definitions.import_backend = local_filesystem
definitions.local.path = /etc/rabbitmq/definitions.json
",
        super::header::GENERATED
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_hashes_follow_rabbitmqs_sha256_scheme() {
        // RabbitMQ's documented example: salt 908D C60A, password "test12".
        assert_eq!(
            password_hash_with_salt("test12", [0x90, 0x8d, 0xc6, 0x0a]),
            "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR"
        );
    }
}
