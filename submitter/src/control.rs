//! `hlsmux drain` / `hlsmux resume`: set a muxer's workers out of or back
//! in service, through the pool's control stream.

use hlsmux_protocol::{ControlCommand, MuxerId, Topology};

use crate::broker::Broker;
use crate::cli::PoolArgs;
use crate::error::CliError;

pub async fn set_drained(pool: &PoolArgs, muxer: MuxerId, drain: bool) -> Result<(), CliError> {
    let broker = Broker::connect(pool).await?;
    let channel = broker.publisher().await?;
    let topology = broker.topology();
    broker.ensure_control_binding(muxer).await?;
    let command = ControlCommand::new(muxer, drain, who_asks());
    broker
        .publish_command(
            &channel,
            &topology.control_exchange(),
            &Topology::job_routing_key(muxer),
            &format!("control-{muxer}"),
            &command,
        )
        .await
        .map_err(|error| match error {
            CliError::Unroutable(_) => CliError::UnknownMuxer(muxer),
            other => other,
        })?;
    if drain {
        eprintln!(
            "muxer {muxer}: drain requested; its workers finish the job in hand and then take no more (`hlsmux resume {muxer}` undoes it)"
        );
    } else {
        eprintln!(
            "muxer {muxer}: resume requested; its workers take jobs again (a worker's own drain lock file still holds it)"
        );
    }
    Ok(())
}

/// The user and host giving a command, for the workers' logs and events.
pub fn who_asks() -> String {
    format!(
        "{}@{}",
        std::env::var("USER").unwrap_or_else(|_| "someone".into()),
        gethostname::gethostname().to_string_lossy()
    )
}
