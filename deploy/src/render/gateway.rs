//! The HTTP gateway's files, for the machine that runs it (the NAS, or any
//! host beside the reverse proxy that terminates TLS): its systemd unit,
//! its environment (the broker as the submit user: queue, follow, cancel,
//! keep the webhook log, nothing more) and its token file (digests, webhook
//! secrets and callback hosts; 0600), and the tokens themselves for the
//! operator to hand out (0600).

use sha2::{Digest, Sha256};

use crate::inventory::{Gateway, Site};
use crate::secrets::Secrets;

use super::broker::submit_amqp_url;
use super::header::GENERATED;
use super::services::{HARDENING, cli_env};

/// Where the unit expects the rendered files.
const ENV_FILE: &str = "/etc/hlsmux/gateway.env";
const TOKEN_FILE: &str = "/etc/hlsmux/gateway-tokens.toml";

pub fn unit(site: &Site) -> String {
    let media = site.media_root.display();
    format!(
        "# {GENERATED}
# hlsmux-gateway: the pool's HTTP API and web page. The binary at
# /usr/local/bin/hlsmux-gateway; {ENV_FILE} and {TOKEN_FILE} (both 0600,
# owned by the user `hlsmux-gateway`). It listens on loopback: put a
# reverse proxy with TLS in front of it (see the README).
[Unit]
Description=hlsmux gateway: the pool's HTTP API
Wants=network-online.target
After=network-online.target remote-fs.target
# Uploads are written into the media root's incoming/.
RequiresMountsFor={media}

[Service]
Type=exec
User=hlsmux-gateway
Group=hlsmux
EnvironmentFile={ENV_FILE}
ExecStart=/usr/local/bin/hlsmux-gateway
Environment=RUST_LOG=info
Restart=always
RestartSec=5
KillSignal=SIGTERM
TimeoutStopSec=30

NoNewPrivileges=yes
ProtectSystem=strict
ReadWritePaths={media}/incoming
{HARDENING}PrivateDevices=yes
MemoryMax=512M

[Install]
WantedBy=multi-user.target
"
    )
}

/// The submit user's environment (mode 0600: it holds the submit user's
/// password), plus where to listen and the tokens.
pub fn env(site: &Site, gateway: &Gateway, secrets: &Secrets) -> String {
    format!(
        "{}HLSMUX_GATEWAY_LISTEN={}\nHLSMUX_GATEWAY_TOKENS={TOKEN_FILE}\n",
        cli_env(site, &submit_amqp_url(site, secrets)),
        gateway.listen,
    )
}

/// The token file the gateway reads: each token's SHA-256, never the
/// token; its webhook secret (an HMAC key, so kept as is) and hosts.
pub fn token_file(gateway: &Gateway, secrets: &Secrets) -> String {
    let mut text = format!(
        "# {GENERATED}\n# Mode 0600: it holds the webhook secrets. The tokens themselves are in\n# tokens.txt beside it, for the operator to hand out, never installed.\n"
    );
    for token in &gateway.tokens {
        let Some(made) = secrets.gateway_tokens.get(&token.name) else {
            continue;
        };
        let quoted = |items: &[String]| {
            items
                .iter()
                .map(|item| format!("{item:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        text.push_str(&format!(
            "\n[[token]]\nname = {name:?}\nsha256 = \"{digest}\"\nrights = [{rights}]\nwebhook_secret = {secret:?}\ncallback_hosts = [{hosts}]\n",
            name = token.name,
            digest = hex_sha256(&made.token),
            rights = quoted(&token.rights),
            secret = made.webhook_secret,
            hosts = quoted(&token.callback_hosts),
        ));
    }
    text
}

/// Each token and its webhook secret, for the people and programs that
/// call the gateway.
pub fn tokens_to_hand_out(gateway: &Gateway, secrets: &Secrets) -> String {
    let mut text = format!(
        "# {GENERATED}\n# Hand each caller its token (Authorization: Bearer TOKEN) and, for\n# webhooks, its secret (to check Hlsmux-Signature). Keep this file private.\n"
    );
    for token in &gateway.tokens {
        if let Some(made) = secrets.gateway_tokens.get(&token.name) {
            text.push_str(&format!(
                "{} token={} webhook_secret={}\n",
                token.name, made.token, made.webhook_secret
            ));
        }
    }
    text
}

fn hex_sha256(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}
