//! systemd service notifications for `serve` (`Type=notify` in
//! `packaging/server/nird-server.service`): READY=1 once the server
//! listens, WATCHDOG=1 at half `WatchdogSec` from a task on the server's
//! runtime (a stalled runtime stops the pings and systemd restarts the
//! service), STOPPING=1 at shutdown. Outside systemd (`NOTIFY_SOCKET`
//! unset) every call does nothing.

use std::time::Duration;

use sd_notify::NotifyState;

fn notify(state: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(false, state) {
        tracing::debug!(error = %e, "sd_notify failed");
    }
}

/// The watchdog ping interval systemd asked this process for (half of
/// `WATCHDOG_USEC`), if any.
pub fn watchdog_interval() -> Option<Duration> {
    let usec = std::env::var("WATCHDOG_USEC")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())?;
    let for_us = std::env::var("WATCHDOG_PID")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .is_none_or(|pid| pid == std::process::id());
    Some(Duration::from_micros(usec / 2)).filter(|d| for_us && !d.is_zero())
}

/// Says READY=1 and, when systemd wants a watchdog, spawns the task that
/// pings it. Call from within the server's tokio runtime.
pub fn ready_and_watchdog() {
    notify(&[NotifyState::Ready, NotifyState::Status("en service")]);
    if let Some(every) = watchdog_interval() {
        tracing::info!(
            interval_ms = every.as_millis() as u64,
            "systemd watchdog enabled"
        );
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                notify(&[NotifyState::Watchdog]);
            }
        });
    }
}

/// Says STOPPING=1 (the shutdown signal arrived).
pub fn stopping() {
    notify(&[NotifyState::Stopping]);
}
