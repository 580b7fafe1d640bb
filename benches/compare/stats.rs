//! Summaries of repeated runs, and the rows the report is made of.

/// Median, min and max of one contender's runs.
#[derive(Clone, Copy, Debug)]
pub struct Summary {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Summary {
    /// `None` for no samples: a contender that never ran has no figure.
    pub fn of(samples: &[f64]) -> Option<Summary> {
        let mut sorted: Vec<f64> = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let median = *sorted.get(sorted.len() / 2)?;
        Some(Summary {
            median,
            min: sorted[0],
            max: sorted[sorted.len() - 1],
        })
    }
}

/// Which direction is better, so that every ratio reads "higher is better".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Better {
    Higher,
    Lower,
}

/// One side of a row: a figure, or why there is none.
#[derive(Clone, Debug)]
pub enum Side {
    Value {
        summary: Summary,
        /// Extra context shown next to the figure, such as CPU use.
        note: Option<String>,
    },
    Missing(String),
}

impl Side {
    pub fn from_samples(samples: &[f64], note: Option<String>, missing: &str) -> Side {
        match Summary::of(samples) {
            Some(summary) => Side::Value { summary, note },
            None => Side::Missing(missing.to_string()),
        }
    }

    pub fn median(&self) -> Option<f64> {
        match self {
            Side::Value { summary, .. } => Some(summary.median),
            Side::Missing(_) => None,
        }
    }
}

/// One comparison: ringio against one peer, in one exact configuration.
#[derive(Clone, Debug)]
pub struct Row {
    /// The exact configuration, e.g. "tcp echo ping-pong, 1 conn, 64 B".
    pub name: String,
    pub unit: &'static str,
    pub better: Better,
    pub ringio: Side,
    pub peer: String,
    pub peer_value: Side,
    /// The ratio the issue asks for, if any.
    pub target: Option<f64>,
}

impl Row {
    /// ringio / peer, or peer / ringio when lower is better: higher always
    /// means ringio did better.
    pub fn ratio(&self) -> Option<f64> {
        let ringio = self.ringio.median()?;
        let peer = self.peer_value.median()?;
        let ratio = match self.better {
            Better::Higher => ringio / peer,
            Better::Lower => peer / ringio,
        };
        ratio.is_finite().then_some(ratio)
    }
}

/// A workload's rows, with the text that explains how they were measured.
#[derive(Clone, Debug)]
pub struct Section {
    pub title: String,
    pub method: String,
    pub rows: Vec<Row>,
    /// Lines shown under the table, e.g. rows that are not available.
    pub notes: Vec<String>,
}
