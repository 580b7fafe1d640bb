//! Workload 2: schedule and fire timers at random deadlines within 1 s:
//! ringio's timing wheel, tokio's `sleep_until` with one task per timer, and
//! one absolute io_uring TIMEOUT op per timer. Every contender gets the same
//! deadlines (fixed seed), as offsets from its own start. The ringio and
//! kernel loops are shared with `cargo bench --bench timers`.
//!
//! Then "10k timers in one granule": NOP throughput on a loop holding 10,000
//! timers due within one millisecond, against the same loop holding one, on
//! io_uring and the simulator. It holds the loop's per-pass timer cost
//! independent of the number of timers: when `next_deadline_ns` scanned the
//! bucket, the ratio was 0.22× on io_uring and 0.21× simulated.

use std::time::{Duration, Instant};

use crate::options::Options;
use crate::stats::{Better, Row, Section, Side};
use crate::timer_loops::{
    deadlines_ns, kernel_timeouts, nops_beside_one_granule, percentile_ms, ringio_timers, Loop,
    TimerRun, GRANULE_TIMERS,
};

/// Total seconds and lateness p99 (ms) of each run.
#[derive(Default)]
struct Samples {
    total_s: Vec<f64>,
    p99_ms: Vec<f64>,
    schedule_s: Vec<f64>,
}

impl Samples {
    fn push(&mut self, run: &TimerRun) {
        self.total_s.push(run.total_s);
        self.p99_ms.push(percentile_ms(&run.lateness_ns, 0.99));
        self.schedule_s.push(run.schedule_s);
    }

    /// The median time spent scheduling, shown next to the total.
    fn schedule_note(&self) -> Option<String> {
        let summary = crate::stats::Summary::of(&self.schedule_s)?;
        Some(format!("scheduling took {:.3} s", summary.median))
    }
}

pub fn run(options: &Options) -> Section {
    let count = options.timers;
    let mut ringio = Samples::default();
    let mut tokio = Samples::default();
    let mut kernel = Samples::default();
    for _ in 0..options.runs {
        ringio.push(&ringio_timers(count));
        match tokio_timers(count) {
            Ok(run) => tokio.push(&run),
            Err(error) => eprintln!("  tokio timers failed: {error}"),
        }
        kernel.push(&kernel_timeouts(count));
    }
    eprintln!("  timers: done");
    let name = format!("timers: {count} at random deadlines within 1 s");
    let mut rows = Vec::new();
    for (peer, samples) in [
        ("tokio current_thread, task per timer", &tokio),
        ("one io_uring TIMEOUT per timer", &kernel),
    ] {
        let mut total = row(
            format!("{name}, total time"),
            "s",
            &ringio.total_s,
            peer,
            &samples.total_s,
        );
        set_notes(&mut total, ringio.schedule_note(), samples.schedule_note());
        rows.push(total);
        rows.push(row(
            format!("{name}, callback lateness p99"),
            "ms",
            &ringio.p99_ms,
            peer,
            &samples.p99_ms,
        ));
    }
    for backend in [Loop::IoUring, Loop::Simulator] {
        rows.push(granule_row(options, backend));
    }
    Section {
        title: "Timers".to_string(),
        method: "Total time runs from the first timer scheduled to the last callback (or CQE). \
                 Lateness is the time a callback ran (reap time for raw CQEs) minus its deadline. \
                 Lower is better, so the ratio is peer / ringio. In-process, pinned to core 0. \
                 tokio's scheduling time covers only spawning: each sleep registers with the \
                 timer wheel when its task is first polled, after all are spawned. The \
                 \"10k timers in one granule\" rows count NOPs per second, one per pass, driven \
                 by `tick`, on a loop that also holds 10,000 timers due within one millisecond \
                 800 ms ahead (none fires while measured), against the same loop holding one \
                 such timer: the number of timers must not slow each pass. Target: ≥0.90×."
            .to_string(),
        rows,
        notes: Vec::new(),
    }
}

/// NOPs per second beside 10,000 timers in one granule, against one timer,
/// alternating run by run. One timer, not none, is the peer: having any
/// timer costs each pass a clock read and a deadline lookup, whatever their
/// number, and that fixed cost is not what this row holds down.
fn granule_row(options: &Options, backend: Loop) -> Row {
    let duration_ns = if options.quick {
        100_000_000
    } else {
        300_000_000
    };
    let mut many = Vec::with_capacity(options.runs);
    let mut one = Vec::with_capacity(options.runs);
    for _ in 0..options.runs {
        one.push(nops_beside_one_granule(backend, 1, duration_ns));
        many.push(nops_beside_one_granule(
            backend,
            GRANULE_TIMERS,
            duration_ns,
        ));
    }
    eprintln!("  10k timers in one granule, {}: done", backend.name());
    Row {
        name: format!(
            "10k timers in one granule, {}: nop per pass",
            backend.name()
        ),
        unit: "ops/s",
        better: Better::Higher,
        ringio: Side::from_samples(&many, None, "no runs"),
        peer: "the same loop, one timer".to_string(),
        peer_value: Side::from_samples(&one, None, "no runs"),
        target: Some(0.9),
    }
}

fn row(name: String, unit: &'static str, ringio: &[f64], peer: &str, peer_samples: &[f64]) -> Row {
    Row {
        name,
        unit,
        better: Better::Lower,
        ringio: Side::from_samples(ringio, None, "no runs"),
        peer: peer.to_string(),
        peer_value: Side::from_samples(peer_samples, None, "failed"),
        target: None,
    }
}

fn set_notes(row: &mut Row, ringio: Option<String>, peer: Option<String>) {
    for (side, text) in [(&mut row.ringio, ringio), (&mut row.peer_value, peer)] {
        if let Side::Value { note, .. } = side {
            *note = text;
        }
    }
}

/// tokio: a `current_thread` runtime and one spawned task per timer in a
/// `JoinSet`, each sleeping until its deadline and returning its lateness.
fn tokio_timers(count: usize) -> std::io::Result<TimerRun> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    let offsets_ns = deadlines_ns(count, 0);
    runtime.block_on(async move {
        let start = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for offset_ns in offsets_ns {
            let deadline = start + Duration::from_nanos(offset_ns);
            tasks.spawn(async move {
                tokio::time::sleep_until(deadline.into()).await;
                Instant::now()
                    .saturating_duration_since(deadline)
                    .as_nanos() as u64
            });
        }
        let schedule_s = start.elapsed().as_secs_f64();
        let mut lateness_ns = Vec::with_capacity(count);
        while let Some(joined) = tasks.join_next().await {
            lateness_ns.push(joined.map_err(std::io::Error::other)?);
        }
        let total_s = start.elapsed().as_secs_f64();
        lateness_ns.sort_unstable();
        Ok(TimerRun {
            schedule_s,
            total_s,
            lateness_ns,
            lateness_after_schedule_ns: Vec::new(),
        })
    })
}
