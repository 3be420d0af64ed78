//! Turns SIGTERM (systemd's stop) and SIGINT (Ctrl-C) into a cancellation.

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// Cancels `token` on the first SIGTERM or SIGINT.
pub fn cancel_on_signals(token: CancellationToken) -> std::io::Result<()> {
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = terminate.recv() => tracing::info!("SIGTERM: finishing up"),
            _ = interrupt.recv() => tracing::info!("SIGINT: finishing up"),
        }
        token.cancel();
    });
    Ok(())
}
