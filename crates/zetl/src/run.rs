//! `zetl run`: one source task and one writer thread joined by a bounded channel. Any
//! failure that a reconnect may cure restarts both from the checkpoint the target holds —
//! the same path a restart after kill -9 takes.

use crate::failure::Failure;
use crate::registry::{Config, Integration};
use crate::{http, registry};
use anyhow::{Context, Result};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use zetl_core::channel;
use zetl_core::pipeline::{Progress, Writer, CHANNEL_BYTES};
use zetl_core::source::{Failed, ResyncRequests, SourceContext, TargetState};
use zetl_core::target::Target;
use zetl_core::{Phase, TableId, TableState};

pub async fn run(config: &Path, name: Option<&str>) -> Result<u8> {
    let config = Config::load(config)?;
    let integration = config.integration(name)?.clone();
    let span = tracing::info_span!("integration", name = %integration.name);
    let _entered = span.enter();
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("stopping at the next transaction boundary");
        let _ = stop_tx.send(true);
    });
    let mut backoff = Duration::from_millis(500);
    let progress = Arc::new(Progress::default());
    let resync = ResyncRequests::default();
    if let Some(listen) = integration.metrics_listen {
        let endpoint = http::Endpoint {
            integration: integration.name.clone(),
            progress: progress.clone(),
            ready_max_lag_seconds: integration.ready_max_lag_seconds,
            resync: resync.clone(),
            token: integration.metrics_token.clone(),
        };
        tokio::spawn(http::serve(listen, endpoint));
    }
    loop {
        match run_once(&integration, stop_rx.clone(), progress.clone(), resync.clone()).await {
            Ok(()) => return Ok(0),
            // Retrying only helps a connection that worked before: a wrong host or port at
            // start-up is reported at once instead of being retried forever.
            Err(Failure { error: e, transient: true }) if !*stop_rx.borrow() && made_progress(&progress) => {
                progress.errors.fetch_add(1, Ordering::Relaxed);
                progress.reconnects.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %format!("{e:#}"), retry_in_s = backoff.as_secs_f64(), "transient failure (connection lost, server restarting, lock or statement timeout, deadlock); resuming from the target's checkpoint");
                let mut stop = stop_rx.clone();
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.changed() => return Ok(0),
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
            Err(failure) => {
                progress.errors.fetch_add(1, Ordering::Relaxed);
                return Err(failure.error);
            }
        }
    }
}

fn made_progress(p: &Progress) -> bool {
    p.batches_committed.load(Ordering::Relaxed) > 0 || p.rows_copied.load(Ordering::Relaxed) > 0
}

async fn run_once(
    integration: &Integration,
    stop: watch::Receiver<bool>,
    progress: Arc<Progress>,
    resync: ResyncRequests,
) -> Result<(), Failure> {
    // Targets block (PostgreSQL's runs a runtime of its own): opened off the async threads.
    let owned = integration.clone();
    let target = tokio::task::spawn_blocking(move || registry::target(&owned, registry::Role::Writer))
        .await
        .context("opening the target")?
        .map_err(|e| Failure::of(e).context("opening the target"))?;
    let filter = integration.tables.clone();
    let (target, checkpoint, copied, under_way) = tokio::task::spawn_blocking(move || {
        let mut target = target;
        let checkpoint = target.checkpoint()?;
        let resumable = TargetState::resumable_snapshot(checkpoint.as_ref());
        let streaming = matches!(checkpoint, Some(ref c) if c.phase == Phase::Streaming);
        if !streaming && !resumable {
            // No completed initial copy, and none to continue: whatever a previous attempt
            // left is dropped.
            target.reset()?;
        }
        // Copies of an interrupted initial copy, or copies made while streaming (fills).
        let mut under_way: HashMap<_, _> =
            if resumable || streaming { target.copies_under_way()?.into_iter().collect() } else { HashMap::new() };
        let mut copied: HashMap<_, _> = target.copied_tables()?.into_iter().collect();
        // Tables the filters no longer select stop counting as copied: their changes are not
        // followed from now on, so coming back into the filters must copy them again. A copy
        // of one under way is given up, and the rows it filled aside so far are dropped.
        let mut excluded: Vec<TableId> = copied.keys().chain(under_way.keys()).filter(|t| !filter.matches(t)).cloned().collect();
        excluded.sort();
        excluded.dedup();
        if !excluded.is_empty() {
            for t in &excluded {
                tracing::info!(table = %t, "the table is out of the filters now: no longer replicated; its target table is kept as it was");
                copied.remove(t);
                if under_way.remove(t).is_some() {
                    target.drop_aside(&t.fill_aside())?;
                }
            }
            target.mark_tables(&excluded, TableState::Excluded, Some("out of the integration's table filters"))?;
        }
        Ok::<_, Failed>((target, checkpoint, copied, under_way))
    })
    .await
    .context("reading the target's state")?
    .map_err(|e| Failure::of(e).context("reading the target's state"))?;
    let start_position = checkpoint.as_ref().map(|c| c.position.clone()).unwrap_or_default();
    tracing::info!(
        phase = checkpoint.as_ref().map(|c| c.phase.as_str()).unwrap_or("new"),
        position = %start_position,
        "starting"
    );

    let (events_tx, events_rx) = channel::channel(CHANNEL_BYTES);
    let (acks_tx, acks_rx) = watch::channel(start_position);
    let writer = Writer::new(target, registry::batching(integration), acks_tx, progress.clone())
        .resuming_from(checkpoint.as_ref())
        .with_apply_policy(integration.apply.clone());
    let writer = std::thread::Builder::new()
        .name("zetl-writer".into())
        .spawn(move || writer.run(events_rx))
        .context("starting the writer thread")?;
    let reporter = tokio::spawn(report(progress.clone()));
    let live_line = crate::tty::active().then(|| tokio::spawn(crate::tty::show_copy_progress(progress.clone())));

    let state = TargetState { checkpoint, copied, under_way };
    let ctx = SourceContext { events: events_tx, acks: acks_rx, stop, progress: progress.clone(), resync };
    let source_result = match registry::source(integration) {
        Ok(source) => source.run(state, ctx).await.map_err(Failure::of),
        Err(e) => Err(Failure::of(e)),
    };
    reporter.abort();
    if let Some(line) = live_line {
        line.abort();
        crate::tty::clear();
    }
    // The target is dropped on the blocking thread: a PostgreSQL target owns a runtime, which
    // must not be dropped inside this async one.
    let writer_result = tokio::task::spawn_blocking(move || writer.join().map(|r| r.map(drop)))
        .await
        .context("waiting for the writer")?
        .map_err(|_| anyhow::anyhow!("the writer thread panicked"))?;
    // A writer failure is the cause; the source then only saw the channel close.
    writer_result.map_err(|e| Failure::of(e).context("applying changes to the target"))?;
    source_result.map_err(|e| e.context("reading from the source"))?;
    tracing::info!("stopped cleanly");
    Ok(())
}

async fn report(progress: Arc<Progress>) {
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    tick.tick().await;
    loop {
        tick.tick().await;
        tracing::info!(
            phase = progress.phase.name(),
            changes = progress.changes_applied.load(Ordering::Relaxed),
            transactions = progress.transactions_applied.load(Ordering::Relaxed),
            rows_copied = progress.rows_copied.load(Ordering::Relaxed),
            lag_s = progress.lag_seconds(zetl_core::pipeline::now_us()),
            lag_bytes = progress.lag_bytes(),
            "progress"
        );
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
            tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
